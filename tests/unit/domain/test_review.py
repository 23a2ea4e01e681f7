"""The review aggregate's rules and the response norms, without storage: an improvement item
is followed up open -> done -> verified (by a later drill, never by its own review or drill),
reopened when a drill shows it not fixed; a review concludes with a summary and a finding;
a period is a real interval; the norms are checked against the catalogue and the most
specific applies."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID, uuid4

import pytest

from cityops.domain.actors import Actor, Role
from cityops.domain.catalogue import Catalogue
from cityops.domain.errors import CatalogueError, IllegalTransition, InvalidValue, NotFound
from cityops.domain.incidents.incident import FindingAspect
from cityops.domain.reviews.commands import OpenReview, PlanImprovement
from cityops.domain.reviews.norms import Milestone, ResponseNorms
from cityops.domain.reviews.review import (
    FindingKind,
    ItemStatus,
    Review,
    ReviewSubject,
    SubjectKind,
    review_id_for_incident,
)

AT = datetime(2026, 3, 10, 1, 0, tzinfo=UTC)
PLANNER = Actor("plan-lin", Role.PLANNER)


def a_review(drill_id: str | None = None) -> Review:
    incident_id = uuid4()
    return Review.open(review_id=review_id_for_incident(incident_id),
                       subject=ReviewSubject(kind=SubjectKind.INCIDENT, incident_id=incident_id),
                       title="Warehouse fire", drill_id=drill_id, actor=PLANNER, at=AT)


def with_item(review: Review) -> tuple[Review, UUID]:
    item = uuid4()
    review.plan_improvement(item_id=item, action="Name cordon teams", department="police",
                            assignee="", due=AT + timedelta(days=30), finding_id=None,
                            actor=PLANNER, at=AT)
    return review, item


def test_an_item_is_verified_only_once_done_and_only_by_a_later_drill() -> None:
    review, item = with_item(a_review(drill_id="d-1"))
    with pytest.raises(IllegalTransition, match="it is open"):
        review.verify_improvement(item, drill_id="d-2", drill_review_id=uuid4(),
                                  drill_reviewed_at=None, note="", actor=PLANNER, at=AT)
    review.complete_improvement(item, note="", actor=PLANNER, at=AT)
    with pytest.raises(IllegalTransition, match="its own improvement items"):
        review.verify_improvement(item, drill_id="d-2", drill_review_id=review.id,
                                  drill_reviewed_at=None, note="", actor=PLANNER, at=AT)
    with pytest.raises(IllegalTransition, match="drill d-1 is the drill this review is about"):
        review.verify_improvement(item, drill_id="d-1", drill_review_id=uuid4(),
                                  drill_reviewed_at=None, note="", actor=PLANNER, at=AT)
    with pytest.raises(IllegalTransition, match="opened before the item was planned"):
        review.verify_improvement(item, drill_id="d-2", drill_review_id=uuid4(),
                                  drill_reviewed_at=AT - timedelta(days=1), note="",
                                  actor=PLANNER, at=AT)
    later = uuid4()
    review.verify_improvement(item, drill_id="d-2", drill_review_id=later,
                              drill_reviewed_at=AT + timedelta(days=40), note="fixed",
                              actor=PLANNER, at=AT + timedelta(days=41))
    state = review.items[item]
    assert (state.status, state.verified_in_drill, state.verified_in_review) == (
        ItemStatus.VERIFIED, "d-2", later)
    events = [type(e).__name__ for e in review.collect_events()]
    assert events == ["Opened", "ImprovementPlanned", "ImprovementDone", "ImprovementVerified"]


def test_a_drill_that_shows_an_item_not_fixed_reopens_it_naming_the_drill() -> None:
    review, item = with_item(a_review())
    review.complete_improvement(item, note="", actor=PLANNER, at=AT)
    with pytest.raises(InvalidValue, match="both the drill and its review"):
        review.reopen_improvement(item, reason="late again", drill_id="d-3",
                                  drill_review_id=None, actor=PLANNER, at=AT)
    review.reopen_improvement(item, reason="late again", drill_id="d-3",
                              drill_review_id=uuid4(), actor=PLANNER, at=AT)
    state = review.items[item]
    assert state.status is ItemStatus.OPEN and state.done_at is None
    assert state.steps[-1].drill_id == "d-3"
    with pytest.raises(IllegalTransition):
        review.reopen_improvement(item, reason="again", drill_id=None,
                                  drill_review_id=None, actor=PLANNER, at=AT)
    review.drop_improvement(item, reason="overtaken", actor=PLANNER, at=AT)
    assert review.items[item].status is ItemStatus.DROPPED
    with pytest.raises(NotFound, match="improvement item"):
        review.complete_improvement(uuid4(), note="", actor=PLANNER, at=AT)


def test_a_review_concludes_with_a_summary_and_a_finding_then_findings_are_closed() -> None:
    review = a_review()
    with pytest.raises(IllegalTransition, match="no summary"):
        review.conclude(actor=PLANNER, at=AT)
    review.write_summary(summary="Fire out in 50 min", actor=PLANNER, at=AT)
    with pytest.raises(IllegalTransition, match="no finding"):
        review.conclude(actor=PLANNER, at=AT)
    finding = uuid4()
    review.record_finding(finding_id=finding, kind=FindingKind.STRENGTH,
                          aspect=FindingAspect.RESPONSE_TIME, text="Engines out in 1 min",
                          department="fire", actor=PLANNER, at=AT)
    review.withdraw_finding(finding, reason="duplicate", actor=PLANNER, at=AT)
    with pytest.raises(IllegalTransition, match="withdrawn already"):
        review.withdraw_finding(finding, reason="again", actor=PLANNER, at=AT)
    with pytest.raises(IllegalTransition, match="withdrawn"):
        review.plan_improvement(item_id=uuid4(), action="x", department="fire", assignee="",
                                due=AT + timedelta(days=1), finding_id=finding,
                                actor=PLANNER, at=AT)
    with pytest.raises(IllegalTransition, match="no finding"):
        review.conclude(actor=PLANNER, at=AT)
    review.record_finding(finding_id=uuid4(), kind=FindingKind.AREA_FOR_IMPROVEMENT,
                          aspect=FindingAspect.COORDINATION, text="Cordon late",
                          department=None, actor=PLANNER, at=AT)
    review.conclude(actor=PLANNER, at=AT)
    with pytest.raises(IllegalTransition, match="concluded"):
        review.write_summary(summary="again", actor=PLANNER, at=AT)


@pytest.mark.parametrize(("start", "end", "message"), [
    (AT, AT, "ends"),
    (AT, AT - timedelta(hours=1), "ends"),
    (AT, AT + timedelta(days=401), "at most 400 days"),
    (datetime(2026, 3, 10), AT, "no time zone"),
    (None, AT, "start and its end"),
])
def test_a_period_must_be_a_real_interval(start: datetime | None, end: datetime,
                                          message: str) -> None:
    with pytest.raises(InvalidValue, match=message):
        ReviewSubject(kind=SubjectKind.PERIOD, start=start, end=end)


def test_commands_refuse_what_cannot_be_a_review() -> None:
    with pytest.raises(InvalidValue, match="give no review id"):
        OpenReview(title="x", incident_id=uuid4(), review_id=uuid4())
    with pytest.raises(InvalidValue, match="give no period"):
        OpenReview(title="x", incident_id=uuid4(), start=AT, end=AT + timedelta(days=1))
    with pytest.raises(InvalidValue, match="no time zone"):
        PlanImprovement(review_id=uuid4(), action="x", department="fire",
                        due=datetime(2026, 4, 1))
    with pytest.raises(InvalidValue, match="id that follows"):
        Review.open(review_id=uuid4(), subject=ReviewSubject(kind=SubjectKind.INCIDENT,
                                                             incident_id=uuid4()),
                    title="x", drill_id=None, actor=PLANNER, at=AT)


def test_the_most_specific_norm_applies_per_milestone() -> None:
    norms = ResponseNorms.load(Catalogue.load())
    fire = norms.for_incident("accident-disaster", "II")
    assert fire[Milestone.ON_SCENE] == timedelta(minutes=12)  # the category's I/II entry
    assert norms.for_incident("accident-disaster", "IV")[Milestone.ON_SCENE] == \
        timedelta(minutes=15)
    assert norms.for_incident("public-health", "I")[Milestone.VERIFIED] == \
        timedelta(minutes=30)  # the category's own before '*' I/II


def test_norms_naming_unknown_codes_are_refused_at_start_up(tmp_path: Path) -> None:
    from importlib import resources

    catalogue = Catalogue.load()
    source = resources.files("cityops.domain").joinpath("data", "response_norms.json")
    data = json.loads(source.read_text(encoding="utf-8"))
    data["norms"][0]["category"] = "meteor-strike"
    (tmp_path / "response_norms.json").write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(CatalogueError, match="unknown incident category 'meteor-strike'"):
        ResponseNorms.load(catalogue, tmp_path)
    data["norms"][0]["category"] = "*"
    data["norms"][0]["levels"] = ["V"]
    (tmp_path / "response_norms.json").write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(CatalogueError, match="unknown incident level 'V'"):
        ResponseNorms.load(catalogue, tmp_path)
