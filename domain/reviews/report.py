"""What a response came to, measured from the events: the after-action report of one
incident or of a period (a whole drill). Computed each time from the streams' events through
the applications of one system (the live one, or a drill's), never stored, so that it always
agrees with the history.

- the timeline: every event of the incident and every status change of the resources sent
  to it, in time order, each with who did it (user, role, department);
- the milestones report -> verified -> first dispatched -> first on scene -> contained ->
  closed, each as time after the report, compared with the category's norm (`norms.py`);
- per resource (its assignment to the incident, with `cityops.domain.response_times`:
  queue, turnout, travel and response time, time on scene) and per department (its
  resources' first dispatch and arrival, its tasks);
- the plan's tasks against their deadlines: on time, late, never done (waived, or overdue
  and still open), cancelled, pending;
- the resources used against what the activated plans required, per kind;
- the exercise objectives, as measured by the scenario (a list handed in: `objectives`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol
from uuid import UUID

from cityops.domain.actors import Actor
from cityops.domain.event_facts import event_facts, to_json
from cityops.domain.incidents.incident import Incident, IncidentTask, TaskStatus
from cityops.domain.resources.resource import Resource, ResourceStatus
from cityops.domain.response_times import (
    Assignment,
    DurationStatistics,
    assignments,
    duration_statistics,
    queue_time,
    response_time,
    time_on_scene,
    travel_time,
    turnout_time,
)
from cityops.domain.reviews.norms import Milestone, ResponseNorms

MAX_TIMELINE = 5000
"""The most timeline entries a period's report lists (the earliest; the rest are counted)."""


class Verdict(StrEnum):
    """A milestone or objective against its target."""

    MET = "met"
    MISSED = "missed"
    PENDING = "pending"
    """Not reached yet, and its target not yet passed."""
    NO_TARGET = "no-target"


class TaskVerdict(StrEnum):
    """A task against its deadline."""

    ON_TIME = "on-time"
    LATE = "late"
    NEVER = "never"
    """Not done: waived, or still open after its deadline."""
    CANCELLED = "cancelled"
    """Called off by the centre: not counted against the department."""
    PENDING = "pending"
    """Open, and not yet due."""


NOT_DONE_IN_TIME = frozenset({TaskVerdict.LATE, TaskVerdict.NEVER})


def _seconds(value: timedelta | None) -> float | None:
    return value.total_seconds() if value is not None else None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


# --- the parts of a report --------------------------------------------------------------


@dataclass(frozen=True)
class TimelineEntry:
    """One thing that happened: when, on what, what, and who did it."""

    at: datetime
    incident_id: UUID
    stream: str
    """"incident" or "resource"."""
    subject: str
    """The incident's title, or the resource's call sign."""
    event: str
    what: str
    actor: Actor | None
    facts: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "incident_id": str(self.incident_id),
                "stream": self.stream, "subject": self.subject, "event": self.event,
                "what": self.what,
                "actor": self.actor.user_id if self.actor else None,
                "role": self.actor.role.value if self.actor else None,
                "department": self.actor.department if self.actor else None,
                "facts": dict(self.facts)}


@dataclass(frozen=True)
class MilestoneResult:
    """A milestone of the response: when it was reached, how long after the report, and
    how that compares with its norm."""

    milestone: Milestone
    at: datetime | None
    after_report: timedelta | None
    target: timedelta | None
    verdict: Verdict

    def as_dict(self) -> dict[str, Any]:
        return {"milestone": self.milestone.value, "at": _iso(self.at),
                "after_report_s": _seconds(self.after_report),
                "target_s": _seconds(self.target), "verdict": self.verdict.value}


