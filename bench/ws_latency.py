"""Live push latency: from a grid-case report entering the system to its `change` message
arriving in every connected WebSocket client (p50, p99), at a steady rate with 1, 100 and
500 clients, against a bare WebSocket broadcast measured in the same run.

The system under test is a real `cityops serve` process on a free port, on a fresh store for
each client count (embedded SQLite; with `--postgres` a scratch PostgreSQL database, the API
process with `CITYOPS_RUN_PROJECTIONS=false` and a separate `cityops projections run`; with
`--push-process` the clients connect to a second API process, the reports to the first).
Reports enter the way an inspector's field page sends them: `POST /grid-cases` with a bearer
token (with `--kafka`, the way outside systems send them: a `grid-case-reports` message on
the ingest topic, applied by a `cityops ingest run` worker). The producer writes the report's
sequence number and its time of entry (the wall-clock time its turn came in the schedule)
into the description; each client finds them in the `change` message's feature and
subtracts them from its own clock (same machine, same clock).

The baseline is the least any push can cost on this machine with these clients: a minimal
`websockets` server (uvloop, like uvicorn here) that takes the same hello, then broadcasts
each message to all its clients the moment it is due, at the same rate, with a message of
the same shape and size as the system's (a real case document, stamped the same way). Its
latency is the clients' own overhead plus the kernel's, on the same two cores. With
`--batched-baseline MS` it runs once more sending the changes of each MS-ms tick as one frame
(not part of the /ws protocol: it shows what fewer, larger frames would buy).

Clients are sans-I/O `websockets` connections on bare asyncio protocols spread over a few
processes (uvloop), each subscribed to every map layer with no filter (a duty officer's
dashboard), so that each report is one message to every client: 200 reports/s to 500 clients
is 100,000 messages/s leaving the server. Every report is stamped with when it was due (open
loop), so a producer or server that falls behind is charged for it. The run waits (up to
`--drain` s) until every client has every report; what has not arrived by then is lost.
CPU of every process (from /proc) and of the whole machine is measured over the window.

Usage:

    python bench/ws_latency.py                             # 1, 100, 500 clients, 200/s, 20 s
    python bench/ws_latency.py --rate 50 --batched-baseline 50
    python bench/ws_latency.py --batch-ms 50               # clients ask for batched frames
    python bench/ws_latency.py --clients 500 --compression deflate   # as browsers offer
    python bench/ws_latency.py --postgres [URL] [--push-process]     # PostgreSQL topology
    python bench/ws_latency.py --kafka                     # reports through Kafka ingest
    python bench/ws_latency.py --clients 500 --profile     # py-spy on the serve process
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import multiprocessing as mp
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cityops.domain.accounts.commands import AddUser
from cityops.domain.commands import CommandContext
from cityops.domain.gridcases.commands import ReportCase

REPO_ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["incidents", "grid-cases", "hazard-sources", "resources", "hotline-tickets"]
SUBSCRIBE_ALL = {"layers": LAYERS, "bbox": None, "categories": None, "levels": None,
                 "department": None}
STAMP = re.compile(rb"wsbench (\d+) (\d+)")
# The first "type" of a message is the message's own (the feature's comes later).
MESSAGE_TYPE = re.compile(rb'"type"\s*:\s*"([a-z_]+)"')
CATEGORY = "E0101"
CLOCK_TICK = os.sysconf("SC_CLK_TCK")
CONNECT_CONCURRENCY = 20


def stamp(seq: int, entered_ns: int) -> str:
    """The mark a report carries in its description: its number and its time of entry."""
    return f"wsbench {seq} {entered_ns}"


# -- clients ------------------------------------------------------------------------------

@dataclass(frozen=True)
class ClientSpec:
    """What one client process does: how many connections to which server, as whom."""

    url: str
    token: str
    connections: int
    capacity: int
    compression: str | None
    out: Path
    batch_ms: int = 0
    """Asked for in the hello: the server's batched `changes` frames (0: one per change)."""


@dataclass
class ClientControl:
    """Flags shared between the orchestrator and one client process."""

    ready: Any
    stop: Any
    done: Any
    failed: Any
    expected: Any
    """Shared by all client processes: 1 for each report every client must get (set once the
    load is over, with `expecting`)."""
    expecting: Any


def run_client_process(spec: ClientSpec, control: ClientControl) -> None:
    """Entry point of a client process."""
    import uvloop

    uvloop.run(_clients(spec, control))


