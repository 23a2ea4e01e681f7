"""The shipped demo city is coherent: the hierarchy tiles without overlaps, every cell lies in
exactly one community and has an inspector, everything positioned lies inside the city, every
code is known to the catalogues, and the files are what the generator draws."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pytest
import shapely
from geopandas.testing import assert_geodataframe_equal

from cityops.domain.catalogue import Catalogue
from cityops.domain.hazards.catalogue import HazardCatalogue
from cityops.maps import (
    City,
    EmergencyResource,
    Facility,
    HazardSource,
    load_city,
    load_demo_city,
)
from cityops.maps.city import demo_city_directory
from cityops.maps.demo_city import build_demo_city

TOLERANCE_M2 = 0.01


def _metric(city: City, frame: gpd.GeoDataFrame) -> np.ndarray:
    return np.asarray(city.map.projection.to_metric(np.asarray(frame.geometry.values)))


def test_figures_of_the_demo_city(demo: City) -> None:
    assert (demo.info.name, demo.info.timezone, demo.info.metric_crs) == (
        "Demo City", "Asia/Shanghai", "EPSG:32650"
    )
    assert len(demo.map.districts) == 4
    assert len(demo.map.streets) == 12
    assert len(demo.map.communities) == 36
    assert 3000 <= len(demo.map.cells) <= 6000
    assert len(demo.hazard_sources) == 8
    assert len(demo.facilities) == 25
    assert len(demo.resources) == 31
    minx, miny, maxx, maxy = demo.map.bounds
    bminx, bminy, bmaxx, bmaxy = demo.info.bbox
    assert bminx <= minx and bminy <= miny and maxx <= bmaxx and maxy <= bmaxy
    lon, lat = shapely.centroid(demo.map.boundary.shape).coords[0]
    assert lon == pytest.approx(118.80, abs=0.01) and lat == pytest.approx(32.05, abs=0.01)
    assert demo.map.report.lines() == []


def test_the_demo_city_is_loaded_once_and_shared() -> None:
    """Load speed is not asserted here (no timed assertions in tests); the loader is cached
    so every component shares one immutable city."""
    city = load_city(demo_city_directory())
    assert len(city.map.cells) == len(load_demo_city().map.cells)
    assert load_demo_city() is load_demo_city()


@pytest.mark.parametrize(
    ("children", "parents", "parent_column"),
    [("streets", "districts", "district"), ("communities", "streets", "street")],
)
def test_children_tile_their_parents(
    demo: City, children: str, parents: str, parent_column: str
) -> None:
    child_frame = demo.map.layer(children[:-1] if children != "communities" else "community")
    parent_frame = demo.map.layer(parents[:-1] if parents != "districts" else "district")
    child_shapes, parent_shapes = _metric(demo, child_frame), _metric(demo, parent_frame)
    tree = shapely.STRtree(child_shapes)
    left, right = tree.query(child_shapes, predicate="intersects")
    pairs = left < right
    overlaps = shapely.area(shapely.intersection(child_shapes[left[pairs]],
                                                 child_shapes[right[pairs]]))
    assert overlaps.max(initial=0.0) < TOLERANCE_M2
    for code, parent in zip(parent_frame["code"], parent_shapes, strict=True):
        mine = child_shapes[(child_frame[parent_column] == code).to_numpy()]
        assert len(mine) == 3
        union = shapely.union_all(mine)
        assert shapely.symmetric_difference(union, parent).area < TOLERANCE_M2


def test_districts_do_not_overlap(demo: City) -> None:
    shapes = _metric(demo, demo.map.districts)
    total = sum(s.area for s in shapes)
    assert shapely.union_all(shapes).area == pytest.approx(total, abs=TOLERANCE_M2)


def test_every_cell_lies_in_exactly_one_community_and_they_tile_it(demo: City) -> None:
    cells, communities = demo.map.cells, demo.map.communities
    cell_shapes, community_shapes = _metric(demo, cells), _metric(demo, communities)
    inside = shapely.STRtree(community_shapes).query(
        shapely.point_on_surface(cell_shapes), predicate="within"
    )
    holders = np.bincount(inside[0], minlength=len(cells))
    assert (holders == 1).all()
    assert (communities["code"].to_numpy()[inside[1]] == cells["community"].to_numpy()).all()
    by_code = dict(zip(communities["code"], community_shapes, strict=True))
    outside = shapely.area(shapely.difference(
        cell_shapes, np.asarray([by_code[c] for c in cells["community"]])
    ))
    assert outside.max() < TOLERANCE_M2
    for code, shape in by_code.items():
        mine = cell_shapes[(cells["community"] == code).to_numpy()]
        assert shapely.area(mine).sum() == pytest.approx(shape.area, rel=1e-7)
    assert cells["area_m2"].min() >= 2500.0  # no slivers: small pieces were merged
    assert cells["code"].is_unique
    assert cells["code"].str.fullmatch(r"D0\d-S0\d-C0\d-\d{4}").all()
    assert (cells["code"].str[:11] == cells["community"]).all()


def test_every_cell_has_an_inspector_whose_cells_are_contiguous(demo: City) -> None:
    cells = demo.map.cells
    assert cells["inspector"].isin(list(demo.map.inspectors)).all()
    shapes = _metric(demo, cells)
    for inspector_id, inspector in demo.map.inspectors.items():
        assert inspector_id.startswith(f"insp-{inspector.district}-")
        mine = (cells["inspector"] == inspector_id).to_numpy()
        assert mine.any()
        block = shapely.union_all(shapes[mine], grid_size=0.01)
        assert block.geom_type == "Polygon", f"{inspector_id}'s cells are not one block"
        assert (cells.loc[mine, "district"] == inspector.district).all()


def test_everything_positioned_is_inside_the_city(demo: City) -> None:
    items: list[HazardSource | Facility | EmergencyResource] = [
        *demo.hazard_sources, *demo.facilities, *demo.resources
    ]
    for item in items:
        assert demo.map.contains(item.location), item.id


def test_codes_are_known_to_the_catalogues(demo: City) -> None:
    catalogue = Catalogue.load()
    hazard_catalogue = HazardCatalogue.load()
    for resource in demo.resources:
        catalogue.resource_kind(resource.kind)
        catalogue.department(resource.department)
    for source in demo.hazard_sources:
        hazard_catalogue.hazard_type(source.hazard_type)
        for sensor in source.sensors:
            hazard_catalogue.check_unit(sensor.kind, sensor.unit)
    # The loader checks them itself when the composition root gives it the catalogues.
    load_city(demo_city_directory(), catalogue=catalogue, hazard_catalogue=hazard_catalogue)


def test_the_demo_city_has_what_a_drill_needs(demo: City) -> None:
    kinds = {r.kind for r in demo.resources}
    assert {"fire-engine", "ambulance", "police-car", "rescue-team", "hazmat-team",
            "water-rescue-boat", "drainage-pump-truck", "engineering-vehicle", "supply-depot",
            "shelter"} <= kinds
    types = {s.hazard_type for s in demo.hazard_sources}
    assert {"chemical-plant", "lpg-depot", "gas-station", "reservoir-dam", "landslide-slope",
            "deep-excavation"} <= types
    assert {s.grade for s in demo.hazard_sources} == {1, 2, 3, 4}
    assert {f.kind.value for f in demo.facilities} == {"school", "hospital", "shelter"}
    for resource in demo.resources:
        if resource.facility_id is not None:
            assert demo.facility(resource.facility_id).location == resource.location


def test_the_files_are_wgs84_geojson(demo: City) -> None:
    directory = demo_city_directory()
    for name in ("districts", "streets", "communities", "hazard_sources", "facilities",
                 "resources", "landmarks"):
        frame = gpd.read_file(directory / f"{name}.geojson")
        assert frame.crs is not None and frame.crs.to_epsg() == 4326


def _geojson(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def test_the_shipped_files_are_what_the_generator_draws(tmp_path: Path) -> None:
    build_demo_city(tmp_path)
    shipped = demo_city_directory()
    for name in ("city.json", "inspectors.json"):
        assert _geojson(tmp_path / name) == _geojson(shipped / name)
    for name in ("districts", "streets", "communities", "hazard_sources", "facilities",
                 "resources", "landmarks"):
        drawn = gpd.read_file(tmp_path / f"{name}.geojson")
        kept = gpd.read_file(shipped / f"{name}.geojson")
        assert_geodataframe_equal(drawn, kept, check_less_precise=True, check_crs=True)
        drawn_properties = [f["properties"] for f in _geojson(tmp_path / f"{name}.geojson")
                            ["features"]]
        kept_properties = [f["properties"] for f in _geojson(shipped / f"{name}.geojson")
                           ["features"]]
        assert drawn_properties == kept_properties
