"""The statistics are exact: on a simulated demo day they equal figures folded directly from
the recorded events (an oracle that shares no code with the read models), and a projection
stopped mid-stream and restarted, or fed a batch twice, gives the same figures as a clean
build — on the embedded SQLite read store and on PostgreSQL, which also agree with each
other."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from cityops.bootstrap import PROJECTION_NAME, CitySystem
from cityops.domain.accounts.commands import AddUser
from cityops.domain.commands import CommandContext
from cityops.domain.gridcases.case import CaseStatus, GridCase
from cityops.domain.hotline.ticket import TicketStatus
from cityops.projections.generations import (
    ActiveGenerationStore,
    GenerationStorage,
    PostgresGenerations,
    ReadModelGenerations,
    SqliteGenerations,
)
from cityops.projections.response_figures import read_response_time_figures
from cityops.projections.statistics import (
    DISPATCH_TALLY,
    GRID_CASE_TALLY,
    TICKET_TALLY,
    AreaLevel,
    CityStatistics,
)
from cityops.settings import Settings
from cityops.simulator import build_demo
from cityops.storage import set_position

DEMO_DATE = date(2026, 11, 24)


@pytest.fixture(scope="module")
def demo_day(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CitySystem]:
    """A simulated day of the demo city (seed 11), recorded in SQLite event stores."""
    directory = tmp_path_factory.mktemp("statistics-day")
    system, demo = build_demo(Settings(data_dir=directory, run_projections=False), seed=11,
                              speed=0.0, today=DEMO_DATE)
    demo.run_until(demo.start + timedelta(hours=15))
    system.catch_up()
    yield system
    system.close()


def moments(system: CitySystem) -> list[datetime]:
    """The end of the day, and two days later (when every open case is overdue)."""
    now = system.grid_cases.clock()
    return [now, now + timedelta(days=2)]


# --- the oracle: figures folded from the events themselves ---------------------------------


@dataclass
class FoldedDispatch:
    department: str
    dispatched_at: datetime
    deadline: datetime
    stage: str = "with-department"
    handled_at: datetime | None = None
    on_time: bool | None = None
    reworks: int = 0
    verified: bool = False
    """Checked on site at least once (found fixed, or sent back as rework)."""


@dataclass
class FoldedCase:
    grid_cell: str | None = None
    dispatches: list[FoldedDispatch] = field(default_factory=list)


def fold_cases(system: CitySystem) -> dict[UUID, FoldedCase]:
    """Every grid case's dispatches, folded from its recorded events in log order."""
    app = system.grid_cases
    folded: dict[UUID, FoldedCase] = {}
    start = 0
    while notifications := app.recorder.select_notifications(start=start, limit=500,
                                                             inclusive_of_start=False):
        start = notifications[-1].id
        for notification in notifications:
            event: Any = app.mapper.to_domain_event(notification)
            if not type(event).__qualname__.startswith("GridCase."):
                continue
            case = folded.setdefault(event.originator_id, FoldedCase())
            name = type(event).__name__
            current = case.dispatches[-1] if case.dispatches else None
            if name == "Reported":
                case.grid_cell = event.grid_cell
            elif name == "Dispatched":
                case.dispatches.append(FoldedDispatch(event.department, event.timestamp,
                                                      event.deadline))
            elif current is None:
                continue
            elif name == "ReturnedToCentre":
                current.stage = "returned"
            elif name == "ReturnRejected":
                # Back with the same dispatch, on the deadline it had.
                current.stage, current.deadline = "with-department", event.deadline
            elif name in ("ExtensionApproved", "Resumed"):
                current.deadline = event.deadline
                if name == "Resumed":
                    current.stage = "with-department"
            elif name in ("Suspended", "SuspensionApproved"):
                current.stage = "suspended"
            elif name == "Handled":
                current.stage, current.handled_at = "handled", event.timestamp
                current.on_time = event.timestamp <= current.deadline
            elif name == "Verified":
                current.verified = True
            elif name == "ReworkOrdered":
                current.reworks += 1
                current.verified = True
                current.stage, current.deadline = "with-department", event.deadline
                current.handled_at = current.on_time = None
            elif name == "Closed":
                current.stage = "closed"
    return folded


