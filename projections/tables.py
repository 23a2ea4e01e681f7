"""Read-model tables whose rows are an aggregate's current state: the `summary()` document
plus a few indexed columns to filter, sort and locate by.

The row is computed from the aggregate rebuilt by the domain's own event handlers, so the read
model can never disagree with the domain about what a state means.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from eventsourcing.domain import Aggregate

from cityops.domain.geometry import Area, GeoPoint
from cityops.projections.tallies import Tally, kept
from cityops.storage import Transaction, json_text, upsert_rows

Extractor = Callable[[Any], Any]


@dataclass(frozen=True)
class Column:
    name: str
    sql_type: str
    """'TEXT', 'DOUBLE PRECISION', 'INTEGER' or 'BOOLEAN' (portable between SQLite and
    PostgreSQL; not 'REAL', which is single precision on PostgreSQL)."""
    extract: Extractor
    indexed: bool = False
    in_doc: bool = False
    """Also put the value in the row's document (for facts a reader needs with it)."""


def utc_text(moment: datetime | None) -> str | None:
    """Times are stored as UTC ISO text so that they compare correctly in both databases."""
    if moment is None:
        return None
    # Most are UTC already (the clock's): converting made a new datetime each time, in a
    # function called for several columns of every row version of a rebuild.
    return (moment if moment.tzinfo is UTC else moment.astimezone(UTC)).isoformat()


def doc_text(dialect: str, key: str) -> str:
    """SQL for a top-level text value of a row's document (NULL when absent or null), for
    filters on facts that have no column of their own."""
    if not key.isidentifier():
        raise ValueError(f"not a document key: {key!r}")
    if dialect == "postgres":
        return f"(doc ->> '{key}')"
    return f"json_extract(doc, '$.{key}')"


def _location(aggregate: Any) -> GeoPoint | None:
    location: GeoPoint | None = getattr(aggregate, "location", None)
    return location


def _coordinate(point: GeoPoint | None, axis: int) -> float | None:
    if point is None:
        return None
    return point.lon if axis == 0 else point.lat


class GeometryKind(StrEnum):
    """What a geometry column holds: the row's point, or a polygonal area of it."""

    POINT = "Point"
    AREA = "MultiPolygon"


@dataclass(frozen=True)
class GeometryColumn:
    """A geometry of the row. On SQLite a point is the `lon`/`lat` columns and an area is
    WKT text (`<name>_wkt`); on PostgreSQL each is also a PostGIS column in WGS84 with a GiST
    index, generated from those columns, so that it is written by the same statement (and
    transaction) as the row and can never disagree with it."""

    name: str
    kind: GeometryKind
    extract: Callable[[Any], Area | None] | None = None
    """For an area, the aggregate's polygon; a point is the table's `locate`."""

    @property
    def wkt_column(self) -> str:
        """The text column holding an area as WKT (both databases)."""
        return f"{self.name}_wkt"

    def postgres_column(self) -> str:
        """The PostGIS column definition (a stored generated column)."""
        if self.kind is GeometryKind.POINT:
            expression = "ST_SetSRID(ST_MakePoint(lon, lat), 4326)"
        else:
            # An affected area may be a MultiPolygon: every area is stored as one.
            expression = f"ST_Multi(ST_GeomFromText({self.wkt_column}, 4326))"
        return (f"{self.name} geometry({self.kind.value}, 4326) "
                f"GENERATED ALWAYS AS ({expression}) STORED")

    @property
    def present(self) -> str:
        """SQL saying that a row has this geometry: a point by its own columns (which an
        index holds, so that a question about the rows on the map need not read them), an
        area by its column."""
        if self.kind is GeometryKind.POINT:
            return "lon IS NOT NULL AND lat IS NOT NULL"
        return f"{self.name} IS NOT NULL"

    def postgres_indexes(self, table: str) -> list[str]:
        """GiST indexes: on the geometry (bbox, within-polygon) and, for a point, on its
        geography too (radius in metres, nearest by the KNN operator); and the bytewise
        order of the ids of the rows that have this geometry (the layers' pages)."""
        statements = [
            f"CREATE INDEX IF NOT EXISTS {table}_{self.name}_gist ON {table} "
            f"USING GIST ({self.name})",
            # The map layers' pages are in bytewise id order (`COLLATE "C"`, as on SQLite),
            # which the primary key (the database's collation) cannot give: this index
            # does, for the rows on the map, and counts them without reading a row.
            # A point's coordinates are in it too: a page of a bbox walked in this order
            # (where the box holds many rows) filters them from the index alone.
            f"CREATE INDEX IF NOT EXISTS {table}_{self.name}_id_bytes_idx ON {table} "
            f'(id COLLATE "C") '
            f"{'INCLUDE (lon, lat) ' if self.kind is GeometryKind.POINT else ''}"
            f"WHERE {self.present}",
        ]
        if self.kind is GeometryKind.POINT:
            statements.append(
                f"CREATE INDEX IF NOT EXISTS {table}_{self.name}_geog_gist ON {table} "
                f"USING GIST (({self.name}::geography))"
            )
        return statements


