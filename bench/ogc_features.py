"""Benchmark: the OGC API Features endpoint of the command centre against a specialised OGC
API Features server (tipg, developmentseed's server for PostGIS) on the same PostGIS table of
grid cases, with the same HTTP client, in the same run.

The table is the real `rm_grid_cases` read model: a simulated demo day is played through the
applications into a scratch PostgreSQL database (its followers write the rows), then its
case rows are copied under new ids at random places in the city until there are `--cases`
(24,000 by default), and the table is vacuumed and analysed (as autovacuum keeps it).

Both servers run as one uvicorn process each on this machine, serving that one table:

- CityOps: `cityops serve` (projections off: nothing else runs in it), logged in as the
  dispatcher, `/ogc/collections/grid-cases/items...`; 12 flat properties per feature;
- tipg: `/collections/<read-model schema>.rm_grid_cases/items...`, asked for 12 of the
  table's columns (`properties=`), so that neither sends the case document.

Questions (a single keep-alive client, one request at a time; the two servers alternate in
blocks, `--rounds` times, so that the machine's load falls on both alike):

- item: one feature by id (random ids);
- page: a page of 1,000 features ordered by id, at a random offset, with numberMatched;
- bbox: the features in a random 600 m x 600 m box of the city (limit 1,000, so all of
  them), with numberMatched.

Both answer with the same features in the same order and the same numberMatched: every
answer's ids are checked against the other server's.

Usage: python bench/ogc_features.py [--cases 24000] [--requests 200] [--rounds 3]
Needs the `bench` extra (tipg) and the dev PostgreSQL (CITYOPS_TEST_POSTGRES_URL or
dev/postgres).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psycopg
from scratch_database import scratch_database
from ws_latency import Deployment, free_port, login, wait_for_port

CITYOPS_COLLECTION = "/ogc/collections/grid-cases/items"
TIPG_PROPERTIES = ("status,category,urgency,department,grid_cell,is_open,reported_at,"
                   "yellow_at,red_at,frozen_light,created_at,updated_at")
"""Twelve flat columns of the table: as many properties as the CityOps layer has."""
PAGE = 1_000
BOX_M = 600.0
DEMO_DATE = date(2026, 11, 24)


def fill(url: str, folder: Path, cases: int, seed: int) \
        -> tuple[int, tuple[float, ...], str]:
    """A demo day played into `url`, its case rows copied to `cases` rows at random places;
    returns the number of rows, the city's bounds and the read models' schema."""
    from cityops.settings import Settings
    from cityops.simulator import build_demo

    system, demo = build_demo(Settings(data_dir=folder / "data", database_url=url),
                              seed=seed, speed=0.0, today=DEMO_DATE)
    try:
        demo.run_until(demo.start + timedelta(hours=6))
        system.catch_up()
        bounds = tuple(system.city.map.bounds)
    finally:
        system.close()
    rng = np.random.default_rng(seed)
    with psycopg.connect(url, autocommit=True) as connection:
        found = connection.execute("SELECT table_schema FROM information_schema.tables "
                                   "WHERE table_name = 'rm_grid_cases'").fetchone()
        if found is None:
            raise RuntimeError("the demo day made no rm_grid_cases table")
        schema = str(found[0])
        connection.execute(f"SET search_path TO {schema}, public")
        names = [r[0] for r in connection.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = "
            "'rm_grid_cases' AND table_schema = %s AND is_generated = 'NEVER' "
            "ORDER BY ordinal_position", (schema,))]
        rows = connection.execute(
            f"SELECT {', '.join(names)} FROM rm_grid_cases").fetchall()
        if not rows:
            raise RuntimeError("the demo day reported no grid cases")
        at = {name: k for k, name in enumerate(names)}
        copies = []
        for k in range(cases - len(rows)):
            row = list(rows[k % len(rows)])
            row[at["id"]] = str(uuid.UUID(int=int(rng.integers(0, 2**63)) << 64 | k))
            row[at["lon"]] = float(rng.uniform(bounds[0], bounds[2]))
            row[at["lat"]] = float(rng.uniform(bounds[1], bounds[3]))
            copies.append(row)
        with connection.cursor() as cursor, cursor.copy(
                f"COPY rm_grid_cases ({', '.join(names)}) FROM STDIN") as copy:
            for row in copies:
                copy.write_row([psycopg.types.json.Jsonb(v) if isinstance(v, dict) else v
                                for v in row])
        connection.execute("VACUUM ANALYZE rm_grid_cases")
        total = connection.execute("SELECT count(*) FROM rm_grid_cases").fetchone()
    return int(total[0]) if total else 0, bounds, schema


@dataclass
class Server:
    """One server under test: its base URL, headers and how it names the questions."""

    name: str
    base: str
    items: str
    headers: dict[str, str] = field(default_factory=dict)
    extra: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, list[float]] = field(default_factory=dict)

    def get(self, client: httpx.Client, question: str, path: str,
            params: dict[str, Any]) -> dict[str, Any]:
        """One timed request; its JSON answer."""
        started = time.perf_counter()
        response = client.get(self.base + path, params={**params, **self.extra},
                              headers=self.headers)
        elapsed = time.perf_counter() - started
        if response.status_code != 200:
            raise RuntimeError(f"{self.name} {path}: {response.status_code} "
                               f"{response.text[:300]}")
        self.seconds.setdefault(question, []).append(elapsed)
        answer: dict[str, Any] = response.json()
        return answer


def _ids(answer: dict[str, Any]) -> list[str]:
    return [str(f["id"]) for f in answer["features"]]


def questions(ids: list[str], bounds: tuple[float, ...], count: int, rng: random.Random) \
        -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """(path suffix, params) of each question, the same for both servers."""
    minx, miny, maxx, maxy = bounds
    dlon = BOX_M / (111_320.0 * np.cos(np.radians((miny + maxy) / 2)))
    dlat = BOX_M / 110_574.0
    boxes = []
    for _ in range(count):
        x, y = rng.uniform(minx, maxx - dlon), rng.uniform(miny, maxy - dlat)
        boxes.append(("", {"bbox": f"{x:.6f},{y:.6f},{x + dlon:.6f},{y + dlat:.6f}",
                           "limit": PAGE}))
    return {
        "item": [(f"/{rng.choice(ids)}", {}) for _ in range(count)],
        "page": [("", {"limit": PAGE, "offset": rng.randrange(0, len(ids) - PAGE)})
                 for _ in range(count)],
        "bbox": boxes,
    }


def measure(servers: list[Server], asked: dict[str, list[tuple[str, dict[str, Any]]]],
            rounds: int) -> None:
    """Each question kind, each server in turn, in `rounds` blocks; answers compared."""
    with httpx.Client(timeout=60) as client:
        for server in servers:  # warm-up: connections, caches, the first plans
            for items in asked.values():
                for suffix, params in items[:5]:
                    server.get(client, "warm-up", server.items + suffix, params)
        for question, items in asked.items():
            block = max(1, len(items) // rounds)
            for start in range(0, len(items), block):
                answers: list[list[dict[str, Any]]] = []
                for server in servers:
                    answers.append([server.get(client, question, server.items + suffix, params)
                                    for suffix, params in items[start:start + block]])
                check_same(question, answers)


def check_same(question: str, answers: list[list[dict[str, Any]]]) -> None:
    """Both servers answered with the same features (and counts)."""
    first, *others = answers
    for other in others:
        for k, (a, b) in enumerate(zip(first, other, strict=True)):
            if question == "item":
                assert a["id"] == b["id"], f"item #{k}: {a['id']} != {b['id']}"
                continue
            assert _ids(a) == _ids(b), f"{question} #{k}: different features"
            assert a.get("numberMatched") == b.get("numberMatched"), \
                f"{question} #{k}: numberMatched {a.get('numberMatched')} != " \
                f"{b.get('numberMatched')}"


def filled(url: str) -> tuple[int, tuple[float, ...], str]:
    """The rows, city bounds and schema of a database filled by an earlier run."""
    from cityops.maps import load_demo_city

    with psycopg.connect(url) as connection:
        found = connection.execute("SELECT table_schema FROM information_schema.tables "
                                   "WHERE table_name = 'rm_grid_cases'").fetchone()
        if found is None:
            raise RuntimeError(f"{url} has no rm_grid_cases table")
        total = connection.execute(f"SELECT count(*) FROM {found[0]}.rm_grid_cases").fetchone()
    return int(total[0]) if total else 0, tuple(load_demo_city().map.bounds), str(found[0])


def keep_database(name: str) -> str:
    """A new database of that name on the dev server (replacing one of the same name)."""
    from scratch_database import drop_database, server_url

    server = server_url()
    drop_database(server, name)
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return server.rsplit("/", 1)[0] + "/" + name


def start_tipg(url: str, folder: Path, schema: str) -> tuple[subprocess.Popen[bytes], int]:
    """tipg on the table (one uvicorn process), listening on a free port."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TIPG_", "CITYOPS_"))}
    env.update({"DATABASE_URL": url, "TIPG_DB_SCHEMAS": f'["{schema}"]',
                "TIPG_DB_TABLES": f'["{schema}.rm_grid_cases"]', "TIPG_DB_SPATIAL_EXTENT": "false",
                "TIPG_DB_DATETIME_EXTENT": "false", "TIPG_MAX_FEATURES_PER_QUERY": "10000",
                "DB_MIN_CONN_SIZE": "1", "DB_MAX_CONN_SIZE": "4"})
    log = (folder / "tipg.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "tipg.main:app", "--port", str(port),
         "--log-level", "warning", "--no-access-log"],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=folder, start_new_session=True)
    wait_for_port(port, 120)
    return process, port