def oracle_departments(folded: dict[UUID, FoldedCase], now: datetime) -> dict[str, Any]:
    figures: dict[str, dict[str, Any]] = {}
    for case in folded.values():
        for d in case.dispatches:
            f = figures.setdefault(d.department, {
                "dispatched": 0, "with_department": 0, "handled": 0, "closed": 0,
                "on_time": 0, "handled_late": 0, "overdue_open": 0, "reworked": 0,
                "reworks": 0, "returned": 0, "verified": 0, "handling": []})
            done = d.stage in ("handled", "closed")
            f["dispatched"] += 1
            f["with_department"] += d.stage in ("with-department", "suspended")
            f["handled"] += done
            f["closed"] += d.stage == "closed"
            f["on_time"] += bool(done and d.on_time)
            f["handled_late"] += bool(done and not d.on_time)
            f["overdue_open"] += d.stage == "with-department" and d.deadline < now
            f["reworked"] += d.reworks > 0
            f["reworks"] += d.reworks
            f["returned"] += d.stage == "returned"
            f["verified"] += d.verified
            if done and d.handled_at is not None:
                f["handling"].append((d.handled_at - d.dispatched_at).total_seconds())
    for f in figures.values():
        handling = f.pop("handling")
        f["average_handling_seconds"] = sum(handling) / len(handling) if handling else None
    return figures


def oracle_cells(system: CitySystem, folded: dict[UUID, FoldedCase],
                 now: datetime) -> dict[str, dict[str, int]]:
    """Per cell: reported, open, closed and lights, from each case's state and the domain's
    own light function."""
    cells: dict[str, dict[str, int]] = {}
    for case_id, case in folded.items():
        aggregate: GridCase = system.grid_cases.case(case_id)
        if case.grid_cell is None:
            continue
        c = cells.setdefault(case.grid_cell, {"reported": 0, "open": 0, "closed": 0,
                                              "green": 0, "yellow": 0, "red": 0})
        c["reported"] += 1
        c["open"] += aggregate.is_open
        c["closed"] += aggregate.status.value == "closed"
        shown = system.grid_cases.light(aggregate, now)
        if shown is not None:
            c[shown.value] += 1
    return cells


@dataclass
class FoldedReturn:
    department: str
    outcome: str | None = None


def fold_returns(application: Any, prefix: str) -> dict[UUID, list[FoldedReturn]]:
    """Every return of every case (or ticket) with the centre's review, folded from the
    recorded events: the returning department is the one the item was last dispatched (or
    assigned) to."""
    returns: dict[UUID, list[FoldedReturn]] = {}
    holder: dict[UUID, str] = {}
    start = 0
    while notifications := application.recorder.select_notifications(
            start=start, limit=500, inclusive_of_start=False):
        start = notifications[-1].id
        for notification in notifications:
            event: Any = application.mapper.to_domain_event(notification)
            if not type(event).__qualname__.startswith(prefix):
                continue
            name, item = type(event).__name__, event.originator_id
            if name in ("Dispatched", "Assigned"):
                holder[item] = event.department
            elif name == "ReturnedToCentre":
                returns.setdefault(item, []).append(FoldedReturn(holder[item]))
            elif name == "ReturnAccepted":
                returns[item][-1].outcome = "accepted"
            elif name == "ReturnRejected":
                returns[item][-1].outcome = "rejected"
    return returns


