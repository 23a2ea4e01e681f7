"""What one request costs the API process: CPU per request (and context switches, and the
rate it answers at) of a report (`POST /grid-cases`), a list (`GET /grid-cases?limit=1`),
the logged-in user (`GET /auth/me`) and the public clock (`GET /clock`), against a bare
FastAPI app on the same uvicorn (uvloop, httptools) measured in the same run: an `async`
endpoint, and a `def` endpoint with one dependency (a hop to a worker thread, as our routes).

The system under test is a real `cityops serve` on PostgreSQL (`--postgres [URL]`, a scratch
database; no projection process runs, so that nothing but the requests shares the cores:
the list reads an empty read model) or embedded SQLite (the projections run in the API
process: its figure includes projecting each report). A
few keep-alive connections (`--connections`) send requests back to back: the API process is
saturated and its CPU time (utime + stime of all its threads, from /proc) over the window,
divided by the requests answered, is the figure. The push benchmark's target needs a report
to cost about a fifth of a core at 200 reports/s; this shows what each part of a request
costs, quickly, at any commit (bisect with `PYTHONPATH` set to another checkout's packages).

Usage:

    python bench/request_cost.py --postgres            # 1,500 reports, 3,000 of each GET
    python bench/request_cost.py --postgres --repeat 3 # rounds alternated; medians
    python bench/request_cost.py --reports 500 --gets 1000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg
import summary
from scratch_database import scratch_database
from ws_latency import (
    CATEGORY,
    Deployment,
    add_users,
    cpu_seconds,
    free_port,
    login,
    report_points,
    wait_for_port,
)

CONTENT_LENGTH = re.compile(rb"(?i)\r\ncontent-length:\s*(\d+)")
PASSWORD = "request-cost-bench-1"


def context_switches(pid: int) -> int:
    """Voluntary and involuntary context switches of all of a process's threads."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            for line in (task / "status").read_text().splitlines():
                if "ctxt_switches" in line:
                    total += int(line.split()[1])
    return total


async def send_all(port: int, requests: list[bytes], connections: int) -> list[int]:
    """Send `requests` over `connections` keep-alive connections, each request once its
    connection's previous answer came; the answers' status codes."""
    opened = [await asyncio.open_connection("127.0.0.1", port) for _ in range(connections)]
    statuses: list[int] = []

    async def one_connection(k: int) -> None:
        reader, writer = opened[k]
        for request in requests[k::connections]:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = CONTENT_LENGTH.search(head)
            if length is None:
                raise RuntimeError(f"an answer without Content-Length: {head[:200]!r}")
            await reader.readexactly(int(length.group(1)))
            statuses.append(int(head.split(b" ", 2)[1]))

    try:
        await asyncio.gather(*(one_connection(k) for k in range(connections)))
    finally:
        for _, writer in opened:
            writer.close()
    return statuses


@dataclass(frozen=True)
class Cost:
    """One request kind measured once."""

    name: str
    cpu_ms: float
    """API-process CPU per request."""
    per_s: float
    switches: float
    """Context switches per request."""


def measure(name: str, pid: int, port: int, requests: list[bytes], connections: int,
            warm_up: list[bytes]) -> Cost:
    """Send `warm_up`, then `requests`, measuring the API process over the second batch."""
    asyncio.run(send_all(port, warm_up, connections))
    switches, cpu, started = context_switches(pid), cpu_seconds([pid]), time.perf_counter()
    statuses = asyncio.run(send_all(port, requests, connections))
    took = time.perf_counter() - started
    cpu, switches = cpu_seconds([pid]) - cpu, context_switches(pid) - switches
    wrong = [s for s in statuses if not 200 <= s < 300]
    if wrong:
        raise RuntimeError(f"{name}: {len(wrong)} of {len(statuses)} answers were not 2xx "
                           f"(e.g. {wrong[0]})")
    n = len(requests)
    return Cost(name, 1000 * cpu / n, n / took, switches / n)


def get(path: str, token: str | None = None) -> bytes:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}\r\n".encode()


def reports(token: str, points: list[tuple[float, float]], first: int, count: int) -> list[bytes]:
    """`count` field reports, each from a place of its own (no duplicate checks match)."""
    out = []
    for k in range(first, first + count):
        body = json.dumps({"source": "inspector", "category": CATEGORY,
                           "description": f"request-cost {k}",
                           "location": {"type": "Point",
                                        "coordinates": list(points[k % len(points)])}}).encode()
        out.append(f"POST /grid-cases HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                   f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
                   f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    return out


def run_bare_server(port: int) -> None:
    """The baseline: a bare FastAPI app served as `cityops serve` serves ours."""
    import uvicorn
    from fastapi import Depends, FastAPI

    app = FastAPI()
    answer = {"data": [], "count": 0, "limit": 1, "offset": 0}

    @app.get("/async")
    async def asynchronous() -> dict[str, object]:
        return answer

    def dependency() -> int:
        return 1

    @app.get("/sync")
    def synchronous(_: int = Depends(dependency)) -> dict[str, object]:
        return answer

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def bare_costs(args: argparse.Namespace) -> list[Cost]:
    port = free_port()
    server = subprocess.Popen([sys.executable, __file__, "--bare-server", str(port)],
                              start_new_session=True)
    try:
        wait_for_port(port, 60)
        return [measure(f"bare FastAPI {kind}", server.pid, port, [get(f"/{kind}")] * args.gets,
                        args.connections, [get(f"/{kind}")] * 200)
                for kind in ("async", "sync")]
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)