ROW_POINT = GeometryColumn("geom", GeometryKind.POINT)
"""The PostGIS point of a row located by its table's `locate`."""

DEPARTMENT_PAGES = (("status", "created_at"), ("department", "created_at"),
                    ("department", "status", "created_at"))
"""The page indexes of a table whose lists filter by state and department (a department
user's lists always do: their scope)."""


def _area_wkt(extract: Callable[[Any], Area | None]) -> Extractor:
    def wkt(aggregate: Any) -> str | None:
        area = extract(aggregate)
        return area.wkt if area is not None else None

    return wkt


@dataclass(frozen=True)
class SummaryTable:
    """One table per aggregate class; `columns` come in addition to the common ones."""

    table: str
    aggregate_class: type[Aggregate]
    columns: Sequence[Column] = field(default_factory=tuple)
    locate: Callable[[Any], GeoPoint | None] = _location
    """Where the row is on the map (for bbox and radius queries)."""
    geometries: Sequence[GeometryColumn] = field(default_factory=tuple)
    """Geometry columns (PostGIS on PostgreSQL) for the spatial queries."""
    indexes: Sequence[Sequence[str]] = field(default_factory=tuple)
    """Indexes over several columns, in order (one covering every column a query reads
    answers it without reading the rows' documents)."""
    page_indexes: Sequence[Sequence[str]] = field(default_factory=tuple)
    """Indexes of the current rows only (not of their history): the columns a list filters
    on by equality, then the one it pages by (`created_at`, newest first), so that a page
    of a rare combination is read in order from the index, not found by walking the
    whole table newest first (2.2 s for one at 1,000,000 grid cases, bench/city_scale.py)."""
    tallies: Sequence[Tally] = field(default_factory=tuple)
    """Counts of the rows kept with them (`tallies.py`), for figures over the whole table."""

    def __post_init__(self) -> None:
        # The row of an aggregate's state last computed (by the history's batch, which
        # computes one after every event), by aggregate id: the current row of the same
        # version is then not computed again. A dict's get/set/pop are atomic.
        object.__setattr__(self, "_last_rows", {})
        points = [g for g in self.geometries if g.kind is GeometryKind.POINT]
        if len(points) > 1:
            raise ValueError(f"{self.table}: a row has one point (its `locate`)")
        if any(g.kind is GeometryKind.AREA and g.extract is None for g in self.geometries):
            raise ValueError(f"{self.table}: an area geometry needs an `extract` function")

    def geometry(self, name: str) -> GeometryColumn:
        """A declared geometry column by name."""
        for column in self.geometries:
            if column.name == name:
                return column
        raise KeyError(f"{self.table} has no geometry column {name!r}")

    @property
    def all_columns(self) -> list[Column]:
        found: list[Column] | None = self.__dict__.get("_all_columns")
        if found is None:
            found = self._columns()
            object.__setattr__(self, "_all_columns", found)
        return found

    def _columns(self) -> list[Column]:
        common = [
            Column("version", "INTEGER", lambda a: a.version),
            Column("status", "TEXT", lambda a: a.status.value, indexed=True),
            # DOUBLE PRECISION: PostgreSQL's REAL is 4 bytes, about a metre of longitude.
            Column("lon", "DOUBLE PRECISION", lambda a: _coordinate(self.locate(a), 0)),
            Column("lat", "DOUBLE PRECISION", lambda a: _coordinate(self.locate(a), 1)),
            Column("created_at", "TEXT", lambda a: utc_text(a.created_on), indexed=True),
            # The live snapshots page the newest first (`command-center/live.py`): without
            # it, a snapshot sorted the whole table (11 s at 1,000,000 cases, 64 ms with it).
            Column("updated_at", "TEXT", lambda a: utc_text(a.modified_on), indexed=True),
        ]
        areas = [
            Column(g.wkt_column, "TEXT", _area_wkt(g.extract))
            for g in self.geometries
            if g.kind is GeometryKind.AREA and g.extract is not None
        ]
        return [*common, *self.columns, *areas]

    def ddl(self, dialect: str) -> list[str]:
        json_type = "JSONB" if dialect == "postgres" else "TEXT"
        cols = ", ".join(f"{c.name} {c.sql_type}" for c in self.all_columns)
        if dialect == "postgres" and self.geometries:
            cols += ", " + ", ".join(g.postgres_column() for g in self.geometries)
        statements = [
            f"CREATE TABLE IF NOT EXISTS {self.table} "
            f"(id TEXT PRIMARY KEY, {cols}, doc {json_type} NOT NULL)"
        ]
        if dialect == "postgres":
            for geometry in self.geometries:
                statements += geometry.postgres_indexes(self.table)
        statements += [
            f"CREATE INDEX IF NOT EXISTS {self.table}_{c.name}_idx ON {self.table} ({c.name})"
            for c in self.all_columns
            if c.indexed
        ]
        # With the id: the rows of a bbox, counted or paged, come from this index alone
        # (at 1,000,000 grid cases a bbox of 1 km2 matched 25,000 rows in as many pages of
        # the table, 200 ms, through the GiST index; bench/city_scale.py).
        statements.append(
            f"CREATE INDEX IF NOT EXISTS {self.table}_lonlat_id_idx "
            f"ON {self.table} (lon, lat, id)"
        )
        known = {c.name for c in self.all_columns}
        for kind, indexes in (("multi", self.indexes), ("page", self.page_indexes)):
            for number, names in enumerate(indexes, start=1):
                unknown = [n for n in names if n not in known]
                if unknown:
                    raise ValueError(f"{self.table}: index over unknown columns {unknown}")
                # Numbered: names of all the columns would pass PostgreSQL's 63 characters.
                statements.append(
                    f"CREATE INDEX IF NOT EXISTS {self.table}_{kind}{number}_idx "
                    f"ON {self.table} ({', '.join(names)})"
                )
        for tally in self.tallies:
            statements += tally.ddl(dialect)
        return statements

    def row_count(self, txn: Transaction) -> int:
        """How many rows the table has: from a tally of every row when there is one (a
        sum over a few hundred groups; counting 1,000,000 rows took 220 ms)."""
        for tally in self.tallies:
            if tally.where == "TRUE":
                return tally.total(txn)
        txn.execute(f"SELECT count(*) FROM {self.table}")
        row = txn.fetchone()
        return int(row[0]) if row else 0

    def upsert(self, txn: Transaction, aggregate: Any) -> None:
        self.upsert_many(txn, [aggregate])

    def upsert_many(self, txn: Transaction, aggregates: Sequence[Any]) -> None:
        """Write the rows of these aggregates (their current states) in one statement."""
        if not aggregates:
            return
        names = ["id", *(c.name for c in self.all_columns), "doc"]
        rows = [self.row(aggregate, remembered=True) for aggregate in aggregates]
        with kept(txn, self.tallies, [row[0] for row in rows]):
            upsert_rows(txn, self.table, names, rows, key=("id",))

    def row(self, aggregate: Any, *, remembered: bool = False, remember: bool = False
            ) -> list[Any]:
        """The row of the aggregate's current state: id, every column, the document.
        `remember`: keep it for the current row's write; `remembered`: take the one kept if
        it is of this version."""
        last_rows: dict[Any, tuple[int, list[Any]]] = self.__dict__["_last_rows"]
        if remembered:
            kept = last_rows.pop(aggregate.id, None)
            if kept is not None and kept[0] == aggregate.version:
                return kept[1]
        row = self._row(aggregate)
        if remember:
            last_rows[aggregate.id] = (aggregate.version, row)
        return row

    def _row(self, aggregate: Any) -> list[Any]:
        columns = self.all_columns
        extracted = [c.extract(aggregate) for c in columns]
        doc = aggregate.summary()
        for column, value in zip(columns, extracted, strict=True):
            if column.in_doc:
                doc[column.name] = value
        return [str(aggregate.id), *extracted, json_text(doc)]

    def batch(self) -> SummaryRows:
        """Collects one batch of notifications and writes each aggregate's row once."""
        return SummaryRows(self)


class SummaryRows:
    """The rows of one `SummaryTable` for one batch: the row is a function of the
    aggregate's current state, so only its last state in the batch needs writing (the same
    rows as writing after every event, in far fewer statements)."""

    def __init__(self, table: SummaryTable) -> None:
        self.table = table
        self._latest: dict[Any, Any] = {}

    def add(self, event: Any, aggregate: Any) -> None:
        # The follower evolves aggregates in place: the object kept here is read at `write`,
        # after the last event of the batch. A re-read aggregate (cache miss) replaces it.
        self._latest[aggregate.id] = aggregate

    def write(self, txn: Transaction) -> None:
        self.table.upsert_many(txn, list(self._latest.values()))
