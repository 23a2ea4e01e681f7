"""Benchmark: locating 100,000 points in a unit grid of about 100,000 cells.

The grid is the product's own: a synthetic city of about 1,000 km² around the demo city's
place (Voronoi communities grouped into streets and districts), checked by
`AdministrativeHierarchy.build`, and gridded by `CityMap` (100 m cells clipped to the
communities), as a real city is. Random points over the city's bounding box (some fall
outside it) are then located, and every method must give the same cells:

- `CityMap.cell_indices`: the product's path, one vectorised STRtree query for all points;
- PostGIS: the cells and points in tables with GiST indexes, one spatial join
  (`ST_Intersects`), the pairs fetched to the client (loading the tables is timed apart);
- baseline, vectorised without an index: for each point, `shapely.contains_xy` over every
  cell (a sample of points, extrapolated to all);
- baseline, naive: for each point, a Python loop over the cells' prepared polygons until one
  contains it (a smaller sample, extrapolated; the loop stops at the first hit, so on
  average it tests half the cells).

Usage: python bench/spatial_locate.py [--points 100000] [--side-km 31.7] [--no-postgres]
"""

from __future__ import annotations

import argparse
import io
import logging
import sys
import time
from typing import Any

import geopandas as gpd
import numpy as np
import psycopg
import shapely

from cityops.domain.geometry import GeoPoint
from cityops.maps import AdministrativeHierarchy, CityMap, Inspector, MetricProjection
from cityops.maps.citymap import SNAP_M
from cityops.maps.crs import WGS84_CRS

CENTRE = (118.80, 32.05)


def synthetic_city(side_km: float, communities: int, seed: int) -> CityMap:
    """A square city of `side_km` with `communities` Voronoi communities, 12 streets in 4
    districts, gridded into 100 m cells by the product's own code."""
    projection = MetricProjection.from_crs("EPSG:32650")
    x, y = projection.points_to_metric([CENTRE[0]], [CENTRE[1]])
    half = side_km * 500.0
    outline = shapely.box(x[0] - half, y[0] - half, x[0] + half, y[0] + half)
    rng = np.random.default_rng(seed)
    seeds = shapely.multipoints(np.column_stack([
        rng.uniform(x[0] - half, x[0] + half, communities),
        rng.uniform(y[0] - half, y[0] + half, communities)]))
    cells = shapely.get_parts(shapely.voronoi_polygons(seeds, extend_to=outline))
    shapes = shapely.intersection(cells, outline)
    centres = shapely.centroid(shapes)
    cx, cy = shapely.get_x(centres), shapely.get_y(centres)
    district_of = (cx > x[0]).astype(int) * 2 + (cy > y[0]).astype(int)
    rows: list[tuple[str, str, str, Any]] = []
    for district in range(4):
        members = np.flatnonzero(district_of == district)
        members = members[np.argsort(cx[members])]
        for street, chunk in enumerate(np.array_split(members, 3)):
            for number, k in enumerate(chunk):
                d, s = f"D{district + 1:02d}", f"S{street + 1:02d}"
                rows.append((d, f"{d}-{s}", f"{d}-{s}-C{number + 1:02d}", shapes[k]))

    def frame(records: list[dict[str, Any]], metric: list[Any]) -> gpd.GeoDataFrame:
        """A WGS84 layer from records and metric shapes."""
        return gpd.GeoDataFrame(records, geometry=list(projection.to_wgs84(
            np.asarray(metric, dtype=object))), crs=WGS84_CRS)

    community_frame = frame([{"code": c, "name": c, "street": s} for _, s, c, _ in rows],
                            [g for *_, g in rows])
    streets = sorted({(d, s) for d, s, _, _ in rows})
    street_frame = frame(
        [{"code": s, "name": s, "district": d} for d, s in streets],
        [shapely.union_all([g for _, s2, _, g in rows if s2 == s]) for _, s in streets])
    districts = sorted({d for d, *_ in rows})
    district_frame = frame(
        [{"code": d, "name": d} for d in districts],
        [shapely.union_all([g for d2, _, _, g in rows if d2 == d]) for d in districts])
    hierarchy = AdministrativeHierarchy.build(district_frame, street_frame, community_frame,
                                              projection)
    inspectors = [Inspector(id=f"insp-{d}", name=d, district=d,
                            communities=tuple(c for d2, _, c, _ in rows if d2 == d))
                  for d in districts]
    return CityMap("Bench City", projection, hierarchy, inspectors)


