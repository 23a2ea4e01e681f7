"""The emergency incident: from the first report to the after-action review.

reported -> verified (or dismissed as a false report) -> responding (a response level is set
and usually a contingency plan activated; the level can be raised or lowered) -> contained ->
closed -> reviewed (after-action summary). An incident keeps a timeline of situation reports,
links to grid cases, hotline tickets and hazard alarms, its commander, the resources assigned
to it and the tasks its plans created for departments.

The contingency plans whose tasks an incident activates are in `plans.py`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from uuid import UUID, uuid5

from cityops.domain.actors import Actor, Role
from cityops.domain.errors import (
    IllegalTransition,
    InvalidValue,
    NotFound,
    NotPermitted,
    OpenTasksRemain,
)
from cityops.domain.geometry import Area, GeoPoint
from cityops.domain.incidents.plans import (
    MAX_TITLE,
    PlanOrders,
    PlanTask,
    checked_level_rank,
)
from cityops.domain.model import CityAggregate, checked_text, iso_or_none
from cityops.domain.values import checked_count, parse_enum


class IncidentStatus(StrEnum):
    REPORTED = "reported"
    VERIFIED = "verified"
    DISMISSED = "dismissed"
    """Verification found a false report; nothing more happens to it."""
    RESPONDING = "responding"
    CONTAINED = "contained"
    CLOSED = "closed"
    REVIEWED = "reviewed"


class IncidentSource(StrEnum):
    HOTLINE = "hotline"
    INSPECTOR = "inspector"
    SENSOR = "sensor"
    DEPARTMENT = "department"
    ALARM = "alarm"


class LinkKind(StrEnum):
    """What an incident can be linked to (the other streams' aggregates, by id)."""

    GRID_CASE = "grid-case"
    HOTLINE_TICKET = "hotline-ticket"
    HAZARD_ALARM = "hazard-alarm"


class TaskStatus(StrEnum):
    ASSIGNED = "assigned"
    ACKNOWLEDGED = "acknowledged"
    DONE = "done"
    CANCELLED = "cancelled"
    WAIVED = "waived"
    """Not done, and the centre (for the commander) accepted closing without it, with a
    reason: it counts as not done, but no longer keeps the incident open."""


class CasualtyFigure(StrEnum):
    """The figures a situation report may give (each a count of people)."""

    DEAD = "dead"
    INJURED = "injured"
    MISSING = "missing"
    TRAPPED = "trapped"
    EVACUATED = "evacuated"


class FindingAspect(StrEnum):
    """What a finding of an after-action review is about."""

    DETECTION = "detection"
    RESPONSE_TIME = "response-time"
    COMMAND = "command"
    COORDINATION = "coordination"
    RESOURCES = "resources"
    PLAN = "plan"
    INFORMATION = "information"
    OTHER = "other"


OPEN_STATUSES = frozenset(
    {
        IncidentStatus.REPORTED,
        IncidentStatus.VERIFIED,
        IncidentStatus.RESPONDING,
        IncidentStatus.CONTAINED,
    }
)
ON_SCENE_STATUSES = (IncidentStatus.VERIFIED, IncidentStatus.RESPONDING, IncidentStatus.CONTAINED)
"""States in which the incident is known to be real and still being dealt with."""
TASK_STATUSES = (IncidentStatus.RESPONDING, IncidentStatus.CONTAINED)
INCIDENT_OPEN_FOR_RESOURCES = (IncidentStatus.VERIFIED, IncidentStatus.RESPONDING)
"""The incident states in which resources are sent to it (not while only reported, nor once
contained, closed, reviewed or dismissed)."""
ASSIGN_RESOURCE = "assign a resource to"
OPEN_TASK_STATUSES = frozenset({TaskStatus.ASSIGNED, TaskStatus.ACKNOWLEDGED})
RELEASED_BY_THE_CENTRE = "released by the centre"
RELEASED_BY_CLOSING = "incident closed"






def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return (end - start).total_seconds()


def casualty_figures(figures: Mapping[str, int] | None) -> dict[str, int] | None:
    """Check the casualty figures of a situation report: known names, counts of people."""
    if figures is None:
        return None
    checked: dict[str, int] = {}
    for name, count in figures.items():
        figure = parse_enum(CasualtyFigure, name, "casualty figure")
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise InvalidValue(f"casualty figure {figure.value} must be a count >= 0")
        checked[figure.value] = checked_count(f"casualty figure {figure.value}", count)
    # Sorted so that equal figures are equal facts whatever order they were given in.
    return dict(sorted(checked.items()))


@dataclass(frozen=True)
class Finding:
    """One structured finding of an after-action review."""

    aspect: FindingAspect
    text: str
    recommendation: str = ""
    department: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "aspect",
                           parse_enum(FindingAspect, self.aspect, "finding aspect"))
        object.__setattr__(self, "text", checked_text("finding", self.text))
        object.__setattr__(self, "recommendation",
                           checked_text("recommendation", self.recommendation, required=False))

    def as_fact(self) -> dict[str, Any]:
        return {"aspect": self.aspect.value, "text": self.text,
                "recommendation": self.recommendation, "department": self.department}

    @classmethod
    def from_fact(cls, fact: Mapping[str, Any]) -> Finding:
        return cls(aspect=fact["aspect"], text=fact["text"],
                   recommendation=fact["recommendation"], department=fact["department"])


