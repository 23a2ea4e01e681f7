"""The movement track of mobile resources: every position fix a tracker sent, kept in the
read store (SQLite or PostgreSQL) so that drills and after-action reviews can replay how the
vehicles moved, without one aggregate event per GPS fix.

Append-only and keyed by (resource, measured time): a fix sent again, by a redelivery or by
the tracker itself, finds its row and changes nothing.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from cityops.domain.geometry import GeoPoint
from cityops.storage import ReadStore, schema_transaction

TRACK_TABLE = "resource_track"
COLUMNS = ("resource_id", "measured_at", "call_sign", "lon", "lat", "speed_mps", "heading_deg",
           "message_id")


def instant_text(moment: datetime) -> str:
    """A time as fixed-width UTC text: one spelling per instant (the table's key), and text
    order is time order on both databases."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _json_value(value: Any) -> Any:
    """A column value as JSON that PostgreSQL reads back as it was: a float that JSON cannot
    spell (a tracker's NaN speed) as the text float8 reads ('NaN', 'Infinity')."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"
    return value


@dataclass(frozen=True)
class TrackPoint:
    """One position fix of one resource."""

    resource_id: UUID
    call_sign: str
    measured_at: datetime
    position: GeoPoint
    speed_mps: float | None = None
    heading_deg: float | None = None
    message_id: str | None = None


class ResourceTracks:
    """The track table: record fixes, and read a resource's movement over a period."""

    def __init__(self, store: ReadStore) -> None:
        self.store = store

    def create_table(self) -> None:
        with schema_transaction(self.store) as txn:
            txn.execute(
                f"CREATE TABLE IF NOT EXISTS {TRACK_TABLE} ("
                "resource_id TEXT NOT NULL, measured_at TEXT NOT NULL, "
                "call_sign TEXT NOT NULL, lon DOUBLE PRECISION NOT NULL, "
                "lat DOUBLE PRECISION NOT NULL, speed_mps DOUBLE PRECISION, "
                "heading_deg DOUBLE PRECISION, message_id TEXT, "
                "PRIMARY KEY (resource_id, measured_at))"
            )
            txn.execute(f"CREATE INDEX IF NOT EXISTS {TRACK_TABLE}_time_idx "
                        f"ON {TRACK_TABLE} (measured_at)")

    def record(self, point: TrackPoint) -> bool:
        """Keep a fix; False when the track already had a fix of that resource at that time."""
        return bool(self.record_many([point]))

    def record_many(self, points: Sequence[TrackPoint]) -> set[tuple[UUID, datetime]]:
        """Keep many fixes in one statement and one transaction; returns the (resource,
        measured time) of those that were new."""
        if not points:
            return set()
        rows = [(str(point.resource_id), instant_text(point.measured_at), point.call_sign,
                 point.position.lon, point.position.lat, point.speed_mps, point.heading_deg,
                 point.message_id) for point in points]
        keys = {(row[0], row[1]): self.key_of(point) for row, point in zip(rows, points,
                                                                           strict=True)}
        columns = ", ".join(COLUMNS)
        with self.store.transaction() as txn:
            if self.store.dialect == "postgres":
                # One statement of the same text for any number of fixes, the rows as one
                # JSON parameter: a VALUES list of 500 rows was parsed anew by the driver
                # each time, and arrays are dumped element by element, both costing more
                # than the insert itself.
                txn.execute(
                    f"INSERT INTO {TRACK_TABLE} ({columns}) SELECT {columns} FROM "
                    "json_to_recordset(%s::json) AS fix(resource_id text, measured_at text, "
                    "call_sign text, lon float8, lat float8, speed_mps float8, "
                    "heading_deg float8, message_id text) "
                    "ON CONFLICT (resource_id, measured_at) DO NOTHING "
                    "RETURNING resource_id, measured_at",
                    [json.dumps([dict(zip(COLUMNS, map(_json_value, row), strict=True))
                                 for row in rows])],
                )
            else:
                values = ", ".join(["(%s, %s, %s, %s, %s, %s, %s, %s)"] * len(rows))
                txn.execute(
                    f"INSERT INTO {TRACK_TABLE} ({columns}) VALUES {values} "
                    "ON CONFLICT (resource_id, measured_at) DO NOTHING "
                    "RETURNING resource_id, measured_at",
                    [value for row in rows for value in row],
                )
            written = txn.fetchall()
        return {keys[(str(r[0]), str(r[1]))] for r in written}

    @staticmethod
    def key_of(point: TrackPoint) -> tuple[UUID, datetime]:
        """A fix's key in the track, as `record_many` returns it."""
        return point.resource_id, datetime.fromisoformat(instant_text(point.measured_at))

    def movement(self, resource_id: UUID | None = None, *, since: datetime | None = None,
                 until: datetime | None = None) -> list[TrackPoint]:
        """Fixes in time order (of one resource, or all), from `since` up to `until`."""
        conditions: list[str] = []
        params: list[Any] = []
        if resource_id is not None:
            conditions.append("resource_id = %s")
            params.append(str(resource_id))
        if since is not None:
            conditions.append("measured_at >= %s")
            params.append(instant_text(since))
        if until is not None:
            conditions.append("measured_at <= %s")
            params.append(instant_text(until))
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        with self.store.transaction() as txn:
            txn.execute(
                "SELECT resource_id, call_sign, measured_at, lon, lat, speed_mps, heading_deg, "
                f"message_id FROM {TRACK_TABLE}{where} ORDER BY measured_at, resource_id",
                params,
            )
            rows: Sequence[tuple[Any, ...]] = txn.fetchall()
        return [
            TrackPoint(resource_id=UUID(r[0]), call_sign=r[1],
                       measured_at=datetime.fromisoformat(r[2]),
                       position=GeoPoint(lon=float(r[3]), lat=float(r[4])),
                       speed_mps=r[5], heading_deg=r[6], message_id=r[7])
            for r in rows
        ]
