"""SQL storage of the read models, on SQLite (embedded) or PostgreSQL (production).

Statements are written once with `%s` parameters; the SQLite store translates them. Each
`transaction()` is atomic: rows and tracking positions commit together or not at all.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Protocol

import psycopg
from psycopg_pool import ConnectionPool

Row = tuple[Any, ...]

# PostgreSQL advisory locks of CityOps: (LOCK_SPACE, purpose). Creating tables, types or
# schemas that another process creates at the same instant fails even with IF NOT EXISTS
# ("tuple concurrently updated", a duplicate key in pg_type or pg_namespace), so every
# process takes turns. Two purposes, two keys: a process holding the start-up lock also
# takes the schema-change lock in its own DDL transactions (other sessions), which one key
# would make it wait for itself.
LOCK_SPACE = 0x43697479  # "City"
SCHEMA_CHANGE_LOCK = 1
"""Held by each transaction that creates tables or schemas (until it commits)."""
START_UP_LOCK = 2
"""Held by a starting process for its whole start-up (event stores included)."""

TRACKING_DDL = """
CREATE TABLE IF NOT EXISTS projection_positions (
    projection TEXT NOT NULL,
    application TEXT NOT NULL,
    position BIGINT NOT NULL,
    PRIMARY KEY (projection, application)
)
"""


class Transaction(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = ()) -> None: ...
    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...
    def fetchall(self) -> list[Row]: ...
    def fetchone(self) -> Row | None: ...


class ReadStore(Protocol):
    """Where read models live; `dialect` is 'sqlite' or 'postgres'."""

    dialect: str

    def transaction(self) -> Any: ...
    def close(self) -> None: ...


class _SqliteTransaction:
    def __init__(self, connection: sqlite3.Connection) -> None:
        self._cursor = connection.cursor()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._cursor.execute(sql.replace("%s", "?"), tuple(params))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._cursor.executemany(sql.replace("%s", "?"), [tuple(r) for r in rows])

    def fetchall(self) -> list[Row]:
        return list(self._cursor.fetchall())

    def fetchone(self) -> Row | None:
        row = self._cursor.fetchone()
        return tuple(row) if row is not None else None


class SqliteReadStore:
    """Read models in one SQLite file (WAL), one connection per thread."""

    dialect = "sqlite"

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []

    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(
                self.path, timeout=30, isolation_level=None, check_same_thread=False
            )
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            self._local.connection = connection
            with self._lock:
                self._connections.append(connection)
        return connection

    @contextmanager
    def transaction(self) -> Iterator[_SqliteTransaction]:
        connection = self._connection()
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield _SqliteTransaction(connection)
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()
        self._local = threading.local()


class _PostgresTransaction:
    def __init__(self, cursor: psycopg.Cursor[Any]) -> None:
        self._cursor = cursor

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._cursor.execute(sql, tuple(params))  # type: ignore[arg-type]

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._cursor.executemany(sql, [tuple(r) for r in rows])  # type: ignore[arg-type]

    def fetchall(self) -> list[Row]:
        return list(self._cursor.fetchall())

    def fetchone(self) -> Row | None:
        return self._cursor.fetchone()


class PostgresReadStore:
    """Read models in PostgreSQL, through a small connection pool."""

    dialect = "postgres"

    def __init__(self, url: str, schema: str | None = None, pool_size: int = 4) -> None:
        options = f"-c search_path={schema},public" if schema else None
        kwargs: dict[str, Any] = {"autocommit": False}
        if options:
            kwargs["options"] = options
        if schema:
            with psycopg.connect(url) as connection, connection.transaction():
                connection.execute("SELECT pg_advisory_xact_lock(%s, %s)",
                                   (LOCK_SPACE, SCHEMA_CHANGE_LOCK))
                connection.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        self._pool = ConnectionPool(url, min_size=1, max_size=pool_size, kwargs=kwargs,
                                    open=True)

    @contextmanager
    def transaction(self) -> Iterator[_PostgresTransaction]:
        with self._pool.connection() as connection, connection.transaction(), \
                connection.cursor() as cursor:
            yield _PostgresTransaction(cursor)

    def close(self) -> None:
        self._pool.close()


@contextmanager
def schema_transaction(store: ReadStore) -> Iterator[Transaction]:
    """A transaction that creates tables: on PostgreSQL it first waits for any other
    process creating tables to commit (an advisory lock held until this one commits), so
    processes starting at once on a fresh database never race on the catalogue."""
    with store.transaction() as txn:
        if store.dialect == "postgres":
            txn.execute("SELECT pg_advisory_xact_lock(%s, %s)",
                        (LOCK_SPACE, SCHEMA_CHANGE_LOCK))
        # SQLite serialises writers itself: its DDL needs nothing more.
        yield txn


@contextmanager
def start_up_serialised(database_url: str | None) -> Iterator[None]:
    """Hold the start-up lock while a process creates what it needs on PostgreSQL (the
    eventsourcing library's event stores, whose CREATE TYPE/TABLE race too, and the read
    models): processes starting at once start one after the other. The lock lives on a
    connection of its own, released when it closes (also if the process dies)."""
    if database_url is None:
        yield
        return
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute("SELECT pg_advisory_lock(%s, %s)", (LOCK_SPACE, START_UP_LOCK))
        try:
            yield
        finally:
            # Closing the connection releases it too: a lost connection is no new error.
            with suppress(psycopg.Error):
                connection.execute("SELECT pg_advisory_unlock(%s, %s)",
                                   (LOCK_SPACE, START_UP_LOCK))


def positions(store: ReadStore, projection: str) -> dict[str, int]:
    """The tracked position of a projection in each application it follows."""
    with store.transaction() as txn:
        txn.execute(
            "SELECT application, position FROM projection_positions WHERE projection = %s",
            (projection,),
        )
        return {str(app): int(pos) for app, pos in txn.fetchall()}


def set_position(txn: Transaction, projection: str, application: str, position: int) -> None:
    txn.execute(
        "INSERT INTO projection_positions (projection, application, position) "
        "VALUES (%s, %s, %s) ON CONFLICT (projection, application) "
        "DO UPDATE SET position = excluded.position",
        (projection, application, position),
    )