def random_points(city: CityMap, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Uniform random points over the city's bounding box and a small margin."""
    minx, miny, maxx, maxy = city.bounds
    rng = np.random.default_rng(seed)
    # A margin around the city: some points are outside it, as real reports can be.
    dx, dy = (maxx - minx) * 0.02, (maxy - miny) * 0.02
    return (rng.uniform(minx - dx, maxx + dx, count), rng.uniform(miny - dy, maxy + dy, count))


def locate_postgis(url: str, cells: gpd.GeoDataFrame, lons: np.ndarray,
                   lats: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Cell row of each point by a PostGIS spatial join; (rows, load seconds, join s)."""
    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("CREATE TABLE bench_cells (k INTEGER PRIMARY KEY, "
                           "geom geometry(Polygon, 4326) NOT NULL)")
        connection.execute("CREATE TABLE bench_points (k INTEGER PRIMARY KEY, "
                           "geom geometry(Point, 4326) NOT NULL)")
        with connection.cursor() as cursor:
            with cursor.copy("COPY bench_cells (k, geom) FROM STDIN") as copy:
                for k, wkb in enumerate(shapely.to_wkb(np.asarray(cells.geometry.values),
                                                       hex=True, include_srid=False)):
                    copy.write_row((k, f"SRID=4326;{wkb}"))
            buffer = io.StringIO()
            for k in range(len(lons)):
                buffer.write(f"{k}\tSRID=4326;POINT({float(lons[k])!r} {float(lats[k])!r})\n")
            with cursor.copy("COPY bench_points (k, geom) FROM STDIN") as copy:
                copy.write(buffer.getvalue())
        connection.execute("CREATE INDEX ON bench_cells USING GIST (geom)")
        connection.execute("CREATE INDEX ON bench_points USING GIST (geom)")
        connection.execute("ANALYZE bench_cells")
        connection.execute("ANALYZE bench_points")
        loaded = time.perf_counter() - started
        started = time.perf_counter()
        # First cell in code order for a point on an edge, as CityMap does.
        rows = connection.execute(
            "SELECT p.k, min(c.k) FROM bench_points p JOIN bench_cells c "
            "ON ST_Intersects(c.geom, p.geom) GROUP BY p.k").fetchall()
        joined = time.perf_counter() - started
        plan = " ".join(r[0] for r in connection.execute(
            "EXPLAIN SELECT p.k, min(c.k) FROM bench_points p JOIN bench_cells c "
            "ON ST_Intersects(c.geom, p.geom) GROUP BY p.k").fetchall())
    if "bench_cells_geom_idx" not in plan and "bench_points_geom_idx" not in plan:
        print("  (warning: the join's plan uses no GiST index)")
    found = np.full(len(lons), -1, dtype=np.intp)
    for point, cell in rows:
        found[point] = cell
    return found, loaded, joined


def locate_without_index(polygons: np.ndarray, lons: np.ndarray,
                         lats: np.ndarray) -> np.ndarray:
    """Each point against every cell at once (vectorised), first containing cell."""
    shapely.prepare(polygons)
    found = np.full(len(lons), -1, dtype=np.intp)
    for k in range(len(lons)):
        hits = np.flatnonzero(shapely.intersects_xy(polygons, lons[k], lats[k]))
        if len(hits):
            found[k] = hits[0]
    return found


def locate_naively(polygons: np.ndarray, lons: np.ndarray, lats: np.ndarray) -> np.ndarray:
    """Each point against the cells one by one in Python, stopping at the first hit."""
    shapely.prepare(polygons)
    cells = list(polygons)
    found = np.full(len(lons), -1, dtype=np.intp)
    for k in range(len(lons)):
        point = shapely.Point(lons[k], lats[k])
        for index, cell in enumerate(cells):
            if cell.intersects(point):
                found[k] = index
                break
    return found


def check_agreement(city: CityMap, found: np.ndarray, located: np.ndarray, lons: np.ndarray,
                    lats: np.ndarray, what: str) -> None:
    """A baseline must find the same cells as CityMap, except for points CityMap snapped
    into a cell from a gap narrower than SNAP_M (found outside by a plain intersection)."""
    for k in np.flatnonzero(found != located):
        snapped = found[k] == -1 and located[k] >= 0 and city.distance_outside_m(
            GeoPoint(lon=float(lons[k]), lat=float(lats[k]))) <= SNAP_M
        if not snapped:
            raise AssertionError(f"{what} disagrees with CityMap at point #{k}")


def main(argv: list[str] | None = None) -> int:
    """Build the grid, locate the points every way, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--side-km", type=float, default=31.7,
                        help="side of the square city (31.7 km: about 100,000 cells)")
    parser.add_argument("--communities", type=int, default=120)
    parser.add_argument("--vector-sample", type=int, default=1000,
                        help="points located by the vectorised no-index baseline")
    parser.add_argument("--naive-sample", type=int, default=200,
                        help="points located by the naive baseline")
    parser.add_argument("--no-postgres", action="store_true")
    import summary  # bench/summary.py (bench/ is on the path when run)

    summary.add_option(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)

    started = time.perf_counter()
    city = synthetic_city(args.side_km, args.communities, seed=1)
    cells = city.cells
    built = time.perf_counter() - started
    print(f"Grid: {len(cells):,} cells in {len(city.communities)} communities, "
          f"built by CityMap in {built:.1f} s")
    lons, lats = random_points(city, args.points, seed=2)
    polygons = np.asarray(cells.geometry.values)

    results: list[tuple[str, float, str]] = []
    started = time.perf_counter()
    located = city.cell_indices(lons, lats)
    tree_s = time.perf_counter() - started
    inside = int(np.count_nonzero(located >= 0))
    print(f"Points: {args.points:,}, {inside:,} inside the city")
    results.append(("CityMap.cell_indices (STRtree, vectorised)", tree_s, "measured"))

    if not args.no_postgres:
        from scratch_database import scratch_database

        with scratch_database("locate") as url:
            by_postgis, loaded, joined = locate_postgis(url, cells, lons, lats)
        differ = np.flatnonzero(by_postgis != located)
        # CityMap puts a point in a gap narrower than SNAP_M (0.5 m) into the nearest cell,
        # so a point just outside the city's edge is in its nearest cell; PostGIS's
        # ST_Intersects says outside. Anything else would be a real disagreement.
        snapped = int(np.count_nonzero((by_postgis[differ] == -1) & (located[differ] >= 0)))
        print(f"PostGIS: tables loaded and indexed in {loaded:.1f} s; {len(differ)} points "
              f"located differently, {snapped} of them snapped by CityMap into a cell "
              f"within {SNAP_M} m")
        if snapped != len(differ):
            print("  (warning: PostGIS and CityMap disagree beyond snapping)")
        results.append(("PostGIS spatial join (GiST), pairs fetched", joined, "measured"))

    sample = np.random.default_rng(3).choice(args.points, args.vector_sample, replace=False)
    started = time.perf_counter()
    vector = locate_without_index(polygons, lons[sample], lats[sample])
    per_point = (time.perf_counter() - started) / len(sample)
    check_agreement(city, vector, located[sample], lons[sample], lats[sample],
                    "the no-index baseline")
    results.append(("baseline: contains over every cell, no index", per_point * args.points,
                    f"{len(sample)} points, extrapolated"))

    sample = sample[:args.naive_sample]
    started = time.perf_counter()
    naive = locate_naively(polygons, lons[sample], lats[sample])
    per_point = (time.perf_counter() - started) / len(sample)
    check_agreement(city, naive, located[sample], lons[sample], lats[sample],
                    "the naive baseline")
    results.append(("baseline: Python loop over prepared cells", per_point * args.points,
                    f"{len(sample)} points, extrapolated"))

    naive_s = results[-1][1]
    print()
    print(f"Locating {args.points:,} points in {len(cells):,} cells")
    print(f"{'method':<46} {'seconds':>12} {'points/s':>12} {'x naive':>10}  how")
    for name, seconds, how in results:
        print(f"{name:<46} {seconds:>12,.3f} {args.points / seconds:>12,.0f} "
              f"{naive_s / seconds:>10,.0f}  {how}")
    fastest = min(s for _, s, _ in results)
    print(f"\nThe fastest method is {naive_s / fastest:,.0f}x the naive loop "
          f"({naive_s / 60:,.1f} min extrapolated for all points).")
    summary.write(args.summary, "spatial_locate.py", [summary.Row(
        name=name, baseline=f"naive loop {args.points / naive_s:,.0f} points/s",
        figure=f"{args.points / seconds:,.0f} points/s", ratio=naive_s / seconds,
        ratio_text=f"{naive_s / seconds:,.0f}x naive") for name, seconds, _ in results
        if not name.startswith("baseline")])
    return 0


if __name__ == "__main__":
    sys.exit(main())
