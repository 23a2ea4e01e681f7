"""Response models of scenarios and exercises (docs/scenarios.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from cityops.command_center.models.common import Number, Public, Timestamp, Uuid


class IncidentFilterPublic(Public):
    category: str | None
    type: str | None
    level: str | None


class RatingPublic(Public):
    """An evaluator's rating of an objective (HSEEP: P, S, M or U) with observations."""

    objective_id: str
    rating: Literal["P", "S", "M", "U"]
    meaning: str
    observations: str
    evaluator: str
    at: Timestamp


class ObjectiveMeasurePublic(Public):
    """Where an objective stands now, measured from the drill's events."""

    objective_id: str
    kind: str
    status: Literal["met", "missed", "pending"]
    target_s: Number
    measured_s: Number | None = Field(description="The time it took (met or late); for "
                                      "tasks, the longest so far; null while not happened")
    incident_id: Uuid | None
    detail: str


class ObjectivePublic(Public):
    id: str
    kind: str
    description: str
    within_s: Number = Field(description="The target, in seconds")
    incident: IncidentFilterPublic
    resource_kind: str | None
    since_inject: str | None
    since_offset_s: Number | None
    line: int = Field(description="Its line in the scenario file")


class ExerciseObjectivePublic(ObjectivePublic):
    ratings: list[RatingPublic] = Field(description="The ratings in force: each "
                                        "evaluator's latest")
    measure: ObjectiveMeasurePublic


class ActorPublic(Public):
    user_id: str
    role: str
    department: str | None


class InjectPublic(Public):
    id: str
    offset_s: Number = Field(description="Seconds from the drill's start")
    kind: Literal["inspector-report", "hotline-call", "sensor-reading",
                  "resource-out-of-service", "incident-report"]
    actor: ActorPublic
    note: str
    line: int


class InjectDeliveryPublic(Public):
    inject_id: str
    outcome: Literal["applied", "refused"]
    subject: Uuid | None
    detail: str
    at: Timestamp


class ExerciseInjectPublic(InjectPublic):
    delivery: InjectDeliveryPublic | None


class ScenarioCheckedPublic(Public):
    """A scenario file that passed every check: what it will play."""

    valid: Literal[True]
    title: str
    version: int
    digest: str
    start: Literal["empty", "replay"]
    replay_from: Timestamp | None
    replay_to: Timestamp | None
    duration_s: Number
    injects: list[InjectPublic]
    objectives: list[ObjectivePublic]


class ScenarioAvailablePublic(ScenarioCheckedPublic):
    """A scenario a drill may be started with (`scenario` of `POST /drills`)."""

    name: str = Field(description="The name `POST /drills` takes as its `scenario`")


class ExercisePublic(Public):
    """An exercise: its scenario's objectives measured live, their ratings, its injects."""

    id: Uuid
    title: str
    status: Literal["running", "ended"]
    drill_id: str | None
    started_at: Timestamp
    ended_at: Timestamp | None
    planned_by: str
    scenario_digest: str
    scenario_version: int
    objectives: list[ExerciseObjectivePublic]
    injects: list[ExerciseInjectPublic]
    version: int


class ExercisesPublic(Public):
    data: list[ExercisePublic]
    count: int
