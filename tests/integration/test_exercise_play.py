"""An exercise played into a real system, on SQLite and on PostgreSQL, on a simulated clock:
each inject goes in through the path its real counterpart takes (ingest messages through
the ingest pipeline, commands through the one entry point, as the actor the inject names)
and shows in the read models; a refused inject is refused as a real input would be (a dead
letter kept by ingest, a domain error); the players' actions are measured against the
objectives as the drill runs; evaluators' ratings are events; the shipped scenarios
validate and play."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cityops.bootstrap import CitySystem, build_system
from cityops.domain.actors import Actor, Role
from cityops.domain.commands import CommandContext
from cityops.domain.exercises.commands import RateObjective
from cityops.domain.exercises.exercise import DeliveryOutcome, Exercise
from cityops.domain.exercises.objectives import ObjectiveStatus
from cityops.domain.exercises.scenario import ScenarioInvalid
from cityops.domain.incidents.commands import AcknowledgeTask, RespondToIncident, VerifyIncident
from cityops.domain.resources.commands import ReportEnRoute, ReportOnScene
from cityops.domain.resources.resource import Resource
from cityops.exercises import (
    ExerciseDriver,
    ExerciseIngest,
    exercise_status,
    prepare_city_registers,
    shipped_scenarios,
)
from cityops.ingest.composition import ingest_store
from cityops.ingest.deadletters import StoredDeadLetters
from cityops.settings import Settings
from cityops.simulator import SimulatedClock

START = datetime(2026, 7, 1, 1, 0, tzinfo=UTC)
PLANNER = Actor("planner-sun", Role.PLANNER)
DISPATCHER = Actor("duty-zhao", Role.DISPATCHER)
FIRE_DESK = Actor("fire-desk", Role.DEPARTMENT_USER, "fire")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def drill(request: pytest.FixtureRequest, tmp_path: Path,
          demo_city: Any) -> Iterator[tuple[CitySystem, SimulatedClock, ExerciseIngest]]:
    """An empty city of its own on a clock that moves only when told, with its registers
    filled, a minute before the exercise starts."""
    url = None
    if request.param == "postgres":
        databases = request.getfixturevalue("test_databases")
        url = databases.create("exercise")
    clock = SimulatedClock(START, 0.0)
    system = build_system(Settings(data_dir=tmp_path, database_url=url, database_pool_size=2,
                                   run_projections=False), city=demo_city, clock=clock)
    ingest = ExerciseIngest.open(system)
    try:
        prepare_city_registers(system)
        clock.advance_to(START + timedelta(minutes=1))
        yield system, clock, ingest
    finally:
        ingest.close()
        system.close()
        if url is not None:
            databases.drop(url)


def play_until(driver: ExerciseDriver, clock: SimulatedClock, minutes: float) -> list[Any]:
    """Move the drill's clock minute by minute to `minutes` after the start, delivering."""
    results = []
    target = driver.started_at + timedelta(minutes=minutes)
    while clock() < target:
        clock.advance_to(min(target, clock() + timedelta(minutes=1)))
        results.extend(driver.tick())
    return results