@dataclass(frozen=True)
class ResourceResponse:
    """One resource's assignment to the incident, in NFPA 1710 terms."""

    resource_id: UUID
    call_sign: str
    name: str
    kind: str
    department: str
    dispatched_at: datetime
    en_route_at: datetime | None
    on_scene_at: datetime | None
    ended_at: datetime | None
    outcome: str | None
    dispatched_by: str | None
    queue: timedelta
    turnout: timedelta | None
    travel: timedelta | None
    response: timedelta | None
    on_scene_for: timedelta | None

    def as_dict(self) -> dict[str, Any]:
        return {"resource_id": str(self.resource_id), "call_sign": self.call_sign,
                "name": self.name, "kind": self.kind, "department": self.department,
                "dispatched_at": self.dispatched_at.isoformat(),
                "en_route_at": _iso(self.en_route_at), "on_scene_at": _iso(self.on_scene_at),
                "ended_at": _iso(self.ended_at), "outcome": self.outcome,
                "dispatched_by": self.dispatched_by,
                "queue_s": _seconds(self.queue), "turnout_s": _seconds(self.turnout),
                "travel_s": _seconds(self.travel), "response_s": _seconds(self.response),
                "on_scene_s": _seconds(self.on_scene_for)}


@dataclass(frozen=True)
class TaskResult:
    """A task of the incident against its deadline."""

    task_id: UUID
    incident_id: UUID
    department: str
    description: str
    plan_code: str | None
    level: str | None
    assigned_at: datetime
    due: datetime
    acknowledged_at: datetime | None
    done_at: datetime | None
    status: TaskStatus
    verdict: TaskVerdict
    late_by: timedelta | None
    """How far past its deadline it was done (late), or is now (never, still open)."""
    reason: str
    """Why it was waived or cancelled."""

    def as_dict(self) -> dict[str, Any]:
        return {"task_id": str(self.task_id), "incident_id": str(self.incident_id),
                "department": self.department, "description": self.description,
                "plan_code": self.plan_code, "level": self.level,
                "assigned_at": self.assigned_at.isoformat(), "due": self.due.isoformat(),
                "acknowledged_at": _iso(self.acknowledged_at), "done_at": _iso(self.done_at),
                "status": self.status.value, "verdict": self.verdict.value,
                "late_by_s": _seconds(self.late_by), "reason": self.reason}


@dataclass(frozen=True)
class DepartmentResponse:
    """What one department did for the incident (or the period): its resources and tasks."""

    department: str
    resources: int
    first_dispatched_after: timedelta | None
    first_on_scene_after: timedelta | None
    tasks: int
    on_time: int
    late: int
    never: int
    pending: int
    cancelled: int

    def as_dict(self) -> dict[str, Any]:
        return {"department": self.department, "resources": self.resources,
                "first_dispatched_after_s": _seconds(self.first_dispatched_after),
                "first_on_scene_after_s": _seconds(self.first_on_scene_after),
                "tasks": self.tasks, "on_time": self.on_time, "late": self.late,
                "never": self.never, "pending": self.pending, "cancelled": self.cancelled}


@dataclass(frozen=True)
class ResourceUse:
    """Resources of one kind: what the activated plans required and what was used."""

    kind: str
    required: int
    used: int
    """Distinct resources of the kind dispatched to it."""
    arrived: int
    """Of those, how many reached the scene."""

    @property
    def shortfall(self) -> int:
        return max(0, self.required - self.used)

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "required": self.required, "used": self.used,
                "arrived": self.arrived, "shortfall": self.shortfall}


@dataclass(frozen=True)
class MeasuredObjective:
    """An exercise objective as the scenario measured it from the drill's events, with the
    evaluators' rating and observations when they gave them (`cityops.domain.exercises`
    measures them; the report only shows them)."""

    name: str
    target: str
    measured: str | None
    verdict: Verdict
    rating: str | None = None
    observations: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "target": self.target, "measured": self.measured,
                "verdict": self.verdict.value, "rating": self.rating,
                "observations": self.observations}