def oracle_returns(returns: dict[UUID, list[FoldedReturn]],
                   still_returned: Callable[[UUID], bool]) -> dict[str, dict[str, int]]:
    """Per department: returns made, awaiting review (the item's latest return while it is
    still returned), accepted, rejected, lapsed (left unreviewed)."""
    figures: dict[str, dict[str, int]] = {}
    for item, made in returns.items():
        for index, folded in enumerate(made):
            f = figures.setdefault(folded.department, {
                "returns_made": 0, "returns_awaiting_review": 0, "returns_accepted": 0,
                "returns_rejected": 0, "returns_lapsed": 0})
            f["returns_made"] += 1
            if folded.outcome is not None:
                f[f"returns_{folded.outcome}"] += 1
            elif index == len(made) - 1 and still_returned(item):
                f["returns_awaiting_review"] += 1
            else:
                f["returns_lapsed"] += 1
    return figures


RETURN_KEYS = ("returns_made", "returns_awaiting_review", "returns_accepted",
               "returns_rejected", "returns_lapsed")


def department_figures(statistics: CityStatistics, now: datetime) -> dict[str, Any]:
    keys = ("dispatched", "with_department", "handled", "closed", "on_time", "handled_late",
            "overdue_open", "reworked", "reworks", "returned", "verified")
    result = {}
    for row in statistics.departments(now):
        figures = row.as_dict()
        result[row.department] = {k: figures[k] for k in keys}
        result[row.department]["average_handling_seconds"] = figures[
            "average_handling_seconds"]
    return result


def everything(statistics: CityStatistics, now: datetime) -> dict[str, Any]:
    """Every figure the statistics give, as plain data (to compare two builds)."""
    return {
        "key": statistics.key_figures(now).as_dict(),
        "areas": {level.value: [a.as_dict() for a in statistics.areas(level, now)]
                  for level in AreaLevel},
        "departments": [d.as_dict() for d in statistics.departments(now)],
        "hotline": {str(k): v.as_dict()
                    for k, v in statistics.hotline_departments(now).items()},
        "response_times": read_response_time_figures(statistics.store).as_dict(),
    }


def tallied_figures(statistics: CityStatistics, now: datetime) -> dict[str, Any]:
    """The figures the tallies answer (the whole city, its cells and districts,
    departments, the hotline)."""
    return {
        "city": statistics.city(now).as_dict(),
        "cells": {str(k): v.as_dict() for k, v in statistics.cells(now).items()},
        "districts": [a.as_dict() for a in statistics.areas(AreaLevel.DISTRICT, now)],
        "departments": [d.as_dict() for d in statistics.departments(now)],
        "hotline": {str(k): v.as_dict()
                    for k, v in statistics.hotline_departments(now).items()},
    }


def turning_moments(store: Any, count: int = 6) -> list[datetime]:
    """Instants where a tallied figure changes: some of the open cases' yellow and red
    instants, dispatch deadlines and reply deadlines, each with the microseconds either side
    (the rows of now's hour are counted from the table, the others from the tally)."""
    rng = random.Random(3)
    found: list[datetime] = []
    with store.transaction() as txn:
        for sql in ("SELECT yellow_at FROM rm_grid_cases WHERE is_open AND yellow_at IS NOT NULL",
                    "SELECT red_at FROM rm_grid_cases WHERE is_open AND red_at IS NOT NULL",
                    "SELECT deadline FROM rm_case_dispatches WHERE stage = 'with-department'",
                    "SELECT reply_deadline FROM rm_tickets WHERE is_open AND replied_at IS NULL "
                    "AND reply_deadline IS NOT NULL"):
            txn.execute(sql)
            values = sorted({row[0] for row in txn.fetchall()})
            assert values, sql
            for text in rng.sample(values, min(count, len(values))):
                moment = datetime.fromisoformat(text)
                found += [moment - timedelta(microseconds=1), moment,
                          moment + timedelta(microseconds=1)]
    return found


def tally_rows(store: Any) -> dict[str, set[tuple[Any, ...]]]:
    with store.transaction() as txn:
        rows = {}
        for tally in (GRID_CASE_TALLY, DISPATCH_TALLY, TICKET_TALLY):
            txn.execute(f"SELECT * FROM {tally.table}")
            rows[tally.table] = {tuple(row) for row in txn.fetchall()}
    return rows


