"""The PostGIS radius question measures the spheroidal distance only in a thin ring around
the radius and for the rows that can be on the page (a local plane metric with an error
bound decides the rest). Its answers must be exactly those of measuring every row: the same
rows in the same order, the same documents, the same distances to the last bit, the same
count, for every radius, page, filter and latitude; these tests compare the two on a dense
table (ties on distance included).
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import psycopg
import pytest

from cityops.domain.geometry import GeoPoint
from cityops.maps.local_metric import local_metric
from cityops.maps.spatial_index import geodesic_distances_m
from cityops.projections.emergency import resource_table
from cityops.projections.spatial import FeatureQuery
from cityops.projections.spatial_postgis import PostgisSpatialQueries
from cityops.storage import PostgresReadStore

pytestmark = pytest.mark.postgres

KINDS = ("ambulance", "fire-engine", "police-car")
CENTRES = ((118.80, 32.05), (12.5, 55.7), (-70.6, -33.4), (100.0, 0.0))
"""Places at several latitudes, north and south."""
SPREAD_M = 6_000.0


def _rows(rng: np.random.Generator) -> list[list[Any]]:
    table = resource_table()
    rows: list[list[Any]] = []
    for lon0, lat0 in CENTRES:
        metric = local_metric(lon0, lat0, SPREAD_M)
        assert metric is not None
        count = 3_000
        lons = lon0 + rng.uniform(-SPREAD_M, SPREAD_M, count) / metric.metres_per_lon
        lats = lat0 + rng.uniform(-SPREAD_M, SPREAD_M, count) / metric.metres_per_lat
        # Some rows share a place: ties on distance are ordered by id.
        lons[:200] = lons[200:400]
        lats[:200] = lats[200:400]
        for k in range(count):
            doc = {"kind": KINDS[k % 3], "n": k}
            values = {"id": str(uuid.UUID(int=int(rng.integers(0, 2**62)) << 64 | k)),
                      "version": 1, "status": "available" if k % 4 else "en-route",
                      "lon": float(lons[k]), "lat": float(lats[k]),
                      "created_at": "2026-11-24T07:00:00+00:00",
                      "updated_at": "2026-11-24T07:00:00+00:00",
                      "kind": KINDS[k % 3], "department": "emergency",
                      "call_sign": f"R-{k}", "incident_id": None}
            rows.append([values.get(c.name) for c in table.all_columns]
                        + [values["id"], json.dumps(doc)])
    return rows


@pytest.fixture(scope="module")
def postgis(test_databases: Any) -> Iterator[PostgisSpatialQueries]:
    url = test_databases.create("radiusbound")
    table = resource_table()
    names = [c.name for c in table.all_columns] + ["id", "doc"]
    with psycopg.connect(url, autocommit=True) as connection:
        for statement in table.ddl("postgres"):
            connection.execute(statement)
        with connection.cursor() as cursor, cursor.copy(
                f"COPY {table.table} ({', '.join(names)}) FROM STDIN") as copy:
            for row in _rows(np.random.default_rng(11)):
                copy.write_row(row)
        connection.execute(f"ANALYZE {table.table}")
    store = PostgresReadStore(url, None, 2)
    yield PostgisSpatialQueries(store, [table], city=None)
    store.close()


def _questions(rng: np.random.Generator) -> Iterator[tuple[GeoPoint, float, FeatureQuery]]:
    for lon0, lat0 in CENTRES:
        metric = local_metric(lon0, lat0, SPREAD_M)
        assert metric is not None
        for radius in (0.0, 1.0, 80.0, 500.0, 1_500.0, 4_000.0):
            for query in (FeatureQuery(limit=100), FeatureQuery(limit=7, offset=30),
                          FeatureQuery(limit=None),
                          FeatureQuery(where={"kind": ("ambulance",)}, limit=20),
                          FeatureQuery(limit=10, offset=100_000)):
                dx, dy = rng.uniform(-SPREAD_M / 2, SPREAD_M / 2, 2)
                yield GeoPoint(lon=lon0 + dx / metric.metres_per_lon,
                               lat=lat0 + dy / metric.metres_per_lat), radius, query


def test_the_bounded_radius_answers_as_measuring_every_row(
        postgis: PostgisSpatialQueries) -> None:
    layer = postgis.layer("resources")
    asked = 0
    for centre, radius, query in _questions(np.random.default_rng(5)):
        metric = local_metric(centre.lon, centre.lat, radius)
        assert metric is not None
        bounded = postgis._radius_bounded(layer, centre, radius, query, metric, count=True)
        measured = postgis._radius_measured(layer, centre, radius, query, count=True)
        assert bounded[1] == measured[1], (centre, radius, query)
        assert [r[:4] for r in bounded[0]] == [r[:4] for r in measured[0]], \
            (centre, radius, query)
        asked += bounded[1]
    assert asked > 10_000  # the questions did find rows


def test_the_local_metric_stays_within_its_error_bound() -> None:
    rng = np.random.default_rng(3)
    for lat0 in (-69.0, -45.0, -10.0, 0.0, 32.05, 55.7, 69.0):
        for reach in (1.0, 500.0, 5_000.0, 20_000.0, 100_000.0):
            metric = local_metric(118.8, lat0, reach)
            if metric is None:
                assert reach >= 20_000.0  # only a huge reach measures everything exactly
                continue
            dx, dy = rng.uniform(-2 * reach, 2 * reach, (2, 5_000))
            lons = 118.8 + dx / metric.metres_per_lon
            lats = lat0 + dy / metric.metres_per_lat
            exact = geodesic_distances_m(118.8, lat0, lons, lats)
            plane = np.hypot(dx, dy)
            assert np.all(np.abs(plane - exact) <= metric.error * exact + 1e-9), \
                (lat0, reach)
            assert math.isclose(metric.distance(float(lons[0]), float(lats[0])),
                                float(plane[0]), rel_tol=1e-9)


def test_no_local_metric_near_the_poles_or_across_the_antimeridian() -> None:
    assert local_metric(0.0, 75.0, 500.0) is None
    assert local_metric(179.999, 10.0, 500.0) is None
    assert local_metric(0.0, 10.0, 500.0) is not None
