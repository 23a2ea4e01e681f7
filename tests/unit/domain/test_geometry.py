"""Geometry value objects: points and areas in WGS84 with an explicit CRS, refused where they
enter when they are off the globe, swapped, malformed or invalid; stored through events
unchanged. Shapes are compared as shapes, never as text.
"""

from __future__ import annotations

import math

import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from cityops.domain.errors import InvalidValue
from cityops.domain.geometry import WGS84, Area, GeoPoint

SQUARE = "POLYGON ((121.40 31.20, 121.41 31.20, 121.41 31.21, 121.40 31.21, 121.40 31.20))"


# --- points -------------------------------------------------------------------------------


def test_a_point_is_longitude_then_latitude_in_wgs84():
    point = GeoPoint(121.4737, 31.2304)
    assert point.crs == WGS84 == "EPSG:4326"
    assert point.to_geojson() == {"type": "Point", "coordinates": [121.4737, 31.2304]}
    assert point.shape.equals(shapely.Point(121.4737, 31.2304))


@pytest.mark.parametrize(("lon", "lat", "problem"), [
    (181, 31, "longitude 181 is outside -180..180"),
    (-180.5, 31, "longitude -180.5 is outside -180..180"),
    (31.23, 121.47, "latitude 121.47 is outside -90..90 (are longitude and latitude swapped?)"),
    (math.nan, 31, "longitude must be finite"),
    (121, math.inf, "latitude must be finite"),
    ("121.4", 31, "longitude must be a number"),
    (True, 31, "longitude must be a number"),
    (121, None, "latitude must be a number"),
])
def test_a_point_off_the_globe_or_not_a_number_is_refused(lon, lat, problem):
    with pytest.raises(InvalidValue) as error:
        GeoPoint(lon, lat)
    assert problem in str(error.value)


def test_a_point_in_another_crs_is_refused():
    with pytest.raises(InvalidValue, match="point CRS must be EPSG:4326, got 'EPSG:3857'"):
        GeoPoint(13_500_000.0, 3_600_000.0, crs="EPSG:3857")


def test_the_corners_of_the_globe_are_points():
    for lon, lat in [(-180, -90), (180, 90), (0, 0)]:
        assert GeoPoint(lon, lat).to_geojson()["coordinates"] == [lon, lat]


def test_a_point_from_geojson():
    assert GeoPoint.from_geojson({"type": "Point", "coordinates": [121.47, 31.23]}) == (
        GeoPoint(121.47, 31.23))
    # An altitude is accepted and dropped.
    assert GeoPoint.from_geojson({"type": "Point", "coordinates": [121.47, 31.23, 4.0]}) == (
        GeoPoint(121.47, 31.23))


@pytest.mark.parametrize(("data", "problem"), [
    ({"type": "LineString", "coordinates": [[0, 0], [1, 1]]}, "expected a GeoJSON Point"),
    ([121.47, 31.23], "expected a GeoJSON Point"),
    ({"type": "Point"}, "needs coordinates [longitude, latitude]"),
    ({"type": "Point", "coordinates": [121.47]}, "needs coordinates [longitude, latitude]"),
    ({"type": "Point", "coordinates": "121.47,31.23"}, "needs coordinates"),
    ({"type": "Point", "coordinates": [31.23, 121.47]}, "swapped"),
])
def test_a_bad_geojson_point_is_refused(data, problem):
    with pytest.raises(InvalidValue) as error:
        GeoPoint.from_geojson(data)
    assert problem in str(error.value)


def test_distances_in_metres():
    here = GeoPoint(121.4737, 31.2304)
    assert here.distance_m(here) == 0
    one_degree_north = GeoPoint(121.4737, 32.2304)
    assert one_degree_north.distance_m(here) == pytest.approx(111_195, rel=1e-4)
    # Shanghai to Beijing, about 1,068 km on the great circle.
    assert here.distance_m(GeoPoint(116.4074, 39.9042)) == pytest.approx(1_068_000, rel=0.01)
    # Across the antimeridian the short way round.
    assert GeoPoint(179.9, 0).distance_m(GeoPoint(-179.9, 0)) == pytest.approx(22_239, rel=1e-3)


coordinates = st.builds(GeoPoint, st.floats(-180, 180), st.floats(-90, 90))


