"""Electronic supervision: an open case shows green (on time), yellow (80 % of its time used)
or red (overdue), and the light changes as time passes, not only when an event arrives.
Limits in clock hours run round the clock; limits in working time follow the calendar.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cityops.domain.catalogue import LimitUnit
from cityops.domain.supervision import (
    Light,
    StageClock,
    light,
    light_at,
    next_change,
    turning_points,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
TICK = timedelta(microseconds=1)
YELLOW = 0.8


def local(month: int, day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, second, tzinfo=SHANGHAI)


@pytest.fixture(scope="module")
def calendar(catalogue):
    return catalogue.calendar


def test_the_catalogue_turns_cases_yellow_at_eighty_percent(catalogue):
    assert catalogue.yellow_fraction == YELLOW


def lights(clock: StageClock, calendar, *moments: datetime) -> list[Light]:
    return [light(clock, m, calendar, YELLOW) for m in moments]


# --- clock hours --------------------------------------------------------------------------


def test_a_two_hour_limit_turns_yellow_after_96_minutes_and_red_after_two_hours(calendar):
    clock = StageClock(started_at=local(3, 10, 9), deadline=local(3, 10, 11),
                       unit=LimitUnit.HOURS)
    assert lights(clock, calendar, local(3, 10, 9), local(3, 10, 10, 36) - TICK) == [
        Light.GREEN, Light.GREEN]
    assert lights(clock, calendar, local(3, 10, 10, 36), local(3, 10, 11)) == [
        Light.YELLOW, Light.YELLOW]
    assert lights(clock, calendar, local(3, 10, 11) + TICK, local(3, 11, 11)) == [
        Light.RED, Light.RED]
    assert turning_points(clock, calendar, YELLOW) == (local(3, 10, 10, 36), local(3, 10, 11))


def test_clock_hours_run_through_the_night(calendar):
    clock = StageClock(started_at=local(3, 13, 17), deadline=local(3, 13, 19),
                       unit=LimitUnit.HOURS)
    assert lights(clock, calendar, local(3, 13, 18, 35), local(3, 13, 18, 36),
                  local(3, 13, 19, 1)) == [Light.GREEN, Light.YELLOW, Light.RED]


# --- working time -------------------------------------------------------------------------


def test_two_working_hours_across_lunch(calendar):
    # Tuesday 11:00 + 2 working hours = 14:30; 80 % (1h36) is used at 14:06.
    clock = StageClock(started_at=local(3, 10, 11), deadline=local(3, 10, 14, 30),
                       unit=LimitUnit.WORKING_HOURS)
    assert lights(clock, calendar, local(3, 10, 12, 30), local(3, 10, 13, 30),
                  local(3, 10, 14, 6) - TICK) == [Light.GREEN] * 3
    assert lights(clock, calendar, local(3, 10, 14, 6), local(3, 10, 14, 30)) == [
        Light.YELLOW] * 2
    assert light(clock, local(3, 10, 14, 30) + TICK, calendar, YELLOW) is Light.RED
    assert turning_points(clock, calendar, YELLOW) == (local(3, 10, 14, 6),
                                                       local(3, 10, 14, 30))


def test_a_working_day_over_the_weekend_stays_green_until_monday(calendar):
    # Friday 16:30 + 1 working day = Monday 16:30; yellow after 6 working hours: Monday 15:00.
    clock = StageClock(started_at=local(3, 13, 16, 30), deadline=local(3, 16, 16, 30),
                       unit=LimitUnit.WORKING_DAYS)
    weekend = [local(3, 13, 20), local(3, 14, 12), local(3, 15, 23), local(3, 16, 14, 59)]
    assert lights(clock, calendar, *weekend) == [Light.GREEN] * 4
    assert lights(clock, calendar, local(3, 16, 15), local(3, 16, 16, 31)) == [
        Light.YELLOW, Light.RED]


def test_a_clock_at_a_span_end_turns_yellow_at_noon_not_after_lunch(calendar):
    # 4h22m30s of working time from Tuesday 08:30: 80 % (3h30) is used exactly at 12:00.
    clock = StageClock(started_at=local(3, 10, 8, 30), deadline=local(3, 10, 14, 22, 30),
                       unit=LimitUnit.WORKING_HOURS)
    assert turning_points(clock, calendar, YELLOW)[0] == local(3, 10, 12)
    assert lights(clock, calendar, local(3, 10, 12) - TICK, local(3, 10, 12),
                  local(3, 10, 13)) == [Light.GREEN, Light.YELLOW, Light.YELLOW]


# --- suspended clocks ---------------------------------------------------------------------


def test_a_paused_clock_stands_still_even_past_its_deadline(calendar):
    clock = StageClock(started_at=local(3, 10, 9), deadline=local(3, 10, 11),
                       unit=LimitUnit.HOURS, paused_since=local(3, 10, 10))
    assert lights(clock, calendar, local(3, 10, 10), local(3, 10, 12), local(3, 20, 12)) == [
        Light.GREEN] * 3
    assert turning_points(clock, calendar, YELLOW) is None
    assert next_change(clock, local(3, 10, 12), calendar, YELLOW) is None


def test_a_clock_paused_when_overdue_stays_red(calendar):
    clock = StageClock(started_at=local(3, 10, 9), deadline=local(3, 10, 11),
                       unit=LimitUnit.HOURS, paused_since=local(3, 10, 12))
    assert lights(clock, calendar, local(3, 10, 12), local(3, 10, 23)) == [Light.RED] * 2


def test_a_resumed_clock_does_not_count_the_suspended_time(calendar):
    # 2 clock hours from 09:00, suspended 10:00-22:00: due 23:00, 1h used at 22:00.
    clock = StageClock(started_at=local(3, 10, 9), deadline=local(3, 10, 23),
                       unit=LimitUnit.HOURS, paused=timedelta(hours=12))
    assert turning_points(clock, calendar, YELLOW) == (local(3, 10, 22, 36), local(3, 10, 23))
    assert lights(clock, calendar, local(3, 10, 22, 35), local(3, 10, 22, 36)) == [
        Light.GREEN, Light.YELLOW]


# --- next change --------------------------------------------------------------------------


def test_next_change_is_when_the_light_actually_changes(calendar):
    clock = StageClock(started_at=local(3, 10, 11), deadline=local(3, 10, 14, 30),
                       unit=LimitUnit.WORKING_HOURS)
    to_yellow = next_change(clock, local(3, 10, 11), calendar, YELLOW)
    assert to_yellow == local(3, 10, 14, 6)
    assert light(clock, to_yellow - TICK, calendar, YELLOW) is Light.GREEN
    assert light(clock, to_yellow, calendar, YELLOW) is Light.YELLOW

    to_red = next_change(clock, to_yellow, calendar, YELLOW)
    assert to_red == local(3, 10, 14, 30) + TICK
    assert light(clock, to_red - TICK, calendar, YELLOW) is Light.YELLOW
    assert light(clock, to_red, calendar, YELLOW) is Light.RED

    assert next_change(clock, to_red, calendar, YELLOW) is None


def test_the_light_of_a_case_changes_with_time_alone(workflow, clock):
    case_id = workflow.to("dispatched")  # Tuesday 09:20, due Wednesday 09:50 (8 hours)
    case = workflow.case(case_id)
    seen = []
    # 40 minutes used, 6h10 (77 %), 6h40 (83 %), overdue.
    for moment in (local(3, 10, 10), local(3, 10, 17), local(3, 10, 17, 30), local(3, 11, 10)):
        clock.set(moment)
        seen.append(workflow.app.light(case))
    assert seen == [Light.GREEN, Light.GREEN, Light.YELLOW, Light.RED]
    assert workflow.case(case_id).version == case.version


# --- properties ---------------------------------------------------------------------------

starts = st.datetimes(min_value=datetime(2025, 12, 20), max_value=datetime(2027, 12, 20),
                      timezones=st.sampled_from([UTC, SHANGHAI]))
amounts = st.integers(min_value=1, max_value=60 * 60 * 40).map(lambda s: timedelta(seconds=s))
fractions = st.sampled_from([YELLOW, 0.5, 0.9, 0.99]) | st.floats(0.01, 0.99)


@st.composite
def running_clocks(draw: st.DrawFn, calendar) -> StageClock:
    """A running stage clock as the workflow makes them: an allowed amount from its start,
    plus any time spent suspended before it resumed."""
    started = draw(starts)
    unit = draw(st.sampled_from(list(LimitUnit)))
    allowed = draw(amounts)
    paused = draw(st.sampled_from([timedelta()]) | amounts)
    if unit is LimitUnit.HOURS:
        deadline = started + allowed + paused
    else:
        deadline = calendar.add_working_time(started, allowed + paused)
    return StageClock(started_at=started, deadline=deadline, unit=unit, paused=paused)


@st.composite
def clock_and_moment(draw: st.DrawFn, calendar) -> tuple[StageClock, datetime]:
    clock = draw(running_clocks(calendar))
    offset = draw(st.integers(min_value=-2 * 86_400_000_000,
                              max_value=int((clock.deadline - clock.started_at)
                                            / TICK) + 5 * 86_400_000_000))
    return clock, clock.started_at + timedelta(microseconds=offset)


@settings(max_examples=300, derandomize=True, deadline=None)
@given(data=st.data(), fraction=fractions)
def test_the_precomputed_turning_points_give_the_same_light(calendar, data, fraction):
    clock, now = data.draw(clock_and_moment(calendar))
    points = turning_points(clock, calendar, fraction)
    assert points is not None
    assert light_at(points, now) == light(clock, now, calendar, fraction)


@settings(max_examples=200, derandomize=True, deadline=None)
@given(data=st.data(), fraction=fractions)
def test_next_change_is_the_next_instant_the_light_differs(calendar, data, fraction):
    clock, now = data.draw(clock_and_moment(calendar))
    current = light(clock, now, calendar, fraction)
    change = next_change(clock, now, calendar, fraction)
    if change is None:
        assert current is Light.RED
        assert light(clock, now + timedelta(days=365), calendar, fraction) is Light.RED
        return
    assert change > now
    assert light(clock, change, calendar, fraction) != current
    assert light(clock, change - TICK, calendar, fraction) == current
