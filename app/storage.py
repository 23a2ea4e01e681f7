"""The SQL plumbing every package uses, on SQLite (embedded) or PostgreSQL (production):
the stores of the read models and of the other tables beside the event stores (ingest's
dead letters and counters, the feeds' positions, photos...), the advisory locks that let
processes start and create tables at once, tracked positions, and the one PostgreSQL LISTEN
loop (`PostgresListener`).

Statements are written once with `%s` parameters; the SQLite store translates them. Each
`transaction()` is atomic: rows and tracking positions commit together or not at all.

It lives in the `cityops` package (app/), beside the settings, logs and metrics that every
package already imports: projections, ingest, feeds and the command centre all use it, and
it imports none of them (nor the domain), so it sits below them all.
"""

from __future__ import annotations

import json
import logging
import selectors
import socket
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Protocol

import orjson
import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.types.json import set_json_loads
from psycopg_pool import ConnectionPool

log = logging.getLogger(__name__)

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


def json_value(text: str | bytes | bytearray | memoryview) -> Any:
    """A JSON text as Python values, decoded by orjson (several times faster than the
    standard decoder over the read models' documents: a page of 100 cost 3 ms, most of a
    radius question's client time), with the standard decoder's values: a text with a
    run of 20 digits or more (orjson turns an integer beyond 64 bits into a float) and one
    orjson refuses (NaN, a lone surrogate) are decoded by the standard decoder."""
    data = text.encode() if isinstance(text, str) else bytes(text)
    if _LONG_DIGIT_RUN not in data.translate(_DIGITS_AS_ZEROS):
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    return json.loads(data)


_DIGITS_AS_ZEROS = bytes(b"0"[0] if chr(byte).isdigit() and byte < 128 else b" "[0]
                         for byte in range(256))
"""Every ASCII digit as "0", every other byte as a space: a run of digits becomes a run of
zeros that `in` finds at the speed of a substring search (a regular expression took longer
than decoding the text)."""
_LONG_DIGIT_RUN = b"0" * 20