@dataclass(frozen=True)
class IncidentReport:
    """The after-action report of one incident."""

    incident_id: UUID
    title: str
    category: str
    incident_type: str
    level: str
    status: str
    reported_at: datetime
    reported_by: str
    commander: str | None
    plans: tuple[str, ...]
    milestones: tuple[MilestoneResult, ...]
    resources: tuple[ResourceResponse, ...]
    departments: tuple[DepartmentResponse, ...]
    tasks: tuple[TaskResult, ...]
    resource_use: tuple[ResourceUse, ...]
    objectives: tuple[MeasuredObjective, ...]
    timeline: tuple[TimelineEntry, ...]
    as_of: datetime

    @property
    def late_or_never(self) -> tuple[TaskResult, ...]:
        return tuple(t for t in self.tasks if t.verdict in NOT_DONE_IN_TIME)

    def milestone(self, milestone: Milestone) -> MilestoneResult:
        return next(m for m in self.milestones if m.milestone is milestone)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": "incident",
            "incident_id": str(self.incident_id), "title": self.title,
            "category": self.category, "incident_type": self.incident_type,
            "level": self.level, "status": self.status,
            "reported_at": self.reported_at.isoformat(), "reported_by": self.reported_by,
            "commander": self.commander, "plans": list(self.plans),
            "milestones": [m.as_dict() for m in self.milestones],
            "resources": [r.as_dict() for r in self.resources],
            "departments": [d.as_dict() for d in self.departments],
            "tasks": [t.as_dict() for t in self.tasks],
            "late_or_never": [t.as_dict() for t in self.late_or_never],
            "resource_use": [u.as_dict() for u in self.resource_use],
            "objectives": [o.as_dict() for o in self.objectives],
            "timeline": [e.as_dict() for e in self.timeline],
            "as_of": self.as_of.isoformat(),
        }


@dataclass(frozen=True)
class MilestoneFigures:
    """One milestone over the incidents of a period: its times after report, and how many
    met or missed their norm."""

    milestone: Milestone
    statistics: DurationStatistics
    met: int
    missed: int
    pending: int

    def as_dict(self) -> dict[str, Any]:
        s = self.statistics
        return {"milestone": self.milestone.value, "count": s.count,
                "mean_s": _seconds(s.mean), "p50_s": _seconds(s.p50),
                "p90_s": _seconds(s.p90), "met": self.met, "missed": self.missed,
                "pending": self.pending}


@dataclass(frozen=True)
class PeriodReport:
    """The after-action report of a period (a whole drill): its incidents and their
    figures together."""

    start: datetime | None
    end: datetime | None
    incidents: tuple[IncidentReport, ...]
    milestones: tuple[MilestoneFigures, ...]
    departments: tuple[DepartmentResponse, ...]
    resource_use: tuple[ResourceUse, ...]
    objectives: tuple[MeasuredObjective, ...]
    timeline: tuple[TimelineEntry, ...]
    timeline_left_out: int
    as_of: datetime

    @property
    def tasks(self) -> tuple[TaskResult, ...]:
        return tuple(t for i in self.incidents for t in i.tasks)

    @property
    def late_or_never(self) -> tuple[TaskResult, ...]:
        return tuple(t for i in self.incidents for t in i.late_or_never)

    @property
    def resources(self) -> tuple[ResourceResponse, ...]:
        return tuple(r for i in self.incidents for r in i.resources)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": "period",
            "start": _iso(self.start), "end": _iso(self.end),
            "incidents": [_incident_row(i) for i in self.incidents],
            "milestones": [m.as_dict() for m in self.milestones],
            "resources": [r.as_dict() for r in self.resources],
            "departments": [d.as_dict() for d in self.departments],
            "tasks": [t.as_dict() for t in self.tasks],
            "late_or_never": [t.as_dict() for t in self.late_or_never],
            "resource_use": [u.as_dict() for u in self.resource_use],
            "objectives": [o.as_dict() for o in self.objectives],
            "timeline": [e.as_dict() for e in self.timeline],
            "timeline_left_out": self.timeline_left_out,
            "as_of": self.as_of.isoformat(),
        }


def _incident_row(report: IncidentReport) -> dict[str, Any]:
    """An incident of a period's report: who, what, and its milestones."""
    return {"incident_id": str(report.incident_id), "title": report.title,
            "category": report.category, "incident_type": report.incident_type,
            "level": report.level, "status": report.status,
            "reported_at": report.reported_at.isoformat(),
            "milestones": [m.as_dict() for m in report.milestones],
            "late_or_never": len(report.late_or_never)}


