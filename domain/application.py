"""The base of the CityOps applications: idempotent commands, clear conflicts, one clock.

A command from outside carries a client-supplied id. A `CommandReceipt` aggregate, whose id
is derived from that command id, is saved in the same transaction as the events the command
caused: a repeated command finds its receipt and changes nothing, and two concurrent copies
cannot both record (the second insert of the receipt conflicts).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError, JSONTranscoder

from cityops.domain.actors import Actor
from cityops.domain.errors import (
    CommandIdReused,
    ConcurrencyConflict,
    InvalidValue,
    NotFound,
)
from cityops.domain.model import CityAggregate
from cityops.domain.permissions import check_permitted
from cityops.domain.transcodings import register_domain_transcodings

COMMAND_NAMESPACE = uuid5(NAMESPACE_URL, "https://cityops.invalid/commands")
MAX_CLOCK_SKEW = timedelta(minutes=5)
MAX_COMMAND_ID_LENGTH = 200

Clock = Callable[[], datetime]
A = TypeVar("A", bound=CityAggregate)


def system_clock() -> datetime:
    return datetime.now(UTC)


class CommandReceipt(Aggregate):
    """Proof that a command id was handled, and what it did."""

    @staticmethod
    def create_id(command_id: str) -> UUID:
        return uuid5(COMMAND_NAMESPACE, command_id)

    class Recorded(Aggregate.Created):
        command_id: str
        command: str
        fingerprint: str
        aggregate_id: UUID
        actor: Actor

    def __init__(self, command_id: str, command: str, fingerprint: str, aggregate_id: UUID,
                 actor: Actor) -> None:
        self.command_id = command_id
        self.command = command
        self.fingerprint = fingerprint
        self.aggregate_id = aggregate_id
        self.actor = actor


def fingerprint(command: str, args: Mapping[str, Any]) -> str:
    """A stable digest of what a command asked for (not who or when), to spot a reused id."""
    payload = json.dumps({"command": command, "args": args}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


class CityApplication(Application[UUID]):
    """An event-sourced application of one bounded context of CityOps."""

    def __init__(self, env: Mapping[str, str] | None = None, *, clock: Clock = system_clock):
        super().__init__(env=dict(env) if env is not None else None)
        self.clock = clock

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        register_domain_transcodings(transcoder)

    # --- time -------------------------------------------------------------------------

    def now(self, at: datetime | None = None) -> datetime:
        """When a command happened: the client's time if given (checked), else our clock."""
        current = self.clock()
        if at is None:
            return current
        if at.tzinfo is None or at.utcoffset() is None:
            raise InvalidValue(f"time {at.isoformat()} has no time zone")
        if at - current > MAX_CLOCK_SKEW:
            raise InvalidValue(f"time {at.isoformat()} is in the future")
        return at.astimezone(UTC)

    # --- loading ------------------------------------------------------------------------

    def load(self, cls: type[A], aggregate_id: UUID, version: int | None = None) -> A:
        """Load an aggregate of the expected class, or raise `NotFound` in its words."""
        try:
            aggregate: Aggregate = self.repository.get(aggregate_id, version=version)
        except AggregateNotFoundError:
            raise NotFound(cls.KIND, aggregate_id) from None
        if not isinstance(aggregate, cls):
            raise NotFound(cls.KIND, aggregate_id)
        return aggregate

    def exists(self, aggregate_id: UUID) -> bool:
        return aggregate_id in self.repository

    # --- commands -----------------------------------------------------------------------

    def command(self, command: str, actor: Actor, command_id: str | None,
                args: Mapping[str, Any], decide: Callable[[], Sequence[Aggregate]]) -> UUID:
        """Run a command after checking that the actor's role may issue it."""
        check_permitted(command, actor)
        return self.run_command(command, actor=actor, command_id=command_id, args=args,
                                decide=decide)

    def run_command(
        self,
        command: str,
        *,
        actor: Actor,
        command_id: str | None,
        args: Mapping[str, Any],
        decide: Callable[[], Sequence[Aggregate]],
    ) -> UUID:
        """Run `decide` (which loads aggregates and calls their methods), then save all the
        aggregates it returns together with the command's receipt, in one transaction.

        Returns the id of the first aggregate `decide` returned (the command's subject).
        """
        receipt_id = None
        digest = fingerprint(command, args)
        if command_id is not None:
            if not isinstance(command_id, str) or not command_id.strip():
                raise InvalidValue("command id must be a non-empty string")
            if len(command_id) > MAX_COMMAND_ID_LENGTH:
                raise InvalidValue(f"command id is longer than {MAX_COMMAND_ID_LENGTH} chars")
            receipt_id = CommandReceipt.create_id(command_id)
            earlier = self._receipt(receipt_id)
            if earlier is not None:
                return self._repeat(earlier, command_id, command, digest)

        aggregates = list(decide())
        if not aggregates:
            raise AssertionError(f"command {command} decided nothing")
        subject = aggregates[0]
        if command_id is None and not any(a.pending_events for a in aggregates):
            # Nothing happened (a repeat that the aggregate itself recognised): do not take
            # the event store's write lock for an empty save.
            return subject.id
        to_save: list[Aggregate] = list(aggregates)
        if command_id is not None:
            to_save.append(
                CommandReceipt(
                    command_id=command_id,
                    command=command,
                    fingerprint=digest,
                    aggregate_id=subject.id,
                    actor=actor,
                )
            )
        try:
            self.save(*to_save)
        except IntegrityError:
            if receipt_id is not None:
                earlier = self._receipt(receipt_id)
                if earlier is not None:
                    return self._repeat(earlier, command_id or "", command, digest)
            kind = getattr(subject, "KIND", type(subject).__name__)
            raise ConcurrencyConflict(kind, subject.id, command) from None
        return subject.id

    def _receipt(self, receipt_id: UUID) -> CommandReceipt | None:
        try:
            receipt: Aggregate = self.repository.get(receipt_id)
        except AggregateNotFoundError:
            return None
        assert isinstance(receipt, CommandReceipt)
        return receipt

    @staticmethod
    def _repeat(earlier: CommandReceipt, command_id: str, command: str, digest: str) -> UUID:
        if earlier.fingerprint != digest:
            raise CommandIdReused(command_id, earlier.command, command)
        return earlier.aggregate_id
