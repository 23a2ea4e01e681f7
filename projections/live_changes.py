"""The change log of the live push: what changed in the read models, in the order it was
committed, so that every web server process can tail it and push it to its WebSocket clients.

`live_changes` lives in each read-model generation's store. The follower writes one row per
aggregate per batch IN THE SAME TRANSACTION as the read-model rows and its position, so a
row is in the log exactly when its state is in the read models (a failed batch leaves
neither). A row carries the layer id of projections/spatial_layers.py, the aggregate id, the
names of the batch's events, the document as the read model holds it (grid cases with their
light), the point as GeoJSON, the filter values (category, level, department, light, lon,
lat) and the filter values the item had before the batch (`previous`, with the fields that
decide which department users may see an incident): a client whose filter or scope the item
has just left is told to remove it, without the server remembering what each client holds.
The supervision clock's `LightChanged` and the presence of people viewing an item travel
through the same table.

Its `seq` is the position clients see. It must never let a reader skip a row whose number
commits late: SQLite serialises writers (BEGIN IMMEDIATE); on PostgreSQL every insert first
takes an EXCLUSIVE lock on the table (as the eventsourcing library does for its
notifications), held until commit, so sequence numbers commit in order. The insert also
NOTIFYs a channel (delivered at commit) that wakes the tailers at once.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cityops.domain.clock import Clock, system_clock
from cityops.projections.spatial_layers import LAYERS, ReadModelSource
from cityops.projections.views import case_light
from cityops.storage import (
    ReadStore,
    Transaction,
    json_text,
    row_document,
    schema_transaction,
)

log = logging.getLogger(__name__)

TABLE = "live_changes"
PRESENCE = "presence"
"""The layer of presence rows (who is viewing which item)."""
LIGHT_CHANGED = "LightChanged"
DEFAULT_RETENTION = timedelta(minutes=60)
PRUNE_EVERY_S = 30.0
COLUMNS = ("layer", "item_id", "events", "at", "recorded_at", "doc", "lon", "lat", "category",
           "level", "department", "light", "previous", "dedupe_key")
"""The columns a change row is written with, in the order of `LiveChangeLog.row`."""
ROW_PLACEHOLDERS = f"({', '.join(['%s'] * len(COLUMNS))})"
ROWS_PER_INSERT = 64
"""Rows of one INSERT: 896 parameters, within any SQLite's limit of 999."""
QUERY_CHUNK = 500


@dataclass(frozen=True)
class LiveLayer:
    """A map layer pushed live: its read-model table and which columns filter it."""

    id: str
    category: str | None
    """The column the subscription's `categories` filter applies to."""
    level: str | None = None
    """The column the `levels` filter applies to (incidents only)."""
    department: str | None = None
    """The column of the owning department (scopes department users)."""
    lights: bool = False
    """Whether its items have a supervision light (grid cases)."""
    scope_in_doc: bool = False
    """Whether the department users who may see an item are decided by its document rather
    than a department column (incidents: their tasks' departments and their reporter)."""

    @property
    def table(self) -> str:
        """The read-model table (the layer's source in spatial_layers.py)."""
        source = LAYERS[self.id].source
        assert isinstance(source, ReadModelSource)
        return source.table

    def filter_columns(self) -> list[str]:
        """The row's columns that give its filter values."""
        columns = ["lon", "lat"]
        for column in (self.category, self.level, self.department):
            if column is not None:
                columns.append(column)
        if self.lights:
            columns += ["yellow_at", "red_at", "frozen_light"]
        return columns


LIVE_LAYERS: Mapping[str, LiveLayer] = {
    layer.id: layer for layer in (
        LiveLayer("grid-cases", category="category", department="department", lights=True),
        LiveLayer("incidents", category="category", level="level", scope_in_doc=True),
        LiveLayer("hazard-sources", category="hazard_type"),
        LiveLayer("resources", category="kind", department="department"),
        LiveLayer("hotline-tickets", category="topic", department="department"),
        # A department sees a warning once issued (its document decides, as for incidents).
        LiveLayer("warnings", category="alert_status", level="level", scope_in_doc=True),
    )
}
"""The layers of the live push (the point layers of projections/spatial_layers.py)."""


