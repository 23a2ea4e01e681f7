"""The embedded back end (SQLite + in-memory STRtree) and the PostGIS back end give the same
answers to the same spatial questions about the same demo day: same features in the same
order, same documents, same shapes, distances within half a metre.

The day is played through the applications (the simulator's commands) once into SQLite and
once into a fresh PostgreSQL database; the read models are built by the followers, as in
production.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from uuid import NAMESPACE_URL, uuid5

import numpy as np
import psycopg
import pytest
import shapely

from cityops.bootstrap import CitySystem
from cityops.command_center.scopes import SCOPE_DOCUMENT_KEYS, feature_in_scope
from cityops.domain.actors import Actor, Role
from cityops.domain.commands import CommandContext
from cityops.domain.geometry import Area, GeoPoint
from cityops.domain.incidents.commands import ReportIncident
from cityops.projections.spatial import (
    EVERYTHING,
    Feature,
    FeaturePage,
    FeatureQuery,
    SpatialQueries,
    facilities_in_hazard_zone,
    hazard_sources_near_incident,
)
from cityops.projections.spatial_embedded import EmbeddedSpatialQueries
from cityops.projections.spatial_postgis import PostgisSpatialQueries
from cityops.settings import Settings
from cityops.simulator import build_demo

pytestmark = pytest.mark.postgres

DEMO_DATE = date(2026, 11, 24)
HOURS = 8
DISTANCE_TOLERANCE_M = 0.5


FLOOD_AREAS = (
    Area.from_geojson({"type": "Polygon", "coordinates": [[
        [118.78, 32.03], [118.80, 32.03], [118.80, 32.045], [118.78, 32.045], [118.78, 32.03]]]}),
    Area.from_geojson({"type": "MultiPolygon", "coordinates": [
        [[[118.81, 32.05], [118.83, 32.05], [118.83, 32.06], [118.81, 32.05]]],
        [[[118.76, 32.06], [118.77, 32.06], [118.77, 32.07], [118.76, 32.06]]]]}),
)


def play(settings: Settings) -> CitySystem:
    """The demo day, and two floods with affected areas (the day itself has none)."""
    system, demo = build_demo(settings, seed=7, speed=0.0, today=DEMO_DATE)
    demo.run_until(demo.start + timedelta(hours=HOURS))
    for number, area in enumerate(FLOOD_AREAS):
        centre = area.shape.representative_point()
        system.incidents.handle(
            ReportIncident(category="natural-disaster", incident_type="flood",
                title=f"Flood {number}", location=GeoPoint(lon=centre.x, lat=centre.y),
                source="department", affected_area=area,
                incident_id=uuid5(NAMESPACE_URL, f"cityops-test-flood-{number}")),
            CommandContext(actor=Actor("duty-officer", Role.DISPATCHER)))
    system.catch_up()
    assert demo.failures == []
    return system


@pytest.fixture(scope="module")
def systems(tmp_path_factory: pytest.TempPathFactory,
            test_databases: Any) -> Iterator[tuple[CitySystem, CitySystem]]:
    url = test_databases.create("spatial")
    root = tmp_path_factory.mktemp("spatial")
    embedded = play(Settings(data_dir=root / "embedded"))
    postgis = play(Settings(data_dir=root / "postgis", database_url=url,
                            database_pool_size=2))
    try:
        yield embedded, postgis
    finally:
        embedded.close()
        postgis.close()
        test_databases.drop(url)


def _same_feature(a: Feature, b: Feature, where: str) -> None:
    assert a.id == b.id, where
    assert a.doc == b.doc, f"{where}: documents of {a.id} differ"
    assert a.geometry is not None and b.geometry is not None
    assert a.geometry.geom_type == b.geometry.geom_type, where
    assert shapely.equals_exact(shapely.normalize(a.geometry), shapely.normalize(b.geometry),
                                tolerance=1e-9), f"{where}: shapes of {a.id} differ"
    if a.distance_m is None:
        assert b.distance_m is None, where
    else:
        assert b.distance_m is not None
        assert abs(a.distance_m - b.distance_m) <= DISTANCE_TOLERANCE_M, where


def _same_features(a: list[Feature], b: list[Feature], where: str) -> None:
    assert [f.id for f in a] == [f.id for f in b], where
    for fa, fb in zip(a, b, strict=True):
        _same_feature(fa, fb, where)


def _same_page(a: FeaturePage, b: FeaturePage, where: str) -> None:
    assert a.matched == b.matched, where
    _same_features(a.features, b.features, where)


Question = Callable[[SpatialQueries], FeaturePage | list[Feature]]


def _ask_both(systems: tuple[CitySystem, CitySystem], questions: dict[str, Question]) -> int:
    """Ask both back ends every question; returns how many features were compared."""
    embedded, postgis = systems
    assert isinstance(embedded.spatial, EmbeddedSpatialQueries)
    assert isinstance(postgis.spatial, PostgisSpatialQueries)
    compared = 0
    for where, question in questions.items():
        a, b = question(embedded.spatial), question(postgis.spatial)
        if isinstance(a, FeaturePage) and isinstance(b, FeaturePage):
            _same_page(a, b, where)
            compared += len(a.features)
        else:
            assert isinstance(a, list) and isinstance(b, list)
            _same_features(a, b, where)
            compared += len(a)
    return compared


def _places(system: CitySystem, count: int) -> list[GeoPoint]:
    """Seeded points inside the city, and the facilities' locations."""
    rng = np.random.default_rng(42)
    minx, miny, maxx, maxy = system.city.map.bounds
    points = []
    while len(points) < count:
        point = GeoPoint(lon=float(rng.uniform(minx, maxx)), lat=float(rng.uniform(miny, maxy)))
        if system.city.map.contains(point):
            points.append(point)
    return points + [f.location for f in system.city.facilities[:5]]


