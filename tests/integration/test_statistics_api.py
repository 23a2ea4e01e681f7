"""The statistics a leader reads over HTTP, after a morning whose every figure can be counted
by hand: five manhole-cover cases (urgent: two clock hours to handle), dispatched, returned,
handled late, reworked, left open, rejected. Real system (embedded SQLite, the demo city),
real FastAPI app with the statistics router."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from fastapi.testclient import TestClient

from cityops.bootstrap import CitySystem, build_system
from cityops.command_center.app import create_app
from cityops.domain.accounts.commands import AddUser
from cityops.domain.actors import Actor, Role
from cityops.domain.commands import CommandContext
from cityops.domain.geometry import GeoPoint
from cityops.domain.gridcases.commands import (
    CloseCase,
    DispatchCase,
    HandleCase,
    RegisterCase,
    RejectCase,
    ReportCase,
    ReturnCaseToCentre,
    VerifyCase,
)
from cityops.settings import Settings

START = datetime(2026, 3, 10, 1, 0, tzinfo=UTC)
DISPATCHER = Actor("duty-zhao", Role.DISPATCHER)
INSPECTOR = Actor("insp-wang", Role.INSPECTOR)
WATER = Actor("water-chen", Role.DEPARTMENT_USER, "water")
SANITATION = Actor("san-liu", Role.DEPARTMENT_USER, "sanitation")
ADMIN = Actor("admin-ma", Role.ADMIN)


class ManualClock:
    speed = 0.0

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **parts: float) -> None:
        self.now += timedelta(**parts)


class Morning:
    """The morning's cases, by what happened to them."""

    def __init__(self, system: CitySystem, clock: ManualClock) -> None:
        self.system = system
        self.clock = clock
        cells = system.city.map.cells
        step = len(cells) // 6
        self.points = [cells.geometry.iloc[i * step].representative_point() for i in range(6)]
        self.cells: dict[str, str] = {}

    def report(self, name: str) -> UUID:
        point = self.points[len(self.cells)]
        case_id = self.system.grid_cases.handle(
            ReportCase(source="inspector", category="C0101", urgency="urgent",
                       description=f"manhole cover missing ({name})",
                       location=GeoPoint(point.x, point.y)),
            CommandContext(actor=INSPECTOR)).subject
        cell = self.system.grid_cases.case(case_id).grid_cell
        assert cell is not None
        self.cells[name] = cell
        return case_id

    def inspector_of(self, name: str) -> Actor:
        """The inspector who patrols the cell of a case (who verifies it)."""
        return Actor(self.system.city.map.inspector_of(self.cells[name]), Role.INSPECTOR)

    def dispatched(self, name: str, department: str) -> UUID:
        case_id = self.report(name)
        self.system.grid_cases.handle(
            RegisterCase(case_id=case_id),
            CommandContext(actor=DISPATCHER))
        self.system.grid_cases.handle(
            DispatchCase(case_id=case_id, department=department),
            CommandContext(actor=DISPATCHER))
        return case_id

    def play(self) -> None:
        cases = self.system.grid_cases
        fixed = self.dispatched("fixed", "water")
        returned = self.dispatched("returned", "water")
        reworked = self.dispatched("reworked", "sanitation")
        rejected = self.report("rejected")
        cases.handle(
            RejectCase(case_id=rejected, reason="not-city-management"),
            CommandContext(actor=DISPATCHER))
        self.clock.advance(minutes=30)
        cases.handle(
            HandleCase(case_id=fixed, result="new cover fitted"),
            CommandContext(actor=WATER))
        cases.handle(
            ReturnCaseToCentre(case_id=returned, reason="a sewer cover",
                               suggested_department="sanitation"),
            CommandContext(actor=WATER))
        cases.handle(
            DispatchCase(case_id=returned, department="sanitation"),
            CommandContext(actor=DISPATCHER))
        cases.handle(
            HandleCase(case_id=reworked, result="cover fixed"),
            CommandContext(actor=SANITATION))
        self.clock.advance(minutes=30)
        cases.handle(
            VerifyCase(case_id=fixed, fixed=True),
            CommandContext(actor=self.inspector_of("fixed")))
        cases.handle(CloseCase(case_id=fixed), CommandContext(actor=DISPATCHER))
        cases.handle(
            VerifyCase(case_id=reworked, fixed=False, note="the cover still rocks"),
            CommandContext(actor=self.inspector_of("reworked")))
        self.clock.advance(hours=2)  # 3 h after dispatch: late for the returned case
        cases.handle(
            HandleCase(case_id=returned, result="cover replaced"),
            CommandContext(actor=SANITATION))
        self.dispatched("open", "water")  # just now: two hours to go
        self.system.catch_up()


@pytest.fixture
def morning(tmp_path: Path, demo_city: Any) -> Iterator[Morning]:
    clock = ManualClock()
    system = build_system(Settings(data_dir=tmp_path / "store"), clock=clock, city=demo_city)
    played = Morning(system, clock)
    played.play()
    yield played
    system.close()