@settings(max_examples=200, derandomize=True, deadline=None)
@given(a=coordinates, b=coordinates, c=coordinates)
def test_distance_is_a_metric(a, b, c):
    assert a.distance_m(b) == pytest.approx(b.distance_m(a), abs=1e-6)
    assert 0 <= a.distance_m(b) <= math.pi * 6_371_008.8 + 1e-6
    assert a.distance_m(c) <= a.distance_m(b) + b.distance_m(c) + 1e-3


@settings(max_examples=100, derandomize=True, deadline=None)
@given(point=coordinates)
def test_a_point_survives_geojson(point):
    assert GeoPoint.from_geojson(point.to_geojson()) == point


# --- areas --------------------------------------------------------------------------------


def test_an_area_is_a_polygon_in_wgs84():
    area = Area(SQUARE)
    assert area.crs == WGS84
    assert area.shape.geom_type == "Polygon"
    assert area.shape.area == pytest.approx(0.0001)
    assert area.to_geojson()["type"] == "Polygon"


def test_an_area_from_geojson_keeps_its_shape():
    area = Area(SQUARE)
    again = Area.from_geojson(area.to_geojson())
    assert again.shape.equals(area.shape)


def test_a_multipolygon_is_an_area():
    data = {"type": "MultiPolygon", "coordinates": [
        [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]],
        [[[2, 2], [3, 2], [3, 3], [2, 3], [2, 2]]],
    ]}
    area = Area.from_geojson(data)
    assert area.shape.geom_type == "MultiPolygon"
    assert area.shape.equals(shapely.geometry.shape(data))


@pytest.mark.parametrize(("wkt", "problem"), [
    ("POLYGON ((0 0, 1 1", "area is not valid WKT"),
    ("POLYGON EMPTY", "area is empty"),
    ("POINT (121.4 31.2)", "area must be a Polygon or MultiPolygon, got Point"),
    ("LINESTRING (0 0, 1 1)", "area must be a Polygon or MultiPolygon, got LineString"),
    ("POLYGON ((0 0, 1 1, 1 0, 0 1, 0 0))", "area geometry is invalid: Self-intersection"),
    ("POLYGON ((170 0, 190 0, 190 10, 170 10, 170 0))", "outside longitude/latitude range"),
    ("POLYGON ((0 80, 10 80, 10 95, 0 95, 0 80))", "outside longitude/latitude range"),
])
def test_a_bad_area_is_refused(wkt, problem):
    with pytest.raises(InvalidValue) as error:
        Area(wkt)
    assert problem in str(error.value)


def test_an_area_in_another_crs_is_refused():
    with pytest.raises(InvalidValue, match="area CRS must be EPSG:4326"):
        Area(SQUARE, crs="EPSG:3857")


@pytest.mark.parametrize(("data", "problem"), [
    ({"type": "Point", "coordinates": [0, 0]}, "expected a GeoJSON Polygon or MultiPolygon"),
    ("POLYGON ((0 0, 1 0, 1 1, 0 0))", "expected a GeoJSON Polygon or MultiPolygon"),
    ({"type": "Polygon", "coordinates": [[[0, 0], [1, 0]]]}, "malformed GeoJSON polygon"),
    ({"type": "Polygon", "coordinates": "nope"}, "malformed GeoJSON polygon"),
])
def test_a_bad_geojson_area_is_refused(data, problem):
    with pytest.raises(InvalidValue) as error:
        Area.from_geojson(data)
    assert problem in str(error.value)


# --- stored in events -----------------------------------------------------------------------


def test_points_and_areas_survive_the_event_store(gridcases):
    transcoder = gridcases.mapper.transcoder
    point, area = GeoPoint(121.4737, 31.2304), Area(SQUARE)
    decoded = transcoder.decode(transcoder.encode({"point": point, "area": area}))
    assert decoded["point"] == point
    assert decoded["area"].shape.equals(area.shape)


def test_a_reported_location_is_reloaded_exactly(workflow, places):
    case_id = workflow.report(location=places.in_d04)
    reloaded = workflow.app.repository.get(case_id)
    assert reloaded.location == places.in_d04
    assert reloaded.summary()["location"] == {"type": "Point",
                                              "coordinates": [121.4905, 31.2105]}