def test_every_layer_has_the_same_features(systems: tuple[CitySystem, CitySystem]) -> None:
    embedded, _ = systems
    questions: dict[str, Question] = {}
    for layer in embedded.spatial.layers:
        questions[f"{layer}: all"] = lambda s, layer=layer: s.features(layer, EVERYTHING)
        questions[f"{layer}: page 2"] = lambda s, layer=layer: s.features(
            layer, FeatureQuery(limit=7, offset=7))
    compared = _ask_both(systems, questions)
    counts = {layer: embedded.spatial.features(layer, FeatureQuery(limit=0)).matched
              for layer in embedded.spatial.layers}
    assert counts["incident-areas"] == len(FLOOD_AREAS)
    areas = embedded.spatial.features("incident-areas", EVERYTHING).features
    assert {f.geometry.geom_type for f in areas if f.geometry} == {"Polygon", "MultiPolygon"}
    assert counts["grid-cells"] == len(embedded.city.map.cells)
    assert counts["grid-cases"] > 100 and counts["hotline-tickets"] > 50
    assert counts["hazard-zones"] == counts["hazard-sources"] > 0
    assert compared > 5000


def test_bbox_polygon_and_time_questions_agree(systems: tuple[CitySystem, CitySystem]) -> None:
    embedded, _ = systems
    districts = embedded.city.map.districts
    zones = embedded.spatial.features("hazard-zones", EVERYTHING).features
    minx, miny, maxx, maxy = embedded.city.map.bounds
    middle = ((minx + maxx) / 2, (miny + maxy) / 2)
    box = (middle[0] - 0.015, middle[1] - 0.01, middle[0] + 0.015, middle[1] + 0.01)
    start = embedded.grid_cases.clock() - timedelta(hours=HOURS)
    window = ((start + timedelta(hours=2)).isoformat(), (start + timedelta(hours=4)).isoformat())
    questions: dict[str, Question] = {}
    for layer in ("grid-cases", "hotline-tickets", "resources", "facilities", "grid-cells",
                  "hazard-zones", "communities", "incident-areas"):
        questions[f"{layer} in bbox"] = lambda s, layer=layer: s.features(
            layer, FeatureQuery(bbox=box, limit=None))
        for code, shape in zip(districts["code"], districts.geometry, strict=True):
            questions[f"{layer} in {code}"] = lambda s, layer=layer, shape=shape: s.features(
                layer, FeatureQuery(within=shape, limit=25, offset=5))
    for zone in zones:
        questions[f"cases in zone of {zone.doc['name']}"] = lambda s, zone=zone: s.features(
            "grid-cases", FeatureQuery(within=zone.geometry, limit=None))
    questions["open cases in bbox"] = lambda s: s.features(
        "grid-cases", FeatureQuery(bbox=box, where={"is_open": (True,)}, limit=None))
    # Boxes with a case on their lower-left and upper-right corners: edges are inside
    # (PostGIS compares a point's coordinates with the box, shapely intersects).
    corner = next(f for f in embedded.spatial.features("grid-cases", EVERYTHING).features
                  if f.geometry is not None)
    x, y = corner.geometry.x, corner.geometry.y
    for name, edge_box in (("above right of", (x, y, x + 0.01, y + 0.01)),
                           ("below left of", (x - 0.01, y - 0.01, x, y)),
                           ("exactly at", (x, y, x, y))):
        questions[f"cases {name} a case"] = lambda s, edge_box=edge_box: s.features(
            "grid-cases", FeatureQuery(bbox=edge_box, limit=None))
        assert corner.id in {f.id for f in embedded.spatial.features(
            "grid-cases", FeatureQuery(bbox=edge_box, limit=None)).features}, name
    questions["cases reported 2-4 h into the day"] = lambda s: s.features(
        "grid-cases", FeatureQuery(period=window, limit=None))
    questions["closed tickets of two topics"] = lambda s: s.features(
        "hotline-tickets", FeatureQuery(where={"status": ("closed",),
                                               "topic": ("garbage", "noise")}, limit=None))
    assert _ask_both(systems, questions) > 1000


