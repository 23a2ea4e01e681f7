"""Every command of the emergency stream and of its contingency plans, as values.

One frozen dataclass per command: what the user asks, checked when it is built (types,
enumerations, times, geometries; what needs the catalogue or the incident's state is checked
by the handler in `incidents`). `name` is the command's name in the permissions table, the
receipts and the logs. Who asks, under which command id and on which versions is not part of
the command: that is the context it is run in.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from uuid import UUID

from cityops.domain.commands import Command, enum_field
from cityops.domain.errors import InvalidValue
from cityops.domain.geometry import Area, GeoPoint
from cityops.domain.incidents.incident import (
    Finding,
    IncidentSource,
    LinkKind,
    casualty_figures,
)
from cityops.domain.incidents.plans import PlanLevel
from cityops.domain.values import checked_id, checked_instant

PLAN_CODE = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")


def _set(command: object, field: str, value: object) -> None:
    object.__setattr__(command, field, value)



def _optional_id(label: str, value: UUID | None) -> None:
    if value is not None:
        checked_id(label, value)


def _check_area(area: Area | None) -> None:
    if area is not None and not isinstance(area, Area):
        raise InvalidValue("an incident's affected area must be an area")


def _optional_text(label: str, value: str | None) -> None:
    if value is not None and not isinstance(value, str):
        raise InvalidValue(f"{label} must be text")


# --- the incident ----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class IncidentCommand(Command):
    """A command on one incident (`incident_id`)."""

    name: ClassVar[str]
    incident_id: UUID

    def __post_init__(self) -> None:
        checked_id("incident id", self.incident_id)


@dataclass(frozen=True, kw_only=True)
class NewIncident:
    """What a ticket or an alarm escalated into a new incident asks the incident application
    to report (`processes.incident_escalations`): recorded in the escalation event as a fact
    (`as_fact`), read back from it by the process (`from_fact`)."""

    category: str
    incident_type: str
    title: str
    level: str | None = None

    def __post_init__(self) -> None:
        if not (self.category and self.incident_type and self.title):
            raise InvalidValue("a new incident needs category, incident type and title")

    def as_fact(self) -> dict[str, str | None]:
        return {"category": self.category, "incident_type": self.incident_type,
                "title": self.title, "level": self.level}

    @classmethod
    def from_fact(cls, fact: Mapping[str, str | None]) -> NewIncident:
        return cls(category=str(fact["category"]), incident_type=str(fact["incident_type"]),
                   title=str(fact["title"]), level=fact.get("level"))


@dataclass(frozen=True, kw_only=True)
class ReportIncident(Command):
    """Report an incident. `incident_id` is given when an alarm or a ticket escalates into an
    incident (the id follows from it); the level defaults to IV until verified."""

    name: ClassVar[str] = "incident.report"
    category: str
    incident_type: str
    title: str
    location: GeoPoint
    source: IncidentSource
    description: str = ""
    level: str | None = None
    affected_area: Area | None = None
    source_ref: str | None = None
    warning: str | None = None
    incident_id: UUID | None = None

    def __post_init__(self) -> None:
        _set(self, "source", enum_field(IncidentSource, "incident source", self.source))
        if not isinstance(self.location, GeoPoint):
            raise InvalidValue("an incident's location must be a point")
        _check_area(self.affected_area)
        _optional_id("incident id", self.incident_id)

    def fingerprint_args(self) -> dict[str, Any]:
        return {
            "category": self.category, "incident_type": self.incident_type,
            "title": self.title, "description": self.description,
            "location": [self.location.lon, self.location.lat], "source": self.source,
            "level": self.level,
            "affected_area": self.affected_area.wkt if self.affected_area else None,
            "source_ref": self.source_ref, "warning": self.warning,
            "incident_id": self.incident_id,
        }


@dataclass(frozen=True, kw_only=True)
class VerifyIncident(IncidentCommand):
    """The centre confirms the incident (correcting its category, type or level)."""

    name: ClassVar[str] = "incident.verify"
    category: str | None = None
    incident_type: str | None = None
    level: str | None = None
    note: str = ""

    def fingerprint_args(self) -> dict[str, Any]:
        return {"incident_id": self.incident_id, "category": self.category,
                "incident_type": self.incident_type, "level": self.level, "note": self.note}


@dataclass(frozen=True, kw_only=True)
class DismissIncident(IncidentCommand):
    """The centre finds the report false (the other outcome of verifying it)."""

    name: ClassVar[str] = "incident.verify"
    reason: str

    def fingerprint_args(self) -> dict[str, Any]:
        return {"incident_id": self.incident_id, "dismiss": self.reason}


@dataclass(frozen=True, kw_only=True)
class RespondToIncident(IncidentCommand):
    """Start the response at a level and, usually, activate a contingency plan at it."""

    name: ClassVar[str] = "incident.respond"
    level: str
    plan_id: UUID | None = None
    reason: str = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        _optional_id("plan id", self.plan_id)

    def fingerprint_args(self) -> dict[str, Any]:
        return {"incident_id": self.incident_id, "level": self.level,
                "plan_id": self.plan_id, "reason": self.reason}


@dataclass(frozen=True, kw_only=True)
class ActivatePlan(IncidentCommand):
    """Activate (another) contingency plan on a responding incident, at its level."""

    name: ClassVar[str] = "incident.activate-plan"
    plan_id: UUID

    def __post_init__(self) -> None:
        super().__post_init__()
        checked_id("plan id", self.plan_id)

    def fingerprint_args(self) -> dict[str, Any]:
        return {"incident_id": self.incident_id, "plan_id": self.plan_id}


@dataclass(frozen=True, kw_only=True)
class ChangeIncidentLevel(IncidentCommand):
    """Raise or lower the response level (with the reason); raising it activates the
    activated plans' tasks of the new level that were not given out yet."""

    name: ClassVar[str] = "incident.change-level"
    level: str
    reason: str

    def fingerprint_args(self) -> dict[str, Any]:
        return {"incident_id": self.incident_id, "level": self.level, "reason": self.reason}


