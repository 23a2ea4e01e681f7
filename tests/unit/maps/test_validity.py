"""Invalid polygons are refused with the feature named, or repaired with the repair reported;
never used as they are."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import geopandas as gpd
import pytest
import shapely

from cityops.domain.errors import InvalidValue
from cityops.maps import InvalidGeometryPolicy, MetricProjection, load_city
from cityops.maps.layers import AdminLevel, admin_layer_from_frame

PROJECTION = MetricProjection.from_crs("EPSG:32650")
BOW_TIE = shapely.Polygon([(118.80, 32.05), (118.81, 32.06), (118.81, 32.05), (118.80, 32.06)])
HOLE_OUTSIDE = shapely.Polygon(
    [(118.80, 32.05), (118.81, 32.05), (118.81, 32.06), (118.80, 32.06)],
    [[(118.82, 32.05), (118.83, 32.05), (118.83, 32.06), (118.82, 32.06)]],
)
COLLAPSED = shapely.from_wkt("POLYGON ((118.8 32.05, 118.81 32.06, 118.8 32.05))")


def _districts(*geometries: Any) -> gpd.GeoDataFrame:
    codes = [f"D{k + 1:02d}" for k in range(len(geometries))]
    return gpd.GeoDataFrame({"code": codes, "name": codes}, geometry=list(geometries), crs=4326)


def _import(frame: gpd.GeoDataFrame, policy: InvalidGeometryPolicy) -> Any:
    return admin_layer_from_frame(frame, AdminLevel.DISTRICT, "districts.geojson",
                                  projection=PROJECTION, policy=policy)


@pytest.mark.parametrize(
    ("geometry", "reason"), [(BOW_TIE, "Self-intersection"), (HOLE_OUTSIDE, "Hole lies outside")]
)
def test_an_invalid_polygon_is_refused_naming_file_feature_and_reason(
    geometry: shapely.Polygon, reason: str
) -> None:
    frame = _districts(shapely.box(118.7, 32.0, 118.71, 32.01), geometry)
    with pytest.raises(InvalidValue, match=rf"districts\.geojson: district D02 has an invalid "
                                           rf"geometry \({reason}"):
        _import(frame, InvalidGeometryPolicy.REFUSE)


def test_a_repair_is_made_with_make_valid_and_listed() -> None:
    layer = _import(_districts(BOW_TIE), InvalidGeometryPolicy.REPAIR)
    repaired = layer.frame.geometry.iloc[0]
    assert repaired.is_valid
    assert repaired.equals(shapely.make_valid(BOW_TIE, method="structure"))
    (repair,) = layer.repairs
    assert (repair.layer, repair.feature) == ("districts.geojson", "D01")
    assert repair.problem.startswith("Self-intersection")
    assert repair.area_after_m2 == pytest.approx(
        shapely.area(PROJECTION.to_metric(repaired)), rel=1e-9
    )
    assert "repaired with make_valid" in repair.describe()


def test_a_ring_that_collapses_cannot_be_repaired() -> None:
    with pytest.raises(InvalidValue, match="cannot be repaired"):
        _import(_districts(COLLAPSED), InvalidGeometryPolicy.REPAIR)


def test_other_geometry_types_and_missing_geometries_are_refused() -> None:
    frame = _districts(shapely.LineString([(118.8, 32.05), (118.81, 32.06)]), None)
    with pytest.raises(InvalidValue) as error:
        _import(frame, InvalidGeometryPolicy.REPAIR)
    assert "district D01 is a LineString; it must be a polygon" in str(error.value)
    assert "district D02 has no geometry" in str(error.value)


def _spike(ring: list[list[float]]) -> list[list[float]]:
    """The ring with a zero-width spike after its first vertex: invalid, same area."""
    (x0, y0), (x1, y1) = ring[0], ring[1]
    mid = [(x0 + x1) / 2, (y0 + y1) / 2]
    tip = [mid[0] + 0.002, mid[1] + 0.002]
    return [ring[0], mid, tip, mid, *ring[1:]]


def test_a_city_with_an_invalid_community_is_refused_by_default(
    city_copy: Path,
    edit_json: Callable[[str, Callable[[Any], None]], Path],
    find_feature: Callable[..., dict[str, Any]],
) -> None:
    def spike(layer: dict[str, Any]) -> None:
        geometry = find_feature(layer, "D02-S01-C02", key="code")["geometry"]
        geometry["coordinates"][0] = _spike(geometry["coordinates"][0])

    path = edit_json("communities.geojson", spike)
    with pytest.raises(InvalidValue, match=rf"{path}: community D02-S01-C02 has an invalid"):
        load_city(city_copy)


def test_a_city_set_to_repair_loads_and_reports_the_repair(
    city_copy: Path,
    edit_json: Callable[[str, Callable[[Any], None]], Path],
    find_feature: Callable[..., dict[str, Any]],
) -> None:
    def spike(layer: dict[str, Any]) -> None:
        geometry = find_feature(layer, "D02-S01-C02", key="code")["geometry"]
        geometry["coordinates"][0] = _spike(geometry["coordinates"][0])

    edit_json("communities.geojson", spike)
    edit_json("city.json", lambda city: city.update(invalid_geometries="repair"))
    city = load_city(city_copy)
    (repair,) = city.map.report.repairs
    assert repair.feature == "D02-S01-C02"
    assert any("D02-S01-C02" in line and "make_valid" in line for line in city.map.report.lines())
