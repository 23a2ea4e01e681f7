"""Loading a city from a directory: every problem is refused with the file and the feature
named; a city may bring its own unit grid instead of the generated one."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import geopandas as gpd
import pytest
from geopandas.testing import assert_geodataframe_equal

from cityops.domain.catalogue import Catalogue
from cityops.domain.errors import InvalidValue
from cityops.domain.hazards.catalogue import HazardCatalogue
from cityops.maps import City, load_city

Edit = Callable[[str, Callable[[Any], None]], Path]
Find = Callable[..., dict[str, Any]]


def test_a_missing_directory_or_city_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(InvalidValue, match="city directory not found"):
        load_city(tmp_path / "nowhere")
    with pytest.raises(InvalidValue, match=r"city\.json: file not found"):
        load_city(tmp_path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c.update(timezone="Mars/Olympus"), "unknown time zone 'Mars/Olympus'"),
        (lambda c: c.update(timezone="Asia"), "unknown time zone 'Asia'"),
        (lambda c: c.update(metric_crs="EPSG:4326"), "metric_crs: .* not a projected CRS"),
        (lambda c: c.update(bbox=[32.0, 118.7, 32.1, 118.9]), "bbox: .*latitudes"),
        (lambda c: c.update(version=2), "version"),
        (lambda c: c.update(colour="blue"), "colour: Extra inputs are not permitted"),
        (lambda c: c["layers"].update(districts="districts.kml"), "unsupported layer format"),
        (lambda c: c["layers"].update(streets="missing.geojson"), r"missing\.geojson: file not"),
    ],
)
def test_a_bad_city_file_is_refused(
    city_copy: Path, edit_json: Edit, change: Callable[[Any], None], message: str
) -> None:
    edit_json("city.json", change)
    with pytest.raises(InvalidValue, match=message):
        load_city(city_copy)


def test_a_missing_column_is_named(city_copy: Path, edit_json: Edit) -> None:
    def drop_street(layer: dict[str, Any]) -> None:
        for item in layer["features"]:
            del item["properties"]["street"]

    path = edit_json("communities.geojson", drop_street)
    with pytest.raises(InvalidValue, match=rf"{path}: missing column\(s\) street; a community "
                                           "layer needs code, name, street"):
        load_city(city_copy)


def test_a_shapefile_with_upper_case_columns_is_accepted(
    demo: City, city_copy: Path, edit_json: Edit
) -> None:
    frame = gpd.read_file(city_copy / "districts.geojson")
    frame.columns = [c.upper() if c != "geometry" else c for c in frame.columns]
    frame.to_file(city_copy / "districts.shp")
    edit_json("city.json", lambda c: c["layers"].update(districts="districts.shp"))
    assert len(load_city(city_copy).map.cells) == len(demo.map.cells)


def test_an_unknown_parent_and_a_code_not_under_its_parent_are_named(
    city_copy: Path, edit_json: Edit, find_feature: Find
) -> None:
    def orphan(layer: dict[str, Any]) -> None:
        find_feature(layer, "D02-S01", key="code")["properties"]["district"] = "D09"

    edit_json("streets.geojson", orphan)
    with pytest.raises(InvalidValue, match="street D02-S01: unknown district 'D09'"):
        load_city(city_copy)


def test_a_code_must_extend_its_parents(
    city_copy: Path, edit_json: Edit, find_feature: Find
) -> None:
    def misfiled(layer: dict[str, Any]) -> None:
        find_feature(layer, "D02-S01-C01", key="code")["properties"]["street"] = "D02-S02"

    edit_json("communities.geojson", misfiled)
    with pytest.raises(InvalidValue, match="community D02-S01-C01: its code must be its "
                                           "street's code 'D02-S02' followed by"):
        load_city(city_copy)


def test_overlapping_siblings_are_refused_with_where_to_look(
    city_copy: Path, edit_json: Edit, find_feature: Find
) -> None:
    def swell(layer: dict[str, Any]) -> None:
        # Community C01 takes the shape of its whole street: it covers C02 and C03.
        street = gpd.read_file(city_copy / "streets.geojson").set_index("code")
        geometry = street.geometry["D03-S02"].__geo_interface__
        find_feature(layer, "D03-S02-C01", key="code")["geometry"] = geometry

    edit_json("communities.geojson", swell)
    with pytest.raises(InvalidValue) as error:
        load_city(city_copy)
    message = str(error.value)
    assert "communities D03-S02-C01 and D03-S02-C02 overlap by" in message
    assert "near (118." in message


def test_a_gap_in_a_street_is_refused(city_copy: Path, edit_json: Edit) -> None:
    def remove(layer: dict[str, Any]) -> None:
        layer["features"] = [f for f in layer["features"]
                             if f["properties"]["code"] != "D04-S03-C02"]

    edit_json("communities.geojson", remove)
    with pytest.raises(InvalidValue, match=r"the communities of D04-S03 leave a gap of "
                                           r"[\d,]+\.\d\d m²"):
        load_city(city_copy)


def test_inspector_assignments_are_checked(city_copy: Path, edit_json: Edit) -> None:
    def drop_first(data: dict[str, Any]) -> None:
        data["inspectors"][0]["communities"] = ["D01-S01-C01", "D02-S01-C01"]

    edit_json("inspectors.json", drop_first)
    with pytest.raises(InvalidValue) as error:
        load_city(city_copy)
    message = str(error.value)
    assert "inspector insp-D01-01 works in D01 but community D02-S01-C01 is in D02" in message
    assert "community D01-S01-C02 has no inspector" in message


@pytest.mark.parametrize(
    ("file", "feature_id", "change", "message"),
    [
        ("hazard_sources.geojson", "HS-03",
         lambda f: f["geometry"].update(coordinates=[118.60, 32.05]),
         r"feature #3 \(HS-03\): point \(118\.600000, 32\.050000\) is outside Demo City, "
         r"1\d\.\d km from its boundary"),
        ("facilities.geojson", "SCH-02",
         lambda f: f["geometry"].update(coordinates=f["geometry"]["coordinates"][::-1]),
         r"feature #2 \(SCH-02\): latitude 118\.\d+ is outside -90\.\.90 \(are longitude and "
         "latitude swapped"),
        ("hazard_sources.geojson", "HS-01",
         lambda f: f["properties"]["sensors"][1].update(alarm=80.0),
         r"feature #1 \(HS-01\): sensors\.1: a 'high' sensor needs warning \(85\.0\) below "
         r"alarm \(80\.0\)"),
        ("hazard_sources.geojson", "HS-05",
         lambda f: f["properties"].update(impact_zone={"type": "Polygon", "coordinates": [
             [[118.8, 32.05], [118.81, 32.05], [118.81, 32.06], [118.8, 32.05]]]}),
         r"HS-05\): give exactly one of impact_radius_m and impact_zone"),
        ("hazard_sources.geojson", "HS-02", lambda f: f["properties"].update(grade=5),
         r"HS-02\): grade: Input should be less than or equal to 4"),
        ("facilities.geojson", "HOS-01", lambda f: f["properties"].update(kind="stadium"),
         r"HOS-01\): kind: Input should be 'school', 'hospital' or 'shelter'"),
        ("facilities.geojson", "HOS-02", lambda f: f["properties"].update(id="HOS-01"),
         "id\\(s\\) HOS-01 appear more than once"),
        ("resources.geojson", "SR-01", lambda f: f["properties"].update(facility_id="SHL-99"),
         r"SR-01\): unknown facility 'SHL-99'"),
        ("resources.geojson", "FE-01",
         lambda f: f.update(geometry={"type": "LineString", "coordinates": [[0, 0], [1, 1]]}),
         r"FE-01\): geometry must be a Point"),
    ],
)
def test_inventory_problems_name_the_file_and_the_feature(
    city_copy: Path, edit_json: Edit, find_feature: Find,
    file: str, feature_id: str, change: Callable[[dict[str, Any]], None], message: str,
) -> None:
    path = edit_json(file, lambda layer: change(find_feature(layer, feature_id)))
    with pytest.raises(InvalidValue, match=rf"{path}: .*{message}"):
        load_city(city_copy)


@pytest.mark.parametrize(
    ("file", "feature_id", "change", "message"),
    [
        ("resources.geojson", "FE-02", lambda p: p.update(kind="spaceship"),
         r"FE-02\): unknown resource kind 'spaceship'"),
        ("resources.geojson", "PC-01", lambda p: p.update(department="army"),
         r"PC-01\): unknown department 'army'"),
        ("hazard_sources.geojson", "HS-07", lambda p: p.update(type="volcano"),
         r"HS-07\): unknown hazard type 'volcano'"),
        ("hazard_sources.geojson", "HS-07", lambda p: p["sensors"][1].update(unit="°F"),
         r"HS-07\): sensor HS-07-TEMP-01: a temperature sensor reports in °C, not '°F'"),
    ],
)
def test_codes_are_checked_against_the_catalogues_when_given(
    city_copy: Path, edit_json: Edit, find_feature: Find,
    file: str, feature_id: str, change: Callable[[dict[str, Any]], None], message: str,
) -> None:
    path = edit_json(file, lambda layer: change(find_feature(layer, feature_id)["properties"]))
    load_city(city_copy)  # without catalogues only the structure is checked
    with pytest.raises(InvalidValue, match=rf"{path}: .*{message}"):
        load_city(city_copy, catalogue=Catalogue.load(),
                  hazard_catalogue=HazardCatalogue.load())


def test_a_city_can_bring_its_own_unit_grid(
    demo: City, city_copy: Path, edit_json: Edit
) -> None:
    cells = demo.map.cells[["code", "community", "inspector", "geometry"]].copy()
    # The city's own grid names its own inspector for one cell.
    cells.loc[cells["code"] == "D01-S01-C01-0001", "inspector"] = "insp-D01-02"
    cells.loc[cells["code"] != "D01-S01-C01-0001", "inspector"] = None
    cells.to_crs(epsg=32650).to_file(city_copy / "cells.gpkg", layer="unit_grid")
    edit_json("city.json", lambda c: c["layers"].update(
        cells={"path": "cells.gpkg", "layer": "unit_grid"}
    ))
    city = load_city(city_copy)
    columns = ["code", "community", "street", "district", "geometry"]
    assert_geodataframe_equal(city.map.cells[columns], demo.map.cells[columns],
                              check_less_precise=True, normalize=True, check_crs=True)
    assert city.map.cell("D01-S01-C01-0001").inspector_id == "insp-D01-02"
    assert city.map.cell("D01-S01-C01-0002").inspector_id == demo.map.cell(
        "D01-S01-C01-0002").inspector_id


def test_an_imported_grid_must_tile_its_communities(
    demo: City, city_copy: Path, edit_json: Edit
) -> None:
    cells = demo.map.cells[["code", "community", "geometry"]]
    cells = cells[cells["code"] != "D02-S02-C01-0010"]
    cells.to_file(city_copy / "cells.geojson")
    edit_json("city.json", lambda c: c["layers"].update(cells="cells.geojson"))
    with pytest.raises(InvalidValue, match=r"the cells of D02-S02-C01 leave a gap of "
                                           r"10,000\.00 m²"):
        load_city(city_copy)
