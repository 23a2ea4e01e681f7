"""Coordinate reference systems: layers come in any CRS and are stored in WGS84; the metric CRS
is declared or chosen (UTM); a missing or unknown CRS and swapped axes are refused."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import geopandas as gpd
import pytest
import shapely
from geopandas.testing import assert_geodataframe_equal
from pyproj import CRS

from cityops.domain.errors import InvalidValue
from cityops.domain.geometry import GeoPoint
from cityops.maps import City, MetricProjection, load_city, utm_crs_for
from cityops.maps.crs import WGS84_CRS, check_lonlat_bounds, layer_to_wgs84, resolve_crs

CELL_COLUMNS = ["code", "community", "street", "district", "inspector", "geometry"]


@pytest.mark.parametrize(
    ("lon", "lat", "epsg"),
    [
        (118.80, 32.05, 32650),  # the demo city
        (151.21, -33.87, 32756),  # southern hemisphere
        (2.35, 48.86, 32631),
        (120.0, 31.0, 32651),  # on a zone boundary: the arithmetic zone, east of it
    ],
)
def test_the_metric_crs_is_the_utm_zone_of_the_place(lon: float, lat: float, epsg: int) -> None:
    assert utm_crs_for(lon, lat) == CRS.from_epsg(epsg)
    assert MetricProjection.around(lon, lat).epsg == epsg


def test_no_utm_zone_near_the_poles() -> None:
    with pytest.raises(InvalidValue, match="no UTM zone"):
        utm_crs_for(10.0, 88.0)


def test_missing_and_unknown_crs_are_refused_with_the_source_named() -> None:
    with pytest.raises(InvalidValue, match=r"districts\.shp: no coordinate reference system"):
        resolve_crs(None, "districts.shp")
    with pytest.raises(InvalidValue, match="unknown coordinate reference system 'EPSG:999999'"):
        resolve_crs("EPSG:999999", "city.json")
    with pytest.raises(InvalidValue, match="unknown coordinate reference system"):
        resolve_crs("not a crs", "city.json")


@pytest.mark.parametrize("crs", ["EPSG:4326", "EPSG:2263"])  # degrees; US survey feet
def test_a_metric_crs_must_be_projected_in_metres(crs: str) -> None:
    with pytest.raises(InvalidValue, match="not a projected CRS in metres"):
        MetricProjection.from_crs(crs)


def test_projection_round_trip_keeps_positions() -> None:
    projection = MetricProjection.from_crs("EPSG:32650")
    x, y = projection.points_to_metric([118.8, 118.81], [32.05, 32.06])
    lon, lat = projection.points_to_wgs84(x, y)
    assert lon == pytest.approx([118.8, 118.81], abs=1e-10)
    assert lat == pytest.approx([32.05, 32.06], abs=1e-10)
    # Metric distance agrees with the great-circle distance (UTM scale error < 0.1 %).
    metric = float(((x[1] - x[0]) ** 2 + (y[1] - y[0]) ** 2) ** 0.5)
    assert metric == pytest.approx(GeoPoint(118.8, 32.05).distance_m(GeoPoint(118.81, 32.06)),
                                   rel=1e-3)


def _square(lon: float, lat: float, size: float = 0.01) -> shapely.Polygon:
    return shapely.box(lon, lat, lon + size, lat + size)


def test_a_layer_without_crs_is_refused_unless_one_is_declared() -> None:
    frame = gpd.GeoDataFrame({"code": ["D01"]}, geometry=[_square(118.8, 32.05)])
    with pytest.raises(InvalidValue, match="has no coordinate reference system"):
        layer_to_wgs84(frame, "districts.shp")
    assigned = layer_to_wgs84(frame, "districts.shp", assume_crs="EPSG:4326")
    assert assigned.crs == WGS84_CRS


def test_a_declared_crs_never_silently_overrides_the_files_own() -> None:
    frame = gpd.GeoDataFrame({"code": ["D01"]}, geometry=[_square(118.8, 32.05)], crs=4326)
    with pytest.raises(InvalidValue, match=r"the file declares .* but city\.json says"):
        layer_to_wgs84(frame, "districts.gpkg", assume_crs="EPSG:32650")


def test_a_projected_layer_is_reprojected_to_wgs84() -> None:
    projection = MetricProjection.from_crs("EPSG:32650")
    square = _square(118.8, 32.05)
    metric = gpd.GeoDataFrame({"code": ["D01"]}, geometry=[projection.to_metric(square)],
                              crs="EPSG:32650")
    back = layer_to_wgs84(metric, "districts.gpkg")
    expected = gpd.GeoDataFrame({"code": ["D01"]}, geometry=[square], crs=WGS84_CRS)
    assert_geodataframe_equal(back, expected, check_less_precise=True, check_crs=True)


def test_latitude_over_90_is_reported_as_swapped_axes() -> None:
    swapped = gpd.GeoDataFrame(geometry=[_square(32.05, 118.8)], crs=4326)
    with pytest.raises(InvalidValue, match="swapped"):
        layer_to_wgs84(swapped, "communities.geojson")


def test_swapped_axes_are_detected_by_the_city_box_when_both_values_look_valid() -> None:
    # A city at lon 30.5, lat 50.4: swapped coordinates are still plausible degrees.
    bbox = (30.3, 50.3, 30.7, 50.6)
    check_lonlat_bounds((30.4, 50.35, 30.5, 50.45), "ok", bbox)
    with pytest.raises(InvalidValue, match="would fall inside it with longitude and latitude"):
        check_lonlat_bounds((50.35, 30.4, 50.45, 30.5), "communities.geojson", bbox)
    with pytest.raises(InvalidValue, match="outside the city's bounding box"):
        check_lonlat_bounds((10.0, 10.0, 10.1, 10.1), "communities.geojson", bbox)


def test_projected_numbers_labelled_as_degrees_are_refused() -> None:
    with pytest.raises(InvalidValue, match="longitude outside"):
        check_lonlat_bounds((669000.0, 32.0, 670000.0, 33.0), "districts.geojson")


@pytest.mark.parametrize(
    ("suffix", "epsg"), [(".gpkg", 32650), (".shp", 3857), (".geojson", 32650)]
)
def test_layers_in_another_crs_give_the_same_cells(
    demo: City,
    city_copy: Path,
    edit_json: Callable[[str, Callable[[Any], None]], Path],
    suffix: str,
    epsg: int,
) -> None:
    for level in ("districts", "streets", "communities"):
        frame = gpd.read_file(city_copy / f"{level}.geojson")
        (city_copy / f"{level}.geojson").unlink()
        frame.to_crs(epsg=epsg).to_file(city_copy / f"{level}-{epsg}{suffix}")

    def use_converted(city: dict[str, Any]) -> None:
        city["layers"] = {level: f"{level}-{epsg}{suffix}"
                          for level in ("districts", "streets", "communities")}

    edit_json("city.json", use_converted)
    converted = load_city(city_copy)

    assert_geodataframe_equal(
        converted.map.cells[CELL_COLUMNS], demo.map.cells[CELL_COLUMNS],
        check_less_precise=True, normalize=True, check_crs=True,
    )
    assert converted.map.cells["area_m2"].to_numpy() == pytest.approx(
        demo.map.cells["area_m2"].to_numpy(), abs=0.01
    )
    assert_geodataframe_equal(
        converted.map.communities, demo.map.communities,
        check_less_precise=True, normalize=True, check_crs=True,
    )


def test_without_a_declared_metric_crs_the_utm_zone_is_chosen(
    city_copy: Path, edit_json: Callable[[str, Callable[[Any], None]], Path]
) -> None:
    edit_json("city.json", lambda city: city.pop("metric_crs"))
    city = load_city(city_copy)
    assert city.info.metric_crs == "EPSG:32650"
    assert city.map.projection.epsg == 32650
