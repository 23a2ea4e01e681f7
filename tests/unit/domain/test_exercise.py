"""The exercise stream: a planner plans an exercise from a scenario file (refused whole,
with every problem by line, before anything is recorded), the controller records the
injects it delivered (once each), evaluators rate each objective on the exercise-programme
scale (P / S / M / U) with their observations, kept as events with who and when; the
players in the centre may not rate their own performance."""

from __future__ import annotations

from datetime import timedelta
from functools import partial
from uuid import uuid4

import pytest

from cityops.domain.actors import Actor, Role
from cityops.domain.catalogue import Catalogue
from cityops.domain.commands import CommandContext
from cityops.domain.errors import IllegalTransition, InvalidValue, NotPermitted
from cityops.domain.exercises.application import Exercises
from cityops.domain.exercises.commands import (
    EndExercise,
    PlanExercise,
    RateObjective,
    RecordInjectDelivery,
)
from cityops.domain.exercises.exercise import DeliveryOutcome, Exercise, ExerciseStatus, Rating
from cityops.domain.exercises.scenario import (
    HazardSourceRef,
    ResourceRef,
    ScenarioInvalid,
    ScenarioReference,
    parse_scenario,
)
from cityops.domain.geometry import GeoPoint

from .conftest import POPO, START, FixedClock

PLANNER = Actor("planner-sun", Role.PLANNER)
EVALUATOR = Actor("evaluator-qian", Role.PLANNER)
CONTROL = Actor("exercise-controller", Role.SYSTEM)
DISPATCHER = Actor("duty-zhao", Role.DISPATCHER)

SCENARIO = """version: 1
title: Engine breakdown
objectives:
  - id: verify
    kind: incident-verified
    within: 10m
  - id: tasks
    kind: tasks-acknowledged
    within: 30m
injects:
  - id: breakdown
    at: 5m
    kind: resource-out-of-service
    resource: FE-03
    reason: Pump failure
"""


class OneEngineCity:
    def place(self, name: str) -> GeoPoint | None:
        return None

    def places_like(self, name: str) -> list[str]:
        return []

    def in_city(self, point: GeoPoint) -> bool:
        return True

    def hazard_source(self, name_or_id: str) -> HazardSourceRef | None:
        return None

    def resource(self, call_sign: str) -> ResourceRef | None:
        return ResourceRef("FE-03", "fire-engine", "fire") if call_sign == "FE-03" else None


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(START)


@pytest.fixture
def exercises(clock: FixedClock) -> Exercises:
    reference = ScenarioReference(catalogue=Catalogue.load(), city=OneEngineCity())
    return Exercises(POPO, parse=partial(parse_scenario, reference=reference), clock=clock)


def plan(exercises: Exercises) -> Exercise:
    outcome = exercises.handle(PlanExercise(scenario_text=SCENARIO, drill_id="drill-7"),
                               CommandContext(actor=PLANNER, command_id="plan-1"))
    return exercises.exercise(outcome.subject)


def test_a_planned_exercise_keeps_its_scenario_objectives_and_injects(
        exercises: Exercises) -> None:
    exercise = plan(exercises)
    assert (exercise.title, exercise.status, exercise.drill_id, exercise.started_at) == (
        "Engine breakdown", ExerciseStatus.RUNNING, "drill-7", START)
    assert [o["id"] for o in exercise.objectives] == ["verify", "tasks"]
    assert [(i["id"], i["offset_s"], i["actor"]["department"]) for i in exercise.injects] == [
        ("breakdown", 300.0, "fire")]
    assert exercises.scenario(exercise.id).text == SCENARIO
    assert [o.within for o in exercises.objectives(exercise.id)] == [
        timedelta(minutes=10), timedelta(minutes=30)]
    assert exercises.exercise_ids() == [exercise.id]
    # The same command id again is a repeat, not a second exercise.
    again = exercises.handle(PlanExercise(scenario_text=SCENARIO, drill_id="drill-7"),
                             CommandContext(actor=PLANNER, command_id="plan-1"))
    assert again.repeated and again.subject == exercise.id


def test_an_invalid_scenario_is_refused_before_anything_is_recorded(
        exercises: Exercises) -> None:
    broken = SCENARIO.replace("FE-03", "FE-99").replace("within: 30m", "within: later")
    with pytest.raises(ScenarioInvalid) as refused:
        exercises.handle(PlanExercise(scenario_text=broken), CommandContext(actor=PLANNER))
    assert [p.line for p in refused.value.problems] == [9, 14]
    assert exercises.exercise_ids() == []
    assert exercises.recorder.max_notification_id() in (None, 0)


