"""Locating points in the demo city: cell, community, street, district and inspector; points
outside the city; vectorised locating; look-ups of cells and areas."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from cityops.domain.errors import InvalidValue
from cityops.domain.geometry import GeoPoint
from cityops.domain.ports import GridLocator
from cityops.maps import AdminLevel, City, GridLocation


@pytest.mark.parametrize(
    ("lon", "lat", "cell", "community", "street", "district", "inspector"),
    [
        (118.78, 32.065, "D01-S02-C02-0043", "Ink Street Community",
         "Confucius Temple Street", "Old Town District", "insp-D01-04"),
        (118.82, 32.03, "D04-S02-C01-0061", "Dam View Community",
         "Reservoir Road Street", "Hillside District", "insp-D04-03"),
        (118.80, 32.05, "D03-S03-C03-0034", "Printers Community",
         "Paper Mill Street", "Southbank District", "insp-D03-07"),
        (118.83, 32.07, "D02-S03-C03-0063", "Dyers Row Community",
         "Silk Market Street", "Eastgate District", "insp-D02-07"),
    ],
)
def test_known_points_are_located_to_their_codes(
    demo: City, lon: float, lat: float, cell: str, community: str, street: str,
    district: str, inspector: str,
) -> None:
    location = demo.map.locate(GeoPoint(lon, lat))
    assert location == GridLocation(
        cell_code=cell, community_code=cell[:11], community_name=community,
        street_code=cell[:7], street_name=street, district_code=cell[:3],
        district_name=district, inspector_id=inspector,
    )
    assert location.area_codes == (cell[:3], cell[:7], cell[:11], cell)
    assert demo.map.contains(GeoPoint(lon, lat))
    assert demo.map.require_inside(GeoPoint(lon, lat)) == location


def test_the_centre_of_every_cell_is_located_to_that_cell(demo: City) -> None:
    cells = demo.map.cells
    inside = cells.geometry.representative_point()
    found = demo.map.locate_many(inside.x.to_numpy(), inside.y.to_numpy())
    assert [f.cell_code if f else None for f in found] == list(cells["code"])


def test_points_outside_the_city_are_nowhere(demo: City) -> None:
    west_edge = shapely.get_coordinates(demo.map.boundary.shape)
    lon, lat = west_edge[west_edge[:, 0].argmin()]
    outside = GeoPoint(float(lon) - 0.01, float(lat))  # about 940 m west of the westmost point
    assert demo.map.locate(outside) is None
    assert demo.map.locate_cell(outside) is None
    assert not demo.map.contains(outside)
    distance = demo.map.distance_outside_m(outside)
    # At most the distance to that point (the haversine's sphere is 0.2 % short east-west here).
    assert 300 < distance <= outside.distance_m(GeoPoint(float(lon), float(lat))) * 1.005
    with pytest.raises(InvalidValue, match=rf"is outside Demo City, {distance:,.0f} m from its "
                                           "boundary"):
        demo.map.require_inside(outside)


def test_far_away_points_are_reported_in_km(demo: City) -> None:
    with pytest.raises(InvalidValue, match=r"outside Demo City, 1,0\d\d\.\d km"):
        demo.map.require_inside(GeoPoint(118.8, 41.4))


def test_swapped_coordinates_are_named_as_such(demo: City) -> None:
    with pytest.raises(InvalidValue, match="swapped"):
        demo.map.locate_many([32.05], [118.8])
    with pytest.raises(InvalidValue, match="swapped"):
        GeoPoint(32.05, 118.8)  # the domain value refuses it where it enters


def test_locate_many_agrees_with_locate_and_with_brute_force(demo: City) -> None:
    rng = np.random.default_rng(20240611)
    minx, miny, maxx, maxy = demo.map.bounds
    lons = rng.uniform(minx - 0.01, maxx + 0.01, 400)
    lats = rng.uniform(miny - 0.01, maxy + 0.01, 400)
    many = demo.map.locate_many(lons, lats)
    assert many == [demo.map.locate(GeoPoint(float(x), float(y))) for x, y in zip(lons, lats,
                                                                                 strict=True)]
    cells = demo.map.cells
    for x, y, found in zip(lons, lats, many, strict=True):
        holders = cells.loc[cells.geometry.covers(shapely.Point(x, y)), "code"]
        assert (found.cell_code if found else None) == (holders.min() if len(holders) else None)
    assert any(f is None for f in many) and any(f is not None for f in many)


def test_a_point_on_the_edge_between_cells_goes_to_the_first_code(demo: City) -> None:
    projection = demo.map.projection
    cells = demo.map.cells.set_index("code")
    shared = shapely.intersection(
        projection.to_metric(cells.geometry["D02-S02-C01-0010"]),
        projection.to_metric(cells.geometry["D02-S02-C01-0011"]),
    )
    middle = projection.to_wgs84(shared.interpolate(0.5, normalized=True))
    assert demo.map.locate_cell(GeoPoint(middle.x, middle.y)) in {
        "D02-S02-C01-0010", "D02-S02-C01-0011"
    }
    indices = demo.map.cell_indices([middle.x] * 3, [middle.y] * 3)
    assert len(set(indices.tolist())) == 1


def test_the_map_is_the_domains_grid_locator(demo: City) -> None:
    locator: GridLocator = demo.map
    assert locator.locate_cell(GeoPoint(118.78, 32.065)) == "D01-S02-C02-0043"


def test_cells_and_areas_are_looked_up_by_code(demo: City) -> None:
    cell = demo.map.cell("D02-S02-C01-0010")
    assert (cell.community_code, cell.street_code, cell.district_code) == (
        "D02-S02-C01", "D02-S02", "D02"
    )
    assert cell.inspector_id in demo.map.inspectors
    assert cell.area_m2 == pytest.approx(10_000.0)
    assert demo.map.locate_cell(cell.centre) == "D02-S02-C01-0010"
    with pytest.raises(InvalidValue, match="unknown grid cell 'D09-S01-C01-0001'"):
        demo.map.cell("D09-S01-C01-0001")

    street = demo.map.administrative_area("D02-S02")
    assert (street.level, street.name, street.parent_code) == (
        AdminLevel.STREET, "Lotus Lake Street", "D02"
    )
    community_cells = demo.map.cells_in("D02-S02-C01")
    assert "D02-S02-C01-0010" in community_cells
    assert sum(demo.map.cell(c).area_m2 for c in community_cells) == pytest.approx(
        demo.map.administrative_area("D02-S02-C01").area_m2, rel=1e-6
    )
    assert set(demo.map.cells_in("D02")) >= set(community_cells)
    assert demo.map.cells_in("D02-S02-C01-0010") == ["D02-S02-C01-0010"]
    with pytest.raises(InvalidValue, match="unknown district, street or community 'D09'"):
        demo.map.cells_in("D09")


def test_inspectors_cells_are_the_cells_that_name_them(demo: City) -> None:
    cells = demo.map.cells_of_inspector("insp-D01-01")
    assert cells and all(demo.map.cell(c).inspector_id == "insp-D01-01" for c in cells)
    with pytest.raises(InvalidValue, match="unknown inspector"):
        demo.map.cells_of_inspector("insp-D09-01")


def test_layers_are_wgs84_copies_that_cannot_change_the_map(demo: City) -> None:
    for level in AdminLevel:
        layer = demo.map.layer(level)
        assert layer.crs.to_epsg() == 4326
    cells = demo.map.cells
    cells.loc[:, "inspector"] = "someone-else"
    assert demo.map.cells["inspector"].str.startswith("insp-").all()
    with pytest.raises(InvalidValue, match="unknown level"):
        demo.map.layer("province")
