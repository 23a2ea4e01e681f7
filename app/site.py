"""What a CityOps site keeps that cannot be derived, and a consistent read-only view of it.

A site's durable state is:

- its event stores, one per application (`DURABLE_STORES`), each with its hash chain
  (`cityops.event_chain`) and, in a store whose application is a process recorder (the
  hotline, where the ticket follow-up records its position in the grid-case and incident
  logs), its tracking records (`STORE_TABLES`);
- the tables beside them that no event can give back (`DURABLE_TABLES`): the field photos,
  the latest sensor readings, the resources' movement track, ingest's dead letters, the
  replay ledger and counters, the webhook outbox and its position, the warnings' CAP alerts
  as they went out.

Everything else is derived and rebuilt from the events after a restore: the read-model
generations and their registry, the live change log. The signing key of login tokens is a
secret, not data: it is configured (or generated) per site, so tokens of the old site are
not valid on a restored one; people sign in again with their passwords, which are in the
accounts store.

`open_snapshot` reads all of it as of one moment: on PostgreSQL in one REPEATABLE READ
transaction; embedded, in one read transaction per SQLite file, all held open together and
started in the order that keeps the files coherent (see `SqliteSnapshot`).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol
from uuid import UUID

import psycopg
from psycopg.sql import SQL, Identifier

from cityops.domain.accounts.application import Accounts
from cityops.domain.exercises.application import Exercises
from cityops.domain.gridcases.application import GridCases
from cityops.domain.hazards.application import HazardSources
from cityops.domain.hotline.application import HotlineTickets
from cityops.domain.incidents.application import Incidents
from cityops.domain.resources.application import Resources
from cityops.domain.reviews.application import Reviews
from cityops.domain.warnings.application import Warnings
from cityops.event_chain import (
    SQLITE_CHAIN_TABLE,
    SQLITE_EVENTS_TABLE,
    StoreVerdict,
    postgres_chain_table,
    postgres_verdict,
    sqlite_verdict,
)
from cityops.feeds.cap_publishing import CapAlertLog
from cityops.feeds.service import FEED_STORE_FILE
from cityops.feeds.subscriptions import Subscriptions
from cityops.feeds.webhooks import DeliveryLog
from cityops.ingest.counters import COUNTER_TABLE, CounterTable
from cityops.ingest.deadletters import DEAD_LETTER_TABLE, StoredDeadLetters
from cityops.ingest.replay import LEDGER_TABLE, ReplayLedger
from cityops.ingest.tracks import TRACK_TABLE, ResourceTracks
from cityops.projections.photos import PhotoStore
from cityops.projections.readings import StoredLatestReadings
from cityops.settings import Settings
from cityops.storage import ReadStore

DURABLE_STORES: tuple[str, ...] = (
    GridCases.name, Incidents.name, HazardSources.name, HotlineTickets.name, Resources.name,
    Accounts.name, Subscriptions.name, Warnings.name, Reviews.name, Exercises.name,
)
"""The event stores of a site: the city's four streams and resources, the accounts (users,
departments, API keys), the feeds' subscriptions, the warning desk's warnings, the
after-action reviews and the exercises (scenarios played, injects delivered, evaluators'
ratings)."""

BASE_STORE_FILE = "readmodels.sqlite"
"""Embedded: the base store's file (the generations registry and the durable tables)."""


class Place(StrEnum):
    """Where a durable table lives: the read models' base store or the feeds' store (on
    PostgreSQL both are the site's schema)."""

    BASE = "base"
    FEEDS = "feeds"


@dataclass(frozen=True)
class DurableTable:
    """A table that is not derived from events, with how its owner creates it."""

    name: str
    place: Place
    create: Callable[[ReadStore], object]
    why: str


def _create_tracks(store: ReadStore) -> None:
    ResourceTracks(store).create_table()


def _create_outbox(store: ReadStore) -> None:
    DeliveryLog(store).create_tables()


def _create_cap_alerts(store: ReadStore) -> None:
    CapAlertLog(store, None).create_tables()


