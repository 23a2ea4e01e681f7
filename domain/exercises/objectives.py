"""Exercise objectives measured from the drill's own events: a pure function of the events,
the drill's start and now, so that the drill screen shows met / missed / pending as the
drill runs and a test checks it from a list of events, without a running drill.

For each objective the incident it is about is the first one reported at or after the
drill's start that matches its filter (category, type, level: a level the incident had at
any time). Times are measured from the incident's report, or from an inject's delivery
(`since:` an inject), to the fact the objective waits for:

- incident-verified: `Incident.Verified`;
- plan-activated: the first `Incident.PlanActivated`;
- resource-on-scene: the first `Resource.ArrivedOnScene` for the incident of a resource of
  the kind (the kind from the incident's `ResourceAssigned`, or the resource's registration);
- tasks-acknowledged: each task an activated plan created, from its assignment to its
  acknowledgement (a task reported done unacknowledged counts as acknowledged then; a
  cancelled one does not count); the longest is the measure.

Met: the fact came within the target. Missed: it came late, or the target has passed
without it. Pending: the target has not passed yet (or nothing to measure exists yet).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from uuid import UUID

from cityops.domain.exercises.scenario import IncidentFilter, Objective, ObjectiveKind
from cityops.domain.incidents.incident import Incident
from cityops.domain.resources.resource import Resource


class ObjectiveStatus(StrEnum):
    MET = "met"
    MISSED = "missed"
    PENDING = "pending"


@dataclass(frozen=True)
class ObjectiveResult:
    """Where one objective stands at `now`."""

    objective_id: str
    kind: ObjectiveKind
    status: ObjectiveStatus
    target: timedelta
    measured: timedelta | None
    """The time the objective took (met or late), or, for tasks, the longest so far; None
    while the fact has not happened."""
    incident_id: UUID | None
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "objective_id": self.objective_id, "kind": self.kind.value,
            "status": self.status.value, "target_s": self.target.total_seconds(),
            "measured_s": self.measured.total_seconds() if self.measured is not None else None,
            "incident_id": str(self.incident_id) if self.incident_id else None,
            "detail": self.detail,
        }


@dataclass
class _Task:
    assigned_at: datetime
    acknowledged_at: datetime | None = None
    cancelled: bool = False


@dataclass
class _Incident:
    """What the objectives need of one incident, gathered from its events."""

    id: UUID
    reported_at: datetime
    category: str
    incident_type: str
    levels: set[str]
    verified_at: datetime | None = None
    plan_activated_at: datetime | None = None
    tasks: dict[UUID, _Task] = field(default_factory=dict)
    arrivals: list[tuple[datetime, UUID]] = field(default_factory=list)
    """(when, resource) of each arrival on scene, in the order recorded."""

    def matches(self, wanted: IncidentFilter) -> bool:
        return ((wanted.category is None or wanted.category == self.category)
                and (wanted.incident_type is None or wanted.incident_type == self.incident_type)
                and (wanted.level is None or wanted.level in self.levels))


def minutes_text(duration: timedelta) -> str:
    """A duration as the drill screen and the reports write it (`12 min 05 s`)."""
    seconds = int(duration.total_seconds())
    return f"{seconds // 60} min {seconds % 60:02d} s"


def _incidents(events: Iterable[object], started_at: datetime, now: datetime
               ) -> tuple[list[_Incident], dict[UUID, str]]:
    """The incidents reported from `started_at` up to `now` (in report order) and the kind
    of each resource the events name."""
    incidents: dict[UUID, _Incident] = {}
    kinds: dict[UUID, str] = {}
    arrivals: list[tuple[datetime, UUID, UUID]] = []
    for event in events:
        at = getattr(event, "timestamp", None)
        if not isinstance(at, datetime) or at > now:
            continue
        if isinstance(event, Resource.Registered):
            kinds[event.originator_id] = event.kind
            continue
        if isinstance(event, Resource.ArrivedOnScene):
            if event.incident_id is not None:
                arrivals.append((event.reported_at or at, event.originator_id,
                                 event.incident_id))
            continue
        if isinstance(event, Incident.ResourceAssigned):
            kinds.setdefault(event.resource_id, event.kind)
        if isinstance(event, Incident.Reported):
            if at >= started_at:
                incidents[event.originator_id] = _Incident(
                    id=event.originator_id, reported_at=at, category=event.category,
                    incident_type=event.incident_type, levels={event.level})
            continue
        incident = incidents.get(getattr(event, "originator_id", None))  # type: ignore[arg-type]
        if incident is None:
            continue
        if isinstance(event, Incident.Verified):
            incident.verified_at = incident.verified_at or at
            incident.category, incident.incident_type = event.category, event.incident_type
            incident.levels.add(event.level)
        elif isinstance(event, Incident.ResponseStarted | Incident.LevelChanged):
            incident.levels.add(event.level)
        elif isinstance(event, Incident.PlanActivated):
            incident.plan_activated_at = incident.plan_activated_at or at
            for created in event.tasks:
                incident.tasks[UUID(str(created["task_id"]))] = _Task(assigned_at=at)
        elif isinstance(event, Incident.TaskAcknowledged | Incident.TaskDone):
            task = incident.tasks.get(event.task_id)
            if task is not None and task.acknowledged_at is None:
                task.acknowledged_at = at
        elif isinstance(event, Incident.TaskCancelled):
            task = incident.tasks.get(event.task_id)
            if task is not None and task.acknowledged_at is None:
                task.cancelled = True
    for at, resource_id, incident_id in arrivals:
        if incident_id in incidents:
            incidents[incident_id].arrivals.append((at, resource_id))
    ordered = sorted(incidents.values(), key=lambda i: i.reported_at)
    return ordered, kinds


def _judge(objective: Objective, start: datetime, done_at: datetime | None, now: datetime,
           incident: UUID | None, what: str) -> ObjectiveResult:
    """Met, missed or pending for a fact that happened at `done_at` (None: not yet)."""
    target = objective.within
    if done_at is not None:
        took = max(done_at - start, timedelta())
        status = ObjectiveStatus.MET if took <= target else ObjectiveStatus.MISSED
        verdict = "within" if status is ObjectiveStatus.MET else "later than"
        return ObjectiveResult(objective.id, objective.kind, status, target, took, incident,
                               f"{what} after {minutes_text(took)}, {verdict} the target of "
                               f"{minutes_text(target)}")
    waited = now - start
    if waited > target:
        return ObjectiveResult(objective.id, objective.kind, ObjectiveStatus.MISSED, target,
                               None, incident, f"not {what} {minutes_text(target)} after the start "
                                               "of the measure")
    return ObjectiveResult(objective.id, objective.kind, ObjectiveStatus.PENDING, target, None,
                           incident, f"not {what} yet ({minutes_text(max(waited, timedelta()))} "
                                     f"of {minutes_text(target)})")


def _tasks(objective: Objective, incident: _Incident, now: datetime) -> ObjectiveResult:
    target = objective.within
    tasks = [t for t in incident.tasks.values() if not t.cancelled]
    if not tasks:
        return ObjectiveResult(objective.id, objective.kind, ObjectiveStatus.PENDING, target,
                               None, incident.id, "no plan task assigned yet")
    taken = [t.acknowledged_at - t.assigned_at for t in tasks if t.acknowledged_at is not None]
    longest = max(taken, default=None)
    late = [d for d in taken if d > target]
    overdue = [t for t in tasks if t.acknowledged_at is None and now - t.assigned_at > target]
    waiting = [t for t in tasks if t.acknowledged_at is None]
    if late or overdue:
        return ObjectiveResult(
            objective.id, objective.kind, ObjectiveStatus.MISSED, target, longest, incident.id,
            f"{len(late)} of {len(tasks)} tasks acknowledged late, {len(overdue)} not "
            f"acknowledged within {minutes_text(target)}")
    if waiting:
        return ObjectiveResult(
            objective.id, objective.kind, ObjectiveStatus.PENDING, target, longest, incident.id,
            f"{len(tasks) - len(waiting)} of {len(tasks)} tasks acknowledged so far")
    assert longest is not None
    return ObjectiveResult(objective.id, objective.kind, ObjectiveStatus.MET, target, longest,
                           incident.id, f"all {len(tasks)} tasks acknowledged, the last after "
                                        f"{minutes_text(longest)}")


def measure(objectives: Sequence[Objective], events: Iterable[object], started_at: datetime,
            now: datetime) -> list[ObjectiveResult]:
    """Each objective's standing at `now`, from the drill's events (any order of streams;
    events of other aggregates are ignored) and the drill's start."""
    incidents, kinds = _incidents(events, started_at, now)
    results: list[ObjectiveResult] = []
    for objective in objectives:
        since = (started_at + objective.since_offset
                 if objective.since_offset is not None else None)
        incident = next((i for i in incidents if i.matches(objective.incident)
                         and (since is None or i.reported_at >= since)), None)
        if incident is None:
            start = since if since is not None else now
            results.append(_judge(objective, start, None, now, None,
                                  "any matching incident reported"))
            continue
        start = since if since is not None else incident.reported_at
        if objective.kind is ObjectiveKind.INCIDENT_VERIFIED:
            results.append(_judge(objective, start, incident.verified_at, now, incident.id,
                                  "verified"))
        elif objective.kind is ObjectiveKind.PLAN_ACTIVATED:
            results.append(_judge(objective, start, incident.plan_activated_at, now,
                                  incident.id, "plan activated"))
        elif objective.kind is ObjectiveKind.RESOURCE_ON_SCENE:
            arrived = min((at for at, resource in incident.arrivals
                           if kinds.get(resource) == objective.resource_kind), default=None)
            results.append(_judge(objective, start, arrived, now, incident.id,
                                  f"{objective.resource_kind} on scene"))
        else:
            results.append(_tasks(objective, incident, now))
    return results
