"""The review: planners' findings about a response and the improvement plan that follows
them, kept as events.

A review is opened on one incident (one review per incident and store: its id follows from
the incident's) or on a period of history (a whole drill, a day, a season); in a drill's
system it is a review of that drill (`drill_id`). What the response measured (timeline,
response times, tasks, resources, objectives) is not stored here: it is computed from the
events of the streams each time (`report.py`), so a review never disagrees with the history.

Findings are strengths or areas for improvement, each about an aspect of the response. An
improvement item says what is to be done, by which department (and person), by when; it is
followed up: open -> done -> verified, where verified means a later drill showed it fixed
(the item names that drill and its review). A drill that shows it is not fixed reopens it.
Items are never deleted: one made in error is dropped with a reason, and stays on record.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from cityops.domain.actors import Actor
from cityops.domain.errors import IllegalTransition, InvalidValue, NotFound
from cityops.domain.incidents.incident import FindingAspect
from cityops.domain.model import CityAggregate, checked_text, iso_or_none

REVIEW_NAMESPACE = uuid5(NAMESPACE_URL, "https://cityops.invalid/reviews")
MAX_TITLE = 200
MAX_PERIOD_DAYS = 400
"""The longest period one review covers (a season, a year of drills)."""


class ReviewStatus(StrEnum):
    OPEN = "open"
    """Findings and improvement items are being written."""
    CONCLUDED = "concluded"
    """The report is final; its improvement items are still followed up."""


class SubjectKind(StrEnum):
    INCIDENT = "incident"
    PERIOD = "period"


class FindingKind(StrEnum):
    """Exercise programmes' two kinds of observation."""

    STRENGTH = "strength"
    AREA_FOR_IMPROVEMENT = "area-for-improvement"


class ItemStatus(StrEnum):
    OPEN = "open"
    DONE = "done"
    VERIFIED = "verified"
    """A later drill showed it fixed."""
    DROPPED = "dropped"
    """Made in error or overtaken; kept on record with the reason."""


def review_id_for_incident(incident_id: UUID) -> UUID:
    """The id of an incident's review: one per incident, found from the incident."""
    return uuid5(REVIEW_NAMESPACE, f"incident:{incident_id}")


@dataclass(frozen=True)
class ReviewSubject:
    """What a review is about: one incident, or every incident reported in [start, end)."""

    kind: SubjectKind
    incident_id: UUID | None = None
    start: datetime | None = None
    end: datetime | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", SubjectKind(self.kind))
        if self.kind is SubjectKind.INCIDENT:
            if not isinstance(self.incident_id, UUID):
                raise InvalidValue("an incident's review names the incident (a UUID)")
            if self.start is not None or self.end is not None:
                raise InvalidValue("an incident's review covers the incident: give no period")
            return
        if self.incident_id is not None:
            raise InvalidValue("a period's review covers every incident of the period: "
                               "give no incident")
        if self.start is None or self.end is None:
            raise InvalidValue("a period's review needs its start and its end")
        for label, moment in (("period start", self.start), ("period end", self.end)):
            if moment.tzinfo is None:
                raise InvalidValue(f"{label} has no time zone: {moment.isoformat()}")
        if self.end <= self.start:
            raise InvalidValue(f"the period ends ({self.end.isoformat()}) before it starts "
                               f"({self.start.isoformat()})")
        if (self.end - self.start).days > MAX_PERIOD_DAYS:
            raise InvalidValue(f"a period's review covers at most {MAX_PERIOD_DAYS} days")

    def as_fact(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "incident_id": self.incident_id,
                "start": self.start, "end": self.end}

    @classmethod
    def from_fact(cls, fact: Mapping[str, Any]) -> ReviewSubject:
        return cls(kind=fact["kind"], incident_id=fact["incident_id"], start=fact["start"],
                   end=fact["end"])

    def summary(self) -> dict[str, Any]:
        return {"kind": self.kind.value,
                "incident_id": str(self.incident_id) if self.incident_id else None,
                "start": iso_or_none(self.start), "end": iso_or_none(self.end)}


