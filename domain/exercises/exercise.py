"""An exercise: one scenario played in one drill, from its planning to its end, with the
injects it delivered and the evaluators' ratings of its objectives, kept as events.

Ratings follow the exercise-programme scale (HSEEP): P performed without challenges, S
performed with some challenges, M performed with major challenges, U unable to be performed;
each with the evaluator's observations. An objective may be rated again (a later rating of
the same evaluator replaces theirs); every rating stays in the history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from cityops.domain.actors import Actor
from cityops.domain.errors import InvalidValue
from cityops.domain.model import CityAggregate, checked_text, iso_or_none


class ExerciseStatus(StrEnum):
    RUNNING = "running"
    ENDED = "ended"


class Rating(StrEnum):
    """The exercise-programme scale of how an objective (a capability) was performed."""

    P = "P"
    """Performed without challenges."""
    S = "S"
    """Performed with some challenges."""
    M = "M"
    """Performed with major challenges."""
    U = "U"
    """Unable to be performed."""

    @property
    def meaning(self) -> str:
        return RATING_MEANINGS[self]


RATING_MEANINGS = {
    Rating.P: "performed without challenges",
    Rating.S: "performed with some challenges",
    Rating.M: "performed with major challenges",
    Rating.U: "unable to be performed",
}


class DeliveryOutcome(StrEnum):
    """What became of an inject sent into the drill."""

    APPLIED = "applied"
    REFUSED = "refused"
    """The drill refused it as it would refuse a real input (dead letter, domain error)."""


@dataclass(frozen=True)
class ObjectiveRating:
    objective_id: str
    rating: Rating
    observations: str
    evaluator: str
    at: datetime

    def summary(self) -> dict[str, Any]:
        return {"objective_id": self.objective_id, "rating": self.rating.value,
                "meaning": self.rating.meaning, "observations": self.observations,
                "evaluator": self.evaluator, "at": self.at.isoformat()}


@dataclass(frozen=True)
class InjectDelivery:
    inject_id: str
    outcome: DeliveryOutcome
    subject: UUID | None
    detail: str
    at: datetime

    def summary(self) -> dict[str, Any]:
        return {"inject_id": self.inject_id, "outcome": self.outcome.value,
                "subject": str(self.subject) if self.subject else None,
                "detail": self.detail, "at": self.at.isoformat()}


class Exercise(CityAggregate):
    """One scenario played in one drill."""

    KIND = "exercise"

    class Planned(CityAggregate.Created):
        """The scenario was accepted (valid) and the exercise starts at `started_at`."""

        actor: Actor
        title: str
        scenario_text: str
        scenario_digest: str
        scenario_version: int
        drill_id: str | None
        started_at: datetime
        objectives: list[dict[str, Any]]
        injects: list[dict[str, Any]]

    class InjectDelivered(CityAggregate.Event):
        inject_id: str
        outcome: str
        subject: UUID | None
        detail: str

        def apply(self, exercise: Exercise) -> None:
            exercise.deliveries[self.inject_id] = InjectDelivery(
                inject_id=self.inject_id, outcome=DeliveryOutcome(self.outcome),
                subject=self.subject, detail=self.detail, at=self.timestamp)

    class ObjectiveRated(CityAggregate.Event):
        objective_id: str
        rating: str
        observations: str

        def apply(self, exercise: Exercise) -> None:
            exercise.ratings.append(ObjectiveRating(
                objective_id=self.objective_id, rating=Rating(self.rating),
                observations=self.observations, evaluator=self.actor.user_id,
                at=self.timestamp))

    class Ended(CityAggregate.Event):
        note: str

        def apply(self, exercise: Exercise) -> None:
            exercise.status = ExerciseStatus.ENDED
            exercise.ended_at = self.timestamp

    def __init__(self, *, title: str, scenario_text: str, scenario_digest: str,
                 scenario_version: int, drill_id: str | None, started_at: datetime,
                 objectives: list[dict[str, Any]], injects: list[dict[str, Any]],
                 actor: Actor, timestamp: datetime) -> None:
        self.status = ExerciseStatus.RUNNING
        self.title = title
        self.scenario_text = scenario_text
        self.scenario_digest = scenario_digest
        self.scenario_version = scenario_version
        self.drill_id = drill_id
        self.started_at = started_at
        self.objectives = [dict(o) for o in objectives]
        self.injects = [dict(i) for i in injects]
        self.planned_by = actor.user_id
        self.planned_at = timestamp
        self.deliveries: dict[str, InjectDelivery] = {}
        self.ratings: list[ObjectiveRating] = []
        self.ended_at: datetime | None = None

    # --- commands -------------------------------------------------------------------------

    @classmethod
    def plan(cls, *, exercise_id: UUID, title: str, scenario_text: str, scenario_digest: str,
             scenario_version: int, drill_id: str | None, started_at: datetime,
             objectives: list[dict[str, Any]], injects: list[dict[str, Any]], actor: Actor,
             at: datetime) -> Exercise:
        """An exercise of a valid scenario, starting at `started_at` (drill time)."""
        if drill_id is not None:
            drill_id = checked_text("drill id", drill_id, limit=100)
        return cls._create(cls.Planned, id=exercise_id, timestamp=at, actor=actor,
                           title=title, scenario_text=scenario_text,
                           scenario_digest=scenario_digest, scenario_version=scenario_version,
                           drill_id=drill_id, started_at=started_at, objectives=objectives,
                           injects=injects)

    def check_inject(self, inject_id: str) -> None:
        if inject_id not in {i["id"] for i in self.injects}:
            raise InvalidValue(f"exercise {self.id} has no inject {inject_id!r}")

    def check_objective(self, objective_id: str) -> None:
        if objective_id not in {o["id"] for o in self.objectives}:
            known = ", ".join(o["id"] for o in self.objectives) or "none"
            raise InvalidValue(f"exercise {self.id} has no objective {objective_id!r} "
                               f"(its objectives: {known})")

    def record_delivery(self, *, inject_id: str, outcome: DeliveryOutcome,
                        subject: UUID | None, detail: str, actor: Actor, at: datetime) -> None:
        """An inject went into the drill (once: a second delivery is refused)."""
        self.require_status("deliver an inject of", ExerciseStatus.RUNNING)
        self.check_inject(inject_id)
        if inject_id in self.deliveries:
            self.refuse("deliver an inject of", f"inject {inject_id!r} was already delivered")
        self.record(self.InjectDelivered, actor=actor, at=at, inject_id=inject_id,
                    outcome=outcome.value, subject=subject,
                    detail=checked_text("detail", detail, required=False))

    def rate(self, *, objective_id: str, rating: Rating, observations: str, actor: Actor,
             at: datetime) -> None:
        """An evaluator rates an objective, with their observations (during or after)."""
        self.check_objective(objective_id)
        self.record(self.ObjectiveRated, actor=actor, at=at, objective_id=objective_id,
                    rating=rating.value,
                    observations=checked_text("observations", observations))

    def end(self, *, note: str, actor: Actor, at: datetime) -> None:
        """No more injects: the exercise is over (ratings may still come)."""
        self.require_status("end", ExerciseStatus.RUNNING)
        self.record(self.Ended, actor=actor, at=at,
                    note=checked_text("note", note, required=False))

    # --- reading ----------------------------------------------------------------------------

    def current_ratings(self) -> dict[str, list[ObjectiveRating]]:
        """Each objective's ratings in force: the latest of each evaluator."""
        latest: dict[tuple[str, str], ObjectiveRating] = {}
        for rating in self.ratings:
            latest[(rating.objective_id, rating.evaluator)] = rating
        found: dict[str, list[ObjectiveRating]] = {o["id"]: [] for o in self.objectives}
        for (objective_id, _), rating in latest.items():
            found.setdefault(objective_id, []).append(rating)
        return found

    def summary(self) -> dict[str, Any]:
        ratings = self.current_ratings()
        return {
            "id": str(self.id), "title": self.title, "status": self.status.value,
            "drill_id": self.drill_id, "started_at": self.started_at.isoformat(),
            "ended_at": iso_or_none(self.ended_at), "planned_by": self.planned_by,
            "scenario_digest": self.scenario_digest,
            "scenario_version": self.scenario_version,
            "objectives": [{**o, "ratings": [r.summary() for r in ratings.get(o["id"], [])]}
                           for o in self.objectives],
            "injects": [{**i, "delivery": (self.deliveries[i["id"]].summary()
                                           if i["id"] in self.deliveries else None)}
                        for i in self.injects],
            "version": self.version,
        }
