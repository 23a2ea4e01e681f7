"""Commands are values: how a request becomes events, in one path that every caller takes.

The path, from a route to the event and its receipt (grid-case dispatch as the example):

1. A caller builds the command's value. `POST /grid-cases/{id}/dispatch` (the route in
   `command-center/routers/grid_cases.py`) turns its body into
   `DispatchCase(case_id=..., department=..., instructions=...)`; an ingest message, the
   simulator and the CLI build the same value. A command class is a frozen dataclass of one
   bounded context's commands file (`domain/gridcases/commands.py`); it checks its own fields
   when it is built (`__post_init__`, `InvalidValue` naming the field), so an invalid command
   never exists.
2. The caller says who acts and how, in a `CommandContext`: the actor, the command id (an
   HTTP `Idempotency-Key` scoped to its user, a Kafka message id), when it happened if the
   caller knows better than the clock, the versions of aggregates the user saw (`If-Match`:
   the route reads it with the `SeenVersion` dependency and puts it here) and, in ingest,
   the `CommandBatch` that saves many messages' commands together.
3. It hands both to the one entry point, `CommandHandlers.handle(command, context)` (or the
   owning application's `handle`, which it calls). That finds the ONE handler of the command
   class (a method of the bounded context's application marked `@handles(DispatchCase)`),
   checks in `domain/permissions.py` that the actor's role may issue that class of command,
   and runs the handler with a `UnitOfWork` (`domain/application.py`): the handler loads its
   aggregates through it (`uow.load(GridCase, command.case_id)`, which refuses a version
   other than the one the user saw, and a state another command of the batch holds
   unsaved), calls their methods, which record nested past-tense events
   (`GridCase.Dispatched`, with the actor and the time), and returns the aggregates.
4. The application saves those aggregates together with a `CommandReceipt` (its id derived
   from the command id, its fingerprint from the command's value: `Command.fingerprint`) in
   one transaction, or stages them in the batch. A repeat of the same command id answers as
   the first run did; the same id with another value is refused (`CommandIdReused`).
5. The entry point returns a `CommandOutcome`: the subject's id and whether it was only a
   repeat. The route answers the aggregate's state; the projections follow the stored
   events into the read models and the live push.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar
from uuid import UUID

from cityops.domain.actors import Actor
from cityops.domain.errors import InvalidValue
from cityops.domain.values import parse_enum

if TYPE_CHECKING:
    from cityops.domain.application import CommandBatch

E = TypeVar("E", bound=StrEnum)
F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


def fingerprint(command: str, args: Mapping[str, Any]) -> str:
    """A stable digest of what a command asked for (not who or when), to spot a reused id."""
    payload = json.dumps({"command": command, "args": args}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


COMMAND_CLASSES: dict[str, type[Command]] = {}
"""The command class of each name (the first, where several share one), filled as the
commands modules are imported."""
EVERY_COMMAND: list[type[Command]] = []
"""Every command class, in the order they were defined."""


@dataclass(frozen=True, kw_only=True)
class Command:
    """What a user or a system asks one bounded context to do, as a value.

    Subclasses are frozen dataclasses with a `name` (`"grid-case.dispatch"`: what receipts,
    permission messages and metrics call it) and validate their fields in `__post_init__`.
    Who asks, under which id and on which versions is not part of the command: that is the
    `CommandContext`."""

    name: ClassVar[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("name")
        if name is None:
            return  # a base of several commands (their shared fields), not a command itself
        if not isinstance(name, str):
            raise TypeError(f"command class {cls.__qualname__}'s name is not text")
        # Several classes may share a name: the outcomes of one decision, which receipts and
        # permissions have always named alike (`incident.verify` verifies or dismisses,
        # `incident.change-level` sets a level or steps it). The name finds the first.
        COMMAND_CLASSES.setdefault(name, cls)
        if cls not in EVERY_COMMAND:
            EVERY_COMMAND.append(cls)

    def fingerprint_args(self) -> dict[str, Any]:
        """What the fingerprint is computed from: every field, by name (a command whose field
        is not JSON-like as it was recorded before commands were values says how)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def fingerprint(self) -> str:
        """The digest a receipt keeps of this command: a command id repeated with an equal
        value is a repeat, with another value a reused id. Equal to the digest receipts got
        before commands were values, so that a client's retry across the upgrade (a phone's
        outbox) is still a repeat."""
        return fingerprint(self.name, self.fingerprint_args())


def command_class(name: str) -> type[Command] | None:
    """The command class named `name` (None: no command is called that)."""
    return COMMAND_CLASSES.get(name)


def enum_field(enum: type[E], label: str, value: E | str, plural: str | None = None) -> E:
    """A command field given as an enum member or its value, as the member (`InvalidValue`
    naming the known values otherwise: `values.parse_enum`, how every enum is parsed)."""
    return parse_enum(enum, value, label, plural)


