"""The read-model tables of each stream, and the queries the command centre asks of them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cityops.domain.catalogue import Catalogue
from cityops.domain.duplicates import OpenReport
from cityops.domain.geometry import GeoPoint
from cityops.domain.gridcases.case import OPEN_STATUSES, GridCase
from cityops.domain.supervision import Light, light, light_at, turning_points
from cityops.projections.statistics import (
    CASE_LIGHTS_INDEX,
    CASE_STATISTICS_INDEX,
    GRID_CASE_TALLY,
)
from cityops.projections.tables import (
    DEPARTMENT_PAGES,
    ROW_POINT,
    Column,
    SummaryTable,
    utc_text,
)
from cityops.storage import ReadStore, row_document

METRES_PER_DEGREE_LAT = 111_320.0


def grid_case_table(catalogue: Catalogue) -> SummaryTable:
    """Grid cases, with the instants their light turns yellow and red (so that the light is
    a comparison with the current time, in SQL or in Python)."""

    # The turning points (working-time arithmetic) depend on the stage's clock alone, which
    # most events leave as it was: they are computed once per clock (a row after every
    # event, for the read models' history, asks again and again). Bounded; a dict's get and
    # set are atomic, so two threads writing rows share it safely.
    known: dict[Any, tuple[datetime, datetime] | None] = {}

    def points(case: GridCase) -> tuple[datetime, datetime] | None:
        if not case.is_open or case.stage is None:
            return None
        stage = case.stage
        if stage in known:
            return known[stage]
        found = turning_points(stage, catalogue.calendar, catalogue.yellow_fraction)
        if len(known) >= 50_000:
            known.clear()
        known[stage] = found
        return found

    def frozen(case: GridCase) -> str | None:
        if not case.is_open or case.stage is None or case.stage.paused_since is None:
            return None
        return light(case.stage, case.stage.paused_since, catalogue.calendar,
                     catalogue.yellow_fraction).value

    def yellow_at(case: GridCase) -> str | None:
        p = points(case)
        return utc_text(p[0]) if p else None

    def red_at(case: GridCase) -> str | None:
        p = points(case)
        return utc_text(p[1]) if p else None

    return SummaryTable(
        table="rm_grid_cases",
        aggregate_class=GridCase,
        columns=(
            Column("category", "TEXT", lambda c: c.category, indexed=True),
            Column("urgency", "TEXT", lambda c: c.urgency.value),
            Column("department", "TEXT", lambda c: c.department),  # first of page indexes
            Column("grid_cell", "TEXT", lambda c: c.grid_cell, indexed=True),
            Column("is_open", "BOOLEAN", lambda c: c.is_open, indexed=True),
            Column("reported_at", "TEXT", lambda c: utc_text(c.reported_at), indexed=True),
            Column("yellow_at", "TEXT", yellow_at, in_doc=True),
            Column("red_at", "TEXT", red_at, in_doc=True),
            Column("frozen_light", "TEXT", frozen, in_doc=True),
        ),
        geometries=(ROW_POINT,),
        indexes=(CASE_STATISTICS_INDEX, CASE_LIGHTS_INDEX),
        page_indexes=DEPARTMENT_PAGES,
        tallies=(GRID_CASE_TALLY,),
    )


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    total: int


@dataclass(frozen=True)
class BBox:
    """A bounding box in WGS84 (min lon, min lat, max lon, max lat)."""

    min_lon: float
    min_lat: float
    max_lon: float
    max_lat: float


class ReadModels:
    """Queries over the read-model tables (the same on SQLite and PostgreSQL)."""

    def __init__(self, store: ReadStore | Callable[[], ReadStore],
                 tables: Sequence[SummaryTable]) -> None:
        # A function gives the store of the generation serving reads now (it changes when a
        # rebuild switches over); each query asks it once.
        self._store = store
        self.tables = {t.table: t for t in tables}

    @property
    def store(self) -> ReadStore:
        """Where the read models are read now (the active generation's store)."""
        if callable(self._store):
            current: ReadStore = self._store()
            return current
        return self._store

    def get(self, table: str, aggregate_id: str) -> dict[str, Any] | None:
        with self.store.reading() as txn:
            txn.execute(f"SELECT doc FROM {self._table(table)} WHERE id = %s", (aggregate_id,))
            row = txn.fetchone()
        return row_document(row[0]) if row else None

    def page(
        self,
        table: str,
        *,
        filters: dict[str, Any] | None = None,
        prefixes: dict[str, str] | None = None,
        bbox: BBox | None = None,
        since: dict[str, str] | None = None,
        extra_where: Sequence[tuple[str, Sequence[Any]]] = (),
        order_by: str = "created_at DESC",
        limit: int = 50,
        offset: int = 0,
    ) -> Page:
        """Rows matching equal-value `filters`, code `prefixes`, a bbox and `since` times."""
        known = {c.name for c in self.tables[self._table(table)].all_columns} | {"id"}
        where: list[str] = []
        params: list[Any] = []
        for name, value in (filters or {}).items():
            self._check_column(name, known)
            if isinstance(value, list | tuple | set | frozenset):
                values = list(value)
                if not values:
                    where.append("1 = 0")
                    continue
                where.append(f"{name} IN ({', '.join(['%s'] * len(values))})")
                params.extend(values)
            else:
                where.append(f"{name} = %s")
                params.append(value)
        for name, prefix in (prefixes or {}).items():
            self._check_column(name, known)
            where.append(f"{name} LIKE %s")
            params.append(prefix.replace("%", "").replace("_", r"\_") + "%")
        for name, moment in (since or {}).items():
            self._check_column(name, known)
            where.append(f"{name} >= %s")
            params.append(moment)
        if bbox is not None:
            where.append("lon BETWEEN %s AND %s AND lat BETWEEN %s AND %s")
            params.extend([bbox.min_lon, bbox.max_lon, bbox.min_lat, bbox.max_lat])
        for clause, clause_params in extra_where:
            where.append(clause)
            params.extend(clause_params)
        sql_where = f" WHERE {' AND '.join(where)}" if where else ""
        order_column = order_by.split(maxsplit=1)[0]
        self._check_column(order_column, known)
        name = self._table(table)
        with self.store.reading() as txn:
            txn.execute(f"SELECT count(*) FROM {name}{sql_where}", params)
            count_row = txn.fetchone()
            txn.execute(
                f"SELECT doc FROM {name}{sql_where} ORDER BY {order_by}, id LIMIT %s OFFSET %s",
                [*params, limit, offset],
            )
            rows = txn.fetchall()
        return Page(items=[row_document(r[0]) for r in rows],
                    total=int(count_row[0]) if count_row else 0)

    def _table(self, table: str) -> str:
        if table not in self.tables:
            raise KeyError(f"no read model named {table!r}")
        return table

    @staticmethod
    def _check_column(name: str, known: set[str]) -> None:
        if name not in known:
            raise KeyError(f"no column {name!r}")

    # --- grid cases ---------------------------------------------------------------------

    def grid_case_lights(self, light_filter: Light, now: datetime) -> tuple[str, list[Any]]:
        """A WHERE clause selecting open cases showing `light_filter` at `now`."""
        now_text = utc_text(now)
        if light_filter is Light.RED:
            return ("(frozen_light = %s OR (frozen_light IS NULL AND red_at < %s))",
                    ["red", now_text])
        if light_filter is Light.YELLOW:
            return ("(frozen_light = %s OR (frozen_light IS NULL AND yellow_at <= %s "
                    "AND red_at >= %s))", ["yellow", now_text, now_text])
        return ("(frozen_light = %s OR (frozen_light IS NULL AND yellow_at > %s))",
                ["green", now_text])

    def open_reports(self, table: str, category_column: str) -> OpenReportIndex:
        """The open rows of `table` as the domain's duplicate finder."""
        return OpenReportIndex(self, self._table(table), category_column)

    def open_near(self, table: str, category_column: str, point: GeoPoint, radius_m: float,
                   since: datetime) -> list[OpenReport]:
        import math

        dlat = radius_m / METRES_PER_DEGREE_LAT
        dlon = radius_m / (METRES_PER_DEGREE_LAT * max(0.01, math.cos(math.radians(point.lat))))
        with self.store.reading() as txn:
            txn.execute(
                f"SELECT id, {category_column}, lon, lat, created_at FROM {table} "
                "WHERE is_open = %s AND created_at >= %s AND lon BETWEEN %s AND %s "
                "AND lat BETWEEN %s AND %s",
                (True, utc_text(since), point.lon - dlon, point.lon + dlon,
                 point.lat - dlat, point.lat + dlat),
            )
            rows = txn.fetchall()
        from uuid import UUID

        return [
            OpenReport(id=UUID(r[0]), category=r[1], location=GeoPoint(r[2], r[3]),
                       reported_at=datetime.fromisoformat(r[4]).astimezone(UTC))
            for r in rows
            if r[2] is not None
        ]


@dataclass(frozen=True)
class OpenReportIndex:
    """Open cases (or tickets) near a point: a bbox pre-filter in SQL; the domain's duplicate
    rule then measures the exact distance."""

    read_models: ReadModels
    table: str
    category_column: str

    def open_reports_near(self, point: GeoPoint, radius_m: float,
                          since: datetime) -> list[OpenReport]:
        return self.read_models.open_near(self.table, self.category_column, point, radius_m,
                                          since)


OPEN_CASE_STATUSES = sorted(s.value for s in OPEN_STATUSES)


def case_light_sql(now: datetime) -> tuple[str, list[Any]]:
    """SQL of a grid-case row's light at `now` ('green', 'yellow', 'red'; NULL for closed
    or rejected cases): the rule of `case_light`, over the row's columns (its document's
    values)."""
    now_text = utc_text(now)
    return ("CASE WHEN frozen_light IS NOT NULL THEN frozen_light "
            "WHEN yellow_at IS NULL OR red_at IS NULL THEN NULL "
            "WHEN red_at < %s THEN 'red' WHEN yellow_at <= %s THEN 'yellow' "
            "ELSE 'green' END", [now_text, now_text])


def case_light(doc: dict[str, Any], now: datetime) -> Light | None:
    """The light of a grid-case document at `now` (None for closed or rejected cases)."""
    if doc.get("frozen_light"):
        return Light(doc["frozen_light"])
    if not doc.get("yellow_at") or not doc.get("red_at"):
        return None
    return light_at((datetime.fromisoformat(doc["yellow_at"]),
                     datetime.fromisoformat(doc["red_at"])), now)

