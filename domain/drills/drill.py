"""The `Drill` aggregate: one drill of the drill registry, from its start to its deletion.

A planner starts a drill from a window [from, to] of the city's real history at a speed
(1x to 100x, or as fast as possible), optionally with an exercise scenario; it is paused,
resumed, sped up or slowed down, jumped forward, participants are invited, and it is
finished and deleted. The registry keeps these facts in its own event store (never the live
one); what happens inside the drill is recorded in the drill's own stores
(`cityops.drills`).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from cityops.domain.actors import Actor, Role
from cityops.domain.errors import InvalidValue
from cityops.domain.model import CityAggregate, iso_or_none

MIN_SPEED = 1.0
MAX_SPEED = 100.0


class DrillStatus(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    FINISHED = "finished"
    DELETED = "deleted"


def speed_text(speed: float | None) -> str:
    """A drill's speed as people read it: `max` (as fast as possible) or `10x`."""
    return "max" if speed is None else f"{speed:g}x"


class Drill(CityAggregate):
    """One drill: its window of history, speed, scenario, participants and state."""

    KIND = "drill"

    class Started(CityAggregate.Created):
        class_version = 2
        actor: Actor
        name: str
        window_from: datetime
        window_to: datetime
        speed: float | None
        scenario: str | None
        participants: list[str]
        scenario_text: str | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            # Before planners could start a drill with their own scenario file, a drill's
            # scenario was one of the shipped examples, by name.
            state["scenario_text"] = None

    class Paused(CityAggregate.Event):
        drill_time: datetime

        def apply(self, drill: Drill) -> None:
            drill.status = DrillStatus.PAUSED
            drill.drill_time = self.drill_time

    class Resumed(CityAggregate.Event):
        def apply(self, drill: Drill) -> None:
            drill.status = DrillStatus.RUNNING

    class SpeedChanged(CityAggregate.Event):
        speed: float | None

        def apply(self, drill: Drill) -> None:
            drill.speed = self.speed

    class JumpedForward(CityAggregate.Event):
        drill_time: datetime
        """The drill time jumped to: history up to it is replayed at once."""

        def apply(self, drill: Drill) -> None:
            drill.drill_time = self.drill_time

    class ParticipantsInvited(CityAggregate.Event):
        users: list[str]

        def apply(self, drill: Drill) -> None:
            for user in self.users:
                if user not in drill.participants:
                    drill.participants.append(user)

    class Finished(CityAggregate.Event):
        drill_time: datetime | None

        def apply(self, drill: Drill) -> None:
            drill.status = DrillStatus.FINISHED
            if self.drill_time is not None:
                drill.drill_time = self.drill_time

    class Deleted(CityAggregate.Event):
        def apply(self, drill: Drill) -> None:
            drill.status = DrillStatus.DELETED

    def __init__(self, *, actor: Actor, name: str, window_from: datetime,
                 window_to: datetime, speed: float | None, scenario: str | None,
                 participants: list[str], timestamp: datetime,
                 scenario_text: str | None) -> None:
        self.status = DrillStatus.RUNNING
        self.name = name
        self.window_from = window_from
        self.window_to = window_to
        self.speed = speed
        """Drill seconds per real second (1..100), or None: as fast as possible."""
        self.scenario = scenario
        """The scenario's name: a shipped example's, or the planner's own file's."""
        self.scenario_text = scenario_text
        """The YAML text of the planner's own scenario file (None: a shipped example's), kept
        in the drill's own events so that the drill plays the same scenario when reopened."""
        self.participants = list(participants)
        self.started_by = actor.user_id
        self.started_at = timestamp
        self.drill_time: datetime = window_from
        """The drill's clock as last recorded (paused, jumped, finished); the running
        drill's clock is its runner's."""

    @classmethod
    def start(cls, *, drill_id: UUID, name: str, window_from: datetime, window_to: datetime,
              speed: float | None, scenario: str | None, participants: list[str],
              actor: Actor, at: datetime, scenario_text: str | None) -> Drill:
        """A new drill, checked against the moment it starts (`check_window`)."""
        cls.check_window(window_from, window_to, at)
        return cls._create(cls.Started, id=drill_id, timestamp=at, actor=actor, name=name,
                           window_from=window_from, window_to=window_to, speed=speed,
                           scenario=scenario, participants=list(dict.fromkeys(participants)),
                           scenario_text=scenario_text)

    @staticmethod
    def check_window(window_from: datetime, window_to: datetime, now: datetime) -> None:
        """A window of history lies in the past: its end no later than now."""
        if window_to > now:
            raise InvalidValue(f"window_to {window_to.isoformat()} is in the future (now is "
                               f"{now.isoformat()}): a drill replays history that happened")

    def pause(self, *, drill_time: datetime, actor: Actor, at: datetime) -> None:
        self.require_status("pause", DrillStatus.RUNNING)
        self.record(self.Paused, actor=actor, at=at, drill_time=drill_time)

    def resume(self, *, actor: Actor, at: datetime) -> None:
        self.require_status("resume", DrillStatus.PAUSED)
        self.record(self.Resumed, actor=actor, at=at)

    def change_speed(self, *, speed: float | None, actor: Actor, at: datetime) -> None:
        self.require_status("change speed", DrillStatus.RUNNING, DrillStatus.PAUSED)
        self.record(self.SpeedChanged, actor=actor, at=at, speed=speed)

    def jump_forward(self, *, to: datetime, current: datetime, actor: Actor,
                     at: datetime) -> None:
        """Jump the drill's clock to `to`, after its current time and within the window."""
        self.require_status("jump forward", DrillStatus.RUNNING, DrillStatus.PAUSED)
        self.check_jump(to, current)
        self.record(self.JumpedForward, actor=actor, at=at, drill_time=to)

    def check_jump(self, to: datetime, current: datetime) -> None:
        if to <= current:
            raise InvalidValue(f"jump target {to.isoformat()} is not after the drill's time "
                               f"{current.isoformat()}: a drill only jumps forward")
        if to > self.window_to:
            raise InvalidValue(f"jump target {to.isoformat()} is after the window's end "
                               f"{self.window_to.isoformat()}")

    def invite(self, *, users: list[str], actor: Actor, at: datetime) -> None:
        self.require_status("invite participants", DrillStatus.RUNNING, DrillStatus.PAUSED)
        new = [u for u in dict.fromkeys(users) if u not in self.participants]
        if new:
            self.record(self.ParticipantsInvited, actor=actor, at=at, users=new)

    def finish(self, *, drill_time: datetime | None, actor: Actor, at: datetime) -> None:
        self.require_status("finish", DrillStatus.RUNNING, DrillStatus.PAUSED)
        self.record(self.Finished, actor=actor, at=at, drill_time=drill_time)

    def delete(self, *, actor: Actor, at: datetime) -> None:
        self.require_status("delete", DrillStatus.RUNNING, DrillStatus.PAUSED,
                            DrillStatus.FINISHED)
        self.record(self.Deleted, actor=actor, at=at)

    def may_take_part(self, actor: Actor) -> bool:
        """Whether `actor` may switch into this drill: its planners, admins and invited
        participants."""
        return actor.role in (Role.PLANNER, Role.ADMIN) or actor.user_id in self.participants

    def summary(self) -> dict[str, Any]:
        return {
            "id": str(self.id), "name": self.name, "status": self.status.value,
            "window_from": self.window_from.isoformat(),
            "window_to": self.window_to.isoformat(),
            "speed": speed_text(self.speed), "scenario": self.scenario,
            "own_scenario": self.scenario_text is not None,
            "participants": list(self.participants), "started_by": self.started_by,
            "started_at": iso_or_none(self.started_at), "version": self.version,
        }