class DashboardConnection(asyncio.Protocol):
    """One client: a sans-I/O `websockets` client protocol on a bare asyncio protocol, so that
    a message costs its frame parse and two regex searches, not a task wake-up (the clients
    share the two cores with the server: the less they take, the less they distort)."""

    def __init__(self, uri: str, hello: str, row: np.ndarray, counts: Counter[str],
                 compression: str | None) -> None:
        from websockets.client import ClientProtocol
        from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
        from websockets.uri import parse_uri

        extensions = [ClientPerMessageDeflateFactory()] if compression == "deflate" else None
        self.protocol = ClientProtocol(parse_uri(uri), extensions=extensions, max_size=None)
        self.hello = hello
        self.row = row
        self.counts = counts
        self.expected = ["welcome", "snapshot"]
        self.fragments: list[bytes] = []
        self.subscribed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.stopping = False
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        """Send the opening handshake."""
        self.transport = transport
        self.protocol.send_request(self.protocol.connect())
        self.flush()

    def data_received(self, data: bytes) -> None:
        """Parse what arrived; every message in it is stamped with this moment."""
        from websockets.frames import Frame, Opcode
        from websockets.http11 import Response

        arrived = time.time_ns()
        self.protocol.receive_data(data)
        for event in self.protocol.events_received():
            if isinstance(event, Response):
                if self.protocol.handshake_exc is not None:
                    self.fail(f"handshake refused: {self.protocol.handshake_exc}")
                    return
                self.protocol.send_text(self.hello.encode())
            elif isinstance(event, Frame) and event.opcode in (Opcode.TEXT, Opcode.CONT):
                self.fragments.append(bytes(event.data))
                if event.fin:
                    self.message(b"".join(self.fragments), arrived)
                    self.fragments.clear()
            elif isinstance(event, Frame) and event.opcode is Opcode.CLOSE \
                    and not self.stopping:
                self.counts[f"closed by the server ({self.protocol.close_rcvd})"] += 1
        self.flush()

    def message(self, raw: bytes, arrived: int) -> None:
        """One whole text message: the hello's answers first, then changes."""
        if self.expected:
            reply = json.loads(raw)
            if reply.get("type") != self.expected[0]:
                self.fail(f"expected {self.expected[0]}, got {raw[:300]!r}")
                return
            self.expected.pop(0)
            if not self.expected:
                self.subscribed.set_result(None)
            return
        found = MESSAGE_TYPE.search(raw)
        kind = found.group(1).decode() if found else "?"
        if kind == "change":
            mark = STAMP.search(raw)
            if mark is None:
                self.counts["change (not a bench report)"] += 1
            else:
                self.arrived(mark, arrived)
        elif kind == "changes":  # batched frames (the system's, or the batched baseline's)
            for mark in STAMP.finditer(raw):
                self.arrived(mark, arrived)
        else:
            self.counts[kind] += 1

    def arrived(self, mark: re.Match[bytes], arrived: int) -> None:
        """Record the latency of one report (the first time it comes)."""
        seq = int(mark.group(1))
        if seq >= len(self.row):
            self.counts["change beyond the run"] += 1
        elif math.isnan(self.row[seq]):
            self.row[seq] = (arrived - int(mark.group(2))) / 1e6
        else:
            self.counts["change (repeat of a report)"] += 1

    def fail(self, reason: str) -> None:
        """Give up on this connection before it subscribed."""
        if not self.subscribed.done():
            self.subscribed.set_exception(RuntimeError(reason))
        self.transport.close()

    def flush(self) -> None:
        """Write what the protocol has to send (the hello, pongs, the close)."""
        for data in self.protocol.data_to_send():
            if data:
                self.transport.write(data)
            elif self.transport.can_write_eof():
                self.transport.write_eof()

    def connection_lost(self, exc: Exception | None) -> None:
        """Count a connection the server dropped during the run."""
        if not self.subscribed.done():
            self.subscribed.set_exception(RuntimeError(f"connection lost: {exc}"))
        elif not self.stopping:
            self.counts["connection lost"] += 1

    def close(self) -> None:
        """Close at the end of the run."""
        self.stopping = True
        with contextlib.suppress(Exception):
            self.protocol.send_close(1000)
            self.flush()
        self.transport.close()


async def _clients(spec: ClientSpec, control: ClientControl) -> None:
    from urllib.parse import urlsplit

    latency = np.full((spec.connections, spec.capacity), np.nan, dtype=np.float32)
    counts: Counter[str] = Counter()
    loop = asyncio.get_running_loop()
    stopped = loop.create_future()
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    hello = json.dumps({"type": "hello", "token": spec.token, "subscribe": SUBSCRIBE_ALL,
                        "resume": None, **({"batch_ms": spec.batch_ms} if spec.batch_ms
                                           else {})})
    where = urlsplit(spec.url)

    async def open_one(row: np.ndarray) -> DashboardConnection:
        async with gate:
            _, connection = await loop.create_connection(
                lambda: DashboardConnection(spec.url, hello, row, counts, spec.compression),
                where.hostname, where.port)
            await asyncio.wait_for(connection.subscribed, 120)
            return connection

    awaited: list[np.ndarray] = []

    def completion() -> None:
        # Done when every connection has every report the load entered: a report whose
        # change was recorded late comes after later ones, so the last one is not enough.
        if control.expecting.is_set():
            if not awaited:
                awaited.append(np.flatnonzero(np.frombuffer(control.expected.get_obj(),
                                                            dtype=np.int8)))
            if not np.isnan(latency[:, awaited[0]]).any():
                control.done.value = 1
        if not stopped.done():
            loop.call_later(0.1, completion)

    threading.Thread(target=lambda: (control.stop.wait(),
                                     loop.call_soon_threadsafe(stopped.set_result, None)),
                     daemon=True).start()
    try:
        connections = await asyncio.gather(*(open_one(row) for row in latency))
    except Exception as error:
        spec.out.with_suffix(".json").write_text(json.dumps({"error": repr(error)}))
        control.failed.set()
        raise
    completion()
    control.ready.set()
    await stopped
    for connection in connections:
        connection.close()
    np.save(spec.out.with_suffix(".npy"), latency)
    spec.out.with_suffix(".json").write_text(json.dumps(dict(counts)))


class ClientFleet:
    """The client processes of one run, started together and read back together."""

    def __init__(self, url: str, token: str, clients: int, processes: int, capacity: int,
                 compression: str | None, folder: Path, batch_ms: int = 0) -> None:
        self.processes: list[tuple[Any, ClientControl, ClientSpec]] = []
        context = mp.get_context("spawn")
        self.expected = context.Array("b", capacity)
        self.expecting = context.Event()
        shares = [clients // processes + (1 if i < clients % processes else 0)
                  for i in range(min(processes, clients))]
        for i, share in enumerate(shares):
            control = ClientControl(ready=context.Event(), stop=context.Event(),
                                    done=context.Value("i", 0),
                                    failed=context.Event(), expected=self.expected,
                                    expecting=self.expecting)
            spec = ClientSpec(url, token, share, capacity, compression, folder / f"client-{i}",
                              batch_ms)
            process = context.Process(target=run_client_process, args=(spec, control),
                                      name=f"ws-clients-{i}", daemon=True)
            self.processes.append((process, control, spec))

    def start(self, timeout: float = 300.0) -> None:
        """Start the processes and wait until every connection has its snapshot."""
        for process, _, _ in self.processes:
            process.start()
        deadline = time.monotonic() + timeout
        for process, control, spec in self.processes:
            while not control.ready.wait(0.2):
                if control.failed.is_set() or not process.is_alive():
                    detail = spec.out.with_suffix(".json")
                    raise RuntimeError(f"client process failed to connect: "
                                       f"{detail.read_text() if detail.exists() else '?'}")
                if time.monotonic() > deadline:
                    raise RuntimeError("clients did not connect in time")

    @property
    def pids(self) -> list[int]:
        """The client processes (for their CPU)."""
        return [p.pid for p, _, _ in self.processes if p.pid is not None]

    def wait_for(self, reports: list[int], timeout: float) -> float:
        """Wait until every connection has every one of these reports (or the timeout);
        the seconds it took."""
        for seq in reports:
            self.expected[seq] = 1
        self.expecting.set()
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if all(control.done.value for _, control, _ in self.processes):
                break
            time.sleep(0.05)
        return time.monotonic() - started

    def collect(self) -> tuple[np.ndarray, Counter[str]]:
        """Stop the clients; their latencies (a row per connection) and message counts."""
        for _, control, _ in self.processes:
            control.stop.set()
        rows, counts = [], Counter[str]()
        for process, _, spec in self.processes:
            process.join(60)
            if process.is_alive():
                process.kill()
                raise RuntimeError(f"{process.name} did not stop")
            rows.append(np.load(spec.out.with_suffix(".npy")))
            counts.update(json.loads(spec.out.with_suffix(".json").read_text()))
        return np.vstack(rows), counts

    def close(self) -> None:
        """Stop whatever still runs."""
        for process, control, _ in self.processes:
            control.stop.set()
            process.join(5)
            if process.is_alive():
                process.kill()


