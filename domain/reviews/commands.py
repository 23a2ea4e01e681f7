"""The review's commands, as values (`cityops.domain.commands.Command`): frozen dataclasses
that check their own fields when built, handed with a `CommandContext` to the one entry point
(`system.commands.handle`), which runs the one handler of each in `Reviews` (`@handles`).
What needs the catalogue (a department's code) or the review's state is checked there."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar
from uuid import UUID

from cityops.domain.commands import Command, enum_field, text_field
from cityops.domain.errors import InvalidValue
from cityops.domain.incidents.incident import FindingAspect
from cityops.domain.reviews.review import FindingKind, ReviewSubject, SubjectKind
from cityops.domain.values import checked_id, checked_instant


def _optional_id(label: str, value: UUID | None) -> None:
    if value is not None:
        checked_id(label, value)


@dataclass(frozen=True, kw_only=True)
class OpenReview(Command):
    """Open the review of one incident (`incident_id`) or of a period ([`start`, `end`))."""

    name: ClassVar[str] = "review.open"
    title: str
    incident_id: UUID | None = None
    start: datetime | None = None
    end: datetime | None = None
    review_id: UUID | None = None
    """A period review's id (default: one derived from the command id, or a new one)."""

    def __post_init__(self) -> None:
        text_field("review title", self.title)
        _optional_id("incident id", self.incident_id)
        _optional_id("review id", self.review_id)
        for label, moment in (("period start", self.start), ("period end", self.end)):
            if moment is not None:
                checked_instant(label, moment)
        self.subject()  # an impossible subject is refused when the command is built

    def subject(self) -> ReviewSubject:
        if self.incident_id is not None:
            if self.review_id is not None:
                raise InvalidValue("an incident's review has the id that follows from the "
                                   "incident's: give no review id")
            return ReviewSubject(kind=SubjectKind.INCIDENT, incident_id=self.incident_id,
                                 start=self.start, end=self.end)
        return ReviewSubject(kind=SubjectKind.PERIOD, start=self.start, end=self.end)


@dataclass(frozen=True, kw_only=True)
class ReviewCommand(Command):
    """A command on one review (`review_id`)."""

    name: ClassVar[str]
    review_id: UUID

    def __post_init__(self) -> None:
        checked_id("review id", self.review_id)


@dataclass(frozen=True, kw_only=True)
class WriteReviewSummary(ReviewCommand):
    name: ClassVar[str] = "review.write-summary"
    summary: str

    def __post_init__(self) -> None:
        super().__post_init__()
        text_field("review summary", self.summary)


@dataclass(frozen=True, kw_only=True)
class RecordReviewFinding(ReviewCommand):
    """A strength or an area for improvement, about one aspect of the response."""

    name: ClassVar[str] = "review.record-finding"
    text: str
    aspect: FindingAspect
    kind: FindingKind = FindingKind.AREA_FOR_IMPROVEMENT
    department: str | None = None
    finding_id: UUID | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        text_field("finding", self.text)
        object.__setattr__(self, "aspect",
                           enum_field(FindingAspect, "finding aspect", self.aspect))
        object.__setattr__(self, "kind", enum_field(FindingKind, "finding kind", self.kind))
        if self.department is not None:
            text_field("department", self.department)
        _optional_id("finding id", self.finding_id)


@dataclass(frozen=True, kw_only=True)
class WithdrawReviewFinding(ReviewCommand):
    name: ClassVar[str] = "review.withdraw-finding"
    finding_id: UUID
    reason: str

    def __post_init__(self) -> None:
        super().__post_init__()
        checked_id("finding id", self.finding_id)
        text_field("reason", self.reason)


@dataclass(frozen=True, kw_only=True)
class PlanImprovement(ReviewCommand):
    """An item of the improvement plan: what, which department (and who), by when."""

    name: ClassVar[str] = "review.plan-improvement"
    action: str
    department: str
    due: datetime
    assignee: str = ""
    finding_id: UUID | None = None
    item_id: UUID | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        text_field("improvement action", self.action)
        text_field("department", self.department)
        text_field("assignee", self.assignee)
        checked_instant("due", self.due)
        _optional_id("finding id", self.finding_id)
        _optional_id("item id", self.item_id)


@dataclass(frozen=True, kw_only=True)
class ItemCommand(ReviewCommand):
    name: ClassVar[str]
    item_id: UUID

    def __post_init__(self) -> None:
        super().__post_init__()
        checked_id("item id", self.item_id)


@dataclass(frozen=True, kw_only=True)
class CompleteImprovement(ItemCommand):
    name: ClassVar[str] = "review.complete-improvement"
    note: str = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        text_field("note", self.note)


@dataclass(frozen=True, kw_only=True)
class ReopenImprovement(ItemCommand):
    """Not fixed after all; `drill_id` and `drill_review_id` name the drill that showed it."""

    name: ClassVar[str] = "review.reopen-improvement"
    reason: str
    drill_id: str | None = None
    drill_review_id: UUID | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        text_field("reason", self.reason)
        if self.drill_id is not None:
            text_field("drill id", self.drill_id)
        _optional_id("drill review id", self.drill_review_id)


@dataclass(frozen=True, kw_only=True)
class VerifyImprovement(ItemCommand):
    """A later drill (`drill_id`) showed the item fixed, in its review `drill_review_id`."""

    name: ClassVar[str] = "review.verify-improvement"
    drill_id: str
    drill_review_id: UUID
    note: str = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        text_field("drill id", self.drill_id)
        checked_id("drill review id", self.drill_review_id)
        text_field("note", self.note)


@dataclass(frozen=True, kw_only=True)
class DropImprovement(ItemCommand):
    name: ClassVar[str] = "review.drop-improvement"
    reason: str

    def __post_init__(self) -> None:
        super().__post_init__()
        text_field("reason", self.reason)


@dataclass(frozen=True, kw_only=True)
class ConcludeReview(ReviewCommand):
    name: ClassVar[str] = "review.conclude"
