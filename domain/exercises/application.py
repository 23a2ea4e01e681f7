"""The exercises' application: every command of the exercise stream, in one place.

A command value (`domain/exercises/commands.py`) is handed with its `CommandContext` to the
one entry point (`system.commands.handle`); its one handler (`@handles`) checks the scenario
with the parser it is given (bound to the city and the catalogues) and calls the `Exercise`
aggregate. A drill runs its own `Exercises` over its own store, like its other applications.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from uuid import UUID, uuid4, uuid5

from cityops.domain.application import COMMAND_NAMESPACE, CityApplication, Clock, UnitOfWork
from cityops.domain.commands import handles
from cityops.domain.errors import IllegalTransition
from cityops.domain.exercises.commands import (
    EndExercise,
    PlanExercise,
    RateObjective,
    RecordInjectDelivery,
)
from cityops.domain.exercises.exercise import Exercise
from cityops.domain.exercises.scenario import Objective, Scenario


class Exercises(CityApplication):
    """Plans exercises from scenario files, records their injects, keeps the ratings."""

    name = "exercises"

    def __init__(self, env: Mapping[str, str] | None = None, *,
                 parse: Callable[[str], Scenario], clock: Clock) -> None:
        super().__init__(env, clock=clock)
        self.parse = parse
        """Reads and checks a scenario file against the city and the catalogues (raises
        `ScenarioInvalid` with every problem by line)."""

    # --- queries ------------------------------------------------------------------------

    def exercise(self, exercise_id: UUID) -> Exercise:
        return self.load(Exercise, exercise_id)

    def scenario(self, exercise_id: UUID) -> Scenario:
        """The scenario an exercise plays, read again from the text it was planned with."""
        return self.parse(self.exercise(exercise_id).scenario_text)

    def objectives(self, exercise_id: UUID) -> list[Objective]:
        """The exercise's objectives as planned."""
        return [Objective.from_dict(o) for o in self.exercise(exercise_id).objectives]

    def exercise_ids(self) -> list[UUID]:
        """Every exercise planned here, oldest first."""
        found: list[UUID] = []
        start = 1
        while True:
            notifications = self.recorder.select_notifications(start, 500)
            if not notifications:
                return found
            for notification in notifications:
                if notification.topic.endswith("Exercise.Planned"):
                    found.append(notification.originator_id)  # type: ignore[arg-type]
            start = notifications[-1].id + 1

    # --- handlers -------------------------------------------------------------------------

    @handles(PlanExercise)
    def plan(self, command: PlanExercise, uow: UnitOfWork) -> list[Exercise]:
        """A scenario is checked whole (nothing is recorded if any line is wrong) and its
        exercise starts."""
        scenario = self.parse(command.scenario_text)
        if command.exercise_id is not None:
            exercise_id = command.exercise_id
        elif uow.command_id:
            exercise_id = uuid5(COMMAND_NAMESPACE, f"exercise:{uow.command_id}")
        else:
            exercise_id = uuid4()
        if uow.exists(exercise_id):
            raise IllegalTransition(Exercise.KIND, exercise_id, "already planned", "plan")
        started_at = command.started_at if command.started_at is not None else uow.now
        return [Exercise.plan(
            exercise_id=exercise_id, title=scenario.title, scenario_text=scenario.text,
            scenario_digest=scenario.digest, scenario_version=scenario.version,
            drill_id=command.drill_id, started_at=started_at,
            objectives=[o.as_dict() for o in scenario.objectives],
            injects=[i.as_dict() for i in scenario.injects], actor=uow.actor, at=uow.now)]

    @handles(RecordInjectDelivery)
    def record_inject(self, command: RecordInjectDelivery,
                      uow: UnitOfWork) -> list[Exercise]:
        exercise = uow.load(Exercise, command.exercise_id)
        exercise.record_delivery(inject_id=command.inject_id, outcome=command.outcome,
                                 subject=command.subject, detail=command.detail,
                                 actor=uow.actor, at=uow.now)
        return [exercise]

    @handles(RateObjective)
    def rate(self, command: RateObjective, uow: UnitOfWork) -> list[Exercise]:
        exercise = uow.load(Exercise, command.exercise_id)
        exercise.rate(objective_id=command.objective_id, rating=command.rating,
                      observations=command.observations, actor=uow.actor, at=uow.now)
        return [exercise]

    @handles(EndExercise)
    def end(self, command: EndExercise, uow: UnitOfWork) -> list[Exercise]:
        exercise = uow.load(Exercise, command.exercise_id)
        exercise.end(note=command.note, actor=uow.actor, at=uow.now)
        return [exercise]
