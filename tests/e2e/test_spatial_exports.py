"""Exports of map layers to GeoPackage, GeoJSON and CSV: GDAL reads back the same features
the API shows (same ids, shapes and properties), filters apply as they do to the API, and
no temporary file is left behind."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import pyogrio
import pytest
import shapely
from fastapi.testclient import TestClient

from cityops.bootstrap import CitySystem
from cityops.command_center.app import create_app
from cityops.command_center.routers import exports
from cityops.settings import Settings
from cityops.simulator import build_demo

MEDIA_TYPES = {"gpkg": "application/geopackage+sqlite3", "geojson": "application/geo+json",
               "csv": "text/csv"}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, log_in: Any) -> Iterator[TestClient]:
    system: CitySystem
    system, demo = build_demo(Settings(data_dir=tmp_path_factory.mktemp("exports")),
                              seed=7, speed=0.0, today=date(2026, 11, 24))
    demo.run_until(demo.start + timedelta(hours=6))
    system.catch_up()
    with TestClient(create_app(system, manage_lifecycle=False)) as test_client:
        yield log_in(test_client, system)
    system.close()


@pytest.fixture
def export_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where this test's exports make their temporary folders (to see them removed)."""
    folder = tmp_path / "exports"
    folder.mkdir()
    monkeypatch.setattr(exports, "EXPORT_DIR", str(folder))
    return folder


def _download(client: TestClient, name: str, target: Path, **params: Any) -> Path:
    response = client.get(f"/exports/{name}", params=params)
    assert response.status_code == 200, response.text
    suffix = name.rsplit(".", 1)[1]
    assert response.headers["content-type"].startswith(MEDIA_TYPES[suffix])
    assert name in response.headers["content-disposition"]
    path = target / name
    path.write_bytes(response.content)
    return path


def _api(client: TestClient, layer: str, **params: Any) -> list[dict[str, Any]]:
    body = client.get(f"/spatial/{layer}/features", params={"limit": 10_000, **params}).json()
    features: list[dict[str, Any]] = body["features"]
    return features


def _read(path: Path) -> gpd.GeoDataFrame:
    if path.suffix == ".csv":
        frame = pd.read_csv(path, dtype={"id": str})
        return gpd.GeoDataFrame(frame.drop(columns="WKT"),
                                geometry=shapely.from_wkt(frame["WKT"]), crs=4326)
    return pyogrio.read_dataframe(path)


@pytest.mark.parametrize("suffix", ["gpkg", "geojson", "csv"])
@pytest.mark.parametrize("layer", ["grid-cases", "hazard-zones", "facilities"])
def test_an_export_holds_the_features_the_api_shows(client: TestClient, export_dir: Path,
                                                    tmp_path: Path, layer: str,
                                                    suffix: str) -> None:
    frame = _read(_download(client, f"{layer}.{suffix}", tmp_path))
    features = {f["id"]: f for f in _api(client, layer)}
    assert sorted(frame["id"]) == sorted(features) and len(features) > 0
    assert frame.crs is not None and frame.crs.to_epsg() == 4326
    for row in frame.itertuples():
        feature = features[row.id]
        expected = shapely.geometry.shape(feature["geometry"])
        # GeoPackage keeps the doubles; CSV's WKT keeps 15 significant digits and GeoJSON
        # 15 decimals (about a micrometre), and RFC 7946 turns exterior rings anticlockwise.
        assert shapely.equals_exact(shapely.normalize(row.geometry),
                                    shapely.normalize(expected),
                                    tolerance=0 if suffix == "gpkg" else 1e-9)
        for name in ("status", "kind", "name", "grade", "category"):
            if name in feature["properties"]:
                value = getattr(row, name)
                assert str(value) == str(feature["properties"][name]), name
    assert list(export_dir.iterdir()) == [], "the temporary folder is removed"


def test_filters_apply_to_exports_as_to_the_api(client: TestClient, export_dir: Path,
                                                tmp_path: Path) -> None:
    params = {"status": "closed", "bbox": "118.76,32.03,118.82,32.07"}
    frame = _read(_download(client, "grid-cases.gpkg", tmp_path, **params))
    expected = sorted(f["id"] for f in _api(client, "grid-cases", **params))
    assert sorted(frame["id"]) == expected and expected
    assert len(expected) < len(_api(client, "grid-cases"))
    assert set(frame["status"]) == {"closed"}


def test_an_empty_layer_exports_as_an_empty_typed_layer(client: TestClient,
                                                        export_dir: Path,
                                                        tmp_path: Path) -> None:
    path = _download(client, "incident-areas.gpkg", tmp_path)
    info = pyogrio.read_info(path)
    assert info["features"] == 0 and info["geometry_type"] == "Polygon"
    assert "status" in list(info["fields"])


def test_hotline_exports_carry_no_personal_data(client: TestClient, export_dir: Path,
                                                tmp_path: Path) -> None:
    frame = _read(_download(client, "hotline-tickets.csv", tmp_path))
    assert len(frame) > 0
    assert not {"caller", "caller_name", "caller_phone", "description"} & set(frame.columns)


@pytest.mark.parametrize(("name", "status", "message"), [
    ("grid-cases.shp", 422, "format one of gpkg, geojson, csv"),
    ("grid-cases", 422, "<layer>.<format>"),
    ("parks.gpkg", 404, "layer 'parks' does not exist"),
])
def test_bad_export_names(client: TestClient, export_dir: Path, name: str, status: int,
                          message: str) -> None:
    response = client.get(f"/exports/{name}")
    assert response.status_code == status and message in response.json()["detail"]
    bad_filter = client.get("/exports/grid-cases.csv", params={"colour": "red"})
    assert bad_filter.status_code == 422
    assert list(export_dir.iterdir()) == []