@dataclass(frozen=True, kw_only=True)
class EscalateIncident(IncidentCommand):
    """Raise the response level by one (IV -> III -> II -> I); nothing is above I."""

    name: ClassVar[str] = "incident.change-level"
    STEP: ClassVar[int] = -1
    reason: str

    def fingerprint_args(self) -> dict[str, Any]:
        return {"incident_id": self.incident_id, "step": self.STEP, "reason": self.reason}


@dataclass(frozen=True, kw_only=True)
class DeescalateIncident(EscalateIncident):
    """Lower the response level by one (I -> II -> III -> IV); nothing is below IV."""

    name: ClassVar[str] = "incident.change-level"
    STEP: ClassVar[int] = +1


@dataclass(frozen=True, kw_only=True)
class AddSituationReport(IncidentCommand):
    """Add what is known now to the timeline (casualty figures, the affected area)."""

    name: ClassVar[str] = "incident.add-situation-report"
    text: str
    casualties: Mapping[str, int] | None = None
    affected_area: Area | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _set(self, "casualties", casualty_figures(self.casualties))
        _check_area(self.affected_area)

    def fingerprint_args(self) -> dict[str, Any]:
        return {"incident_id": self.incident_id, "text": self.text,
                "casualties": dict(self.casualties) if self.casualties is not None else None,
                "affected_area": self.affected_area.wkt if self.affected_area else None}


@dataclass(frozen=True, kw_only=True)
class LinkToIncident(IncidentCommand):
    """Link a grid case, hotline ticket or hazard alarm (again: no change)."""

    name: ClassVar[str] = "incident.link"
    kind: LinkKind
    target_id: UUID

    def __post_init__(self) -> None:
        super().__post_init__()
        _set(self, "kind", enum_field(LinkKind, "link kind", self.kind))
        checked_id("link target id", self.target_id)

    def fingerprint_args(self) -> dict[str, Any]:
        return {"incident_id": self.incident_id, "kind": self.kind,
                "target_id": self.target_id}


@dataclass(frozen=True, kw_only=True)
class UnlinkFromIncident(IncidentCommand):
    """Remove a link made by mistake."""

    name: ClassVar[str] = "incident.link"
    kind: LinkKind
    target_id: UUID
    reason: str

    def __post_init__(self) -> None:
        super().__post_init__()
        _set(self, "kind", enum_field(LinkKind, "link kind", self.kind))
        checked_id("link target id", self.target_id)

    def fingerprint_args(self) -> dict[str, Any]:
        return {"incident_id": self.incident_id, "unlink": self.kind,
                "target_id": self.target_id, "reason": self.reason}


@dataclass(frozen=True, kw_only=True)
class AssignCommander(IncidentCommand):
    """Name the incident's commander (a user id), or replace the current one."""

    name: ClassVar[str] = "incident.assign-commander"
    commander: str
    reason: str = ""

    def fingerprint_args(self) -> dict[str, Any]:
        return {"incident_id": self.incident_id, "commander": self.commander,
                "reason": self.reason}