@dataclass
class ReviewFinding:
    """One observation of the review."""

    id: UUID
    kind: FindingKind
    aspect: FindingAspect
    text: str
    department: str | None
    recorded_by: str
    recorded_at: datetime
    withdrawn_at: datetime | None = None
    withdraw_reason: str = ""

    def summary(self) -> dict[str, Any]:
        return {"id": str(self.id), "kind": self.kind.value, "aspect": self.aspect.value,
                "text": self.text, "department": self.department,
                "recorded_by": self.recorded_by, "recorded_at": self.recorded_at.isoformat(),
                "withdrawn_at": iso_or_none(self.withdrawn_at),
                "withdraw_reason": self.withdraw_reason}


@dataclass
class ItemStep:
    """A step of an improvement item's follow-up: what, by whom, when, and the note."""

    status: ItemStatus
    by: str
    at: datetime
    note: str
    drill_id: str | None = None
    drill_review_id: UUID | None = None

    def summary(self) -> dict[str, Any]:
        return {"status": self.status.value, "by": self.by, "at": self.at.isoformat(),
                "note": self.note, "drill_id": self.drill_id,
                "drill_review_id": str(self.drill_review_id) if self.drill_review_id
                else None}


@dataclass
class ImprovementItem:
    """What is to be done about a finding, by whom, by when; followed up to verified."""

    id: UUID
    action: str
    department: str
    assignee: str
    due: datetime
    finding_id: UUID | None
    planned_by: str
    planned_at: datetime
    status: ItemStatus = ItemStatus.OPEN
    done_at: datetime | None = None
    verified_at: datetime | None = None
    verified_in_drill: str | None = None
    verified_in_review: UUID | None = None
    steps: list[ItemStep] = field(default_factory=list)

    def is_overdue(self, now: datetime) -> bool:
        """Still open after its due time."""
        return self.status is ItemStatus.OPEN and now > self.due

    def summary(self) -> dict[str, Any]:
        return {"id": str(self.id), "action": self.action, "department": self.department,
                "assignee": self.assignee, "due": self.due.isoformat(),
                "finding_id": str(self.finding_id) if self.finding_id else None,
                "planned_by": self.planned_by, "planned_at": self.planned_at.isoformat(),
                "status": self.status.value, "done_at": iso_or_none(self.done_at),
                "verified_at": iso_or_none(self.verified_at),
                "verified_in_drill": self.verified_in_drill,
                "verified_in_review": (str(self.verified_in_review)
                                       if self.verified_in_review else None),
                "steps": [s.summary() for s in self.steps]}


