"""The business calendar: handling time limits are counted in working time, so deadlines
skip nights, weekends and public holidays, and count make-up working days (all data).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from cityops.domain.errors import CatalogueError, InvalidValue

MAX_SEARCH_DAYS = 3660


@dataclass(frozen=True)
class WorkingPeriod:
    """One span of a working day, in local time (for example 08:30-12:00)."""

    start: time
    end: time

    @property
    def duration(self) -> timedelta:
        return datetime.combine(date.min, self.end) - datetime.combine(date.min, self.start)


@dataclass(frozen=True)
class BusinessCalendar:
    """Working periods, weekend days, public holidays and make-up working days of the city."""

    timezone: ZoneInfo
    periods: tuple[WorkingPeriod, ...]
    weekend: frozenset[int]
    """ISO weekday numbers (6 = Saturday, 7 = Sunday)."""
    holidays: frozenset[date]
    extra_working_days: frozenset[date]
    """Weekend days that are working days (make-up days around public holidays)."""

    def __post_init__(self) -> None:
        if not self.periods:
            raise CatalogueError("calendar: at least one working period is needed")
        for earlier, later in zip(self.periods, self.periods[1:], strict=False):
            if later.start < earlier.end:
                raise CatalogueError("calendar: working periods overlap or are out of order")
        for period in self.periods:
            if period.end <= period.start:
                raise CatalogueError(f"calendar: period {period.start}-{period.end} is empty")
        clash = self.holidays & self.extra_working_days
        if clash:
            raise CatalogueError(
                f"calendar: days both holiday and working day: {sorted(clash)}"
            )

    @property
    def working_day(self) -> timedelta:
        """The working time of one full working day."""
        return sum((p.duration for p in self.periods), timedelta())

    def is_working_day(self, day: date) -> bool:
        if day in self.extra_working_days:
            return True
        if day in self.holidays:
            return False
        return day.isoweekday() not in self.weekend

    def _spans(self, day: date) -> list[tuple[datetime, datetime]]:
        if not self.is_working_day(day):
            return []
        return [
            (
                datetime.combine(day, p.start, self.timezone),
                datetime.combine(day, p.end, self.timezone),
            )
            for p in self.periods
        ]

    def add_working_time(self, start: datetime, amount: timedelta) -> datetime:
        """The instant when `amount` of working time has passed after `start`."""
        _require_aware(start)
        if amount < timedelta():
            raise InvalidValue("working time to add must not be negative")
        remaining = amount
        local = start.astimezone(self.timezone)
        day = local.date()
        for _ in range(MAX_SEARCH_DAYS):
            for span_start, span_end in self._spans(day):
                begin = max(span_start, local)
                if begin >= span_end:
                    continue
                available = span_end - begin
                if remaining <= available:
                    return (begin + remaining).astimezone(UTC)
                remaining -= available
            day += timedelta(days=1)
        raise CatalogueError("calendar: no working time found within ten years")

    def working_time_between(self, start: datetime, end: datetime) -> timedelta:
        """Working time elapsed from `start` to `end` (zero if `end` is not after `start`)."""
        _require_aware(start)
        _require_aware(end)
        if end <= start:
            return timedelta()
        local_start = start.astimezone(self.timezone)
        local_end = end.astimezone(self.timezone)
        total = timedelta()
        day = local_start.date()
        while day <= local_end.date():
            for span_start, span_end in self._spans(day):
                begin = max(span_start, local_start)
                finish = min(span_end, local_end)
                if finish > begin:
                    total += finish - begin
            day += timedelta(days=1)
        return total


def _require_aware(moment: datetime) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidValue(f"time {moment.isoformat()} has no time zone")