@dataclass(frozen=True, kw_only=True)
class AssignTask(IncidentCommand):
    """Give a department a task outside the plans, due `allowance` from now."""

    name: ClassVar[str] = "incident.assign-task"
    department: str
    description: str
    allowance: timedelta
    task_id: UUID | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.allowance, timedelta):
            raise InvalidValue("a task's time allowance must be a duration")
        _optional_id("task id", self.task_id)

    def fingerprint_args(self) -> dict[str, Any]:
        return {"incident_id": self.incident_id, "department": self.department,
                "description": self.description, "allowance": self.allowance,
                "task_id": self.task_id}


@dataclass(frozen=True, kw_only=True)
class TaskCommand(IncidentCommand):
    """A command on one task of an incident."""

    task_id: UUID

    def __post_init__(self) -> None:
        super().__post_init__()
        checked_id("task id", self.task_id)


@dataclass(frozen=True, kw_only=True)
class AcknowledgeTask(TaskCommand):
    """The department confirms it has the task in hand (its own department's only)."""

    name: ClassVar[str] = "incident.task"

    def fingerprint_args(self) -> dict[str, Any]:
        return {"incident_id": self.incident_id, "task_id": self.task_id,
                "move": "acknowledge"}


@dataclass(frozen=True, kw_only=True)
class CompleteTask(TaskCommand):
    """The department reports the task done (its own department's only)."""

    name: ClassVar[str] = "incident.task"
    result: str = ""

    def fingerprint_args(self) -> dict[str, Any]:
        return {"incident_id": self.incident_id, "task_id": self.task_id, "move": "complete",
                "result": self.result}


@dataclass(frozen=True, kw_only=True)
class CancelTask(TaskCommand):
    """The centre calls a task off."""

    name: ClassVar[str] = "incident.cancel-task"
    reason: str

    def fingerprint_args(self) -> dict[str, Any]:
        return {"incident_id": self.incident_id, "task_id": self.task_id,
                "reason": self.reason}


@dataclass(frozen=True, kw_only=True)
class WaiveTask(TaskCommand):
    """The centre, for the commander, accepts closing without an open task, with the
    reason (the task counts as not done)."""

    name: ClassVar[str] = "incident.waive-task"
    reason: str

    def fingerprint_args(self) -> dict[str, Any]:
        return {"incident_id": self.incident_id, "task_id": self.task_id,
                "reason": self.reason}


@dataclass(frozen=True, kw_only=True)
class ResourceOnIncidentCommand(IncidentCommand):
    """A command on a resource's assignment, as the incident records it."""

    resource_id: UUID

    def __post_init__(self) -> None:
        super().__post_init__()
        checked_id("resource id", self.resource_id)


@dataclass(frozen=True, kw_only=True)
class AssignResourceToIncident(ResourceOnIncidentCommand):
    """Record that a resource of a kind now works for the incident (this stream's side)."""

    name: ClassVar[str] = "incident.assign-resource"
    kind: str

    def fingerprint_args(self) -> dict[str, Any]:
        return {"incident_id": self.incident_id, "resource_id": self.resource_id,
                "kind": self.kind}


@dataclass(frozen=True, kw_only=True)
class ReleaseResourceFromIncident(ResourceOnIncidentCommand):
    """Record that a resource no longer works for the incident (this stream's side)."""

    name: ClassVar[str] = "incident.assign-resource"

    def fingerprint_args(self) -> dict[str, Any]:
        return {"incident_id": self.incident_id, "release": self.resource_id}


@dataclass(frozen=True, kw_only=True)
class RecordResourceArrival(ResourceOnIncidentCommand):
    """The resource stream says the resource was sent to the incident (dispatched or
    reassigned to it) at `sent_at`."""

    name: ClassVar[str] = "incident.assign-resource"
    kind: str
    sent_at: datetime

    def __post_init__(self) -> None:
        super().__post_init__()
        checked_instant("time", self.sent_at)

    def fingerprint_args(self) -> dict[str, Any]:
        return {"incident_id": self.incident_id, "resource_id": self.resource_id,
                "kind": self.kind, "sent_at": self.sent_at.astimezone(UTC)}


@dataclass(frozen=True, kw_only=True)
class RecordResourceDeparture(ResourceOnIncidentCommand):
    """The resource stream says the resource left the incident at `left_at` (`how`: cleared
    the scene, stood down, reassigned...)."""

    name: ClassVar[str] = "incident.record-resource-departure"
    how: str
    left_at: datetime

    def __post_init__(self) -> None:
        super().__post_init__()
        checked_instant("time", self.left_at)

    def fingerprint_args(self) -> dict[str, Any]:
        return {"incident_id": self.incident_id, "resource_id": self.resource_id,
                "how": self.how, "left_at": self.left_at.astimezone(UTC)}


