"""OGC API - Features under /ogc, checked against the structure Part 1 requires (landing
page, conformance, collections, items with bbox/datetime/limit/paging, single features,
400/404 errors) over a played demo day, and read by GDAL's own OAPIF driver from a real
`cityops serve` process (GDAL blocks its thread while it reads, so the server must run in
another process, as it does in production)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pyogrio
import pytest
import shapely
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pyproj import Transformer

from cityops.bootstrap import CitySystem
from cityops.command_center.app import create_app
from cityops.settings import Settings
from cityops.simulator import build_demo

GEOJSON = "application/geo+json"
REQUIRED_COLLECTIONS = {"incidents", "grid-cases", "hazard-sources", "hazard-zones",
                        "resources", "hotline-tickets", "grid-cells", "communities",
                        "streets", "districts", "facilities"}
CONFORMANCE = {
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six hours of the demo day, recorded and projected into an embedded data folder."""
    directory = tmp_path_factory.mktemp("ogc")
    system, demo = build_demo(Settings(data_dir=directory), seed=7, speed=0.0,
                              today=date(2026, 11, 24))
    demo.run_until(demo.start + timedelta(hours=6))
    system.catch_up()
    system.close()
    return directory


@pytest.fixture(scope="module")
def served(data_dir: Path,
           log_in: Any) -> Iterator[tuple[TestClient, CitySystem]]:
    from cityops.bootstrap import build_system

    system = build_system(Settings(data_dir=data_dir))
    system.catch_up()
    with TestClient(create_app(system, manage_lifecycle=False)) as client:
        yield log_in(client, system), system
    system.close()


@pytest.fixture(scope="module")
def client(served: tuple[TestClient, CitySystem]) -> TestClient:
    return served[0]


def _json(client: TestClient, url: str, status: int = 200, **params: Any) -> Any:
    response = client.get(url, params=params)
    assert response.status_code == status, response.text
    return response.json()


