"""Fixtures of the projection unit tests: the built-in catalogue, a clock that stands still
until a test moves it, and a grid-case application in memory (the eventsourcing `popo`
recorder) on a small test grid, so that rows are computed from real aggregates."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from cityops.domain.actors import Actor, Role
from cityops.domain.catalogue import Catalogue
from cityops.domain.duplicates import DuplicatePolicy, OpenReport
from cityops.domain.geometry import GeoPoint
from cityops.domain.gridcases.application import GridCases

START = datetime(2026, 3, 10, 1, 0, tzinfo=UTC)
"""Tuesday 10 March 2026, 09:00 in Asia/Shanghai (the built-in calendar): a working morning."""

DISPATCHER = Actor("duty-zhao", Role.DISPATCHER)
INSPECTOR = Actor("insp-wang", Role.INSPECTOR)


def department_user(department: str) -> Actor:
    return Actor(f"{department}-user", Role.DEPARTMENT_USER, department)


class ManualClock:
    """Tells the same time until the test moves it; `speed` 0 says so to the supervision
    clock (like the simulator's clock at speed 0)."""

    speed = 0.0

    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta | None = None, **parts: float) -> datetime:
        self.now += delta if delta is not None else timedelta(**parts)
        return self.now


class TestGrid:
    """A lon/lat box cut into 0.001-degree cells coded like a real grid (district-street-
    community-cell); one inspector patrols it all."""

    __test__ = False

    WEST, SOUTH = 121.40, 31.20

    def inspector_of(self, cell_code: str) -> str | None:
        return INSPECTOR.user_id

    def is_inspector(self, inspector_id: str) -> bool:
        return inspector_id == INSPECTOR.user_id

    def locate_cell(self, point: GeoPoint) -> str | None:
        col = math.floor(round((point.lon - self.WEST) / 0.001, 9))
        row = math.floor(round((point.lat - self.SOUTH) / 0.001, 9))
        if not (0 <= col < 100 and 0 <= row < 50):
            return None
        district, street = col // 25 + 1, row // 25 + 1
        community = (row % 25) // 5 * 5 + (col % 25) // 5 + 1
        cell = (row % 5) * 5 + col % 5 + 1
        return f"D{district:02d}-S{street:02d}-C{community:02d}-{cell:02d}"


class NoOpenReports:
    """No open report is ever near: every report is a new case."""

    def open_reports_near(self, point: GeoPoint, radius_m: float,
                          since: datetime) -> list[OpenReport]:
        return []


class Cases:
    """Drives grid cases through the application (a C0101 manhole cover, urgent: two clock
    hours to handle it), with the people who act on them."""

    dispatcher = DISPATCHER
    inspector = INSPECTOR

    def __init__(self, app: GridCases, clock: ManualClock) -> None:
        self.app = app
        self.clock = clock
        self._next = 0

    @staticmethod
    def department(name: str) -> Actor:
        """A user of department `name`."""
        return department_user(name)

    def report(self, **kw: Any) -> UUID:
        self._next += 1
        args: dict[str, Any] = {
            "source": "inspector", "category": "C0101", "urgency": "urgent",
            "location": GeoPoint(121.4005 + 0.01 * self._next, 31.2005),
            "description": "manhole cover missing", "actor": INSPECTOR,
        }
        return self.app.report(**{**args, **kw})

    def dispatched(self, department: str = "water") -> UUID:
        case_id = self.report()
        self.app.register(case_id, actor=DISPATCHER)
        self.app.dispatch(case_id, actor=DISPATCHER, department=department)
        return case_id


@pytest.fixture(scope="session")
def catalogue() -> Catalogue:
    return Catalogue.load()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def cases(catalogue: Catalogue, clock: ManualClock) -> Cases:
    app = GridCases({"PERSISTENCE_MODULE": "eventsourcing.popo"}, catalogue=catalogue,
                    locator=TestGrid(), open_reports=NoOpenReports(),
                    duplicate_policy=DuplicatePolicy(radius_m=50, window=timedelta(hours=24)),
                    clock=clock)
    return Cases(app, clock)