def test_radius_and_nearest_questions_agree(systems: tuple[CitySystem, CitySystem]) -> None:
    embedded, _ = systems
    kinds = sorted({f.doc["kind"] for f in embedded.spatial.features("resources",
                                                                      EVERYTHING).features})
    questions: dict[str, Question] = {}
    for k, place in enumerate(_places(embedded, 12)):
        for layer in ("grid-cases", "hotline-tickets", "hazard-sources", "resources",
                      "facilities"):
            for radius in (300.0, 1500.0, 5000.0):
                questions[f"{layer} within {radius} m of #{k}"] = \
                    lambda s, layer=layer, place=place, radius=radius: s.within_radius(
                        layer, place, radius, FeatureQuery(limit=None))
            questions[f"3 {layer} nearest #{k}"] = lambda s, layer=layer, place=place: \
                s.nearest(layer, place, 3, FeatureQuery())
        questions[f"open cases within 2 km of #{k}, page 2"] = lambda s, place=place: \
            s.within_radius("grid-cases", place, 2000.0,
                            FeatureQuery(where={"is_open": (True,)}, limit=5, offset=5))
        questions[f"cases within 2 km of #{k}, beyond the last page"] = \
            lambda s, place=place: s.within_radius("grid-cases", place, 2000.0,
                                                   FeatureQuery(limit=5, offset=10_000))
        for kind in kinds:
            questions[f"available {kind} nearest #{k}"] = lambda s, kind=kind, place=place: \
                s.nearest("resources", place, 2,
                          FeatureQuery(where={"kind": (kind,), "status": ("available",)}))
    assert _ask_both(systems, questions) > 2000


def test_hazard_questions_agree(systems: tuple[CitySystem, CitySystem]) -> None:
    embedded, _ = systems
    incidents = embedded.spatial.features("incidents", EVERYTHING).features
    sources = embedded.spatial.features("hazard-sources", EVERYTHING).features
    assert incidents and sources
    questions: dict[str, Question] = {}
    for incident in incidents:
        for radius in (500.0, 3000.0):
            questions[f"hazards within {radius} m of {incident.doc['title']}"] = \
                lambda s, i=incident, r=radius: hazard_sources_near_incident(s, i.id, r)
    for source in sources:
        questions[f"facilities in zone of {source.doc['name']}"] = \
            lambda s, source=source: facilities_in_hazard_zone(s, source.id)
        questions[f"schools in zone of {source.doc['name']}"] = \
            lambda s, source=source: facilities_in_hazard_zone(s, source.id, ["school"])
    _ask_both(systems, questions)
    at_risk = {source.doc["name"]: [f.id for f in facilities_in_hazard_zone(
        embedded.spatial, source.id).features] for source in sources}
    assert any(at_risk.values()), "some facility lies in some hazard zone of the demo city"


