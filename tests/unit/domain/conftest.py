"""Fixtures of the grid-case domain tests: the built-in catalogue (loaded once), a clock that
stands still until a test moves it, in-memory stand-ins for the read models the application
asks (open reports near a point, the grid cell of a point), and a `Workflow` that walks a
case along the paths of the domain brief.

Everything here is a real, if small, implementation over Python lists: no mocks, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from cityops.domain.actors import Actor, Role
from cityops.domain.application import CommandBatch
from cityops.domain.catalogue import Catalogue
from cityops.domain.commands import Command, CommandContext
from cityops.domain.duplicates import DuplicatePolicy, OpenReport
from cityops.domain.geometry import GeoPoint
from cityops.domain.gridcases.application import GridCases
from cityops.domain.gridcases.case import GridCase
from cityops.domain.gridcases.commands import (
    CloseCase,
    DecideCaseExtension,
    DecideCaseSuspension,
    DispatchCase,
    HandleCase,
    RegisterCase,
    RejectCase,
    ReportCase,
    RequestCaseExtension,
    RequestCaseSuspension,
    ResumeCase,
    ReturnCaseToCentre,
    ReviewCaseReturn,
    SuspendCase,
    VerifyCase,
)

POPO = {"PERSISTENCE_MODULE": "eventsourcing.popo"}
START = datetime(2026, 3, 10, 1, 0, tzinfo=UTC)
"""Tuesday 10 March 2026, 09:00 in Asia/Shanghai (the built-in calendar): a working morning."""


def as_stored_by_version_1(app: Any, event: Any, *added: str) -> Any:
    """`event` read back as version 1 of its class stored it: without the fields `added`
    since (the upcast must supply them)."""
    stored = app.mapper.to_stored_event(event)
    state = app.mapper.transcoder.decode(stored.state)
    assert state.pop("class_version") == 2
    for name in added:
        del state[name]
    as_v1 = type(stored)(originator_id=stored.originator_id,
                         originator_version=stored.originator_version, topic=stored.topic,
                         state=app.mapper.transcoder.encode(state))
    return app.mapper.to_domain_event(as_v1)


class FixedClock:
    """The application's clock in tests: it tells the same time until the test moves it."""

    def __init__(self, now: datetime) -> None:
        if now.tzinfo is None:
            raise ValueError("a test clock needs an aware time")
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta | None = None, **parts: float) -> datetime:
        self.now += delta if delta is not None else timedelta(**parts)
        return self.now

    def set(self, moment: datetime) -> datetime:
        if moment.tzinfo is None:
            raise ValueError("a test clock needs an aware time")
        self.now = moment
        return self.now


class BoxGridLocator:
    """The unit grid of a small test city: a lon/lat box cut into cells of 0.001 degree
    (about 95 m x 111 m), coded district-street-community-cell like a real grid code.

    Districts are four columns of 0.025 degree (D01..D04 from west to east); streets are two
    rows of 0.025 degree; communities are squares of 0.005 degree.
    """

    WEST, SOUTH, EAST, NORTH = 121.40, 31.20, 121.50, 31.25
    CELL = 0.001

    def locate_cell(self, point: GeoPoint) -> str | None:
        if not (self.WEST <= point.lon < self.EAST and self.SOUTH <= point.lat < self.NORTH):
            return None
        col = math.floor(round((point.lon - self.WEST) / self.CELL, 9))
        row = math.floor(round((point.lat - self.SOUTH) / self.CELL, 9))
        district, street = col // 25 + 1, row // 25 + 1
        community = (row % 25) // 5 * 5 + (col % 25) // 5 + 1
        cell = (row % 5) * 5 + col % 5 + 1
        return f"D{district:02d}-S{street:02d}-C{community:02d}-{cell:02d}"

    INSPECTORS = {"D01": "insp-wang", "D02": "insp-wang", "D03": "insp-wang",
                  "D04": "insp-zhou"}
    """Who patrols each district: Cast's inspector everywhere but in D04."""

    def inspector_of(self, cell_code: str) -> str | None:
        return self.INSPECTORS.get(cell_code.split("-", 1)[0])

    def is_inspector(self, inspector_id: str) -> bool:
        return inspector_id in self.INSPECTORS.values()