def test_every_inject_goes_in_through_the_real_path_and_shows_in_the_read_models(
        drill: tuple[CitySystem, SimulatedClock, ExerciseIngest]) -> None:
    system, clock, ingest = drill
    driver = ExerciseDriver.start(system, shipped_scenarios()["chemical-leak.yaml"],
                                  actor=PLANNER, ingest=ingest, command_id="exercise-1")
    assert driver.started_at == START + timedelta(minutes=1)
    results = play_until(driver, clock, 25)
    assert [(r.inject_id, r.outcome) for r in results] == [
        ("gas-warning", DeliveryOutcome.APPLIED), ("gas-alarm", DeliveryOutcome.APPLIED),
        ("neighbour-call", DeliveryOutcome.APPLIED), ("leak-report", DeliveryOutcome.APPLIED),
        ("engine-breakdown", DeliveryOutcome.APPLIED), ("dry-hydrant", DeliveryOutcome.APPLIED),
    ]
    subjects = {r.inject_id: r.subject for r in results}
    system.catch_up()
    models = system.read_models
    # The sensor readings: through ingest, the hazard source's alarm raised.
    source = models.get("rm_hazard_sources", str(subjects["gas-alarm"]))
    assert source is not None and source["name"] == "Jinhe Fine Chemicals Plant"
    assert len(source["open_alarms"]) == 1
    gas = next(s for s in source["sensors"] if s["sensor_id"] == "HS-01-GAS-01")
    assert gas["level"] == "alarm"
    # The hotline call: a ticket received from the call-centre system.
    ticket = models.get("rm_tickets", str(subjects["neighbour-call"]))
    assert ticket is not None and (ticket["topic"], ticket["ticket_type"]) == (
        "gas-smell", "report")
    # The incident reported at the plant, by the actor the inject names.
    incident = models.get("rm_incidents", str(subjects["leak-report"]))
    assert incident is not None
    assert (incident["incident_type"], incident["level"], incident["status"]) == (
        "hazmat-leak", "II", "reported")
    [reported] = system.incidents.events.get(subjects["leak-report"], limit=1)
    assert reported.actor == Actor("jinhe-safety", Role.DEPARTMENT_USER,
                                   "emergency-management")
    # The engine out of service, by its department's desk.
    engine = models.get("rm_resources", str(Resource.create_id("FE-03")))
    assert engine is not None and engine["status"] == "out-of-service"
    # The inspector's report: a grid case in the cell of the hydrant, by the inspector.
    case = models.get("rm_grid_cases", str(subjects["dry-hydrant"]))
    assert case is not None and (case["category"], case["source"]) == ("C0106", "inspector")
    [case_reported] = system.grid_cases.events.get(subjects["dry-hydrant"], limit=1)
    assert case_reported.actor == Actor("insp-D02-01", Role.INSPECTOR)
    # Every inject is recorded on the exercise, with what it created or changed.
    exercise = system.exercises.exercise(driver.exercise_id)
    assert {k: d.subject for k, d in exercise.deliveries.items()} == subjects
    # A repeat of the ticks delivers nothing twice.
    assert driver.tick() == []


def test_a_refused_inject_is_refused_as_a_real_input_would_be(
        drill: tuple[CitySystem, SimulatedClock, ExerciseIngest]) -> None:
    system, clock, ingest = drill
    scenario = """version: 1
title: Refusals
injects:
  - id: breakdown
    at: 1m
    kind: resource-out-of-service
    resource: FE-03
    reason: Pump failure
  - id: breakdown-again
    at: 2m
    kind: resource-out-of-service
    resource: FE-03
    reason: Still broken
  - id: leader-call
    at: 3m
    kind: hotline-call
    actor: {user: deputy-mayor, role: leader}
    ticket_type: complaint
    topic: garbage
    description: Bins full
"""
    driver = ExerciseDriver.start(system, scenario, actor=PLANNER, ingest=ingest)
    results = {r.inject_id: r for r in play_until(driver, clock, 5)}
    assert results["breakdown"].outcome is DeliveryOutcome.APPLIED
    assert results["breakdown-again"].outcome is DeliveryOutcome.REFUSED
    assert "cannot take out of service resource" in results["breakdown-again"].detail
    # A leader may not receive a ticket: the hotline message is dead-lettered by ingest,
    # and kept among its dead letters like any other.
    refused = results["leader-call"]
    assert refused.outcome is DeliveryOutcome.REFUSED
    assert refused.detail.startswith("not-permitted: leader deputy-mayor may not ticket.receive")
    store = ingest_store(system)
    try:
        letters = StoredDeadLetters(store).recent()
    finally:
        store.close()
    assert [letter.message_id for letter in letters] == [
        f"exercise:{driver.exercise_id}:leader-call"]
    deliveries = system.exercises.exercise(driver.exercise_id).deliveries
    assert deliveries["leader-call"].outcome is DeliveryOutcome.REFUSED