# --- what the report reads ----------------------------------------------------------------


class IncidentReader(Protocol):
    """The incidents of one system, as the report reads them."""

    def incident(self, incident_id: UUID) -> Incident: ...


class ResourceReader(Protocol):
    """The resources of one system, as the report reads them."""

    def resource(self, resource_id: UUID) -> Resource: ...


EventSource = Callable[[UUID], Iterable[Any]]
"""An application's stored events of one aggregate, oldest first (`events.get`)."""


# --- the timeline -----------------------------------------------------------------------


def _words(name: str) -> str:
    """`ResponseStarted` -> "response started"."""
    out = []
    for index, char in enumerate(name):
        if char.isupper() and index:
            out.append(" ")
        out.append(char.lower())
    return "".join(out)


def describe_incident_event(event: Any, incident: Incident,
                            call_signs: Mapping[UUID, str] | None = None) -> str:
    """What an incident's event means, in a sentence a reviewer reads (`call_signs` name
    the resources it mentions)."""
    name = type(event).__name__
    facts = event_facts(event)
    tasks = incident.tasks
    kinds = {a.resource_id: a.kind for a in incident.resources}
    signs = call_signs or {}

    def resource(resource_id: UUID) -> str:
        return f"{kinds.get(resource_id, 'resource')} {signs.get(resource_id, resource_id)}"

    if name == "Reported":
        return (f"reported: {facts['title']} ({facts['category']}/{facts['incident_type']}, "
                f"level {facts['level']}, via {facts['source']})")
    if name == "Verified":
        return f"verified as {facts['category']}/{facts['incident_type']} at level {facts['level']}"
    if name == "ResponseStarted":
        return f"response started at level {facts['level']}"
    if name == "LevelChanged":
        return (f"level changed from {facts['previous_level']} to {facts['level']}: "
                f"{facts['reason']}")
    if name == "PlanActivated":
        return (f"plan {facts['plan_code']} activated at level {facts['level']}: "
                f"{len(facts['tasks'])} task(s) to departments")
    if name in ("TaskAssigned", "TaskAcknowledged", "TaskDone", "TaskCancelled",
                "TaskWaived"):
        task = tasks.get(facts["task_id"])
        about = f"{task.department}: {task.description}" if task else str(facts["task_id"])
        verb = {"TaskAssigned": "task given", "TaskAcknowledged": "task acknowledged",
                "TaskDone": "task done", "TaskCancelled": "task cancelled",
                "TaskWaived": "task waived"}[name]
        extra = facts.get("reason") or facts.get("result") or ""
        return f"{verb} ({about})" + (f": {extra}" if extra else "")
    if name == "ResourceAssigned":
        return f"{resource(facts['resource_id'])} assigned"
    if name == "ResourceReleased":
        return f"{resource(facts['resource_id'])} released ({facts['reason']})"
    if name == "SituationReported":
        return f"situation report: {facts['text']}"
    if name == "CommanderAssigned":
        return f"commander: {facts['commander']}"
    if name in ("Contained", "Closed", "Dismissed", "FlaredUp"):
        note = facts.get("note") or facts.get("reason") or ""
        return _words(name) + (f": {note}" if note else "")
    if name == "Reviewed":
        return f"reviewed: {facts['summary']}"
    return _words(name)


RESOURCE_STEPS = {
    ResourceStatus.DISPATCHED: "dispatched",
    ResourceStatus.EN_ROUTE: "en route",
    ResourceStatus.ON_SCENE: "on scene",
    ResourceStatus.RETURNING: "left the scene, returning",
    ResourceStatus.AVAILABLE: "available again",
    ResourceStatus.OUT_OF_SERVICE: "out of service",
}


