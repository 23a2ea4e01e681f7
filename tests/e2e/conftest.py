"""Fixtures of the HTTP tests: a real CityOps system (embedded SQLite in a temporary folder,
the demo city) behind the real FastAPI app, and the headers of the people who act."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cityops.bootstrap import CitySystem, build_system
from cityops.command_center.app import create_app
from cityops.settings import Settings

IN_TOWN = {"type": "Point", "coordinates": [118.80, 32.05]}
"""A point in the middle of the demo city."""


def actor(role: str, user: str | None = None, department: str | None = None) -> dict[str, str]:
    """The headers that say who acts."""
    headers = {"X-Actor-Id": user or f"{role}-1", "X-Actor-Role": role}
    if department is not None:
        headers["X-Actor-Department"] = department
    return headers


DISPATCHER = actor("dispatcher")
PLANNER = actor("planner")
OPERATOR = actor("hotline-operator")
INSPECTOR = actor("inspector")
SENSOR_GATEWAY = actor("system", "sensor-gateway")
LEADER = actor("leader")


def with_key(headers: dict[str, str], key: str) -> dict[str, str]:
    return {**headers, "Idempotency-Key": key}


@pytest.fixture
def system(tmp_path: Path, demo_city: Any) -> CitySystem:
    return build_system(Settings(data_dir=tmp_path), city=demo_city)


@pytest.fixture
def client(system: CitySystem) -> Iterator[TestClient]:
    """The app over the system; leaving the block stops the projections and closes it."""
    with TestClient(create_app(system)) as test_client:
        yield test_client


def ok(response: Any, status: int = 200) -> dict[str, Any]:
    """The JSON body of a response that must have `status` (the body is shown otherwise)."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


def event_count(client: TestClient, path: str) -> int:
    return len(ok(client.get(f"{path}/history", headers=DISPATCHER)))
