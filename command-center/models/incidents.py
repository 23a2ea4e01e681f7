"""Incidents and contingency plans as the API answers them: the incident document (its
`summary()`: timeline, plans, tasks, resources, review), the plan document, and pages."""

from __future__ import annotations

from pydantic import Field

from cityops.command_center.models.common import (
    AreaPublic,
    Number,
    PagePublic,
    PointPublic,
    Public,
    Timestamp,
    Uuid,
    withheld,
)
from cityops.domain.incidents.incident import (
    FindingAspect,
    IncidentSource,
    IncidentStatus,
    LinkKind,
    TaskStatus,
)
from cityops.domain.incidents.plans import PlanStatus


class CommanderChangePublic(Public):
    """A commander named or replaced."""

    commander: str
    previous: str | None
    reason: str
    at: Timestamp
    by: str


class ResponseTimesPublic(Public):
    """Seconds from the report to each milestone (null until it is reached)."""

    to_verified: Number | None
    to_responding: Number | None
    to_contained: Number | None
    to_closed: Number | None


class LevelChangePublic(Public):
    """The response level set, raised or lowered."""

    level: str
    previous_level: str | None
    reason: str
    at: Timestamp
    by: str


class SituationReportPublic(Public):
    """One situation report of the timeline."""

    number: int
    text: str
    casualties: dict[str, int] | None = withheld(
        "Counts of people: dead, injured, missing, trapped, evacuated.")
    affected_area: AreaPublic | None
    author: str
    author_role: str
    author_department: str | None
    at: Timestamp


class IncidentLinkPublic(Public):
    """A grid case, hotline ticket or hazard alarm linked to the incident."""

    kind: LinkKind
    id: Uuid
    at: Timestamp
    by: str


class ActivatedPlanPublic(Public):
    """A contingency plan activated on the incident, at which levels, and what it requires."""

    plan_id: Uuid
    code: str
    revision: int
    levels: list[str]
    requirements: dict[str, int] = Field(description="Resources required, by kind")


class IncidentTaskPublic(Public):
    """A task of the incident for one department, from a plan or ordered ad hoc."""

    id: Uuid
    department: str
    description: str
    status: TaskStatus
    due: Timestamp
    plan_id: Uuid | None
    level: str | None
    assigned_at: Timestamp
    assigned_by: str
    acknowledged_at: Timestamp | None
    done_at: Timestamp | None
    done_late: bool | None
    cancelled_at: Timestamp | None
    result: str | None
    cancel_reason: str | None
    waived_at: Timestamp | None
    waived_by: str | None
    waive_reason: str | None


class ResourceAssignmentPublic(Public):
    """A resource that worked for the incident, from its assignment to its release."""

    resource_id: Uuid
    kind: str
    assigned_at: Timestamp
    assigned_by: str
    released_at: Timestamp | None
    released_by: str | None
    release_reason: str | None


class FindingPublic(Public):
    """One structured finding of an after-action review."""

    aspect: FindingAspect
    text: str
    recommendation: str
    department: str | None


class ReviewPublic(Public):
    """The after-action review."""

    summary: str = withheld()
    findings: list[FindingPublic] = withheld()
    by: str
    at: Timestamp


class IncidentDocument(Public):
    """An incident as recorded: its `summary()` (also the read model's document and what the
    live push sends)."""

    id: Uuid
    version: int = Field(description="Also the answer's ETag; send it as If-Match")
    status: IncidentStatus
    category: str
    incident_type: str
    level: str = Field(description="I (especially major) to IV (general)")
    level_rank: int
    title: str
    description: str
    location: PointPublic
    affected_area: AreaPublic | None
    source: IncidentSource
    source_ref: str | None
    warning: str | None = Field(description="Warning colour: red, orange, yellow or blue")
    commander: str | None
    commanders: list[CommanderChangePublic]
    reported_by: str
    reported_at: Timestamp
    verified_at: Timestamp | None
    dismissed_at: Timestamp | None
    dismiss_reason: str | None
    responding_at: Timestamp | None
    level_set_at: Timestamp | None
    contained_at: Timestamp | None
    closed_at: Timestamp | None
    reviewed_at: Timestamp | None
    response_times: ResponseTimesPublic
    level_changes: list[LevelChangePublic]
    situation_reports: list[SituationReportPublic]
    casualties: dict[str, int] | None = withheld("The latest casualty figures.")
    links: list[IncidentLinkPublic]
    plans: list[ActivatedPlanPublic]
    tasks: list[IncidentTaskPublic]
    open_tasks: int
    resources: list[ResourceAssignmentPublic]
    required_resources: dict[str, int] = Field(description="By kind, over the plans")
    resource_shortfall: dict[str, int] = Field(description="Required and not assigned now")
    notes: list[str]
    review: ReviewPublic | None = withheld("The after-action review.")


class IncidentPublic(IncidentDocument):
    """An incident as recorded now (the body of GET and of every command)."""


class IncidentsPublic(PagePublic[IncidentDocument]):
    """A page of incidents (the read model's documents)."""


class PlanTaskPublic(Public):
    """A task a plan orders one department at a level."""

    department: str
    description: str
    allowance_minutes: Number


class ResourceRequirementPublic(Public):
    """Resources of one kind a plan requires at a level."""

    kind: str
    count: int


class PlanLevelPublic(Public):
    """The content of a plan for one response level."""

    level: str
    tasks: list[PlanTaskPublic]
    resources: list[ResourceRequirementPublic]


class PlanRevisionPublic(Public):
    """One revision of a plan."""

    revision: int
    at: Timestamp
    by: str
    note: str


class PlanDocument(Public):
    """A contingency plan as recorded: its `summary()`."""

    id: Uuid
    version: int
    code: str
    name: str
    status: PlanStatus
    category: str
    incident_types: list[str]
    revision: int
    levels: list[PlanLevelPublic]
    defined_at: Timestamp
    retired_at: Timestamp | None
    retire_reason: str | None
    revisions: list[PlanRevisionPublic]


class PlanPublic(PlanDocument):
    """A contingency plan as recorded now."""


class PlansPublic(PagePublic[PlanDocument]):
    """A page of contingency plans."""