def assert_tallies_are_the_counts(statistics: CityStatistics) -> None:
    """The tallied figures equal those counted from every row, at the instants where they
    turn; and each tally holds what counting its whole table again gives."""
    counted = CityStatistics(statistics.store, tallied=False)
    moments = turning_moments(statistics.store)
    for now in moments:
        assert tallied_figures(statistics, now) == tallied_figures(counted, now), now
    # Counted again, a tally holds the same rows.
    kept = tally_rows(statistics.store)
    assert all(kept.values())
    with statistics.store.transaction() as txn:
        for tally in (GRID_CASE_TALLY, DISPATCH_TALLY, TICKET_TALLY):
            tally.recount(txn)
    assert tally_rows(statistics.store) == kept


@dataclass
class FoldedAssignment:
    """One resource serving one incident, as the brief defines it: from its dispatch until
    it returns, becomes available or goes out of service (or is sent elsewhere)."""

    incident_id: UUID
    dispatched: datetime
    en_route: datetime | None = None
    on_scene: datetime | None = None
    ended: datetime | None = None


@dataclass
class FoldedResource:
    kind: str
    call_sign: str
    assignments: list[FoldedAssignment] = field(default_factory=list)


def _events(app: Any) -> Iterator[Any]:
    start = 0
    while notifications := app.recorder.select_notifications(start=start, limit=500,
                                                             inclusive_of_start=False):
        start = notifications[-1].id
        for notification in notifications:
            yield app.mapper.to_domain_event(notification)


def fold_resources(system: CitySystem) -> dict[UUID, FoldedResource]:
    """Every resource's assignments, folded from its recorded status events in log order
    (a status is at the time it was reported)."""
    folded: dict[UUID, FoldedResource] = {}
    for event in _events(system.resources):
        if type(event).__name__ == "Registered":
            folded[event.originator_id] = FoldedResource(event.kind, event.call_sign)
            continue
        status = getattr(event, "status", None)
        if status is None:
            continue
        resource = folded[event.originator_id]
        at = event.reported_at
        current = resource.assignments[-1] if resource.assignments else None
        if current is not None and current.ended is not None:
            current = None
        if status == "dispatched":
            if current is not None:
                current.ended = at
            resource.assignments.append(FoldedAssignment(event.incident_id, at))
        elif current is None:
            continue
        elif status == "en-route" and current.en_route is None:
            current.en_route = at
        elif status == "on-scene" and current.on_scene is None:
            current.on_scene = at
        elif status in ("returning", "available", "out-of-service"):
            current.ended = at
    return folded


def fold_incident_reports(system: CitySystem) -> dict[UUID, datetime]:
    """When each incident not dismissed was reported."""
    reported: dict[UUID, datetime] = {}
    dismissed: set[UUID] = set()
    for event in _events(system.incidents):
        name = type(event).__qualname__
        if name == "Incident.Reported":
            reported[event.originator_id] = event.timestamp
        elif name == "Incident.Dismissed":
            dismissed.add(event.originator_id)
    return {k: v for k, v in reported.items() if k not in dismissed}


def _spans(reported: datetime, a: FoldedAssignment) -> dict[str, float | None]:
    def span(start: datetime | None, end: datetime | None) -> float | None:
        return (end - start).total_seconds() if start and end else None

    def from_report(end: datetime | None) -> float | None:
        seconds = span(reported, end)
        return seconds if seconds is not None and seconds >= 0 else None

    return {"queue": from_report(a.dispatched), "turnout": span(a.dispatched, a.en_route),
            "travel": span(a.en_route, a.on_scene), "response": from_report(a.on_scene),
            "on_scene": span(a.on_scene, a.ended)}