# --- the incident's parts (state only; events carry plain facts) ---------------------------


@dataclass
class IncidentTask:
    """A task of the incident for one department, from a plan or ordered ad hoc."""

    id: UUID
    department: str
    description: str
    due: datetime
    assigned_at: datetime
    assigned_by: str
    plan_id: UUID | None
    level: str | None
    status: TaskStatus = TaskStatus.ASSIGNED
    acknowledged_at: datetime | None = None
    done_at: datetime | None = None
    cancelled_at: datetime | None = None
    result: str = ""
    cancel_reason: str = ""
    waived_at: datetime | None = None
    waived_by: str | None = None
    waive_reason: str = ""

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_TASK_STATUSES

    def summary(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "department": self.department,
            "description": self.description,
            "status": self.status.value,
            "due": self.due.isoformat(),
            "plan_id": str(self.plan_id) if self.plan_id else None,
            "level": self.level,
            "assigned_at": self.assigned_at.isoformat(),
            "assigned_by": self.assigned_by,
            "acknowledged_at": iso_or_none(self.acknowledged_at),
            "done_at": iso_or_none(self.done_at),
            "done_late": self.done_at > self.due if self.done_at else None,
            "cancelled_at": iso_or_none(self.cancelled_at),
            "result": self.result,
            "cancel_reason": self.cancel_reason,
            "waived_at": iso_or_none(self.waived_at),
            "waived_by": self.waived_by,
            "waive_reason": self.waive_reason,
        }


@dataclass
class ResourceAssignment:
    """The fact that a resource worked for the incident from `assigned_at` to `released_at`."""

    resource_id: UUID
    kind: str
    assigned_at: datetime
    assigned_by: str
    released_at: datetime | None = None
    released_by: str | None = None
    release_reason: str | None = None
    """How the assignment ended: the centre released it, the resource cleared the scene,
    was stood down, reassigned..., or the incident was closed."""

    def summary(self) -> dict[str, Any]:
        return {"resource_id": str(self.resource_id), "kind": self.kind,
                "assigned_at": self.assigned_at.isoformat(), "assigned_by": self.assigned_by,
                "released_at": iso_or_none(self.released_at), "released_by": self.released_by,
                "release_reason": self.release_reason}


@dataclass
class ActivatedPlan:
    """A plan activated on the incident: which of its levels, and what they require."""

    plan_id: UUID
    code: str
    revision: int
    levels: list[str] = field(default_factory=list)
    requirements: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {"plan_id": str(self.plan_id), "code": self.code, "revision": self.revision,
                "levels": list(self.levels), "requirements": dict(self.requirements)}


@dataclass(frozen=True)
class LevelChange:
    """The response level set (when the response started) or changed, and why."""

    level: str
    previous_level: str
    reason: str
    at: datetime
    by: str

    def summary(self) -> dict[str, Any]:
        return {"level": self.level, "previous_level": self.previous_level,
                "reason": self.reason, "at": self.at.isoformat(), "by": self.by}


@dataclass(frozen=True)
class CommanderAssignment:
    """A commander named for the incident, in place of `previous` (None for the first)."""

    commander: str
    previous: str | None
    reason: str
    at: datetime
    by: str

    def summary(self) -> dict[str, Any]:
        return {"commander": self.commander, "previous": self.previous, "reason": self.reason,
                "at": self.at.isoformat(), "by": self.by}


@dataclass(frozen=True)
class SituationReport:
    """One report on the incident's timeline: what was known then, by whom."""

    number: int
    """1 for the incident's first report, then counting up."""
    text: str
    casualties: Mapping[str, int] | None
    affected_area: Area | None
    author: Actor
    at: datetime

    def summary(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "text": self.text,
            "casualties": dict(self.casualties) if self.casualties is not None else None,
            "affected_area": (self.affected_area.to_geojson()
                              if self.affected_area is not None else None),
            "author": self.author.user_id,
            "author_role": self.author.role.value,
            "author_department": self.author.department,
            "at": self.at.isoformat(),
        }


@dataclass(frozen=True)
class Link:
    """The incident is linked to a grid case, hotline ticket or hazard alarm."""

    kind: LinkKind
    target_id: UUID
    at: datetime
    by: str

    def summary(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "id": str(self.target_id), "at": self.at.isoformat(),
                "by": self.by}


