"""Response times of emergency resources per resource, per kind of resource and per
incident: queue, turnout, travel, response and on-scene times (count, mean, p50, p90), in
the NFPA 1710 terms of `cityops.domain.response_times`.

Like every statistic they are computed when asked, from the read models: the resources'
documents carry their status history (each status with its time and incident), the
incidents' documents their report time. One assignment is one resource serving one
incident, from dispatch until it left (see `assignments`); each interval is measured per
assignment:

- queue: incident reported -> this resource dispatched;
- turnout: dispatched -> en route; travel: en route -> on scene;
- response: incident reported -> this resource on scene;
- on scene: on scene -> left the scene.

An interval that cannot be measured (a depot never goes en route, a resource stood down
before arriving, one still on scene) is left out of its figures: `count` says how many were
measured. So are queue and response times of a crew dispatched or on scene before the
incident's report was recorded (one that came upon it): they would be negative. Assignments
to dismissed incidents (false alarms) and to incidents unknown to the read model are left
out. The formulas are in docs/indicators.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from cityops.domain.resources.resource import ResourceStatus, StatusChange
from cityops.domain.response_times import (
    Assignment,
    assignments,
    duration_statistics,
    queue_time,
    response_time,
    time_on_scene,
    travel_time,
    turnout_time,
)
from cityops.projections.statistics import Durations
from cityops.projections.tables import doc_text
from cityops.storage import ReadStore, among, row_document

INTERVALS = ("queue", "turnout", "travel", "response", "on_scene")
"""The intervals measured per assignment, in the order of a response."""


def _from_report(span: timedelta | None) -> timedelta | None:
    """A time counted from the report, unless the crew was there before it was recorded."""
    return span if span is not None and span >= timedelta(0) else None


_MEASURES: dict[str, Callable[[datetime, Assignment], timedelta | None]] = {
    "queue": lambda reported, a: _from_report(queue_time(reported, a)),
    "turnout": lambda _, a: turnout_time(a),
    "travel": lambda _, a: travel_time(a),
    "response": lambda reported, a: _from_report(response_time(reported, [a])),
    "on_scene": lambda _, a: time_on_scene(a),
}


@dataclass(frozen=True)
class AssignmentTimes:
    """The intervals of a group of assignments (one resource, kind or incident)."""

    assignments: int
    times: Mapping[str, Durations]

    @classmethod
    def of(cls, measured: list[tuple[datetime, Assignment]]) -> AssignmentTimes:
        return cls(len(measured), {
            name: Durations.of(duration_statistics(measure(reported, a)
                                                   for reported, a in measured))
            for name, measure in _MEASURES.items()
        })

    def as_dict(self) -> dict[str, Any]:
        return {"assignments": self.assignments,
                **{name: self.times[name].as_dict() for name in INTERVALS}}


@dataclass(frozen=True)
class ResponseTimeFigures:
    """Assignment times per resource, per kind of resource and per incident."""

    by_resource: list[dict[str, Any]]
    by_kind: list[dict[str, Any]]
    by_incident: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return {"by_resource": self.by_resource, "by_kind": self.by_kind,
                "by_incident": self.by_incident}


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def resource_history(doc: Mapping[str, Any]) -> list[StatusChange]:
    """A resource document's status history as the domain keeps it."""
    return [StatusChange(ResourceStatus(h["status"]), _moment(h["at"]),
                         UUID(h["incident_id"]) if h.get("incident_id") else None)
            for h in doc.get("history", [])]


def response_time_figures(incidents: Iterable[Mapping[str, Any]],
                          resources: Iterable[Mapping[str, Any]]) -> ResponseTimeFigures:
    """The figures from the incidents' and resources' read-model documents; rows ordered
    by call sign, kind, and incident report time (then id)."""
    known = {UUID(i["id"]): i for i in incidents if i.get("status") != "dismissed"}
    per_resource: list[tuple[Mapping[str, Any], list[tuple[datetime, Assignment]]]] = []
    per_kind: dict[str, list[tuple[datetime, Assignment]]] = {}
    per_incident: dict[UUID, list[tuple[datetime, Assignment]]] = {}
    for resource in resources:
        measured = []
        for assignment in assignments(resource_history(resource)):
            incident = known.get(assignment.incident_id)
            if incident is None:
                continue
            item = (_moment(incident["reported_at"]), assignment)
            measured.append(item)
            per_kind.setdefault(str(resource["kind"]), []).append(item)
            per_incident.setdefault(assignment.incident_id, []).append(item)
        if measured:
            per_resource.append((resource, measured))

    by_resource = [
        {"resource_id": str(r["id"]), "call_sign": r.get("call_sign"), "name": r.get("name"),
         "kind": r["kind"], "department": r.get("department"),
         **AssignmentTimes.of(measured).as_dict()}
        for r, measured in sorted(per_resource,
                                  key=lambda item: (str(item[0].get("call_sign") or ""),
                                                    str(item[0]["id"])))
    ]
    by_kind = [{"kind": kind, **AssignmentTimes.of(per_kind[kind]).as_dict()}
               for kind in sorted(per_kind)]
    by_incident = []
    for incident_id, measured in per_incident.items():
        incident = known[incident_id]
        reported = _moment(incident["reported_at"])
        first = response_time(reported, [a for _, a in measured])
        by_incident.append({
            "incident_id": str(incident_id), "title": incident.get("title"),
            "category": incident.get("category"), "level": incident.get("level"),
            "status": incident.get("status"), "reported_at": reported.isoformat(),
            "first_on_scene_s": _seconds(_from_report(first)),
            **AssignmentTimes.of(measured).as_dict(),
        })
    by_incident.sort(key=lambda row: (row["reported_at"], row["incident_id"]))
    return ResponseTimeFigures(by_resource, by_kind, by_incident)


_INCIDENT_FACTS = ("status", "reported_at", "title", "category", "level")
"""What the figures show of an incident (from its document, as they always did)."""


def read_response_time_figures(store: ReadStore) -> ResponseTimeFigures:
    """The figures now, from the incidents and resources read models of `store`: the
    resources' documents (their status histories), and of the incidents only those the
    resources served, only the facts the figures show (every incident's whole document took
    1.2 s at 11,040 incidents, bench/city_scale.py)."""
    with store.transaction() as txn:
        txn.execute("SELECT doc FROM rm_resources")
        resources = [row_document(row[0]) for row in txn.fetchall()]
        served = sorted({str(change["incident_id"]) for resource in resources
                         for change in resource.get("history", [])
                         if change.get("incident_id")})
        facts = ", ".join(doc_text(txn.dialect, name) for name in _INCIDENT_FACTS)
        named, param = among(txn, "id", served)
        txn.execute(f"SELECT id, {facts} FROM rm_incidents WHERE {named}", [param])
        incidents = [dict(zip(("id", *_INCIDENT_FACTS), row, strict=True))
                     for row in txn.fetchall()]
    return response_time_figures(incidents, resources)


def _seconds(span: timedelta | None) -> float | None:
    return span.total_seconds() if span is not None else None
