"""The versions of every read-model row, each with the interval of business time in which it
was valid, so that "the city at T" is an indexed interval query, never a replay from zero.

Each read-model table (`rm_x`) has a history table (`rm_x_history`) with the same columns
and three more: `since_version` (the aggregate version the row version starts at),
`valid_from` (the business time of that event, as the injected clock stamped it) and
`valid_to` (the time of the next version of the same row, or `OPEN_END` while it is
current). The history tables are projected tables of their own (`HistoryTable`): the
follower writes them in the same batch and transaction as the current rows and the
position, so they are rebuilt with every generation and can never disagree with the rows.

A batch writes each row version once (an INSERT of all of them in one statement) and closes
each row's previous open version (one UPDATE per row touched); a batch applied twice writes
the same versions again. Every event of an aggregate gives each of its rows a version, also
a row the event did not change (the returns of an item that only moved on): the versions
written never depend on where batches begin and end, so a rebuild, a restored site and a
drill replaying the same events hold the very same history.

`valid_from <= T < valid_to` selects, for every row, the version in force at T: the state
after the last event stamped at or before T (two events stamped at the same instant leave
the first version an empty interval, never visible).

A state whose rows cannot be computed (an event the projection cannot project, set aside by
the follower) gets no version when a later event of the same batch corrects it: the version
before it stays in force until the correction, as the current table never showed it either.
A batch whose last state of an aggregate cannot be computed fails, and the follower sets
the aggregate aside (projections/follower.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from eventsourcing.domain import Aggregate

from cityops.projections.tables import Column, SummaryTable, utc_text
from cityops.storage import Transaction, upsert_rows

log = logging.getLogger(__name__)

HISTORY_SUFFIX = "_history"
OPEN_END = "9999-12-31T23:59:59.999999+00:00"
"""`valid_to` of a version still current: later than any instant, so that one range
condition (`valid_to > T`) selects it and no NULL needs an OR that defeats the index."""


def history_name(table: str) -> str:
    """The history table of read-model table `table`."""
    return f"{table}{HISTORY_SUFFIX}"


@dataclass(frozen=True)
class HistoryTable:
    """The row versions of one read-model table, projected from the same events."""

    current: str
    """The read-model table whose row versions are kept."""
    aggregate_class: type[Aggregate]
    key: tuple[str, ...]
    """The current table's key columns."""
    names: tuple[str, ...]
    """Every column the current table's rows are written with, in `rows_of` order."""
    definitions: Callable[[str], Sequence[str]]
    """The column definitions (SQL) of those columns in a dialect, plus any generated
    column the dialect adds (PostGIS geometries), without constraints."""
    rows_of: Callable[[Any], Sequence[Sequence[Any]]]
    """The rows of an aggregate's current state (as the current table writes them)."""
    generated: Callable[[str], Sequence[str]] = lambda dialect: ()
    """Names of generated columns in a dialect (read, never written)."""
    extra_ddl: Callable[[str, str], Sequence[str]] = lambda dialect, table: ()
    """More statements for the history table (spatial indexes) in a dialect."""
    sticky: tuple[str, ...] = ()
    """Columns that keep the value of the row's first version (as the current table's
    upsert never updates them)."""
    extras: Sequence[Column] = field(default_factory=tuple)
    """Columns of the history only (facts a past answer needs beside the row)."""
    indexes: Sequence[Sequence[str]] = field(default_factory=tuple)
    """More indexes, in order: the interval first and then the columns a past query reads,
    so that it is answered from the index without reading the versions' documents."""

    @property
    def table(self) -> str:
        return history_name(self.current)

    @property
    def written(self) -> tuple[str, ...]:
        """Every column a version is written with."""
        return (*self.names, *(c.name for c in self.extras), "since_version", "valid_from",
                "valid_to")

    def readable(self, dialect: str) -> tuple[str, ...]:
        """The columns of the current table, as a past answer reads them."""
        return (*self.names, *self.generated(dialect))

    def ddl(self, dialect: str) -> list[str]:
        table = self.table
        columns = [*self.definitions(dialect), *(f"{c.name} {c.sql_type}" for c in self.extras),
                   "since_version INTEGER NOT NULL", "valid_from TEXT NOT NULL",
                   "valid_to TEXT NOT NULL"]
        key = ", ".join((*self.key, "since_version"))
        return [
            f"CREATE TABLE IF NOT EXISTS {table} ({', '.join(columns)}, PRIMARY KEY ({key}))",
            # "In force at T": one range on either end, whichever the planner finds smaller.
            f"CREATE INDEX IF NOT EXISTS {table}_valid_from_idx ON {table} (valid_from)",
            f"CREATE INDEX IF NOT EXISTS {table}_valid_to_idx ON {table} (valid_to, valid_from)",
            *self.extra_ddl(dialect, table),
            *(f"CREATE INDEX IF NOT EXISTS {table}_multi{number}_idx ON {table} "
              f"({', '.join(names)})" for number, names in enumerate(self.indexes, start=1)),
        ]

    def batch(self) -> HistoryRows:
        return HistoryRows(self)

    def in_force(self, instant: str, dialect: str, extras: Sequence[str] = ()) -> str:
        """SQL selecting the rows in force at `instant` (UTC ISO text made by this
        program, never by a client: it is inlined so that the planner sees the value), with
        the current table's columns (and `extras` of the history's own)."""
        if "'" in instant:
            raise ValueError(f"not an instant: {instant!r}")
        return (f"SELECT {', '.join((*self.readable(dialect), *extras))} FROM {self.table} "
                f"WHERE valid_from <= '{instant}' AND valid_to > '{instant}'")