class InMemoryOpenReports:
    """Open cases and tickets kept in a list; answers like the read model does."""

    def __init__(self, reports: list[OpenReport] | None = None) -> None:
        self.reports: list[OpenReport] = list(reports or [])
        self.queries: list[tuple[GeoPoint, float, datetime]] = []

    def add(self, report: OpenReport) -> None:
        self.reports.append(report)

    def add_case(self, case: GridCase) -> None:
        self.add(OpenReport(id=case.id, category=case.category, location=case.location,
                            reported_at=case.reported_at))

    def open_reports_near(self, point: GeoPoint, radius_m: float,
                          since: datetime) -> list[OpenReport]:
        self.queries.append((point, radius_m, since))
        return [
            r for r in self.reports
            if r.reported_at >= since and point.distance_m(r.location) <= radius_m
        ]


class Cast:
    """The people of the domain brief, one of each (two department users)."""

    inspector = Actor("insp-wang", Role.INSPECTOR)
    """Patrols the test city but district D04."""
    inspector_d04 = Actor("insp-zhou", Role.INSPECTOR)
    """Patrols district D04."""
    hotline = Actor("op-li", Role.HOTLINE_OPERATOR)
    dispatcher = Actor("duty-zhao", Role.DISPATCHER)
    water = Actor("water-chen", Role.DEPARTMENT_USER, "water")
    sanitation = Actor("san-liu", Role.DEPARTMENT_USER, "sanitation")
    planner = Actor("plan-sun", Role.PLANNER)
    leader = Actor("mayor-zhou", Role.LEADER)
    system = Actor("camera-gw", Role.SYSTEM)
    admin = Actor("root-wu", Role.ADMIN)

    def with_role(self, role: Role) -> Actor:
        """Someone acting in `role` (a department user of the water company)."""
        department = "water" if role is Role.DEPARTMENT_USER else None
        return Actor(f"someone-{role.value}", role, department)


class Places:
    """Points of the test city of `BoxGridLocator`."""

    in_d01 = GeoPoint(121.4105, 31.2105)
    in_d04 = GeoPoint(121.4905, 31.2105)
    """In district D04, where a routing rule sends exposed garbage to urban management."""
    outside = GeoPoint(116.40, 39.90)
    """Far outside the test city."""


# How to reach each state from a fresh report: the commands in order (names of `Workflow`).
PATHS: dict[str, tuple[str, ...]] = {
    "reported": (),
    "registered": ("register",),
    "rejected": ("reject",),
    "dispatched": ("register", "dispatch"),
    "extension-requested": ("register", "dispatch", "request_extension"),
    "returned": ("register", "dispatch", "return_to_centre"),
    "suspended": ("register", "dispatch", "suspend"),
    "suspension-requested": ("register", "dispatch", "request_suspension"),
    "handled": ("register", "dispatch", "handle"),
    "verified": ("register", "dispatch", "handle", "verify"),
    "closed": ("register", "dispatch", "handle", "verify", "close_case"),
}


