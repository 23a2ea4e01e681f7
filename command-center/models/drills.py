"""Drills as the API answers them: the registry's facts of a drill (`Drill.summary()`) with
its runner's progress (the drill's clock, events replayed and skipped), and the drills
offered ready to start."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from cityops.command_center.models.common import Number, Public, Timestamp, Uuid
from cityops.command_center.models.exercises import ExerciseObjectivePublic
from cityops.domain.drills.drill import DrillStatus


class DrillPublic(Public):
    """A drill: its window of history, speed, scenario, participants, state and progress."""

    id: Uuid
    name: str
    status: DrillStatus
    window_from: Timestamp
    window_to: Timestamp
    speed: str = Field(description="`max` (as fast as possible) or `<n>x`, n from 1 to 100")
    scenario: str | None
    own_scenario: bool = Field(description="The scenario is the planner's own file (given "
                               "as scenario_text), not a shipped example")
    participants: list[str]
    started_by: str
    started_at: Timestamp | None
    version: int
    drill_time: Timestamp = Field(description="The drill's clock")
    clock_rate: Number = Field(description="Drill seconds per real second now (0: paused, "
                               "or following the replay as fast as possible)")
    events_replayed: int
    events_skipped: int = Field(description="History events not replayed because the drill "
                                "had branched from them (participants acted on their "
                                "aggregate)")
    branched_aggregates: int
    fixes_replayed: int = Field(description="Resource position fixes replayed from the tracks")
    injects_delivered: int
    window_replayed: bool = Field(description="Every event of the window has been replayed")
    exercise_id: Uuid | None = Field(description="The exercise the drill plays its scenario "
                                     "as (`/exercises/{id}` in the drill; null without one)")
    objectives: list[ExerciseObjectivePublic] = Field(
        description="The scenario's objectives as measured so far, each with its ratings "
                    "(empty without a scenario)")
    failure: str | None = Field(description="Why the replay stopped, if it failed")


class DrillsPublic(Public):
    """The drills the user may see (all for planners, those they take part in otherwise)."""

    data: list[DrillPublic]
    count: int


class DrillOfferPublic(Public):
    """A drill offered ready to start: the body of `POST /drills` as of now."""

    title: str
    window_from: Timestamp
    window_to: Timestamp
    speed: Number | Literal["max"]
    scenario: str | None
    participants: list[str]
    note: str