@dataclass(frozen=True, kw_only=True)
class ContainIncident(IncidentCommand):
    """The situation is under control."""

    name: ClassVar[str] = "incident.contain"
    note: str = ""

    def fingerprint_args(self) -> dict[str, Any]:
        return {"incident_id": self.incident_id, "note": self.note}


@dataclass(frozen=True, kw_only=True)
class FlareUpIncident(IncidentCommand):
    """A contained incident flared up: back to responding (its level and plans stay)."""

    name: ClassVar[str] = "incident.contain"
    reason: str

    def fingerprint_args(self) -> dict[str, Any]:
        return {"incident_id": self.incident_id, "reason": self.reason, "flare_up": True}


@dataclass(frozen=True, kw_only=True)
class CloseIncident(IncidentCommand):
    """Close a contained incident (releasing the resources still assigned)."""

    name: ClassVar[str] = "incident.close"
    note: str = ""

    def fingerprint_args(self) -> dict[str, Any]:
        return {"incident_id": self.incident_id, "note": self.note}


@dataclass(frozen=True, kw_only=True)
class ReviewIncident(IncidentCommand):
    """Record the after-action review of a closed incident."""

    name: ClassVar[str] = "incident.review"
    summary: str
    findings: tuple[Finding, ...] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        _set(self, "findings", tuple(self.findings))
        for finding in self.findings:
            if not isinstance(finding, Finding):
                raise InvalidValue("each finding of a review must be a Finding")

    def fingerprint_args(self) -> dict[str, Any]:
        return {"incident_id": self.incident_id, "summary": self.summary,
                "findings": [f.as_fact() for f in self.findings]}


# --- contingency plans -----------------------------------------------------------------------


def _check_levels(levels: object) -> tuple[PlanLevel, ...]:
    if isinstance(levels, str | bytes) or not hasattr(levels, "__iter__"):
        raise InvalidValue("a plan's levels must be a list of PlanLevel")
    checked = tuple(levels)
    for content in checked:
        if not isinstance(content, PlanLevel):
            raise InvalidValue("each level of a plan must be a PlanLevel")
    return checked


def _check_types(incident_types: object) -> tuple[str, ...]:
    if isinstance(incident_types, str | bytes) or not hasattr(incident_types, "__iter__"):
        raise InvalidValue("a plan's incident types must be a list of type codes")
    checked = tuple(incident_types)
    for incident_type in checked:
        _optional_text("incident type", incident_type)
    return checked


@dataclass(frozen=True, kw_only=True)
class DefinePlan(Command):
    """Define a contingency plan for an incident category (all its types unless some are
    named): per level, the departments' tasks and the resources required."""

    name: ClassVar[str] = "plan.define"
    code: str
    plan_name: str
    category: str
    levels: tuple[PlanLevel, ...]
    incident_types: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.code, str) or not PLAN_CODE.match(self.code):
            raise InvalidValue(
                f"plan code {self.code!r} must be 1-64 lower-case letters, digits and hyphens"
            )
        _set(self, "incident_types", _check_types(self.incident_types))
        _set(self, "levels", _check_levels(self.levels))

    def fingerprint_args(self) -> dict[str, Any]:
        return {"code": self.code, "name": self.plan_name, "category": self.category,
                "incident_types": list(self.incident_types),
                "levels": [lv.as_fact() for lv in self.levels]}


@dataclass(frozen=True, kw_only=True)
class PlanCommand(Command):
    """A command on one contingency plan."""

    name: ClassVar[str]
    plan_id: UUID

    def __post_init__(self) -> None:
        checked_id("plan id", self.plan_id)


@dataclass(frozen=True, kw_only=True)
class RevisePlan(PlanCommand):
    """Replace a plan's content with a new revision (name and types kept unless given);
    incidents already responding keep the tasks they were given."""

    name: ClassVar[str] = "plan.revise"
    levels: tuple[PlanLevel, ...]
    note: str
    plan_name: str | None = None
    incident_types: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _set(self, "levels", _check_levels(self.levels))
        _optional_text("plan name", self.plan_name)
        if self.incident_types is not None:
            _set(self, "incident_types", _check_types(self.incident_types))

    def fingerprint_args(self) -> dict[str, Any]:
        return {"plan_id": self.plan_id, "levels": [lv.as_fact() for lv in self.levels],
                "note": self.note, "name": self.plan_name,
                "incident_types": (list(self.incident_types)
                                   if self.incident_types is not None else None)}


@dataclass(frozen=True, kw_only=True)
class RetirePlan(PlanCommand):
    """Retire a plan: it can no longer be activated."""

    name: ClassVar[str] = "plan.retire"
    reason: str

    def fingerprint_args(self) -> dict[str, Any]:
        return {"plan_id": self.plan_id, "reason": self.reason}
