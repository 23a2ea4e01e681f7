"""A store that cannot take a write (down, restarting, out of space, refusing writes) answers
503 with `Retry-After`, never a 500, and a retry with the same Idempotency-Key once it is back
records the command once (issue 10: the fault suite saw 500s while the store refused writes)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from cityops.bootstrap import CitySystem, build_system
from cityops.command_center.app import create_app
from cityops.domain.accounts.commands import AddUser
from cityops.domain.actors import Actor, Role
from cityops.domain.commands import CommandContext
from cityops.settings import Settings

pytestmark = pytest.mark.postgres

ADMIN = Actor("admin", Role.ADMIN)


@pytest.fixture
def system(fresh_database: str, tmp_path: Path, demo_city: Any) -> Iterator[CitySystem]:
    built = build_system(Settings(database_url=fresh_database, data_dir=tmp_path,
                                  database_pool_size=2), city=demo_city)
    yield built
    built.close()


def _writes(database_url: str, *, allowed: bool) -> None:
    """Grant or revoke the app role's writes on the grid cases' event table (as its owner:
    the closest safe stand-in for a disk that is full)."""
    verb = "GRANT INSERT ON gridcases_events TO CURRENT_USER" if allowed else \
        "REVOKE INSERT ON gridcases_events FROM CURRENT_USER"
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(verb)


def test_a_store_refusing_writes_answers_503_and_the_retry_records_once(
        system: CitySystem, fresh_database: str) -> None:
    system.accounts.handle(
        AddUser(username="disp", role=Role.DISPATCHER, password="disp-password-1"),
        CommandContext(actor=ADMIN))
    report = {"category": "E0101", "description": "garbage heap by the bus stop",
              "location": {"type": "Point", "coordinates": [118.80, 32.05]}}
    with TestClient(create_app(system, manage_lifecycle=False)) as client:
        token = client.app.state.auth.issue_token("disp")  # type: ignore[attr-defined]
        headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "report-1"}
        _writes(fresh_database, allowed=False)
        try:
            refused = client.post("/grid-cases", json=report, headers=headers)
        finally:
            _writes(fresh_database, allowed=True)
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"] == "storage-unavailable"
        assert refused.headers["Retry-After"] == "5"

        accepted = client.post("/grid-cases", json=report, headers=headers)
        assert accepted.status_code == 201, accepted.text
        again = client.post("/grid-cases", json=report, headers=headers)
        assert again.json()["id"] == accepted.json()["id"]
    stored = system.grid_cases.recorder.select_notifications(start=1, limit=100)
    topics = [n.topic.rsplit(":", 1)[-1] for n in stored]
    assert topics.count("GridCase.Reported") == 1