class Workflow:
    """Drives grid cases through the application with sensible defaults: a water manhole
    cover in D01, handled by the water company; every argument can be overridden."""

    PATHS = PATHS

    def __init__(self, app: GridCases, clock: FixedClock, cast: Cast) -> None:
        self.app = app
        self.clock = clock
        self.cast = cast

    # --- commands with defaults ---------------------------------------------------------

    def run(self, command: type[Command], actor: Actor, *, at: datetime | None = None,
            command_id: str | None = None, batch: CommandBatch[Any] | None = None,
            seen_versions: Mapping[UUID, int] | None = None, **fields: Any) -> UUID:
        """Build `command` from `fields` and run it as `actor` (staged in `batch`, on the
        versions seen, if given): the subject's id."""
        context = CommandContext(actor=actor, at=at, command_id=command_id, batch=batch,
                                 seen_versions=seen_versions or {})
        return self.app.handle(command(**fields), context).subject

    def report(self, **kw: Any) -> UUID:
        args: dict[str, Any] = {
            "source": "inspector", "category": "C0101", "location": Places.in_d01,
            "description": "manhole cover missing on the pavement", "actor": self.cast.inspector,
        }
        return self.run(ReportCase, **{**args, **kw})

    def register(self, case_id: UUID, **kw: Any) -> UUID:
        return self.run(RegisterCase, case_id=case_id, **{"actor": self.cast.dispatcher, **kw})

    def reject(self, case_id: UUID, **kw: Any) -> UUID:
        args = {"actor": self.cast.dispatcher, "reason": "not-city-management"}
        return self.run(RejectCase, case_id=case_id, **{**args, **kw})

    def dispatch(self, case_id: UUID, **kw: Any) -> UUID:
        return self.run(DispatchCase, case_id=case_id, **{"actor": self.cast.dispatcher, **kw})

    def return_to_centre(self, case_id: UUID, **kw: Any) -> UUID:
        args = {"actor": self.cast.water, "reason": "the cover belongs to the sewer network",
                "suggested_department": "sanitation"}
        return self.run(ReturnCaseToCentre, case_id=case_id, **{**args, **kw})

    def request_extension(self, case_id: UUID, **kw: Any) -> UUID:
        if "requested_deadline" not in kw:
            deadline = self.case(case_id).handling_deadline
            kw["requested_deadline"] = (deadline or self.clock()) + timedelta(days=3)
        args = {"actor": self.cast.water, "reason": "a new cover must be cast"}
        return self.run(RequestCaseExtension, case_id=case_id, **{**args, **kw})

    def approve_extension(self, case_id: UUID, **kw: Any) -> UUID:
        return self.run(DecideCaseExtension, case_id=case_id,
                        **{"approve": True, "actor": self.cast.dispatcher, **kw})

    def refuse_extension(self, case_id: UUID, **kw: Any) -> UUID:
        args = {"approve": False, "actor": self.cast.dispatcher,
                "reason": "a temporary cover will do"}
        return self.run(DecideCaseExtension, case_id=case_id, **{**args, **kw})

    def accept_return(self, case_id: UUID, **kw: Any) -> UUID:
        args = {"accept": True, "actor": self.cast.dispatcher,
                "reason": "the asset register names sanitation"}
        return self.run(ReviewCaseReturn, case_id=case_id, **{**args, **kw})

    def reject_return(self, case_id: UUID, **kw: Any) -> UUID:
        args = {"accept": False, "actor": self.cast.dispatcher,
                "reason": "the asset register names the water company"}
        return self.run(ReviewCaseReturn, case_id=case_id, **{**args, **kw})

    def suspend(self, case_id: UUID, **kw: Any) -> UUID:
        """The centre suspends the case itself."""
        args = {"actor": self.cast.dispatcher, "reason": "the road must be closed first"}
        return self.run(SuspendCase, case_id=case_id, **{**args, **kw})

    def request_suspension(self, case_id: UUID, **kw: Any) -> UUID:
        args = {"actor": self.cast.water, "reason": "the road must be closed first"}
        return self.run(RequestCaseSuspension, case_id=case_id, **{**args, **kw})

    def approve_suspension(self, case_id: UUID, **kw: Any) -> UUID:
        return self.run(DecideCaseSuspension, case_id=case_id,
                        **{"approve": True, "actor": self.cast.dispatcher, **kw})

    def refuse_suspension(self, case_id: UUID, **kw: Any) -> UUID:
        args = {"approve": False, "actor": self.cast.dispatcher,
                "reason": "work around the traffic instead"}
        return self.run(DecideCaseSuspension, case_id=case_id, **{**args, **kw})

    def resume(self, case_id: UUID, **kw: Any) -> UUID:
        return self.run(ResumeCase, case_id=case_id, **{"actor": self.cast.water, **kw})

    def handle(self, case_id: UUID, **kw: Any) -> UUID:
        args = {"actor": self.cast.water, "result": "new cover fitted",
                "evidence": ["photo://after-1.jpg"]}
        return self.run(HandleCase, case_id=case_id, **{**args, **kw})

    def verify(self, case_id: UUID, **kw: Any) -> UUID:
        return self.run(VerifyCase, case_id=case_id,
                        **{"fixed": True, "actor": self.cast.inspector, **kw})

    def order_rework(self, case_id: UUID, **kw: Any) -> UUID:
        args = {"fixed": False, "actor": self.cast.inspector, "note": "the cover still rocks"}
        return self.run(VerifyCase, case_id=case_id, **{**args, **kw})

    def close_case(self, case_id: UUID, **kw: Any) -> UUID:
        return self.run(CloseCase, case_id=case_id, **{"actor": self.cast.dispatcher, **kw})

    # --- paths and observations ---------------------------------------------------------

    def to(self, state: str, *, pace: timedelta = timedelta(minutes=10), **report: Any) -> UUID:
        """Report a new case and take it to `state` along `PATHS`, `pace` between steps."""
        case_id = self.report(**report)
        for step in PATHS[state]:
            self.clock.advance(pace)
            getattr(self, step)(case_id)
        return case_id

    def case(self, case_id: UUID) -> GridCase:
        return self.app.case(case_id)

    def version(self, case_id: UUID) -> int:
        return self.app.repository.get(case_id).version

    def stored_case_events(self) -> list[str]:
        """Topics of every grid-case event stored, in order (receipts left out)."""
        notifications = self.app.recorder.select_notifications(start=None, limit=100_000)
        return [n.topic for n in notifications if "GridCase" in n.topic]