# -- the baseline: a bare broadcast ------------------------------------------------------

def run_broadcast_server(port: int, token: str, document: dict[str, Any], rate: float,
                         total: int, batch_ms: float, go: Any, finished: Any) -> None:
    """Entry point of the baseline process: a minimal `websockets` broadcast server."""
    import uvloop

    uvloop.run(_broadcast(port, token, document, rate, total, batch_ms, go, finished))


async def _broadcast(port: int, token: str, document: dict[str, Any], rate: float, total: int,
                     batch_ms: float, go: Any, finished: Any) -> None:
    """Broadcast each change as it is due; with `batch_ms`, the changes due within each
    tick of that many ms go out together, as one `changes` frame (not part of the /ws
    protocol: it shows what fewer, larger frames would buy)."""
    from websockets.asyncio.server import broadcast, serve

    clients: set[Any] = set()
    welcome = json.dumps({"type": "welcome", "user": {"username": "bench"}, "generation": 1})
    snapshot = json.dumps({"type": "snapshot", "generation": 1, "position": 0,
                           "layers": {layer: [] for layer in LAYERS}})

    async def handler(ws: Any) -> None:
        hello = json.loads(await ws.recv())
        if hello.get("type") != "hello" or hello.get("token") != token:
            await ws.close(4401, "unauthenticated")
            return
        await ws.send(welcome)
        await ws.send(snapshot)
        clients.add(ws)
        try:
            await ws.wait_closed()
        finally:
            clients.discard(ws)

    loop = asyncio.get_running_loop()
    started = loop.create_future()
    threading.Thread(target=lambda: (go.wait(), loop.call_soon_threadsafe(
        started.set_result, None)), daemon=True).start()
    async with serve(handler, "127.0.0.1", port, max_size=None, ping_interval=None):
        await started
        origin, origin_ns = time.perf_counter(), time.time_ns()
        held: list[dict[str, Any]] = []
        flush_at = origin + batch_ms / 1000
        for seq in range(total):
            due = origin + seq / rate
            if held and flush_at <= due:
                broadcast(clients, json.dumps({"type": "changes", "changes": held}))
                held = []
                flush_at += batch_ms / 1000 * max(1, math.ceil((due - flush_at) * 1000
                                                                / batch_ms))
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            # Stamped with when it was due, not when this loop got to it: a broadcaster
            # that falls behind its schedule is charged for it (no coordinated omission).
            properties = {**document,
                          "description": stamp(seq, origin_ns + round(seq * 1e9 / rate))}
            change = {"type": "change", "generation": 1, "position": seq + 1,
                      "layer": "grid-cases", "id": document["id"], "events": ["Reported"],
                      "at": document["reported_at"],
                      "feature": {"type": "Feature", "id": document["id"],
                                  "geometry": document["location"], "properties": properties}}
            if batch_ms > 0:
                held.append(change)
            else:
                broadcast(clients, json.dumps(change))
        if held:
            broadcast(clients, json.dumps({"type": "changes", "changes": held}))
        finished.set()
        await asyncio.Event().wait()


# -- measuring ---------------------------------------------------------------------------