def json_text(value: Any) -> str:
    """A read-model row's document (or other JSON value) as JSON text, keys sorted, written
    by orjson (a rebuild wrote a document per event, and the standard encoder was a tenth
    of its time). Text and values are what `json_value` reads back; a value orjson cannot
    write (an integer beyond 64 bits, a key that is not text) is written by the standard
    encoder. Not a number is written null: the domain keeps no non-finite number."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    except (orjson.JSONEncodeError, TypeError):
        return json.dumps(value, sort_keys=True)


COPY_FROM_ROWS = 100
"""On PostgreSQL, a write of this many rows or more goes through COPY (below)."""


def among(txn: Transaction, column: str, values: Sequence[str]) -> tuple[str, Any]:
    """SQL saying that `column` is one of `values`, and its one parameter: any number of
    values in one statement, without a placeholder each (SQLite allows few)."""
    if txn.dialect == "postgres":
        return f"{column} = ANY(%s)", list(values)
    return f"{column} IN (SELECT value FROM json_each(%s))", orjson.dumps(list(values)).decode()


def upsert_rows(txn: Transaction, table: str, names: Sequence[str],
                rows: Sequence[Sequence[Any]], key: Sequence[str],
                documents: Sequence[str] = ("doc",)) -> None:
    """Write `rows` (values in `names` order) into `table`, a row whose `key` is there
    already replacing it; no two rows may have the same key. `documents`: columns whose
    values are JSON text (`json_text`), JSONB on PostgreSQL.

    On PostgreSQL a few rows go as one JSON parameter of one statement, typed by the
    table's own row type (`json_populate_recordset`): a rebuild's writes were one statement
    per row (about 35 µs of driver work each, plus the server's). Many rows (a rebuild's or
    a catch-up's batch, `COPY_FROM_ROWS`) are copied into a temporary table shaped like the
    written columns and inserted from it: the server parsed each row's JSON twice the other
    way (the parameter, then the document), 55-85 µs a grid case's row version against
    25-30. Values that JSON cannot carry exactly (integers beyond 64 bits) go row by row,
    as on SQLite."""
    if not rows:
        return
    columns = ", ".join(names)
    updates = ", ".join(f"{n} = excluded.{n}" for n in names if n not in key)
    conflict = f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}"
    if isinstance(txn, _PostgresTransaction) and len(rows) >= COPY_FROM_ROWS:
        # Dropped once read (a failure rolls its creation back with the rest): a table may
        # be written twice in a transaction, and nothing outlives it.
        staging = f"copied_{table}"
        txn.execute(f"CREATE TEMPORARY TABLE {staging} AS "
                    f"SELECT {columns} FROM {table} WITH NO DATA")
        txn.copy_rows(staging, names, rows)
        txn.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {staging} "
                    f"{conflict}")
        txn.execute(f"DROP TABLE {staging}")
        return
    if txn.dialect == "postgres":
        as_json = [i for i, n in enumerate(names) if n in documents]
        try:
            payload = orjson.dumps([
                dict(zip(names, _with_documents(row, as_json), strict=True)) for row in rows])
        except TypeError:
            pass
        else:
            txn.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM "
                        f"json_populate_recordset(NULL::{table}, %s::json) {conflict}",
                        [payload.decode()])
            return
    txn.executemany(f"INSERT INTO {table} ({columns}) "
                    f"VALUES ({', '.join(['%s'] * len(names))}) {conflict}", rows)


def _with_documents(row: Sequence[Any], positions: Sequence[int]) -> list[Any]:
    """`row` with the JSON text at `positions` embedded as JSON (not as a string)."""
    values = list(row)
    for i in positions:
        if isinstance(values[i], str):
            values[i] = orjson.Fragment(values[i])
    return values


def row_document(value: Any) -> dict[str, Any]:
    """A read-model row's document: JSON text on SQLite, decoded already from JSONB on
    PostgreSQL (by `json_value` too, see `PostgresReadStore`)."""
    if isinstance(value, dict):
        return value
    document: dict[str, Any] = json_value(value)
    return document


class Transaction(Protocol):
    dialect: str
    """'sqlite' or 'postgres': the SQL this transaction runs."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None: ...
    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...
    def fetchall(self) -> list[Row]: ...
    def fetchone(self) -> Row | None: ...


class ReadStore(Protocol):
    """Where read models live; `dialect` is 'sqlite' or 'postgres'."""

    dialect: str

    def transaction(self) -> Any: ...
    def reading(self) -> Any:
        """Statements that only read and need no snapshot shared between them: on
        PostgreSQL outside a transaction block (each statement sees what was committed when
        it began, as in the READ COMMITTED transaction it replaces, without the BEGIN and
        COMMIT round trips); elsewhere a transaction."""
    def close(self) -> None: ...


class _SqliteTransaction:
    dialect = "sqlite"

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


SQLITE_CLOSE_WAIT_S = 30.0
"""How long closing a SQLite read store waits for the transactions other threads have open."""


class SqliteReadStore:
    """Read models in one SQLite file (WAL), one connection per thread.

    Closing waits for the transactions other threads have open: a connection closed while
    another thread runs a statement on it crashes the process (sqlite3 with
    `check_same_thread=False`), as a reader of the live change log did at a shutdown."""

    dialect = "sqlite"

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._idle = threading.Condition()
        self._open: dict[int, int] = {}
        """Transactions open, by thread: how deep."""

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
        """A transaction on this thread's connection; within one already open on it (a
        reader called inside a writer's transaction, as the webhook outbox reads the CAP
        alerts), the same transaction: it commits or rolls back with the outer one."""
        thread = threading.get_ident()
        with self._idle:
            connection = self._connection()
            self._open[thread] = self._open.get(thread, 0) + 1
        try:
            if connection.in_transaction:
                yield _SqliteTransaction(connection)
                return
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield _SqliteTransaction(connection)
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
        finally:
            with self._idle:
                depth = self._open.pop(thread) - 1
                if depth:
                    self._open[thread] = depth
                self._idle.notify_all()

    def reading(self) -> Any:
        return self.transaction()

    def close(self) -> None:
        """Close every thread's connection, once the other threads' transactions ended (a
        transaction begun later opens a connection again, as before)."""
        me = threading.get_ident()
        with self._idle:
            if not self._idle.wait_for(lambda: not set(self._open) - {me},
                                       timeout=SQLITE_CLOSE_WAIT_S):
                log.warning("read store %s: closed while transactions of other threads were "
                            "still open after %.0f s", self.path, SQLITE_CLOSE_WAIT_S)
            with self._lock:
                for connection in self._connections:
                    connection.close()
                self._connections.clear()
            self._local = threading.local()


class _PostgresTransaction:
    dialect = "postgres"

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

    def copy_rows(self, table: str, names: Sequence[str], rows: Sequence[Sequence[Any]]
                  ) -> None:
        """`rows` (values in `names` order) into `table` by COPY."""
        with self._cursor.copy(f"COPY {table} ({', '.join(names)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)


class PostgresReadStore:
    """Read models in PostgreSQL, through a small connection pool."""

    dialect = "postgres"

    def __init__(self, url: str, schema: str | None = None, pool_size: int = 4) -> None:
        # JIT off: the read models' questions are short, and compiling their plans cost
        # more than running them (about 1 s of a 1.1 s question of the city at a past
        # instant over 1,000,000 events, bench/time_travel.py). Options of the URL are kept.
        given = conninfo_to_dict(url).get("options")
        options = [str(o) for o in (given, "-c jit=off",
                                    f"-c search_path={schema},public" if schema else None) if o]
        kwargs: dict[str, Any] = {"autocommit": False, "options": " ".join(options)}
        if schema:
            with psycopg.connect(url) as connection, connection.transaction():
                connection.execute("SELECT pg_advisory_xact_lock(%s, %s)",
                                   (LOCK_SPACE, SCHEMA_CHANGE_LOCK))
                connection.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        self._pool = ConnectionPool(url, min_size=1, max_size=pool_size, kwargs=kwargs,
                                    configure=_decode_json_fast, open=True)

    @contextmanager
    def transaction(self) -> Iterator[_PostgresTransaction]:
        with self._pool.connection() as connection, connection.transaction(), \
                connection.cursor() as cursor:
            yield _PostgresTransaction(cursor)

    @contextmanager
    def reading(self) -> Iterator[_PostgresTransaction]:
        with self._pool.connection() as connection:
            connection.autocommit = True
            try:
                with connection.cursor() as cursor:
                    yield _PostgresTransaction(cursor)
            finally:
                # Back to what the pool hands out; a broken connection the pool discards.
                if not connection.closed:
                    connection.autocommit = False

    def close(self) -> None:
        self._pool.close()


def _decode_json_fast(connection: psycopg.Connection[Any]) -> None:
    """JSON and JSONB values of this connection decoded by `json_value`."""
    set_json_loads(json_value, connection)


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


# --- LISTEN -------------------------------------------------------------------------------

RECONNECT_DELAY_S = 1.0
"""First wait before reconnecting after the LISTEN connection failed (then doubled)."""
MAX_RECONNECT_DELAY_S = 30.0
"""Longest wait between two reconnection attempts (PostgreSQL down for a while)."""
LIVENESS_CHECK_S = 60.0
"""How long the listener waits for a notification before making sure the connection is
alive (a connection lost without a word only shows when something is sent)."""


def event_channels(applications: Sequence[Any]) -> list[str]:
    """The NOTIFY channels of the applications' PostgreSQL event stores.

    No trigger of our own is needed: the eventsourcing library's PostgreSQL recorder sends
    `NOTIFY <events table>` (e.g. `gridcases_events`) inside every insert transaction (what
    its own subscriptions listen to), so PostgreSQL delivers it at commit, once the events
    are visible. The channel names carry no schema: a drill in another schema of the same
    database also notifies them, and whoever listens then finds nothing new (one empty
    read) — harmless."""
    channels = []
    for application in applications:
        channel = getattr(application.recorder, "channel_name", None)
        if not isinstance(channel, str):
            raise ValueError(
                f"application {application.name} does not record in PostgreSQL "
                f"({type(application.recorder).__name__} has no NOTIFY channel): only "
                "PostgreSQL event stores notify other processes")
        channels.append(channel)
    return channels


class PostgresListener(threading.Thread):
    """LISTENs on PostgreSQL channels and calls `notified(channel)` for each channel that
    was notified (once per channel for a burst that arrived together), in its own thread.

    Whoever listens also polls: a notification only saves waiting. So the one rule for a
    lost connection is to say so, reconnect after `RECONNECT_DELAY_S` (doubling up to
    `MAX_RECONNECT_DELAY_S` while PostgreSQL stays away), and on every (re)connection call
    `notified` for every channel, for whatever was committed while nobody listened. A
    connection that died silently is found by a `SELECT 1` after `LIVENESS_CHECK_S` without
    a notification. `stop()` ends it at once."""

    def __init__(self, database_url: str, channels: Sequence[str],
                 notified: Callable[[str], None], *, purpose: str) -> None:
        super().__init__(name=f"cityops-listen-{purpose.replace(' ', '-')}", daemon=True)
        if not channels:
            raise ValueError(f"{purpose}: a listener needs at least one channel to listen on")
        self.database_url = database_url
        self.channels = list(dict.fromkeys(channels))
        self.notified = notified
        self.purpose = purpose
        """What the notifications are for (in the thread's name and the log's lines)."""
        self.backend_pid: int | None = None
        """The PostgreSQL backend of the LISTEN connection once it listens (None while
        connecting): what an operator (or a test) terminates to see it reconnect."""
        self.connections = 0
        """How many times it has connected and started listening."""
        self.listening = threading.Event()
        """Set while it listens, cleared while it is (re)connecting."""
        self._stopping = threading.Event()
        # `stop()` writes to this pair to interrupt the select() the thread sleeps in.
        self._interrupt, self._interrupted = socket.socketpair()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop listening and wait for the thread to end."""
        self._stopping.set()
        with suppress(OSError):  # already closed by an earlier stop
            self._interrupt.send(b"x")
        if self.is_alive():
            self.join(timeout)
        self._interrupt.close()
        self._interrupted.close()

    def run(self) -> None:
        delay = RECONNECT_DELAY_S
        while not self._stopping.is_set():
            try:
                with psycopg.connect(self.database_url, autocommit=True, connect_timeout=10,
                                     application_name=self.name) as conn:
                    for channel in self.channels:
                        conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
                    self.backend_pid = conn.info.backend_pid
                    self.connections += 1
                    if self.connections > 1:
                        log.info("%s: listening again on %s", self.purpose,
                                 ", ".join(self.channels))
                    self.listening.set()
                    delay = RECONNECT_DELAY_S
                    # Whatever was committed while nobody listened.
                    self._tell(self.channels)
                    self._listen(conn)
            except Exception as error:  # whatever it was, polling covers until reconnected
                if self._stopping.is_set():
                    break
                log.warning(
                    "%s: lost the LISTEN connection to PostgreSQL (%s); polling meanwhile, "
                    "reconnecting in %.0f s", self.purpose,
                    str(error).strip() or type(error).__name__, delay,
                    exc_info=not isinstance(error, psycopg.Error))
            finally:
                self.listening.clear()
                self.backend_pid = None
            if self._sleep(delay):
                break
            delay = min(delay * 2, MAX_RECONNECT_DELAY_S)

    def _listen(self, conn: psycopg.Connection[Any]) -> None:
        """Pass on each notification until stopped (returns) or the connection fails
        (raises)."""
        while not self._stopping.is_set():
            interrupted = self._interrupted.fileno()
            ready = readable([conn.fileno(), interrupted], LIVENESS_CHECK_S)
            if interrupted in ready:
                return
            if not ready:
                conn.execute("SELECT 1")  # raises if the connection died silently
                continue
            # Drain what has arrived (timeout=0: no waiting); a dead connection raises here.
            self._tell(list(dict.fromkeys(n.channel for n in conn.notifies(timeout=0))))

    def _tell(self, channels: Sequence[str]) -> None:
        for channel in channels:
            try:
                self.notified(channel)
            except Exception:  # a broken receiver must not stop the listening
                log.exception("%s: passing on a notification of %s failed", self.purpose,
                              channel)

    def _sleep(self, seconds: float) -> bool:
        """Wait before reconnecting; True when stopped meanwhile."""
        return bool(readable([self._interrupted.fileno()], seconds)) or self._stopping.is_set()


def readable(fds: Sequence[int], timeout: float) -> set[int]:
    """Which of `fds` can be read within `timeout` seconds. A selector (epoll), not
    `select.select`: that one refuses descriptors above 1023, which a busy process has."""
    with selectors.DefaultSelector() as selector:
        for fd in fds:
            selector.register(fd, selectors.EVENT_READ)
        return {key.fd for key, _ in selector.select(timeout)}