# --- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def catalogue() -> Catalogue:
    """The built-in catalogue, loaded once: it is immutable."""
    return Catalogue.load()


@pytest.fixture(scope="session")
def fixed_clock() -> Callable[[datetime], FixedClock]:
    """A factory of clocks that stand still (`fixed_clock(START)`)."""
    return FixedClock


@pytest.fixture
def clock(fixed_clock: Callable[[datetime], FixedClock]) -> FixedClock:
    return fixed_clock(START)


@pytest.fixture(scope="session")
def locator() -> BoxGridLocator:
    return BoxGridLocator()


@pytest.fixture
def open_reports() -> InMemoryOpenReports:
    return InMemoryOpenReports()


@pytest.fixture(scope="session")
def cast() -> Cast:
    return Cast()


@pytest.fixture(scope="session")
def places() -> Places:
    return Places()


@pytest.fixture(scope="session")
def make_gridcases(catalogue: Catalogue, locator: BoxGridLocator) -> Callable[..., GridCases]:
    """A factory of in-memory grid-case applications (session-scoped, so property tests can
    build a fresh application per example)."""

    def make(clock: FixedClock, *, open_reports: InMemoryOpenReports | None = None,
             env: dict[str, str] | None = None,
             duplicate_policy: DuplicatePolicy | None = None) -> GridCases:
        return GridCases(env if env is not None else POPO, catalogue=catalogue,
                         locator=locator, open_reports=open_reports or InMemoryOpenReports(),
                         duplicate_policy=duplicate_policy, clock=clock)

    return make


@pytest.fixture
def gridcases(make_gridcases: Callable[..., GridCases], clock: FixedClock,
              open_reports: InMemoryOpenReports) -> Iterator[GridCases]:
    app = make_gridcases(clock, open_reports=open_reports)
    yield app
    app.close()


@pytest.fixture(scope="session")
def make_workflow(make_gridcases: Callable[..., GridCases], cast: Cast,
                  fixed_clock: Callable[[datetime], FixedClock]) -> Callable[..., Workflow]:
    """A factory of workflows, each over a fresh application and clock (for property tests)."""

    def make(start: datetime = START, **app_kw: Any) -> Workflow:
        clock = fixed_clock(start)
        return Workflow(make_gridcases(clock, **app_kw), clock, cast)

    return make


@pytest.fixture
def workflow(gridcases: GridCases, clock: FixedClock, cast: Cast) -> Workflow:
    return Workflow(gridcases, clock, cast)
