"""The demo city's map as the warning desk asks it: an area in the city names the districts,
streets and communities it touches (checked against an independent oracle: the communities
holding grid cells whose centres lie inside the area), an area outside the city is refused,
one reaching beyond the boundary is allowed, and a circle is measured in kilometres."""

from __future__ import annotations

from typing import Any

import pytest
import shapely

from cityops.domain.errors import InvalidValue
from cityops.domain.geometry import Area, GeoPoint
from cityops.domain.warnings.content import (
    AdminLevel,
    WarningArea,
    WarningCircle,
    circle_polygon,
)
from cityops.maps.warning_areas import WarningAreaLocator
from cityops.maps.zones import zone_area_m2


@pytest.fixture(scope="module")
def locator(demo_city: Any) -> WarningAreaLocator:
    return WarningAreaLocator(demo_city.map)


def test_a_circle_names_the_areas_it_touches(locator: WarningAreaLocator, demo_city: Any) -> None:
    centre = GeoPoint(118.80, 32.05)
    circle = WarningCircle(centre=centre, radius_km=0.8)
    touched = locator.admin_areas((), (circle,))
    communities = {a.code for a in touched if a.level is AdminLevel.COMMUNITY}
    # Oracle: the communities of the cells whose centres are well inside the circle.
    cells = [demo_city.map.cell(code) for code in demo_city.map.cells["code"]]
    inside = {c.community_code for c in cells if c.centre.distance_m(centre) < 700}
    assert inside and inside <= communities
    # Every community named has a cell within the circle's reach.
    near = {c.community_code for c in cells if c.centre.distance_m(centre) < 1000}
    assert communities <= near
    # The streets and districts named are those of the communities named.
    hierarchy = demo_city.map
    streets = {hierarchy.administrative_area(c).parent_code for c in communities}
    districts = {hierarchy.administrative_area(s).parent_code for s in streets}
    assert {a.code for a in touched if a.level is AdminLevel.STREET} == streets
    assert {a.code for a in touched if a.level is AdminLevel.DISTRICT} == districts
    # Largest first: districts, then streets, then communities.
    order = [a.level for a in touched]
    assert order == sorted(order, key=[AdminLevel.DISTRICT, AdminLevel.STREET,
                                       AdminLevel.COMMUNITY].index)
    assert all(a.name for a in touched)


def test_an_area_outside_the_city_is_refused_and_one_across_the_boundary_is_not(
        locator: WarningAreaLocator, demo_city: Any) -> None:
    with pytest.raises(InvalidValue, match="outside the city"):
        locator.check_in_city((Area(wkt=shapely.box(118.0, 31.0, 118.1, 31.1).wkt),), ())
    _, miny, maxx, _ = demo_city.map.bounds
    across = Area(wkt=shapely.box(maxx - 0.01, miny + 0.02, maxx + 0.05, miny + 0.03).wkt)
    locator.check_in_city((across,), ())
    assert locator.admin_areas((across,), ())


def test_a_circle_polygon_has_the_radius_in_kilometres() -> None:
    circle = WarningCircle(centre=GeoPoint(118.80, 32.05), radius_km=2.0)
    polygon = circle_polygon(circle)
    assert len(polygon.exterior.coords) == 65
    for lon, lat in polygon.exterior.coords:
        assert GeoPoint(lon, lat).distance_m(circle.centre) == pytest.approx(2000, rel=1e-6)
    outline = WarningArea(description="x", circles=(circle,)).outline()
    assert zone_area_m2(outline) == pytest.approx(3.14159 * 2000 ** 2, rel=0.005)