def free_port() -> int:
    """A port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of these processes (threads included), from /proc."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / CLOCK_TICK
    return total


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return float(sum(values) - idle), float(sum(values))


@dataclass
class Window:
    """CPU use over the measured window, sampled at its start and end."""

    pids: dict[str, list[int]]
    started: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)
    machine: tuple[float, float] = (0.0, 0.0)
    seconds: float = 0.0
    usage: dict[str, float] = field(default_factory=dict)
    machine_usage: float = 0.0
    load_average: float = 0.0
    """The 1-minute load average at the end of the window (other work on the machine)."""

    def open(self) -> None:
        """Sample at the start of the window."""
        self.started = time.monotonic()
        self.cpu = {name: cpu_seconds(p) for name, p in self.pids.items()}
        self.machine = machine_busy()

    def close(self) -> None:
        """Sample at the end of the window and work out the shares."""
        self.seconds = time.monotonic() - self.started
        self.usage = {name: (cpu_seconds(p) - self.cpu[name]) / self.seconds
                      for name, p in self.pids.items()}
        busy, total = machine_busy()
        self.machine_usage = (busy - self.machine[0]) / max(total - self.machine[1], 1.0)
        self.load_average = os.getloadavg()[0]


@dataclass
class RunResult:
    """What one run (one subject at one client count) measured."""

    subject: str
    clients: int
    rate: float
    window: Window
    latency: np.ndarray
    counts: Counter[str]
    entered: int
    entry_failures: int = 0
    entry_ms: list[float] = field(default_factory=list)
    """How long each measured report's POST took to be answered, from when it was due."""
    late_ms: list[float] = field(default_factory=list)
    """How late the producer sent each measured report (its own lag, charged to latency)."""
    drain_s: float = 0.0
    seqs: list[int] = field(default_factory=list)
    """The report number of each measured column."""

    @property
    def received(self) -> np.ndarray:
        """The latencies of the messages that arrived (ms)."""
        return self.latency[~np.isnan(self.latency)]

    @property
    def lost(self) -> int:
        """Messages that never arrived."""
        return int(np.isnan(self.latency).sum())

    def percentile(self, q: float) -> float:
        """A percentile of the latencies that arrived (ms)."""
        got = self.received
        return float(np.percentile(got, q)) if got.size else math.nan

    def losses(self) -> str:
        """What was lost, told apart: reports no client got, reports some clients missed,
        clients that missed something."""
        missing = np.isnan(self.latency)
        if not missing.any():
            return ""
        per_report = missing.sum(axis=0)
        clients = len(missing)
        nowhere = int((per_report == clients).sum())
        somewhere = int(((per_report > 0) & (per_report < clients)).sum())
        last = "yes" if not missing[:, -1].any() else "no"
        return (f"    lost: {int(missing.sum())} messages; {nowhere} reports reached no client,"
                f" {somewhere} only some; {int(missing.any(axis=1).sum())} of {clients}"
                f" clients missed something; the last report reached every client: {last}"
                f" (waited {self.drain_s:.1f} s after the load); reports that reached no client: "
                f"{[self.seqs[i] for i in np.flatnonzero(per_report == clients)[:10]]}")

    def entry_note(self) -> str:
        """How long the reports took to be accepted (POST answered, from when they were
        due), and how late the producer itself was: the part of the latency before the
        push."""
        if not self.entry_ms:
            return ""
        answered = np.array(self.entry_ms)
        late = np.array(self.late_ms) if self.late_ms else np.zeros(1)
        return (f" | POST answered p50 {np.percentile(answered, 50):.0f} ms"
                f" p99 {np.percentile(answered, 99):.0f} ms"
                f" (producer late p99 {np.percentile(late, 99):.1f} ms)")

    def trend(self, slices: int = 5) -> str:
        """p50 of each successive part of the window: flat when the system keeps up, growing
        when a backlog builds (then the percentiles depend on how long the run is)."""
        parts = np.array_split(self.latency, slices, axis=1)
        medians = [np.nanmedian(part) if (~np.isnan(part)).any() else math.nan
                   for part in parts]
        return "    p50 over the window: " + " -> ".join(f"{m:,.0f}" for m in medians) + " ms"

    def line(self) -> str:
        """The run in one line of output."""
        cpu = ", ".join(f"{name} {use:.0%}" for name, use in self.window.usage.items())
        delivered = self.received.size / self.window.seconds if self.window.seconds else 0
        return (f"  {self.subject:<9} {self.clients:>4} clients: p50 {self.percentile(50):8.1f} ms"
                f"  p99 {self.percentile(99):8.1f} ms  max {np.nanmax(self.latency):8.1f} ms"
                f" | entered {self.entered / self.window.seconds:6.1f}/s,"
                f" delivered {delivered:9,.0f} msg/s, lost {self.lost},"
                f" resyncs {self.counts.get('resync', 0)}"
                f"{self.entry_note()}"
                f" | CPU {cpu}, machine {self.window.machine_usage:.0%} of 2 cores,"
                f" load {self.window.load_average:.1f}")


def sample_document() -> dict[str, Any]:
    """A real grid case document (as the read model and the REST API give it), for the
    baseline's messages: reported once into a throwaway embedded system."""
    from cityops.bootstrap import build_system
    from cityops.domain.actors import Actor, Role
    from cityops.domain.geometry import GeoPoint
    from cityops.settings import Settings

    with tempfile.TemporaryDirectory() as folder:
        system = build_system(Settings(data_dir=Path(folder)))
        try:
            point = report_points(system.city.map.cells, 1)[0]
            case_id = system.grid_cases.handle(
                ReportCase(source="inspector", category=CATEGORY,
                           description=stamp(0, time.time_ns()), location=GeoPoint(*point)),
                CommandContext(actor=Actor("insp-bench", Role.INSPECTOR))).subject
            case = system.grid_cases.case(case_id)
            document = case.summary()
            light = system.grid_cases.light(case)
            document["light"] = light.value if light else None
            return document
        finally:
            system.close()


def report_points(cells: Any, count: int) -> list[tuple[float, float]]:
    """Places to report from, one per cell in turn (so no two reports of a run are close
    enough to be flagged as possible duplicates of each other)."""
    points = [cells.iloc[i].geometry.representative_point() for i in range(len(cells))]
    return [(points[i % len(points)].x, points[i % len(points)].y) for i in range(count)]


def run_baseline(clients: int, args: argparse.Namespace, document: dict[str, Any],
                 folder: Path, batch_ms: float = 0.0) -> RunResult:
    """The bare broadcast with `clients` clients (with `batch_ms`: batched frames)."""
    context = mp.get_context("spawn")
    port = free_port()
    token = uuid.uuid4().hex
    total = int(args.rate * (args.warm_up + args.seconds))
    go, finished = context.Event(), context.Event()
    server = context.Process(target=run_broadcast_server, name="ws-broadcast", daemon=True,
                             args=(port, token, document, args.rate, total, batch_ms, go,
                                   finished))
    server.start()
    wait_for_port(port, 30)
    fleet = ClientFleet(f"ws://127.0.0.1:{port}/ws", token, clients, args.processes, total,
                        args.compression, folder)
    try:
        fleet.start()
        assert server.pid is not None
        window = Window({"server": [server.pid], "clients": fleet.pids})
        go.set()
        time.sleep(args.warm_up)
        window.open()
        finished.wait(args.seconds + 60)
        window.close()
        drain = fleet.wait_for(list(range(total)), args.drain)
        latency, counts = fleet.collect()
    finally:
        fleet.close()
        server.kill()
        server.join(5)
    first = int(args.rate * args.warm_up)
    subject = f"batched {batch_ms:.0f} ms" if batch_ms else "baseline"
    return RunResult(subject, clients, args.rate, window, latency[:, first:], counts,
                     entered=total - first, drain_s=drain, seqs=list(range(first, total)))


