"""Geometries given with a question: any declared CRS is brought to WGS84 (so the same place
given in EPSG:4326, 3857 or 32650 is the same place), and every kind of bad geometry is a
clear error, or an explicit repair when asked for."""

from __future__ import annotations

import pytest
import shapely
from pyproj import Transformer

from cityops.domain.errors import InvalidValue
from cityops.maps import City
from cityops.maps.query_geometry import AxisOrder, query_area, query_bbox, query_crs, query_point

LON, LAT = 118.80, 32.05
SQUARE = [[118.79, 32.04], [118.81, 32.04], [118.81, 32.06], [118.79, 32.06], [118.79, 32.04]]
BOWTIE = [[118.79, 32.04], [118.81, 32.06], [118.81, 32.04], [118.79, 32.06], [118.79, 32.04]]


def _to(epsg: int, lon: float, lat: float) -> tuple[float, float]:
    x, y = Transformer.from_crs(4326, epsg, always_xy=True).transform(lon, lat)
    return float(x), float(y)


@pytest.mark.parametrize("crs", ["EPSG:3857", "EPSG:32650", "32650",
                                 "http://www.opengis.net/def/crs/EPSG/0/32650"])
def test_a_point_in_a_projected_crs_is_the_same_place(demo: City, crs: str) -> None:
    x, y = _to(int(crs.rsplit("/", 1)[-1].rsplit(":", 1)[-1]), LON, LAT)
    point = query_point(x, y, crs, demo.map)
    assert point.lon == pytest.approx(LON, abs=1e-9) and point.lat == pytest.approx(LAT, abs=1e-9)


def test_a_polygon_in_utm_becomes_the_same_area_in_wgs84(demo: City) -> None:
    utm = [list(_to(32650, lon, lat)) for lon, lat in SQUARE]
    area = query_area({"type": "Polygon", "coordinates": [utm]}, "EPSG:32650", demo.map)
    assert area.repair is None
    # The asker's edges are straight in UTM. Densified before reprojection, the WGS84 shape
    # follows them: measured back in UTM it differs from the asker's polygon by less than a
    # square metre (its vertices alone, joined straight in lon/lat, miss about 100 m²).
    projection = demo.map.projection
    asked = shapely.Polygon(utm)
    got = projection.to_metric(area.shape)
    vertices_only = projection.to_metric(shapely.segmentize(shapely.Polygon(SQUARE), 1e-4))
    assert got.symmetric_difference(asked).area < 1.0
    assert vertices_only.symmetric_difference(asked).area > 50.0


def test_an_ogc_bbox_in_epsg_4326_is_latitude_first(demo: City) -> None:
    authority = query_bbox([32.04, 118.79, 32.06, 118.81], "EPSG:4326", demo.map,
                           axis_order=AxisOrder.AUTHORITY)
    crs84 = query_bbox([118.79, 32.04, 118.81, 32.06], None, demo.map)
    assert authority == pytest.approx(crs84)
    assert crs84 == pytest.approx((118.79, 32.04, 118.81, 32.06))


def test_a_bbox_in_web_mercator_covers_the_box(demo: City) -> None:
    x1, y1 = _to(3857, 118.79, 32.04)
    x2, y2 = _to(3857, 118.81, 32.06)
    box = query_bbox([x1, y1, x2, y2], "http://www.opengis.net/def/crs/EPSG/0/3857", demo.map)
    assert box == pytest.approx((118.79, 32.04, 118.81, 32.06), abs=1e-9)


@pytest.mark.parametrize(("crs", "message"), [
    ("EPSG:999999", "unknown coordinate reference system"),
    ("not a crs", "unknown coordinate reference system"),
    ("ENGCRS[\"local\",EDATUM[\"d\"],CS[Cartesian,2],AXIS[\"x\",east,LENGTHUNIT[\"m\",1]],"
     "AXIS[\"y\",north,LENGTHUNIT[\"m\",1]]]", "neither geographic nor projected"),
])
def test_an_unknown_crs_is_refused(demo: City, crs: str, message: str) -> None:
    with pytest.raises(InvalidValue, match=message):
        query_point(LON, LAT, crs, demo.map)
    assert query_crs(None).name == "WGS 84 (CRS84)"


def test_swapped_axes_are_named(demo: City) -> None:
    with pytest.raises(InvalidValue, match="swapped"):
        query_point(LAT, LON, None, demo.map)
    swapped = [[lat, lon] for lon, lat in SQUARE]
    with pytest.raises(InvalidValue, match="swapped"):
        query_area({"type": "Polygon", "coordinates": [swapped]}, None, demo.map)
    with pytest.raises(InvalidValue, match="swapped"):
        query_bbox([32.04, 118.79, 32.06, 118.81], None, demo.map)


def test_projected_coordinates_labelled_as_wgs84_are_refused(demo: City) -> None:
    x, y = _to(32650, LON, LAT)
    with pytest.raises(InvalidValue, match=r"latitude outside|longitude outside"):
        query_point(x, y, None, demo.map)


def test_places_outside_the_city_are_refused(demo: City) -> None:
    with pytest.raises(InvalidValue, match=r"outside Demo City, [\d,.]+ (m|km) from"):
        query_point(118.60, 32.05, None, demo.map)
    far = [[lon - 1.0, lat] for lon, lat in SQUARE]
    with pytest.raises(InvalidValue, match="lies outside Demo City"):
        query_area({"type": "Polygon", "coordinates": [far]}, None, demo.map)


@pytest.mark.parametrize(("geometry", "message"), [
    ({"type": "Polygon", "coordinates": [SQUARE[:-1]]}, "not closed"),
    ({"type": "Polygon", "coordinates": [[SQUARE[0], SQUARE[1], SQUARE[0]]]},
     "at least 4 positions"),
    ({"type": "Polygon", "coordinates": []}, "non-empty list of rings"),
    ({"type": "Polygon", "coordinates": [[[118.79, "a"], *SQUARE[1:]]]}, "finite numbers"),
    ({"type": "Polygon", "coordinates": [[[118.79], *SQUARE[1:]]]}, r"a position is \[x, y\]"),
    ({"type": "Point", "coordinates": [LON, LAT]}, "Polygon or MultiPolygon"),
    ({"type": "Polygon", "coordinates": [BOWTIE]}, "Self-intersection.*repair=true"),
    ({"type": "MultiPolygon", "coordinates": [[SQUARE], [SQUARE]]}, "not a valid polygon"),
])
def test_bad_polygons_are_refused_with_the_reason(demo: City, geometry: dict[str, object],
                                                  message: str) -> None:
    with pytest.raises(InvalidValue, match=message):
        query_area(geometry, None, demo.map)


def test_a_self_intersecting_polygon_is_repaired_only_when_asked(demo: City) -> None:
    area = query_area({"type": "Polygon", "coordinates": [BOWTIE]}, None, demo.map,
                      repair=True)
    assert area.shape.is_valid and area.shape.geom_type == "MultiPolygon"
    assert area.repair is not None and "Self-intersection" in area.repair
    # The two triangles of the bow tie: half of the square's area.
    assert area.shape.area == pytest.approx(shapely.Polygon(SQUARE).area / 2)
