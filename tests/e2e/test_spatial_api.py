"""The spatial questions over HTTP, as a dispatcher's screen asks them: radius, within a
polygon, nearest available resources of a kind, hazard sources near an incident, facilities
in a hazard zone. The same place given in another CRS gives the same answer; bad geometry is
a 422 that says what is wrong, or an explicit repair when asked for."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest
import shapely
from fastapi.testclient import TestClient
from pyproj import Transformer

from cityops.bootstrap import CitySystem
from cityops.command_center.app import create_app
from cityops.domain.geometry import GeoPoint
from cityops.settings import Settings
from cityops.simulator import build_demo

GEOJSON = "application/geo+json"
CENTRE = (118.80, 32.05)
SQUARE = [[118.79, 32.04], [118.81, 32.04], [118.81, 32.06], [118.79, 32.06], [118.79, 32.04]]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory,
           log_in: Any) -> Iterator[tuple[TestClient, CitySystem]]:
    system, demo = build_demo(Settings(data_dir=tmp_path_factory.mktemp("spatial-api")),
                              seed=7, speed=0.0, today=date(2026, 11, 24))
    demo.run_until(demo.start + timedelta(hours=6))
    system.catch_up()
    with TestClient(create_app(system, manage_lifecycle=False)) as client:
        yield log_in(client, system), system
    system.close()


@pytest.fixture(scope="module")
def client(served: tuple[TestClient, CitySystem]) -> TestClient:
    return served[0]


def _get(client: TestClient, path: str, expect: int = 200, **params: Any) -> Any:
    response = client.get(path, params=params)
    assert response.status_code == expect, response.text
    if expect == 200:
        assert response.headers["content-type"] == GEOJSON
    return response.json()


def _within(client: TestClient, layer: str, body: dict[str, Any], status: int = 200) -> Any:
    response = client.post(f"/spatial/{layer}/within", json=body)
    assert response.status_code == status, response.text
    return response.json()


def _ids(body: dict[str, Any]) -> list[str]:
    return [f["id"] for f in body["features"]]


def _to(epsg: int, lon: float, lat: float) -> tuple[float, float]:
    x, y = Transformer.from_crs(4326, epsg, always_xy=True).transform(lon, lat)
    return float(x), float(y)


def test_radius_answers_nearest_first_with_geodesic_distances(client: TestClient) -> None:
    body = _get(client, "/spatial/grid-cases/radius", point="118.80,32.05", radius_m=1500)
    distances = [f["properties"]["distance_m"] for f in body["features"]]
    assert distances == sorted(distances) and all(d <= 1500 for d in distances)
    assert body["numberMatched"] == len(distances) > 0
    centre = GeoPoint(*CENTRE)
    for feature in body["features"]:
        lon, lat = feature["geometry"]["coordinates"]
        # Haversine on a sphere differs from the ellipsoid by well under 0.5 %.
        assert feature["properties"]["distance_m"] == pytest.approx(
            centre.distance_m(GeoPoint(lon, lat)), rel=5e-3)
    everything = _get(client, "/spatial/grid-cases/features", limit=10_000)
    inside = [f for f in everything["features"] if centre.distance_m(
        GeoPoint(*f["geometry"]["coordinates"])) <= 1490]
    assert {f["id"] for f in inside} <= set(_ids(body))
    page = _get(client, "/spatial/grid-cases/radius", point="118.80,32.05", radius_m=1500,
                limit=3, offset=3)
    assert _ids(page) == _ids(body)[3:6]


@pytest.mark.parametrize("epsg", [3857, 32650])
def test_the_same_place_in_another_crs_gives_the_same_answer(client: TestClient,
                                                             epsg: int) -> None:
    x, y = _to(epsg, *CENTRE)
    wgs84 = _get(client, "/spatial/grid-cases/radius", point="118.80,32.05", radius_m=2000)
    other = _get(client, "/spatial/grid-cases/radius", point=f"{x},{y}", crs=f"EPSG:{epsg}",
                 radius_m=2000)
    assert _ids(other) == _ids(wgs84)
    square = [list(_to(epsg, lon, lat)) for lon, lat in SQUARE]
    in_wgs84 = _within(client, "grid-cases",
                       {"geometry": {"type": "Polygon", "coordinates": [SQUARE]},
                        "limit": 10_000})
    in_other = _within(client, "grid-cases",
                       {"geometry": {"type": "Polygon", "coordinates": [square]},
                        "crs": f"EPSG:{epsg}", "limit": 10_000})
    # Edges straight in the other CRS bend slightly in WGS84: only cases within metres of
    # the edges could differ, and the demo day has none there.
    assert _ids(in_other) == _ids(in_wgs84)
    assert in_wgs84["numberMatched"] > 0


def test_within_a_polygon_with_filters_and_paging(client: TestClient) -> None:
    everything = _get(client, "/spatial/grid-cases/features", limit=10_000)["features"]
    square = shapely.Polygon(SQUARE)
    expected = sorted(f["id"] for f in everything
                      if f["properties"]["status"] == "closed"
                      and square.intersects(shapely.geometry.shape(f["geometry"])))
    body = _within(client, "grid-cases", {
        "geometry": {"type": "Polygon", "coordinates": [SQUARE]},
        "filters": {"status": ["closed"]}, "limit": 10_000})
    assert _ids(body) == expected and body["repair"] is None
    second = _within(client, "grid-cases", {
        "geometry": {"type": "Polygon", "coordinates": [SQUARE]},
        "filters": {"status": ["closed"]}, "limit": 2, "offset": 2})
    assert _ids(second) == expected[2:4]


def test_nearest_available_resources_of_a_kind(served: tuple[TestClient, CitySystem]) -> None:
    client, system = served
    body = _get(client, "/spatial/resources/nearest", point="118.80,32.05", n=3,
                kind="ambulance", status="available")
    names = [f["properties"]["call_sign"] for f in body["features"]]
    docs = [d for d in system.read_models.page("rm_resources", limit=500).items
            if d["kind"] == "ambulance" and d["status"] == "available"]
    centre = GeoPoint(*CENTRE)

    def where(doc: dict[str, Any]) -> GeoPoint:
        fix = doc["position"]
        return GeoPoint.from_geojson(fix["point"] if fix else doc["home_base"])

    # Ties (two ambulances at one station) are ordered by id.
    expected = sorted(docs, key=lambda d: (round(centre.distance_m(where(d)), 3), d["id"]))[:3]
    assert names == [d["call_sign"] for d in expected]
    assert all(f["properties"]["kind"] == "ambulance" for f in body["features"])


def test_hazard_sources_near_an_incident_and_facilities_in_a_zone(
        served: tuple[TestClient, CitySystem]) -> None:
    client, system = served
    incident = system.read_models.page("rm_incidents", limit=1).items[0]
    near = _get(client, f"/spatial/incidents/{incident['id']}/hazard-sources", radius_m=3000)
    location = GeoPoint.from_geojson(incident["location"])
    sources = system.read_models.page("rm_hazard_sources", limit=100).items
    expected = sorted(
        (s for s in sources if s["status"] == "active"
         and location.distance_m(GeoPoint.from_geojson(s["location"])) <= 3000),
        key=lambda s: location.distance_m(GeoPoint.from_geojson(s["location"])))
    assert _ids(near) == [s["id"] for s in expected] and expected
    zones = {s["id"]: _get(client, f"/spatial/hazard-sources/{s['id']}/facilities")
             for s in sources}
    at_risk = {source_id: _ids(body) for source_id, body in zones.items() if body["features"]}
    assert at_risk, "some facility lies in a hazard zone of the demo city"
    for source_id, facility_ids in at_risk.items():
        zone = shapely.geometry.shape(
            _get(client, f"/ogc/collections/hazard-zones/items/{source_id}")["geometry"])
        for facility in system.city.facilities:
            assert (facility.id in facility_ids) == zone.intersects(facility.location.shape)
    source_id, facility_ids = next(iter(at_risk.items()))
    kind = next(f.kind for f in system.city.facilities if f.id == facility_ids[0])
    only = _get(client, f"/spatial/hazard-sources/{source_id}/facilities", kind=str(kind))
    assert facility_ids[0] in _ids(only)
    assert {f["properties"]["kind"] for f in only["features"]} == {str(kind)}


def test_a_self_intersecting_polygon_is_refused_or_repaired_on_request(
        client: TestClient) -> None:
    bowtie = [[118.79, 32.04], [118.81, 32.06], [118.81, 32.04], [118.79, 32.06],
              [118.79, 32.04]]
    refused = _within(client, "grid-cases",
                      {"geometry": {"type": "Polygon", "coordinates": [bowtie]}}, 422)
    assert "Self-intersection" in refused["detail"] and "repair=true" in refused["detail"]
    repaired = _within(client, "grid-cases", {
        "geometry": {"type": "Polygon", "coordinates": [bowtie]}, "repair": True,
        "limit": 10_000})
    assert "Self-intersection" in repaired["repair"]
    triangles = shapely.make_valid(shapely.Polygon(bowtie))
    everything = _get(client, "/spatial/grid-cases/features", limit=10_000)["features"]
    assert _ids(repaired) == sorted(
        f["id"] for f in everything
        if triangles.intersects(shapely.geometry.shape(f["geometry"])))


@pytest.mark.parametrize(("path", "params", "message"), [
    ("/spatial/grid-cases/radius", {"point": "32.05,118.80", "radius_m": 100}, "swapped"),
    ("/spatial/grid-cases/radius", {"point": "118.60,32.05", "radius_m": 100},
     "outside Demo City"),
    ("/spatial/grid-cases/radius", {"point": "118.80,32.05", "radius_m": 100,
                                    "crs": "EPSG:999999"}, "unknown coordinate reference"),
    ("/spatial/grid-cases/radius", {"point": "669000,3546000", "radius_m": 100},
     "outside"),
    ("/spatial/grid-cases/radius", {"point": "118.80", "radius_m": 100}, "two numbers"),
    ("/spatial/grid-cases/radius", {"point": "118.80,32.05", "radius_m": -1}, "radius_m"),
    ("/spatial/grid-cases/radius", {"point": "118.80,32.05", "radius_m": 100,
                                    "colour": "red"}, "cannot be filtered by 'colour'"),
    ("/spatial/hazard-zones/radius", {"point": "118.80,32.05", "radius_m": 100},
     "polygon layer"),
    ("/spatial/resources/nearest", {"point": "118.80,32.05", "n": 0}, "n"),
    ("/spatial/grid-cases/features", {"bbox": "118.8,32.0,118.7,32.1"}, "lower corner"),
    ("/spatial/grid-cases/features", {"datetime": "2026-11-24T08:00:00"}, "time zone"),
    ("/spatial/hazard-sources/D01/facilities", {"kind": "zoo"}, "unknown facility kind"),
])
def test_bad_questions_get_a_clear_422(client: TestClient, path: str,
                                       params: dict[str, Any], message: str) -> None:
    response = client.get(path, params=params)
    assert response.status_code == 422, response.text
    assert message in response.json()["detail"]


@pytest.mark.parametrize(("geometry", "message"), [
    ({"type": "Polygon", "coordinates": [SQUARE[:-1]]}, "not closed"),
    ({"type": "Polygon", "coordinates": [SQUARE[:3]]}, "at least 4 positions"),
    ({"type": "Polygon", "coordinates": [[[lat, lon] for lon, lat in SQUARE]]}, "swapped"),
    ({"type": "Polygon", "coordinates": [[[lon + 1, lat] for lon, lat in SQUARE]]},
     "lies outside Demo City"),
    ({"type": "LineString", "coordinates": SQUARE}, "Polygon or MultiPolygon"),
])
def test_bad_polygons_get_a_clear_422(client: TestClient, geometry: dict[str, Any],
                                      message: str) -> None:
    body = _within(client, "grid-cases", {"geometry": geometry}, 422)
    assert message in body["detail"]


def test_unknown_layers_and_features_are_404(client: TestClient) -> None:
    response = client.get("/spatial/parks/features")
    assert response.status_code == 404 and "layers: communities" in response.json()["detail"]
    response = client.get("/spatial/incidents/not-an-id/hazard-sources")
    assert response.status_code == 404
    layers = client.get("/spatial/layers").json()
    assert {layer["id"] for layer in layers} >= {"grid-cases", "facilities", "hazard-zones"}