def _items(client: TestClient, collection: str, **params: Any) -> dict[str, Any]:
    response = client.get(f"/ogc/collections/{collection}/items", params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == GEOJSON
    body: dict[str, Any] = response.json()
    return body


def _link(body: dict[str, Any], rel: str) -> dict[str, Any] | None:
    return next((link for link in body["links"] if link["rel"] == rel), None)


def test_the_landing_page_links_everything_a_client_needs(client: TestClient) -> None:
    landing = _json(client, "/ogc")
    assert landing["title"]
    rels = {link["rel"]: link for link in landing["links"]}
    assert {"self", "service-desc", "service-doc", "conformance", "data"} <= set(rels)
    assert rels["service-desc"]["type"] == "application/vnd.oai.openapi+json;version=3.0"
    for rel in ("self", "service-desc", "service-doc", "conformance", "data"):
        response = client.get(rels[rel]["href"])
        assert response.status_code == 200, rel
        assert response.headers["content-type"].startswith(rels[rel]["type"].split(";")[0])
    assert set(_json(client, "/ogc/conformance")["conformsTo"]) == CONFORMANCE
    api = client.get(rels["service-desc"]["href"]).json()
    assert api["openapi"].startswith("3.0")
    assert "/collections/grid-cases/items" in api["paths"]
    names = {p.get("name") for p in api["paths"]["/collections/grid-cases/items"]["get"]
             ["parameters"]}
    assert {"status", "is_open"} <= names


def test_every_collection_is_described_and_its_items_are_geojson(client: TestClient) -> None:
    collections = _json(client, "/ogc/collections")
    ids = {c["id"] for c in collections["collections"]}
    assert ids >= REQUIRED_COLLECTIONS
    for summary in collections["collections"]:
        one = _json(client, f"/ogc/collections/{summary['id']}")
        assert one == summary
        assert one["itemType"] == "feature"
        assert len(one["extent"]["spatial"]["bbox"][0]) == 4
        items_link = next(link for link in one["links"] if link["rel"] == "items")
        assert items_link["type"] == GEOJSON
        page = client.get(items_link["href"])
        assert page.status_code == 200 and page.headers["content-type"] == GEOJSON
        body = page.json()
        assert body["type"] == "FeatureCollection"
        assert body["numberReturned"] == len(body["features"]) <= 10
        assert body["numberMatched"] >= body["numberReturned"]
        for feature in body["features"]:
            assert feature["type"] == "Feature" and feature["id"]
            assert shapely.geometry.shape(feature["geometry"]).is_valid


def test_paging_walks_the_whole_collection_once(client: TestClient) -> None:
    everything = _items(client, "grid-cases", limit=10_000)
    seen: list[str] = []
    body = _items(client, "grid-cases", limit=7)
    pages = 1
    while True:
        seen += [f["id"] for f in body["features"]]
        next_link = _link(body, "next")
        if next_link is None:
            break
        body = client.get(next_link["href"]).json()
        pages += 1
        prev_link = _link(body, "prev")
        assert prev_link is not None and "offset=" in prev_link["href"]
    assert seen == [f["id"] for f in everything["features"]]
    assert len(set(seen)) == everything["numberMatched"] > 7
    assert pages == -(-everything["numberMatched"] // 7)


def test_a_limit_above_the_maximum_is_lowered_not_refused(client: TestClient) -> None:
    body = _items(client, "grid-cells", limit=50_000)
    assert body["numberReturned"] == 4781 == body["numberMatched"]
    self_link = _link(body, "self")
    assert self_link is not None and "limit=10000" in self_link["href"]


def test_bbox_filters_in_crs84_and_in_another_crs(client: TestClient) -> None:
    box = (118.78, 32.04, 118.81, 32.06)
    everything = _items(client, "grid-cases", limit=10_000)["features"]
    expected = sorted(f["id"] for f in everything
                      if shapely.geometry.shape(f["geometry"]).intersects(shapely.box(*box)))
    inside = _items(client, "grid-cases", limit=10_000, bbox=",".join(map(str, box)))
    assert sorted(f["id"] for f in inside["features"]) == expected
    assert 0 < len(expected) < len(everything)
    to_mercator = Transformer.from_crs(4326, 3857, always_xy=True)
    x1, y1 = to_mercator.transform(box[0], box[1])
    x2, y2 = to_mercator.transform(box[2], box[3])
    mercator = _items(client, "grid-cases", limit=10_000, bbox=f"{x1},{y1},{x2},{y2}",
                      **{"bbox-crs": "http://www.opengis.net/def/crs/EPSG/0/3857"})
    assert sorted(f["id"] for f in mercator["features"]) == expected
    # EPSG:4326 as a bbox-crs is latitude first, as its definition says.
    lat_first = _items(client, "grid-cases", limit=10_000, bbox="32.04,118.78,32.06,118.81",
                       **{"bbox-crs": "http://www.opengis.net/def/crs/EPSG/0/4326"})
    assert sorted(f["id"] for f in lat_first["features"]) == expected


def test_a_bbox_away_from_the_city_has_no_features(client: TestClient) -> None:
    # A GIS client panning away from the city asks for an empty area: no error.
    body = _items(client, "grid-cases", bbox="10,50,11,51")
    assert body["numberMatched"] == 0 and body["features"] == []


def test_datetime_and_property_filters(client: TestClient) -> None:
    everything = _items(client, "grid-cases", limit=10_000)["features"]
    times = sorted(f["properties"]["reported_at"] for f in everything)
    start, end = times[len(times) // 4], times[len(times) // 2]
    window = _items(client, "grid-cases", limit=10_000,
                    datetime=f"{start.replace('+00:00', 'Z')}/{end}")
    assert sorted(f["properties"]["reported_at"] for f in window["features"]) == \
        [t for t in times if start <= t <= end]
    since = _items(client, "grid-cases", limit=10_000, datetime=f"{end}/..")
    assert since["numberMatched"] == sum(1 for t in times if t >= end)
    instant = _items(client, "grid-cases", datetime=start)
    assert [f["properties"]["reported_at"] for f in instant["features"]] == [start]
    closed = _items(client, "grid-cases", limit=10_000, status="closed")
    assert closed["numberMatched"] == sum(1 for f in everything
                                          if f["properties"]["status"] == "closed") > 0
    two = _items(client, "grid-cases", limit=10_000, status=["closed", "rejected"])
    assert two["numberMatched"] == sum(1 for f in everything if f["properties"]["status"]
                                       in ("closed", "rejected"))
    assert {f["properties"]["status"] for f in two["features"]} == {"closed", "rejected"}


def test_a_single_feature_and_its_links(client: TestClient) -> None:
    first = _items(client, "hazard-zones", limit=1)["features"][0]
    response = client.get(f"/ogc/collections/hazard-zones/items/{first['id']}")
    assert response.status_code == 200 and response.headers["content-type"] == GEOJSON
    feature = response.json()
    assert feature["id"] == first["id"] and feature["geometry"]["type"] == "Polygon"
    assert {link["rel"] for link in feature["links"]} == {"self", "collection"}
    district = client.get("/ogc/collections/districts/items/D01").json()
    assert district["properties"]["code"] == "D01"


@pytest.mark.parametrize(("path", "params", "status", "message"), [
    ("/ogc/collections/nowhere", {}, 404, "collection 'nowhere' does not exist"),
    ("/ogc/collections/nowhere/items", {}, 404, "collections: communities"),
    ("/ogc/collections/incidents/items/not-an-id", {}, 404, "does not exist"),
    ("/ogc/collections/incidents/items", {"limit": 0}, 400, "limit"),
    ("/ogc/collections/incidents/items", {"limit": "ten"}, 400, "limit"),
    ("/ogc/collections/incidents/items", {"bbox": "1,2,3"}, 400, "four"),
    ("/ogc/collections/incidents/items", {"bbox": "118.9,32.0,118.7,32.1"}, 400, "lower corner"),
    ("/ogc/collections/incidents/items", {"bbox": "32.0,118.7,32.1,118.9"}, 400, "swapped"),
    ("/ogc/collections/incidents/items", {"bbox": "1,2,3,4", "bbox-crs": "EPSG:999999"}, 400,
     "unknown coordinate reference system"),
    ("/ogc/collections/incidents/items", {"datetime": "yesterday"}, 400, "RFC 3339"),
    ("/ogc/collections/incidents/items", {"datetime": "2026-11-24T08:00:00"}, 400,
     "no time zone"),
    ("/ogc/collections/districts/items", {"datetime": "2026-11-24T08:00:00Z"}, 400,
     "no time"),
    ("/ogc/collections/incidents/items", {"colour": "red"}, 400, "cannot be filtered by"),
    ("/ogc/collections/incidents/items", {"is_open": "perhaps"}, 400, "true or false"),
    ("/ogc/collections/incidents/items", {"f": "html"}, 400, "f=json"),
])
def test_errors_say_what_is_wrong(client: TestClient, path: str, params: dict[str, Any],
                                  status: int, message: str) -> None:
    response = client.get(path, params=params)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] in ("InvalidParameterValue", "NotFound")
    assert message in body["description"]


def test_hotline_ticket_locations_carry_no_personal_data(
        served: tuple[TestClient, CitySystem]) -> None:
    client, system = served
    text = client.get("/ogc/collections/hotline-tickets/items", params={"limit": 10_000}).text
    docs = system.read_models.page("rm_tickets", limit=500).items
    callers = {d["caller"][key] for d in docs for key in ("name", "phone")
               if d["caller"][key]}
    assert callers and not any(value in text for value in callers)
    descriptions = {d["description"] for d in docs if d["description"]}
    assert descriptions and not any(value in text for value in descriptions)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def server(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`cityops serve` on the played data folder, on a free localhost port."""
    port = _free_port()
    log_path = tmp_path_factory.mktemp("serve") / "serve.log"
    env = {**os.environ, "CITYOPS_DATA_DIR": str(data_dir)}
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "cityops.cli", "serve", "--port", str(port)],
            env=env, stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("cityops serve did not start:\n" + log_path.read_text())
                time.sleep(0.1)
            yield base
        finally:
            process.terminate()
            process.wait(timeout=20)


def test_gdal_reads_the_layers_directly(server: str, client: TestClient) -> None:
    assert "OAPIF" in pyogrio.list_drivers(read=True), "this GDAL has no OAPIF driver"
    # GDAL sends the dispatcher's token (the server shares the data folder and secret key).
    token = client.headers["Authorization"].removeprefix("Bearer ")
    pyogrio.set_gdal_config_options({"GDAL_HTTP_AUTH": "BEARER", "GDAL_HTTP_BEARER": token})
    try:
        _read_layers_with_gdal(server, client)
    finally:
        pyogrio.set_gdal_config_options({"GDAL_HTTP_AUTH": None, "GDAL_HTTP_BEARER": None})


def _read_layers_with_gdal(server: str, client: TestClient) -> None:
    url = f"OAPIF:{server}/ogc"
    layers = {str(name): str(kind) for name, kind in pyogrio.list_layers(url)}
    assert set(layers) >= REQUIRED_COLLECTIONS
    for layer, geometry_type in (("grid-cases", "Point"), ("hazard-zones", "Polygon"),
                                 ("grid-cells", "Polygon"), ("hotline-tickets", "Point")):
        frame = pyogrio.read_dataframe(url, layer=layer)
        api = _items(client, layer, limit=10_000)
        assert len(frame) == api["numberMatched"] > 0, layer
        assert frame.crs is not None and frame.crs.to_epsg() == 4326
        assert set(frame.geometry.geom_type) == {geometry_type}
        assert sorted(frame["id"]) == sorted(f["id"] for f in api["features"])
        assert "caller" not in frame.columns
    cases = pyogrio.read_dataframe(url, layer="grid-cases")
    info = pyogrio.read_info(url, layer="grid-cases")
    assert dict(zip(info["fields"], info["ogr_types"], strict=True))["reported_at"] \
        == "OFTDateTime"
    box = (118.78, 32.04, 118.81, 32.06)
    in_box = pyogrio.read_dataframe(url, layer="grid-cases", bbox=box)
    assert sorted(in_box["id"]) == sorted(cases.loc[cases.intersects(shapely.box(*box)), "id"])
    closed = pyogrio.read_dataframe(url, layer="grid-cases", where="status = 'closed'")
    assert sorted(closed["id"]) == sorted(cases.loc[cases["status"] == "closed", "id"])


def test_ogc_requests_are_matched_by_the_ogc_router_first(client: TestClient) -> None:
    """The OGC router is included after about a hundred routes; this FastAPI tried each of
    them for every /ogc request (milliseconds). Its paths go to it first, and only its."""
    from starlette.routing import Match

    app = client.app
    assert isinstance(app, FastAPI)

    def scope(path: str, method: str = "GET") -> dict[str, Any]:
        return {"type": "http", "method": method, "path": path, "root_path": "",
                "query_string": b"", "headers": [], "app": app}

    def tried(path: str, method: str = "GET") -> tuple[int, Match]:
        """How many of the app's routes are tried before one matches, as its router does."""
        for number, route in enumerate(app.router.routes, start=1):
            match = route.matches(scope(path, method))[0]
            if match is not Match.NONE:
                return number, match
        return len(app.router.routes), Match.NONE

    assert len(app.router.routes) > 20
    for path in ("/ogc", "/ogc/collections/grid-cases/items/x"):
        number, match = tried(path)
        assert number <= 2 and match is Match.FULL, (path, number)
    assert tried("/ogc", "POST")[1] is Match.PARTIAL  # 405, as before
    assert tried("/ogcx")[1] is Match.NONE


def test_ogc_links_are_what_url_for_answers(client: TestClient) -> None:
    """Links are built from the OGC router's own routes (url_for walks every route of the
    app for each): the very URLs url_for gives, behind a proxy's root path too."""
    from starlette.requests import Request

    from cityops.command_center.routers.ogc import _url

    app = client.app
    assert isinstance(app, FastAPI)
    for root in ("", "/city"):
        request = Request({"type": "http", "method": "GET", "path": f"{root}/ogc",
                           "root_path": root, "query_string": b"", "app": app,
                           "router": app.router, "scheme": "https",
                           "server": ("maps.example", 443),
                           "headers": [(b"host", b"maps.example")]})
        for name, params in (("ogc_landing", {}), ("ogc_collections", {}),
                             ("ogc_collection", {"collection_id": "grid-cases"}),
                             ("ogc_items", {"collection_id": "grid-cases"}),
                             ("ogc_item", {"collection_id": "grid-cases",
                                           "feature_id": "a b%c"})):
            assert _url(request, name, **params) == str(request.url_for(name, **params))