def wait_for_port(port: int, timeout: float) -> None:
    """Wait until a server listens on `port`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")


# -- the system under test ---------------------------------------------------------------

def cityops_command() -> list[str]:
    """This checkout's `cityops`, run by the benchmark's own interpreter (a `cityops` found on
    PATH may be another installation's)."""
    return [sys.executable, "-m", "cityops.cli"]


@dataclass
class Deployment:
    """A `cityops serve` process (and, on PostgreSQL, its projection process) on a fresh
    store."""

    folder: Path
    database_url: str | None
    kafka: str | None
    topic_namespace: str
    push_process: bool = False
    """PostgreSQL only: the WebSocket clients on a second API process of their own."""
    projection_poll_s: float | None = None
    """`CITYOPS_PROJECTION_POLL_INTERVAL_S` of the processes (None: the default)."""
    port: int = field(default_factory=free_port)
    push_port: int = field(default_factory=free_port)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        """Where the commands go."""
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """The processes' environment: this run's store, port and secret only."""
        env = dict(os.environ)
        for name in list(env):
            if name.startswith("CITYOPS_"):
                del env[name]
        env.update({"CITYOPS_DATA_DIR": str(self.folder / "data"),
                    "CITYOPS_PORT": str(self.port),
                    "CITYOPS_SECRET_KEY": "ws-latency-bench-" + uuid.uuid4().hex})
        if self.database_url:
            env["CITYOPS_DATABASE_URL"] = self.database_url
        if self.projection_poll_s is not None:
            env["CITYOPS_PROJECTION_POLL_INTERVAL_S"] = str(self.projection_poll_s)
        if self.kafka:
            env["CITYOPS_KAFKA_BOOTSTRAP_SERVERS"] = self.kafka
            env["CITYOPS_INGEST_TOPIC_NAMESPACE"] = self.topic_namespace
        return env

    def cli(self, *arguments: str, timeout: float = 120) -> str:
        """Run a `cityops` command on this deployment; its output, or an error saying why not."""
        done = subprocess.run([*cityops_command(), *arguments], env=self.env(),
                              capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"cityops {' '.join(arguments)} failed: "
                               f"{done.stderr.strip() or done.stdout.strip()}")
        return done.stdout

    def spawn(self, name: str, *arguments: str, env: dict[str, str] | None = None) -> None:
        """Start a long-running `cityops` process, its output in `<name>.log`."""
        log = (self.folder / f"{name}.log").open("wb")
        self.processes[name] = subprocess.Popen(
            [*cityops_command(), *arguments], env=env or self.env(), stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True)

    def start(self) -> None:
        """Start the processes and wait until they answer."""
        if self.database_url:
            env = self.env()
            env["CITYOPS_RUN_PROJECTIONS"] = "false"
            self.spawn("serve", "serve", env=env)
            self.spawn("projections", "projections", "run")
        else:
            self.spawn("serve", "serve")
        if self.kafka:
            self.spawn("ingest", "ingest", "run")
        self.wait_healthy(120)
        if self.push_process:
            # Once the first has made the tables: two processes creating them at once clash.
            self.spawn("serve (push)", "serve", "--port", str(self.push_port), env=env)
            self.wait_healthy(120, self.push_port)

    @property
    def ws_url(self) -> str:
        """Where the clients connect."""
        return f"ws://127.0.0.1:{self.push_port if self.push_process else self.port}/ws"

    def wait_healthy(self, timeout: float, port: int | None = None) -> None:
        """Wait until `/health` answers (and fail early if a process died)."""
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited: {self.log_tail(name)}")
            with contextlib.suppress(httpx.HTTPError):
                health = f"http://127.0.0.1:{port or self.port}/health"
                if httpx.get(health, timeout=2).status_code == 200:
                    return
            time.sleep(0.3)
        raise RuntimeError(f"serve is not healthy after {timeout} s: {self.log_tail('serve')}")

    def log_tail(self, name: str) -> str:
        """The end of a process's log, for error messages."""
        path = self.folder / f"{name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def pids(self) -> dict[str, list[int]]:
        """Each process of the deployment (for its CPU)."""
        return {name: [p.pid] for name, p in self.processes.items()}

    def stop(self) -> None:
        """Stop every process cleanly (SIGINT), killing what does not stop."""
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in self.processes.values():
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                # Its session holds whatever it started too.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)
        if self.kafka:
            self.drop_topics()

    def drop_topics(self) -> None:
        """The run's ingest topics (a namespace of its own) are deleted with it."""
        from kafka import KafkaAdminClient

        admin = KafkaAdminClient(bootstrap_servers=self.kafka)
        try:
            mine = [t for t in admin.list_topics() if t.startswith(f"{self.topic_namespace}.")]
            if mine:
                admin.delete_topics(mine)
        finally:
            admin.close()


def add_users(deployment: Deployment, password: str, **roles: str) -> None:
    """The bench's accounts (username -> role), made through the accounts application by an
    administrator before the server starts."""
    from cityops.bootstrap import build_system
    from cityops.domain.actors import Actor, Role
    from cityops.settings import Settings

    settings = Settings(data_dir=deployment.folder / "data",
                        database_url=deployment.database_url, run_projections=False)
    system = build_system(settings)
    try:
        for username, role in roles.items():
            system.accounts.handle(
                AddUser(username=username, role=role, password=password),
                CommandContext(actor=Actor("bench-admin", Role.ADMIN)))
    finally:
        system.close()


def login(base_url: str, username: str, password: str) -> str:
    """A bearer token, the way the login page gets one."""
    import httpx

    response = httpx.post(f"{base_url}/auth/login",
                          json={"username": username, "password": password}, timeout=30)
    if response.status_code != 200:
        raise RuntimeError(f"login of {username} failed: {response.status_code} "
                           f"{response.text[:300]}")
    return str(response.json()["access_token"])


class FieldReporter:
    """Posts reports over a few keep-alive HTTP/1.1 connections with a bare asyncio client:
    httpx costs about a millisecond of CPU a request, which on two shared cores the producer
    would take from the server it measures."""

    def __init__(self, host: str, port: int, token: str, connections: int = 32) -> None:
        self.host, self.port, self.connections = host, port, connections
        self.head = (f"POST /grid-cases HTTP/1.1\r\nHost: {host}:{port}\r\n"
                     f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n")
        self.idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = \
            asyncio.Queue()

    async def open(self) -> None:
        """Open the connections."""
        for _ in range(self.connections):
            self.idle.put_nowait(await asyncio.open_connection(self.host, self.port))

    async def post(self, body: bytes) -> tuple[int, bytes]:
        """(status, body) of one POST /grid-cases."""
        reader, writer = await self.idle.get()
        try:
            writer.write(f"{self.head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
            if length is None:
                raise RuntimeError(f"an answer without Content-Length: {head[:300]!r}")
            answer = await reader.readexactly(int(length.group(1)))
        except BaseException:
            writer.close()
            self.idle.put_nowait(await asyncio.open_connection(self.host, self.port))
            raise
        self.idle.put_nowait((reader, writer))
        return status, answer

    async def close(self) -> None:
        """Close the connections."""
        while not self.idle.empty():
            _, writer = self.idle.get_nowait()
            writer.close()


async def produce_http(port: int, token: str, rate: float, total: int,
                       points: list[tuple[float, float]],
                       marks: dict[int, Any]) -> dict[str, Any]:
    """Report `total` grid cases at `rate` per second through `POST /grid-cases`, each
    stamped with its time of entry."""
    reporter = FieldReporter("127.0.0.1", port, token)
    await reporter.open()
    failures: dict[int, str] = {}
    answered_ms: dict[int, float] = {}

    async def report(seq: int, due_ns: int) -> None:
        body = json.dumps({"source": "inspector", "category": CATEGORY,
                           "description": stamp(seq, due_ns),
                           "location": {"type": "Point", "coordinates": list(points[seq])}})
        try:
            status, answer = await reporter.post(body.encode())
        except (OSError, RuntimeError, asyncio.IncompleteReadError) as error:
            failures[seq] = repr(error)[:120]
            return
        answered_ms[seq] = (time.time_ns() - due_ns) / 1e6
        if status != 201:
            failures[seq] = f"{status} {answer[:120]!r}"

    try:
        pending, late_ms = await _paced(rate, total, report, marks)
        await asyncio.gather(*pending)
    finally:
        await reporter.close()
    return {"failures": failures, "answered_ms": answered_ms, "late_ms": late_ms}


async def produce_kafka(bootstrap: str, topic: str, rate: float, total: int,
                        points: list[tuple[float, float]],
                        marks: dict[int, Any]) -> dict[str, Any]:
    """Send `total` grid-case report messages to the ingest topic at `rate` per second."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    failures: dict[int, str] = {}

    async def send(seq: int, due_ns: int) -> None:
        message = kafka_report(seq, due_ns, points[seq])
        try:
            producer.send(topic, key=message["message_id"].encode(),
                          value=json.dumps(message).encode())
        except Exception as error:  # the run reports it as a report that never entered
            failures[seq] = repr(error)[:120]

    try:
        pending, late_ms = await _paced(rate, total, send, marks)
        await asyncio.gather(*pending)
        producer.flush(60)
    finally:
        producer.close()
    return {"failures": failures, "answered_ms": {}, "late_ms": late_ms}


def kafka_report(seq: int, entered_ns: int, point: tuple[float, float]) -> dict[str, Any]:
    """A grid-case report as the ingest catalogue takes it (`grid-case-report/1`)."""
    from datetime import UTC, datetime

    return {"schema": "grid-case-report/1", "message_id": str(uuid.uuid4()),
            "occurred_at": datetime.fromtimestamp(entered_ns / 1e9, UTC).isoformat(),
            "actor": {"user_id": "bench-inspector", "role": "inspector"},
            "payload": {"category": CATEGORY, "description": stamp(seq, entered_ns),
                        "location": {"type": "Point", "coordinates": list(point)}}}


async def _paced(rate: float, total: int, step: Any,
                 marks: dict[int, Any]) -> tuple[list[Any], list[float]]:
    """Start `step(seq, due_ns)` at t0 + seq/rate for each seq (open loop: the schedule does
    not wait for answers), calling the window marks on the way. Each report is stamped with
    when it was due, so a producer that falls behind is charged to the latency (no
    coordinated omission); how late it was is returned, in ms."""
    pending, late_ms = [], []
    origin, origin_ns = time.perf_counter(), time.time_ns()
    for seq in range(total):
        if seq in marks:
            marks[seq]()
        due = origin + seq / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        late_ms.append(max(0.0, (time.perf_counter() - due) * 1000))
        pending.append(asyncio.ensure_future(step(seq, origin_ns + round(seq * 1e9 / rate))))
    return pending, late_ms


class RunHooks:
    """What a benchmark built on this one does around a system run (it subclasses this:
    bench/drills_under_load.py starts drills during the load). Each does nothing here."""

    subject = "system"
    """The run's name in the results."""

    def prepare(self, deployment: Deployment, password: str) -> None:
        """Before the processes start (the store made, the bench's users added)."""

    def begin(self, deployment: Deployment) -> None:
        """The processes answer and the clients are connected; before the load."""

    def window_opened(self) -> None:
        """The measured window begins (after the warm-up)."""

    def window_closed(self) -> None:
        """The measured window ends (the last report entered)."""

    def end(self, deployment: Deployment) -> None:
        """Before the processes stop (whatever happened)."""


def run_system(clients: int, args: argparse.Namespace, folder: Path,
               database_url: str | None, hooks: RunHooks | None = None) -> RunResult:
    """`cityops serve` on a fresh store with `clients` clients."""
    import uvloop

    hooks = hooks or RunHooks()

    deployment = Deployment(folder, database_url, args.kafka_bootstrap,
                            f"wsbench{uuid.uuid4().hex[:8]}", push_process=args.push_process,
                            projection_poll_s=args.projection_poll)
    password = "bench-" + uuid.uuid4().hex
    add_users(deployment, password, **{"bench-inspector": "inspector",
                                       "bench-dispatcher": "dispatcher"})
    if args.kafka_bootstrap:
        deployment.cli("ingest", "topics", "create")
    total = int(args.rate * (args.warm_up + args.seconds))
    first = int(args.rate * args.warm_up)
    from cityops.maps import load_demo_city

    points = report_points(load_demo_city().map.cells, total)
    hooks.prepare(deployment, password)
    deployment.start()
    fleet: ClientFleet | None = None
    profiler: tuple[subprocess.Popen[bytes], Path] | None = None
    try:
        producer_token = login(deployment.base_url, "bench-inspector", password)
        client_token = login(deployment.base_url, "bench-dispatcher", password)
        fleet = ClientFleet(deployment.ws_url, client_token, clients,
                            args.processes, total, args.compression, folder, args.batch_ms)
        fleet.start()
        pids = deployment.pids()
        if database_url:
            pids["postgres"] = database_backends(database_url)
        pids["clients"] = fleet.pids
        pids["bench producer"] = [os.getpid()]
        window = Window(pids)

        def open_window() -> None:
            nonlocal profiler
            window.open()
            hooks.window_opened()
            if args.profile:
                # The process the clients are connected to.
                pushing = deployment.processes.get("serve (push)",
                                                   deployment.processes["serve"])
                profiler = start_profiler(pushing.pid, clients, args.seconds)

        marks = {first: open_window}
        hooks.begin(deployment)
        if args.kafka_bootstrap:
            topic = f"{deployment.topic_namespace}.grid-case-reports"
            produced = uvloop.run(produce_kafka(args.kafka_bootstrap, topic, args.rate, total,
                                                points, marks))
        else:
            produced = uvloop.run(produce_http(deployment.port, producer_token, args.rate,
                                               total, points, marks))
        window.close()
        hooks.window_closed()
        drain = fleet.wait_for([seq for seq in range(total)
                                if seq not in produced["failures"]], args.drain)
        latency, counts = fleet.collect()
        fleet = None
    finally:
        if fleet is not None:
            fleet.close()
        if profiler is not None:
            profiler[0].wait(args.seconds + 60)
        try:
            hooks.end(deployment)
        finally:
            deployment.stop()
    if profiler is not None:
        print(profile_summary(profiler[1]))
    failures: dict[int, str] = produced["failures"]
    if failures:
        print(f"    {len(failures)} reports refused or failed, e.g. "
              f"{next(iter(failures.values()))}")
    # A report that never entered the system is not a message lost on the way out.
    measured = [seq for seq in range(first, total) if seq not in failures]
    return RunResult(hooks.subject, clients, args.rate, window, latency[:, measured], counts,
                     entered=len(measured), entry_failures=total - first - len(measured),
                     entry_ms=[produced["answered_ms"][seq] for seq in measured
                               if seq in produced["answered_ms"]],
                     late_ms=produced["late_ms"][first:], drain_s=drain, seqs=measured)


def database_backends(url: str) -> list[int]:
    """The PostgreSQL server processes serving this run's database (their command lines
    name it), so that the database's CPU counts as the server's."""
    from urllib.parse import urlsplit

    name = urlsplit(url).path.lstrip("/")
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
                if command.startswith(b"postgres: ") and f" {name} ".encode() in command:
                    found.append(int(entry.name))
    return found


def start_profiler(pid: int, clients: int, seconds: float) -> tuple[subprocess.Popen[bytes], Path]:
    """py-spy on the serve process over the measured window: every thread, samples taken
    only from the thread holding the GIL (Python's CPU), without pausing the process."""
    out = REPO_ROOT / ".local" / f"ws-latency-serve-{clients}.stacks"
    out.parent.mkdir(exist_ok=True)
    print(f"    profiling serve (pid {pid}) into {out}")
    process = subprocess.Popen(
        ["py-spy", "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate",
         "100", "--format", "raw", "--output", str(out), "--threads", "--gil",
         "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return process, out


def profile_summary(path: Path, top: int = 30) -> str:
    """Where the sampled time went: the heaviest functions counting their callees
    (inclusive), and the heaviest on their own (self), as shares of all samples."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        frames = stack.split(";")
        total += samples
        threads[re.sub(r"\(\d+\)", "", frames[0]).strip()] += samples
        names = [re.sub(r":\d+\)$", ")", frame) for frame in frames[1:]]
        for name in set(names):
            inclusive[name] += samples
        if names:
            own[names[-1]] += samples
    if not total:
        return "  (no samples)"
    lines = [f"  {total} samples; by thread: " + ", ".join(
        f"{name} {n / total:.0%}" for name, n in threads.most_common(6))]
    lines.append("  inclusive, the project's own functions:")
    ours = [(name, n) for name, n in inclusive.most_common()
            if re.search(r"\((app|domain|projections|command-center|ingest|feeds|maps)/", name)]
    lines += [f"    {n / total:6.1%}  {name}" for name, n in ours[:top]]
    lines.append("  self:")
    lines += [f"    {n / total:6.1%}  {name}" for name, n in own.most_common(top // 2)]
    return "\n".join(lines)


# -- the report ----------------------------------------------------------------------------

def table(results: list[RunResult]) -> str:
    """The results as a Markdown table (as bench/README.md shows them)."""
    rows = ["| clients | subject | p50 ms | p99 ms | max ms | lost | resyncs | entered/s | "
            "delivered msg/s | server CPU | client CPU | machine |",
            "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        server = sum(v for k, v in r.window.usage.items()
                     if k not in ("clients", "bench producer"))
        rows.append(
            f"| {r.clients} | {r.subject} | {r.percentile(50):.1f} | {r.percentile(99):.1f} | "
            f"{np.nanmax(r.latency):.1f} | {r.lost} | {r.counts.get('resync', 0)} | "
            f"{r.entered / r.window.seconds:.1f} | "
            f"{r.received.size / r.window.seconds:,.0f} | {server:.0%} | "
            f"{r.window.usage.get('clients', 0):.0%} | {r.window.machine_usage:.0%} |")
    return "\n".join(rows)


def ratios(results: list[RunResult]) -> str:
    """System / baseline, per client count."""
    lines = []
    for clients in sorted({r.clients for r in results}):
        pair = {r.subject: r for r in results if r.clients == clients}
        if "system" in pair and "baseline" in pair:
            s, b = pair["system"], pair["baseline"]
            lines.append(f"  {clients:>4} clients: system / baseline  p50 "
                         f"{s.percentile(50) / b.percentile(50):6.1f} x   p99 "
                         f"{s.percentile(99) / b.percentile(99):6.1f} x")
    return "\n".join(lines)


def main() -> None:
    """Run the baseline and the system at each client count and report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", default="1,100,500",
                        help="Comma-separated client counts (default 1,100,500)")
    add_run_options(parser)
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--batched-baseline", type=float, metavar="MS", default=0.0,
                        help="Also run the baseline with the changes of each MS ms tick sent "
                             "as one frame (what fewer, larger frames would buy)")
    parser.add_argument("--no-system", action="store_true")
    sys.path.insert(0, str(Path(__file__).parent))
    import summary  # bench/summary.py

    summary.add_option(parser)
    args = parser.parse_args()
    check_run_options(parser, args)
    counts = [int(c) for c in args.clients.split(",")]

    print(f"{args.rate:.0f} reports/s, {args.warm_up:.0f} s warm-up + {args.seconds:.0f} s "
          f"measured, clients in {args.processes} processes, compression "
          f"{args.compression or 'off'}, system clients "
          f"{f'batched {args.batch_ms} ms' if args.batch_ms else 'unbatched'}, entry via "
          f"{'Kafka ingest' if args.kafka else 'HTTP POST /grid-cases'}, store "
          f"{'PostgreSQL' if args.postgres else 'embedded SQLite'}")
    document = sample_document()
    print(f"message: a real case document, {len(json.dumps(document))} bytes of properties")
    results: list[RunResult] = []
    with scratch_folder(args.keep) as scratch:
        for clients in counts:
            if not args.no_baseline:
                folder = Path(scratch) / f"baseline-{clients}"
                folder.mkdir()
                results.append(run_baseline(clients, args, document, folder))
                print(results[-1].line(), flush=True)
            if args.batched_baseline > 0:
                folder = Path(scratch) / f"batched-{clients}"
                folder.mkdir()
                results.append(run_baseline(clients, args, document, folder,
                                            args.batched_baseline))
                print(results[-1].line(), flush=True)
                print(results[-1].trend(), flush=True)
                if results[-1].lost:
                    print(results[-1].losses(), flush=True)
            if not args.no_system:
                folder = Path(scratch) / f"system-{clients}"
                folder.mkdir()
                with database(args.postgres) as url:
                    results.append(run_system(clients, args, folder, url))
                print(results[-1].line(), flush=True)
                print(results[-1].trend(), flush=True)
                if results[-1].lost:
                    print(results[-1].losses(), flush=True)
    print()
    print(table(results))
    print()
    print(ratios(results))
    summary.write(args.summary, "ws_latency.py", summary_rows(results))


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """The options of a system run (rate, window, clients' processes, topology), shared with
    the benchmarks built on this one."""
    parser.add_argument("--rate", type=float, default=200.0, help="Reports per second")
    parser.add_argument("--seconds", type=float, default=20.0, help="Measured seconds")
    parser.add_argument("--warm-up", type=float, default=5.0, help="Seconds before measuring")
    parser.add_argument("--drain", type=float, default=20.0,
                        help="Seconds to wait for the last report after the load stops "
                             "(what has not arrived by then is lost)")
    parser.add_argument("--processes", type=int, default=4, help="Client processes")
    parser.add_argument("--compression", choices=["none", "deflate"], default="none",
                        help="permessage-deflate offered by the clients (browsers offer it)")
    parser.add_argument("--postgres", metavar="URL", nargs="?", const="dev",
                        help="Run on PostgreSQL with a separate projection process: a scratch "
                             "database per run on the server of URL (no URL: the dev "
                             "cluster, started if need be), dropped afterwards")
    parser.add_argument("--push-process", action="store_true",
                        help="With --postgres: the clients connect to a second API process, "
                             "so that pushing does not share a process with the commands")
    parser.add_argument("--kafka", action="store_true",
                        help="Reports through Kafka and a `cityops ingest run` worker")
    parser.add_argument("--batch-ms", type=int, default=0, metavar="MS",
                        help="The system's clients ask for batched `changes` frames "
                             "(hello batch_ms, as the dashboard and field page do: 50)")
    parser.add_argument("--projection-poll", type=float, metavar="S",
                        help="CITYOPS_PROJECTION_POLL_INTERVAL_S of the system's processes "
                             "(how often a follower that nothing wakes polls; default 0.2)")
    parser.add_argument("--keep", action="store_true",
                        help="Keep the runs' folders (stores, server logs) and say where")
    parser.add_argument("--profile", action="store_true",
                        help="py-spy the serve process over each measured window")


def check_run_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Check and complete the options of `add_run_options` once parsed."""
    args.compression = None if args.compression == "none" else args.compression
    if args.push_process and not args.postgres:
        parser.error("--push-process needs --postgres (API processes share changes through it)")
    args.kafka_bootstrap = kafka_bootstrap() if args.kafka else None


def summary_rows(results: list[RunResult]) -> list[Any]:
    """The summary's rows (bench/run-all): the system against the batched baseline if run
    (the issue's target: p99 <= 2x the bare batched broadcast), else the bare one."""
    import summary

    rows = []
    for clients in sorted({r.clients for r in results}):
        pair = {r.subject: r for r in results if r.clients == clients}
        if "system" not in pair:
            continue
        system = pair["system"]
        base = next((r for name, r in pair.items() if name.startswith("batched")),
                    pair.get("baseline"))
        entry = (f", POST p99 {float(np.percentile(system.entry_ms, 99)):.0f} ms"
                 if system.entry_ms else "")
        ratio = system.percentile(99) / base.percentile(99) if base else None
        batched = base is not None and base.subject.startswith("batched")
        rows.append(summary.Row(
            name=f"{clients} clients, {system.rate:.0f}/s",
            baseline=(f"{base.subject}: p50 {base.percentile(50):.1f}, p99 "
                      f"{base.percentile(99):.1f} ms" if base else ""),
            figure=f"p50 {system.percentile(50):.1f}, p99 {system.percentile(99):.1f} ms, "
                   f"lost {system.lost}{entry}",
            ratio=ratio, ratio_text=f"p99 {ratio:.1f}x" if ratio else "",
            target="p99 <= 2x batched" if batched else "",
            met=(ratio is not None and ratio <= 2 and system.lost == 0) if batched else None))
    return rows


@contextlib.contextmanager
def scratch_folder(keep: bool) -> Iterator[str]:
    """Where the runs keep their stores and server logs: removed at the end unless kept."""
    if keep:
        folder = tempfile.mkdtemp(prefix="ws-latency-")
        print(f"runs kept in {folder}")
        yield folder
    else:
        with tempfile.TemporaryDirectory(prefix="ws-latency-") as folder:
            yield folder


@contextlib.contextmanager
def database(postgres: str | None) -> Iterator[str | None]:
    """A scratch PostgreSQL database for one run, or None (embedded)."""
    if postgres is None:
        yield None
        return
    if postgres == "dev":
        sys.path.insert(0, str(Path(__file__).parent))
        from scratch_database import scratch_database

        with scratch_database("ws") as url:
            yield url
        return
    from urllib.parse import urlsplit, urlunsplit

    import psycopg

    name = f"cityops_bench_ws_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(postgres)._replace(path=f"/{name}"))
    finally:
        from scratch_database import drop_database

        drop_database(postgres, name)


def kafka_bootstrap() -> str:
    """The dev broker's address (started if need be)."""
    subprocess.run([str(REPO_ROOT / "dev" / "kafka"), "start"], check=True,
                   capture_output=True)
    return subprocess.run([str(REPO_ROOT / "dev" / "kafka"), "bootstrap"], check=True,
                          capture_output=True, text=True).stdout.strip()


if __name__ == "__main__":
    main()
