"""Logging in: a username and password for a bearer token, who the token is for, and changing
one's own password (which ends every earlier login of that user)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import Field

from cityops.command_center.auth import Authenticator, IssuedToken
from cityops.command_center.dependencies import CurrentActor, SystemDep, get_authenticator
from cityops.command_center.models.reference import TokenPublic, UserPublic
from cityops.command_center.routers.pages import home_page
from cityops.command_center.schemas import Command

router = APIRouter(prefix="/auth", tags=["authentication"])

AuthDep = Annotated[Authenticator, Depends(get_authenticator)]


class Login(Command):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class PasswordChange(Command):
    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=1, max_length=1024)


def _token_body(issued: IssuedToken) -> dict[str, Any]:
    return {"access_token": issued.token, "token_type": "bearer",
            "expires_at": issued.expires_at.isoformat(), "user": issued.account.as_dict(),
            "home_page": home_page(issued.account.role)}


def client_address(request: Request) -> str:
    """Where a request comes from, for throttling password guesses per source."""
    return request.client.host if request.client is not None else "unknown"


@router.post("/login", response_model=TokenPublic, openapi_extra={"security": []})
async def login(body: Login, request: Request, auth: AuthDep) -> dict[str, Any]:
    """Exchange a username and password for a bearer token valid for one shift; repeated
    failures from one address are paused for a growing while (429, never a lockout of the
    user), and when too many passwords are being checked the answer is 503."""
    return _token_body(await auth.login(body.username, body.password,
                                        client_address(request)))


@router.get("/me", response_model=UserPublic)
def me(actor: CurrentActor, system: SystemDep) -> dict[str, Any]:
    """The logged-in user: username, role, department and display name."""
    return system.accounts.user(actor.user_id).view().as_dict()


@router.post("/password", response_model=TokenPublic)
async def change_password(body: PasswordChange, request: Request, actor: CurrentActor,
                          auth: AuthDep) -> dict[str, Any]:
    """Change one's own password (the current one is required, and wrong guesses are
    throttled like logins); earlier tokens stop working and the answer carries a fresh
    one."""
    return _token_body(await auth.change_password(
        actor, current=body.current_password, new=body.new_password,
        source=client_address(request)))