def _summary(values: list[float | None]) -> dict[str, Any]:
    measured = sorted(v for v in values if v is not None)
    if not measured:
        return {"count": 0, "mean_s": None, "p50_s": None, "p90_s": None}

    def rank(p: int) -> float:
        return measured[math.ceil(p / 100 * len(measured)) - 1]

    return {"count": len(measured), "mean_s": sum(measured) / len(measured),
            "p50_s": rank(50), "p90_s": rank(90)}


def oracle_response_times(system: CitySystem) -> dict[str, dict[str, Any]]:
    """Per kind, per resource (call sign) and per incident: assignments and the summary of
    each interval."""
    reports = fold_incident_reports(system)
    groups: dict[str, dict[str, list[dict[str, float | None]]]] = {
        "kind": {}, "resource": {}, "incident": {}}
    for resource in fold_resources(system).values():
        for a in resource.assignments:
            if a.incident_id not in reports:
                continue
            spans = _spans(reports[a.incident_id], a)
            for group, key in (("kind", resource.kind), ("resource", resource.call_sign),
                               ("incident", str(a.incident_id))):
                groups[group].setdefault(key, []).append(spans)
    return {group: {key: {"assignments": len(rows),
                          **{i: _summary([r[i] for r in rows]) for i in INTERVALS}}
                    for key, rows in members.items()}
            for group, members in groups.items()}


INTERVALS = ("queue", "turnout", "travel", "response", "on_scene")


# --- the tests -----------------------------------------------------------------------------


def test_the_day_has_something_to_count(demo_day: CitySystem) -> None:
    figures = demo_day.statistics.city(moments(demo_day)[0])
    assert figures.reported > 50
    assert figures.dispatches.dispatched > 50
    assert figures.dispatches.returned > 0
    assert figures.dispatches.reworked > 0
    assert figures.dispatches.handled > 0 and figures.closed > 0


def test_department_figures_equal_those_folded_from_the_events(demo_day: CitySystem) -> None:
    folded = fold_cases(demo_day)
    for now in moments(demo_day):
        expected = oracle_departments(folded, now)
        actual = department_figures(demo_day.statistics, now)
        assert actual.keys() == expected.keys()
        for department, figures in expected.items():
            got = actual[department]
            assert {k: v for k, v in got.items() if k != "average_handling_seconds"} == {
                k: v for k, v in figures.items() if k != "average_handling_seconds"
            }, department
            assert got["average_handling_seconds"] == pytest.approx(
                figures["average_handling_seconds"]), department


def test_response_times_equal_those_folded_from_the_events(demo_day: CitySystem) -> None:
    """Issue 9, item 7: queue, turnout, travel, response and on-scene times per kind,
    resource and incident, checked against the resources' and incidents' own events."""
    expected = oracle_response_times(demo_day)
    figures = read_response_time_figures(demo_day.statistics.store).as_dict()
    keys = {"kind": "kind", "resource": "call_sign", "incident": "incident_id"}
    actual = {group: {row[key]: {k: row[k] for k in ("assignments", *INTERVALS)}
                      for row in figures[f"by_{group}"]}
              for group, key in keys.items()}
    assert expected["kind"], "the day dispatched no resource"
    assert sum(r["travel"]["count"] for r in expected["kind"].values()) > 0
    for group in keys:
        assert actual[group].keys() == expected[group].keys(), group
        for key, want in expected[group].items():
            got = actual[group][key]
            assert got["assignments"] == want["assignments"], (group, key)
            for interval in INTERVALS:
                assert {k: v for k, v in got[interval].items() if k != "mean_s"} == {
                    k: v for k, v in want[interval].items() if k != "mean_s"
                }, (group, key, interval)
                assert got[interval]["mean_s"] == pytest.approx(want[interval]["mean_s"]), (
                    group, key, interval)


