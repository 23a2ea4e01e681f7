"""The sane ranges of the times, durations and numbers that commands take, in one place.

Everything a command records is later projected, compared and computed with (supervision
lights, working-time arithmetic, statistics, maps): a value that Python or a database cannot
compute with (year 9999 plus a time zone, 1e300 minutes, an infinite reading) would be stored
for ever and break every reader of it. So a command refuses, with an `InvalidValue` naming the
field, any instant outside 1970..2199 or without a time zone, any deadline more than five
years ahead, any duration out of its bounds and any number that is not finite or is beyond
a trillion in size.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import TypeVar
from uuid import UUID

from cityops.domain.errors import InvalidValue

EARLIEST_INSTANT = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_INSTANT = datetime(2200, 1, 1, tzinfo=UTC)
"""Instants are refused from this one on."""
MAX_DEADLINE_AHEAD = timedelta(days=5 * 366)
"""A deadline (extension, rectification) at most this far after the command: the working-time
arithmetic of the supervision lights searches ten years ahead at most."""
MAX_DURATION = timedelta(days=10 * 366)
MAX_MAGNITUDE = 1e12
"""Numbers (readings, thresholds, radii) are at most this large in size."""
MAX_COUNT = 1_000_000_000
"""Counts (of people, of items) are at most this."""

E = TypeVar("E", bound=Enum)


def parse_enum(enum: type[E], value: object, what: str, plural: str | None = None) -> E:
    """`value` as a member of `enum` (a member, or its value as given in a command, a
    message or a file); anything else is an `InvalidValue` naming `what` was expected and
    listing the known values (`plural`: how to say `what`s, e.g. "urgencies")."""
    try:
        return enum(value)
    except ValueError:
        known = ", ".join(str(member.value) for member in enum)
        raise InvalidValue(f"unknown {what} {value!r}; {plural or what + 's'} are "
                           f"{known}") from None


def checked_instant(label: str, value: object) -> datetime:
    """A date-time with a time zone, between 1970 and 2199 (as given, not converted)."""
    if not isinstance(value, datetime):
        raise InvalidValue(f"{label} must be a date-time, got {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidValue(f"{label} has no time zone: {value.isoformat()}")
    # Aware datetimes compare without conversion, so even year 1 or 9999 is safe here.
    if not EARLIEST_INSTANT <= value < LATEST_INSTANT:
        raise InvalidValue(
            f"{label} {value.isoformat()} is outside the years {EARLIEST_INSTANT.year} to "
            f"{LATEST_INSTANT.year - 1}")
    return value


def parse_instant(label: str, text: str) -> datetime:
    """An RFC 3339 date-time given as text (`Z` or an offset required), as a sane instant:
    how query parameters and other text inputs become instants."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00")
                                        .replace("z", "+00:00"))
    except ValueError:
        raise InvalidValue(f"{label} {text!r} is not an RFC 3339 date-time "
                           "(e.g. 2026-11-24T08:00:00Z)") from None
    if moment.tzinfo is None:
        raise InvalidValue(f"{label} {text!r} has no time zone: add Z or an offset")
    return checked_instant(label, moment)


def checked_deadline(label: str, value: object, at: datetime) -> datetime:
    """A deadline set at `at`: a sane instant at most `MAX_DEADLINE_AHEAD` after it."""
    deadline = checked_instant(label, value)
    if deadline - at > MAX_DEADLINE_AHEAD:
        raise InvalidValue(
            f"{label} {deadline.isoformat()} is more than {MAX_DEADLINE_AHEAD.days // 366} "
            f"years after {at.isoformat()}")
    return deadline


def checked_duration(label: str, value: object, *, minimum: timedelta = timedelta(),
                     maximum: timedelta = MAX_DURATION) -> timedelta:
    """A duration within `minimum`..`maximum` (both included)."""
    if not isinstance(value, timedelta):
        raise InvalidValue(f"{label} must be a duration, got {value!r}")
    if not minimum <= value <= maximum:
        raise InvalidValue(f"{label} {value} is outside {minimum}..{maximum}")
    return value


def duration_from_minutes(label: str, minutes: object, *, maximum: timedelta = MAX_DURATION,
                          above_zero: bool = True) -> timedelta:
    """A duration given as a number of minutes (a JSON number), checked before it becomes a
    `timedelta` (which overflows from about 1.5e12 minutes)."""
    amount = checked_number(label, minutes, minimum=0.0,
                            maximum=maximum.total_seconds() / 60)
    if above_zero and amount <= 0:
        raise InvalidValue(f"{label} must be more than zero, got {amount:g}")
    return timedelta(minutes=amount)


def checked_count(label: str, value: object) -> int:
    """A whole number from 0 to `MAX_COUNT` (not a boolean)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_COUNT:
        raise InvalidValue(f"{label} must be a count from 0 to {MAX_COUNT:,}, got {value!r}")
    return value


def checked_number(label: str, value: object, *, minimum: float = -MAX_MAGNITUDE,
                   maximum: float = MAX_MAGNITUDE) -> float:
    """A finite number (not a boolean) within `minimum`..`maximum`, as a float."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidValue(f"{label} must be a number, got {value!r}")
    try:
        number = float(value)
    except OverflowError:  # an int too large for a float
        raise InvalidValue(f"{label} is too large") from None
    if not math.isfinite(number):
        raise InvalidValue(f"{label} must be finite, got {value!r}")
    if not minimum <= number <= maximum:
        raise InvalidValue(f"{label} {number:g} is outside {minimum:g}..{maximum:g}")
    return number


def checked_id(label: str, value: object) -> UUID:
    """An identifier: a UUID, not its text."""
    if not isinstance(value, UUID):
        raise InvalidValue(f"{label} must be a UUID, got {value!r}")
    return value
