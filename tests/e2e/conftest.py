"""Fixtures of the HTTP tests: a real CityOps system (embedded SQLite in a temporary folder,
the demo city) behind the real FastAPI app, driven as the people who use it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cityops.bootstrap import CitySystem, build_system
from cityops.command_center.app import create_app
from cityops.settings import Settings


class Api:
    """The command centre's API as a test drives it: every call says who acts (`role`, and
    `dept` for a department user) and which status it expects, and returns the JSON body."""

    IN_TOWN = {"type": "Point", "coordinates": [118.80, 32.05]}
    """A point in the middle of the demo city."""

    def __init__(self, client: TestClient, system: CitySystem) -> None:
        self.client = client
        self.system = system

    @staticmethod
    def headers(role: str | None = "dispatcher", department: str | None = None,
                key: str | None = None, user: str | None = None) -> dict[str, str]:
        headers: dict[str, str] = {}
        if role is not None:
            headers = {"X-Actor-Id": user or f"{role}-1", "X-Actor-Role": role}
        if department is not None:
            headers["X-Actor-Department"] = department
        if key is not None:
            headers["Idempotency-Key"] = key
        return headers

    def post(self, path: str, body: dict[str, Any] | None = None, *,
             role: str | None = "dispatcher", dept: str | None = None,
             key: str | None = None, expect: int = 200) -> Any:
        response = self.client.post(path, json=body if body is not None else {},
                                    headers=self.headers(role, dept, key))
        assert response.status_code == expect, response.text
        return response.json()

    def get(self, path: str, *, role: str | None = "dispatcher", dept: str | None = None,
            expect: int = 200, **params: Any) -> Any:
        """`params` are the query parameters (`dept` is the acting user's department)."""
        response = self.client.get(path, params=params, headers=self.headers(role, dept))
        assert response.status_code == expect, response.text
        return response.json()

    def history(self, path: str) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = self.get(f"{path}/history")
        return events

    def settle(self) -> None:
        """Bring the read models up to date before a list query (they follow the event
        stores in the background)."""
        self.system.catch_up()


@pytest.fixture
def system(tmp_path: Path, demo_city: Any) -> CitySystem:
    return build_system(Settings(data_dir=tmp_path), city=demo_city)


@pytest.fixture
def api(system: CitySystem) -> Iterator[Api]:
    """The app over the system; leaving the block stops the projections and closes it."""
    with TestClient(create_app(system)) as client:
        yield Api(client, system)