def load_text() -> str:
    """The machine's load averages now."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def report(servers: list[Server], cases: int, loads: tuple[str, str]) -> None:
    """The table: requests/s and p50/p99 of each server, and CityOps' ratio to the peer."""
    ours, peer = servers
    print(f"\n{cases:,} grid cases; load average {loads[0]} at the start, {loads[1]} at the "
          "end. One client, one request at a time; latencies in ms.\n")
    header = (f"{'question':<6} {'server':<8} {'req/s':>8} {'p50':>8} {'p99':>8}   "
              f"{'CityOps/peer req/s':>19}")
    print(header)
    print("-" * len(header))
    for question in ("item", "page", "bbox"):
        for server in servers:
            s = server.seconds[question]
            ratio = (sum(peer.seconds[question]) / sum(ours.seconds[question])
                     if server is ours else None)
            print(f"{question:<6} {server.name:<8} {len(s) / sum(s):>8.1f} "
                  f"{statistics.median(s) * 1000:>8.2f} {np.percentile(s, 99) * 1000:>8.2f}   "
                  f"{f'{ratio:.2f}x' if ratio is not None else '':>19}")


def main(argv: list[str] | None = None) -> int:
    """Fill the table, start both servers, ask, print."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=24_000)
    parser.add_argument("--requests", type=int, default=200,
                        help="requests of each kind to each server")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--database", help="a database filled by an earlier run (--keep): "
                        "its table is used as it is")
    parser.add_argument("--keep", metavar="NAME", help="fill a database of this name on "
                        "the dev server and keep it (for --database in later runs)")
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="cityops-bench-ogc-"))
    with contextlib.ExitStack() as stack:
        if args.database:
            url = args.database
            cases, bounds, schema = filled(url)
        elif args.keep:
            url = keep_database(args.keep)
            cases, bounds, schema = fill(url, folder, args.cases, args.seed)
            print(f"kept: --database {url}", flush=True)
        else:
            url = stack.enter_context(scratch_database("ogc"))
            started = time.perf_counter()
            cases, bounds, schema = fill(url, folder, args.cases, args.seed)
            print(f"{cases:,} grid cases in rm_grid_cases in "
                  f"{time.perf_counter() - started:.0f} s", flush=True)
        with psycopg.connect(url) as connection:
            ids = [r[0] for r in connection.execute(f"SELECT id FROM {schema}.rm_grid_cases")]
        deployment = Deployment(folder, url, None, "bench-ogc")
        env = deployment.env()
        env["CITYOPS_RUN_PROJECTIONS"] = "false"
        # One request at a time: small pools (the dev cluster's connections are shared).
        env["CITYOPS_DATABASE_POOL_SIZE"] = "2"
        # This interpreter's cityops (a `cityops` found on PATH may be another install).
        log = (folder / "serve.log").open("wb")
        deployment.processes["serve"] = subprocess.Popen(
            [sys.executable, "-m", "cityops.cli", "serve"], env=env, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True)
        tipg: subprocess.Popen[bytes] | None = None
        try:
            deployment.wait_healthy(120)
            tipg, tipg_port = start_tipg(url, folder, schema)
            token = login(deployment.base_url, "dispatcher", demo_password("dispatcher"))
            servers = [
                Server("CityOps", deployment.base_url, CITYOPS_COLLECTION,
                       headers={"Authorization": f"Bearer {token}"}),
                Server("tipg", f"http://127.0.0.1:{tipg_port}",
                       f"/collections/{schema}.rm_grid_cases/items",
                       extra={"properties": TIPG_PROPERTIES}),
            ]
            asked = questions(ids, bounds, args.requests, random.Random(args.seed))
            before = load_text()
            measure(servers, asked, args.rounds)
            report(servers, cases, (before, load_text()))
        finally:
            deployment.stop()
            if tipg is not None:
                tipg.terminate()
                tipg.wait(20)
    return 0


def demo_password(username: str) -> str:
    """The demo user's password (the demo users are made by the demo day)."""
    from cityops.demo_users import DEMO_USERS

    return next(u.password for u in DEMO_USERS if u.username == username)


if __name__ == "__main__":
    sys.exit(main())