def test_the_players_actions_are_measured_against_the_objectives_as_the_drill_runs(
        drill: tuple[CitySystem, SimulatedClock, ExerciseIngest]) -> None:
    system, clock, ingest = drill
    driver = ExerciseDriver.start(system, shipped_scenarios()["chemical-leak.yaml"],
                                  actor=PLANNER, ingest=ingest)
    play_until(driver, clock, 6)

    def standing() -> dict[str, tuple[str, float | None]]:
        return {r.objective_id: (r.status.value, r.measured.total_seconds() / 60
                                 if r.measured is not None else None)
                for r in driver.objectives()}

    assert set(standing().values()) == {("pending", None)}
    leak = system.exercises.exercise(driver.exercise_id).deliveries["leak-report"].subject
    assert leak is not None
    # The duty officer verifies 4 minutes after the report and activates the plan at 9.
    play_until(driver, clock, 10)
    system.commands.handle(VerifyIncident(incident_id=leak, note="Confirmed by the plant"),
                           CommandContext(actor=DISPATCHER))
    assert standing()["verify-leak"] == ("met", 4.0)
    play_until(driver, clock, 15)
    plan = system.incidents.plan_by_code("gas-leak")
    system.commands.handle(RespondToIncident(incident_id=leak, level="II", plan_id=plan.id,
                                             reason="Plan activated"),
                           CommandContext(actor=DISPATCHER))
    assert standing()["activate-plan"] == ("met", 9.0)
    # An engine is sent; it reports en route, then on scene at minute 20: 14 min, late.
    engine_id = Resource.create_id("FE-01")
    system.operations.assign_resource(leak, engine_id, actor=DISPATCHER)
    system.commands.handle(ReportEnRoute(resource_id=engine_id), CommandContext(actor=FIRE_DESK))
    assert standing()["first-engine"] == ("pending", None)
    play_until(driver, clock, 20)
    system.commands.handle(ReportOnScene(resource_id=engine_id),
                           CommandContext(actor=FIRE_DESK))
    assert standing()["first-engine"] == ("missed", 14.0)
    # The departments acknowledge their tasks 5 minutes after the plan.
    incident = system.incidents.incident(leak)
    for task in incident.tasks.values():
        desk = Actor(f"{task.department}-desk", Role.DEPARTMENT_USER, task.department)
        system.commands.handle(AcknowledgeTask(incident_id=leak, task_id=task.id),
                               CommandContext(actor=desk))
    assert standing()["tasks-acknowledged"] == ("met", 5.0)
    # No hazmat team ever arrives: missed 20 minutes after the gas alarm (at 3).
    assert standing()["hazmat-team"] == ("pending", None)
    play_until(driver, clock, 24)
    assert standing()["hazmat-team"] == ("missed", None)
    # The exercise as the API shows it: the measure beside each objective.
    status = exercise_status(system, driver.exercise_id)
    assert [(o["id"], o["measure"]["status"]) for o in status["objectives"]] == [
        ("verify-leak", "met"), ("activate-plan", "met"), ("first-engine", "missed"),
        ("hazmat-team", "missed"), ("tasks-acknowledged", "met")]
    # Evaluators rate them; the ratings are events of the exercise, with who and when.
    system.commands.handle(RateObjective(exercise_id=driver.exercise_id,
                                         objective_id="first-engine", rating="M",
                                         observations="Nearest engine broke down; the next "
                                                      "one was sent 4 minutes late"),
                           CommandContext(actor=PLANNER))
    rated = [e for e in system.exercises.events.get(driver.exercise_id)
             if isinstance(e, Exercise.ObjectiveRated)]
    assert [(e.objective_id, e.rating, e.actor.user_id, e.timestamp) for e in rated] == [
        ("first-engine", "M", "planner-sun", clock())]
    driver.end("hot wash")
    ended = ObjectiveStatus(exercise_status(system, driver.exercise_id)
                            ["objectives"][0]["measure"]["status"])
    assert ended is ObjectiveStatus.MET


@pytest.mark.parametrize("name", ["chemical-leak.yaml", "typhoon.yaml"])
def test_the_shipped_scenarios_validate_and_play_to_their_end(
        name: str, drill: tuple[CitySystem, SimulatedClock, ExerciseIngest]) -> None:
    from cityops.exercises_cli import play

    system, clock, ingest = drill
    text = shipped_scenarios()[name]
    scenario = system.exercises.parse(text)
    assert scenario.injects and scenario.objectives
    driver = ExerciseDriver.start(system, text, actor=PLANNER, ingest=ingest)
    lines: list[str] = []
    play(system, driver, speed=0, echo=lines.append)
    exercise = system.exercises.exercise(driver.exercise_id)
    assert exercise.status.value == "ended"
    assert clock() >= driver.ends_at()
    assert len(lines) == len(scenario.injects)
    assert {d.outcome for d in exercise.deliveries.values()} == {DeliveryOutcome.APPLIED}
    # Nobody played: what the scenario asked of the centre was missed, nothing pending
    # but the tasks of a plan never activated.
    statuses = {r.objective_id: r.status for r in driver.objectives()}
    assert set(statuses.values()) <= {ObjectiveStatus.MISSED, ObjectiveStatus.PENDING}
    assert statuses["tasks-acknowledged"] is ObjectiveStatus.PENDING


