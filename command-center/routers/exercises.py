"""Scenarios and exercises: check a scenario file (every problem by line), list and read
exercises with their objectives measured live from the drill's events, and let evaluators
rate each objective (P / S / M / U with observations). Command routes build the exercises'
command values and hand them to `system.commands.handle`. Playing a scenario is the drill
runner's (`cityops.exercises`; `cityops scenarios run`)."""

from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

from fastapi import APIRouter
from pydantic import Field

from cityops.command_center.dependencies import CommandId, CurrentActor, SystemDep
from cityops.command_center.models.exercises import (
    ExercisePublic,
    ExercisesPublic,
    ScenarioAvailablePublic,
    ScenarioCheckedPublic,
)
from cityops.command_center.schemas import Command
from cityops.domain.actors import Actor, Role
from cityops.domain.commands import CommandContext
from cityops.domain.errors import NotPermitted
from cityops.domain.exercises.commands import EndExercise, RateObjective
from cityops.domain.exercises.scenario import MAX_SCENARIO_BYTES, Scenario
from cityops.exercises import events_of, exercise_status, shipped_scenarios

scenarios_router = APIRouter(prefix="/scenarios", tags=["exercises"])
SCENARIO_ROLES = frozenset({Role.PLANNER, Role.ADMIN})
"""Who checks and lists scenario files: the planners (the players in the centre must not
read the master scenario events list of their own exercise)."""
router = APIRouter(prefix="/exercises", tags=["exercises"])


class ScenarioIn(Command):
    """A scenario file's YAML text (docs/scenarios.md)."""

    scenario: str = Field(min_length=1, max_length=MAX_SCENARIO_BYTES,
                          description="The YAML text of the scenario file")


class RatingIn(Command):
    """An evaluator's rating of one objective on the exercise-programme scale."""

    objective_id: str = Field(min_length=1, max_length=64)
    rating: Literal["P", "S", "M", "U"] = Field(
        description="P performed without challenges, S with some challenges, M with major "
                    "challenges, U unable to be performed")
    observations: str = Field(min_length=1, max_length=4000)


class EndIn(Command):
    note: str = Field(default="", max_length=4000)


@scenarios_router.post("/validate", response_model=ScenarioCheckedPublic)
def validate_scenario(body: ScenarioIn, system: SystemDep,
                      actor: CurrentActor) -> dict[str, Any]:
    """Check a scenario file against the city and catalogues: 422 lists every problem by
    line; nothing is started either way."""
    return scenario_description(system.exercises.parse(body.scenario))


@scenarios_router.get("", response_model=list[ScenarioAvailablePublic])
def list_scenarios(system: SystemDep, actor: CurrentActor) -> list[dict[str, Any]]:
    """The scenarios a drill may be started with (the shipped examples), each as it was
    checked against this city: planners only."""
    _check_planner(actor)
    return [{"name": name.removesuffix(".yaml"),
             **scenario_description(system.exercises.parse(text))}
            for name, text in sorted(shipped_scenarios().items())]


def _check_planner(actor: Actor) -> None:
    if actor.role not in SCENARIO_ROLES:
        raise NotPermitted(f"{actor.role.value} {actor.user_id} may not read scenario files: "
                           "they are the planners'")


def scenario_description(scenario: Scenario) -> dict[str, Any]:
    """What a checked scenario will play."""
    return {
        "valid": True, "title": scenario.title, "version": scenario.version,
        "digest": scenario.digest, "start": scenario.start.kind.value,
        "replay_from": (scenario.start.replay_from.isoformat()
                        if scenario.start.replay_from else None),
        "replay_to": (scenario.start.replay_to.isoformat()
                      if scenario.start.replay_to else None),
        "duration_s": scenario.duration.total_seconds(),
        "injects": [i.as_dict() for i in scenario.injects],
        "objectives": [o.as_dict() for o in scenario.objectives],
    }


def _state(system: SystemDep, exercise_id: UUID) -> dict[str, Any]:
    return exercise_status(system, exercise_id)


@router.get("", response_model=ExercisesPublic)
def list_exercises(system: SystemDep, actor: CurrentActor) -> dict[str, Any]:
    """Every exercise of this system (a drill's own), oldest first, objectives measured now."""
    events = events_of(system).all()
    data = [exercise_status(system, exercise_id, events)
            for exercise_id in system.exercises.exercise_ids()]
    return {"data": data, "count": len(data)}


@router.get("/{exercise_id}", response_model=ExercisePublic)
def get_exercise(exercise_id: UUID, system: SystemDep, actor: CurrentActor) -> dict[str, Any]:
    """One exercise: each objective met / missed / pending now, its ratings, its injects."""
    return _state(system, exercise_id)


@router.post("/{exercise_id}/ratings", response_model=ExercisePublic)
def rate_objective(exercise_id: UUID, body: RatingIn, system: SystemDep,
                   actor: CurrentActor, command_id: CommandId) -> dict[str, Any]:
    """An evaluator rates an objective with their observations (kept as an event)."""
    system.commands.handle(RateObjective(
        exercise_id=exercise_id, objective_id=body.objective_id, rating=body.rating,  # type: ignore[arg-type]
        observations=body.observations), CommandContext(actor=actor, command_id=command_id))
    return _state(system, exercise_id)


@router.post("/{exercise_id}/end", response_model=ExercisePublic)
def end_exercise(exercise_id: UUID, body: EndIn, system: SystemDep, actor: CurrentActor,
                 command_id: CommandId) -> dict[str, Any]:
    """End the exercise: no more injects (ratings may still come)."""
    system.commands.handle(EndExercise(exercise_id=exercise_id, note=body.note),
                           CommandContext(actor=actor, command_id=command_id))
    return _state(system, exercise_id)
