"""The sane ranges of times, durations and numbers (domain/values.py): what every command and
query checks before a value is stored or computed with."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cityops.domain.errors import InvalidValue
from cityops.domain.values import (
    MAX_COUNT,
    checked_count,
    checked_deadline,
    checked_instant,
    checked_number,
    duration_from_minutes,
    parse_instant,
)

NOW = datetime(2026, 3, 10, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize("text", [
    "0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59-23:59", "9999-12-31T23:59:59Z",
    "1969-12-31T23:59:59Z", "2200-01-01T00:00:00Z",
])
def test_instants_outside_1970_to_2199_are_refused_without_overflowing(text: str) -> None:
    with pytest.raises(InvalidValue, match=r"when .* is outside the years 1970 to 2199"):
        parse_instant("when", text)


@pytest.mark.parametrize("text", ["1970-01-01T00:00:00Z", "2199-12-31T23:59:59.999+08:00",
                                  "2026-03-10T08:00:00-05:00"])
def test_instants_inside_the_range_are_kept_as_given(text: str) -> None:
    moment = parse_instant("when", text)
    assert moment == datetime.fromisoformat(text.replace("Z", "+00:00"))
    assert moment.astimezone(UTC).year >= 1970  # converting it is safe


@pytest.mark.parametrize(("value", "message"), [
    ("2026-03-10T08:00:00", "has no time zone"),
    ("yesterday", "not an RFC 3339 date-time"),
])
def test_a_text_instant_needs_a_time_zone_and_a_form(value: str, message: str) -> None:
    with pytest.raises(InvalidValue, match=message):
        parse_instant("at", value)


def test_an_instant_must_be_an_aware_datetime() -> None:
    with pytest.raises(InvalidValue, match="deadline has no time zone"):
        checked_instant("deadline", datetime(2026, 3, 10))
    with pytest.raises(InvalidValue, match="must be a date-time"):
        checked_instant("deadline", "2026-03-10")


@given(st.datetimes(timezones=st.just(timezone(timedelta(hours=23, minutes=59)))
                    | st.just(timezone(-timedelta(hours=23, minutes=59)))))
def test_any_instant_is_either_refused_or_safe_to_convert(moment: datetime) -> None:
    try:
        checked = checked_instant("at", moment)
    except InvalidValue:
        return
    checked.astimezone(UTC)
    assert abs(checked - NOW) >= timedelta()  # and it compares with our times


def test_a_deadline_is_at_most_five_years_ahead() -> None:
    assert checked_deadline("deadline", NOW + timedelta(days=5 * 365), NOW)
    with pytest.raises(InvalidValue, match="more than 5 years after"):
        checked_deadline("deadline", NOW + timedelta(days=6 * 366), NOW)


@pytest.mark.parametrize("minutes", [1e300, float("inf"), float("nan"), -5, 0, True, "60",
                                     10**400, 1e15])
def test_a_duration_in_minutes_is_refused_before_it_overflows(minutes: Any) -> None:
    with pytest.raises(InvalidValue, match="allowance_minutes"):
        duration_from_minutes("allowance_minutes", minutes)


def test_a_duration_in_minutes_becomes_a_timedelta() -> None:
    assert duration_from_minutes("allowance", 90) == timedelta(minutes=90)
    assert duration_from_minutes("allowance", 0.5) == timedelta(seconds=30)


@pytest.mark.parametrize("value", [1e300, -1e13, float("nan"), float("-inf"), 10**400,
                                   None, "3", False])
def test_numbers_are_finite_and_bounded(value: Any) -> None:
    with pytest.raises(InvalidValue, match="reading value"):
        checked_number("reading value", value)


def test_counts_are_whole_and_bounded() -> None:
    assert checked_count("injured", 12) == 12
    for bad in (-1, MAX_COUNT + 1, 2**64, 1.5, True):
        with pytest.raises(InvalidValue, match="injured must be a count"):
            checked_count("injured", bad)


def test_an_enum_value_is_parsed_in_one_way_with_one_clear_error() -> None:
    """Every command parses its enumerated inputs with `parse_enum` (issue 11): a member or
    its value is taken, anything else names what was expected and lists the known values."""
    from cityops.domain.catalogue import Urgency
    from cityops.domain.values import parse_enum

    assert parse_enum(Urgency, "urgent", "urgency") is Urgency.URGENT
    assert parse_enum(Urgency, Urgency.NORMAL, "urgency") is Urgency.NORMAL
    with pytest.raises(InvalidValue) as refused:
        parse_enum(Urgency, "asap", "urgency", "urgencies")
    assert str(refused.value) == "unknown urgency 'asap'; urgencies are urgent, normal"
    with pytest.raises(InvalidValue, match=r"unknown urgency \['urgent'\]; urgencies are"):
        parse_enum(Urgency, ["urgent"], "urgency", "urgencies")  # not even a text
