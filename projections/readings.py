"""The latest reading of every hazard sensor, in a table all processes share.

Readings are high-rate and never each an event (only threshold crossings are), so this is not a
projection of the event store: it is the latest-reading state the ingest workers and the
command centre write and read, kept in the read models' base store (it survives rebuilds).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from uuid import UUID

from cityops.domain.hazards.application import LatestReading
from cityops.domain.hazards.source import AlarmLevel
from cityops.storage import ReadStore, schema_transaction

DDL = """
CREATE TABLE IF NOT EXISTS sensor_latest_readings (
    source_id TEXT NOT NULL,
    sensor_id TEXT NOT NULL,
    value DOUBLE PRECISION NOT NULL,
    measured_at TEXT NOT NULL,
    level TEXT NOT NULL,
    PRIMARY KEY (source_id, sensor_id)
)
"""


def _utc(moment: datetime) -> str:
    # One text format for every row, so that text order is time order in both databases.
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


class StoredLatestReadings:
    """`LatestReadingsStore` over a read store: a late reading never replaces a newer one."""

    def __init__(self, store: ReadStore) -> None:
        self.store = store
        with schema_transaction(store) as txn:
            txn.execute(DDL)

    def remember(self, source_id: UUID, sensor_id: str, reading: LatestReading) -> None:
        with self.store.transaction() as txn:
            txn.execute(
                "INSERT INTO sensor_latest_readings "
                "(source_id, sensor_id, value, measured_at, level) VALUES (%s, %s, %s, %s, %s) "
                "ON CONFLICT (source_id, sensor_id) DO UPDATE SET value = excluded.value, "
                "measured_at = excluded.measured_at, level = excluded.level "
                "WHERE excluded.measured_at > sensor_latest_readings.measured_at",
                (str(source_id), sensor_id, reading.value, _utc(reading.measured_at),
                 reading.level.value),
            )

    def remember_many(self, readings: Mapping[tuple[UUID, str], LatestReading]) -> None:
        """`remember` for many sensors (one reading each) in one statement and transaction
        (ingest writes a batch's latest readings so)."""
        if not readings:
            return
        rows = ", ".join(["(%s, %s, %s, %s, %s)"] * len(readings))
        params: list[object] = []
        for (source_id, sensor_id), reading in readings.items():
            params += [str(source_id), sensor_id, reading.value, _utc(reading.measured_at),
                       reading.level.value]
        with self.store.transaction() as txn:
            txn.execute(
                "INSERT INTO sensor_latest_readings "
                f"(source_id, sensor_id, value, measured_at, level) VALUES {rows} "
                "ON CONFLICT (source_id, sensor_id) DO UPDATE SET value = excluded.value, "
                "measured_at = excluded.measured_at, level = excluded.level "
                "WHERE excluded.measured_at > sensor_latest_readings.measured_at",
                params,
            )

    def get(self, source_id: UUID, sensor_id: str) -> LatestReading | None:
        with self.store.transaction() as txn:
            txn.execute(
                "SELECT value, measured_at, level FROM sensor_latest_readings "
                "WHERE source_id = %s AND sensor_id = %s", (str(source_id), sensor_id))
            row = txn.fetchone()
        return _reading(row) if row else None

    def of_source(self, source_id: UUID) -> dict[str, LatestReading]:
        with self.store.transaction() as txn:
            txn.execute(
                "SELECT sensor_id, value, measured_at, level FROM sensor_latest_readings "
                "WHERE source_id = %s ORDER BY sensor_id", (str(source_id),))
            rows = txn.fetchall()
        return {str(r[0]): _reading(r[1:]) for r in rows}

    def forget(self, source_id: UUID, sensor_id: str) -> None:
        with self.store.transaction() as txn:
            txn.execute(
                "DELETE FROM sensor_latest_readings WHERE source_id = %s AND sensor_id = %s",
                (str(source_id), sensor_id))


def _reading(row: tuple[object, ...]) -> LatestReading:
    value, measured_at, level = row
    return LatestReading(value=float(value),  # type: ignore[arg-type]
                         measured_at=datetime.fromisoformat(str(measured_at)),
                         level=AlarmLevel(str(level)))
