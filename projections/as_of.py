"""Read models as they stood at a past instant: a read store whose queries read each
read-model table as the row versions in force then (projections/history.py).

Every query the command centre asks of the read models (lists, single rows, spatial
questions, statistics, exports) names its tables; `PastStore` hands the same SQL to the
database with each read-model table replaced by the versions in force at the instant, under
the same name. So the one query code answers for now and for any past instant, and a past
answer costs an interval query on indexed columns, never a replay of events.

Resources also moved between recorded positions: their rows at T take the latest fix of the
movement track (ingest/tracks.py) measured at or before T when it is newer than the position
their events recorded.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cityops.projections.history import HistoryTable
from cityops.projections.tables import utc_text
from cityops.storage import ReadStore, Row

RESOURCE_TABLE = "rm_resources"
_ALIAS_STOP = {"WHERE", "GROUP", "ORDER", "LIMIT", "OFFSET", "JOIN", "LEFT", "RIGHT", "INNER",
               "CROSS", "ON", "UNION", "HAVING", "WINDOW", "AS"}
_WRITE = re.compile(r"^\s*(INSERT|UPDATE|DELETE|CREATE|DROP|ALTER)\b", re.IGNORECASE)


APPLICATIONS = ("grid_cases", "incidents", "hazards", "hotline", "resources", "warnings")
"""The system's applications (whose first event is the first instant there is to show)."""


class InstantRefused(ValueError):
    """An instant the city cannot be shown at (the message says why)."""


class PastIsReadOnly(Exception):
    """A write attempted through a store that shows the past."""


@dataclass(frozen=True)
class TrackFix:
    """A resource's latest track fix at the instant."""

    resource_id: str
    measured_at: str
    lon: float
    lat: float


class PastStore:
    """A read store showing the read models as they stood at `instant`."""

    def __init__(self, store: ReadStore, instant: datetime,
                 histories: Sequence[HistoryTable],
                 track_fixes: Callable[[], Mapping[str, TrackFix]] | None = None) -> None:
        self.store = store
        self.dialect = store.dialect
        self.instant = instant
        self.text = utc_text(instant) or ""
        self.histories = {h.current: h for h in histories}
        self._track_fixes = track_fixes
        names = "|".join(sorted((re.escape(n) for n in self.histories), key=len, reverse=True))
        self._pattern = re.compile(
            rf"\b(FROM|JOIN)\s+({names})\b(?!\s*\.)(\s+(?:AS\s+)?([A-Za-z_]\w*))?",
            re.IGNORECASE)
        self._sources: dict[str, str] = {}

    def _source(self, table: str) -> str:
        """The SQL of `table`'s rows at the instant (made once per store)."""
        found = self._sources.get(table)
        if found is None:
            history = self.histories[table]
            found = history.in_force(self.text, self.dialect)
            if table == RESOURCE_TABLE and self._track_fixes is not None:
                fixes = self._track_fixes()
                if fixes:
                    found = self._resources_with_tracks(history, fixes)
            self._sources[table] = found
        return found

    def _resources_with_tracks(self, history: HistoryTable,
                               track_fixes: Mapping[str, TrackFix]) -> str:
        """Resource rows at T with the position of the newer of their recorded position and
        their latest track fix."""
        versions = history.in_force(self.text, self.dialect, ("position_at",))
        fixes = " UNION ALL ".join(
            f"SELECT '{_literal(f.resource_id)}' AS resource_id, "
            f"'{_literal(f.measured_at)}' AS measured_at, "
            f"CAST({float(f.lon)!r} AS DOUBLE PRECISION) AS lon, "
            f"CAST({float(f.lat)!r} AS DOUBLE PRECISION) AS lat"
            for f in track_fixes.values())
        newer = "(p.measured_at IS NOT NULL AND (h.position_at IS NULL " \
                "OR p.measured_at > h.position_at))"
        if self.dialect == "postgres":
            fix_doc = ("jsonb_build_object('point', jsonb_build_object('type', 'Point', "
                       "'coordinates', jsonb_build_array(p.lon, p.lat)), 'at', p.measured_at)")
            doc = f"jsonb_set(h.doc, '{{position}}', {fix_doc})"
        else:
            fix_doc = ("json_object('point', json_object('type', 'Point', 'coordinates', "
                       "json_array(p.lon, p.lat)), 'at', p.measured_at)")
            doc = f"json_set(h.doc, '$.position', json({fix_doc}))"
        columns = []
        for name in history.readable(self.dialect):
            if name in ("lon", "lat"):
                columns.append(f"CASE WHEN {newer} THEN p.{name} ELSE h.{name} END AS {name}")
            elif name == "doc":
                columns.append(f"CASE WHEN {newer} THEN {doc} ELSE h.doc END AS doc")
            elif name == "geom" and self.dialect == "postgres":
                columns.append(f"CASE WHEN {newer} THEN ST_SetSRID(ST_MakePoint(p.lon, p.lat), "
                               "4326) ELSE h.geom END AS geom")
            else:
                columns.append(f"h.{name}")
        return (f"SELECT {', '.join(columns)} FROM ({versions}) h "
                f"LEFT JOIN ({fixes}) p ON p.resource_id = h.id")

    def rewrite(self, sql: str) -> str:
        """`sql` with each read-model table read as it stood at the instant."""
        if _WRITE.match(sql):
            raise PastIsReadOnly("the read models of a past instant are read only")

        def replace(match: re.Match[str]) -> str:
            keyword, table, alias_part, alias = match.groups()
            source = self._source(table.lower())
            if alias is not None and alias.upper() not in _ALIAS_STOP:
                return f"{keyword} ({source}) {alias}"
            return f"{keyword} ({source}) AS {table}{alias_part or ''}"

        return self._pattern.sub(replace, sql)

    @contextmanager
    def transaction(self) -> Iterator[PastTransaction]:
        with self.store.transaction() as txn:
            yield PastTransaction(txn, self)

    @contextmanager
    def reading(self) -> Iterator[PastTransaction]:
        with self.store.reading() as txn:
            yield PastTransaction(txn, self)

    def close(self) -> None:
        """The live store stays open: it is not this view's to close."""