class Review(CityAggregate):
    """The after-action review of an incident or a period: findings and improvement plan."""

    KIND = "review"

    class Opened(CityAggregate.Created):
        """`Review.__init__` makes the review's state from these facts."""

        actor: Actor
        subject: dict[str, Any]
        title: str
        drill_id: str | None

    class SummaryWritten(CityAggregate.Event):
        summary: str

        def apply(self, review: Review) -> None:
            review.summary_text = self.summary

    class FindingRecorded(CityAggregate.Event):
        finding_id: UUID
        kind: str
        aspect: str
        text: str
        department: str | None

        def apply(self, review: Review) -> None:
            review.findings[self.finding_id] = ReviewFinding(
                id=self.finding_id, kind=FindingKind(self.kind),
                aspect=FindingAspect(self.aspect), text=self.text, department=self.department,
                recorded_by=self.actor.user_id, recorded_at=self.timestamp)

    class FindingWithdrawn(CityAggregate.Event):
        finding_id: UUID
        reason: str

        def apply(self, review: Review) -> None:
            finding = review.findings[self.finding_id]
            finding.withdrawn_at = self.timestamp
            finding.withdraw_reason = self.reason

    class ImprovementPlanned(CityAggregate.Event):
        item_id: UUID
        action: str
        department: str
        assignee: str
        due: datetime
        finding_id: UUID | None

        def apply(self, review: Review) -> None:
            item = ImprovementItem(
                id=self.item_id, action=self.action, department=self.department,
                assignee=self.assignee, due=self.due, finding_id=self.finding_id,
                planned_by=self.actor.user_id, planned_at=self.timestamp)
            item.steps.append(ItemStep(ItemStatus.OPEN, self.actor.user_id, self.timestamp,
                                       "planned"))
            review.items[self.item_id] = item

    class ImprovementDone(CityAggregate.Event):
        item_id: UUID
        note: str

        def apply(self, review: Review) -> None:
            item = review.items[self.item_id]
            item.status = ItemStatus.DONE
            item.done_at = self.timestamp
            item.steps.append(ItemStep(ItemStatus.DONE, self.actor.user_id, self.timestamp,
                                       self.note))

    class ImprovementReopened(CityAggregate.Event):
        """Not fixed after all (a later drill showed it, when it names one)."""

        item_id: UUID
        reason: str
        drill_id: str | None
        drill_review_id: UUID | None

        def apply(self, review: Review) -> None:
            item = review.items[self.item_id]
            item.status = ItemStatus.OPEN
            item.done_at = None
            item.steps.append(ItemStep(ItemStatus.OPEN, self.actor.user_id, self.timestamp,
                                       self.reason, self.drill_id, self.drill_review_id))

    class ImprovementVerified(CityAggregate.Event):
        """A later drill's review showed the item fixed."""

        item_id: UUID
        drill_id: str
        drill_review_id: UUID
        note: str

        def apply(self, review: Review) -> None:
            item = review.items[self.item_id]
            item.status = ItemStatus.VERIFIED
            item.verified_at = self.timestamp
            item.verified_in_drill = self.drill_id
            item.verified_in_review = self.drill_review_id
            item.steps.append(ItemStep(ItemStatus.VERIFIED, self.actor.user_id,
                                       self.timestamp, self.note, self.drill_id,
                                       self.drill_review_id))

    class ImprovementDropped(CityAggregate.Event):
        item_id: UUID
        reason: str

        def apply(self, review: Review) -> None:
            item = review.items[self.item_id]
            item.status = ItemStatus.DROPPED
            item.steps.append(ItemStep(ItemStatus.DROPPED, self.actor.user_id,
                                       self.timestamp, self.reason))

    class Concluded(CityAggregate.Event):
        """The report is final (findings no longer change; items are still followed up)."""

        def apply(self, review: Review) -> None:
            review.status = ReviewStatus.CONCLUDED
            review.concluded_at = self.timestamp
            review.concluded_by = self.actor.user_id

    # --- state ----------------------------------------------------------------------------

    def __init__(self, *, subject: dict[str, Any], title: str, drill_id: str | None,
                 actor: Actor, timestamp: datetime) -> None:
        """The review as opened (from the `Opened` event's facts)."""
        self.status: ReviewStatus = ReviewStatus.OPEN
        self.subject = ReviewSubject.from_fact(subject)
        self.title = title
        self.drill_id = drill_id
        """The drill whose events it reviews (None: live history)."""
        self.opened_by = actor.user_id
        self.opened_at = timestamp
        self.summary_text = ""
        self.findings: dict[UUID, ReviewFinding] = {}
        self.items: dict[UUID, ImprovementItem] = {}
        self.concluded_at: datetime | None = None
        self.concluded_by: str | None = None

    # --- commands -------------------------------------------------------------------------

    @classmethod
    def open(cls, *, review_id: UUID, subject: ReviewSubject, title: str,
             drill_id: str | None, actor: Actor, at: datetime) -> Review:
        """A planner opens the review of an incident or a period."""
        if subject.kind is SubjectKind.INCIDENT:
            assert subject.incident_id is not None
            if review_id != review_id_for_incident(subject.incident_id):
                raise InvalidValue("an incident's review has the id that follows from the "
                                   "incident's")
        if drill_id is not None:
            drill_id = checked_text("drill id", drill_id, limit=100)
        return cls._create(cls.Opened, id=review_id, timestamp=at, actor=actor,
                           subject=subject.as_fact(),
                           title=checked_text("review title", title, limit=MAX_TITLE),
                           drill_id=drill_id)

    def write_summary(self, *, summary: str, actor: Actor, at: datetime) -> None:
        self.require_status("write the summary of", ReviewStatus.OPEN)
        self.record(self.SummaryWritten, actor=actor, at=at,
                    summary=checked_text("review summary", summary))

    def record_finding(self, *, finding_id: UUID, kind: FindingKind, aspect: FindingAspect,
                       text: str, department: str | None, actor: Actor, at: datetime) -> None:
        self.require_status("record a finding on", ReviewStatus.OPEN)
        if finding_id in self.findings:
            self.refuse("record a finding on", f"finding {finding_id} exists already")
        self.record(self.FindingRecorded, actor=actor, at=at, finding_id=finding_id,
                    kind=FindingKind(kind).value, aspect=FindingAspect(aspect).value,
                    text=checked_text("finding", text), department=department)

    def withdraw_finding(self, finding_id: UUID, *, reason: str, actor: Actor,
                         at: datetime) -> None:
        self.require_status("withdraw a finding of", ReviewStatus.OPEN)
        finding = self.finding(finding_id)
        if finding.withdrawn_at is not None:
            self.refuse("withdraw a finding of", f"finding {finding_id} is withdrawn already")
        self.record(self.FindingWithdrawn, actor=actor, at=at, finding_id=finding_id,
                    reason=checked_text("reason", reason))

    def plan_improvement(self, *, item_id: UUID, action: str, department: str, assignee: str,
                         due: datetime, finding_id: UUID | None, actor: Actor,
                         at: datetime) -> None:
        """Add an item to the improvement plan: what, which department (and who), by when."""
        attempted = "plan an improvement on"
        if item_id in self.items:
            self.refuse(attempted, f"improvement item {item_id} exists already")
        if finding_id is not None:
            finding = self.finding(finding_id)
            if finding.withdrawn_at is not None:
                self.refuse(attempted, f"finding {finding_id} is withdrawn")
        if due <= at:
            raise InvalidValue(f"an improvement is due after it is planned: due "
                               f"{due.isoformat()} is not after {at.isoformat()}")
        self.record(self.ImprovementPlanned, actor=actor, at=at, item_id=item_id,
                    action=checked_text("improvement action", action),
                    department=department,
                    assignee=checked_text("assignee", assignee, required=False, limit=100),
                    due=due, finding_id=finding_id)

    def complete_improvement(self, item_id: UUID, *, note: str, actor: Actor,
                             at: datetime) -> None:
        self._require_item(item_id, "mark done", ItemStatus.OPEN)
        self.record(self.ImprovementDone, actor=actor, at=at, item_id=item_id,
                    note=checked_text("note", note, required=False))

    def reopen_improvement(self, item_id: UUID, *, reason: str, drill_id: str | None,
                           drill_review_id: UUID | None, actor: Actor, at: datetime) -> None:
        """Not fixed after all: back to open (naming the drill that showed it, if one did)."""
        self._require_item(item_id, "reopen", ItemStatus.DONE, ItemStatus.VERIFIED)
        if (drill_id is None) != (drill_review_id is None):
            raise InvalidValue("name both the drill and its review that showed the item not "
                               "fixed, or neither")
        self.record(self.ImprovementReopened, actor=actor, at=at, item_id=item_id,
                    reason=checked_text("reason", reason), drill_id=drill_id,
                    drill_review_id=drill_review_id)

    def verify_improvement(self, item_id: UUID, *, drill_id: str, drill_review_id: UUID,
                           drill_reviewed_at: datetime | None, note: str, actor: Actor,
                           at: datetime) -> None:
        """A later drill's review showed the item fixed. `drill_reviewed_at`: when that
        review was opened, when it is known here (it must come after the item was done)."""
        item = self._require_item(item_id, "verify", ItemStatus.DONE)
        if drill_review_id == self.id:
            self.refuse(f"verify improvement item {item_id} of",
                        "a review cannot verify its own improvement items: a later drill does")
        if drill_id == self.drill_id:
            self.refuse(f"verify improvement item {item_id} of",
                        f"drill {drill_id} is the drill this review is about: a later drill "
                        "shows the item fixed")
        assert item.done_at is not None
        if drill_reviewed_at is not None and drill_reviewed_at < item.planned_at:
            self.refuse(f"verify improvement item {item_id} of",
                        f"review {drill_review_id} was opened before the item was planned")
        self.record(self.ImprovementVerified, actor=actor, at=at, item_id=item_id,
                    drill_id=checked_text("drill id", drill_id, limit=100),
                    drill_review_id=drill_review_id,
                    note=checked_text("note", note, required=False))

    def drop_improvement(self, item_id: UUID, *, reason: str, actor: Actor,
                         at: datetime) -> None:
        self._require_item(item_id, "drop", ItemStatus.OPEN, ItemStatus.DONE)
        self.record(self.ImprovementDropped, actor=actor, at=at, item_id=item_id,
                    reason=checked_text("reason", reason))

    def conclude(self, *, actor: Actor, at: datetime) -> None:
        """Make the report final: it needs its summary and at least one finding."""
        self.require_status("conclude", ReviewStatus.OPEN)
        if not self.summary_text:
            self.refuse("conclude", "it has no summary yet")
        if not any(f.withdrawn_at is None for f in self.findings.values()):
            self.refuse("conclude", "it has no finding yet")
        self.record(self.Concluded, actor=actor, at=at)

    # --- reading --------------------------------------------------------------------------

    def finding(self, finding_id: UUID) -> ReviewFinding:
        try:
            return self.findings[finding_id]
        except KeyError:
            raise NotFound("review finding", finding_id) from None

    def item(self, item_id: UUID) -> ImprovementItem:
        try:
            return self.items[item_id]
        except KeyError:
            raise NotFound("improvement item", item_id) from None

    def _require_item(self, item_id: UUID, attempted: str,
                      *allowed: ItemStatus) -> ImprovementItem:
        item = self.item(item_id)
        if item.status not in allowed:
            raise IllegalTransition("improvement item", item_id, item.status.value, attempted)
        return item

    def summary(self, now: datetime | None = None) -> dict[str, Any]:
        """The review's state as plain data; `now` marks the items overdue at that time."""
        items = []
        for item in self.items.values():
            shown = item.summary()
            shown["overdue"] = item.is_overdue(now) if now is not None else False
            items.append(shown)
        return {
            "id": str(self.id),
            "version": self.version,
            "status": self.status.value,
            "title": self.title,
            "subject": self.subject.summary(),
            "drill_id": self.drill_id,
            "opened_by": self.opened_by,
            "opened_at": self.opened_at.isoformat(),
            "summary": self.summary_text,
            "findings": [f.summary() for f in self.findings.values()],
            "improvements": items,
            "open_improvements": sum(1 for i in self.items.values()
                                     if i.status is ItemStatus.OPEN),
            "concluded_at": iso_or_none(self.concluded_at),
            "concluded_by": self.concluded_by,
        }