DURABLE_TABLES: tuple[DurableTable, ...] = (
    DurableTable("field_photos", Place.BASE, PhotoStore,
                 "evidence photos referred to by events (by sha256)"),
    DurableTable("sensor_latest_readings", Place.BASE, StoredLatestReadings,
                 "each sensor's latest reading (readings are not events)"),
    DurableTable(TRACK_TABLE, Place.BASE, _create_tracks,
                 "every position fix of the mobile resources (replays, reviews)"),
    DurableTable(DEAD_LETTER_TABLE, Place.BASE, StoredDeadLetters,
                 "messages ingest could not apply, with their original bytes"),
    DurableTable(LEDGER_TABLE, Place.BASE, ReplayLedger,
                 "which dead letters were replayed, and how"),
    DurableTable(COUNTER_TABLE, Place.BASE, CounterTable,
                 "ingest's message counters per worker"),
    DurableTable("projection_positions", Place.FEEDS, _create_outbox,
                 "how far the webhook outbox has followed each event store"),
    DurableTable("feed_webhook_deliveries", Place.FEEDS, _create_outbox,
                 "webhook deliveries and their state (none is sent twice)"),
    DurableTable("feed_webhook_attempts", Place.FEEDS, _create_outbox,
                 "each attempt of each webhook delivery"),
    DurableTable("cap_alerts", Place.FEEDS, _create_cap_alerts,
                 "the warnings' CAP alerts exactly as they went out (signed ones too)"),
    DurableTable("cap_alert_refusals", Place.FEEDS, _create_cap_alerts,
                 "warning messages whose CAP document failed the checks (not published)"),
)

DERIVED_TABLES: dict[str, str] = {
    "projection_generations": "the read-model generations registry (a restored site starts "
    "its own, generation 1, rebuilt from the events)",
}
"""Tables of the base store that a backup leaves out on purpose, and why."""

STORE_TABLES: dict[str, str] = {
    "events": "every event, in notification order",
    "chain": "the hash-chain links of the events",
    "tracking": "a process recorder's positions in the logs it follows (application name, "
    "notification id), written with the events they caused",
}
"""What a backup copies of each event store. SQLite names the tables `stored_events`,
`event_chain` and `tracking` in each store's file; PostgreSQL `<store>_events`,
`<store>_event_chain` and `<store>_tracking`."""

DERIVED_STORE_TABLES: dict[str, str] = {
    "snapshots": "aggregate snapshots (none are configured; they would be taken again from "
    "the events)",
}
"""Tables an event store may hold that a backup leaves out on purpose, and why."""

SQLITE_TRACKING_TABLE = "tracking"


def sqlite_store_tables() -> dict[str, str]:
    """The tables of an embedded event store's file, each with the part or reason that
    covers it."""
    return {SQLITE_EVENTS_TABLE: "events", SQLITE_CHAIN_TABLE: "chain",
            SQLITE_TRACKING_TABLE: "tracking", "snapshots": "snapshots"}


def postgres_store_tables(store: str) -> dict[str, str]:
    """The tables of a PostgreSQL event store, each with the part or reason that covers it."""
    return {f"{store}_events": "events", postgres_chain_table(f"{store}_events"): "chain",
            postgres_tracking_table(store): "tracking", f"{store}_snapshots": "snapshots"}


def postgres_tracking_table(store: str) -> str:
    """The tracking table of a PostgreSQL event store (the library's `<app>_tracking`)."""
    return f"{store}_tracking"

EventRow = tuple[int, UUID, int, str, bytes]
"""(notification id, originator id, version, topic, state) of one stored event."""
LinkRow = tuple[UUID, int, bytes]
TrackingRow = tuple[str, int]
"""(application name, notification id) of one tracking record."""
Rows = tuple[list[str], Iterator[tuple[Any, ...]]]