def system_costs(args: argparse.Namespace, points: list[tuple[float, float]]) -> list[Cost]:
    """The system's costs on a fresh store (a scratch database on PostgreSQL)."""
    with contextlib.ExitStack() as stack:
        folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="request-cost-"))
        database_url = (stack.enter_context(scratch_database("requestcost"))
                        if args.postgres is not None else None)
        deployment = Deployment(Path(folder), database_url, None,
                                topic_namespace=f"rc{uuid.uuid4().hex[:8]}")
        add_users(deployment, PASSWORD, inspector="inspector")
        if database_url is None:
            deployment.start()
        else:
            # The API process alone: a projection process catching up on the reports would
            # share the two cores with the requests measured after them.
            env = deployment.env()
            env["CITYOPS_RUN_PROJECTIONS"] = "false"
            deployment.spawn("serve", "serve", env=env)
            deployment.wait_healthy(120)
        try:
            token = login(deployment.base_url, "inspector", PASSWORD)
            pid, port = deployment.processes["serve"].pid, deployment.port
            costs = [measure("POST /grid-cases (a report)", pid, port,
                             reports(token, points, 200, args.reports),
                             args.connections, reports(token, points, 0, 200))]
            for name, path, auth in (("GET /grid-cases?limit=1", "/grid-cases?limit=1", token),
                                     ("GET /auth/me", "/auth/me", token),
                                     ("GET /clock (public)", "/clock", None)):
                costs.append(measure(name, pid, port, [get(path, auth)] * args.gets,
                                     args.connections, [get(path, auth)] * 200))
            return costs
        finally:
            deployment.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres", nargs="?", const="", default=None, metavar="URL",
                        help="PostgreSQL topology (a scratch database on URL, default the "
                             "dev cluster); embedded SQLite without it")
    parser.add_argument("--reports", type=int, default=1500)
    parser.add_argument("--gets", type=int, default=3000)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=1, help="rounds (alternated); medians")
    parser.add_argument("--bare-server", type=int, default=None, help=argparse.SUPPRESS)
    summary.add_option(parser)
    args = parser.parse_args()
    if args.bare_server is not None:
        run_bare_server(args.bare_server)
        return
    for name in ("reports", "gets", "connections", "repeat"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    from cityops.maps import load_demo_city

    points = report_points(load_demo_city().map.cells, 5000)
    if args.postgres:
        os.environ["CITYOPS_TEST_POSTGRES_URL"] = args.postgres  # scratch_database's server
    load_before = os.getloadavg()
    try:
        rounds = [bare_costs(args) + system_costs(args, points) for _ in range(args.repeat)]
    except (psycopg.OperationalError, RuntimeError) as error:  # no server, a refused request
        sys.exit(f"request_cost: {error}")
    load_after = os.getloadavg()
    names = [c.name for c in rounds[0]]

    def median(name: str, attribute: str) -> float:
        return statistics.median(getattr(c, attribute) for r in rounds for c in r
                                 if c.name == name)

    baseline = median("bare FastAPI sync", "cpu_ms")
    print(f"API-process CPU per request, {'SQLite' if args.postgres is None else 'PostgreSQL'}, "
          f"{args.connections} connections, median of {args.repeat} round(s); "
          f"load {load_before[0]:.2f} before, {load_after[0]:.2f} after")
    print("| request | CPU ms/request | x bare def endpoint | answered/s | switches/request |")
    print("|---|---:|---:|---:|---:|")
    rows = []
    for name in names:
        cpu = median(name, "cpu_ms")
        ratio = cpu / baseline if baseline else None
        print(f"| {name} | {cpu:.2f} | {ratio:.1f}x | {median(name, 'per_s'):,.0f} | "
              f"{median(name, 'switches'):.0f} |")
        if not name.startswith("bare"):
            rows.append(summary.Row(name=name, figure=f"{cpu:.2f} ms CPU",
                                    baseline=f"bare FastAPI def endpoint {baseline:.2f} ms",
                                    ratio=ratio, ratio_text=f"{ratio:.1f}x" if ratio else ""))
    summary.write(args.summary, "request_cost.py", rows)


if __name__ == "__main__":
    main()