@dataclass
class _Version:
    row: tuple[Any, ...]
    since_version: int
    valid_from: str


class HistoryRows:
    """The row versions of one batch: the rows after every event, a version for each row
    that changed."""

    def __init__(self, table: HistoryTable) -> None:
        self.table = table
        self._key_positions = [table.names.index(k) for k in table.key]
        self._versions: dict[tuple[Any, ...], list[_Version]] = {}
        self._unprojectable: dict[Any, tuple[int, Exception]] = {}
        """Aggregates whose latest state in the batch has no rows: version, and why."""

    def add(self, event: Any, aggregate: Any) -> None:
        valid_from = utc_text(event.timestamp) or ""
        try:
            extras = tuple(c.extract(aggregate) for c in self.table.extras)
            computed = self.table.rows_of(aggregate)
        except Exception as error:
            self._unprojectable[aggregate.id] = (aggregate.version, error)
            return
        skipped = self._unprojectable.pop(aggregate.id, None)
        if skipped is not None:
            log.warning("%s: aggregate %s at version %d has no row version (%s: %s); the "
                        "previous version stays in force until version %d", self.table.table,
                        aggregate.id, skipped[0], type(skipped[1]).__name__, skipped[1],
                        aggregate.version)
        for row in computed:
            values = (*row, *extras)
            key = tuple(values[i] for i in self._key_positions)
            versions = self._versions.setdefault(key, [])
            if versions and versions[-1].since_version == aggregate.version:
                versions[-1] = _Version(values, aggregate.version, valid_from)
                continue
            versions.append(_Version(values, aggregate.version, valid_from))

    def write(self, txn: Transaction) -> None:
        for _, error in self._unprojectable.values():
            raise error
        if not self._versions:
            return
        table = self.table
        sticky = self._sticky_values(txn) if table.sticky else {}
        sticky_positions = [table.names.index(n) for n in table.sticky]
        closes: list[list[Any]] = []
        rows: list[list[Any]] = []
        for key, versions in self._versions.items():
            first = versions[0]
            closes.append([first.valid_from, *key, first.since_version])
            kept = sticky.get(key)
            if kept is None and sticky_positions:
                kept = tuple(first.row[i] for i in sticky_positions)
            for number, version in enumerate(versions):
                row = list(version.row)
                if kept is not None:
                    for position, value in zip(sticky_positions, kept, strict=True):
                        row[position] = value
                valid_to = (versions[number + 1].valid_from if number + 1 < len(versions)
                            else OPEN_END)
                rows.append([*row, version.since_version, version.valid_from, valid_to])
        where_key = " AND ".join(f"{k} = %s" for k in table.key)
        txn.executemany(
            f"UPDATE {table.table} SET valid_to = %s WHERE {where_key} "
            f"AND valid_to = '{OPEN_END}' AND since_version < %s",
            closes,
        )
        upsert_rows(txn, table.table, table.written, rows, key=(*table.key, "since_version"))

    def _sticky_values(self, txn: Transaction) -> dict[tuple[Any, ...], tuple[Any, ...]]:
        """The sticky columns of the rows' versions open before this batch."""
        table = self.table
        first_key = table.key[0]
        values = sorted({key[0] for key in self._versions})
        found: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        chunk = 500
        for start in range(0, len(values), chunk):
            part = values[start:start + chunk]
            txn.execute(
                f"SELECT {', '.join((*table.key, *table.sticky))} FROM {table.table} "
                f"WHERE valid_to = '{OPEN_END}' AND {first_key} IN "
                f"({', '.join(['%s'] * len(part))})",
                part,
            )
            for row in txn.fetchall():
                found[tuple(row[:len(table.key)])] = tuple(row[len(table.key):])
        return found


