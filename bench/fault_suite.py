"""The fault suite: the production shape on this machine under a steady mixed load, one fault
at a time, and after each (with no human action) every acknowledged input in the event store
exactly once and the read models equal to a fault-free build of the same events.

The shape: PostgreSQL, one Kafka broker, two ingest workers (`cityops ingest run`, one
consumer group), the projection process (`cityops projections run`), two API servers
(`cityops serve`, no projections of their own) and the feed publisher (`cityops feeds run`).
A supervisor thread restarts any of the six processes that exits, one second later, as
systemd's `Restart=always` or compose's `restart: always` would.

The load: inspectors' grid-case reports and hotline calls produced to the Kafka ingest topics
(acknowledged = the broker acknowledged the send, acks=all), and the same two commands posted
over HTTP to both API servers with an `Idempotency-Key` (acknowledged = a 2xx answer; a
failed attempt is retried with the same key, on the other server, as a client would).

The faults, in turn: SIGKILL of an ingest worker, an API server, the projection process and
the feed publisher; a SIGKILL of the Kafka broker and its restart; `pg_ctl restart -m
immediate` of PostgreSQL (a crash and recovery); the event store refusing writes for a while
(the effect of a full disk, see docs/fault-tolerance.md); a slow consumer (an ingest worker
stopped with SIGSTOP for longer than its session timeout, and a WebSocket client that reads
nothing, at the same time).

After each fault the suite measures the recovery time (from the end of the fault until an
input acknowledged after it was applied, both API servers took writes again, and the
projections and the feed caught up with what the store held then), then pauses the load,
drains, and checks:

  * every acknowledged input has its receipt (its command id or message id) in the store;
  * no input was applied twice: one reported case / received ticket per receipt, and every
    receipt is one of the suite's own inputs;
  * the read models the projection process built through the faults equal a fault-free build
    of the same event store: `cityops projections rebuild` into a new generation (the same
    code that any replay runs), compared row by row, every table;
  * the feed topics hold each event at most once (read committed) and caught up.

Why a rebuild rather than a second, fault-free run of the same input: the commands stamp the
time they are handled, and the HTTP load cannot be replayed to the same millisecond, so two
runs never hold equal rows; what a fault could break is the projection of the store the run
produced (an event applied twice, skipped, or applied to a half-written row), and that is
exactly what comparing with a fresh replay of the same store shows. Exactly-once in the store
is checked separately, against the acknowledgements.

Usage:

    python bench/fault_suite.py                 # everything, private PostgreSQL and Kafka
    python bench/fault_suite.py --quick         # small load; SIGKILL ingest + projections,
                                                # read-only store
    python bench/fault_suite.py --faults kill-api,pg-restart
    python bench/fault_suite.py --quick --postgres-url URL --kafka-bootstrap HOST:PORT

By default the suite starts its own PostgreSQL cluster and Kafka broker on free ports in a
temporary directory (dev/postgres and dev/kafka with CITYOPS_PG_DIR / CITYOPS_KAFKA_DIR),
because two faults restart them; the broker's jars come from `--kafka-libs` (default: the
first of <repo>/.local/kafka/libs and $CITYOPS_KAFKA_LIBS that exists; otherwise dev/kafka
fetches them). With --postgres-url and --kafka-bootstrap it uses running services instead
(its own database, topics, consumer group and feed prefix) and refuses the two restart faults.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
from psycopg import sql

from cityops.domain.accounts.commands import AddUser
from cityops.domain.commands import CommandContext

REPO = Path(__file__).resolve().parents[1]
PASSWORD = "fault-suite-password-1"
INSPECTOR_USER = "insp-D01-01"
OPERATOR_USER = "hotline-op-1"
RESTART_DELAY_S = 1.0
RECEIPT_TOPIC = "cityops.domain.application:CommandReceipt.Recorded"
REPORTED_TOPIC = "cityops.domain.gridcases.case:GridCase.Reported"
RECEIVED_TOPIC = "cityops.domain.hotline.ticket:HotlineTicket.Received"
HOTLINE_TOPICS = ("garbage", "noise", "street-lighting", "illegal-parking", "water-supply")
CATEGORIES = ("E0101", "E0401", "C0105")
ALL_FAULTS = ("kill-ingest", "kill-api", "kill-projections", "kill-feeds", "kafka-restart",
              "pg-restart", "store-read-only", "slow-consumer")
QUICK_FAULTS = ("kill-ingest", "kill-projections", "store-read-only")
RESTARTING_FAULTS = {"kafka-restart", "pg-restart"}


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float,
               interval_s: float = 0.25) -> float:
    """Seconds until `condition` held; raises TimeoutError after `timeout_s`."""
    started = time.monotonic()
    while True:
        try:
            if condition():
                return time.monotonic() - started
        except Exception:  # a probe may fail while a fault lasts
            pass
        if time.monotonic() - started > timeout_s:
            raise TimeoutError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(interval_s)


def answers(server: str) -> bool:
    return httpx.get(f"{server}/health", timeout=3).status_code == 200


def tool_env() -> dict[str, str]:
    """The environment of dev/* scripts: this interpreter's bin first (dev/kafka asks
    `python3` whether kafka-python is there to probe the broker)."""
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}


# --- private services ---------------------------------------------------------------------


def run_dev(script: str, env: dict[str, str], *args: str) -> str:
    """dev/<script> <args> with `env`: its output, or an error with what it said."""
    done = subprocess.run([str(REPO / "dev" / script), *args], env=env, capture_output=True,
                          text=True, check=False, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"dev/{script} {' '.join(args)} failed: {done.stderr}")
    return done.stdout.strip()


class PrivatePostgres:
    """A PostgreSQL cluster of the suite's own (dev/postgres in a temporary directory)."""

    def __init__(self, root: Path) -> None:
        self.dir = root / "pg"
        self.port = free_port()
        self.env = {**tool_env(), "CITYOPS_PG_DIR": str(self.dir),
                    "CITYOPS_PG_PORT": str(self.port)}

    def dev(self, *args: str) -> str:
        return run_dev("postgres", self.env, *args)

    def start(self) -> str:
        self.dev("start")
        # Six processes each open a pool per event store and read model: more than the dev
        # cluster's 200 connections. ALTER SYSTEM (postgresql.auto.conf) is read last.
        with psycopg.connect(host=str(self.dir / "run"), port=self.port, user="postgres",
                             dbname="postgres", autocommit=True) as admin:
            admin.execute("ALTER SYSTEM SET max_connections = 600")
        self.pg_ctl("fast")
        return self.dev("url")

    def restart_immediate(self) -> None:
        """A crash and recovery: `-m immediate` aborts without a checkpoint."""
        self.pg_ctl("immediate")

    def pg_ctl(self, mode: str) -> None:
        pg_ctl = [str(Path(os.environ.get("CITYOPS_PG_BIN", "/usr/lib/postgresql/15/bin"))
                      / "pg_ctl"), "-D", str(self.dir / "data"), "-l",
                  str(self.dir / "postgres.log"), "-m", mode, "-w", "-t", "120",
                  "restart"]
        if os.geteuid() == 0:
            pg_ctl = ["runuser", "-u", "postgres", "--", *pg_ctl]
        subprocess.run(pg_ctl, check=True, capture_output=True, cwd="/", timeout=180)

    def stop(self) -> None:
        with suppress(Exception):
            self.dev("stop")


class PrivateKafka:
    """A Kafka broker of the suite's own (dev/kafka in a temporary directory)."""

    def __init__(self, root: Path, libs: Path | None) -> None:
        self.dir = root / "kafka"
        self.dir.mkdir(parents=True)
        if libs is not None:
            (self.dir / "libs").symlink_to(libs)
        self.port = free_port()
        self.env = {**tool_env(), "CITYOPS_KAFKA_DIR": str(self.dir),
                    "CITYOPS_KAFKA_PORT": str(self.port),
                    "CITYOPS_KAFKA_CONTROLLER_PORT": str(free_port()),
                    "CITYOPS_KAFKA_HEAP": "384m"}

    def dev(self, *args: str) -> str:
        return run_dev("kafka", self.env, *args)

    def start(self) -> str:
        self.dev("start")
        return self.dev("bootstrap")

    def kill(self) -> None:
        pid = int((self.dir / "kafka.pid").read_text())
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not Path(f"/proc/{pid}").exists()
                   or "zombie" in Path(f"/proc/{pid}/status").read_text().lower(),
                   "the broker to die", 30)

    def stop(self) -> None:
        with suppress(Exception):
            self.dev("stop")


def http_command_id(user: str, role: str, key: str) -> str:
    """The command id an API server gives an HTTP command sent by `user` with `key`."""
    from cityops.domain.actors import Actor, Role
    from cityops.domain.application import actor_scoped_command_id

    return actor_scoped_command_id(Actor(user, Role(role)), key)


def is_http_input(input_id: str) -> bool:
    from cityops.domain.application import ACTOR_SCOPE

    return input_id.startswith(ACTOR_SCOPE)


def default_kafka_libs() -> Path | None:
    for candidate in (REPO / ".local" / "kafka" / "libs",
                      Path(os.environ.get("CITYOPS_KAFKA_LIBS", "/nonexistent"))):
        if candidate.is_dir() and any(candidate.glob("kafka_*.jar")):
            return candidate
    return None


@contextmanager
def own_database(server_url: str) -> Iterator[str]:
    name = f"cityops_faults_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))
    finally:
        from scratch_database import drop_database

        with suppress(Exception):
            drop_database(server_url, name)


# --- the supervised processes -------------------------------------------------------------


@dataclass
class Service:
    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    exits: list[tuple[float, int]] = field(default_factory=list)
    started_at: float = 0.0

    def start(self) -> None:
        with self.log_path.open("ab") as out:
            out.write(f"\n=== start {self.starts + 1} at {time.strftime('%H:%M:%S')}\n".encode())
            out.flush()
            self.process = subprocess.Popen(self.argv, env=self.env, stdout=out,
                                            stderr=subprocess.STDOUT, cwd=REPO)
        self.starts += 1
        self.started_at = time.monotonic()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def signal(self, number: int) -> None:
        assert self.process is not None
        self.process.send_signal(number)

    def tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]


class Supervisor:
    """Restarts a service that exits, RESTART_DELAY_S later (systemd Restart=always)."""

    def __init__(self) -> None:
        self.services: dict[str, Service] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="supervisor", daemon=True)

    def add(self, service: Service) -> Service:
        self.services[service.name] = service
        service.start()
        return service

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            for service in list(self.services.values()):
                process = service.process
                if process is None or process.poll() is None:
                    continue
                service.exits.append((time.monotonic(), process.returncode))
                log(f"supervisor: {service.name} (pid {process.pid}) exited with "
                    f"{process.returncode}; restarting in {RESTART_DELAY_S:g} s")
                time.sleep(RESTART_DELAY_S)
                if not self._stop.is_set():
                    service.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        for service in self.services.values():
            if service.process is not None and service.process.poll() is None:
                service.process.send_signal(signal.SIGCONT)
                service.process.terminate()
        for service in self.services.values():
            if service.process is not None:
                try:
                    service.process.wait(30)
                except subprocess.TimeoutExpired:
                    service.process.kill()
                    service.process.wait(10)


# --- the load -----------------------------------------------------------------------------


@dataclass
class Ledger:
    """Every input the load sent, and which were acknowledged when."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    kind_of: dict[str, str] = field(default_factory=dict)  # id -> "report" | "ticket"
    acked: dict[str, float] = field(default_factory=dict)  # id -> when
    kafka_acks: list[float] = field(default_factory=list)
    http_acks: list[tuple[float, str]] = field(default_factory=list)  # (when, server)
    kafka_failures: int = 0
    http_failed_attempts: int = 0
    http_given_up: int = 0
    http_refused: list[str] = field(default_factory=list)
    http_failure_kinds: Counter[str] = field(default_factory=Counter)

    def sent(self, input_id: str, kind: str) -> None:
        with self.lock:
            self.kind_of[input_id] = kind

    def ack(self, input_id: str, *, server: str | None = None) -> None:
        now = time.monotonic()
        with self.lock:
            self.acked[input_id] = now
            if server is None:
                self.kafka_acks.append(now)
            else:
                self.http_acks.append((now, server))

    def rates(self, start: float, end: float) -> tuple[float, float]:
        span = max(end - start, 1e-9)
        with self.lock:
            kafka = sum(1 for t in self.kafka_acks if start <= t < end)
            http = sum(1 for t, _ in self.http_acks if start <= t < end)
        return kafka / span, http / span


def longest_gap(times: list[float], start: float, end: float) -> float:
    """The longest stretch of [start, end] without one of `times` (an acknowledgement)."""
    moments = [start, *sorted(t for t in times if start <= t <= end), end]
    return max(b - a for a, b in itertools.pairwise(moments))


class Load:
    """Kafka producer and HTTP clients at steady rates; `paused` holds both."""

    def __init__(self, ledger: Ledger, bootstrap: str, topics: Any, servers: list[str],
                 tokens: dict[str, str], points: list[Any], kafka_rate: float,
                 http_rate: float) -> None:
        self.ledger = ledger
        self.bootstrap = bootstrap
        self.topics = topics
        self.servers = servers
        self.tokens = tokens
        self.points = points
        self.kafka_rate = kafka_rate
        self.http_rate = http_rate
        self.running = threading.Event()
        self.stopped = threading.Event()
        self.in_flight = 0
        self._in_flight_lock = threading.Lock()
        self._threads = [threading.Thread(target=self._kafka, name="kafka-load", daemon=True),
                         threading.Thread(target=self._http, name="http-load", daemon=True)]
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="http")

    def start(self) -> None:
        self.running.set()
        for thread in self._threads:
            thread.start()

    def pause(self) -> None:
        """Stop sending, and wait until every HTTP command is answered or given up."""
        self.running.clear()
        time.sleep(0.5)
        wait_until(lambda: self.in_flight == 0, "the HTTP commands in flight", 180)

    def resume(self) -> None:
        self.running.set()

    def stop(self) -> None:
        self.stopped.set()
        self.running.set()
        for thread in self._threads:
            thread.join(30)
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _kafka(self) -> None:
        from kafka import KafkaProducer

        from cityops.domain.actors import Actor, Role
        from cityops.ingest import messages
        from cityops.ingest.topics import IngestStream

        inspector = Actor("inspector-faults", Role.INSPECTOR)
        operator = Actor("operator-faults", Role.HOTLINE_OPERATOR)
        producer = KafkaProducer(bootstrap_servers=self.bootstrap, acks="all", linger_ms=5,
                                 retries=5, request_timeout_ms=10_000, max_block_ms=5_000,
                                 reconnect_backoff_max_ms=1_000)
        number = 0
        next_at = time.monotonic()
        while not self.stopped.is_set():
            if not self.running.is_set():
                self.running.wait()
                next_at = time.monotonic()
                continue
            number += 1
            point = self.points[number % len(self.points)]
            if number % 2:
                kind, stream = "report", IngestStream.GRID_CASE_REPORTS
                message = messages.grid_case_report(
                    category=CATEGORIES[number % len(CATEGORIES)],
                    description=f"fault suite report {number}", location=point,
                    actor=inspector)
            else:
                kind, stream = "ticket", IngestStream.HOTLINE_TICKETS
                message = messages.hotline_ticket(
                    channel="phone", ticket_type="complaint",
                    topic=HOTLINE_TOPICS[number % len(HOTLINE_TOPICS)],
                    description=f"fault suite call {number}", location=point,
                    actor=operator)
            message_id = str(message["message_id"])
            self.ledger.sent(message_id, kind)
            try:
                future = producer.send(self.topics.name(stream), value=messages.encode(message),
                                       key=messages.key_of(message).encode())
                future.add_callback(lambda _meta, mid=message_id: self.ledger.ack(mid))
                future.add_errback(lambda _error: self._kafka_failed())
            except Exception:  # broker away longer than max_block_ms: not acknowledged
                self._kafka_failed()
            next_at += 1 / self.kafka_rate
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif delay < -2:
                next_at = time.monotonic()  # a stall is not made up for with a burst
            if not self.running.is_set():
                with suppress(Exception):
                    producer.flush(30)
        with suppress(Exception):
            producer.flush(30)
        producer.close(10)

    def _kafka_failed(self) -> None:
        with self.ledger.lock:
            self.ledger.kafka_failures += 1

    def _http(self) -> None:
        number = 0
        next_at = time.monotonic()
        while not self.stopped.is_set():
            if not self.running.is_set():
                self.running.wait()
                next_at = time.monotonic()
                continue
            number += 1
            with self._in_flight_lock:
                self.in_flight += 1
            self._pool.submit(self._command, number)
            next_at += 1 / self.http_rate
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif delay < -2:
                next_at = time.monotonic()

    def _command(self, number: int) -> None:
        try:
            self._command_with_retries(number)
        finally:
            with self._in_flight_lock:
                self.in_flight -= 1

    def _command_with_retries(self, number: int) -> None:
        point = self.points[(number * 7) % len(self.points)]
        location = {"type": "Point", "coordinates": [point.lon, point.lat]}
        key = f"faults-http-{uuid.uuid4()}"
        if number % 2:
            kind, path, user = "report", "/grid-cases", INSPECTOR_USER
            body: dict[str, Any] = {"category": CATEGORIES[number % len(CATEGORIES)],
                                    "description": f"fault suite HTTP report {number}",
                                    "location": location}
        else:
            kind, path, user = "ticket", "/hotline-tickets", OPERATOR_USER
            body = {"channel": "phone", "ticket_type": "complaint",
                    "topic": HOTLINE_TOPICS[number % len(HOTLINE_TOPICS)],
                    "description": f"fault suite HTTP call {number}", "location": location}
        # The server scopes a key to the user who sends it: its receipt is under that id.
        input_id = http_command_id(user, "inspector" if kind == "report" else "hotline-operator",
                                   key)
        self.ledger.sent(input_id, kind)
        headers = {"Authorization": f"Bearer {self.tokens[user]}", "Idempotency-Key": key}
        deadline = time.monotonic() + 120
        attempt = 0
        while time.monotonic() < deadline and not self.stopped.is_set():
            server = self.servers[(number + attempt) % len(self.servers)]
            attempt += 1
            try:
                answer = httpx.post(f"{server}{path}", json=body, headers=headers, timeout=15)
            except httpx.HTTPError:
                answer = None
            if answer is not None and 200 <= answer.status_code < 300:
                self.ledger.ack(input_id, server=server)
                return
            if answer is not None and 400 <= answer.status_code < 500 \
                    and answer.status_code not in (408, 409, 429):
                with self.ledger.lock:
                    self.ledger.http_refused.append(f"{answer.status_code} {answer.text[:200]}")
                return
            with self.ledger.lock:
                self.ledger.http_failed_attempts += 1
                self.ledger.http_failure_kinds[
                    str(answer.status_code) if answer is not None else "no answer"] += 1
            time.sleep(0.5)
        with self.ledger.lock:
            self.ledger.http_given_up += 1


class IdleWebSocket:
    """A dashboard that connects to /ws, says hello, and then reads nothing."""

    def __init__(self, server: str, token: str) -> None:
        from websockets.sync.client import connect

        url = server.replace("http://", "ws://") + "/ws"
        self.connection = connect(url, open_timeout=15, max_size=None)
        self.connection.send(json.dumps({
            "type": "hello", "token": token, "resume": None,
            "subscribe": {"layers": ["grid-cases", "hotline-tickets"], "bbox": None,
                          "categories": None, "levels": None, "department": None}}))

    def drain(self) -> str:
        """Read what queued up; how the server treated the client."""
        frames = 0
        resync = False
        deadline = time.monotonic() + 5  # the load goes on: frames keep coming
        try:
            while time.monotonic() < deadline:
                frame = self.connection.recv(timeout=max(deadline - time.monotonic(), 0.01))
                frames += 1
                if '"resync"' in str(frame)[:200]:
                    resync = True
        except TimeoutError:
            pass
        except Exception as error:  # closed by the server
            return f"closed by the server after {frames} frames ({type(error).__name__})"
        finally:
            with suppress(Exception):
                self.connection.close()
        return f"{frames} queued frames read" + (", told to resync" if resync else "")


# --- the plant ----------------------------------------------------------------------------


@dataclass
class FaultResult:
    fault: str
    kafka_rate: float
    http_rate: float
    recovery_s: float | None
    ok: bool
    detail: str
    acked_total: int = 0
    checks: dict[str, Any] = field(default_factory=dict)


class Plant:
    def __init__(self, args: argparse.Namespace, root: Path, database_url: str,
                 bootstrap: str, pg: PrivatePostgres | None, kafka: PrivateKafka | None
                 ) -> None:
        from cityops.bootstrap import build_system
        from cityops.ingest.composition import ingest_store
        from cityops.ingest.counters import CounterTable
        from cityops.ingest.topics import Topics, create_topics
        from cityops.ingest.tracks import ResourceTracks
        from cityops.settings import Settings

        self.args = args
        self.root = root
        self.database_url = database_url
        self.bootstrap = bootstrap
        self.pg = pg
        self.kafka = kafka
        tag = uuid.uuid4().hex[:8]
        self.namespace = f"cityops-faults-{tag}"
        self.topics = Topics(self.namespace)
        self.group = f"{self.namespace}-workers"
        self.feed_prefix = f"cityops-faults-{tag}.feed"
        self.transactional_id = f"cityops-faults-{tag}-feeds"
        self.data_dir = root / "data"
        create_topics(bootstrap, self.topics)
        log("creating the stores and accounts")
        # Every table exists before the processes start (two processes creating the same
        # PostgreSQL table at once collide).
        self.system = build_system(Settings(database_url=database_url,
                                            data_dir=self.data_dir, run_projections=False))
        store = ingest_store(self.system)
        ResourceTracks(store).create_table()
        CounterTable(store)
        from cityops.feeds.service import build_feed_service

        # The feeds' subscription store and outbox tables too: `serve` and `feeds run` both
        # create them, and on an empty database two processes starting at once can collide
        # ("tuple concurrently updated"; the supervisor heals it with a restart, but a
        # deployment runs a set-up step first, as here).
        build_feed_service(self.system).close()
        from cityops.domain.actors import Actor, Role
        from cityops.domain.geometry import GeoPoint

        admin = Actor("faults-admin", Role.ADMIN)
        self.system.accounts.handle(
            AddUser(username=INSPECTOR_USER, role="inspector", password=PASSWORD),
            CommandContext(actor=admin))
        self.system.accounts.handle(
            AddUser(username=OPERATOR_USER, role="hotline-operator", password=PASSWORD),
            CommandContext(actor=admin))
        cells = self.system.city.map.cells.geometry
        self.points = [GeoPoint(lon=float(p.x), lat=float(p.y))
                       for p in cells.iloc[::13].representative_point()]
        self.supervisor = Supervisor()
        self.api_ports = [free_port(), free_port()]
        self.servers = [f"http://127.0.0.1:{port}" for port in self.api_ports]
        self.ledger = Ledger()
        self.load: Load | None = None
        self.results: list[FaultResult] = []
        self._caught_up_target: dict[str, int] | None = None
        self._milestones: dict[str, float] = {}
        self.slow_ws_outcome = ""

    def env(self, **extra: str) -> dict[str, str]:
        return {**os.environ,
                "CITYOPS_DATABASE_URL": self.database_url,
                "CITYOPS_DATA_DIR": str(self.data_dir),
                "CITYOPS_KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
                "CITYOPS_RUN_PROJECTIONS": "false",
                "CITYOPS_DATABASE_POOL_SIZE": "3",
                "CITYOPS_INGEST_TOPIC_NAMESPACE": self.namespace,
                "CITYOPS_INGEST_GROUP_ID": self.group,
                "CITYOPS_INGEST_SESSION_TIMEOUT_MS": "6000",
                "CITYOPS_FEEDS_TOPIC_PREFIX": self.feed_prefix,
                "CITYOPS_FEEDS_TRANSACTIONAL_ID": self.transactional_id,
                "CITYOPS_FEEDS_RESTART_DELAY_S": "1",
                **extra}

    def start_processes(self) -> None:
        python = sys.executable
        cli = [python, "-m", "cityops.cli"]
        logs = self.root / "logs"
        logs.mkdir(exist_ok=True)
        specs = [
            ("ingest-1", [python, "-m", "cityops.ingest", "run"], self.env()),
            ("ingest-2", [python, "-m", "cityops.ingest", "run"], self.env()),
            ("projections", [*cli, "projections", "run"],
             self.env(CITYOPS_RUN_PROJECTIONS="true")),
            ("feeds", [*cli, "feeds", "run"], self.env()),
        ] + [(f"api-{n + 1}", [*cli, "serve", "--port", str(port)],
              # A small queue, so that an idle /ws client reaches the resync path sooner
              # (socket buffers absorb a good deal first: the suite reports what it saw).
              self.env(CITYOPS_WS_CLIENT_QUEUE="200"))
             for n, port in enumerate(self.api_ports)]
        for name, argv, env in specs:
            self.supervisor.add(Service(name, argv, env, logs / f"{name}.log"))
        self.supervisor.start()
        for server in self.servers:
            wait_until(functools.partial(answers, server), f"{server} to answer", 180, 0.5)
        log("all six processes are up")

    def login(self) -> dict[str, str]:
        tokens = {}
        for user in (INSPECTOR_USER, OPERATOR_USER):
            answer = httpx.post(f"{self.servers[0]}/auth/login",
                                json={"username": user, "password": PASSWORD}, timeout=30)
            answer.raise_for_status()
            tokens[user] = str(answer.json()["access_token"])
        return tokens

    # --- observation ----------------------------------------------------------------------

    def query(self, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database_url, connect_timeout=5) as connection:
            return connection.execute(statement, params).fetchall()

    def event_tables(self) -> list[str]:
        return [row[0] for row in self.query(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' "
            "AND table_name LIKE '%%\\_events'")]

    def receipt_ids(self) -> Counter[str]:
        ids: Counter[str] = Counter()
        for table in self.event_tables():
            for (originator,) in self.query(
                    sql.SQL("SELECT originator_id FROM {} WHERE topic = %s").format(
                        sql.Identifier(table)).as_string(None), (RECEIPT_TOPIC,)):
                ids[str(originator)] += 1
        return ids

    def count_topic(self, topic: str) -> int:
        return sum(int(self.query(sql.SQL("SELECT count(*) FROM {} WHERE topic = %s").format(
            sql.Identifier(table)).as_string(None), (topic,))[0][0])
            for table in self.event_tables())

    def has_receipt(self, input_id: str) -> bool:
        from cityops.domain.application import CommandReceipt

        receipt = str(CommandReceipt.create_id(input_id))
        return any(self.query(sql.SQL("SELECT 1 FROM {} WHERE originator_id = %s").format(
            sql.Identifier(table)).as_string(None), (receipt,))
            for table in ("gridcases_events", "hotline_events"))

    def heads(self) -> dict[str, int]:
        return {name: app.recorder.max_notification_id() or 0
                for name, app in self.system.generations.applications.items()}

    def projection_positions(self) -> dict[str, int]:
        generations = self.system.generations
        number = generations.registry.active()
        assert number is not None
        return {p.application: p.position for p in generations.progress_of(number)}

    def feed_lag(self) -> int:
        from cityops.feeds.kafka_feed import FeedTopics, read_published_positions
        from cityops.feeds.streams import STREAMS

        positions = read_published_positions(self.bootstrap, FeedTopics(self.feed_prefix),
                                             self.transactional_id, timeout_s=10)
        lag = 0
        for stream, spec in STREAMS.items():
            app = self.system.generations.applications[spec.application]
            lag += max(0, (app.recorder.max_notification_id() or 0) - positions[stream])
        return lag

    def ingest_lag(self) -> int:
        from cityops.ingest.kafka_worker import group_lag

        return sum(group_lag(self.bootstrap, self.group, self.topics.inputs).values())

    def drained(self) -> bool:
        heads = self.heads()
        positions = self.projection_positions()
        return (self.ingest_lag() == 0
                and all(positions.get(name, 0) >= head for name, head in heads.items())
                and self.feed_lag() == 0)

    # --- faults ---------------------------------------------------------------------------

    def kill(self, name: str) -> Callable[[], None]:
        def inject() -> None:
            service = self.supervisor.services[name]
            log(f"SIGKILL {name} (pid {service.pid})")
            service.signal(signal.SIGKILL)
        return inject

    def kafka_restart(self) -> None:
        assert self.kafka is not None
        log("SIGKILL the Kafka broker, then start it again")
        self.kafka.kill()
        time.sleep(2)
        self.kafka.start()

    def pg_restart(self) -> None:
        assert self.pg is not None
        log("pg_ctl restart -m immediate")
        self.pg.restart_immediate()

    def store_read_only(self, seconds: float) -> Callable[[], None]:
        def inject() -> None:
            log(f"the event store refuses writes for {seconds:g} s")
            self._event_store_writes(grant=False)
            try:
                time.sleep(seconds)
            finally:
                self._event_store_writes(grant=True)
        return inject

    def _event_store_writes(self, *, grant: bool) -> None:
        """Revoke (or give back) the app role's right to write the event store's tables
        (schema public: events, receipts, offsets, tracks, counters). The role owns the
        tables, and an owner may revoke its own privileges: every session sees the change
        at its next statement, as with a disk that filled up. Read models (their own
        schemas) stay writable: a full disk would be the event store's volume."""
        role = urlsplit(self.database_url).username or "cityops"
        action = "GRANT {} ON ALL TABLES IN SCHEMA public TO {}" if grant else \
            "REVOKE {} ON ALL TABLES IN SCHEMA public FROM {}"
        statement = sql.SQL(action).format(sql.SQL("INSERT, UPDATE, DELETE, TRUNCATE"),
                                           sql.Identifier(role))
        deadline = time.monotonic() + 60
        while True:
            try:
                with psycopg.connect(self.database_url, autocommit=True,
                                     connect_timeout=5) as connection:
                    connection.execute(statement)
                return
            except psycopg.Error:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def slow_consumer(self, seconds: float, tokens: dict[str, str]) -> Callable[[], None]:
        def inject() -> None:
            worker = self.supervisor.services["ingest-2"]
            log(f"SIGSTOP ingest-2 (pid {worker.pid}) and an idle /ws client for {seconds:g} s")
            client = IdleWebSocket(self.servers[0], tokens[INSPECTOR_USER])
            worker.signal(signal.SIGSTOP)
            try:
                time.sleep(seconds)
            finally:
                worker.signal(signal.SIGCONT)
                self.slow_ws_outcome = client.drain()
                log(f"the idle /ws client: {self.slow_ws_outcome}")
        return inject

    def injector(self, fault: str, tokens: dict[str, str]) -> Callable[[], None]:
        window = 6.0 if self.args.quick else 12.0
        return {
            "kill-ingest": self.kill("ingest-1"),
            "kill-api": self.kill("api-1"),
            "kill-projections": self.kill("projections"),
            "kill-feeds": self.kill("feeds"),
            "kafka-restart": self.kafka_restart,
            "pg-restart": self.pg_restart,
            "store-read-only": self.store_read_only(window),
            "slow-consumer": self.slow_consumer(window + 8, tokens),
        }[fault]

    # --- one fault, measured and checked --------------------------------------------------

    def recovered(self, since: float) -> bool:
        """An input acknowledged after `since` went through ingest, both API servers took a
        command after it, and the projections and feed caught up with the store as it was
        then."""
        with self.ledger.lock:
            kafka_after = [i for i, t in self.ledger.acked.items()
                           if t > since and not is_http_input(i)]
            servers = {s for t, s in self.ledger.http_acks if t > since}
        now = round(time.monotonic() - since, 1)
        if kafka_after and self.has_receipt(kafka_after[0]):
            self._milestones.setdefault("ingest_s", now)
        if servers == set(self.servers):
            self._milestones.setdefault("api_s", now)
        if len(self._milestones) < 2:
            return False
        if self._caught_up_target is None:
            self._caught_up_target = self.heads()
        positions = self.projection_positions()
        if any(positions.get(n, 0) < h for n, h in self._caught_up_target.items()):
            return False
        self._milestones.setdefault("projections_s", now)
        if not self.feed_lag_against(self._caught_up_target):
            return False
        self._milestones.setdefault("feed_s", now)
        return True

    def feed_lag_against(self, heads: dict[str, int]) -> bool:
        from cityops.feeds.kafka_feed import FeedTopics, read_published_positions
        from cityops.feeds.streams import STREAMS

        positions = read_published_positions(self.bootstrap, FeedTopics(self.feed_prefix),
                                             self.transactional_id, timeout_s=10)
        return all(positions[stream] >= heads.get(spec.application, 0)
                   for stream, spec in STREAMS.items())

    def run_fault(self, fault: str, tokens: dict[str, str]) -> FaultResult:
        assert self.load is not None
        log(f"--- {fault}")
        self.load.resume()
        warm = 4.0 if self.args.quick else 8.0
        time.sleep(warm)
        fault_start = time.monotonic()
        self.injector(fault, tokens)()
        fault_end = time.monotonic()
        self._caught_up_target = None
        self._milestones = {}
        recovery: float | None
        try:
            waited = wait_until(lambda: self.recovered(fault_end), "recovery",
                                self.args.recovery_timeout, 0.25)
            recovery = round(waited, 1)
            log(f"{fault}: recovered {recovery} s after the fault")
        except TimeoutError:
            recovery = None
            log(f"{fault}: NOT recovered within {self.args.recovery_timeout} s")
        time.sleep(3.0)
        load_end = time.monotonic()
        kafka_rate, http_rate = self.ledger.rates(fault_start - warm, load_end)
        with self.ledger.lock:
            kafka_gap = longest_gap(self.ledger.kafka_acks, fault_start, load_end)
            http_gap = longest_gap([t for t, _ in self.ledger.http_acks], fault_start,
                                   load_end)
        self.load.pause()
        checks = self.check(fault)
        # The longest time without an acknowledged input: how long the service, not the
        # faulty process, was away (HTTP clients retry on the other API server).
        checks.update(kafka_ack_gap_s=round(kafka_gap, 1), http_ack_gap_s=round(http_gap, 1),
                      recovered=dict(self._milestones))
        problems = [f"{k}: {v}" for k, v in checks.items() if k.startswith("problem")]
        ok = recovery is not None and not problems
        result = FaultResult(fault, round(kafka_rate, 1), round(http_rate, 1), recovery, ok,
                             "; ".join(problems) or "ok", len(self.ledger.acked), checks)
        if fault == "slow-consumer":
            result.checks["idle_ws_client"] = self.slow_ws_outcome
        log(f"{fault}: {'PASS' if ok else 'FAIL'} ({result.detail}) {json.dumps(checks)}")
        self.results.append(result)
        return result

    def check(self, fault: str) -> dict[str, Any]:
        from cityops.domain.application import CommandReceipt

        checks: dict[str, Any] = {}
        try:
            checks["drain_s"] = round(wait_until(self.drained, "the pipeline to drain",
                                                 self.args.recovery_timeout, 0.5), 1)
        except TimeoutError as error:
            checks["problem_drain"] = str(error)
        with self.ledger.lock:
            acked = dict(self.ledger.acked)
            kind_of = dict(self.ledger.kind_of)
            checks["http_refused"] = list(self.ledger.http_refused)
            checks["http_failed_attempts"] = dict(self.ledger.http_failure_kinds)
            self.ledger.http_failure_kinds.clear()
        if checks["http_refused"]:
            checks["problem_refused"] = f"{len(checks['http_refused'])} commands refused"
        receipts = self.receipt_ids()
        ours = {str(CommandReceipt.create_id(i)): kind for i, kind in kind_of.items()}
        missing = [i for i in acked if str(CommandReceipt.create_id(i)) not in receipts]
        doubled = [r for r, n in receipts.items() if n > 1]
        strangers = [r for r in receipts if r not in ours]
        reports = sum(1 for r in receipts if ours.get(r) == "report")
        tickets = sum(1 for r in receipts if ours.get(r) == "ticket")
        reported = self.count_topic(REPORTED_TOPIC)
        received = self.count_topic(RECEIVED_TOPIC)
        checks.update(acknowledged=len(acked), sent=len(kind_of), receipts=len(receipts),
                      cases_reported=reported, tickets_received=received)
        if missing:
            checks["problem_lost"] = f"{len(missing)} acknowledged inputs missing: " \
                                     f"{missing[:3]}"
        if doubled or strangers:
            checks["problem_receipts"] = f"{len(doubled)} doubled, {len(strangers)} unknown"
        if reported != reports or received != tickets:
            checks["problem_duplicates"] = (
                f"{reported} cases for {reports} report receipts, {received} tickets for "
                f"{tickets} ticket receipts")
        try:
            checks.update(self.compare_read_models())
        except Exception as error:
            checks["problem_read_models"] = f"{type(error).__name__}: {error}"
        try:
            checks.update(self.check_feed())
        except Exception as error:
            checks["problem_feed"] = f"{type(error).__name__}: {error}"
        return checks

    def compare_read_models(self) -> dict[str, Any]:
        """Rebuild every read model into a new generation from the event store and compare
        it, table by table, row by row, with the generation that lived through the fault."""
        from cityops.projections.generations import rebuild

        generations = self.system.generations
        lived = generations.registry.active()
        assert lived is not None
        started = time.monotonic()
        result = rebuild(generations)
        rebuilt_s = time.monotonic() - started
        old = all_rows(generations, lived)
        new = all_rows(generations, result.generation)
        differing = sorted(t for t in set(old) | set(new) if old.get(t) != new.get(t))
        rows = sum(len(v) for v in old.values())
        out: dict[str, Any] = {"read_model_rows": rows, "rebuild_s": round(rebuilt_s, 1),
                               "generation": result.generation}
        if differing:
            detail = []
            for table in differing[:3]:
                a, b = set(old.get(table, [])), set(new.get(table, []))
                detail.append(f"{table}: {len(a - b)} rows only in the live generation, "
                              f"{len(b - a)} only in the rebuild; e.g. "
                              f"{sorted(a - b, key=repr)[:1]} / {sorted(b - a, key=repr)[:1]}")
            out["problem_read_models"] = "; ".join(detail)
        with suppress(Exception):
            generations.drop(lived)
        return out

    def check_feed(self) -> dict[str, Any]:
        from kafka import KafkaConsumer, TopicPartition

        from cityops.feeds.kafka_feed import FeedTopics
        from cityops.feeds.streams import Stream

        topics = FeedTopics(self.feed_prefix)
        names = [topics.stream(Stream.GRID_CASES), topics.stream(Stream.HOTLINE)]
        consumer = KafkaConsumer(bootstrap_servers=self.bootstrap,
                                 isolation_level="read_committed", enable_auto_commit=False,
                                 group_id=None)
        seen: Counter[str] = Counter()
        try:
            partitions = [TopicPartition(t, p) for t in names
                          for p in consumer.partitions_for_topic(t) or []]
            consumer.assign(partitions)
            consumer.seek_to_beginning(*partitions)
            ends = consumer.end_offsets(partitions)
            deadline = time.monotonic() + 60
            while any(consumer.position(tp) < ends[tp] for tp in partitions):
                if time.monotonic() > deadline:
                    raise TimeoutError("the feed topics could not be read to their end")
                for records in consumer.poll(timeout_ms=500).values():
                    for record in records:
                        event_id = dict(record.headers).get("cityops-event-id", b"").decode()
                        seen[event_id] += 1
        finally:
            consumer.close()
        doubled = [e for e, n in seen.items() if n > 1]
        out: dict[str, Any] = {"feed_events": len(seen)}
        if doubled:
            out["problem_feed_duplicates"] = f"{len(doubled)} events published twice"
        return out


def all_rows(generations: Any, number: int) -> dict[str, list[Any]]:
    """Every row of every read-model table of generation `number`, caught up first (as
    tests/integration/test_rebuild_generations.py compares generations)."""
    generation = generations.open(number, live=False)
    try:
        generation.catch_up()
        rows: dict[str, list[Any]] = {}
        with generation.store.transaction() as txn:
            for group in generations.tables.values():
                for table in group:
                    txn.execute(f"SELECT * FROM {table.table}")
                    rows[table.table] = sorted(
                        (tuple(json.dumps(v, sort_keys=True, default=str)
                               if isinstance(v, dict | list) else v for v in row)
                         for row in txn.fetchall()), key=repr)
        return rows
    finally:
        generation.close()


# --- the command --------------------------------------------------------------------------


def load_average() -> tuple[float, float, float]:
    return os.getloadavg()


def report_table(results: list[FaultResult]) -> str:
    lines = ["| fault | Kafka msgs/s acked | HTTP commands/s acked | longest ack gap "
             "Kafka / HTTP (s) | recovery (s) | result |",
             "|---|---:|---:|---:|---:|---|"]
    for r in results:
        recovery = f"{r.recovery_s:.1f}" if r.recovery_s is not None else "not recovered"
        gaps = f"{r.checks.get('kafka_ack_gap_s', '-')} / {r.checks.get('http_ack_gap_s', '-')}"
        lines.append(f"| {r.fault} | {r.kafka_rate:.1f} | {r.http_rate:.1f} | {gaps} | "
                     f"{recovery} | "
                     f"{'pass' if r.ok else 'FAIL: ' + r.detail} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="small load and three faults (what CI runs)")
    parser.add_argument("--faults", help=f"comma-separated subset of {', '.join(ALL_FAULTS)}")
    parser.add_argument("--kafka-rate", type=float, help="Kafka messages per second")
    parser.add_argument("--http-rate", type=float, help="HTTP commands per second")
    parser.add_argument("--recovery-timeout", type=float, default=180.0)
    parser.add_argument("--postgres-url", help="use this server (its own database in it)")
    parser.add_argument("--kafka-bootstrap", help="use this broker (own topics and group)")
    parser.add_argument("--kafka-libs", type=Path, default=default_kafka_libs(),
                        help="jars for the private broker (default: %(default)s)")
    parser.add_argument("--json", type=Path, help="write the results here as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    import summary  # bench/summary.py (bench/ is on the path when run)

    summary.add_option(parser)
    args = parser.parse_args(argv)
    if args.faults:
        args.fault_list = [f.strip() for f in args.faults.split(",") if f.strip()]
        unknown = set(args.fault_list) - set(ALL_FAULTS)
        if unknown:
            parser.error(f"unknown faults: {sorted(unknown)}")
    else:
        args.fault_list = list(QUICK_FAULTS if args.quick else ALL_FAULTS)
    if args.kafka_rate is None:
        args.kafka_rate = 12.0 if args.quick else 30.0
    if args.http_rate is None:
        args.http_rate = 3.0 if args.quick else 6.0
    if args.postgres_url and "pg-restart" in args.fault_list:
        parser.error("pg-restart restarts PostgreSQL: it needs the suite's own cluster "
                     "(leave out --postgres-url)")
    if args.kafka_bootstrap and "kafka-restart" in args.fault_list:
        parser.error("kafka-restart restarts the broker: it needs the suite's own broker "
                     "(leave out --kafka-bootstrap)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Short: the PostgreSQL socket path is limited to 107 bytes. World-readable: as root,
    # the cluster runs as the `postgres` user.
    root = Path(tempfile.mkdtemp(prefix="cofs-", dir="/tmp"))
    root.chmod(0o755)
    pg = None if args.postgres_url else PrivatePostgres(root)
    kafka = None if args.kafka_bootstrap else PrivateKafka(root, args.kafka_libs)
    plant: Plant | None = None
    started = time.monotonic()
    loads: list[tuple[float, float, float]] = [load_average()]
    try:
        log(f"working directory {root}")
        server = args.postgres_url
        if pg is not None:
            log(f"starting a private PostgreSQL on port {pg.port}")
            server = pg.start()
        bootstrap = args.kafka_bootstrap
        if kafka is not None:
            log(f"starting a private Kafka broker on port {kafka.port}")
            bootstrap = kafka.start()
        assert server is not None and bootstrap is not None
        with own_database(server) as database_url:
            plant = Plant(args, root, database_url, bootstrap, pg, kafka)
            try:
                plant.start_processes()
                tokens = plant.login()
                plant.load = Load(plant.ledger, bootstrap, plant.topics, plant.servers,
                                  tokens, plant.points, args.kafka_rate, args.http_rate)
                plant.load.start()
                for fault in args.fault_list:
                    plant.run_fault(fault, tokens)
                    loads.append(load_average())
            finally:
                if plant.load is not None:
                    plant.load.stop()
                plant.supervisor.stop()
                plant.system.close()
                with suppress(Exception):
                    from cityops.ingest.topics import delete_topics

                    delete_topics(bootstrap, plant.topics)
    finally:
        if kafka is not None:
            kafka.stop()
        if pg is not None:
            pg.stop()
        if not args.keep and plant is not None and all(r.ok for r in plant.results):
            shutil.rmtree(root, ignore_errors=True)
        else:
            log(f"logs kept in {root}")
    results = plant.results if plant is not None else []
    elapsed = time.monotonic() - started
    print()
    print(report_table(results))
    print(f"\n{len(results)} faults, {sum(r.ok for r in results)} survived, "
          f"{plant.ledger.acked.__len__() if plant else 0} inputs acknowledged, "
          f"{elapsed:.0f} s; load average (1 min) during the run: "
          f"{', '.join(f'{la[0]:.1f}' for la in loads)}")
    if args.json:
        args.json.write_text(json.dumps({
            "results": [r.__dict__ for r in results], "elapsed_s": round(elapsed),
            "load_average": loads, "kafka_rate_target": args.kafka_rate,
            "http_rate_target": args.http_rate}, indent=2, default=str))
    import summary

    summary.write(args.summary, "fault_suite.py", [summary.Row(
        name=r.fault, baseline=f"load {r.kafka_rate:.1f} Kafka + {r.http_rate:.1f} HTTP/s acked",
        figure=(f"recovered in {r.recovery_s:.1f} s" if r.recovery_s is not None
                else "not recovered"), target="every input exactly once", met=r.ok)
        for r in results])
    return 0 if results and len(results) == len(args.fault_list) and all(
        r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