def text_field(label: str, value: object) -> str:
    """A command field that must be text (a number or null is refused, not stored)."""
    if not isinstance(value, str):
        raise InvalidValue(f"{label} must be text, got {value!r}")
    return value


def checked_seen_versions(versions: Mapping[UUID, int]) -> Mapping[UUID, int]:
    """The versions a user saw, each a whole number from 1 (read-only)."""
    checked: dict[UUID, int] = {}
    for aggregate_id, version in versions.items():
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise InvalidValue(
                f"the version seen of {aggregate_id} must be a whole number from 1, "
                f"not {version!r}")
        checked[aggregate_id] = version
    return MappingProxyType(checked)


@dataclass(frozen=True, kw_only=True)
class CommandContext:
    """Who issues a command and under what terms: passed with every command, never found in
    ambient state."""

    actor: Actor
    command_id: str | None = None
    """The client's id of this command (receipted: a repeat changes nothing); None for a
    command that is not retried by id."""
    at: datetime | None = None
    """When it happened, if the caller knows (a message's time; checked against the
    clock); None: now, by the application's clock."""
    seen_versions: Mapping[UUID, int] = field(default_factory=dict)
    """The version of each aggregate that the user saw (`If-Match`): a command that loads one
    of them at another version is refused with `StaleVersion`, naming what changed."""
    batch: CommandBatch[Any] | None = None
    """Stage the command's events in this batch instead of saving them (ingest)."""

    def __post_init__(self) -> None:
        if not isinstance(self.actor, Actor):
            raise InvalidValue(f"a command's actor must be an Actor, not {self.actor!r}")
        object.__setattr__(self, "seen_versions", checked_seen_versions(self.seen_versions))

    def seen(self, versions: Mapping[UUID, int]) -> CommandContext:
        """This context, acting on these versions seen (instead of those it had)."""
        return replace(self, seen_versions=versions)

    def staged_in(self, batch: CommandBatch[Any] | None) -> CommandContext:
        """This context, its command staged in `batch` (None: saved at once)."""
        return replace(self, batch=batch)

    def fulfilled(self, aggregate_ids: set[UUID]) -> CommandContext:
        """This context after a command on these aggregates ran: the user's own change is no
        news to them, so a later step (a command of several steps) is not refused for it."""
        left = {i: v for i, v in self.seen_versions.items() if i not in aggregate_ids}
        return replace(self, seen_versions=left)


@dataclass(frozen=True)
class CommandOutcome:
    """What running one command came to: its subject, and whether it only repeated a command
    already done (nothing was saved then)."""

    command: str
    subject: UUID
    repeated: bool
    result: object = None
    """What the handler answered besides its subject, if anything (a reading's judgement,
    the id of a new finding); None for a repeat."""
    subject_state: object = field(default=None, compare=False, repr=False)
    """The subject as this command saved it, when saved at once: the command's own object,
    which no cache shares, so that the answer needs no second read of the event store.
    None otherwise (a repeat, nothing to save, staged in a batch not saved yet)."""

    def subject_as(self, cls: type[T]) -> T | None:
        """`subject_state` if it is a `cls` (else None: load the subject)."""
        state = self.subject_state
        return state if isinstance(state, cls) else None


HANDLED_COMMAND = "__cityops_handles__"


def handles(command: type[Command]) -> Callable[[F], F]:
    """Mark an application method as THE handler of `command` (one handler per command
    class; the application's class collects them, see `CityApplication`)."""

    def mark(method: F) -> F:
        setattr(method, HANDLED_COMMAND, command)
        return method

    return mark


class CommandHandling(Protocol):
    """An application that handles some command classes."""

    @classmethod
    def handled_commands(cls) -> frozenset[type[Command]]: ...

    def handle(self, command: Command, context: CommandContext) -> CommandOutcome: ...


class CommandHandlers:
    """The one entry point for commands: hands each to the application that handles its
    class (a command class is handled by exactly one application)."""

    def __init__(self, applications: list[CommandHandling]) -> None:
        self._owners: dict[type[Command], CommandHandling] = {}
        for application in applications:
            for command in application.handled_commands():
                if command in self._owners:
                    raise TypeError(f"{command.name} is handled by two applications")
                self._owners[command] = application

    def __contains__(self, command: type[Command]) -> bool:
        return command in self._owners

    def handle(self, command: Command, context: CommandContext) -> CommandOutcome:
        """Run `command` for `context` in the application that owns it."""
        owner = self._owners.get(type(command))
        if owner is None:
            raise TypeError(f"no application handles {type(command).__qualname__}")
        return owner.handle(command, context)