def test_postgis_geometries_are_written_with_their_rows_and_indexed(
        systems: tuple[CitySystem, CitySystem]) -> None:
    _, postgis = systems
    with postgis.store.transaction() as txn:
        txn.execute("SELECT count(*), count(*) FILTER (WHERE ST_Equals(geom, "
                    "ST_SetSRID(ST_MakePoint(lon, lat), 4326))) FROM rm_grid_cases")
        total, equal = txn.fetchone()
        assert total > 100 and equal == total
        txn.execute("SELECT count(*) FROM rm_hazard_sources WHERE impact_zone IS NULL "
                    "OR NOT ST_IsValid(impact_zone) OR NOT ST_Intersects(impact_zone, geom)")
        assert txn.fetchone()[0] == 0
        txn.execute("SELECT indexdef FROM pg_indexes WHERE tablename = 'rm_resources' "
                    "AND indexdef LIKE '%%gist%%'")
        definitions = " ".join(r[0] for r in txn.fetchall())
        assert "(geom)" in definitions and "(geom)::geography" in definitions
        # With sequential scans priced out, the planner can serve the radius and KNN forms
        # the queries use from the GiST indexes (on a small table it rightly prefers a scan).
        txn.execute("SET LOCAL enable_seqscan = off")
        txn.execute("EXPLAIN SELECT id FROM rm_resources WHERE ST_DWithin(geom::geography, "
                    "ST_SetSRID(ST_MakePoint(118.8, 32.05), 4326)::geography, 1000)")
        plan = " ".join(r[0] for r in txn.fetchall())
        assert "rm_resources_geom_geog_gist" in plan
        txn.execute("EXPLAIN SELECT id FROM rm_resources ORDER BY geom::geography <-> "
                    "ST_SetSRID(ST_MakePoint(118.8, 32.05), 4326)::geography LIMIT 3")
        plan = " ".join(r[0] for r in txn.fetchall())
        assert "rm_resources_geom_geog_gist" in plan
        txn.execute("EXPLAIN SELECT id FROM map_grid_cells WHERE ST_Intersects(geom, "
                    "ST_MakeEnvelope(118.79, 32.04, 118.80, 32.05, 4326))")
        plan = " ".join(r[0] for r in txn.fetchall())
        assert "map_grid_cells_geom_gist" in plan


def test_the_city_layers_are_published_once(systems: tuple[CitySystem, CitySystem],
                                            tmp_path: Path) -> None:
    _, postgis = systems
    assert isinstance(postgis.spatial, PostgisSpatialQueries)
    with postgis.store.transaction() as txn:
        txn.execute("SELECT xmin::text FROM map_grid_cells ORDER BY id LIMIT 1")
        before = txn.fetchone()[0]
    postgis.spatial.publish_city()  # what a second process does when it starts
    with postgis.store.transaction() as txn:
        txn.execute("SELECT xmin::text, count(*) OVER () FROM map_grid_cells ORDER BY id "
                    "LIMIT 1")
        after, count = txn.fetchone()
    assert after == before, "an unchanged city is not rewritten"
    assert count == len(postgis.city.map.cells)


def test_a_layer_page_is_read_in_bytewise_id_order_from_an_index(
        systems: tuple[CitySystem, CitySystem]) -> None:
    """Pages of a layer are in bytewise id order (`COLLATE "C"`), which the primary key (the
    database's collation) cannot give: without an index of that order every page sorted
    the whole table, and the count read every row."""
    _, postgis = systems
    url = postgis.settings.database_url
    assert url is not None
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("VACUUM")  # as autovacuum keeps a table that has been written
    with postgis.store.transaction() as txn:
        # Priced as on a large table (this one is small).
        txn.execute("SET LOCAL enable_seqscan = off")
        txn.execute("SET LOCAL enable_bitmapscan = off")
        # A point is on the map when its coordinates are there (`GeometryColumn.present`).
        for table, present in (("rm_grid_cases", "lon IS NOT NULL AND lat IS NOT NULL"),
                               ("rm_incidents", "affected_area IS NOT NULL")):
            txn.execute(f"EXPLAIN SELECT id FROM {table} WHERE {present} "
                        f'ORDER BY id COLLATE "C" LIMIT 10 OFFSET 20')
            plan = " ".join(r[0] for r in txn.fetchall())
            assert "Sort" not in plan and "id_bytes_idx" in plan, plan
            txn.execute(f"EXPLAIN SELECT count(*) FROM {table} WHERE {present}")
            plan = " ".join(r[0] for r in txn.fetchall())
            assert "Index Only Scan" in plan, plan


