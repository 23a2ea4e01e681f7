"""Logging in: a username and password for a bearer token, who the token is for, and changing
one's own password (which ends every earlier login of that user)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import Field

from cityops.command_center.auth import Authenticator, IssuedToken
from cityops.command_center.dependencies import CurrentActor, SystemDep, get_authenticator
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


@router.post("/login", openapi_extra={"security": []})
def login(body: Login, auth: AuthDep) -> dict[str, Any]:
    """Exchange a username and password for a bearer token valid for one shift; repeated
    failures for one username are refused for a while (429)."""
    return _token_body(auth.login(body.username, body.password))


@router.get("/me")
def me(actor: CurrentActor, system: SystemDep) -> dict[str, Any]:
    """The logged-in user: username, role, department and display name."""
    return system.accounts.user(actor.user_id).view().as_dict()


@router.post("/password")
def change_password(body: PasswordChange, actor: CurrentActor, system: SystemDep,
                    auth: AuthDep) -> dict[str, Any]:
    """Change one's own password (the current one is required); earlier tokens stop working
    and the answer carries a fresh one."""
    system.accounts.change_password(actor.user_id, current=body.current_password,
                                    new=body.new_password, actor=actor)
    return _token_body(auth.issue(actor.user_id))