@dataclass(frozen=True)
class AfterActionReview:
    """The review recorded after closing: a free-text summary and structured findings."""

    summary_text: str
    findings: tuple[Finding, ...]
    by: str
    at: datetime

    def summary(self) -> dict[str, Any]:
        return {"summary": self.summary_text, "findings": [f.as_fact() for f in self.findings],
                "by": self.by, "at": self.at.isoformat()}


class Incident(CityAggregate):
    """An emergency, from its first report to the after-action review."""

    KIND = "incident"

    class Reported(CityAggregate.Created):
        """`Incident.__init__` makes the incident's state from these facts (the library
        passes a created event's fields to `__init__` by name)."""

        actor: Actor
        category: str
        incident_type: str
        level: str
        level_rank: int
        title: str
        description: str
        location: GeoPoint
        affected_area: Area | None
        source: str
        source_ref: str | None
        warning: str | None

    class Verified(CityAggregate.Event):
        category: str
        incident_type: str
        level: str
        level_rank: int
        note: str

        def apply(self, incident: Incident) -> None:
            incident.status = IncidentStatus.VERIFIED
            incident.category = self.category
            incident.incident_type = self.incident_type
            incident.level = self.level
            incident.level_rank = self.level_rank
            incident.verified_at = self.timestamp
            if self.note:
                incident.notes.append(self.note)

    class Dismissed(CityAggregate.Event):
        """Verification found a false report."""

        reason: str

        def apply(self, incident: Incident) -> None:
            incident.status = IncidentStatus.DISMISSED
            incident.dismissed_at = self.timestamp
            incident.dismiss_reason = self.reason

    class ResponseStarted(CityAggregate.Event):
        level: str
        level_rank: int
        reason: str

        def apply(self, incident: Incident) -> None:
            incident.status = IncidentStatus.RESPONDING
            incident.responding_at = self.timestamp
            incident.level_changes.append(LevelChange(
                level=self.level, previous_level=incident.level, reason=self.reason,
                at=self.timestamp, by=self.actor.user_id,
            ))
            incident.level = self.level
            incident.level_rank = self.level_rank
            incident.level_set_at = self.timestamp

    class LevelChanged(CityAggregate.Event):
        level: str
        level_rank: int
        previous_level: str
        reason: str

        def apply(self, incident: Incident) -> None:
            incident.level_changes.append(LevelChange(
                level=self.level, previous_level=self.previous_level, reason=self.reason,
                at=self.timestamp, by=self.actor.user_id,
            ))
            incident.level = self.level
            incident.level_rank = self.level_rank
            incident.level_set_at = self.timestamp

    class PlanActivated(CityAggregate.Event):
        """A plan's content for one level was activated: its new tasks and requirements."""

        plan_id: UUID
        plan_code: str
        plan_revision: int
        level: str
        tasks: list[dict[str, Any]]
        resources: list[dict[str, Any]]

        def apply(self, incident: Incident) -> None:
            plan = incident.plans.get(self.plan_id)
            if plan is None:
                plan = ActivatedPlan(plan_id=self.plan_id, code=self.plan_code,
                                     revision=self.plan_revision)
                incident.plans[self.plan_id] = plan
            plan.revision = self.plan_revision
            plan.levels.append(self.level)
            for requirement in self.resources:
                # A plan's requirement of a kind is the largest of its activated levels.
                kind, count = requirement["kind"], requirement["count"]
                plan.requirements[kind] = max(plan.requirements.get(kind, 0), count)
            for task in self.tasks:
                incident.tasks[task["task_id"]] = IncidentTask(
                    id=task["task_id"], department=task["department"],
                    description=task["description"], due=task["due"],
                    assigned_at=self.timestamp, assigned_by=self.actor.user_id,
                    plan_id=self.plan_id, level=self.level,
                )

    class SituationReported(CityAggregate.Event):
        text: str
        casualties: dict[str, int] | None
        affected_area: Area | None

        def apply(self, incident: Incident) -> None:
            incident.situation_reports.append(SituationReport(
                number=len(incident.situation_reports) + 1, text=self.text,
                casualties=dict(self.casualties) if self.casualties is not None else None,
                affected_area=self.affected_area, author=self.actor, at=self.timestamp,
            ))
            if self.casualties is not None:
                incident.casualties = dict(self.casualties)
            if self.affected_area is not None:
                incident.affected_area = self.affected_area

    class Linked(CityAggregate.Event):
        kind: str
        target_id: UUID

        def apply(self, incident: Incident) -> None:
            incident.links.append(Link(kind=LinkKind(self.kind), target_id=self.target_id,
                                       at=self.timestamp, by=self.actor.user_id))

    class Unlinked(CityAggregate.Event):
        kind: str
        target_id: UUID
        reason: str

        def apply(self, incident: Incident) -> None:
            incident.links = [
                link for link in incident.links
                if (link.kind, link.target_id) != (self.kind, self.target_id)
            ]

    class CommanderAssigned(CityAggregate.Event):
        commander: str
        previous: str | None
        reason: str

        def apply(self, incident: Incident) -> None:
            incident.commander = self.commander
            incident.commanders.append(CommanderAssignment(
                commander=self.commander, previous=self.previous, reason=self.reason,
                at=self.timestamp, by=self.actor.user_id,
            ))

    class TaskAssigned(CityAggregate.Event):
        """A task ordered ad hoc by the centre, outside any plan."""

        task_id: UUID
        department: str
        description: str
        due: datetime

        def apply(self, incident: Incident) -> None:
            incident.tasks[self.task_id] = IncidentTask(
                id=self.task_id, department=self.department, description=self.description,
                due=self.due, assigned_at=self.timestamp, assigned_by=self.actor.user_id,
                plan_id=None, level=None,
            )

    class TaskAcknowledged(CityAggregate.Event):
        task_id: UUID

        def apply(self, incident: Incident) -> None:
            task = incident.tasks[self.task_id]
            task.status = TaskStatus.ACKNOWLEDGED
            task.acknowledged_at = self.timestamp

    class TaskDone(CityAggregate.Event):
        task_id: UUID
        result: str

        def apply(self, incident: Incident) -> None:
            task = incident.tasks[self.task_id]
            task.status = TaskStatus.DONE
            task.done_at = self.timestamp
            task.result = self.result

    class TaskCancelled(CityAggregate.Event):
        task_id: UUID
        reason: str

        def apply(self, incident: Incident) -> None:
            task = incident.tasks[self.task_id]
            task.status = TaskStatus.CANCELLED
            task.cancelled_at = self.timestamp
            task.cancel_reason = self.reason

    class TaskWaived(CityAggregate.Event):
        """The centre accepted closing without the task (not done), with the reason."""

        task_id: UUID
        reason: str

        def apply(self, incident: Incident) -> None:
            task = incident.tasks[self.task_id]
            task.status = TaskStatus.WAIVED
            task.waived_at = self.timestamp
            task.waived_by = self.actor.user_id
            task.waive_reason = self.reason

    class ResourceAssigned(CityAggregate.Event):
        resource_id: UUID
        kind: str

        def apply(self, incident: Incident) -> None:
            incident.resources.append(ResourceAssignment(
                resource_id=self.resource_id, kind=self.kind, assigned_at=self.timestamp,
                assigned_by=self.actor.user_id,
            ))

    class ResourceReleased(CityAggregate.Event):
        """The resource no longer works for the incident: released by the centre, or it left
        (cleared the scene, stood down, reassigned...), as `reason` says."""

        class_version = 2
        resource_id: UUID
        reason: str

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            # Before the resource stream's departures were recorded here, only the centre
            # released a resource from an incident.
            state["reason"] = RELEASED_BY_THE_CENTRE

        def apply(self, incident: Incident) -> None:
            incident.release(self.resource_id, self.timestamp, self.actor.user_id,
                             self.reason)

    class Contained(CityAggregate.Event):
        note: str

        def apply(self, incident: Incident) -> None:
            incident.status = IncidentStatus.CONTAINED
            incident.contained_at = self.timestamp
            if self.note:
                incident.notes.append(self.note)

    class FlaredUp(CityAggregate.Event):
        """A contained situation got out of control again: back to responding."""

        reason: str

        def apply(self, incident: Incident) -> None:
            incident.status = IncidentStatus.RESPONDING
            incident.contained_at = None
            incident.notes.append(self.reason)

    class Closed(CityAggregate.Event):
        note: str
        released_resources: list[UUID]
        """Resources still assigned at closing are released by it."""

        def apply(self, incident: Incident) -> None:
            incident.status = IncidentStatus.CLOSED
            incident.closed_at = self.timestamp
            for resource_id in self.released_resources:
                incident.release(resource_id, self.timestamp, self.actor.user_id,
                                 RELEASED_BY_CLOSING)
            if self.note:
                incident.notes.append(self.note)

    class Reviewed(CityAggregate.Event):
        """The after-action review: a free-text summary and structured findings."""

        summary: str
        findings: list[dict[str, Any]]

        def apply(self, incident: Incident) -> None:
            incident.status = IncidentStatus.REVIEWED
            incident.reviewed_at = self.timestamp
            incident.after_action = AfterActionReview(
                summary_text=self.summary,
                findings=tuple(Finding.from_fact(f) for f in self.findings),
                by=self.actor.user_id, at=self.timestamp,
            )

    # --- state ----------------------------------------------------------------------------

    def __init__(self, *, category: str, incident_type: str, level: str, level_rank: int,
                 title: str, description: str, location: GeoPoint, affected_area: Area | None,
                 source: str, source_ref: str | None, warning: str | None, actor: Actor,
                 timestamp: datetime) -> None:
        """The incident as reported (from the `Reported` event's facts): every attribute it
        keeps is declared here, once, with its type; the events change them."""
        self.status: IncidentStatus = IncidentStatus.REPORTED
        self.category = category
        self.incident_type = incident_type
        self.level = level
        self.level_rank = level_rank
        self.title = title
        self.description = description
        self.location = location
        self.affected_area = affected_area
        """As first reported, then as the latest situation report gives it."""
        self.source = IncidentSource(source)
        self.source_ref = source_ref
        self.warning = warning
        self.reported_at = timestamp
        self.reported_by = actor.user_id
        self.verified_at: datetime | None = None
        self.dismissed_at: datetime | None = None
        self.dismiss_reason: str | None = None
        self.responding_at: datetime | None = None
        self.level_set_at: datetime | None = None
        self.contained_at: datetime | None = None
        self.closed_at: datetime | None = None
        self.reviewed_at: datetime | None = None
        self.commander: str | None = None
        self.commanders: list[CommanderAssignment] = []
        self.level_changes: list[LevelChange] = []
        self.situation_reports: list[SituationReport] = []
        self.casualties: dict[str, int] | None = None
        """The figures of the latest situation report that gave any."""
        self.links: list[Link] = []
        self.plans: dict[UUID, ActivatedPlan] = {}
        self.tasks: dict[UUID, IncidentTask] = {}
        self.resources: list[ResourceAssignment] = []
        self.notes: list[str] = []
        self.after_action: AfterActionReview | None = None
        """The after-action review, once recorded."""

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    def release(self, resource_id: UUID, at: datetime, by: str, reason: str) -> None:
        """Mark the current assignment of a resource as ended (used by the events)."""
        assignment = self.assignment(resource_id)
        assert assignment is not None
        assignment.released_at = at
        assignment.released_by = by
        assignment.release_reason = reason

    def assignment(self, resource_id: UUID) -> ResourceAssignment | None:
        """The resource's assignment to this incident that has not been released yet."""
        for assignment in self.resources:
            if assignment.resource_id == resource_id and assignment.released_at is None:
                return assignment
        return None

    def assignment_number(self, resource_id: UUID) -> int | None:
        """Which assignment of the resource to this incident is current (1 for the first,
        2 if it came back after a release...), None if it is not assigned now: a release
        named by it happens once, however often it is asked for."""
        if self.assignment(resource_id) is None:
            return None
        return sum(1 for a in self.resources if a.resource_id == resource_id)

    def open_tasks(self) -> list[IncidentTask]:
        """The tasks still assigned or acknowledged, in the order they were given out."""
        return [t for t in self.tasks.values() if t.is_open]

    def check_tasks_settled(self) -> None:
        """Refuse closing while a task is open (`OpenTasksRemain` names each one)."""
        still_open = self.open_tasks()
        if still_open:
            raise OpenTasksRemain(self.KIND, self.id, self.status.value, tuple(
                (str(t.id), t.department, t.description, t.status.value) for t in still_open))

    def is_linked(self, kind: LinkKind, target_id: UUID) -> bool:
        return any(link.kind is kind and link.target_id == target_id for link in self.links)

    def task(self, task_id: UUID) -> IncidentTask:
        try:
            return self.tasks[task_id]
        except KeyError:
            raise NotFound("incident task", task_id) from None

    def required_resources(self) -> dict[str, int]:
        """Resources the activated plans require, by kind (summed over the plans)."""
        total: dict[str, int] = {}
        for plan in self.plans.values():
            for kind, count in plan.requirements.items():
                total[kind] = total.get(kind, 0) + count
        return dict(sorted(total.items()))

    def resource_shortfall(self) -> dict[str, int]:
        """Required resources not covered by resources assigned now, by kind."""
        assigned: dict[str, int] = {}
        for a in self.resources:
            if a.released_at is None:
                assigned[a.kind] = assigned.get(a.kind, 0) + 1
        shortfall = {kind: count - assigned.get(kind, 0)
                     for kind, count in self.required_resources().items()}
        return {kind: missing for kind, missing in shortfall.items() if missing > 0}

    @staticmethod
    def plan_task_id(incident_id: UUID, plan_id: UUID, task: PlanTask) -> UUID:
        """A plan's task has one id per incident, whichever level created it (no duplicates)."""
        return uuid5(incident_id, f"plan-task:{plan_id}:{task.department}:{task.description}")

    # --- commands ---------------------------------------------------------------------------

    @classmethod
    def report(
        cls,
        *,
        incident_id: UUID,
        category: str,
        incident_type: str,
        level: str,
        level_rank: int,
        title: str,
        description: str,
        location: GeoPoint,
        affected_area: Area | None,
        source: IncidentSource,
        source_ref: str | None,
        warning: str | None,
        actor: Actor,
        at: datetime,
    ) -> Incident:
        """An emergency reported by the hotline, an inspector, a sensor, a department or an
        escalated alarm."""
        return cls._create(
            cls.Reported,
            id=incident_id,
            timestamp=at,
            actor=actor,
            category=category,
            incident_type=incident_type,
            level=level,
            level_rank=checked_level_rank(level_rank),
            title=checked_text("title", title, limit=MAX_TITLE),
            description=checked_text("description", description, required=False),
            location=location,
            affected_area=affected_area,
            source=IncidentSource(source).value,
            source_ref=(checked_text("source reference", source_ref, limit=MAX_TITLE)
                        if source_ref is not None else None),
            warning=warning,
        )

    def verify(self, *, category: str, incident_type: str, level: str, level_rank: int,
               note: str, actor: Actor, at: datetime) -> None:
        """The centre confirms the incident is real (and may correct its type and level)."""
        self.require_status("verify", IncidentStatus.REPORTED)
        self.record(self.Verified, actor=actor, at=at, category=category,
                    incident_type=incident_type, level=level,
                    level_rank=checked_level_rank(level_rank),
                    note=checked_text("note", note, required=False))

    def dismiss(self, *, reason: str, actor: Actor, at: datetime) -> None:
        """The centre finds the report false."""
        self.require_status("dismiss", IncidentStatus.REPORTED)
        self.record(self.Dismissed, actor=actor, at=at, reason=checked_text("reason", reason))

    def respond(self, *, level: str, level_rank: int, reason: str, actor: Actor,
                at: datetime) -> None:
        """Start the response at a response level."""
        self.require_status("start the response to", IncidentStatus.VERIFIED)
        self.record(self.ResponseStarted, actor=actor, at=at, level=level,
                    level_rank=checked_level_rank(level_rank),
                    reason=checked_text("reason", reason, required=False))

    def activate_plan(self, orders: PlanOrders, *, actor: Actor, at: datetime) -> None:
        """Activate a contingency plan at the current level: its tasks go to departments."""
        attempted = f"activate plan {orders.plan_code} on"
        self.require_status(attempted, IncidentStatus.RESPONDING)
        if orders.plan_id in self.plans:
            self.refuse(attempted, f"plan {orders.plan_code} is already activated")
        if orders.level != self.level:
            raise InvalidValue(
                f"plan orders are for level {orders.level}, the incident is at level {self.level}"
            )
        self._record_orders(orders, actor=actor, at=at)

    def change_level(self, *, level: str, level_rank: int, reason: str,
                     orders: Sequence[PlanOrders], actor: Actor, at: datetime) -> None:
        """Raise or lower the response level; raising it activates the new level's tasks of
        the plans already activated (`orders`: those plans' content for the new level)."""
        attempted = f"change the level to {level} of"
        self.require_status(attempted, IncidentStatus.RESPONDING)
        checked_level_rank(level_rank)
        if level_rank == self.level_rank:
            self.refuse(attempted, f"already at level {self.level}")
        lowered = level_rank > self.level_rank
        self.record(self.LevelChanged, actor=actor, at=at, level=level, level_rank=level_rank,
                    previous_level=self.level, reason=checked_text("reason", reason))
        if lowered:
            return  # Lowering creates no tasks and cancels none: the centre decides that.
        for plan_orders in orders:
            if plan_orders.level != level:
                raise InvalidValue(f"plan orders are for level {plan_orders.level}, not {level}")
            activated = self.plans.get(plan_orders.plan_id)
            if activated is not None and level not in activated.levels:
                self._record_orders(plan_orders, actor=actor, at=at)

    def _record_orders(self, orders: PlanOrders, *, actor: Actor, at: datetime) -> None:
        tasks = []
        for task in orders.content.tasks:
            task_id = self.plan_task_id(self.id, orders.plan_id, task)
            if task_id in self.tasks:
                continue  # Already given out by a lower level of the same plan.
            tasks.append({"task_id": task_id, "department": task.department,
                          "description": task.description, "due": at + task.allowance})
        self.record(self.PlanActivated, actor=actor, at=at, plan_id=orders.plan_id,
                    plan_code=orders.plan_code, plan_revision=orders.plan_revision,
                    level=orders.level, tasks=tasks,
                    resources=[r.as_fact() for r in orders.content.resources])

    def add_situation_report(self, *, text: str, casualties: Mapping[str, int] | None,
                             affected_area: Area | None, actor: Actor, at: datetime) -> None:
        """Add to the timeline what is known now (and the affected area as it is now)."""
        self.require_status("add a situation report to", *ON_SCENE_STATUSES)
        self.record(self.SituationReported, actor=actor, at=at, text=checked_text("report", text),
                    casualties=casualty_figures(casualties), affected_area=affected_area)

    def link(self, *, kind: LinkKind, target_id: UUID, actor: Actor, at: datetime) -> None:
        """Link a grid case, hotline ticket or hazard alarm; linking it again changes nothing
        (the same alarm or ticket may be escalated from several places)."""
        kind = LinkKind(kind)
        self.require_status(f"link {kind.value} {target_id} to", *OPEN_STATUSES)
        if self.is_linked(kind, target_id):
            return
        self.record(self.Linked, actor=actor, at=at, kind=kind.value, target_id=target_id)

    def unlink(self, *, kind: LinkKind, target_id: UUID, reason: str, actor: Actor,
               at: datetime) -> None:
        kind = LinkKind(kind)
        attempted = f"unlink {kind.value} {target_id} from"
        self.require_status(attempted, *OPEN_STATUSES)
        if not self.is_linked(kind, target_id):
            self.refuse(attempted, "they are not linked")
        self.record(self.Unlinked, actor=actor, at=at, kind=kind.value, target_id=target_id,
                    reason=checked_text("reason", reason))

    def assign_commander(self, *, commander: str, reason: str, actor: Actor,
                         at: datetime) -> None:
        """Name the incident's commander, or replace the current one."""
        commander = checked_text("commander", commander, limit=MAX_TITLE)
        attempted = f"assign commander {commander} to"
        self.require_status(attempted, *OPEN_STATUSES)
        if commander == self.commander:
            self.refuse(attempted, f"{commander} is already its commander")
        self.record(self.CommanderAssigned, actor=actor, at=at, commander=commander,
                    previous=self.commander, reason=checked_text("reason", reason, required=False))

    def assign_task(self, *, task_id: UUID, department: str, description: str,
                    allowance: timedelta, actor: Actor, at: datetime) -> None:
        """Give a department a task outside the plans."""
        self.require_status("assign a task on", *TASK_STATUSES)
        task = PlanTask(department=department, description=description, allowance=allowance)
        if task_id in self.tasks:
            self.refuse("assign a task on", f"task {task_id} exists already")
        self.record(self.TaskAssigned, actor=actor, at=at, task_id=task_id,
                    department=task.department, description=task.description,
                    due=at + task.allowance)

    def _move_task(self, task_id: UUID, attempted: str, actor: Actor,
                   *allowed: TaskStatus) -> IncidentTask:
        self.require_status(f"{attempted} a task of", *TASK_STATUSES)
        task = self.task(task_id)
        if actor.role is Role.DEPARTMENT_USER and actor.department != task.department:
            raise NotPermitted(
                f"department user {actor.user_id} of {actor.department} may not {attempted} "
                f"task {task_id}: it is a task of {task.department}"
            )
        if task.status not in allowed:
            raise IllegalTransition("incident task", task_id, task.status.value, attempted)
        return task

    def acknowledge_task(self, task_id: UUID, *, actor: Actor, at: datetime) -> None:
        """The department confirms it has the task in hand."""
        self._move_task(task_id, "acknowledge", actor, TaskStatus.ASSIGNED)
        self.record(self.TaskAcknowledged, actor=actor, at=at, task_id=task_id)

    def complete_task(self, task_id: UUID, *, result: str, actor: Actor, at: datetime) -> None:
        """The department reports the task done."""
        self._move_task(task_id, "complete", actor, TaskStatus.ASSIGNED, TaskStatus.ACKNOWLEDGED)
        self.record(self.TaskDone, actor=actor, at=at, task_id=task_id,
                    result=checked_text("result", result, required=False))

    def cancel_task(self, task_id: UUID, *, reason: str, actor: Actor, at: datetime) -> None:
        """The centre calls a task off."""
        self._move_task(task_id, "cancel", actor, TaskStatus.ASSIGNED, TaskStatus.ACKNOWLEDGED)
        self.record(self.TaskCancelled, actor=actor, at=at, task_id=task_id,
                    reason=checked_text("reason", reason))

    def waive_task(self, task_id: UUID, *, reason: str, actor: Actor, at: datetime) -> None:
        """The centre, for the commander, accepts closing without an open task (it counts as
        not done); the reason is required."""
        reason = checked_text("reason", reason)
        self._move_task(task_id, "waive", actor, TaskStatus.ASSIGNED, TaskStatus.ACKNOWLEDGED)
        self.record(self.TaskWaived, actor=actor, at=at, task_id=task_id, reason=reason)

    def assign_resource(self, *, resource_id: UUID, kind: str, actor: Actor,
                        at: datetime) -> None:
        """Record that a resource (rescue team, vehicle, depot, shelter, expert) works for
        the incident; the resource's own status is kept by the resource stream."""
        attempted = f"assign resource {resource_id} to"
        self.require_status(attempted, *ON_SCENE_STATUSES)
        if self.assignment(resource_id) is not None:
            self.refuse(attempted, "the resource is assigned to it already")
        self.record(self.ResourceAssigned, actor=actor, at=at, resource_id=resource_id,
                    kind=checked_text("resource kind", kind))

    def release_resource(self, *, resource_id: UUID, actor: Actor, at: datetime,
                         reason: str = RELEASED_BY_THE_CENTRE) -> None:
        """End the resource's assignment: the centre released it, or the resource stream
        says it left the incident (`reason` says how)."""
        attempted = f"release resource {resource_id} from"
        self.require_status(attempted, *ON_SCENE_STATUSES)
        if self.assignment(resource_id) is None:
            self.refuse(attempted, "the resource is not assigned to it")
        self.record(self.ResourceReleased, actor=actor, at=at, resource_id=resource_id,
                    reason=checked_text("release reason", reason, limit=MAX_TITLE))

    def contain(self, *, note: str, actor: Actor, at: datetime) -> None:
        """The situation is under control."""
        self.require_status("contain", IncidentStatus.RESPONDING)
        self.record(self.Contained, actor=actor, at=at,
                    note=checked_text("note", note, required=False))

    def flare_up(self, *, reason: str, actor: Actor, at: datetime) -> None:
        """The contained situation flared up: the response resumes at the current level."""
        self.require_status("resume the response to", IncidentStatus.CONTAINED)
        self.record(self.FlaredUp, actor=actor, at=at, reason=checked_text("reason", reason))

    def close(self, *, note: str, actor: Actor, at: datetime) -> None:
        """End the incident; resources still assigned are released. Every task must be done,
        cancelled or waived first: an incident never closes on work silently left open."""
        self.require_status("close", IncidentStatus.CONTAINED)
        self.check_tasks_settled()
        released = [a.resource_id for a in self.resources if a.released_at is None]
        self.record(self.Closed, actor=actor, at=at,
                    note=checked_text("note", note, required=False),
                    released_resources=released)

    def review(self, *, summary: str, findings: Iterable[Finding], actor: Actor,
               at: datetime) -> None:
        """Record the after-action review."""
        self.require_status("review", IncidentStatus.CLOSED)
        self.record(self.Reviewed, actor=actor, at=at,
                    summary=checked_text("review summary", summary),
                    findings=[f.as_fact() for f in findings])

    # --- reading ----------------------------------------------------------------------------

    def response_times(self) -> dict[str, float | None]:
        """Seconds from the report to each milestone (None until it is reached)."""
        return {
            "to_verified": _seconds(self.reported_at, self.verified_at),
            "to_responding": _seconds(self.reported_at, self.responding_at),
            "to_contained": _seconds(self.reported_at, self.contained_at),
            "to_closed": _seconds(self.reported_at, self.closed_at),
        }

    def summary(self) -> dict[str, Any]:
        """The incident's current state as plain data (for API responses and tests)."""
        return {
            "id": str(self.id),
            "version": self.version,
            "status": self.status.value,
            "category": self.category,
            "incident_type": self.incident_type,
            "level": self.level,
            "level_rank": self.level_rank,
            "title": self.title,
            "description": self.description,
            "location": self.location.to_geojson(),
            "affected_area": (self.affected_area.to_geojson()
                              if self.affected_area is not None else None),
            "source": self.source.value,
            "source_ref": self.source_ref,
            "warning": self.warning,
            "commander": self.commander,
            "commanders": [c.summary() for c in self.commanders],
            "reported_by": self.reported_by,
            "reported_at": self.reported_at.isoformat(),
            "verified_at": iso_or_none(self.verified_at),
            "dismissed_at": iso_or_none(self.dismissed_at),
            "dismiss_reason": self.dismiss_reason,
            "responding_at": iso_or_none(self.responding_at),
            "level_set_at": iso_or_none(self.level_set_at),
            "contained_at": iso_or_none(self.contained_at),
            "closed_at": iso_or_none(self.closed_at),
            "reviewed_at": iso_or_none(self.reviewed_at),
            "response_times": self.response_times(),
            "level_changes": [c.summary() for c in self.level_changes],
            "situation_reports": [r.summary() for r in self.situation_reports],
            "casualties": dict(self.casualties) if self.casualties is not None else None,
            "links": [link.summary() for link in self.links],
            "plans": [p.summary() for p in self.plans.values()],
            "tasks": [t.summary() for t in self.tasks.values()],
            "open_tasks": sum(1 for t in self.tasks.values() if t.is_open),
            "resources": [a.summary() for a in self.resources],
            "required_resources": self.required_resources(),
            "resource_shortfall": self.resource_shortfall(),
            "notes": list(self.notes),
            "review": self.after_action.summary() if self.after_action is not None else None,
        }