def test_evaluators_rate_objectives_as_events_with_their_observations(
        exercises: Exercises, clock: FixedClock) -> None:
    exercise_id = plan(exercises).id
    clock.now = START + timedelta(minutes=20)
    exercises.handle(RateObjective(exercise_id=exercise_id, objective_id="verify",
                                   rating="S", observations="Verified by phone, late call-back"),
                     CommandContext(actor=EVALUATOR))
    clock.now = START + timedelta(minutes=25)
    exercises.handle(RateObjective(exercise_id=exercise_id, objective_id="verify",
                                   rating=Rating.P, observations="On review: within the norm"),
                     CommandContext(actor=EVALUATOR))
    exercises.handle(RateObjective(exercise_id=exercise_id, objective_id="verify",
                                   rating=Rating.M, observations="Verification skipped a step"),
                     CommandContext(actor=PLANNER))
    exercise = exercises.exercise(exercise_id)
    rated = [e for e in exercises.events.get(exercise_id)
             if isinstance(e, Exercise.ObjectiveRated)]
    assert [(e.rating, e.actor.user_id, e.timestamp) for e in rated] == [
        ("S", "evaluator-qian", START + timedelta(minutes=20)),
        ("P", "evaluator-qian", START + timedelta(minutes=25)),
        ("M", "planner-sun", START + timedelta(minutes=25)),
    ]
    # In force: each evaluator's latest; the history keeps every rating.
    current = exercise.current_ratings()
    assert sorted((r.evaluator, r.rating.value) for r in current["verify"]) == [
        ("evaluator-qian", "P"), ("planner-sun", "M")]
    assert current["tasks"] == []
    summary = exercise.summary()
    assert summary["objectives"][0]["ratings"][0]["meaning"] in {
        "performed without challenges", "performed with major challenges"}


def test_a_rating_needs_a_known_objective_a_scale_value_and_observations(
        exercises: Exercises) -> None:
    exercise_id = plan(exercises).id
    with pytest.raises(InvalidValue, match=r"has no objective 'speed' \(its objectives: "
                                           r"verify, tasks\)"):
        exercises.handle(RateObjective(exercise_id=exercise_id, objective_id="speed",
                                       rating="P", observations="x"),
                         CommandContext(actor=EVALUATOR))
    with pytest.raises(InvalidValue, match="unknown rating 'A'"):
        RateObjective(exercise_id=exercise_id, objective_id="verify", rating="A",  # type: ignore[arg-type]
                      observations="x")
    with pytest.raises(InvalidValue, match="needs the evaluator's observations"):
        RateObjective(exercise_id=exercise_id, objective_id="verify", rating="P",  # type: ignore[arg-type]
                      observations="  ")


def test_the_players_in_the_centre_may_not_rate_or_plan(exercises: Exercises) -> None:
    exercise_id = plan(exercises).id
    with pytest.raises(NotPermitted, match=r"dispatcher duty-zhao may not "
                                           r"exercise\.rate-objective; allowed roles: admin, "
                                           r"planner"):
        exercises.handle(RateObjective(exercise_id=exercise_id, objective_id="verify",
                                       rating="P", observations="we did great"),
                         CommandContext(actor=DISPATCHER))
    with pytest.raises(NotPermitted):
        exercises.handle(PlanExercise(scenario_text=SCENARIO), CommandContext(actor=DISPATCHER))


def test_each_inject_is_recorded_once_and_not_after_the_end(exercises: Exercises) -> None:
    exercise_id = plan(exercises).id
    subject = uuid4()
    exercises.handle(RecordInjectDelivery(exercise_id=exercise_id, inject_id="breakdown",
                                          outcome="applied", subject=subject),
                     CommandContext(actor=CONTROL))
    delivery = exercises.exercise(exercise_id).deliveries["breakdown"]
    assert (delivery.outcome, delivery.subject) == (DeliveryOutcome.APPLIED, subject)
    with pytest.raises(IllegalTransition, match="already delivered"):
        exercises.handle(RecordInjectDelivery(exercise_id=exercise_id, inject_id="breakdown",
                                              outcome="applied"), CommandContext(actor=CONTROL))
    with pytest.raises(InvalidValue, match="has no inject 'meteor'"):
        exercises.handle(RecordInjectDelivery(exercise_id=exercise_id, inject_id="meteor",
                                              outcome="refused"), CommandContext(actor=CONTROL))
    exercises.handle(EndExercise(exercise_id=exercise_id, note="time"),
                     CommandContext(actor=CONTROL))
    exercise = exercises.exercise(exercise_id)
    assert exercise.status is ExerciseStatus.ENDED and exercise.ended_at == START
    with pytest.raises(IllegalTransition):
        exercises.handle(EndExercise(exercise_id=exercise_id), CommandContext(actor=CONTROL))
    # Ratings may still come after the end: evaluators write up after the hot wash.
    exercises.handle(RateObjective(exercise_id=exercise_id, objective_id="tasks", rating="U",
                                   observations="No plan was activated"),
                     CommandContext(actor=EVALUATOR))
