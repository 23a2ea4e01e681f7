"""Benchmark: latency (p50/p99) of radius and nearest-resource questions at 10,000 and
100,000 features, through the product's `SpatialQueries` on both back ends, each against a
sequential-scan baseline measured in the same run.

The features are rows of the real `rm_resources` read-model table (its own DDL, PostGIS
columns and GiST indexes included), spread over the demo city, ten resource kinds, most of
them available. Questions come from random places in the city:

- radius: resources within 500 m, first page of 100, nearest first, with the total count;
- nearest: the 5 nearest available ambulances (a tenth of the rows are ambulances).

Back ends and baselines:

- embedded: `EmbeddedSpatialQueries` (SQLite + in-memory STRtree); its baseline reads every
  row's position from SQLite for each question (the filters in SQL), measures every
  geodesic distance with numpy and sorts: what the embedded mode does without the index;
- PostGIS: `PostgisSpatialQueries` (GiST on geography, KNN); its baseline runs the very same
  SQL with index and bitmap scans disabled, so the planner scans the table.

Every answer of a baseline is checked against its back end's, and the back ends against
each other (same ids).

Usage: python bench/spatial_queries.py [--sizes 10000 100000] [--queries 300] [--no-postgres]
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import psycopg

from cityops.domain.geometry import GeoPoint
from cityops.maps import load_demo_city
from cityops.maps.spatial_index import geodesic_distances_m
from cityops.projections.emergency import resource_table
from cityops.projections.spatial import Feature, FeatureQuery, SpatialQueries
from cityops.projections.spatial_embedded import EmbeddedSpatialQueries
from cityops.projections.spatial_postgis import PostgisSpatialQueries
from cityops.storage import PostgresReadStore, ReadStore, SqliteReadStore

sys.path.insert(0, str(Path(__file__).parent))
import summary  # bench/summary.py

KINDS = ("ambulance", "fire-engine", "rescue-team", "police-car", "water-tanker",
         "excavator", "supply-depot", "medical-team", "hazmat-team", "generator")
RADIUS_M = 500.0
PAGE = 100
NEAREST = 5
NEAREST_QUERY = FeatureQuery(where={"kind": ("ambulance",), "status": ("available",)})
RADIUS_QUERY = FeatureQuery(limit=PAGE)
WARM_UP = 5


def synthetic_rows(count: int, seed: int, bounds: tuple[float, float, float, float]) \
        -> list[dict[str, Any]]:
    """Rows of rm_resources (columns and document) for `count` resources in `bounds`."""
    rng = np.random.default_rng(seed)
    minx, miny, maxx, maxy = bounds
    lons = rng.uniform(minx, maxx, count)
    lats = rng.uniform(miny, maxy, count)
    kinds = rng.integers(0, len(KINDS), count)
    available = rng.random(count) < 0.8
    rows = []
    for k in range(count):
        status = "available" if available[k] else "en-route"
        point = {"type": "Point", "coordinates": [float(lons[k]), float(lats[k])]}
        doc = {
            "id": str(uuid.UUID(int=rng.integers(0, 2**63) << 64 | k)),
            "version": 3, "kind": KINDS[kinds[k]], "mobile": True,
            "name": f"{KINDS[kinds[k]]} {k}", "call_sign": f"R-{k:06d}",
            "department": "emergency", "home_base": point, "capacity": 4, "stock": {},
            "speciality": "", "notes": "", "status": status,
            "status_since": "2026-11-24T08:00:00+00:00", "incident_id": None,
            "out_of_service_reason": None,
            "position": {"point": point, "at": "2026-11-24T08:00:00+00:00"},
            "registered_at": "2026-11-24T07:00:00+00:00",
            "history": [{"status": "available", "at": "2026-11-24T07:00:00+00:00",
                         "incident_id": None}],
        }
        rows.append({"id": doc["id"], "version": 3, "status": status,
                     "lon": float(lons[k]), "lat": float(lats[k]),
                     "created_at": "2026-11-24T07:00:00+00:00",
                     "updated_at": "2026-11-24T08:00:00+00:00", "kind": doc["kind"],
                     "department": "emergency", "call_sign": doc["call_sign"],
                     "incident_id": None, "doc": json.dumps(doc, sort_keys=True)})
    return rows


def load_sqlite(path: Path, rows: list[dict[str, Any]]) -> SqliteReadStore:
    """A SQLite read store holding the rows in the real rm_resources table."""
    table = resource_table()
    store = SqliteReadStore(path)
    names = ["id", *(c.name for c in table.all_columns), "doc"]
    with store.transaction() as txn:
        for statement in table.ddl("sqlite"):
            txn.execute(statement)
        txn.executemany(f"INSERT INTO {table.table} ({', '.join(names)}) "
                        f"VALUES ({', '.join(['%s'] * len(names))})",
                        [[row[n] for n in names] for row in rows])
    return store


def load_postgres(url: str, rows: list[dict[str, Any]]) -> None:
    """The rows in the real rm_resources table of a PostGIS database (COPY, then ANALYZE)."""
    table = resource_table()
    names = ["id", *(c.name for c in table.all_columns), "doc"]
    with psycopg.connect(url, autocommit=True) as connection:
        for statement in table.ddl("postgres"):
            connection.execute(statement)
        with connection.cursor() as cursor, cursor.copy(
                f"COPY {table.table} ({', '.join(names)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([row[n] for n in names])
        connection.execute(f"ANALYZE {table.table}")


class SqliteScan:
    """The embedded baseline: every row's position read and measured for each question."""

    def __init__(self, store: ReadStore) -> None:
        self.store = store

    def _scan(self, where: str, params: Sequence[Any], centre: GeoPoint) \
            -> tuple[list[str], np.ndarray]:
        with self.store.transaction() as txn:
            txn.execute(f"SELECT id, lon, lat FROM rm_resources{where}", params)
            rows = txn.fetchall()
        ids = [r[0] for r in rows]
        distances = geodesic_distances_m(centre.lon, centre.lat, [r[1] for r in rows],
                                         [r[2] for r in rows])
        return ids, distances

    def _documents(self, ids: list[str]) -> list[dict[str, Any]]:
        if not ids:
            return []
        with self.store.transaction() as txn:
            txn.execute(f"SELECT id, doc FROM rm_resources WHERE id IN "
                        f"({', '.join(['%s'] * len(ids))})", ids)
            docs = {r[0]: json.loads(r[1]) for r in txn.fetchall()}
        return [docs[i] for i in ids]

    def within_radius(self, centre: GeoPoint) -> tuple[list[str], int]:
        """The radius question's first page and count, by scanning."""
        ids, distances = self._scan("", (), centre)
        inside = np.flatnonzero(distances <= RADIUS_M)
        order = inside[np.lexsort((np.asarray(ids, dtype=object)[inside].astype(str),
                                   distances[inside]))]
        page = [ids[k] for k in order[:PAGE]]
        self._documents(page)
        return page, len(inside)

    def nearest(self, centre: GeoPoint) -> list[str]:
        """The nearest question's answer, by scanning."""
        ids, distances = self._scan(" WHERE kind = %s AND status = %s",
                                    ("ambulance", "available"), centre)
        order = np.lexsort((np.asarray(ids, dtype=object).astype(str), distances))[:NEAREST]
        page = [ids[k] for k in order]
        self._documents(page)
        return page


