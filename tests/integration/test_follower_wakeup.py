"""On PostgreSQL the projection followers of one process are woken by the events another
process records (the event store's NOTIFY), not left waiting for their next poll; the
listener reconnects after its connection is dropped and wakes them again.

The followers poll every 30 s here: a change seen within a few seconds was woken."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from cityops.bootstrap import CitySystem, build_system
from cityops.domain.actors import Actor, Role
from cityops.domain.commands import CommandContext
from cityops.domain.geometry import GeoPoint
from cityops.domain.gridcases.commands import ReportCase
from cityops.settings import Settings

POLL_S = 30.0
WOKEN_WITHIN_S = 5.0
"""Well before the poll interval, with room for a busy test machine."""
NOT_WOKEN_FOR_S = 2.0
INSPECTOR = Actor("insp-wakeup", Role.INSPECTOR)


def eventually(check: Callable[[], bool], within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


@pytest.fixture(params=[None, "wakeup_drill"], ids=["public", "own-schema"])
def systems(request: pytest.FixtureRequest, fresh_database: str, tmp_path: Path,
            demo_city: Any) -> Iterator[tuple[CitySystem, CitySystem]]:
    """A projection process (following, polling every 30 s) and an API process (recording
    only) on the same database and schema."""
    schema = request.param

    def settings(name: str, *, follows: bool) -> Settings:
        return Settings(data_dir=tmp_path / name, database_url=fresh_database,
                        database_schema=schema, database_pool_size=2,
                        projection_poll_interval_s=POLL_S, run_projections=follows)

    following = build_system(settings("projections", follows=True), city=demo_city)
    recording = build_system(settings("api", follows=False), city=demo_city)
    try:
        following.start_projections()
        assert following.wakeup is not None
        assert following.wakeup.listening.wait(10), "the listener did not start listening"
        yield following, recording
    finally:
        recording.close()
        following.close()


def report(system: CitySystem, description: str) -> str:
    return str(system.grid_cases.handle(
        ReportCase(source="inspector", category="E0101", description=description,
                   location=GeoPoint(118.80, 32.05)),
        CommandContext(actor=INSPECTOR)).subject)


def shown(system: CitySystem, case: str) -> bool:
    return system.read_models.get("rm_grid_cases", case) is not None


def test_an_event_recorded_by_another_process_wakes_the_followers(
        systems: tuple[CitySystem, CitySystem]) -> None:
    following, recording = systems
    case = report(recording, "Woken")
    assert eventually(lambda: shown(following, case), WOKEN_WITHIN_S), \
        f"the followers did not see a case recorded elsewhere within {WOKEN_WITHIN_S} s"

    # Without the listener the same thing waits for the poll: the wake was its doing.
    assert following.wakeup is not None
    following.wakeup.stop()
    following.wakeup = None
    # A wake already given (rounds are spaced by the minimum round interval) runs first.
    time.sleep(max(0.2, 5 * following.settings.projection_min_round_interval_s))
    unwoken = report(recording, "Not woken")
    time.sleep(NOT_WOKEN_FOR_S)
    assert not shown(following, unwoken)
    assert following.thread is not None
    following.thread.wake()  # what the poll would do 30 s later
    assert eventually(lambda: shown(following, unwoken), WOKEN_WITHIN_S)


def test_the_listener_reconnects_after_its_connection_is_dropped(
        systems: tuple[CitySystem, CitySystem], fresh_database: str,
        caplog: pytest.LogCaptureFixture) -> None:
    following, recording = systems
    wakeup = following.wakeup
    assert wakeup is not None and wakeup.backend_pid is not None
    dropped = wakeup.backend_pid
    caplog.set_level(logging.INFO, logger="cityops.storage")
    with psycopg.connect(fresh_database, autocommit=True) as admin:
        row = admin.execute("SELECT pg_terminate_backend(%s)", (dropped,)).fetchone()
        assert row == (True,)
    # It says so, reconnects (1 s later) and listens on a new connection.
    assert eventually(lambda: wakeup.connections == 2 and wakeup.listening.is_set(),
                      WOKEN_WITHIN_S + 5)
    assert wakeup.backend_pid not in (None, dropped)
    messages = [r.getMessage() for r in caplog.records]
    assert any("lost the LISTEN connection" in m for m in messages), messages
    assert any("listening again" in m for m in messages), messages

    # Anything recorded from now on wakes the followers as before.
    time.sleep(0.2)  # let the reconnection's own catch-up round end
    case = report(recording, "Woken after reconnecting")
    assert eventually(lambda: shown(following, case), WOKEN_WITHIN_S), \
        "the followers were not woken after the listener reconnected"


def test_a_report_wakes_the_followers_of_its_own_log_only(
        systems: tuple[CitySystem, CitySystem]) -> None:
    """Every follower and process asked its store for nothing new in every round before:
    ten of them, under a stream of reports, for the one or two with work."""
    following, recording = systems
    thread = following.thread
    assert thread is not None
    every = len(following.following())
    time.sleep(0.5)  # the listener's first round, of every follower, is over
    rounds, runs = thread.rounds, thread.runs
    case = report(recording, "Its own log")
    assert eventually(lambda: shown(following, case), WOKEN_WITHIN_S)
    time.sleep(0.3)
    rounds, runs = thread.rounds - rounds, thread.runs - runs
    assert rounds >= 1
    # The grid cases' follower and the process following their log, their downstream's
    # follower once that process moved on, and a second round of those with work.
    assert runs <= 3 * rounds < every * rounds, (runs, rounds, every)
