"""Tamper evidence for the event stores: a hash chain per stream, written with the events.

Every stored event gets a *link*: the SHA-256 of the previous link of its stream (its
aggregate) and of the event's stored record (originator id, version, topic, state bytes).
The links are kept in a table beside the events (`event_chain` in each SQLite file,
`<app>_event_chain` on PostgreSQL) and written by the event store's own recorder in the
same transaction as the events, so no event is ever stored without its link, whichever
process or interface saved it.

`verify_store` recomputes every stream's chain from the stored events and reports the first
broken link of each stream: an event whose record no longer matches its link (edited), a
link without its event or a gap in the versions (deleted), an event without a link (inserted
behind CityOps' back). CityOps itself never updates or deletes a stored event; the
recorders only insert.

What a chain cannot show on its own: someone with write access to the database who deletes
the last events of a stream together with their links, or recomputes every link after an
edit (the chain has no secret). Comparing with an archive kept elsewhere (`cityops backup
verify`) shows that: the archived events and links must still be there, unchanged.

A store recorded before the chain existed is chained once, when the chain table is created
(under the events table's lock, so nothing is recorded meanwhile); from then on an event
without a link is an insertion.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import groupby
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresProcessRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor, SQLiteProcessRecorder
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier

GENESIS = bytes(32)
"""The link before the first event of every stream."""

SQLITE_CHAIN_TABLE = "event_chain"
SQLITE_EVENTS_TABLE = "stored_events"


def postgres_chain_table(events_table: str) -> str:
    """The chain table beside a PostgreSQL events table (`gridcases_events` ->
    `gridcases_event_chain`)."""
    return events_table.removesuffix("_events") + "_event_chain"


def record_digest(originator_id: UUID | str, version: int, topic: str, state: bytes) -> bytes:
    """The digest of one stored event's record, the same on every back end."""
    canonical = str(originator_id if isinstance(originator_id, UUID) else UUID(originator_id))
    digest = hashlib.sha256(b"cityops-event\x00")
    digest.update(f"{canonical}\x00{int(version)}\x00{topic}\x00".encode())
    digest.update(bytes(state))
    return digest.digest()


def next_link(previous: bytes, record: bytes) -> bytes:
    """The link of an event: the previous link of its stream and its record's digest."""
    return hashlib.sha256(bytes(previous) + record).digest()


# --- recorders: the link is written in the events' own transaction ---------------------


class ChainedSQLiteRecorder(SQLiteApplicationRecorder):
    """The SQLite application recorder that writes each event's link with it."""

    def _create_table(self, c: SQLiteCursor) -> None:
        c.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                  (SQLITE_CHAIN_TABLE,))
        existed = c.fetchone() is not None
        super()._create_table(c)
        c.execute(
            f"CREATE TABLE IF NOT EXISTS {SQLITE_CHAIN_TABLE} ("
            "originator_id TEXT NOT NULL, originator_version INTEGER NOT NULL, "
            "link BLOB NOT NULL, PRIMARY KEY (originator_id, originator_version)) "
            "WITHOUT ROWID")
        if not existed:
            # Events recorded before the chain existed are chained once, now.
            c.execute(f"SELECT originator_id, originator_version, topic, state "
                      f"FROM {self.events_table_name} "
                      "ORDER BY originator_id, originator_version")
            rows = [(r[0], r[1], r[2], r[3]) for r in c.fetchall()]
            c.executemany(
                f"INSERT INTO {SQLITE_CHAIN_TABLE} VALUES (?, ?, ?)",
                [(oid, version, link) for oid, version, link in _chain_rows(rows)])

    def _insert_events(self, c: SQLiteCursor, stored_events: Sequence[StoredEvent],
                       **kwargs: Any) -> Sequence[int] | None:
        notification_ids = super()._insert_events(c, stored_events, **kwargs)
        latest: dict[str, bytes] = {}
        rows = []
        for event in stored_events:
            oid = _hex(event.originator_id)
            previous = latest.get(oid)
            if previous is None:
                previous = GENESIS
                if event.originator_version > 1:
                    c.execute(f"SELECT link FROM {SQLITE_CHAIN_TABLE} "
                              "WHERE originator_id = ? AND originator_version = ?",
                              (oid, event.originator_version - 1))
                    row = c.fetchone()
                    if row is not None:
                        previous = bytes(row[0])
            link = next_link(previous, record_digest(event.originator_id,
                                                     event.originator_version,
                                                     event.topic, event.state))
            latest[oid] = link
            rows.append((oid, event.originator_version, link))
        c.executemany(f"INSERT INTO {SQLITE_CHAIN_TABLE} VALUES (?, ?, ?)", rows)
        return notification_ids


    def latest_versions(self, aggregate_ids: Sequence[UUID]) -> dict[UUID, int]:
        """The latest stored version of each of these aggregates, in one query (a batch's
        commands ask it of the aggregates they will load: `CityApplication.bring_up_to_date`)."""
        if not aggregate_ids:
            return {}
        marks = ", ".join("?" * len(aggregate_ids))
        with self.datastore.transaction(commit=False) as c:
            c.execute(f"SELECT originator_id, max(originator_version) "
                      f"FROM {self.events_table_name} WHERE originator_id IN ({marks}) "
                      "GROUP BY originator_id", [_hex(i) for i in aggregate_ids])
            return {UUID(str(r[0])): int(r[1]) for r in c.fetchall()}


