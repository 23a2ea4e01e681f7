"""One clock over HTTP and the live push: on a system whose clock is far from real time (the
demo's day, a drill), what the API stamps and says about time follows that clock, not the
wall clock, and the pages can read it (`GET /clock`, the live push's messages)."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from cityops.bootstrap import CitySystem, build_system
from cityops.settings import Settings
from cityops.simulator import SimulatedClock

from .conftest import TEST_HASHER

THEN = datetime(2024, 3, 12, 1, 30, tzinfo=UTC)
"""The system's time: a working-day morning in the city, long before the wall clock's now."""


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock(THEN, 0.0)  # only moves when told


@pytest.fixture
def system(tmp_path: Path, demo_city: Any, clock: SimulatedClock) -> CitySystem:
    built = build_system(Settings(data_dir=tmp_path), city=demo_city, clock=clock)
    built.accounts.hasher = TEST_HASHER
    return built


def _png() -> bytes:
    out = io.BytesIO()
    Image.linear_gradient("L").resize((64, 48)).convert("RGB").save(out, "PNG")
    return out.getvalue()


def _report(api: Any) -> str:
    case_id: str = api.post("/grid-cases", {
        "category": "E0101", "description": "garbage", "location": api.IN_TOWN,
    }, role="inspector", expect=201)["id"]
    return case_id


def test_clock_answers_the_systems_time_and_rate(api: Any, clock: SimulatedClock) -> None:
    body = api.get("/clock", role=None)
    assert datetime.fromisoformat(body["server_time"]) == THEN
    assert body["clock_rate"] == 0.0
    clock.advance_to(THEN + timedelta(hours=2))
    assert datetime.fromisoformat(api.get("/clock", role=None)["server_time"]) \
        == THEN + timedelta(hours=2)


def test_a_photo_upload_is_stamped_with_the_systems_clock(api: Any) -> None:
    response = api.client.post("/photos", headers=api.headers(role="inspector"),
                               files={"file": ("p.png", _png(), "image/png")})
    assert response.status_code == 201, response.text
    sha = response.json()["sha256"]
    info = api.get(f"/photos/{sha}/info", role="inspector")
    assert datetime.fromisoformat(info["uploaded_at"]) == THEN


def test_geojson_time_stamps_follow_the_systems_clock(api: Any) -> None:
    _report(api)
    api.settle()
    features = api.client.get("/spatial/grid-cases/features", headers=api.headers())
    assert features.status_code == 200, features.text
    assert features.json()["timeStamp"] == "2024-03-12T01:30:00Z"
    items = api.client.get("/ogc/collections/grid-cases/items", headers=api.headers())
    assert items.status_code == 200, items.text
    assert items.json()["timeStamp"] == "2024-03-12T01:30:00Z"


def test_the_live_push_carries_the_systems_time(api: Any) -> None:
    with api.client.websocket_connect("/ws") as socket:
        socket.send_json({"type": "hello", "token": api.token("dispatcher"),
                          "subscribe": {"layers": ["grid-cases"]}})
        welcome = socket.receive_json()
        snapshot = socket.receive_json()
    assert welcome["type"] == "welcome" and snapshot["type"] == "snapshot"
    for message in (welcome, snapshot):
        assert datetime.fromisoformat(message["server_time"]) == THEN, message["type"]
        assert message["clock_rate"] == 0.0
