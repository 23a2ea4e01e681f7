"""The ticket follow-up on each storage back end (issue 9, item 5): a hotline ticket that
became a grid case gets its reply when the case is closed, with nobody repeating a call; the
follow-up resumes from its tracked position after a crash, and never applies a notification
twice, even when two processes follow at once. Two `CitySystem`s on the same stores stand for
two processes (or one restarted)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from cityops.bootstrap import CitySystem, build_system
from cityops.domain.actors import Actor, Role
from cityops.domain.geometry import GeoPoint
from cityops.domain.gridcases.case import GridCase
from cityops.domain.hotline.ticket import TicketStatus
from cityops.settings import Settings

OPERATOR = Actor("op-1", Role.HOTLINE_OPERATOR)
DISPATCHER = Actor("disp-1", Role.DISPATCHER)
ROADS = Actor("roads-1", Role.DEPARTMENT_USER, "roads")
SystemFactory = Callable[..., CitySystem]


class InjectedCrash(Exception):
    """Stands for the process dying inside the follow-up's transaction."""


def points(system: CitySystem, count: int) -> list[GeoPoint]:
    cells = system.city.map.cells
    step = max(1, len(cells) // count)
    found = []
    for index in range(0, step * count, step):
        centre = cells.geometry.iloc[index].representative_point()
        found.append(GeoPoint(lon=centre.x, lat=centre.y))
    return found


def ticket_with_closed_case(system: CitySystem, point: GeoPoint, n: int) -> tuple[UUID, UUID]:
    """A call that became a grid case, taken to closed by the people of each step."""
    ticket_id = system.hotline.receive(
        channel="phone", ticket_type="complaint", topic="street-lighting",
        description=f"Street lamp {n} is out", caller_phone="13800138000", location=point,
        actor=OPERATOR)
    case_id = system.operations.ticket_to_case(ticket_id, actor=OPERATOR)
    cases = system.grid_cases
    cases.register(case_id, actor=DISPATCHER)
    cases.dispatch(case_id, department="roads", actor=DISPATCHER)
    cases.handle(case_id, result=f"lamp {n} replaced", actor=ROADS)
    inspector = system.city.map.locate(point).inspector_id
    cases.verify(case_id, fixed=True, actor=Actor(inspector, Role.INSPECTOR))
    cases.close_case(case_id, actor=DISPATCHER)
    return ticket_id, case_id


def ticket_events(system: CitySystem, ticket_id: UUID) -> list[str]:
    return [type(e).__name__ for e in system.hotline.events.get(ticket_id)]


def notification_of(system: CitySystem, case_id: UUID, event: str) -> int:
    """The position of a case's event in the grid-case log."""
    found = [n for n in system.grid_cases.recorder.select_notifications(start=1, limit=10_000)
             if n.originator_id == case_id and n.topic.endswith(f"GridCase.{event}")]
    return found[0].id


def crash_at(system: CitySystem, notification_id: int) -> None:
    """Make the follow-up's transaction for `notification_id` fail after its ticket events
    are written and before it commits (the tracking record is written in it)."""
    recorder: Any = system.hotline.recorder
    original = recorder._insert_tracking

    def insert_tracking(*args: Any, **kwargs: Any) -> Any:
        tracking = kwargs.get("tracking", args[-1] if args else None)
        if tracking is not None and tracking.notification_id == notification_id:
            raise InjectedCrash(f"killed while recording notification {notification_id}")
        return original(*args, **kwargs)

    recorder._insert_tracking = insert_tracking


class FollowUpContract:
    """What the follow-up must do on every back end."""

    @pytest.fixture
    def make_system(self) -> Iterator[SystemFactory]:
        raise NotImplementedError

    def test_a_ticket_is_replied_when_its_case_closes_without_anyone_repeating_a_call(
            self, make_system: SystemFactory) -> None:
        system = make_system()
        ticket_id, case_id = ticket_with_closed_case(system, points(system, 1)[0], 1)
        assert system.hotline.ticket(ticket_id).status is TicketStatus.TRANSFERRED
        system.catch_up()
        ticket = system.hotline.ticket(ticket_id)
        assert ticket.status is TicketStatus.REPLIED
        assert ticket.reply is not None and "lamp 1 replaced" in ticket.reply
        # The read model shows it in the same catch-up (the follow-up runs first).
        row = system.read_models.get("rm_tickets", str(ticket_id))
        assert row is not None and row["status"] == "replied"
        assert row["linked_work"][0]["id"] == str(case_id)
        assert system.ticket_follow_up.lag() == {"gridcases": 0, "incidents": 0}

    def test_the_follow_up_resumes_after_a_crash_and_applies_each_notification_once(
            self, make_system: SystemFactory) -> None:
        writer = make_system()
        first, second = points(writer, 2)
        ticket_1, _ = ticket_with_closed_case(writer, first, 1)
        ticket_2, case_2 = ticket_with_closed_case(writer, second, 2)

        crashing = make_system()
        crash_at(crashing, notification_of(writer, case_2, "Closed"))
        with pytest.raises(InjectedCrash):
            crashing.ticket_follow_up.catch_up()
        # What was recorded before the crash is kept with its position (the second case's
        # handling was the last); nothing of the transaction that failed is.
        stopped_at = crashing.ticket_follow_up.position("gridcases")
        assert stopped_at == notification_of(writer, case_2, "Handled")
        assert writer.hotline.ticket(ticket_1).status is TicketStatus.REPLIED
        assert writer.hotline.ticket(ticket_2).status is TicketStatus.TRANSFERRED
        assert ticket_events(writer, ticket_2)[-1] == "LinkedWorkProgressed"

        restarted = make_system()
        restarted.catch_up()
        follow_up = restarted.ticket_follow_up
        assert follow_up.position("gridcases") == follow_up.head("gridcases")
        for ticket_id in (ticket_1, ticket_2):
            events = ticket_events(restarted, ticket_id)
            assert events.count("LinkedWorkFinished") == 1
            assert events.count("RepliedFromLinkedWork") == 1
            assert events.count("LinkedWorkProgressed") == 1  # the case was handled
            assert restarted.hotline.ticket(ticket_id).status is TicketStatus.REPLIED

        # Every notification offered again (a second process, a position lost): refused.
        versions = {t: restarted.hotline.ticket(t).version for t in (ticket_1, ticket_2)}
        again = make_system().ticket_follow_up
        for notification in writer.grid_cases.recorder.select_notifications(start=1,
                                                                             limit=10_000):
            event = writer.grid_cases.mapper.to_domain_event(notification)
            if isinstance(event, GridCase.Handled | GridCase.Closed):
                assert again._apply("gridcases", notification.id,
                                    again._case_steps(event)) is False
        assert {t: restarted.hotline.ticket(t).version for t in versions} == versions

    def test_two_processes_following_at_once_apply_each_notification_once(
            self, make_system: SystemFactory) -> None:
        writer = make_system()
        tickets = [ticket_with_closed_case(writer, point, n)[0]
                   for n, point in enumerate(points(writer, 3))]
        followers = [make_system().ticket_follow_up for _ in range(2)]
        errors: list[BaseException] = []

        def follow(follow_up: Any) -> None:
            try:
                follow_up.catch_up()
            except BaseException as error:  # reported below, not lost in the thread
                errors.append(error)

        threads = [threading.Thread(target=follow, args=(f,)) for f in followers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert errors == []
        for ticket_id in tickets:
            events = ticket_events(writer, ticket_id)
            assert events.count("RepliedFromLinkedWork") == 1
            assert events.count("LinkedWorkProgressed") == 1

    def test_the_projection_thread_runs_the_follow_up(self, make_system: SystemFactory) -> None:
        system = make_system(run_projections=True)
        system.start_projections()
        ticket_id, _ = ticket_with_closed_case(system, points(system, 1)[0], 1)
        deadline = time.monotonic() + 30
        row = None
        while time.monotonic() < deadline:
            row = system.read_models.get("rm_tickets", str(ticket_id))
            if row is not None and row["status"] == "replied":
                break
            time.sleep(0.1)
        assert row is not None and row["status"] == "replied"


class TestSqlite(FollowUpContract):
    @pytest.fixture
    def make_system(self, tmp_path: Path, demo_city: Any) -> Iterator[SystemFactory]:
        systems: list[CitySystem] = []

        def make(run_projections: bool = False) -> CitySystem:
            system = build_system(Settings(data_dir=tmp_path / "store",
                                           run_projections=run_projections), city=demo_city)
            systems.append(system)
            return system

        yield make
        for system in systems:
            system.close()


@pytest.mark.postgres
class TestPostgres(FollowUpContract):
    @pytest.fixture
    def make_system(self, fresh_database: str, demo_city: Any) -> Iterator[SystemFactory]:
        systems: list[CitySystem] = []

        def make(run_projections: bool = False) -> CitySystem:
            system = build_system(
                Settings(database_url=fresh_database, database_pool_size=2,
                         run_projections=run_projections), city=demo_city)
            systems.append(system)
            return system

        yield make
        for system in systems:
            system.close()
