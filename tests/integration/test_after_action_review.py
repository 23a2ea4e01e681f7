"""The after-action review on both back ends, on a warehouse fire whose every figure can be
counted by hand (tests/review_script.py): the timeline says what happened and who did it;
the response times report -> verified -> dispatched -> on scene -> contained -> closed, per
resource and per department, are exact and judged against the category's norms; the plan's
tasks done late or never are named; the resources used are set against the plan's
requirements; and the planners' findings and improvement plan are stored as events and
followed up (open -> done -> verified by a later drill's review), on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest

from cityops.bootstrap import CitySystem, build_system
from cityops.domain.commands import CommandContext
from cityops.domain.errors import IllegalTransition, InvalidValue, NotFound
from cityops.domain.incidents.incident import FindingAspect
from cityops.domain.reviews.commands import (
    CompleteImprovement,
    ConcludeReview,
    OpenReview,
    PlanImprovement,
    RecordReviewFinding,
    ReopenImprovement,
    VerifyImprovement,
    WriteReviewSummary,
)
from cityops.domain.reviews.norms import Milestone
from cityops.domain.reviews.report import (
    IncidentReport,
    MeasuredObjective,
    ReviewReports,
    TaskVerdict,
    Verdict,
)
from cityops.domain.reviews.review import ItemStatus, Review, review_id_for_incident
from cityops.settings import Settings
from tests.review_script import (
    PLANNER,
    T0,
    TITLE,
    ManualClock,
    WarehouseFire,
    play_warehouse_fire,
)

MIN = 60.0


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def played(request: pytest.FixtureRequest, tmp_path: Path,
           demo_city: Any) -> Iterator[tuple[CitySystem, ManualClock, WarehouseFire]]:
    url = None
    if request.param == "postgres":
        databases = request.getfixturevalue("test_databases")
        url = databases.create("reviews")
    clock = ManualClock()
    system = build_system(Settings(data_dir=tmp_path, database_url=url, database_pool_size=2,
                                   run_projections=False), clock=clock, city=demo_city)
    try:
        yield system, clock, play_warehouse_fire(system, clock)
    finally:
        system.close()
        if url is not None:
            databases.drop(url)


def report_of(system: CitySystem, incident_id: UUID, **options: Any) -> IncidentReport:
    reports = ReviewReports(system.incidents, system.incidents.events.get, system.resources,
                            system.resources.events.get, system.response_norms)
    return reports.incident_report(incident_id, now=system.clock(), **options)


def test_the_timeline_says_what_happened_and_who_did_it_in_order(played: Any) -> None:
    system, _, fire = played
    timeline = report_of(system, fire.incident_id).timeline
    seen = [(round((e.at - T0).total_seconds() / MIN), e.stream, e.event,
             e.actor.user_id if e.actor else None) for e in timeline]
    assert seen == [
        (0, "incident", "Reported", "hot-wu"),
        (4, "incident", "Verified", "duty-zhao"),
        (5, "incident", "ResponseStarted", "duty-zhao"),
        (5, "incident", "PlanActivated", "duty-zhao"),
        (7, "incident", "ResourceAssigned", "duty-zhao"),
        (7, "resource", "Dispatched", "duty-zhao"),
        (8, "incident", "ResourceAssigned", "duty-zhao"),
        (8, "resource", "WentEnRoute", "fire-sun"),
        (8, "resource", "Dispatched", "duty-zhao"),
        (9, "resource", "WentEnRoute", "fire-sun"),
        (10, "incident", "TaskAcknowledged", "police-qian"),
        (16, "resource", "ArrivedOnScene", "fire-sun"),
        (18, "resource", "ArrivedOnScene", "fire-sun"),
        (30, "incident", "TaskDone", "police-qian"),
        (50, "incident", "TaskDone", "fire-sun"),
        (60, "incident", "Contained", "duty-zhao"),
        (70, "incident", "TaskWaived", "duty-zhao"),
        (75, "incident", "ResourceReleased", "fire-sun"),
        (75, "resource", "ClearedScene", "fire-sun"),
        (76, "incident", "ResourceReleased", "fire-sun"),
        (76, "resource", "ClearedScene", "fire-sun"),
        (90, "resource", "BecameAvailable", "fire-sun"),
        (90, "resource", "BecameAvailable", "fire-sun"),
        (120, "incident", "Closed", "duty-zhao"),
    ]
    what = [e.what for e in timeline]
    assert what[0] == (f"reported: {TITLE} (accident-disaster/fire, level IV, via hotline)")
    assert what[3] == "plan warehouse-fire activated at level II: 3 task(s) to departments"
    assert what[4] == "fire-engine ENGINE 1 assigned"
    assert what[5] == "ENGINE 1 (fire-engine, fire) dispatched"
    assert what[16] == ("task waived (health: Ambulances on stand-by): no casualties: "
                        "ambulances not needed")
    assert timeline[1].actor is not None and timeline[1].actor.role.value == "dispatcher"


def test_response_times_per_milestone_resource_and_department_are_exact(played: Any) -> None:
    system, _, fire = played
    report = report_of(system, fire.incident_id)
    milestones = {m.milestone: (m.after_report.total_seconds() if m.after_report else None,
                                m.target.total_seconds() if m.target else None, m.verdict)
                  for m in report.milestones}
    # accident-disaster at level II: verified 5, dispatched 6, on scene 12 min, contained
    # 2 h, closed 12 h (response_norms.json).
    assert milestones == {
        Milestone.VERIFIED: (4 * MIN, 5 * MIN, Verdict.MET),
        Milestone.DISPATCHED: (7 * MIN, 6 * MIN, Verdict.MISSED),
        Milestone.ON_SCENE: (16 * MIN, 12 * MIN, Verdict.MISSED),
        Milestone.CONTAINED: (60 * MIN, 120 * MIN, Verdict.MET),
        Milestone.CLOSED: (120 * MIN, 720 * MIN, Verdict.MET),
    }
    engines = {r.call_sign: r.as_dict() for r in report.resources}
    assert {name: {k: engines[name][k] for k in ("queue_s", "turnout_s", "travel_s",
                                                 "response_s", "on_scene_s", "outcome",
                                                 "dispatched_by", "department")}
            for name in engines} == {
        "ENGINE 1": {"queue_s": 7 * MIN, "turnout_s": 1 * MIN, "travel_s": 8 * MIN,
                     "response_s": 16 * MIN, "on_scene_s": 59 * MIN, "outcome": "cleared",
                     "dispatched_by": "duty-zhao", "department": "fire"},
        "ENGINE 2": {"queue_s": 8 * MIN, "turnout_s": 1 * MIN, "travel_s": 9 * MIN,
                     "response_s": 18 * MIN, "on_scene_s": 58 * MIN, "outcome": "cleared",
                     "dispatched_by": "duty-zhao", "department": "fire"},
    }
    departments = {d.department: d.as_dict() for d in report.departments}
    assert departments["fire"] == {
        "department": "fire", "resources": 2, "first_dispatched_after_s": 7 * MIN,
        "first_on_scene_after_s": 16 * MIN, "tasks": 1, "on_time": 1, "late": 0, "never": 0,
        "pending": 0, "cancelled": 0}
    assert (departments["police"]["late"], departments["health"]["never"]) == (1, 1)
    assert departments["police"]["resources"] == departments["health"]["resources"] == 0


def test_plan_tasks_done_late_or_never_against_their_deadlines(played: Any) -> None:
    system, _, fire = played
    report = report_of(system, fire.incident_id)
    verdicts = {t.department: (t.verdict, t.late_by.total_seconds() if t.late_by else None)
                for t in report.tasks}
    assert verdicts == {
        "fire": (TaskVerdict.ON_TIME, None),       # due 65, done 50
        "police": (TaskVerdict.LATE, 10 * MIN),    # due 20, done 30
        "health": (TaskVerdict.NEVER, 45 * MIN),   # due 25, waived at 70
    }
    assert [t.department for t in report.late_or_never] == ["police", "health"]
    assert report.late_or_never[1].reason == "no casualties: ambulances not needed"
    assert {t.plan_code for t in report.tasks} == {"warehouse-fire"}


def test_an_open_task_past_its_deadline_counts_as_never_done_so_far(played: Any) -> None:
    """Judged at a time before the tasks were settled (the report of a running response):
    the health task, due at 25 and still open, is overdue."""
    system, _, fire = played
    # Version 8: the police task done at 30, nothing more before 50.
    at_40 = system.incidents.repository.get(fire.incident_id, version=8)
    assert at_40.tasks[fire.tasks["health"]].status.value == "assigned"

    class Frozen:
        def incident(self, incident_id: UUID) -> Any:
            return at_40

    early = ReviewReports(Frozen(), lambda i: system.incidents.events.get(i, lte=8),
                          system.resources, system.resources.events.get,
                          system.response_norms)
    report = early.incident_report(fire.incident_id, now=T0 + timedelta(minutes=40))
    verdicts = {t.department: t.verdict for t in report.tasks}
    assert verdicts["health"] is TaskVerdict.NEVER
    assert verdicts["fire"] is TaskVerdict.PENDING  # due 65
    assert report.milestone(Milestone.CONTAINED).verdict is Verdict.PENDING


def test_resources_used_against_the_plans_requirements(played: Any) -> None:
    system, _, fire = played
    uses = {u.kind: u.as_dict() for u in report_of(system, fire.incident_id).resource_use}
    assert uses == {
        "ambulance": {"kind": "ambulance", "required": 1, "used": 0, "arrived": 0,
                      "shortfall": 1},
        "fire-engine": {"kind": "fire-engine", "required": 2, "used": 2, "arrived": 2,
                        "shortfall": 0},
    }


def test_objectives_measured_by_a_scenario_are_shown_as_given(played: Any) -> None:
    system, _, fire = played
    objective = MeasuredObjective(name="First fire engine on scene", target="12 min",
                                  measured="16 min", verdict=Verdict.MISSED,
                                  rating="performed with some challenges",
                                  observations="engine 1 left late")
    report = report_of(system, fire.incident_id, objectives=[objective])
    assert report.as_dict()["objectives"] == [objective.as_dict()]


def test_a_period_report_adds_its_incidents_up(played: Any) -> None:
    system, clock, fire = played
    system.catch_up()
    reports = ReviewReports(system.incidents, system.incidents.events.get, system.resources,
                            system.resources.events.get, system.response_norms)
    period = reports.period_report([fire.incident_id], start=T0, end=T0 + timedelta(hours=3),
                                   now=clock())
    figures = {m.milestone: m.as_dict() for m in period.milestones}
    assert figures[Milestone.ON_SCENE] == {"milestone": "on_scene", "count": 1,
                                           "mean_s": 16 * MIN, "p50_s": 16 * MIN,
                                           "p90_s": 16 * MIN, "met": 0, "missed": 1,
                                           "pending": 0}
    assert [t.department for t in period.late_or_never] == ["police", "health"]
    assert len(period.timeline) == 24 and period.timeline_left_out == 0


def test_findings_and_the_improvement_plan_are_events_followed_up(played: Any) -> None:
    system, clock, fire = played
    planner = CommandContext(actor=PLANNER)
    handle = system.commands.handle
    review_id = handle(OpenReview(title="Warehouse fire", incident_id=fire.incident_id),
                       planner).subject
    assert review_id == review_id_for_incident(fire.incident_id)
    with pytest.raises(IllegalTransition, match="already opened"):
        handle(OpenReview(title="again", incident_id=fire.incident_id), planner)
    with pytest.raises(NotFound):
        handle(OpenReview(title="nothing", incident_id=uuid4()), planner)
    finding = handle(RecordReviewFinding(
        review_id=review_id, text="The cordon came 10 minutes late", department="police",
        aspect=FindingAspect.COORDINATION), planner).result
    assert isinstance(finding, UUID)
    with pytest.raises(InvalidValue, match="unknown department"):
        handle(PlanImprovement(review_id=review_id, action="x", department="nowhere",
                               due=T0 + timedelta(days=30)), planner)
    with pytest.raises(InvalidValue, match="due after it is planned"):
        handle(PlanImprovement(review_id=review_id, action="x", department="police",
                               due=T0), planner)
    item = handle(PlanImprovement(
        review_id=review_id, action="Pre-assign a cordon team to each fire station",
        department="police", assignee="Inspector Qian", due=T0 + timedelta(days=30),
        finding_id=finding), planner).result
    assert isinstance(item, UUID)
    handle(WriteReviewSummary(review_id=review_id, summary="Out in 50 min; cordon late."),
           planner)
    handle(ConcludeReview(review_id=review_id), planner)
    with pytest.raises(IllegalTransition, match="concluded"):
        handle(RecordReviewFinding(review_id=review_id, text="late thought",
                                   aspect=FindingAspect.OTHER), planner)

    # Followed up after concluding: done, then a later drill shows it fixed.
    with pytest.raises(IllegalTransition, match="open"):
        handle(VerifyImprovement(review_id=review_id, item_id=item, drill_id="d-2026-04",
                                 drill_review_id=uuid4()), planner)
    clock.at(60 * 24 * 10)
    handle(CompleteImprovement(review_id=review_id, item_id=item, note="teams named"),
           planner)
    with pytest.raises(IllegalTransition, match="its own"):
        handle(VerifyImprovement(review_id=review_id, item_id=item, drill_id="d-2026-04",
                                 drill_review_id=review_id), planner)
    # A review in this (live) store is not a review of drill d-2026-04.
    other = handle(OpenReview(title="March", start=T0, end=T0 + timedelta(days=1)),
                   planner).subject
    with pytest.raises(IllegalTransition, match="not of drill d-2026-04"):
        handle(VerifyImprovement(review_id=review_id, item_id=item, drill_id="d-2026-04",
                                 drill_review_id=other), planner)
    drill_review = uuid4()  # in the drill's own store, which this one cannot see
    handle(ReopenImprovement(review_id=review_id, item_id=item, reason="cordon late again",
                             drill_id="d-2026-04", drill_review_id=drill_review), planner)
    handle(CompleteImprovement(review_id=review_id, item_id=item, note="drilled"), planner)
    clock.at(60 * 24 * 40)
    handle(VerifyImprovement(review_id=review_id, item_id=item, drill_id="d-2026-05",
                             drill_review_id=drill_review, note="cordon in 8 min"), planner)

    # Everything is stored: a fresh read from the store gives the same state.
    system.reviews.repository.cache = None
    review = system.reviews.review(review_id)
    assert [type(e).__name__ for e in system.reviews.events.get(review_id)] == [
        "Opened", "FindingRecorded", "ImprovementPlanned", "SummaryWritten", "Concluded",
        "ImprovementDone", "ImprovementReopened", "ImprovementDone", "ImprovementVerified"]
    assert all(e.actor == PLANNER for e in system.reviews.events.get(review_id))
    stored = review.items[item]
    assert stored.status is ItemStatus.VERIFIED
    assert (stored.verified_in_drill, stored.verified_in_review) == ("d-2026-05", drill_review)
    assert [s.status for s in stored.steps] == [ItemStatus.OPEN, ItemStatus.DONE,
                                                ItemStatus.OPEN, ItemStatus.DONE,
                                                ItemStatus.VERIFIED]
    assert stored.steps[2].drill_id == "d-2026-04"
    assert review.summary(clock())["improvements"][0]["overdue"] is False
    assert [r.id for r in system.reviews.reviews()] == [other, review_id]
    assert isinstance(system.reviews.review(other), Review)


def test_an_improvement_still_open_after_its_due_time_is_overdue(played: Any) -> None:
    system, clock, fire = played
    planner = CommandContext(actor=PLANNER)
    review_id = system.commands.handle(
        OpenReview(title="Warehouse fire", incident_id=fire.incident_id), planner).subject
    system.commands.handle(PlanImprovement(
        review_id=review_id, action="Train the cordon teams", department="police",
        due=clock() + timedelta(days=7)), planner)
    assert system.reviews.review(review_id).summary(clock())["improvements"][0]["overdue"] \
        is False
    later = clock() + timedelta(days=8)
    assert system.reviews.review(review_id).summary(later)["improvements"][0]["overdue"] \
        is True


def test_a_periods_incidents_come_from_the_read_model_on_both_back_ends(played: Any) -> None:
    """The incidents reported in [start, end): the read model's times compare as instants
    (stored as UTC text) on SQLite and PostgreSQL alike, the end excluded."""
    from cityops.command_center.routers.reviews import period_incidents

    system, _, fire = played
    system.catch_up()

    def listed(start_minutes: float, end_minutes: float) -> list[UUID]:
        return period_incidents(system, T0 + timedelta(minutes=start_minutes),
                                T0 + timedelta(minutes=end_minutes), PLANNER)

    assert listed(-60, 60) == [fire.incident_id]
    assert listed(0, 1) == [fire.incident_id]  # reported at T0: the start is included
    assert listed(-60, 0) == []  # the end is excluded
    assert listed(1, 600) == []
    assert period_incidents(system, None, None, PLANNER) == [fire.incident_id]