def summary_history(table: SummaryTable, extras: Sequence[Column] = (),
                    covering: Sequence[Sequence[str]] = ()) -> HistoryTable:
    """The history of a `SummaryTable` (one row per aggregate, keyed by its id); `covering`:
    more columns a past question reads, each indexed after the interval."""
    columns = table.all_columns
    names = ("id", *(c.name for c in columns), "doc")

    def definitions(dialect: str) -> list[str]:
        json_type = "JSONB" if dialect == "postgres" else "TEXT"
        found = ["id TEXT NOT NULL", *(f"{c.name} {c.sql_type}" for c in columns),
                 f"doc {json_type} NOT NULL"]
        if dialect == "postgres":
            found += [g.postgres_column() for g in table.geometries]
        return found

    def generated(dialect: str) -> list[str]:
        return [g.name for g in table.geometries] if dialect == "postgres" else []

    def extra_ddl(dialect: str, name: str) -> list[str]:
        if dialect != "postgres":
            return []
        return [s for g in table.geometries for s in g.postgres_indexes(name)]

    def rows_of(aggregate: Any) -> list[tuple[Any, ...]]:
        return [tuple(table.row(aggregate, remember=True))]

    # The lists count their rows per state and page them newest first; the statistics read
    # the table's own covering indexes: each, at an instant, from an index alone.
    indexes = [("valid_to", "valid_from", "status"), ("created_at", "valid_from", "valid_to"),
               *(("valid_to", "valid_from", *names) for names in (*table.indexes, *covering))]
    return HistoryTable(
        current=table.table, aggregate_class=table.aggregate_class, key=("id",), names=names,
        definitions=definitions, rows_of=rows_of, generated=generated, extra_ddl=extra_ddl,
        extras=tuple(extras), indexes=indexes,
    )


def plain_history(current: str, aggregate_class: type[Aggregate],
                  columns: Sequence[tuple[str, str]], key: tuple[str, ...],
                  rows_of: Callable[[Any], Sequence[Sequence[Any]]],
                  sticky: tuple[str, ...] = (),
                  covering: Sequence[Sequence[str]] = ()) -> HistoryTable:
    """The history of a table of plain columns (`(name, SQL type)`), keyed by `key`;
    `covering`: columns a past question reads, each indexed after the interval."""
    names = tuple(name for name, _ in columns)
    definitions = [f"{name} {sql_type}" for name, sql_type in columns]
    return HistoryTable(current=current, aggregate_class=aggregate_class, key=key,
                        names=names, definitions=lambda dialect: definitions,
                        rows_of=rows_of, sticky=sticky,
                        indexes=[("valid_to", "valid_from", *names) for names in covering])



def history_of(table: Any) -> HistoryTable:
    """The history table of one of the city's read-model tables."""
    from cityops.domain.resources.resource import Resource
    from cityops.projections.returns import _COLUMNS as RETURN_COLUMN_TYPES
    from cityops.projections.returns import ReturnTable
    from cityops.projections.statistics import (
        _DISPATCH_COLUMNS,
        DISPATCH_COUNTED,
        CaseDispatchTable,
        dispatch_row,
    )

    if isinstance(table, SummaryTable):
        extras = (RESOURCE_POSITION_AT,) if table.aggregate_class is Resource else ()
        return summary_history(table, extras)
    if isinstance(table, CaseDispatchTable):
        def dispatch_rows(case: Any) -> list[tuple[Any, ...]]:
            row = dispatch_row(case)
            return [row] if row is not None else []

        return plain_history(table.table, table.aggregate_class, _DISPATCH_COLUMNS,
                             ("case_id", "ordinal"), dispatch_rows,
                             sticky=("reworks_at_dispatch",),
                             covering=[(by, *DISPATCH_COUNTED)
                                       for by in ("grid_cell", "department")])
    if isinstance(table, ReturnTable):
        return plain_history(table.table, table.aggregate_class, RETURN_COLUMN_TYPES,
                             ("item_id", "ordinal"), table.rows)
    raise TypeError(f"no history for read-model table {table!r}")


RESOURCE_POSITION_AT = Column(
    "position_at", "TEXT",
    lambda r: utc_text(r.position.at) if r.position is not None else None)
"""When a resource's recorded position was measured (a past answer takes a later fix from
the tracks instead)."""


def with_histories(groups: Mapping[str, Sequence[Any]]) -> dict[str, list[Any]]:
    """Each application's read-model tables followed by their history tables."""
    return {name: [*tables, *(history_of(t) for t in tables)]
            for name, tables in groups.items()}
