"""Fixtures of the HTTP tests: a real CityOps system (embedded SQLite in a temporary folder,
the demo city) behind the real FastAPI app, driven as the people who use it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cityops.bootstrap import CitySystem, build_system
from cityops.command_center.app import create_app
from cityops.domain.accounts.account import PasswordHasher
from cityops.domain.accounts.commands import AddUser, EnableUser, SetDepartment, SetRole
from cityops.domain.actors import Actor, Role
from cityops.domain.commands import CommandContext
from cityops.settings import Settings

from .published_schema import every_answer_checked  # noqa: F401 (an autouse fixture)
from .unchanged_bodies import bodies_unchanged_by_models  # noqa: F401 (an autouse fixture)

TEST_HASHER = PasswordHasher(n=2**10, r=8, p=1)


class Api:
    """The command centre's API as a test drives it: every call says who acts (`role`, and
    `dept` for a department user; `user` names them, default `<role>-1`) and which status
    it expects, and returns the JSON body.

    The acting user is created on the fly through `system.accounts` (or moved to that role
    and department if it exists with others: that ends its earlier tokens) and the call
    carries a real bearer token; `role=None` sends no token at all."""

    IN_TOWN = {"type": "Point", "coordinates": [118.80, 32.05]}
    """A point in the middle of the demo city."""
    PASSWORD = "test-password-1"
    """The password of every user the helper creates."""
    ADMIN = Actor(user_id="test-admin", role=Role.ADMIN)

    def __init__(self, client: TestClient, system: CitySystem) -> None:
        self.client = client
        self.system = system
        self._tokens: dict[str, tuple[str, str | None, int, str]] = {}

    def user(self, role: str = "dispatcher", dept: str | None = None,
             user: str | None = None) -> str:
        """The username acting as `role` (of `dept`), created or adjusted as needed."""
        name = user or f"{role}-1"
        accounts = self.system.accounts
        account = accounts.find_user(name)
        if account is None:
            accounts.handle(
                AddUser(username=name, role=role, department=dept, password=self.PASSWORD),
                CommandContext(actor=self.ADMIN))
        elif account.role.value != role or account.department != dept:
            if not account.enabled:
                accounts.handle(EnableUser(username=name), CommandContext(actor=self.ADMIN))
            accounts.handle(
                SetRole(username=name, role=role, department=dept),
                CommandContext(actor=self.ADMIN))
            if dept is None and accounts.user(name).department is not None:
                accounts.handle(
                    SetDepartment(username=name, department=None),
                    CommandContext(actor=self.ADMIN))
        return name

    def token(self, role: str = "dispatcher", dept: str | None = None,
              user: str | None = None) -> str:
        """A bearer token of the user acting as `role` (of `dept`)."""
        name = self.user(role, dept, user)
        version = self.system.accounts.user(name).credential_version
        cached = self._tokens.get(name.casefold())
        if cached is not None and cached[:3] == (role, dept, version):
            return cached[3]
        token: str = self.client.app.state.auth.issue_token(name)  # type: ignore[attr-defined]
        self._tokens[name.casefold()] = (role, dept, version, token)
        return token

    def headers(self, role: str | None = "dispatcher", department: str | None = None,
                key: str | None = None, user: str | None = None) -> dict[str, str]:
        headers: dict[str, str] = {}
        if role is not None:
            headers["Authorization"] = f"Bearer {self.token(role, department, user)}"
        if key is not None:
            headers["Idempotency-Key"] = key
        return headers

    def post(self, path: str, body: dict[str, Any] | None = None, *,
             role: str | None = "dispatcher", dept: str | None = None,
             user: str | None = None, key: str | None = None, expect: int = 200) -> Any:
        response = self.client.post(path, json=body if body is not None else {},
                                    headers=self.headers(role, dept, key, user))
        assert response.status_code == expect, response.text
        return response.json()

    def get(self, path: str, *, role: str | None = "dispatcher", dept: str | None = None,
            user: str | None = None, expect: int = 200, **params: Any) -> Any:
        """`params` are the query parameters (`dept` is the acting user's department)."""
        response = self.client.get(path, params=params,
                                   headers=self.headers(role, dept, user=user))
        assert response.status_code == expect, response.text
        return response.json()

    def inspector_at(self, location: dict[str, Any]) -> str:
        """The inspector who patrols a GeoJSON point of the city: who reports there without
        the report being marked as outside their cells."""
        from cityops.domain.geometry import GeoPoint

        lon, lat = location["coordinates"]
        return str(self.system.city.map.locate(GeoPoint(lon=lon, lat=lat)).inspector_id)

    def cell_inspector(self, case: dict[str, Any]) -> str:
        """The inspector who patrols a case's cell: the one who verifies it."""
        inspector: str = self.system.city.map.inspector_of(case["grid_cell"])
        return inspector

    def history(self, path: str) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = self.get(f"{path}/history")
        return events

    def settle(self) -> None:
        """Bring the read models up to date before a list query (they follow the event
        stores in the background)."""
        self.system.catch_up()


def _log_in(client: TestClient, system: CitySystem, role: str = "dispatcher",
           dept: str | None = None, user: str | None = None) -> TestClient:
    """Make every request of `client` carry the bearer token of a user of `role` (created
    in `system` if need be), for tests that drive a bare test client."""
    system.accounts.hasher = TEST_HASHER
    token = Api(client, system).token(role, dept, user)
    client.headers["Authorization"] = f"Bearer {token}"
    return client


@pytest.fixture(scope="session")
def log_in() -> Callable[..., TestClient]:
    """`log_in(client, system, role="dispatcher", dept=None, user=None)`: the client, every
    request of which now carries that user's bearer token."""
    return _log_in


@pytest.fixture
def system(tmp_path: Path, demo_city: Any) -> CitySystem:
    built = build_system(Settings(data_dir=tmp_path), city=demo_city)
    # Cheap scrypt parameters for the users tests create by the dozen (stored in each hash,
    # so logins check them as they are); the defaults are tested in the domain's tests.
    built.accounts.hasher = TEST_HASHER
    return built


@pytest.fixture
def api(system: CitySystem) -> Iterator[Api]:
    """The app over the system; leaving the block stops the projections and closes it."""
    with TestClient(create_app(system)) as client:
        yield Api(client, system)


@pytest.fixture(scope="module")
def module_api(tmp_path_factory: pytest.TempPathFactory, demo_city: Any) -> Iterator[Api]:
    """One app and system for a whole test module (a world built once and read by many
    tests); closed after the module."""
    built = build_system(Settings(data_dir=tmp_path_factory.mktemp("module-api")),
                         city=demo_city)
    built.accounts.hasher = TEST_HASHER
    with TestClient(create_app(built)) as client:
        yield Api(client, built)