def resource_timeline(resource: Resource, events: Iterable[Any],
                      incident_id: UUID) -> list[TimelineEntry]:
    """The status changes of a resource that concern the incident: from each dispatch to it
    until the change by which it left it (stood down, available, reassigned elsewhere)."""
    found: list[TimelineEntry] = []
    serving = False
    for event in events:
        if not isinstance(event, Resource.StatusChanged):
            continue
        status = ResourceStatus(event.status)
        for_this = event.incident_id == incident_id
        if not for_this and not serving:
            continue
        step = RESOURCE_STEPS.get(status, status.value)
        if not for_this:
            step = (f"reassigned to incident {event.incident_id}"
                    if status is ResourceStatus.DISPATCHED else step)
        found.append(TimelineEntry(
            at=event.reported_at, incident_id=incident_id, stream="resource",
            subject=resource.call_sign, event=type(event).__name__,
            what=f"{resource.call_sign} ({resource.kind}, {resource.department}) {step}",
            actor=event.actor, facts={"resource_id": str(resource.id),
                                      "status": status.value}))
        serving = for_this
    return found


# --- the computations -------------------------------------------------------------------


def milestone_results(reported_at: datetime, reached: Mapping[Milestone, datetime | None],
                      targets: Mapping[Milestone, timedelta], now: datetime
                      ) -> tuple[MilestoneResult, ...]:
    """Each milestone against its norm: met if reached within its target, missed if reached
    later or not reached when the target has passed, pending otherwise."""
    results = []
    for milestone in Milestone:
        at = reached.get(milestone)
        after = at - reported_at if at is not None else None
        target = targets.get(milestone)
        if target is None:
            verdict = Verdict.NO_TARGET
        elif after is not None:
            verdict = Verdict.MET if after <= target else Verdict.MISSED
        else:
            verdict = Verdict.MISSED if now - reported_at > target else Verdict.PENDING
        results.append(MilestoneResult(milestone, at, after, target, verdict))
    return tuple(results)


def task_result(task: IncidentTask, incident_id: UUID, plan_codes: Mapping[UUID, str],
                now: datetime) -> TaskResult:
    """A task against its deadline (see `TaskVerdict`)."""
    late_by: timedelta | None = None
    reason = ""
    if task.status is TaskStatus.DONE:
        assert task.done_at is not None
        verdict = TaskVerdict.LATE if task.done_at > task.due else TaskVerdict.ON_TIME
        if verdict is TaskVerdict.LATE:
            late_by = task.done_at - task.due
    elif task.status is TaskStatus.CANCELLED:
        verdict, reason = TaskVerdict.CANCELLED, task.cancel_reason
    elif task.status is TaskStatus.WAIVED:
        verdict, reason = TaskVerdict.NEVER, task.waive_reason
        assert task.waived_at is not None
        late_by = max(task.waived_at - task.due, timedelta()) or None
    elif now > task.due:
        verdict, late_by = TaskVerdict.NEVER, now - task.due
    else:
        verdict = TaskVerdict.PENDING
    return TaskResult(
        task_id=task.id, incident_id=incident_id, department=task.department,
        description=task.description,
        plan_code=plan_codes.get(task.plan_id) if task.plan_id else None, level=task.level,
        assigned_at=task.assigned_at, due=task.due, acknowledged_at=task.acknowledged_at,
        done_at=task.done_at, status=task.status, verdict=verdict, late_by=late_by,
        reason=reason)


def department_responses(resources: Sequence[ResourceResponse], tasks: Sequence[TaskResult]
                         ) -> tuple[DepartmentResponse, ...]:
    """Per department (of the resources and tasks of one incident): its resources' first
    dispatch and first arrival after the report, and its tasks by verdict."""
    departments = sorted({r.department for r in resources} | {t.department for t in tasks})
    found = []
    for department in departments:
        own = [r for r in resources if r.department == department]
        own_tasks = [t for t in tasks if t.department == department]
        arrivals = [r.response for r in own if r.response is not None]

        def count(verdict: TaskVerdict, of: list[TaskResult] = own_tasks) -> int:
            return sum(1 for t in of if t.verdict is verdict)

        found.append(DepartmentResponse(
            department=department, resources=len({r.resource_id for r in own}),
            first_dispatched_after=min((r.queue for r in own), default=None),
            first_on_scene_after=min(arrivals, default=None),
            tasks=len(own_tasks), on_time=count(TaskVerdict.ON_TIME),
            late=count(TaskVerdict.LATE), never=count(TaskVerdict.NEVER),
            pending=count(TaskVerdict.PENDING), cancelled=count(TaskVerdict.CANCELLED)))
    return tuple(found)