class SiteSnapshot(Protocol):
    """A consistent, read-only view of one site's durable state and read models."""

    backend: str
    location: str

    def stores(self) -> list[str]:
        """The event stores that exist, in `DURABLE_STORES` order."""

    def head(self, store: str) -> int:
        """The highest notification id of a store (0 when empty)."""

    def events(self, store: str, upto: int | None = None) -> Iterator[EventRow]:
        """A store's events in notification order (up to `upto`)."""

    def links(self, store: str) -> Iterator[LinkRow]:
        """A store's chain links, by stream and version."""

    def tracking(self, store: str) -> Iterator[TrackingRow] | None:
        """A store's tracking records, by application and position (None when the store
        has no tracking table: its application is not a process recorder)."""

    def verdict(self, store: str) -> StoreVerdict:
        """The hash-chain verification of one store."""

    def table(self, table: DurableTable) -> Rows | None:
        """A durable table's columns and rows (None when the site has no such table)."""

    def read_model(self, table: str) -> Rows | None:
        """A read-model table of the active generation (without generated columns)."""

    def read_model_positions(self, projection: str) -> dict[str, int]:
        """The active generation's tracked position per application."""

    def close(self) -> None: ...


def open_snapshot(settings: Settings) -> SiteSnapshot:
    """A consistent read-only view of the site `settings` point at."""
    if settings.database_url is None:
        return SqliteSnapshot(settings.data_dir)
    return PostgresSnapshot(settings.database_url, settings.database_schema)


class SqliteSnapshot:
    """The embedded site: one read transaction per file, all held open together.

    Each file is read as of the moment its transaction started. They start in the order that
    keeps the whole coherent: the webhook outbox first (its position is then never ahead of
    the events backed up, so a restored site delivers again rather than skips), then the read
    models (their positions never ahead of the events either: they say whether the read
    models were complete), then the event stores, and the base store last (a photo is stored
    before the event that refers to it, so every referenced photo is there). Commands that span
    two stores are not atomic across them in the running system either; a restored site sees
    them as a crash between the two steps would leave them."""

    backend = "sqlite"

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.location = f"data folder {data_dir}"
        self._connections: dict[str, sqlite3.Connection] = {}
        generation = self._active_generation()
        order: list[tuple[str, Path]] = [("feeds", data_dir / FEED_STORE_FILE)]
        if generation is not None:
            order.append(("readmodels", data_dir / f"readmodels-g{generation}.sqlite"))
        # A store that tracks its position in others' logs is read before them: a tracked
        # position is then never ahead of the archived head of the log it follows (a
        # restored follower follows again rather than skips).
        stores = sorted(DURABLE_STORES,
                        key=lambda name: not _sqlite_tracks(data_dir / f"{name}.sqlite"))
        order += [(f"store:{name}", data_dir / f"{name}.sqlite") for name in stores]
        order.append(("base", data_dir / BASE_STORE_FILE))
        try:
            for key, path in order:
                if path.exists():
                    connection = sqlite3.connect(path, timeout=30, isolation_level=None)
                    connection.execute("BEGIN")
                    # The snapshot is taken at the first read of the transaction.
                    connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
                    self._connections[key] = connection
        except BaseException:
            self.close()
            raise

    def _active_generation(self) -> int | None:
        path = self.data_dir / BASE_STORE_FILE
        if not path.exists():
            return None
        connection = sqlite3.connect(path, timeout=30)
        try:
            row = connection.execute("SELECT generation FROM projection_generations "
                                     "WHERE state = 'active'").fetchone()
        except sqlite3.OperationalError:
            return None
        finally:
            connection.close()
        return int(row[0]) if row else None

    def _has_table(self, key: str, table: str) -> bool:
        connection = self._connections.get(key)
        if connection is None:
            return False
        return connection.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' "
                                  "AND name = ?", (table,)).fetchone() is not None

    def stores(self) -> list[str]:
        return [name for name in DURABLE_STORES
                if self._has_table(f"store:{name}", SQLITE_EVENTS_TABLE)]

    def head(self, store: str) -> int:
        row = self._connections[f"store:{store}"].execute(
            f"SELECT MAX(rowid) FROM {SQLITE_EVENTS_TABLE}").fetchone()
        return int(row[0] or 0) if row else 0

    def events(self, store: str, upto: int | None = None) -> Iterator[EventRow]:
        cursor = self._connections[f"store:{store}"].execute(
            f"SELECT rowid, originator_id, originator_version, topic, state FROM "
            f"{SQLITE_EVENTS_TABLE} WHERE rowid <= ? ORDER BY rowid",
            (upto if upto is not None else 2**62,))
        for nid, oid, version, topic, state in cursor:
            yield int(nid), UUID(oid), int(version), str(topic), bytes(state)

    def links(self, store: str) -> Iterator[LinkRow]:
        if not self._has_table(f"store:{store}", SQLITE_CHAIN_TABLE):
            return
        cursor = self._connections[f"store:{store}"].execute(
            f"SELECT originator_id, originator_version, link FROM {SQLITE_CHAIN_TABLE} "
            "ORDER BY originator_id, originator_version")
        for oid, version, link in cursor:
            yield UUID(oid), int(version), bytes(link)

    def tracking(self, store: str) -> Iterator[TrackingRow] | None:
        if not self._has_table(f"store:{store}", SQLITE_TRACKING_TABLE):
            return None
        cursor = self._connections[f"store:{store}"].execute(
            f"SELECT application_name, notification_id FROM {SQLITE_TRACKING_TABLE} "
            "ORDER BY application_name, notification_id")
        return ((str(name), int(nid)) for name, nid in cursor)

    def verdict(self, store: str) -> StoreVerdict:
        return sqlite_verdict(store, self._connections[f"store:{store}"])

    def _rows(self, key: str, table: str) -> Rows | None:
        if not self._has_table(key, table):
            return None
        connection = self._connections[key]
        columns = [str(r[1]) for r in connection.execute(f"PRAGMA table_info({table})")]
        cursor = connection.execute(f"SELECT {', '.join(columns)} FROM {table}")
        return columns, (tuple(row) for row in cursor)

    def table(self, table: DurableTable) -> Rows | None:
        return self._rows("base" if table.place is Place.BASE else "feeds", table.name)

    def read_model(self, table: str) -> Rows | None:
        return self._rows("readmodels", table)

    def read_model_positions(self, projection: str) -> dict[str, int]:
        found = self._rows("readmodels", "projection_positions")
        if found is None:
            return {}
        columns, rows = found
        index = {c: i for i, c in enumerate(columns)}
        return {str(r[index["application"]]): int(r[index["position"]]) for r in rows
                if r[index["projection"]] == projection}

    def close(self) -> None:
        for connection in self._connections.values():
            with suppress(sqlite3.Error):
                connection.execute("ROLLBACK")
            connection.close()
        self._connections.clear()


