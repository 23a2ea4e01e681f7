"""Electronic supervision of deadlines: the green / yellow / red light of an open case is a
pure function of the case's current stage deadline and the time now, so it changes as time
passes, not only when an event arrives.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from cityops.domain.calendar import BusinessCalendar
from cityops.domain.catalogue import LimitUnit, TimeLimit


class Light(StrEnum):
    GREEN = "green"
    """On time."""
    YELLOW = "yellow"
    """Most of the time limit is used."""
    RED = "red"
    """Overdue."""


@dataclass(frozen=True)
class StageClock:
    """The running deadline of a case's current stage, as recorded in its events."""

    started_at: datetime
    deadline: datetime
    unit: LimitUnit
    paused: timedelta = timedelta()
    """Counted time spent suspended (excluded from the time used)."""
    paused_since: datetime | None = None
    """Set while the case is suspended: the clock stands still from then on."""

    def used(self, now: datetime, calendar: BusinessCalendar) -> timedelta:
        limit = TimeLimit(amount=1, unit=self.unit)
        until = self.paused_since if self.paused_since is not None else now
        return limit.elapsed(self.started_at, until, calendar) - self.paused

    def allowed(self, calendar: BusinessCalendar) -> timedelta:
        limit = TimeLimit(amount=1, unit=self.unit)
        return limit.elapsed(self.started_at, self.deadline, calendar) - self.paused


def light(clock: StageClock, now: datetime, calendar: BusinessCalendar,
          yellow_fraction: float) -> Light:
    """Green while less than `yellow_fraction` of the allowed time is used, red once the
    deadline has passed (counted time, so a suspended case does not turn red)."""
    allowed = clock.allowed(calendar)
    used = clock.used(now, calendar)
    if clock.paused_since is None and now > clock.deadline:
        return Light.RED
    if allowed <= timedelta():
        return Light.RED if used > timedelta() else Light.YELLOW
    if used > allowed:
        return Light.RED
    if used >= allowed * yellow_fraction:
        return Light.YELLOW
    return Light.GREEN


def turning_points(clock: StageClock, calendar: BusinessCalendar,
                   yellow_fraction: float) -> tuple[datetime, datetime] | None:
    """When a running clock turns yellow and when it turns red (after the deadline); None
    while the clock stands still. Lets a read model find a light with a time comparison."""
    if clock.paused_since is not None:
        return None
    target = clock.allowed(calendar) * yellow_fraction + clock.paused
    if clock.unit is LimitUnit.HOURS:
        yellow_at = clock.started_at + target
    else:
        yellow_at = calendar.add_working_time(clock.started_at, max(target, timedelta()))
    return min(yellow_at, clock.deadline), clock.deadline


def light_at(points: tuple[datetime, datetime], now: datetime) -> Light:
    """The light from precomputed turning points (same answer as `light`)."""
    yellow_at, red_at = points
    if now > red_at:
        return Light.RED
    if now >= yellow_at:
        return Light.YELLOW
    return Light.GREEN


def next_change(clock: StageClock, now: datetime, calendar: BusinessCalendar,
                yellow_fraction: float) -> datetime | None:
    """When the light will next change if nothing happens (for timers that push changes)."""
    points = turning_points(clock, calendar, yellow_fraction)
    if points is None:
        return None
    yellow_at, red_at = points
    if now < yellow_at:
        return yellow_at
    if now <= red_at:
        return red_at + timedelta(microseconds=1)
    return None