@pytest.fixture
def api(morning: Morning) -> TestClient:
    """The command centre's app over the played morning, logged in as the duty officer."""
    morning.system.accounts.handle(
        AddUser(username="duty-officer", role=Role.DISPATCHER, password="statistics-test-password"),
        CommandContext(actor=ADMIN))
    client = TestClient(create_app(morning.system, manage_lifecycle=False))
    login = client.post("/auth/login", json={"username": "duty-officer",
                                             "password": "statistics-test-password"})
    assert login.status_code == 200, login.text
    client.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
    return client


def by_department(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["department"]: row for row in body["data"]}


def test_departments_are_judged_on_what_they_were_sent(api: TestClient) -> None:
    body = api.get("/statistics/departments").json()
    water, sanitation = by_department(body)["water"], by_department(body)["sanitation"]
    assert {k: water[k] for k in ("dispatched", "handled", "closed", "on_time", "overdue",
                                  "returned", "with_department")} == {
        "dispatched": 3, "handled": 1, "closed": 1, "on_time": 1, "overdue": 0,
        "returned": 1, "with_department": 1}
    assert water["average_handling_seconds"] == 30 * 60
    assert water["returned_rate"] == pytest.approx(1 / 3)
    assert water["on_time_rate"] == 1.0
    # The reworked case is back with sanitation; the returned one was handled an hour late.
    assert {k: sanitation[k] for k in ("dispatched", "handled", "handled_late", "reworked",
                                       "with_department", "on_time")} == {
        "dispatched": 2, "handled": 1, "handled_late": 1, "reworked": 1,
        "with_department": 1, "on_time": 0}
    # Rework is a failed verification: of sanitation's dispatches only the reworked one was
    # verified (the other is handled, not yet checked), so its rework rate is 1/1; water's
    # one verified dispatch was fixed.
    assert (sanitation["verified"], sanitation["rework_rate"]) == (1, 1.0)
    assert (water["verified"], water["rework_rate"]) == (1, 0.0)
    assert sanitation["average_handling_seconds"] == 150 * 60
    assert water["lights"]["green"] + water["lights"]["yellow"] + water["lights"]["red"] == 1


def test_an_open_case_becomes_overdue_as_time_passes(api: TestClient, morning: Morning) -> None:
    now = morning.clock.now
    later = (now + timedelta(hours=3)).isoformat()
    water_now = by_department(api.get("/statistics/departments").json())["water"]
    water_later = by_department(
        api.get("/statistics/departments", params={"at": later}).json())["water"]
    assert (water_now["overdue_open"], water_later["overdue_open"]) == (0, 1)
    assert water_later["lights"]["red"] == 1
    assert water_later["on_time_rate"] == 0.5


def test_areas_count_cases_where_they_were_reported(api: TestClient, morning: Morning) -> None:
    cells = {row["code"]: row for row in
             api.get("/statistics/areas", params={"level": "cell"}).json()["data"]}
    assert cells[morning.cells["rejected"]]["rejected"] == 1
    assert cells[morning.cells["fixed"]]["closed"] == 1
    assert cells[morning.cells["returned"]]["dispatches"]["returned"] == 1
    assert cells[morning.cells["returned"]]["dispatches"]["dispatched"] == 2
    districts = api.get("/statistics/areas", params={"level": "district"}).json()["data"]
    assert sum(d["reported"] for d in districts) == 5
    assert sum(d["open"] for d in districts) == 3
    district = morning.cells["open"].split("-")[0]
    inside = api.get("/statistics/areas",
                     params={"level": "community", "within": district}).json()["data"]
    assert inside and all(row["code"].startswith(district + "-") for row in inside)


def test_key_figures(api: TestClient) -> None:
    body = api.get("/statistics/key-figures").json()
    lights = body["open_cases_by_light"]
    assert sum(lights.values()) == 3
    assert body["cases"]["reported"] == 5
    assert body["on_time_rate_by_department"] == {"water": 1.0, "sanitation": 0.0}
    assert body["incidents_by_category"] == {}
    assert body["hotline"]["tickets"] == 0


def test_incidents_and_hotline_answer_when_there_are_none(api: TestClient) -> None:
    incidents = api.get("/statistics/incidents").json()
    assert incidents["total"] == 0
    assert incidents["response_times"]["on_scene"]["count"] == 0
    hotline = api.get("/statistics/hotline").json()
    assert hotline["total"]["on_time_reply_rate"] is None


def test_bad_questions_get_clear_errors(api: TestClient) -> None:
    naive = api.get("/statistics/key-figures", params={"at": "2026-03-10T09:00:00"})
    assert naive.status_code == 422
    assert "UTC offset" in naive.json()["detail"]
    level = api.get("/statistics/areas", params={"level": "planet"})
    assert level.status_code == 422
    assert "level" in level.json()["detail"]