@dataclass
class Timing:
    """Latencies of one kind of question on one back end."""

    label: str
    seconds: list[float]

    @property
    def p50_ms(self) -> float:
        """Median latency in milliseconds."""
        return statistics.median(self.seconds) * 1000

    @property
    def p99_ms(self) -> float:
        """99th percentile latency in milliseconds."""
        return float(np.percentile(self.seconds, 99)) * 1000


def timed(label: str, origins: Sequence[GeoPoint], ask: Callable[[GeoPoint], Any]) \
        -> tuple[Timing, list[Any]]:
    """Latency of `ask` at each origin (after a few warm-up questions), and its answers."""
    for origin in origins[:WARM_UP]:
        ask(origin)
    seconds, answers = [], []
    for origin in origins:
        started = time.perf_counter()
        answer = ask(origin)
        seconds.append(time.perf_counter() - started)
        answers.append(answer)
    return Timing(label, seconds), answers


def _ids(features: list[Feature]) -> list[str]:
    return [f.id for f in features]


def measure_back_end(name: str, spatial: SpatialQueries, baseline_radius: Callable[..., Any],
                     baseline_nearest: Callable[..., Any], origins: list[GeoPoint],
                     baseline_origins: list[GeoPoint]) -> dict[str, Any]:
    """Time a back end and its baseline on the same questions; check they agree."""
    radius, radius_answers = timed(f"{name} radius", origins, lambda o: spatial.within_radius(
        "resources", o, RADIUS_M, RADIUS_QUERY))
    nearest, nearest_answers = timed(f"{name} nearest", origins, lambda o: spatial.nearest(
        "resources", o, NEAREST, NEAREST_QUERY))
    base_radius, base_radius_answers = timed("scan radius", baseline_origins, baseline_radius)
    base_nearest, base_nearest_answers = timed("scan nearest", baseline_origins,
                                               baseline_nearest)
    for k in range(len(baseline_origins)):
        page, matched = base_radius_answers[k]
        assert page == _ids(radius_answers[k].features), f"{name}: radius #{k} differs"
        assert matched == radius_answers[k].matched, f"{name}: radius count #{k} differs"
        assert base_nearest_answers[k] == _ids(nearest_answers[k]), \
            f"{name}: nearest #{k} differs"
    return {"radius": radius, "nearest": nearest, "scan radius": base_radius,
            "scan nearest": base_nearest,
            "answers": ([_ids(p.features) for p in radius_answers],
                        [_ids(n) for n in nearest_answers]),
            "matched": statistics.mean(p.matched for p in radius_answers)}


