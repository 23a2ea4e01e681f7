"""The exercises' commands, as values (`cityops.domain.commands.Command`): frozen dataclasses
that check their own fields when built, handed with a `CommandContext` to the one entry
point (`system.commands.handle`), which runs the one handler of each in `Exercises`
(`@handles`). Their classes key the role table (`domain/permissions.py`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, ClassVar
from uuid import UUID

from cityops.domain.commands import Command, enum_field, text_field
from cityops.domain.errors import InvalidValue
from cityops.domain.exercises.exercise import DeliveryOutcome, Rating
from cityops.domain.values import checked_id, checked_instant


@dataclass(frozen=True, kw_only=True)
class ExerciseCommand(Command):
    """Base of the exercises' commands."""

    name: ClassVar[str]

    def fingerprint_args(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, kw_only=True)
class PlanExercise(ExerciseCommand):
    """Play a scenario (the YAML text of its file) in a drill from `started_at` (drill
    time; None: now by the drill's clock). Refused with every problem of the file listed by
    line (`ScenarioInvalid`) before anything is recorded."""

    name: ClassVar[str] = "exercise.plan"
    scenario_text: str
    drill_id: str | None = None
    started_at: datetime | None = None
    exercise_id: UUID | None = None

    def __post_init__(self) -> None:
        text_field("scenario", self.scenario_text)
        if self.drill_id is not None:
            text_field("drill id", self.drill_id)
        if self.started_at is not None:
            checked_instant("exercise start", self.started_at)
        if self.exercise_id is not None:
            checked_id("exercise id", self.exercise_id)


@dataclass(frozen=True, kw_only=True)
class OnExercise(ExerciseCommand):
    name: ClassVar[str]
    exercise_id: UUID

    def __post_init__(self) -> None:
        checked_id("exercise id", self.exercise_id)


@dataclass(frozen=True, kw_only=True)
class RecordInjectDelivery(OnExercise):
    """The exercise's controller (the drill runner) records that an inject went in."""

    name: ClassVar[str] = "exercise.record-inject"
    inject_id: str
    outcome: DeliveryOutcome
    subject: UUID | None = None
    detail: str = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        text_field("inject id", self.inject_id)
        object.__setattr__(self, "outcome",
                           enum_field(DeliveryOutcome, "delivery outcome", self.outcome))
        if self.subject is not None:
            checked_id("subject", self.subject)


@dataclass(frozen=True, kw_only=True)
class RateObjective(OnExercise):
    """An evaluator rates an objective: P, S, M or U, with observations."""

    name: ClassVar[str] = "exercise.rate-objective"
    objective_id: str
    rating: Rating
    observations: str

    def __post_init__(self) -> None:
        super().__post_init__()
        text_field("objective id", self.objective_id)
        object.__setattr__(self, "rating", enum_field(Rating, "rating", self.rating))
        text_field("observations", self.observations)
        if not self.observations.strip():
            raise InvalidValue("a rating needs the evaluator's observations")


@dataclass(frozen=True, kw_only=True)
class EndExercise(OnExercise):
    """No more injects: the exercise is over."""

    name: ClassVar[str] = "exercise.end"
    note: str = ""