class PostgresSnapshot:
    """The PostgreSQL site: everything read in one REPEATABLE READ, READ ONLY transaction,
    so every table is seen as of the same instant."""

    backend = "postgres"

    def __init__(self, url: str, schema: str | None) -> None:
        self.schema = schema or "public"
        self.location = f"PostgreSQL schema {self.schema}"
        self._connection = psycopg.connect(url, autocommit=False)
        self._cursors = 0
        try:
            self._connection.execute(
                "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            self._generation_schema: str | None = None
            if self._exists(self.schema, "projection_generations"):
                row = self._connection.execute(SQL(
                    "SELECT generation FROM {}.projection_generations WHERE state = 'active'"
                ).format(Identifier(self.schema))).fetchone()
                if row is not None:
                    self._generation_schema = f"{schema or 'readmodels'}_g{int(row[0])}"
        except BaseException:
            self._connection.close()
            raise

    def _exists(self, schema: str, table: str) -> bool:
        row = self._connection.execute("SELECT to_regclass(%s)",
                                       (f'"{schema}"."{table}"',)).fetchone()
        return row is not None and row[0] is not None

    def _stream(self, query: Any, params: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
        self._cursors += 1
        cursor = self._connection.cursor(name=f"site_snapshot_{self._cursors}")
        cursor.itersize = 2000
        cursor.execute(query, params)
        try:
            yield from cursor
        finally:
            cursor.close()

    def stores(self) -> list[str]:
        return [name for name in DURABLE_STORES if self._exists(self.schema, f"{name}_events")]

    def head(self, store: str) -> int:
        row = self._connection.execute(SQL("SELECT MAX(notification_id) FROM {}.{}").format(
            Identifier(self.schema), Identifier(f"{store}_events"))).fetchone()
        return int(row[0] or 0) if row else 0

    def events(self, store: str, upto: int | None = None) -> Iterator[EventRow]:
        query = SQL("SELECT notification_id, originator_id, originator_version, topic, state "
                    "FROM {}.{} WHERE notification_id <= %s ORDER BY notification_id").format(
                        Identifier(self.schema), Identifier(f"{store}_events"))
        for nid, oid, version, topic, state in self._stream(
                query, (upto if upto is not None else 2**62,)):
            yield int(nid), oid if isinstance(oid, UUID) else UUID(str(oid)), int(version), \
                str(topic), bytes(state)

    def links(self, store: str) -> Iterator[LinkRow]:
        chain = postgres_chain_table(f"{store}_events")
        if not self._exists(self.schema, chain):
            return
        query = SQL("SELECT originator_id, originator_version, link FROM {}.{} "
                    "ORDER BY originator_id, originator_version").format(
                        Identifier(self.schema), Identifier(chain))
        for oid, version, link in self._stream(query):
            yield oid if isinstance(oid, UUID) else UUID(str(oid)), int(version), bytes(link)

    def tracking(self, store: str) -> Iterator[TrackingRow] | None:
        table = postgres_tracking_table(store)
        if not self._exists(self.schema, table):
            return None
        query = SQL("SELECT application_name, notification_id FROM {}.{} "
                    "ORDER BY application_name, notification_id").format(
                        Identifier(self.schema), Identifier(table))
        return ((str(name), int(nid)) for name, nid in self._stream(query))

    def verdict(self, store: str) -> StoreVerdict:
        return postgres_verdict(store, self._connection, self.schema, f"{store}_events")

    def _rows(self, schema: str | None, table: str) -> Rows | None:
        if schema is None or not self._exists(schema, table):
            return None
        columns = [str(r[0]) for r in self._connection.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = %s "
            "AND table_name = %s AND is_generated = 'NEVER' ORDER BY ordinal_position",
            (schema, table)).fetchall()]
        query = SQL("SELECT {} FROM {}.{}").format(
            SQL(", ").join(Identifier(c) for c in columns), Identifier(schema),
            Identifier(table))
        return columns, self._stream(query)

    def table(self, table: DurableTable) -> Rows | None:
        return self._rows(self.schema, table.name)

    def read_model(self, table: str) -> Rows | None:
        return self._rows(self._generation_schema, table)

    def read_model_positions(self, projection: str) -> dict[str, int]:
        if self._generation_schema is None or not self._exists(self._generation_schema,
                                                               "projection_positions"):
            return {}
        rows = self._connection.execute(SQL(
            "SELECT application, position FROM {}.projection_positions WHERE projection = %s"
        ).format(Identifier(self._generation_schema)), (projection,)).fetchall()
        return {str(a): int(p) for a, p in rows}

    def close(self) -> None:
        with suppress(psycopg.Error):
            self._connection.rollback()
        self._connection.close()


def _sqlite_tracks(path: Path) -> bool:
    """Whether an embedded event store's file has a tracking table."""
    if not path.exists():
        return False
    connection = sqlite3.connect(path, timeout=30)
    try:
        return connection.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND "
                                  "name = ?", (SQLITE_TRACKING_TABLE,)).fetchone() is not None
    finally:
        connection.close()


def canonical_value(value: Any) -> Any:
    """A column value as the same JSON on both back ends (JSON documents parsed, booleans
    as integers, bytes as base64)."""
    import base64

    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"b64": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, dict | list):
        return json.loads(json.dumps(value, sort_keys=True))
    return value
