"""The business calendar: handling time is counted in working time, so a deadline skips the
lunch break, the night, the weekend and public holidays, and counts make-up working days
(the built-in calendar: Asia/Shanghai, 08:30-12:00 and 13:30-17:30, 2026 holidays).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cityops.domain.calendar import BusinessCalendar, WorkingPeriod
from cityops.domain.catalogue import LimitUnit, TimeLimit
from cityops.domain.errors import CatalogueError, InvalidValue

SHANGHAI = ZoneInfo("Asia/Shanghai")


def local(month: int, day: int, hour: int, minute: int = 0, year: int = 2026) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI)


HOUR = timedelta(hours=1)


@pytest.fixture(scope="module")
def calendar(catalogue) -> BusinessCalendar:
    return catalogue.calendar


def test_a_working_day_is_seven_and_a_half_hours(calendar):
    assert calendar.working_day == timedelta(hours=7, minutes=30)
    assert calendar.timezone == SHANGHAI


# (what it shows, start, working time to add, expected deadline)
DEADLINES = [
    ("within the morning", local(3, 10, 9), 2 * HOUR, local(3, 10, 11)),
    ("up to the end of the morning", local(3, 10, 10), 2 * HOUR, local(3, 10, 12)),
    ("across the lunch break", local(3, 10, 11), 2 * HOUR, local(3, 10, 14, 30)),
    ("from inside the lunch break", local(3, 10, 12, 30), HOUR, local(3, 10, 14, 30)),
    ("across the evening", local(3, 10, 16, 30), 2 * HOUR, local(3, 11, 9, 30)),
    ("from the evening", local(3, 10, 20), HOUR, local(3, 11, 9, 30)),
    ("from before opening", local(3, 10, 6), HOUR, local(3, 10, 9, 30)),
    ("across the weekend", local(3, 13, 16, 30), 2 * HOUR, local(3, 16, 9, 30)),
    ("from a Sunday", local(3, 15, 10), HOUR, local(3, 16, 9, 30)),
    # Qingming: Saturday 4 to Monday 6 April 2026 are holidays.
    ("across a public holiday", local(4, 3, 16, 30), 2 * HOUR, local(4, 7, 9, 30)),
    ("from a public holiday", local(4, 6, 10), HOUR, local(4, 7, 9, 30)),
    # National Day: 1-7 October are holidays, Saturday 10 October is a make-up working day.
    ("onto a make-up Saturday", local(10, 9, 16, 30), 2 * HOUR, local(10, 10, 9, 30)),
    ("across the National Day week", local(9, 30, 17), 2 * HOUR, local(10, 8, 10)),
    # Spring Festival: Saturday 14 February is worked, 15-23 February are holidays.
    ("across the Spring Festival", local(2, 14, 16, 30), 2 * HOUR, local(2, 24, 9, 30)),
    # Sunday 4 January is a make-up working day after the New Year holidays.
    ("on a make-up Sunday", local(1, 4, 8, 30), 2 * HOUR, local(1, 4, 10, 30)),
    ("zero time in working time", local(3, 10, 10), timedelta(), local(3, 10, 10)),
    ("zero time at night: the next working instant", local(3, 10, 20), timedelta(),
     local(3, 11, 8, 30)),
    ("exactly one working day", local(3, 10, 10), timedelta(hours=7, minutes=30),
     local(3, 11, 10)),
]


@pytest.mark.parametrize(("start", "amount", "deadline"),
                         [pytest.param(s, a, d, id=what) for what, s, a, d in DEADLINES])
def test_add_working_time(calendar, start, amount, deadline):
    assert calendar.add_working_time(start, amount) == deadline
    assert calendar.add_working_time(start.astimezone(UTC), amount) == deadline


@pytest.mark.parametrize(("start", "amount", "deadline"),
                         [pytest.param(s, a, d, id=what) for what, s, a, d in DEADLINES])
def test_working_time_between_counts_it_back(calendar, start, amount, deadline):
    assert calendar.working_time_between(start, deadline) == amount


def test_deadlines_are_given_in_utc(calendar):
    deadline = calendar.add_working_time(local(3, 10, 9), HOUR)
    assert deadline.utcoffset() == timedelta(0)


@pytest.mark.parametrize(("day", "working"), [
    (date(2026, 3, 10), True),  # a Tuesday
    (date(2026, 3, 14), False),  # a Saturday
    (date(2026, 3, 15), False),  # a Sunday
    (date(2026, 10, 1), False),  # National Day, a Thursday
    (date(2026, 10, 10), True),  # make-up Saturday
    (date(2026, 9, 20), True),  # make-up Sunday
    (date(2026, 2, 28), True),  # make-up Saturday
    (date(2026, 5, 5), False),  # Labour Day holidays, a Tuesday
])
def test_working_days(calendar, day, working):
    assert calendar.is_working_day(day) is working


def test_working_time_between_is_zero_backwards_and_over_non_working_time(calendar):
    assert calendar.working_time_between(local(3, 11, 9), local(3, 10, 9)) == timedelta()
    assert calendar.working_time_between(local(3, 10, 12), local(3, 10, 13, 30)) == timedelta()
    assert calendar.working_time_between(local(3, 13, 17, 30), local(3, 16, 8, 30)) == (
        timedelta()
    )
    assert calendar.working_time_between(local(10, 1, 0), local(10, 8, 0)) == timedelta()


def test_a_week_of_working_time(calendar):
    assert calendar.working_time_between(local(3, 9, 0), local(3, 16, 0)) == 5 * (
        calendar.working_day
    )


def test_working_days_limits_count_whole_working_days(calendar):
    two_days = TimeLimit(2, LimitUnit.WORKING_DAYS)
    assert two_days.deadline(local(3, 10, 10), calendar) == local(3, 12, 10)
    # Thursday 10:00 + 2 working days: Friday, then Monday.
    assert two_days.deadline(local(3, 12, 10), calendar) == local(3, 16, 10)
    assert two_days.duration(calendar) == timedelta(hours=15)
    assert two_days.describe() == "2 working days"


def test_clock_hours_limits_ignore_the_calendar(calendar):
    urgent = TimeLimit(2, LimitUnit.HOURS)
    assert urgent.deadline(local(3, 13, 23), calendar) == local(3, 14, 1)
    assert urgent.elapsed(local(3, 13, 23), local(3, 14, 0, 30), calendar) == timedelta(
        hours=1, minutes=30)
    assert urgent.elapsed(local(3, 13, 23), local(3, 13, 22), calendar) == timedelta()
    assert TimeLimit(1.5, LimitUnit.WORKING_HOURS).describe() == "1.5 working hours"


def test_a_time_without_time_zone_is_refused(calendar):
    with pytest.raises(InvalidValue, match="has no time zone"):
        calendar.add_working_time(datetime(2026, 3, 10, 9), HOUR)
    with pytest.raises(InvalidValue, match="has no time zone"):
        calendar.working_time_between(datetime(2026, 3, 10, 9), local(3, 10, 10))
    with pytest.raises(InvalidValue, match="has no time zone"):
        calendar.working_time_between(local(3, 10, 10), datetime(2026, 3, 10, 11))


def test_negative_working_time_is_refused(calendar):
    with pytest.raises(InvalidValue, match="must not be negative"):
        calendar.add_working_time(local(3, 10, 9), -HOUR)


def test_a_calendar_without_working_days_gives_up(calendar):
    never = BusinessCalendar(timezone=SHANGHAI, periods=calendar.periods,
                             weekend=frozenset(range(1, 8)), holidays=frozenset(),
                             extra_working_days=frozenset())
    with pytest.raises(CatalogueError, match="no working time found"):
        never.add_working_time(local(3, 10, 9), HOUR)


NINE_TO_FIVE = (WorkingPeriod(time(9), time(12)), WorkingPeriod(time(13), time(17)))


@pytest.mark.parametrize(("periods", "problem"), [
    ((), "at least one working period"),
    ((WorkingPeriod(time(9), time(13)), WorkingPeriod(time(12), time(17))), "overlap"),
    ((WorkingPeriod(time(13), time(17)), WorkingPeriod(time(9), time(12))), "out of order"),
    ((WorkingPeriod(time(9), time(9)),), "is empty"),
])
def test_a_bad_calendar_is_refused(periods, problem):
    with pytest.raises(CatalogueError, match=problem):
        BusinessCalendar(timezone=SHANGHAI, periods=periods, weekend=frozenset({6, 7}),
                         holidays=frozenset(), extra_working_days=frozenset())


def test_a_day_cannot_be_both_holiday_and_working_day():
    day = date(2026, 10, 10)
    with pytest.raises(CatalogueError, match="both holiday and working day"):
        BusinessCalendar(timezone=SHANGHAI, periods=NINE_TO_FIVE, weekend=frozenset({6, 7}),
                         holidays=frozenset({day}), extra_working_days=frozenset({day}))


# --- properties ---------------------------------------------------------------------------

# Starts from December 2025 to January 2028: every holiday and make-up day of the data file,
# and plain weeks after it.
instants = st.datetimes(
    min_value=datetime(2025, 12, 1), max_value=datetime(2028, 1, 31),
    timezones=st.sampled_from([UTC, SHANGHAI, ZoneInfo("America/New_York")]),
    allow_imaginary=False,
)
working_amounts = st.integers(min_value=0, max_value=20 * 27_000).map(
    lambda s: timedelta(seconds=s)
) | st.integers(min_value=0, max_value=10**11).map(lambda us: timedelta(microseconds=us))


@settings(max_examples=300, derandomize=True, deadline=None)
@given(start=instants, amount=working_amounts)
def test_working_time_between_undoes_add_working_time(calendar, start, amount):
    end = calendar.add_working_time(start, amount)
    assert end >= start
    assert calendar.working_time_between(start, end) == amount
    # And it is the earliest such instant: a moment earlier, less working time has passed.
    if amount > timedelta():
        assert calendar.working_time_between(start, end - timedelta(microseconds=1)) < amount


@settings(max_examples=200, derandomize=True, deadline=None)
@given(a=instants, b=instants, c=instants)
def test_working_time_adds_up_and_never_exceeds_clock_time(calendar, a, b, c):
    first, middle, last = sorted([a, b, c])
    between = calendar.working_time_between
    assert between(first, last) == between(first, middle) + between(middle, last)
    assert between(first, last) <= last - first
