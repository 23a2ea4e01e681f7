"""The reviews application: opens after-action reviews and keeps their findings and
improvement plans; each system has its own (a drill's reviews live in the drill's store,
live incidents' reviews in the live store)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from uuid import UUID, uuid4, uuid5

from cityops.domain.application import COMMAND_NAMESPACE, CityApplication, Clock, UnitOfWork
from cityops.domain.catalogue import Catalogue
from cityops.domain.commands import handles
from cityops.domain.errors import IllegalTransition, NotFound
from cityops.domain.model import CityAggregate
from cityops.domain.reviews.commands import (
    CompleteImprovement,
    ConcludeReview,
    DropImprovement,
    OpenReview,
    PlanImprovement,
    RecordReviewFinding,
    ReopenImprovement,
    VerifyImprovement,
    WithdrawReviewFinding,
    WriteReviewSummary,
)
from cityops.domain.reviews.review import (
    REGISTRY_ID,
    Review,
    ReviewRegistry,
    SubjectKind,
    review_id_for_incident,
)


class Reviews(CityApplication):
    """After-action reviews: findings and improvement plans, followed up."""

    name = "reviews"

    def __init__(self, env: Mapping[str, str] | None = None, *, catalogue: Catalogue,
                 incident_exists: Callable[[UUID], object] | None = None,
                 drill_id: str | None = None, clock: Clock) -> None:
        super().__init__(env, clock=clock)
        self.catalogue = catalogue
        self.incident_exists = incident_exists
        """Raises `NotFound` for an incident this system does not have."""
        self.drill_id = drill_id
        """Set in a drill's system: its reviews are reviews of that drill."""

    # --- queries ------------------------------------------------------------------------

    def review(self, review_id: UUID) -> Review:
        return self.load(Review, review_id)

    def review_of_incident(self, incident_id: UUID) -> Review:
        return self.load(Review, review_id_for_incident(incident_id))

    def reviews(self) -> list[Review]:
        """Every review of this store, newest first."""
        try:
            registry = self.load(ReviewRegistry, REGISTRY_ID)
        except NotFound:
            return []
        return [self.review(review_id) for review_id in registry.review_ids()]

    # --- handlers -----------------------------------------------------------------------

    @handles(OpenReview)
    def open(self, command: OpenReview, uow: UnitOfWork) -> list[CityAggregate]:
        """A planner opens the review of an incident or of a period."""
        subject = command.subject()
        if subject.kind is SubjectKind.INCIDENT:
            assert subject.incident_id is not None
            if self.incident_exists is not None:
                self.incident_exists(subject.incident_id)
            review_id = review_id_for_incident(subject.incident_id)
        elif command.review_id is not None:
            review_id = command.review_id
        elif uow.command_id:
            review_id = uuid5(COMMAND_NAMESPACE, f"review:{uow.command_id}")
        else:
            review_id = uuid4()
        if uow.exists(review_id):
            raise IllegalTransition(Review.KIND, review_id, "already opened", "open")
        review = Review.open(review_id=review_id, subject=subject, title=command.title,
                             drill_id=self.drill_id, actor=uow.actor, at=uow.now)
        registry: ReviewRegistry
        if uow.exists(REGISTRY_ID):
            registry = uow.load(ReviewRegistry, REGISTRY_ID)
        else:
            registry = ReviewRegistry.start(actor=uow.actor, at=uow.now)
        registry.list_review(review, actor=uow.actor, at=uow.now)
        return [review, registry]

    @handles(WriteReviewSummary)
    def write_summary(self, command: WriteReviewSummary, uow: UnitOfWork) -> list[Review]:
        review = uow.load(Review, command.review_id)
        review.write_summary(summary=command.summary, actor=uow.actor, at=uow.now)
        return [review]

    @handles(RecordReviewFinding)
    def record_finding(self, command: RecordReviewFinding, uow: UnitOfWork) -> list[Review]:
        review = uow.load(Review, command.review_id)
        if command.department is not None:
            self.catalogue.department(command.department)
        finding_id = command.finding_id or self._new_id("finding", uow)
        review.record_finding(finding_id=finding_id, kind=command.kind, aspect=command.aspect,
                              text=command.text, department=command.department,
                              actor=uow.actor, at=uow.now)
        uow.result = finding_id
        return [review]

    @handles(WithdrawReviewFinding)
    def withdraw_finding(self, command: WithdrawReviewFinding,
                         uow: UnitOfWork) -> list[Review]:
        review = uow.load(Review, command.review_id)
        review.withdraw_finding(command.finding_id, reason=command.reason, actor=uow.actor,
                                at=uow.now)
        return [review]

    @handles(PlanImprovement)
    def plan_improvement(self, command: PlanImprovement, uow: UnitOfWork) -> list[Review]:
        review = uow.load(Review, command.review_id)
        self.catalogue.department(command.department)
        item_id = command.item_id or self._new_id("improvement", uow)
        review.plan_improvement(item_id=item_id, action=command.action,
                                department=command.department, assignee=command.assignee,
                                due=command.due, finding_id=command.finding_id,
                                actor=uow.actor, at=uow.now)
        uow.result = item_id
        return [review]

    @handles(CompleteImprovement)
    def complete_improvement(self, command: CompleteImprovement,
                             uow: UnitOfWork) -> list[Review]:
        review = uow.load(Review, command.review_id)
        review.complete_improvement(command.item_id, note=command.note, actor=uow.actor,
                                    at=uow.now)
        return [review]

    @handles(ReopenImprovement)
    def reopen_improvement(self, command: ReopenImprovement,
                           uow: UnitOfWork) -> list[Review]:
        review = uow.load(Review, command.review_id)
        review.reopen_improvement(command.item_id, reason=command.reason,
                                  drill_id=command.drill_id,
                                  drill_review_id=command.drill_review_id, actor=uow.actor,
                                  at=uow.now)
        return [review]

    @handles(VerifyImprovement)
    def verify_improvement(self, command: VerifyImprovement,
                           uow: UnitOfWork) -> list[Review]:
        """A later drill's review showed the item fixed. When that review is in this store,
        it must be a review of that drill (a drill's reviews are usually in the drill's own
        store, which this one cannot see: the reference is then kept as given)."""
        review = uow.load(Review, command.review_id)
        reviewed_at = None
        if command.drill_review_id != review.id and self.exists(command.drill_review_id):
            later = self.review(command.drill_review_id)
            if later.drill_id != command.drill_id:
                raise IllegalTransition(
                    Review.KIND, later.id,
                    f"a review of {'drill ' + later.drill_id if later.drill_id else 'live'}"
                    f" history, not of drill {command.drill_id}", "verify an item with")
            reviewed_at = later.opened_at
        review.verify_improvement(command.item_id, drill_id=command.drill_id,
                                  drill_review_id=command.drill_review_id,
                                  drill_reviewed_at=reviewed_at, note=command.note,
                                  actor=uow.actor, at=uow.now)
        return [review]

    @handles(DropImprovement)
    def drop_improvement(self, command: DropImprovement, uow: UnitOfWork) -> list[Review]:
        review = uow.load(Review, command.review_id)
        review.drop_improvement(command.item_id, reason=command.reason, actor=uow.actor,
                                at=uow.now)
        return [review]

    @handles(ConcludeReview)
    def conclude(self, command: ConcludeReview, uow: UnitOfWork) -> list[Review]:
        review = uow.load(Review, command.review_id)
        review.conclude(actor=uow.actor, at=uow.now)
        return [review]

    @staticmethod
    def _new_id(kind: str, uow: UnitOfWork) -> UUID:
        """A new finding's or item's id: derived from the command id (a repeat lands on the
        same one), else new."""
        if uow.command_id:
            return uuid5(COMMAND_NAMESPACE, f"{kind}:{uow.command_id}")
        return uuid4()

