"""Aggregates a projection could not project, kept aside so that the rest of the city flows.

One event that the read-model code cannot turn into rows (a value out of every sane range, an
old event the code no longer reads) must not stop a read model for everyone: the follower
marks that aggregate as failing in `projection_failures`, skips its events while the tracking
position moves on for all the others, and tries the aggregate again later (after a restart at
once, when a new event of it arrives, and otherwise at growing intervals). A retry replays the
events it skipped (versions `from_version`..`to_version`, read from the event store), so a
successful retry writes exactly the rows that projecting them in turn would have written, and
clears the mark. Marks live in the read-model store beside the tracking positions: a restart
keeps them, and `/health` reports them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cityops.storage import Transaction

MAX_ERROR_TEXT = 500
"""An error is stored as its class and message, cut to this length."""

FAILURES_DDL = """
CREATE TABLE IF NOT EXISTS projection_failures (
    projection TEXT NOT NULL,
    application TEXT NOT NULL,
    aggregate_id TEXT NOT NULL,
    from_version BIGINT NOT NULL,
    to_version BIGINT NOT NULL,
    position BIGINT NOT NULL,
    error TEXT NOT NULL,
    first_failed_at TEXT NOT NULL,
    last_failed_at TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    PRIMARY KEY (projection, application, aggregate_id)
)
"""

_COLUMNS = ("aggregate_id", "from_version", "to_version", "position", "error",
            "first_failed_at", "last_failed_at", "attempts")


@dataclass(frozen=True)
class FailingAggregate:
    """An aggregate whose events a projection has set aside."""

    projection: str
    application: str
    """The event store (stream) it belongs to."""
    aggregate_id: str
    from_version: int
    """Its first event not projected."""
    to_version: int
    """Its last event set aside (every later one is still ahead of the tracked position)."""
    position: int
    """The notification at which it first failed."""
    error: str
    first_failed_at: str
    last_failed_at: str
    attempts: int

    def as_dict(self) -> dict[str, Any]:
        return {"projection": self.projection, "stream": self.application,
                "aggregate_id": self.aggregate_id, "from_version": self.from_version,
                "to_version": self.to_version, "position": self.position,
                "error": self.error, "first_failed_at": self.first_failed_at,
                "last_failed_at": self.last_failed_at, "attempts": self.attempts}


def describe_error(error: BaseException) -> str:
    """What went wrong, short enough for a table and a health report."""
    return f"{type(error).__name__}: {error}"[:MAX_ERROR_TEXT]


def failing_aggregates(txn: Transaction, projection: str,
                       application: str) -> dict[str, FailingAggregate]:
    """The aggregates of `application` that `projection` has set aside, by id."""
    txn.execute(
        f"SELECT {', '.join(_COLUMNS)} FROM projection_failures "
        "WHERE projection = %s AND application = %s ORDER BY position",
        (projection, application))
    found = {}
    for row in txn.fetchall():
        values = dict(zip(_COLUMNS, row, strict=True))
        found[str(values["aggregate_id"])] = FailingAggregate(
            projection=projection, application=application,
            aggregate_id=str(values["aggregate_id"]),
            from_version=int(values["from_version"]), to_version=int(values["to_version"]),
            position=int(values["position"]), error=str(values["error"]),
            first_failed_at=str(values["first_failed_at"]),
            last_failed_at=str(values["last_failed_at"]), attempts=int(values["attempts"]))
    return found


def mark_failing(txn: Transaction, projection: str, application: str, aggregate_id: str, *,
                 from_version: int, to_version: int, position: int, error: str,
                 now: str) -> None:
    """Set an aggregate aside (its first failure: one attempt)."""
    txn.execute(
        "INSERT INTO projection_failures (projection, application, aggregate_id, "
        "from_version, to_version, position, error, first_failed_at, last_failed_at, "
        "attempts) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, 1) "
        "ON CONFLICT (projection, application, aggregate_id) DO UPDATE SET "
        "to_version = excluded.to_version, error = excluded.error, "
        "last_failed_at = excluded.last_failed_at, "
        "attempts = projection_failures.attempts + 1",
        (projection, application, aggregate_id, from_version, to_version, position, error,
         now, now))


def failed_again(txn: Transaction, mark: FailingAggregate, *, to_version: int, error: str,
                 now: str) -> None:
    """A retry failed too (or more of its events were set aside)."""
    txn.execute(
        "UPDATE projection_failures SET to_version = %s, error = %s, last_failed_at = %s, "
        "attempts = attempts + 1 WHERE projection = %s AND application = %s "
        "AND aggregate_id = %s",
        (to_version, error, now, mark.projection, mark.application, mark.aggregate_id))


def set_aside(txn: Transaction, mark: FailingAggregate, to_version: int) -> None:
    """Later events of a failing aggregate were passed over (not tried)."""
    txn.execute(
        "UPDATE projection_failures SET to_version = %s WHERE projection = %s "
        "AND application = %s AND aggregate_id = %s",
        (to_version, mark.projection, mark.application, mark.aggregate_id))


def clear_failing(txn: Transaction, mark: FailingAggregate) -> None:
    """A retry projected the aggregate: it flows with the others again."""
    txn.execute(
        "DELETE FROM projection_failures WHERE projection = %s AND application = %s "
        "AND aggregate_id = %s", (mark.projection, mark.application, mark.aggregate_id))
