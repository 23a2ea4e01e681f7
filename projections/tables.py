"""Read-model tables whose rows are an aggregate's current state: the `summary()` document
plus a few indexed columns to filter, sort and locate by.

The row is computed from the aggregate rebuilt by the domain's own event handlers, so the read
model can never disagree with the domain about what a state means.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from eventsourcing.domain import Aggregate

from cityops.domain.geometry import GeoPoint
from cityops.projections.store import Transaction

Extractor = Callable[[Any], Any]


@dataclass(frozen=True)
class Column:
    name: str
    sql_type: str
    """'TEXT', 'REAL', 'INTEGER' or 'BOOLEAN' (portable between SQLite and PostgreSQL)."""
    extract: Extractor
    indexed: bool = False
    in_doc: bool = False
    """Also put the value in the row's document (for facts a reader needs with it)."""


def utc_text(moment: datetime | None) -> str | None:
    """Times are stored as UTC ISO text so that they compare correctly in both databases."""
    return moment.astimezone(UTC).isoformat() if moment is not None else None


def _location(aggregate: Any) -> GeoPoint | None:
    location: GeoPoint | None = getattr(aggregate, "location", None)
    return location


def _coordinate(point: GeoPoint | None, axis: int) -> float | None:
    if point is None:
        return None
    return point.lon if axis == 0 else point.lat


@dataclass(frozen=True)
class SummaryTable:
    """One table per aggregate class; `columns` come in addition to the common ones."""

    table: str
    aggregate_class: type[Aggregate]
    columns: Sequence[Column] = field(default_factory=tuple)
    locate: Callable[[Any], GeoPoint | None] = _location
    """Where the row is on the map (for bbox and radius queries)."""

    @property
    def all_columns(self) -> list[Column]:
        common = [
            Column("version", "INTEGER", lambda a: a.version),
            Column("status", "TEXT", lambda a: a.status.value, indexed=True),
            Column("lon", "REAL", lambda a: _coordinate(self.locate(a), 0)),
            Column("lat", "REAL", lambda a: _coordinate(self.locate(a), 1)),
            Column("created_at", "TEXT", lambda a: utc_text(a.created_on), indexed=True),
            Column("updated_at", "TEXT", lambda a: utc_text(a.modified_on)),
        ]
        return [*common, *self.columns]

    def ddl(self, dialect: str) -> list[str]:
        json_type = "JSONB" if dialect == "postgres" else "TEXT"
        cols = ", ".join(f"{c.name} {c.sql_type}" for c in self.all_columns)
        statements = [
            f"CREATE TABLE IF NOT EXISTS {self.table} "
            f"(id TEXT PRIMARY KEY, {cols}, doc {json_type} NOT NULL)"
        ]
        statements += [
            f"CREATE INDEX IF NOT EXISTS {self.table}_{c.name}_idx ON {self.table} ({c.name})"
            for c in self.all_columns
            if c.indexed
        ]
        statements.append(
            f"CREATE INDEX IF NOT EXISTS {self.table}_lonlat_idx ON {self.table} (lon, lat)"
        )
        return statements

    def upsert(self, txn: Transaction, aggregate: Any) -> None:
        columns = self.all_columns
        names = ["id", *(c.name for c in columns), "doc"]
        extracted = [c.extract(aggregate) for c in columns]
        doc = aggregate.summary()
        for column, value in zip(columns, extracted, strict=True):
            if column.in_doc:
                doc[column.name] = value
        values = [str(aggregate.id), *extracted, json.dumps(doc, sort_keys=True)]
        updates = ", ".join(f"{n} = excluded.{n}" for n in names[1:])
        txn.execute(
            f"INSERT INTO {self.table} ({', '.join(names)}) "
            f"VALUES ({', '.join(['%s'] * len(names))}) "
            f"ON CONFLICT (id) DO UPDATE SET {updates}",
            values,
        )