@dataclass(frozen=True)
class FilterValues:
    """What subscriptions filter an item by: where it is, its category, level, department
    and light."""

    lon: float | None = None
    lat: float | None = None
    category: str | None = None
    level: str | None = None
    department: str | None = None
    light: str | None = None
    scope: Mapping[str, Any] | None = None
    """On layers whose scope is in the document: the document's fields that decide which
    department users may see the item (`scope_document`)."""

    def as_dict(self) -> dict[str, Any]:
        return {"lon": self.lon, "lat": self.lat, "category": self.category,
                "level": self.level, "department": self.department, "light": self.light,
                "scope": dict(self.scope) if self.scope is not None else None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FilterValues:
        return cls(lon=data.get("lon"), lat=data.get("lat"), category=data.get("category"),
                   level=data.get("level"), department=data.get("department"),
                   light=data.get("light"), scope=data.get("scope"))

    def scope_document(self) -> dict[str, Any]:
        """What the department scope (command-center/scopes.py) reads of the item, as
        these values know it: its department, and on incidents reporter and tasks."""
        return {"department": self.department, **(self.scope or {})}


def scope_document(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of an incident's document that decide which department users may see it
    (command-center/scopes.py: a task for their department, or reported by them): kept
    small in the change log, each department once."""
    if "sequence" in doc:
        # A warning: departments see it once a message went out (a restricted one only
        # where they may receive it).
        return {"sequence": doc.get("sequence"), "scope": doc.get("scope")}
    departments = {task.get("department") for task in doc.get("tasks") or []}
    return {"reported_by": doc.get("reported_by"),
            "tasks": [{"department": d} for d in sorted(d for d in departments if d)]}


def _values(layer: LiveLayer, row: Mapping[str, Any], now: datetime) -> FilterValues:
    light = None
    if layer.lights:
        current = case_light(dict(row), now)
        light = current.value if current is not None else None
    return FilterValues(
        lon=row.get("lon"), lat=row.get("lat"),
        category=row.get(layer.category) if layer.category else None,
        level=row.get(layer.level) if layer.level else None,
        department=row.get(layer.department) if layer.department else None,
        light=light,
        scope=scope_document(row_document(row["doc"]))
        if layer.scope_in_doc and row.get("doc") is not None else None,
    )


@dataclass
class TouchedItem:
    """One aggregate a batch changed: its events' names and the time of the last."""

    layer: LiveLayer
    item_id: str
    events: list[str] = field(default_factory=list)
    at: datetime | None = None


@dataclass(frozen=True)
class ChangeRow:
    """One row of the change log, as the tailers read it."""

    seq: int
    layer: str
    item_id: str
    events: list[str]
    at: str
    doc: dict[str, Any] | None
    geometry: dict[str, Any] | None
    values: FilterValues
    previous: FilterValues | None
    recorded_at: str


def _now_text() -> str:
    # Real time on purpose: `recorded_at` only measures the retention, the real minutes a
    # disconnected client may be away and still resume (the change's own time is `at`).
    return system_clock().isoformat()


def _point(lon: Any, lat: Any) -> dict[str, Any] | None:
    if lon is None or lat is None:
        return None
    return {"type": "Point", "coordinates": [float(lon), float(lat)]}


class LiveChangeLog:
    """Writes and reads the `live_changes` table of a read-model store."""

    def __init__(self, *, channel: str | None = None,
                 retention: timedelta = DEFAULT_RETENTION) -> None:
        self.channel = channel
        """PostgreSQL channel NOTIFYed on every insert (None: nobody listens)."""
        self.retention = retention
        self.tables = {layer.table: layer for layer in LIVE_LAYERS.values()}
        self._pruned_at = float("-inf")

    # --- schema ---------------------------------------------------------------------------

    @staticmethod
    def ddl(dialect: str) -> list[str]:
        """The table and its indexes (idempotent)."""
        seq = ("seq BIGSERIAL PRIMARY KEY" if dialect == "postgres"
               else "seq INTEGER PRIMARY KEY AUTOINCREMENT")
        return [
            f"""CREATE TABLE IF NOT EXISTS {TABLE} (
                {seq},
                layer TEXT NOT NULL,
                item_id TEXT NOT NULL,
                events TEXT NOT NULL,
                at TEXT NOT NULL,
                recorded_at TEXT NOT NULL,
                doc TEXT,
                lon DOUBLE PRECISION,
                lat DOUBLE PRECISION,
                category TEXT,
                level TEXT,
                department TEXT,
                light TEXT,
                previous TEXT,
                dedupe_key TEXT UNIQUE
            )""",
            f"CREATE INDEX IF NOT EXISTS {TABLE}_recorded_at_idx ON {TABLE} (recorded_at)",
            f"CREATE INDEX IF NOT EXISTS {TABLE}_layer_idx ON {TABLE} (layer, seq)",
        ]

    def create(self, store: ReadStore) -> None:
        """Create the table in `store` (every generation has one)."""
        with schema_transaction(store) as txn:
            for statement in self.ddl(store.dialect):
                txn.execute(statement)

    # --- the follower's part ----------------------------------------------------------------

    def previous(self, txn: Transaction, touched: Iterable[TouchedItem],
                 now: datetime) -> dict[tuple[str, str], FilterValues]:
        """The filter values of the touched items as the read models hold them before the
        batch is written (an item not there yet has none)."""
        found: dict[tuple[str, str], FilterValues] = {}
        for layer, ids in _by_layer(touched).items():
            columns = [*layer.filter_columns(), *(["doc"] if layer.scope_in_doc else [])]
            for row in _select(txn, layer, ids, columns):
                found[(layer.id, row["id"])] = _values(layer, row, now)
        return found

    def record_batch(self, txn: Transaction, touched: Sequence[TouchedItem],
                     previous: Mapping[tuple[str, str], FilterValues], now: datetime,
                     dialect: str) -> int:
        """Write one change row per touched item, from the rows the batch has just written
        (same transaction); returns how many."""
        rows: list[list[Any]] = []
        recorded_at = _now_text()
        for layer, ids in _by_layer(touched).items():
            states = {row["id"]: row for row in
                      _select(txn, layer, ids, [*layer.filter_columns(), "doc"])}
            for item in touched:
                if item.layer is not layer or item.item_id not in states:
                    continue
                row = states[item.item_id]
                values = _values(layer, row, now)
                doc = row_document(row["doc"])
                if layer.lights:
                    doc["light"] = values.light
                before = previous.get((layer.id, item.item_id))
                rows.append(self.row(layer.id, item.item_id, item.events,
                                      (item.at or now).isoformat(), recorded_at, doc,
                                      values, before, None))
        self.insert(txn, rows, dialect)
        return len(rows)

    # --- the supervision clock's part -------------------------------------------------------

    def record_light_change(self, store: ReadStore, case_id: str, light: str,
                            previous_light: str | None, key: str, at: datetime) -> bool:
        """Write a grid case's light change once, whichever process tells it first (the
        `key` names that one change: case, light and turning points); False if another
        process already did, or the case is no longer in the read models."""
        layer = LIVE_LAYERS["grid-cases"]
        with store.transaction() as txn:
            rows = _select(txn, layer, [case_id], [*layer.filter_columns(), "doc"])
            if not rows:
                return False
            row = rows[0]
            doc = row_document(row["doc"])
            doc["light"] = light
            current = _values(layer, row, at)
            values = FilterValues(current.lon, current.lat, current.category, current.level,
                                  current.department, light)
            before = FilterValues(current.lon, current.lat, current.category, current.level,
                                  current.department, previous_light)
            return self.insert(txn, [self.row(
                layer.id, case_id, [LIGHT_CHANGED], at.isoformat(), _now_text(), doc, values,
                before, f"light:{key}")], store.dialect) > 0

    # --- presence ---------------------------------------------------------------------------

    def record_presence(self, store: ReadStore, connection: str, presence: Mapping[str, Any],
                        department: str | None) -> int:
        """Write what one connection is viewing now (`presence` has user_id, role, layer,
        id — None when it views nothing —, since and expires_at); returns its position."""
        with store.transaction() as txn:
            values = FilterValues(department=department)
            self.insert(txn, [self.row(PRESENCE, connection, ["Viewing"], _now_text(),
                                         _now_text(), dict(presence), values, None, None)],
                         store.dialect)
            txn.execute(f"SELECT max(seq) FROM {TABLE}")
            row = txn.fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    # --- writing ------------------------------------------------------------------------------

    @staticmethod
    def row(layer: str, item_id: str, events: Sequence[str], at: str, recorded_at: str,
             doc: dict[str, Any] | None, values: FilterValues, before: FilterValues | None,
             dedupe_key: str | None) -> list[Any]:
        """One row's values, in the order `insert` takes them."""
        return [layer, item_id, json.dumps(list(events)), at, recorded_at,
                json_text(doc) if doc is not None else None,
                values.lon, values.lat, values.category, values.level, values.department,
                values.light, json.dumps(before.as_dict()) if before is not None else None,
                dedupe_key]

    def insert(self, txn: Transaction, rows: list[list[Any]], dialect: str) -> int:
        """Append rows (made by `row`) in the caller's transaction; how many were new (a
        row whose `dedupe_key` is written already is not)."""
        if not rows:
            return 0
        if dialect == "postgres":
            # Held until commit: the next writer draws its sequence numbers after ours are
            # committed, so a tailer that has read number N has seen every number below N.
            txn.execute(f"LOCK TABLE {TABLE} IN EXCLUSIVE MODE")
        # One statement a few rows, which says the numbers it drew: no reads of the head
        # before and after (two round trips of every follower's batch).
        drawn: list[int] = []
        for start in range(0, len(rows), ROWS_PER_INSERT):
            part = rows[start:start + ROWS_PER_INSERT]
            txn.execute(
                f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) VALUES "
                f"{', '.join([ROW_PLACEHOLDERS] * len(part))} "
                "ON CONFLICT (dedupe_key) DO NOTHING RETURNING seq",
                [value for row in part for value in row],
            )
            drawn += [int(row[0]) for row in txn.fetchall()]
        if drawn and dialect == "postgres" and self.channel:
            txn.execute("SELECT pg_notify(%s, %s)", (self.channel, str(max(drawn))))
        self._maybe_prune(txn)
        return len(drawn)

    def _maybe_prune(self, txn: Transaction) -> None:
        now = time.monotonic()
        if now - self._pruned_at < PRUNE_EVERY_S:
            return
        self._pruned_at = now
        self.prune(txn)

    def prune(self, txn: Transaction, now: datetime | None = None) -> None:
        """Delete the rows older than the retention, always as a prefix of the log and
        keeping its last pruned-at row: a position at or after the oldest row left can be
        resumed from (every row after it is still there)."""
        cutoff = ((now or system_clock()) - self.retention).isoformat()
        txn.execute(f"SELECT max(seq) FROM {TABLE} WHERE recorded_at < %s", (cutoff,))
        row = txn.fetchone()
        if row is None or row[0] is None:
            return
        txn.execute(f"DELETE FROM {TABLE} WHERE seq < %s", (int(row[0]),))

    # --- reading --------------------------------------------------------------------------

    @staticmethod
    def bounds(store: ReadStore) -> tuple[int, int]:
        """(oldest retained seq, last seq); (0, 0) for an empty log."""
        with store.transaction() as txn:
            txn.execute(f"SELECT COALESCE(min(seq), 0), COALESCE(max(seq), 0) FROM {TABLE}")
            row = txn.fetchone()
        return (int(row[0]), int(row[1])) if row else (0, 0)

    @staticmethod
    def head(store: ReadStore) -> int:
        """The last position of the log (0 when empty)."""
        return LiveChangeLog.bounds(store)[1]

    @staticmethod
    def resumable(bounds: tuple[int, int], position: int) -> bool:
        """Whether every row after `position` is still in the log."""
        oldest, last = bounds
        if position < 0 or position > last:
            return False
        # Pruning deletes only rows below the oldest one left.
        return last == 0 or position >= oldest - 1

    @staticmethod
    def read(store: ReadStore, after: int, limit: int = 1000,
             until: int | None = None) -> list[ChangeRow]:
        """The rows after position `after` (up to `until`), oldest first."""
        upper = " AND seq <= %s" if until is not None else ""
        params: list[Any] = [after] + ([until] if until is not None else []) + [limit]
        with store.transaction() as txn:
            txn.execute(
                "SELECT seq, layer, item_id, events, at, doc, lon, lat, category, level, "
                f"department, light, previous, recorded_at FROM {TABLE} WHERE seq > %s{upper} "
                "ORDER BY seq LIMIT %s", params)
            rows = txn.fetchall()
        return [_change_row(row) for row in rows]

    @staticmethod
    def count_after(store: ReadStore, after: int) -> int:
        """How many rows there are after `after`."""
        with store.transaction() as txn:
            txn.execute(f"SELECT count(*) FROM {TABLE} WHERE seq > %s", (after,))
            row = txn.fetchone()
        return int(row[0]) if row else 0

    @staticmethod
    def scope_of(store: ReadStore, layer_id: str, item_id: str) -> dict[str, Any] | None:
        """What decides which department users may see one item now (its
        `FilterValues.scope_document`); None when the read models do not hold it."""
        layer = LIVE_LAYERS[layer_id]
        columns = [*([layer.department] if layer.department else []),
                   *(["doc"] if layer.scope_in_doc else [])]
        with store.transaction() as txn:
            rows = _select(txn, layer, [item_id], columns)
        if not rows:
            return None
        row = rows[0]
        return FilterValues(
            department=row.get(layer.department) if layer.department else None,
            scope=scope_document(row_document(row["doc"])) if layer.scope_in_doc else None,
        ).scope_document()

    @staticmethod
    def presence_since(store: ReadStore, since: datetime) -> list[ChangeRow]:
        """The presence rows recorded since `since` (a tailer starting up learns who is
        viewing what)."""
        with store.transaction() as txn:
            txn.execute(
                "SELECT seq, layer, item_id, events, at, doc, lon, lat, category, level, "
                f"department, light, previous, recorded_at FROM {TABLE} "
                "WHERE layer = %s AND recorded_at >= %s ORDER BY seq",
                (PRESENCE, since.isoformat()))
            rows = txn.fetchall()
        return [_change_row(row) for row in rows]


def _change_row(row: Sequence[Any]) -> ChangeRow:
    (seq, layer, item_id, events, at, doc, lon, lat, category, level, department, light,
     previous, recorded_at) = row
    return ChangeRow(
        seq=int(seq), layer=str(layer), item_id=str(item_id), events=json.loads(events),
        at=str(at), doc=row_document(doc) if doc is not None else None,
        geometry=_point(lon, lat),
        values=FilterValues(lon, lat, category, level, department, light),
        previous=FilterValues.from_dict(json.loads(previous)) if previous else None,
        recorded_at=str(recorded_at),
    )


def _by_layer(touched: Iterable[TouchedItem]) -> dict[LiveLayer, list[str]]:
    ids: dict[LiveLayer, list[str]] = {}
    for item in touched:
        ids.setdefault(item.layer, []).append(item.item_id)
    return ids


def _select(txn: Transaction, layer: LiveLayer, ids: Sequence[str],
            columns: Sequence[str]) -> list[dict[str, Any]]:
    names = ["id", *dict.fromkeys(columns)]
    found: list[dict[str, Any]] = []
    unique = list(dict.fromkeys(ids))
    for start in range(0, len(unique), QUERY_CHUNK):
        chunk = unique[start:start + QUERY_CHUNK]
        txn.execute(f"SELECT {', '.join(names)} FROM {layer.table} "
                    f"WHERE id IN ({', '.join(['%s'] * len(chunk))})", chunk)
        found += [dict(zip(names, row, strict=True)) for row in txn.fetchall()]
    return found



LightWriter = Callable[[Sequence[Any]], None]


def light_change_writer(log_: LiveChangeLog, stores: Callable[[], ReadStore],
                        clock: Clock = system_clock) -> LightWriter:
    """A listener of the supervision clock that writes its `LightChanged` changes to the
    change log of the active generation (run by the processes that follow the event stores;
    with two of them, the change's key lets only the first write it)."""

    def write(changes: Sequence[Any]) -> None:
        for change in changes:
            if getattr(change, "event", None) != LIGHT_CHANGED or not change.key:
                continue
            try:
                log_.record_light_change(stores(), change.aggregate_id, change.light,
                                         change.previous_light, change.key,
                                         change.at or clock())
            except Exception:  # the clock keeps running; the next light change is written
                log.exception("could not write the light change of case %s",
                              change.aggregate_id)

    return write


def live_channel(schema: str | None) -> str:
    """The PostgreSQL channel of one deployment's change log (its base schema's name)."""
    return f"cityops_live_{schema or 'public'}".lower()
