"""The one clock: the only place on the server that reads the wall clock.

Time is data. Whatever stamps or compares a moment of the city (events, deadlines and
supervision lights, subscriptions, photo uploads, the `timeStamp` of a feature collection,
statistics "now", the time the pages count down from) reads the clock that the composition
root (`cityops.bootstrap.build_system`) gives the system: `system_clock` in production, a
simulated clock in the demo or a drill, which runs on its own time.

A few things keep real time on purpose, whatever the city's clock says, and take it from
here too (`system_clock`, `real_seconds`), never from `datetime.now()` or `time.time()`:
login tokens and identity administration, webhook signatures (a receiver checks them against
its own clock), retry and lease timers, presence and change-log retention, operators' logs
(dead letters, ingest counters, rebuild stamps). `tests/unit/test_one_clock.py` lists them,
each with its reason, and fails when a new read of the wall clock appears elsewhere.
Durations measured inside one process use `time.monotonic()`, which is not a wall clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]
"""A clock: the current moment, timezone-aware."""

SecondsClock = Callable[[], float]
"""A clock in Unix seconds (schedulers and wire formats that count seconds)."""


def system_clock() -> datetime:
    """Real time, UTC."""
    return datetime.now(UTC)


def real_seconds() -> float:
    """Real time in Unix seconds."""
    return time.time()


def rate_of(clock: Clock) -> float:
    """How many seconds of `clock` pass in one real second: 1 for real time, the speed of a
    simulated clock (0 for one that only moves when told)."""
    return float(getattr(clock, "speed", 1.0))


def seconds_of(clock: Clock) -> SecondsClock:
    """`clock` read as Unix seconds."""
    return lambda: clock().timestamp()