def resource_uses(required: Mapping[str, int], resources: Sequence[ResourceResponse]
                  ) -> tuple[ResourceUse, ...]:
    """Per kind: required (by the activated plans), used (distinct resources dispatched),
    arrived (of those, on scene at least once)."""
    kinds = sorted(set(required) | {r.kind for r in resources})
    return tuple(ResourceUse(
        kind=kind, required=required.get(kind, 0),
        used=len({r.resource_id for r in resources if r.kind == kind}),
        arrived=len({r.resource_id for r in resources
                     if r.kind == kind and r.on_scene_at is not None}))
        for kind in kinds)


class ReviewReports:
    """Computes after-action reports from the events of one system's incidents and
    resources, against the response norms."""

    def __init__(self, incidents: IncidentReader, incident_events: EventSource,
                 resources: ResourceReader, resource_events: EventSource,
                 norms: ResponseNorms) -> None:
        self.incidents = incidents
        self.incident_events = incident_events
        self.resources = resources
        self.resource_events = resource_events
        self.norms = norms

    def incident_report(self, incident_id: UUID, *, now: datetime,
                        objectives: Sequence[MeasuredObjective] = ()) -> IncidentReport:
        """The report of one incident as its events tell it (`NotFound` if there is none);
        `now` decides what is pending and what is overdue."""
        incident = self.incidents.incident(incident_id)
        reported_at = incident.reported_at
        sent = {resource_id: self.resources.resource(resource_id)
                for resource_id in dict.fromkeys(a.resource_id for a in incident.resources)}
        call_signs = {resource_id: r.call_sign for resource_id, r in sent.items()}
        timeline = [TimelineEntry(
            at=event.timestamp, incident_id=incident_id, stream="incident",
            subject=incident.title, event=type(event).__name__,
            what=describe_incident_event(event, incident, call_signs),
            actor=getattr(event, "actor", None), facts=to_json(event_facts(event)))
            for event in self.incident_events(incident_id)]

        responses: list[ResourceResponse] = []
        for resource_id, resource in sent.items():
            timeline += resource_timeline(resource, self.resource_events(resource_id),
                                          incident_id)
            dispatchers = {change.at: change.by for change in resource.history
                           if change.status is ResourceStatus.DISPATCHED}
            for assignment in assignments(resource.history):
                if assignment.incident_id == incident_id:
                    by = dispatchers.get(assignment.dispatched_at)
                    responses.append(self._response(resource, assignment, reported_at,
                                                     by.user_id if by else None))
        responses.sort(key=lambda r: (r.dispatched_at, r.call_sign))
        timeline.sort(key=lambda e: e.at)

        reached: dict[Milestone, datetime | None] = {
            Milestone.VERIFIED: incident.verified_at,
            Milestone.DISPATCHED: min((r.dispatched_at for r in responses), default=None),
            Milestone.ON_SCENE: min((r.on_scene_at for r in responses
                                     if r.on_scene_at is not None), default=None),
            Milestone.CONTAINED: incident.contained_at,
            Milestone.CLOSED: incident.closed_at,
        }
        targets = self.norms.for_incident(incident.category, incident.level)
        judged_at = now
        if incident.closed_at is not None or incident.dismissed_at is not None:
            # A finished incident's unreached milestones are missed, not pending.
            judged_at = max(now, reported_at + max(targets.values(), default=timedelta()))
        plan_codes = {p.plan_id: p.code for p in incident.plans.values()}
        tasks = tuple(task_result(t, incident_id, plan_codes, now)
                      for t in sorted(incident.tasks.values(), key=lambda t: t.assigned_at))
        return IncidentReport(
            incident_id=incident.id, title=incident.title, category=incident.category,
            incident_type=incident.incident_type, level=incident.level,
            status=incident.status.value, reported_at=reported_at,
            reported_by=incident.reported_by, commander=incident.commander,
            plans=tuple(p.code for p in incident.plans.values()),
            milestones=milestone_results(reported_at, reached, targets, judged_at),
            resources=tuple(responses),
            departments=department_responses(responses, tasks), tasks=tasks,
            resource_use=resource_uses(incident.required_resources(), responses),
            objectives=tuple(objectives), timeline=tuple(timeline), as_of=now)

    @staticmethod
    def _response(resource: Resource, assignment: Assignment, reported_at: datetime,
                  dispatched_by: str | None) -> ResourceResponse:
        return ResourceResponse(
            resource_id=resource.id, call_sign=resource.call_sign, name=resource.name,
            kind=resource.kind, department=resource.department,
            dispatched_at=assignment.dispatched_at, en_route_at=assignment.en_route_at,
            on_scene_at=assignment.on_scene_at, ended_at=assignment.ended_at,
            outcome=assignment.outcome.value if assignment.outcome else None,
            dispatched_by=dispatched_by,
            queue=queue_time(reported_at, assignment), turnout=turnout_time(assignment),
            travel=travel_time(assignment), response=response_time(reported_at, [assignment]),
            on_scene_for=time_on_scene(assignment))

    def period_report(self, incident_ids: Iterable[UUID], *, start: datetime | None,
                      end: datetime | None, now: datetime,
                      objectives: Sequence[MeasuredObjective] = ()) -> PeriodReport:
        """The report of a period: every incident given (those reported in it), and their
        figures together."""
        reports = sorted((self.incident_report(i, now=now) for i in incident_ids),
                         key=lambda r: r.reported_at)
        figures = []
        for milestone in Milestone:
            results = [r.milestone(milestone) for r in reports]
            figures.append(MilestoneFigures(
                milestone=milestone,
                statistics=duration_statistics(m.after_report for m in results),
                met=sum(1 for m in results if m.verdict is Verdict.MET),
                missed=sum(1 for m in results if m.verdict is Verdict.MISSED),
                pending=sum(1 for m in results if m.verdict is Verdict.PENDING)))
        departments = _departments_over(reports)
        required: dict[str, int] = {}
        for report in reports:
            for use in report.resource_use:
                required[use.kind] = required.get(use.kind, 0) + use.required
        # Used over a period: distinct resources of the kind (one engine at two incidents
        # is one engine used), so computed over every assignment of the period.
        uses = resource_uses(required, [r for rep in reports for r in rep.resources])
        timeline = sorted((e for r in reports for e in r.timeline), key=lambda e: e.at)
        return PeriodReport(
            start=start, end=end, incidents=tuple(reports), milestones=tuple(figures),
            departments=departments, resource_use=uses, objectives=tuple(objectives),
            timeline=tuple(timeline[:MAX_TIMELINE]),
            timeline_left_out=max(0, len(timeline) - MAX_TIMELINE), as_of=now)


def _departments_over(reports: Sequence[IncidentReport]) -> tuple[DepartmentResponse, ...]:
    """Per department over several incidents: resources (distinct), the quickest first
    dispatch and arrival of any of its incidents, its tasks by verdict, summed."""
    by_department: dict[str, list[DepartmentResponse]] = {}
    resources: dict[str, set[UUID]] = {}
    for report in reports:
        for department in report.departments:
            by_department.setdefault(department.department, []).append(department)
        for resource in report.resources:
            resources.setdefault(resource.department, set()).add(resource.resource_id)
    found = []
    for name in sorted(by_department):
        rows = by_department[name]
        found.append(DepartmentResponse(
            department=name, resources=len(resources.get(name, set())),
            first_dispatched_after=min((r.first_dispatched_after for r in rows
                                        if r.first_dispatched_after is not None), default=None),
            first_on_scene_after=min((r.first_on_scene_after for r in rows
                                      if r.first_on_scene_after is not None), default=None),
            tasks=sum(r.tasks for r in rows), on_time=sum(r.on_time for r in rows),
            late=sum(r.late for r in rows), never=sum(r.never for r in rows),
            pending=sum(r.pending for r in rows), cancelled=sum(r.cancelled for r in rows)))
    return tuple(found)