class ChainedPostgresRecorder(PostgresApplicationRecorder):
    """The PostgreSQL application recorder that writes each event's link with it.

    The links are inserted in the events' transaction just before them (the library's
    hook runs in its pipeline); each link's previous one is read by the statement itself,
    so events of one aggregate saved together chain one after the other."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.chain_table_name = postgres_chain_table(self.events_table_name)
        schema, chain = Identifier(self.datastore.schema), Identifier(self.chain_table_name)
        self._insert_link_statement = SQL(
            "INSERT INTO {schema}.{chain} (originator_id, originator_version, link) "
            "VALUES (%s, %s, sha256(COALESCE((SELECT link FROM {schema}.{chain} "
            "WHERE originator_id = %s AND originator_version = %s), %s) || %s)) "
            "ON CONFLICT DO NOTHING").format(schema=schema, chain=chain)
        self._latest_versions_statement = SQL(
            "SELECT originator_id, max(originator_version) AS version FROM {schema}.{events} "
            "WHERE originator_id = ANY(%s) GROUP BY originator_id").format(
                schema=schema, events=Identifier(self.events_table_name))

    def latest_versions(self, aggregate_ids: Sequence[UUID]) -> dict[UUID, int]:
        """The latest stored version of each of these aggregates, in one query."""
        if not aggregate_ids:
            return {}
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(self._latest_versions_statement, (list(aggregate_ids),), prepare=True)
            return {UUID(str(r["originator_id"])): int(r["version"]) for r in curs.fetchall()}

    def create_table(self) -> None:
        super().create_table()
        schema = Identifier(self.datastore.schema)
        events = Identifier(self.events_table_name)
        chain = Identifier(self.chain_table_name)
        with self.datastore.transaction(commit=True) as curs:
            # Nothing is recorded while the chain is created and the history chained.
            curs.execute(SQL("LOCK TABLE {}.{} IN EXCLUSIVE MODE").format(schema, events))
            curs.execute("SELECT to_regclass(%s) AS found",
                         (f'"{self.datastore.schema}"."{self.chain_table_name}"',))
            found = curs.fetchone()
            existed = found is not None and found["found"] is not None
            curs.execute(SQL(
                "CREATE TABLE IF NOT EXISTS {}.{} (originator_id {} NOT NULL, "
                "originator_version bigint NOT NULL, link bytea NOT NULL, "
                "PRIMARY KEY (originator_id, originator_version))").format(
                    schema, chain, Identifier(self.datastore.originator_id_type)))
            if not existed:
                curs.execute(SQL("SELECT originator_id, originator_version, topic, state "
                                 "FROM {}.{} ORDER BY originator_id, originator_version"
                                 ).format(schema, events))
                rows = [(r["originator_id"], r["originator_version"], r["topic"],
                         bytes(r["state"])) for r in curs.fetchall()]
                links = list(_chain_rows(rows))
                if links:
                    curs.executemany(SQL("INSERT INTO {}.{} VALUES (%s, %s, %s)").format(
                        schema, chain), links)

    def _insert_events(self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent],
                       **kwargs: Any) -> None:
        super()._insert_events(curs, stored_events, **kwargs)
        if stored_events:
            curs.executemany(self._insert_link_statement, [
                (e.originator_id, e.originator_version, e.originator_id,
                 e.originator_version - 1, GENESIS,
                 record_digest(e.originator_id, e.originator_version, e.topic, e.state))
                for e in stored_events])


class ChainedSQLiteProcessRecorder(ChainedSQLiteRecorder, SQLiteProcessRecorder):
    """The SQLite process recorder (events with a tracking record, the hotline's) that
    writes each event's link with it."""


class ChainedPostgresProcessRecorder(ChainedPostgresRecorder, PostgresProcessRecorder):
    """The PostgreSQL process recorder (events with a tracking record, the hotline's) that
    writes each event's link with it."""


def _hex(originator_id: UUID | str) -> str:
    return originator_id.hex if isinstance(originator_id, UUID) else UUID(originator_id).hex


def _chain_rows(rows: Iterable[tuple[Any, int, str, bytes]]
                ) -> Iterator[tuple[Any, int, bytes]]:
    """Links for events ordered by stream and version (chaining a stored history)."""
    for oid, events in groupby(rows, key=lambda r: r[0]):
        previous = GENESIS
        for _, version, topic, state in events:
            previous = next_link(previous, record_digest(oid, version, topic, bytes(state)))
            yield oid, version, previous


# --- verification ---------------------------------------------------------------------


class Breach(StrEnum):
    """What is wrong at the first broken link of a stream."""

    EDITED = "edited"
    """The stored event (or its link) was changed after it was recorded."""
    DELETED = "deleted"
    """An event is missing: its link is there, or the versions have a gap."""
    INSERTED = "inserted"
    """An event has no link: it was not recorded through CityOps."""


@dataclass(frozen=True)
class BrokenLink:
    """The first broken link of one stream."""

    store: str
    stream: str
    """The aggregate id (the stream)."""
    version: int
    breach: Breach
    detail: str

    def as_dict(self) -> dict[str, object]:
        return {"store": self.store, "stream": self.stream, "version": self.version,
                "problem": self.breach.value, "detail": self.detail}


@dataclass
class StoreVerdict:
    """What verifying one event store found."""

    store: str
    events: int = 0
    streams: int = 0
    broken: list[BrokenLink] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.broken

    def as_dict(self) -> dict[str, object]:
        return {"store": self.store, "events": self.events, "streams": self.streams,
                "intact": self.intact, "broken": [b.as_dict() for b in self.broken]}


def check_stream(store: str, stream: str, events: Sequence[tuple[int, bytes]],
                 links: Sequence[tuple[int, bytes]]) -> BrokenLink | None:
    """The first broken link of one stream, from its events' (version, record digest) and
    its links' (version, link), each in version order; None if the chain holds."""
    records, stored = dict(events), dict(links)
    previous, expected = GENESIS, 1
    for version in sorted(records.keys() | stored.keys()):
        if version != expected:
            missing = (f"event {expected} and its link are" if version == expected + 1
                       else f"events {expected} to {version - 1} and their links are")
            return BrokenLink(store, stream, expected, Breach.DELETED,
                              f"{missing} missing (the stream goes on at version {version})")
        if version not in records:
            return BrokenLink(store, stream, version, Breach.DELETED,
                              f"event {version} is missing; its link is still there")
        if version not in stored:
            return BrokenLink(store, stream, version, Breach.INSERTED,
                              f"event {version} has no link: it was not recorded through "
                              "CityOps")
        if next_link(previous, records[version]) != stored[version]:
            return BrokenLink(store, stream, version, Breach.EDITED,
                              f"event {version} does not match its link: the stored event "
                              "(or its link) was changed after it was recorded")
        previous, expected = stored[version], version + 1
    return None


StreamRows = Iterable[tuple[Any, int, bytes]]
"""(stream, version, digest or link) rows ordered by stream (in the database's order of
the stream ids, which both queries share) and version."""


def verify_rows(store: str, events: StreamRows, links: StreamRows) -> StoreVerdict:
    """Verify one store from its event records' digests and its links, both ordered by
    stream and version (merged stream by stream, so a large store is never all in memory)."""
    verdict = StoreVerdict(store)
    event_groups = groupby(events, key=lambda r: r[0])
    link_groups = groupby(links, key=lambda r: r[0])
    next_events = next(event_groups, None)
    next_links = next(link_groups, None)
    while next_events is not None or next_links is not None:
        if next_links is None or (next_events is not None and next_events[0] < next_links[0]):
            assert next_events is not None
            stream, group_events, group_links = next_events[0], list(next_events[1]), []
            next_events = next(event_groups, None)
        elif next_events is None or next_links[0] < next_events[0]:
            stream, group_events, group_links = next_links[0], [], list(next_links[1])
            next_links = next(link_groups, None)
        else:
            stream = next_events[0]
            group_events, group_links = list(next_events[1]), list(next_links[1])
            next_events, next_links = next(event_groups, None), next(link_groups, None)
        verdict.streams += 1
        verdict.events += len(group_events)
        broken = check_stream(store, str(UUID(str(stream))), [(v, d) for _, v, d in group_events],
                              [(v, link) for _, v, link in group_links])
        if broken is not None:
            verdict.broken.append(broken)
    return verdict


def sqlite_verdict(store: str, connection: sqlite3.Connection) -> StoreVerdict:
    """Verify the event store of one SQLite file (read in one read transaction)."""
    events = connection.cursor()
    events.execute(f"SELECT originator_id, originator_version, topic, state "
                   f"FROM {SQLITE_EVENTS_TABLE} ORDER BY originator_id, originator_version")
    links = connection.cursor()
    try:
        links.execute(f"SELECT originator_id, originator_version, link FROM "
                      f"{SQLITE_CHAIN_TABLE} ORDER BY originator_id, originator_version")
        link_rows: Iterable[tuple[Any, int, bytes]] = (
            (r[0], int(r[1]), bytes(r[2])) for r in links)
    except sqlite3.OperationalError:
        link_rows = ()  # no chain table at all: every event is unlinked
    return verify_rows(store, ((r[0], int(r[1]), record_digest(r[0], r[1], r[2], r[3]))
                               for r in events), link_rows)


def postgres_verdict(store: str, connection: Any, schema: str, events_table: str) -> StoreVerdict:
    """Verify the event store of one PostgreSQL application (the caller's transaction)."""
    chain_table = postgres_chain_table(events_table)
    events = connection.cursor(name=f"verify_{events_table}_events")
    events.itersize = 2000
    events.execute(SQL("SELECT originator_id, originator_version, topic, state FROM {}.{} "
                       "ORDER BY originator_id, originator_version").format(
                           Identifier(schema), Identifier(events_table)))
    found = connection.execute("SELECT to_regclass(%s)",
                               (f'"{schema}"."{chain_table}"',)).fetchone()
    link_rows: Iterable[tuple[Any, int, bytes]] = ()
    if found is not None and found[0] is not None:
        links = connection.cursor(name=f"verify_{events_table}_links")
        links.itersize = 5000
        links.execute(SQL("SELECT originator_id, originator_version, link FROM {}.{} "
                          "ORDER BY originator_id, originator_version").format(
                              Identifier(schema), Identifier(chain_table)))
        link_rows = ((r[0], int(r[1]), bytes(r[2])) for r in links)
    return verify_rows(store, ((r[0], int(r[1]), record_digest(r[0], r[1], r[2], bytes(r[3])))
                               for r in events), link_rows)
