"""Returns to the centre and their review, per department: how often a department said "not
ours", and how often the centre agreed (accepted) or disagreed (rejected: a dispute).

One row per return of a grid case (`rm_case_returns`) or of a hotline ticket
(`rm_ticket_returns`), written from the aggregate's own list of returns (see
`domain.returns`) in the follower's transaction, so the figures are exact, can be rebuilt
from zero, and a batch applied twice writes the same rows again. A return is counted against
the department that made it, whichever department the item went to afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from eventsourcing.domain import Aggregate

from cityops.domain.gridcases.case import CaseStatus, GridCase
from cityops.domain.hotline.ticket import HotlineTicket, TicketStatus
from cityops.domain.returns import ReturnOutcome
from cityops.projections.tables import utc_text
from cityops.storage import Transaction

CASE_RETURNS_TABLE = "rm_case_returns"
TICKET_RETURNS_TABLE = "rm_ticket_returns"

_COLUMNS = (
    ("item_id", "TEXT NOT NULL"),
    ("ordinal", "INTEGER NOT NULL"),
    ("department", "TEXT NOT NULL"),
    ("returned_at", "TEXT NOT NULL"),
    ("outcome", "TEXT NOT NULL"),
    ("reviewed_at", "TEXT"),
)
RETURN_COLUMNS = tuple(name for name, _ in _COLUMNS)


@dataclass(frozen=True)
class ReturnTable:
    """The returns of one aggregate class (`is_returned` says whether an item still awaits
    the centre's review of its latest return)."""

    table: str
    aggregate_class: type[Aggregate]
    is_returned: Callable[[Any], bool]

    def ddl(self, dialect: str) -> list[str]:
        columns = ", ".join(f"{name} {sql_type}" for name, sql_type in _COLUMNS)
        return [
            f"CREATE TABLE IF NOT EXISTS {self.table} ({columns}, "
            "PRIMARY KEY (item_id, ordinal))",
            # Covering: the figures per department are counted from the index alone.
            f"CREATE INDEX IF NOT EXISTS {self.table}_department_idx "
            f"ON {self.table} (department, outcome)",
        ]

    def batch(self) -> ReturnRows:
        return ReturnRows(self)

    def rows(self, item: Any) -> list[tuple[Any, ...]]:
        """One row per return of the item, with its outcome now."""
        returned = self.is_returned(item)
        last = len(item.returns) - 1
        return [
            (str(item.id), record.ordinal, record.department, utc_text(record.returned_at),
             record.outcome(awaiting=returned and index == last).value,
             utc_text(record.reviewed_at))
            for index, record in enumerate(item.returns)
        ]


class ReturnRows:
    """The return rows of one batch: the items' last states, each written once."""

    def __init__(self, table: ReturnTable) -> None:
        self.table = table
        self._latest: dict[Any, Any] = {}

    def add(self, event: Any, aggregate: Any) -> None:
        if aggregate.returns:
            self._latest[aggregate.id] = aggregate

    def write(self, txn: Transaction) -> None:
        rows = [row for item in self._latest.values() for row in self.table.rows(item)]
        if not rows:
            return
        updates = ", ".join(f"{n} = excluded.{n}" for n in RETURN_COLUMNS[2:])
        txn.executemany(
            f"INSERT INTO {self.table.table} ({', '.join(RETURN_COLUMNS)}) "
            f"VALUES ({', '.join(['%s'] * len(RETURN_COLUMNS))}) "
            f"ON CONFLICT (item_id, ordinal) DO UPDATE SET {updates}",
            rows,
        )


def case_return_table() -> ReturnTable:
    return ReturnTable(CASE_RETURNS_TABLE, GridCase,
                       lambda case: case.status is CaseStatus.RETURNED)


def ticket_return_table() -> ReturnTable:
    return ReturnTable(TICKET_RETURNS_TABLE, HotlineTicket,
                       lambda ticket: ticket.status is TicketStatus.RETURNED)


@dataclass(frozen=True)
class ReturnFigures:
    """The returns one department made and what the centre's review made of them."""

    returns_made: int = 0
    returns_awaiting_review: int = 0
    returns_accepted: int = 0
    returns_rejected: int = 0
    """Disputes: the centre found the case or ticket was the department's after all."""
    returns_lapsed: int = 0
    """Never reviewed (a ticket merged or handed over while returned, or history older
    than the review)."""

    def __add__(self, other: ReturnFigures) -> ReturnFigures:
        return ReturnFigures(**{f.name: getattr(self, f.name) + getattr(other, f.name)
                                for f in fields(self)})

    @property
    def returns_reviewed(self) -> int:
        return self.returns_accepted + self.returns_rejected

    @property
    def dispute_rate(self) -> float | None:
        """Rejected / reviewed returns: how often the department's "not ours" was wrong."""
        reviewed = self.returns_reviewed
        return self.returns_rejected / reviewed if reviewed else None

    def counts(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def as_dict(self) -> dict[str, Any]:
        return {**self.counts(), "returns_reviewed": self.returns_reviewed,
                "dispute_rate": self.dispute_rate}


_OUTCOME_FIELDS = {
    ReturnOutcome.AWAITING_REVIEW.value: "returns_awaiting_review",
    ReturnOutcome.ACCEPTED.value: "returns_accepted",
    ReturnOutcome.REJECTED.value: "returns_rejected",
    ReturnOutcome.LAPSED.value: "returns_lapsed",
}


def return_figures(txn: Transaction, table: str) -> dict[str, ReturnFigures]:
    """The figures of every department that returned something, from `table`."""
    txn.execute(f"SELECT department, outcome, COUNT(*) FROM {table} "
                "GROUP BY department, outcome")
    counts: dict[str, dict[str, int]] = {}
    for department, outcome, count in txn.fetchall():
        figures = counts.setdefault(department, {"returns_made": 0})
        figures["returns_made"] += int(count)
        figures[_OUTCOME_FIELDS[outcome]] = int(count)
    return {department: ReturnFigures(**figures) for department, figures in counts.items()}