def test_points_in_a_bbox_are_counted_and_paged_from_an_index_alone(
        systems: tuple[CitySystem, CitySystem]) -> None:
    """Issue 14: at 1,000,000 grid cases a bbox of 1 km2 matched 25,000 rows, each read
    from its own page of the table through the GiST index (200 ms for the count, as much
    for a page). A point layer's bbox compares the row's coordinates, which an index holds
    with the id: the count and the page's ids never read the table."""
    _, postgis = systems
    url = postgis.settings.database_url
    assert url is not None
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("VACUUM")
    minx, miny, maxx, maxy = postgis.city.map.bounds
    box = ((minx + maxx) / 2 - 0.02, (miny + maxy) / 2 - 0.015,
           (minx + maxx) / 2 + 0.02, (miny + maxy) / 2 + 0.015)
    statements: list[str] = []
    store = postgis.spatial.store

    class Recording:
        def __init__(self, txn: Any) -> None:
            self.txn, self.dialect = txn, txn.dialect

        def execute(self, sql: str, params: Any = ()) -> None:
            self.txn.execute("SET LOCAL enable_seqscan = off")
            self.txn.execute("SET LOCAL enable_bitmapscan = off")
            self.txn.execute(f"EXPLAIN {sql}", params)
            statements.append(" ".join(r[0] for r in self.txn.fetchall()))
            self.txn.execute(sql, params)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.txn, name)

    reading = store.reading

    @contextmanager
    def recorded() -> Iterator[Recording]:
        with reading() as txn:
            yield Recording(txn)

    store.reading = recorded  # type: ignore[method-assign]
    try:
        page = postgis.spatial.features("grid-cases", FeatureQuery(bbox=box, limit=3))
    finally:
        del store.reading
    assert page.matched > 3 and len(page.features) == 3
    count, ids = statements[0], statements[1]
    assert "Index Only Scan using rm_grid_cases_lonlat_id_idx" in count, count
    # The ids in bytewise order: from the coordinates' index then sorted, or from the ids'
    # index (which holds the coordinates) filtered; never a walk that reads the rows.
    assert "Index Only Scan using rm_grid_cases_" in ids, ids
    assert "Index Scan using rm_grid_cases_geom" not in ids, ids
    assert "Index Scan using rm_grid_cases_lonlat" not in ids, ids


def test_layer_properties_read_only_the_document_keys_they_declare(
        systems: tuple[CitySystem, CitySystem]) -> None:
    """A page of a layer may carry only the document keys its properties declare (PostGIS
    sends no more): the properties must come out the same as from the whole document."""
    actors = [Actor("dispatcher", Role.DISPATCHER)] + [
        Actor(f"user-{department}", Role.DEPARTMENT_USER, department=department)
        for department in ("water", "sanitation", "fire")]
    for system in systems:
        now = system.clock()
        for layer in system.spatial.layers.values():
            keys = layer.document_keys
            assert keys is not None, f"{layer.id}: a property reads undeclared keys"
            whole = system.spatial.features(layer.id, EVERYTHING).features
            part = system.spatial.features(
                layer.id, FeatureQuery(limit=None, fields=keys | SCOPE_DOCUMENT_KEYS)).features
            assert [f.id for f in part] == [f.id for f in whole]
            for full, subset in zip(whole, part, strict=True):
                assert set(subset.doc) <= keys | SCOPE_DOCUMENT_KEYS | set(full.doc)
                trimmed = {k: full.doc.get(k) for k in keys}
                assert layer.properties_of(trimmed, now) == layer.properties_of(full.doc, now)
                assert layer.properties_of(subset.doc, now) == layer.properties_of(full.doc, now)
                for actor in actors:  # and who may see it, as the OGC items decide
                    assert feature_in_scope(layer.id, subset, actor, system.sharing) \
                        == feature_in_scope(layer.id, full, actor, system.sharing)