class PastTransaction:
    """A transaction of the live store whose statements read the past."""

    def __init__(self, txn: Any, store: PastStore) -> None:
        self._txn = txn
        self._store = store
        self.dialect: str = txn.dialect

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._txn.execute(self._store.rewrite(sql), params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._txn.executemany(self._store.rewrite(sql), rows)

    def fetchall(self) -> list[Row]:
        rows: list[Row] = self._txn.fetchall()
        return rows

    def fetchone(self) -> Row | None:
        row: Row | None = self._txn.fetchone()
        return row


def _literal(text: str) -> str:
    if "'" in text or "\\" in text:
        raise ValueError(f"not a plain value: {text!r}")
    return text


def latest_track_fixes(base: ReadStore, resource_ids: Sequence[str],
                       instant: datetime) -> dict[str, TrackFix]:
    """Each resource's latest track fix measured at or before `instant`: one look along
    the track's key (resource, measured time) per resource, however long the track."""
    from cityops.ingest.tracks import TRACK_TABLE, instant_text

    at = instant_text(instant)
    found: dict[str, TrackFix] = {}
    with base.transaction() as txn:
        txn.execute("SELECT 1 FROM information_schema.tables WHERE table_name = %s"
                    if base.dialect == "postgres"
                    else "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = %s",
                    (TRACK_TABLE,))
        if txn.fetchone() is None:
            return found  # a store no tracker ever wrote to
        for resource_id in resource_ids:
            txn.execute(f"SELECT measured_at, lon, lat FROM {TRACK_TABLE} "
                        "WHERE resource_id = %s AND measured_at <= %s "
                        "ORDER BY measured_at DESC LIMIT 1", (resource_id, at))
            row = txn.fetchone()
            if row is not None:
                found[resource_id] = TrackFix(resource_id, row[0], float(row[1]),
                                              float(row[2]))
    return found


def parse_past_instant(text: str) -> datetime:
    """An ISO 8601 instant with its UTC offset (`InstantRefused` when malformed or without
    one: a local time is ambiguous)."""
    try:
        instant = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InstantRefused(f"{text!r} is not an ISO 8601 instant "
                             "(e.g. 2026-03-14T09:26:53+08:00)") from None
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise InstantRefused(f"{text!r} has no time zone: add its UTC offset (+08:00, Z)")
    return instant


_first_lock = threading.Lock()


def first_event_at(system: Any) -> datetime | None:
    """When the city's first event was recorded (business time), or None before any; known
    once, it never changes (kept on the system)."""
    found: datetime | None = getattr(system, "_first_event_at", None)
    if found is not None:
        return found
    stamps = []
    for name in APPLICATIONS:
        app = getattr(system, name)
        notifications = app.recorder.select_notifications(start=1, limit=1)
        if notifications:
            stamps.append(app.mapper.to_domain_event(notifications[0]).timestamp)
    if not stamps:
        return None
    found = min(stamps)
    with _first_lock, contextlib.suppress(AttributeError):
        system._first_event_at = found
    return found


def check_past_instant(system: Any, instant: datetime) -> datetime:
    """`instant` if the city can be shown at it: not in the future (the system's clock),
    not before its first event."""
    now = system.clock()
    if instant > now:
        raise InstantRefused(f"{instant.isoformat()} is in the future (the city's time is "
                             f"{now.isoformat()})")
    first = first_event_at(system)
    if first is None:
        raise InstantRefused("nothing has been recorded yet: there is no past to show")
    if instant < first:
        raise InstantRefused(f"{instant.isoformat()} is before the first event "
                             f"({first.isoformat()})")
    return instant


def histories_of(system: Any) -> list[HistoryTable]:
    """The history tables of the system's read models."""
    return [t for group in system.generations.tables.values() for t in group
            if isinstance(t, HistoryTable)]


def past_store(system: Any, instant: datetime) -> PastStore:
    """The read models of `system` as they stood at `instant` (resources at the positions
    of their tracks)."""
    live = system.read_models.store
    base = system.generations.registry.store

    def fixes() -> dict[str, TrackFix]:
        with live.transaction() as txn:
            txn.execute(f"SELECT id FROM {RESOURCE_TABLE}")
            ids = [r[0] for r in txn.fetchall()]
        return latest_track_fixes(base, ids, instant)

    return PastStore(live, instant, histories_of(system), fixes)