def test_an_invalid_scenario_starts_nothing(
        drill: tuple[CitySystem, SimulatedClock, ExerciseIngest]) -> None:
    system, _, ingest = drill
    text = shipped_scenarios()["typhoon.yaml"].replace("resource: DP-02", "resource: DP-99")
    with pytest.raises(ScenarioInvalid) as refused:
        ExerciseDriver.start(system, text, actor=PLANNER, ingest=ingest)
    [problem] = refused.value.problems
    assert problem.message.startswith("unknown resource 'DP-99'")
    assert system.exercises.exercise_ids() == []


def test_the_drill_runners_exercise_delivers_measures_and_survives_a_restart(
        drill: tuple[CitySystem, SimulatedClock, ExerciseIngest], tmp_path: Path) -> None:
    """The drill room's side of the contract (`deliver_due` and `measure` after each step,
    with the drill's system and clock), here with a plain system as the drill's."""
    from uuid import uuid4

    from cityops.domain.errors import InvalidValue
    from cityops.exercises import DrillExercise, drill_exercises, exercise_id_of_drill

    system, clock, _ = drill
    make = drill_exercises(system, folder=tmp_path)
    drill_id = uuid4()
    start = clock()
    exercise = make("chemical-leak", None, drill_id, start)
    assert isinstance(exercise, DrillExercise)
    assert exercise.next_due_at(system) == start
    assert exercise.deliver_due(system, start) == 1  # gas-warning, at 0
    assert exercise.next_due_at(system) == start + timedelta(minutes=3)
    clock.advance_to(start + timedelta(minutes=6))
    assert exercise.deliver_due(system, clock()) == 3  # gas-alarm, neighbour-call, leak-report
    measured = exercise.measure(system, clock())
    assert [(o["id"], o["measure"]["status"]) for o in measured][:2] == [
        ("verify-leak", "pending"), ("activate-plan", "pending")]
    # After a restart the drill room makes the exercise again: nothing is planned or
    # delivered twice.
    again = make("chemical-leak", None, drill_id, start)
    assert again.deliver_due(system, clock()) == 0
    clock.advance_to(start + timedelta(minutes=30))
    assert again.deliver_due(system, clock()) == 2
    assert again.next_due_at(system) is None
    planned = system.exercises.exercise(exercise_id_of_drill(drill_id))
    assert planned.drill_id == str(drill_id) and planned.started_at == start
    assert len(planned.deliveries) == 6
    assert system.exercises.exercise_ids() == [planned.id]
    statuses = {o["id"]: o["measure"]["status"] for o in again.measure(system, clock())}
    assert statuses["verify-leak"] == "missed"
    # Scenarios by name only: shipped, or in the server's folder; a bad one refused by line.
    (tmp_path / "broken.yaml").write_text(
        shipped_scenarios()["typhoon.yaml"].replace("HS-04-WL-01", "HS-04-XX"), "utf-8")
    with pytest.raises(ScenarioInvalid) as refused:
        make("broken", None, uuid4(), start)
    assert {p.message.split(" (")[0] for p in refused.value.problems} == {
        "hazard source 'Qingshan Reservoir Dam' has no sensor 'HS-04-XX'"}
    # Or the planner's own file, by its text (kept in the drill's events): the same check.
    own = shipped_scenarios()["typhoon.yaml"]
    assert make("my-typhoon", own, uuid4(), start).scenario.title == \
        make("typhoon", None, uuid4(), start).scenario.title
    with pytest.raises(ScenarioInvalid):
        make("my-typhoon", own.replace("HS-04-WL-01", "HS-04-XX"), uuid4(), start)
    with pytest.raises(InvalidValue, match="not a path"):
        make("../../etc/passwd", None, uuid4(), start)
    with pytest.raises(InvalidValue, match=r"unknown scenario 'meteor' \(known: "
                                           r"chemical-leak, typhoon, broken\)"):
        make("meteor", None, uuid4(), start)