REGISTRY_ID = uuid5(REVIEW_NAMESPACE, "registry")


class ReviewRegistry(CityAggregate):
    """The list of every review opened in a store (event stores have no index by kind),
    kept under a fixed id and saved with each review's opening."""

    KIND = "review registry"

    class Started(CityAggregate.Created):
        actor: Actor

    class Listed(CityAggregate.Event):
        review_id: UUID
        kind: str
        incident_id: UUID | None

        def apply(self, registry: ReviewRegistry) -> None:
            registry.entries.append((self.review_id, SubjectKind(self.kind), self.incident_id))

    def __init__(self, *, actor: Actor, timestamp: datetime) -> None:
        self.status = ReviewStatus.OPEN
        self.entries: list[tuple[UUID, SubjectKind, UUID | None]] = []

    @classmethod
    def start(cls, *, actor: Actor, at: datetime) -> ReviewRegistry:
        return cls._create(cls.Started, id=REGISTRY_ID, timestamp=at, actor=actor)

    def list_review(self, review: Review, *, actor: Actor, at: datetime) -> None:
        self.record(self.Listed, actor=actor, at=max(at, self.modified_on),
                    review_id=review.id, kind=review.subject.kind.value,
                    incident_id=review.subject.incident_id)

    def review_ids(self) -> list[UUID]:
        """Every review, newest first."""
        return [review_id for review_id, _, _ in reversed(self.entries)]