def postgis_scan(url: str, city: Any) -> tuple[PostgresReadStore, PostgisSpatialQueries]:
    """The same SQL on connections whose planner may not use index or bitmap scans."""
    options = quote("-c enable_indexscan=off -c enable_bitmapscan=off")
    store = PostgresReadStore(f"{url}?options={options}", None, 2)
    return store, PostgisSpatialQueries(store, [resource_table()], city)


def main(argv: list[str] | None = None) -> int:
    """Load each size into both back ends, time the questions, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--baseline-queries", type=int, default=100)
    parser.add_argument("--no-postgres", action="store_true")
    summary.add_option(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)

    city = load_demo_city()
    rng = np.random.default_rng(7)
    minx, miny, maxx, maxy = city.map.bounds
    origins: list[GeoPoint] = []
    while len(origins) < args.queries:
        point = GeoPoint(lon=float(rng.uniform(minx, maxx)), lat=float(rng.uniform(miny, maxy)))
        if city.map.contains(point):
            origins.append(point)
    baseline_origins = origins[:args.baseline_queries]
    scratch = Path(tempfile.mkdtemp(prefix="cityops-bench-spatial-"))
    try:
        report = measure_sizes(args, city, origins, baseline_origins, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print_report(args, report)
    summary.write(args.summary, "spatial_queries.py", summary_rows(report))
    return 0


def measure_sizes(args: argparse.Namespace, city: Any, origins: list[GeoPoint],
                  baseline_origins: list[GeoPoint],
                  scratch: Path) -> list[tuple[int, str, dict[str, Any]]]:
    """Measure both back ends at each size (SQLite files in `scratch`)."""
    report: list[tuple[int, str, dict[str, Any]]] = []
    for size in args.sizes:
        rows = synthetic_rows(size, seed=size, bounds=city.map.bounds)
        print(f"\n{size:,} features", flush=True)
        store = load_sqlite(scratch / f"rm-{size}.sqlite", rows)
        embedded = EmbeddedSpatialQueries(store, [resource_table()], city)
        started = time.perf_counter()
        embedded.features("resources", FeatureQuery(limit=1))
        print(f"  embedded index loaded from SQLite in {time.perf_counter() - started:.2f} s")
        scan = SqliteScan(store)
        embedded_result = measure_back_end(
            "embedded", embedded, scan.within_radius, scan.nearest, origins, baseline_origins)
        report.append((size, "embedded (SQLite + STRtree)", embedded_result))
        store.close()
        if args.no_postgres:
            continue
        from scratch_database import scratch_database

        with scratch_database(f"spatial{size}") as url:
            started = time.perf_counter()
            load_postgres(url, rows)
            print(f"  PostGIS table loaded (COPY, generated geometry, GiST) in "
                  f"{time.perf_counter() - started:.1f} s")
            pg_store = PostgresReadStore(url, None, 2)
            postgis = PostgisSpatialQueries(pg_store, [resource_table()], city)
            seq_store, seq = postgis_scan(url, city)

            def scan_radius(origin: GeoPoint, seq: SpatialQueries = seq) \
                    -> tuple[list[str], int]:
                """The radius question on the sequential-scan connections."""
                page = seq.within_radius("resources", origin, RADIUS_M, RADIUS_QUERY)
                return _ids(page.features), page.matched

            def scan_nearest(origin: GeoPoint, seq: SpatialQueries = seq) -> list[str]:
                """The nearest question on the sequential-scan connections."""
                return _ids(seq.nearest("resources", origin, NEAREST, NEAREST_QUERY))

            try:
                postgis_result = measure_back_end("PostGIS", postgis, scan_radius,
                                                  scan_nearest, origins, baseline_origins)
            finally:
                pg_store.close()
                seq_store.close()
        assert postgis_result["answers"] == embedded_result["answers"], \
            "embedded and PostGIS answers differ"
        print("  embedded and PostGIS gave the same answers to every question")
        report.append((size, "PostGIS (GiST, geography)", postgis_result))
    return report


def print_report(args: argparse.Namespace,
                 report: list[tuple[int, str, dict[str, Any]]]) -> None:
    """The table of latencies and ratios."""
    print(f"\nRadius: within {RADIUS_M:.0f} m, first {PAGE} nearest first, with the count. "
          f"Nearest: {NEAREST} available ambulances.")
    print(f"{args.queries} questions per measurement ({args.baseline_queries} for the "
          "sequential-scan baselines), latencies in ms.\n")
    header = (f"{'features':>9}  {'back end':<28} {'question':<8} {'p50':>8} {'p99':>8}   "
              f"{'scan p50':>9} {'scan p99':>9}   {'x p50':>6} {'x p99':>6}")
    print(header)
    print("-" * len(header))
    for size, name, result in report:
        for question in ("radius", "nearest"):
            fast, slow = result[question], result[f"scan {question}"]
            print(f"{size:>9,}  {name:<28} {question:<8} {fast.p50_ms:>8.2f} "
                  f"{fast.p99_ms:>8.2f}   {slow.p50_ms:>9.2f} {slow.p99_ms:>9.2f}   "
                  f"{slow.p50_ms / fast.p50_ms:>6.1f} {slow.p99_ms / fast.p99_ms:>6.1f}")
    for size, name, result in report:
        if name.startswith("embedded"):
            print(f"\nAt {size:,} features a radius question matched "
                  f"{result['matched']:.0f} features on average.")


def summary_rows(report: list[tuple[int, str, dict[str, Any]]]) -> list[summary.Row]:
    """The summary's rows (bench/run-all): each question against its scan baseline; the
    issue's target is the PostGIS radius p99 under 20 ms at 100,000 features."""
    rows = []
    for size, name, result in report:
        for question in ("radius", "nearest"):
            fast, slow = result[question], result[f"scan {question}"]
            target = question == "radius" and name.startswith("PostGIS") and size >= 100_000
            rows.append(summary.Row(
                name=f"{question} @ {size:,}, {name.split()[0]}",
                baseline=f"scan p50 {slow.p50_ms:.1f}, p99 {slow.p99_ms:.1f} ms",
                figure=f"p50 {fast.p50_ms:.1f}, p99 {fast.p99_ms:.1f} ms",
                ratio=slow.p99_ms / fast.p99_ms,
                ratio_text=f"{slow.p99_ms / fast.p99_ms:.1f}x faster p99",
                target="p99 < 20 ms" if target else "",
                met=fast.p99_ms < 20 if target else None))
    return rows


if __name__ == "__main__":
    sys.exit(main())
