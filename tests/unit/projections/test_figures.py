"""The figures' arithmetic: rates with their stated denominators, sums for roll-ups from
cells to communities and districts, grid codes cut at each level, and response times from
incident and resource documents."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest

from cityops.domain.errors import InvalidValue
from cityops.projections.statistics import (
    AreaLevel,
    CaseFigures,
    DispatchFigures,
    HotlineFigures,
    LightCounts,
    response_times,
)

T0 = datetime(2026, 3, 10, 1, 0, tzinfo=UTC)


def test_rates_have_their_stated_denominators() -> None:
    figures = DispatchFigures(dispatched=10, handled=6, on_time=4, handled_late=2,
                              overdue_open=2, reworked=1, reworks=3, returned=2,
                              handling_us=6_000_000_000, handling_count=6, verified=4)
    assert figures.overdue == 4
    assert figures.on_time_rate == pytest.approx(4 / 8)
    # Issue 9, item 7: rework is a failed verification, so the rate is over the verified
    # dispatches (it was reworked / dispatched, diluted by work nobody had checked yet).
    assert figures.rework_rate == pytest.approx(1 / 4)
    assert figures.returned_rate == pytest.approx(2 / 10)
    assert figures.average_handling_seconds == pytest.approx(1000.0)


def test_rates_of_nothing_are_unknown_not_zero() -> None:
    empty = DispatchFigures()
    assert (empty.on_time_rate, empty.rework_rate, empty.returned_rate,
            empty.average_handling_seconds) == (None, None, None, None)
    assert HotlineFigures().satisfaction_rate is None


def test_figures_of_cells_add_up_to_their_area() -> None:
    a = CaseFigures(reported=3, open=2, closed=1, lights=LightCounts(1, 1, 0),
                    dispatches=DispatchFigures(dispatched=2, on_time=1, handling_us=60_000_000,
                                               handling_count=1))
    b = CaseFigures(reported=1, open=1, lights=LightCounts(0, 0, 1),
                    dispatches=DispatchFigures(dispatched=1, handled_late=1,
                                               handling_us=180_000_000, handling_count=1))
    total = a + b
    assert (total.reported, total.open, total.closed) == (4, 3, 1)
    assert total.lights == LightCounts(1, 1, 1)
    assert total.dispatches.on_time_rate == pytest.approx(0.5)
    # The average of an area is over its dispatches, not the average of its cells' averages.
    assert total.dispatches.average_handling_seconds == pytest.approx(120.0)


@pytest.mark.parametrize(("level", "code"), [
    (AreaLevel.DISTRICT, "D01"), (AreaLevel.STREET, "D01-S02"),
    (AreaLevel.COMMUNITY, "D01-S02-C03"), (AreaLevel.CELL, "D01-S02-C03-0042"),
])
def test_an_area_code_is_a_prefix_of_the_cell_code(level: AreaLevel, code: str) -> None:
    assert level.code_of("D01-S02-C03-0042") == code


def test_a_cell_code_too_short_for_the_level_is_refused() -> None:
    with pytest.raises(InvalidValue, match="no cell part"):
        AreaLevel.CELL.code_of("D01-S02")


def test_hotline_rates() -> None:
    figures = HotlineFigures(tickets=10, replied=6, replied_on_time=5, replied_late=1,
                             overdue_unreplied=2, satisfied=3, basically_satisfied=1,
                             dissatisfied=1)
    assert figures.on_time_reply_rate == pytest.approx(5 / 8)
    assert figures.satisfaction_rate == pytest.approx(4 / 5)


def _incident(reported: datetime, **times: datetime | None) -> dict[str, Any]:
    return {"id": str(uuid4()), "status": "closed", "reported_at": reported.isoformat(),
            **{k: v.isoformat() if v else None for k, v in times.items()}}


def _history(incident: dict[str, Any], *steps: tuple[str, datetime]) -> list[dict[str, Any]]:
    return [{"status": status, "at": at.isoformat(),
             "incident_id": incident["id"] if status != "available" else None}
            for status, at in steps]


def test_response_times_from_report_to_each_stage() -> None:
    minute = timedelta(minutes=1)
    fire = _incident(T0, contained_at=T0 + 40 * minute, closed_at=T0 + 90 * minute)
    leak = _incident(T0, contained_at=None, closed_at=None)
    dismissed = {**_incident(T0), "status": "dismissed"}
    engine = {"history": _history(fire, ("available", T0 - minute),
                                  ("dispatched", T0 + 2 * minute),
                                  ("en-route", T0 + 3 * minute),
                                  ("on-scene", T0 + 9 * minute),
                                  ("returning", T0 + 60 * minute))}
    ladder = {"history": _history(fire, ("available", T0 - minute),
                                  ("dispatched", T0 + 4 * minute),
                                  ("en-route", T0 + 5 * minute),
                                  ("on-scene", T0 + 7 * minute))}
    van = {"history": _history(leak, ("available", T0 - minute),
                               ("dispatched", T0 + 6 * minute))}
    times = response_times([fire, leak, dismissed], [engine, ladder, van])
    # First dispatch: 2 min for the fire, 6 for the leak; the dismissed one is left out.
    assert (times["dispatch"].count, times["dispatch"].mean_s) == (2, 4 * 60)
    # First arrival: the ladder at 7 min, though dispatched after the engine.
    assert (times["on_scene"].count, times["on_scene"].p50_s) == (1, 7 * 60)
    assert (times["contained"].count, times["contained"].mean_s) == (1, 40 * 60)
    assert (times["closed"].count, times["closed"].p90_s) == (1, 90 * 60)