def test_response_times_over_http_are_the_figures(demo_day: CitySystem) -> None:
    """GET /statistics/response-times answers the figures (validated by its response model)
    to the city-wide roles, and refuses a department user."""
    from fastapi.testclient import TestClient

    from cityops.command_center.app import create_app
    from cityops.domain.actors import Actor, Role

    admin = Actor("admin-stats", Role.ADMIN)
    for name, role, department in (("leader-stats", Role.LEADER, None),
                                   ("fire-stats", Role.DEPARTMENT_USER, "fire")):
        if demo_day.accounts.find_user(name) is None:
            demo_day.accounts.handle(
                AddUser(username=name, role=role, department=department,
                        password="statistics-password-1"),
                CommandContext(actor=admin))
    with TestClient(create_app(demo_day, manage_lifecycle=False)) as client:
        def headers(name: str) -> dict[str, str]:
            token = client.app.state.auth.issue_token(name)  # type: ignore[attr-defined]
            return {"Authorization": f"Bearer {token}"}

        answer = client.get("/statistics/response-times", headers=headers("leader-stats"))
        assert answer.status_code == 200, answer.text
        body = answer.json()
        expected = read_response_time_figures(demo_day.statistics.store).as_dict()
        assert [r["kind"] for r in body["by_kind"]] == [r["kind"] for r in expected["by_kind"]]
        assert body["by_kind"] == expected["by_kind"]
        assert len(body["by_incident"]) == len(expected["by_incident"]) > 0
        refused = client.get("/statistics/response-times", headers=headers("fire-stats"))
        assert refused.status_code == 403, refused.text


def test_the_rework_rate_is_over_the_verified_dispatches(demo_day: CitySystem) -> None:
    """Issue 9, item 7: rework is a failed verification on site; the rate was reworked /
    dispatched, counting work nobody had verified yet."""
    folded = fold_cases(demo_day)
    now = moments(demo_day)[0]
    expected = oracle_departments(folded, now)
    for row in demo_day.statistics.departments(now):
        want = expected[row.department]
        rate = want["reworked"] / want["verified"] if want["verified"] else None
        assert row.dispatches.rework_rate == rate, row.department
    assert any(f["verified"] < f["dispatched"] for f in expected.values())


def test_tallied_figures_equal_those_counted_from_every_row(demo_day: CitySystem) -> None:
    """Issue 14: the key figures come from tallies kept with the rows; at the instants
    where lights turn and deadlines pass (the hour being asked is counted from the rows,
    the others from the tally) they equal the figures counted from every row."""
    assert_tallies_are_the_counts(demo_day.statistics)


def test_cell_figures_and_lights_equal_the_domain_s(demo_day: CitySystem) -> None:
    folded = fold_cases(demo_day)
    for now in moments(demo_day):
        expected = oracle_cells(demo_day, folded, now)
        actual = {
            a.code: {"reported": a.figures.reported, "open": a.figures.open,
                     "closed": a.figures.closed, **a.figures.lights.as_dict()}
            for a in demo_day.statistics.areas(AreaLevel.CELL, now)
        }
        assert actual == expected


def test_areas_sum_their_cells(demo_day: CitySystem) -> None:
    now = moments(demo_day)[0]
    cells = demo_day.statistics.areas(AreaLevel.CELL, now)
    for level in (AreaLevel.COMMUNITY, AreaLevel.STREET, AreaLevel.DISTRICT):
        for area in demo_day.statistics.areas(level, now):
            inside = [c for c in cells if c.code.startswith(area.code + "-")]
            assert area.figures.reported == sum(c.figures.reported for c in inside)
            assert area.figures.dispatches.dispatched == sum(
                c.figures.dispatches.dispatched for c in inside)
    district = cells[0].code.split("-")[0]
    within = demo_day.statistics.areas(AreaLevel.CELL, now, within=district)
    assert within and all(c.code.startswith(district + "-") for c in within)


