"""After-action reviews as the API answers them: a review's record (findings and the
improvement plan, `Review.summary()`), and the report computed from the events of an
incident or a period (`cityops.domain.reviews.report`). Durations are seconds."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from cityops.command_center.models.common import Number, Public, Timestamp, Uuid
from cityops.domain.incidents.incident import FindingAspect, TaskStatus
from cityops.domain.reviews.norms import Milestone
from cityops.domain.reviews.report import TaskVerdict, Verdict
from cityops.domain.reviews.review import (
    FindingKind,
    ItemStatus,
    ReviewStatus,
    SubjectKind,
)

Seconds = Number | None


class ReviewSubjectPublic(Public):
    """What the review is about: one incident, or the incidents reported in [start, end)."""

    kind: SubjectKind
    incident_id: Uuid | None
    start: Timestamp | None
    end: Timestamp | None


class ReviewFindingPublic(Public):
    """A strength or an area for improvement."""

    id: Uuid
    kind: FindingKind
    aspect: FindingAspect
    text: str
    department: str | None
    recorded_by: str
    recorded_at: Timestamp
    withdrawn_at: Timestamp | None
    withdraw_reason: str


class ItemStepPublic(Public):
    """A step of an improvement item's follow-up."""

    status: ItemStatus
    by: str
    at: Timestamp
    note: str
    drill_id: str | None = Field(description="The drill that showed it fixed (or not)")
    drill_review_id: Uuid | None


class ImprovementItemPublic(Public):
    """An item of the improvement plan: what, which department (and who), by when, and
    where its follow-up stands."""

    id: Uuid
    action: str
    department: str
    assignee: str
    due: Timestamp
    finding_id: Uuid | None
    planned_by: str
    planned_at: Timestamp
    status: ItemStatus
    done_at: Timestamp | None
    verified_at: Timestamp | None
    verified_in_drill: str | None
    verified_in_review: Uuid | None
    overdue: bool = Field(description="Still open after its due time")
    steps: list[ItemStepPublic]


class ReviewPublic(Public):
    """A review's record: its findings and improvement plan (the figures are its report)."""

    id: Uuid
    version: int
    status: ReviewStatus
    title: str
    subject: ReviewSubjectPublic
    drill_id: str | None = Field(description="The drill it reviews (null: live history)")
    opened_by: str
    opened_at: Timestamp
    summary: str
    findings: list[ReviewFindingPublic]
    improvements: list[ImprovementItemPublic]
    open_improvements: int
    concluded_at: Timestamp | None
    concluded_by: str | None


class FollowedUpItemPublic(ImprovementItemPublic):
    """An improvement item with the review it belongs to."""

    review_id: Uuid
    review_title: str
    drill_id: str | None = Field(description="The drill the review is about (null: live)")


class FollowedUpItemsPublic(Public):
    """The improvement items of every review, by due time."""

    data: list[FollowedUpItemPublic]
    count: int


class ReviewsPublic(Public):
    """Every review of this system, newest first."""

    data: list[ReviewPublic]
    count: int


class TimelineEntryPublic(Public):
    """One thing that happened, and who did it."""

    at: Timestamp
    incident_id: Uuid
    stream: Literal["incident", "resource"]
    subject: str = Field(description="The incident's title or the resource's call sign")
    event: str
    what: str
    actor: str | None
    role: str | None
    department: str | None
    facts: dict[str, Any]


class MilestonePublic(Public):
    """A milestone of the response against its norm."""

    milestone: Milestone
    at: Timestamp | None
    after_report_s: Seconds
    target_s: Seconds = Field(description="The norm for the category and level")
    verdict: Verdict


class ResourceResponsePublic(Public):
    """One resource's assignment to the incident (NFPA 1710 terms)."""

    resource_id: Uuid
    call_sign: str
    name: str
    kind: str
    department: str
    dispatched_at: Timestamp
    en_route_at: Timestamp | None
    on_scene_at: Timestamp | None
    ended_at: Timestamp | None
    outcome: str | None
    dispatched_by: str | None
    queue_s: Number = Field(description="Report -> dispatched")
    turnout_s: Seconds = Field(description="Dispatched -> en route")
    travel_s: Seconds = Field(description="En route -> on scene")
    response_s: Seconds = Field(description="Report -> on scene")
    on_scene_s: Seconds = Field(description="On scene -> left")


class DepartmentResponsePublic(Public):
    """A department's resources and tasks."""

    department: str
    resources: int
    first_dispatched_after_s: Seconds
    first_on_scene_after_s: Seconds
    tasks: int
    on_time: int
    late: int
    never: int
    pending: int
    cancelled: int


class TaskResultPublic(Public):
    """A task against its deadline."""

    task_id: Uuid
    incident_id: Uuid
    department: str
    description: str
    plan_code: str | None
    level: str | None
    assigned_at: Timestamp
    due: Timestamp
    acknowledged_at: Timestamp | None
    done_at: Timestamp | None
    status: TaskStatus
    verdict: TaskVerdict
    late_by_s: Seconds
    reason: str


class ResourceUsePublic(Public):
    """Resources of one kind: required by the plans, used, arrived."""

    kind: str
    required: int
    used: int
    arrived: int
    shortfall: int


class ObjectivePublic(Public):
    """An exercise objective as the scenario measured it."""

    name: str
    target: str
    measured: str | None
    verdict: Verdict
    rating: str | None
    observations: str


class IncidentRowPublic(Public):
    """An incident of a period's report."""

    incident_id: Uuid
    title: str
    category: str
    incident_type: str
    level: str
    status: str
    reported_at: Timestamp
    milestones: list[MilestonePublic]
    late_or_never: int


class MilestoneFiguresPublic(Public):
    """A milestone over the incidents of a period."""

    milestone: Milestone
    count: int
    mean_s: Seconds
    p50_s: Seconds
    p90_s: Seconds
    met: int
    missed: int
    pending: int


class IncidentReportPublic(Public):
    """The after-action report of one incident, computed from the events."""

    kind: Literal["incident"]
    incident_id: Uuid
    title: str
    category: str
    incident_type: str
    level: str
    status: str
    reported_at: Timestamp
    reported_by: str
    commander: str | None
    plans: list[str]
    milestones: list[MilestonePublic]
    resources: list[ResourceResponsePublic]
    departments: list[DepartmentResponsePublic]
    tasks: list[TaskResultPublic]
    late_or_never: list[TaskResultPublic]
    resource_use: list[ResourceUsePublic]
    objectives: list[ObjectivePublic]
    timeline: list[TimelineEntryPublic]
    as_of: Timestamp


class PeriodReportPublic(Public):
    """The after-action report of a period (a whole drill), computed from the events."""

    kind: Literal["period"]
    start: Timestamp | None
    end: Timestamp | None
    incidents: list[IncidentRowPublic]
    milestones: list[MilestoneFiguresPublic]
    resources: list[ResourceResponsePublic]
    departments: list[DepartmentResponsePublic]
    tasks: list[TaskResultPublic]
    late_or_never: list[TaskResultPublic]
    resource_use: list[ResourceUsePublic]
    objectives: list[ObjectivePublic]
    timeline: list[TimelineEntryPublic]
    timeline_left_out: int
    as_of: Timestamp


class IncidentReviewPublic(Public):
    """An incident's after-action review: the report and, once opened, the review's
    record; `drill_id` says whether it is a drill's."""

    drill_id: str | None
    review: ReviewPublic | None
    report: IncidentReportPublic


class PeriodReviewPublic(Public):
    """A period's after-action review: the report and the review's record, if any."""

    drill_id: str | None
    review: ReviewPublic | None
    report: PeriodReportPublic
