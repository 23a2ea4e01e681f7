"""Response times per resource, kind and incident from read-model documents: each interval
measured per assignment, with nearest-rank percentiles, and what cannot be measured left
out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

from cityops.projections.response_figures import INTERVALS, response_time_figures

T0 = datetime(2026, 3, 10, 1, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def _incident(reported: datetime, status: str = "responding") -> dict[str, Any]:
    return {"id": str(uuid4()), "status": status, "reported_at": reported.isoformat(),
            "title": "Fire", "category": "accident-disaster", "level": "III"}


def _resource(kind: str, call_sign: str, *steps: tuple[str, datetime, dict[str, Any] | None]
              ) -> dict[str, Any]:
    return {"id": str(uuid4()), "kind": kind, "call_sign": call_sign, "name": call_sign,
            "department": "fire",
            "history": [{"status": status, "at": at.isoformat(),
                         "incident_id": incident["id"] if incident else None}
                        for status, at, incident in steps]}


def _seconds(row: dict[str, Any], interval: str, figure: str = "p50_s") -> Any:
    return row[interval][figure]


def test_each_interval_is_measured_per_assignment() -> None:
    fire = _incident(T0)
    engine = _resource("fire-engine", "E1",
                       ("available", T0 - MINUTE, None),
                       ("dispatched", T0 + 2 * MINUTE, fire),
                       ("en-route", T0 + 3 * MINUTE, fire),
                       ("on-scene", T0 + 9 * MINUTE, fire),
                       ("returning", T0 + 60 * MINUTE, fire))
    figures = response_time_figures([fire], [engine])
    (row,) = figures.by_resource
    assert row["call_sign"] == "E1" and row["assignments"] == 1
    assert {i: _seconds(row, i) for i in INTERVALS} == {
        "queue": 120.0, "turnout": 60.0, "travel": 360.0, "response": 540.0,
        "on_scene": 51 * 60.0}


def test_kinds_and_incidents_take_every_assignment_and_percentiles_are_nearest_rank() -> None:
    fire, leak = _incident(T0), _incident(T0 + 10 * MINUTE)
    engines = [
        _resource("fire-engine", f"E{n}", ("available", T0 - MINUTE, None),
                  ("dispatched", T0 + n * MINUTE, fire),
                  ("en-route", T0 + (n + 1) * MINUTE, fire),
                  ("on-scene", T0 + (n + 1 + travel) * MINUTE, fire))
        for n, travel in ((1, 4), (2, 8), (3, 6))
    ]
    van = _resource("hazmat-team", "H1", ("available", T0 - MINUTE, None),
                    ("dispatched", T0 + 12 * MINUTE, leak))
    figures = response_time_figures([fire, leak], [*engines, van])
    kinds = {row["kind"]: row for row in figures.by_kind}
    travel = kinds["fire-engine"]["travel"]
    assert travel["count"] == 3
    assert (travel["p50_s"], travel["p90_s"], travel["mean_s"]) == (360.0, 480.0, 360.0)
    # Still on scene: no on-scene time yet. The van has not set off: only its queue time.
    assert kinds["fire-engine"]["on_scene"]["count"] == 0
    assert (kinds["hazmat-team"]["queue"]["p50_s"], kinds["hazmat-team"]["turnout"]["count"]
            ) == (120.0, 0)
    incidents = {row["incident_id"]: row for row in figures.by_incident}
    # The incident's response time is its first arrival: E1 at 1 + 1 + 4 = 6 minutes.
    assert incidents[fire["id"]]["first_on_scene_s"] == 360.0
    assert incidents[fire["id"]]["assignments"] == 3
    assert incidents[leak["id"]]["first_on_scene_s"] is None
    assert [row["call_sign"] for row in figures.by_resource] == ["E1", "E2", "E3", "H1"]


def test_dismissed_and_unknown_incidents_and_crews_there_before_the_report_are_left_out(
) -> None:
    false_alarm = _incident(T0, status="dismissed")
    late_report = _incident(T0 + 5 * MINUTE)
    elsewhere = {"id": str(uuid4())}
    engine = _resource("fire-engine", "E1", ("available", T0 - MINUTE, None),
                       ("dispatched", T0, false_alarm), ("available", T0 + MINUTE, None),
                       ("dispatched", T0 + 2 * MINUTE, elsewhere),
                       ("available", T0 + 3 * MINUTE, None),
                       # Came upon it and was dispatched before the report was recorded.
                       ("dispatched", T0 + 4 * MINUTE, late_report),
                       ("on-scene", T0 + 4 * MINUTE, late_report))
    figures = response_time_figures([false_alarm, late_report], [engine])
    (row,) = figures.by_resource
    assert row["assignments"] == 1
    # Dispatched and on scene before the report: no queue or response time to count.
    assert (row["queue"]["count"], row["response"]["count"]) == (0, 0)


def test_no_assignments_no_rows() -> None:
    figures = response_time_figures([_incident(T0)], [_resource("ambulance", "A1")])
    assert figures.as_dict() == {"by_resource": [], "by_kind": [], "by_incident": []}
