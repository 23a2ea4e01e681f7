"""The drill registry's commands, as values (`cityops.domain.commands.Command`): frozen
dataclasses that check their own fields when built, handed with a `CommandContext` to the
one entry point of the registry (`Drills.handle`, through the drill room). The HTTP routes,
the planners' page and the CLI only build them."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar
from uuid import UUID

from cityops.domain.commands import Command
from cityops.domain.drills.drill import MAX_SPEED, MIN_SPEED
from cityops.domain.errors import InvalidValue
from cityops.domain.exercises.scenario import MAX_SCENARIO_BYTES
from cityops.domain.model import checked_text
from cityops.domain.values import checked_id, checked_instant, checked_number

USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
MAX_PARTICIPANTS = 500


def checked_speed(value: object) -> float | None:
    """A drill's speed: a number of drill seconds per real second from 1 to 100, or `max`
    (None: as fast as possible)."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "max"):
        return None
    if isinstance(value, str):
        text = value.strip().lower().removesuffix("x")
        try:
            value = float(text)
        except ValueError:
            raise InvalidValue(f"speed must be a number from {MIN_SPEED:g} to {MAX_SPEED:g} "
                               f"or \"max\", got {value!r}") from None
    number = checked_number("speed", value)
    if not MIN_SPEED <= number <= MAX_SPEED:
        raise InvalidValue(f"speed {number:g} is out of range: from {MIN_SPEED:g}x to "
                           f"{MAX_SPEED:g}x, or \"max\" (as fast as possible)")
    return number


def checked_users(users: tuple[str, ...]) -> tuple[str, ...]:
    if len(users) > MAX_PARTICIPANTS:
        raise InvalidValue(f"at most {MAX_PARTICIPANTS} participants per drill")
    for user in users:
        if not isinstance(user, str) or not USER_NAME.match(user):
            raise InvalidValue(f"participant {user!r} is not a user name")
    return tuple(dict.fromkeys(users))


@dataclass(frozen=True, kw_only=True)
class StartDrill(Command):
    """Start a drill replaying the history of [window_from, window_to]."""

    name: ClassVar[str] = "drill.start"
    drill_id: UUID
    title: str
    window_from: datetime
    window_to: datetime
    speed: float | None = 10.0
    scenario: str | None = None
    """The scenario's name: a shipped example's, or (with `scenario_text`) the planner's own."""
    participants: tuple[str, ...] = field(default=())
    scenario_text: str | None = None
    """The YAML text of the planner's own scenario file (checked against the city by the
    drill room before the drill starts)."""

    def __post_init__(self) -> None:
        checked_id("drill id", self.drill_id)
        object.__setattr__(self, "title", checked_text("title", self.title, limit=200))
        checked_instant("window_from", self.window_from)
        checked_instant("window_to", self.window_to)
        if self.window_to <= self.window_from:
            raise InvalidValue(
                f"the window is inverted or empty: window_to {self.window_to.isoformat()} is "
                f"not after window_from {self.window_from.isoformat()}")
        object.__setattr__(self, "speed", checked_speed(self.speed))
        if self.scenario is not None:
            object.__setattr__(self, "scenario",
                               checked_text("scenario", self.scenario, limit=200))
        if self.scenario_text is not None:
            if self.scenario is None:
                raise InvalidValue("a scenario file (scenario_text) needs a name (scenario): "
                                   "the file's name, shown in the drill room")
            if not isinstance(self.scenario_text, str) or not self.scenario_text.strip():
                raise InvalidValue("scenario_text is empty: give the YAML text of the "
                                   "scenario file")
            if len(self.scenario_text.encode()) > MAX_SCENARIO_BYTES:
                raise InvalidValue(f"scenario_text is larger than {MAX_SCENARIO_BYTES} bytes")
        object.__setattr__(self, "participants", checked_users(tuple(self.participants)))


@dataclass(frozen=True, kw_only=True)
class OnDrill(Command):
    """A command on one drill already started."""

    name: ClassVar[str]
    drill_id: UUID

    def __post_init__(self) -> None:
        checked_id("drill id", self.drill_id)


@dataclass(frozen=True, kw_only=True)
class PauseDrill(OnDrill):
    name: ClassVar[str] = "drill.pause"
    drill_time: datetime
    """The drill's clock when it stopped (the drill room reads it from the runner)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        checked_instant("drill time", self.drill_time)


@dataclass(frozen=True, kw_only=True)
class ResumeDrill(OnDrill):
    name: ClassVar[str] = "drill.resume"


@dataclass(frozen=True, kw_only=True)
class ChangeDrillSpeed(OnDrill):
    name: ClassVar[str] = "drill.change-speed"
    speed: float | None

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "speed", checked_speed(self.speed))


@dataclass(frozen=True, kw_only=True)
class JumpDrillForward(OnDrill):
    name: ClassVar[str] = "drill.jump-forward"
    to: datetime
    current: datetime
    """The drill's clock when the jump was asked for (from the runner)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        checked_instant("to", self.to)
        checked_instant("current drill time", self.current)


@dataclass(frozen=True, kw_only=True)
class InviteDrillParticipants(OnDrill):
    name: ClassVar[str] = "drill.invite"
    users: tuple[str, ...]

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.users:
            raise InvalidValue("users must name at least one participant")
        object.__setattr__(self, "users", checked_users(tuple(self.users)))


@dataclass(frozen=True, kw_only=True)
class FinishDrill(OnDrill):
    name: ClassVar[str] = "drill.finish"
    drill_time: datetime | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.drill_time is not None:
            checked_instant("drill time", self.drill_time)


@dataclass(frozen=True, kw_only=True)
class DeleteDrill(OnDrill):
    name: ClassVar[str] = "drill.delete"


DRILL_COMMANDS: tuple[type[Command], ...] = (
    StartDrill, PauseDrill, ResumeDrill, ChangeDrillSpeed, JumpDrillForward,
    InviteDrillParticipants, FinishDrill, DeleteDrill)