def test_returns_and_their_reviews_equal_those_folded_from_the_events(
        demo_day: CitySystem) -> None:
    now = moments(demo_day)[0]
    cases = fold_returns(demo_day.grid_cases, "GridCase.")
    expected = oracle_returns(
        cases, lambda i: demo_day.grid_cases.case(i).status is CaseStatus.RETURNED)
    actual = {row.department: {k: v for k, v in row.as_dict().items() if k in RETURN_KEYS}
              for row in demo_day.statistics.departments(now) if row.returns.returns_made}
    assert actual == expected
    # The day has returns accepted and disputed, and the figures say so.
    assert sum(f["returns_accepted"] for f in expected.values()) > 0
    assert sum(f["returns_rejected"] for f in expected.values()) > 0

    tickets = fold_returns(demo_day.hotline, "HotlineTicket.")
    expected = oracle_returns(
        tickets, lambda i: demo_day.hotline.ticket(i).status is TicketStatus.RETURNED)
    actual = {str(department): {k: v for k, v in figures.as_dict().items() if k in RETURN_KEYS}
              for department, figures in demo_day.statistics.hotline_departments(now).items()
              if figures.returns.returns_made}
    assert actual == expected
    assert sum(f["returns_made"] for f in expected.values()) > 0


class RestartContract:
    """Restart and redelivery, written once and run on each read store."""

    @pytest.fixture
    def storage(self) -> GenerationStorage:
        raise NotImplementedError

    def generations(self, storage: GenerationStorage, system: CitySystem) -> ReadModelGenerations:
        """A projection process over `storage` following the demo day's event stores."""
        generations = ReadModelGenerations(storage, system.generations.tables, PROJECTION_NAME)
        generations.start(system.applications)
        return generations

    def test_a_restart_mid_stream_gives_the_figures_of_a_clean_build(
        self, demo_day: CitySystem, storage: GenerationStorage
    ) -> None:
        rng = random.Random(5)
        # A process that stops after a few batches of odd sizes, as if killed.
        first = self.generations(storage, demo_day)
        for follower in first.followers():
            for _ in range(rng.randint(1, 4)):
                follower.process_batch(size=rng.randint(3, 97))
        stopped_at = [f.position() for f in first.followers()]
        first.close()
        assert 0 < sum(stopped_at) < sum(f.head() for f in demo_day.followers)
        restarted = self.generations(storage, demo_day)
        assert [f.position() for f in restarted.followers()] == stopped_at
        restarted.active().catch_up()
        statistics = CityStatistics(ActiveGenerationStore(restarted))
        try:
            for now in moments(demo_day):
                assert everything(statistics, now) == everything(demo_day.statistics, now)
            assert_tallies_are_the_counts(statistics)
        finally:
            restarted.close()

    def test_a_batch_applied_twice_counts_once(
        self, demo_day: CitySystem, storage: GenerationStorage
    ) -> None:
        generations = self.generations(storage, demo_day)
        try:
            generations.active().catch_up()
            statistics = CityStatistics(ActiveGenerationStore(generations))
            now = moments(demo_day)[0]
            before = everything(statistics, now)
            # Put every position back by a few hundred notifications and follow again: the
            # rows are states, so writing them again changes nothing.
            with generations.store().transaction() as txn:
                for follower in generations.followers():
                    set_position(txn, PROJECTION_NAME, follower.application_name,
                                 max(0, follower.head() - 300))
            for follower in generations.followers():
                follower.reset()
            generations.active().catch_up()
            assert everything(statistics, now) == before
            assert everything(statistics, now) == everything(demo_day.statistics, now)
            assert_tallies_are_the_counts(statistics)
        finally:
            generations.close()


class TestSqlite(RestartContract):
    @pytest.fixture
    def storage(self, tmp_path: Path) -> GenerationStorage:
        return SqliteGenerations(tmp_path / "readmodels")


@pytest.mark.postgres
class TestPostgres(RestartContract):
    """The same events projected into PostgreSQL: the SQL of every figure runs there too,
    and its answers equal the embedded store's."""

    @pytest.fixture
    def storage(self, fresh_database: str) -> GenerationStorage:
        return PostgresGenerations(fresh_database, None, 2)
