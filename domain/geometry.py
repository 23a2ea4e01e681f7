"""Geometry value objects of the domain, always in WGS84 (EPSG:4326) with an explicit CRS.

The domain only needs to know where things are; metric work (distances, buffers, areas) is
done by `cityops.maps` in a projected CRS. Coordinates are validated here so that a swapped
axis order or a point off the globe is refused where it enters, not discovered on a map.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import shapely
from shapely.geometry.base import BaseGeometry

from cityops.domain.errors import InvalidValue

WGS84 = "EPSG:4326"
EARTH_RADIUS_M = 6_371_008.8
MAX_AREA_POSITIONS = 50_000
"""An area from outside with more positions is refused (no city area needs one)."""


@dataclass(frozen=True, slots=True)
class GeoPoint:
    """A position as longitude/latitude in WGS84 (x = lon, y = lat: GeoJSON order)."""

    lon: float
    lat: float
    crs: str = WGS84

    def __post_init__(self) -> None:
        if self.crs != WGS84:
            raise InvalidValue(f"point CRS must be {WGS84}, got {self.crs!r}")
        for name, value in (("longitude", self.lon), ("latitude", self.lat)):
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise InvalidValue(f"{name} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise InvalidValue(f"{name} must be finite, got {value!r}")
        if not -180.0 <= self.lon <= 180.0:
            raise InvalidValue(f"longitude {self.lon} is outside -180..180")
        if not -90.0 <= self.lat <= 90.0:
            raise InvalidValue(
                f"latitude {self.lat} is outside -90..90 (are longitude and latitude swapped?)"
            )

    @classmethod
    def from_geojson(cls, data: Any) -> GeoPoint:
        """Build a point from a GeoJSON Point object; anything else is a clear error."""
        if not isinstance(data, dict) or data.get("type") != "Point":
            raise InvalidValue("expected a GeoJSON Point object")
        coords = data.get("coordinates")
        if not isinstance(coords, list | tuple) or len(coords) not in (2, 3):
            raise InvalidValue("a GeoJSON Point needs coordinates [longitude, latitude]")
        return cls(lon=coords[0], lat=coords[1])

    def to_geojson(self) -> dict[str, Any]:
        return {"type": "Point", "coordinates": [self.lon, self.lat]}

    def distance_m(self, other: GeoPoint) -> float:
        """Great-circle (haversine) distance in metres: precise enough inside one city."""
        phi1, phi2 = math.radians(self.lat), math.radians(other.lat)
        dphi = phi2 - phi1
        dlmb = math.radians(other.lon - self.lon)
        h = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlmb / 2) ** 2
        return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))

    @property
    def shape(self) -> BaseGeometry:
        return shapely.Point(self.lon, self.lat)


@dataclass(frozen=True, slots=True)
class Area:
    """A polygonal area (affected area, impact zone) in WGS84, kept as WKT for storage."""

    wkt: str
    crs: str = WGS84

    def __post_init__(self) -> None:
        if self.crs != WGS84:
            raise InvalidValue(f"area CRS must be {WGS84}, got {self.crs!r}")
        try:
            geom = shapely.from_wkt(self.wkt)
        except shapely.errors.ShapelyError as error:
            raise InvalidValue(f"area is not valid WKT: {error}") from None
        if geom is None or geom.is_empty:
            raise InvalidValue("area is empty")
        if geom.geom_type not in ("Polygon", "MultiPolygon"):
            raise InvalidValue(f"area must be a Polygon or MultiPolygon, got {geom.geom_type}")
        if not geom.is_valid:
            reason = shapely.is_valid_reason(geom)
            raise InvalidValue(f"area geometry is invalid: {reason}")
        minx, miny, maxx, maxy = geom.bounds
        if minx < -180 or maxx > 180 or miny < -90 or maxy > 90:
            raise InvalidValue("area coordinates are outside longitude/latitude range")

    @classmethod
    def from_geojson(cls, data: Any) -> Area:
        """Build an area from a GeoJSON Polygon or MultiPolygon object."""
        if not isinstance(data, dict) or data.get("type") not in ("Polygon", "MultiPolygon"):
            raise InvalidValue("expected a GeoJSON Polygon or MultiPolygon object")
        try:
            _check_polygon_coordinates(data["type"], data.get("coordinates"))
        except InvalidValue as error:
            raise InvalidValue(f"malformed GeoJSON polygon: {error}") from None
        try:
            geom = shapely.geometry.shape(data)
        except (ValueError, TypeError, IndexError, shapely.errors.ShapelyError) as error:
            raise InvalidValue(f"malformed GeoJSON polygon: {error}") from None
        return cls(wkt=geom.wkt)

    @property
    def shape(self) -> BaseGeometry:
        return shapely.from_wkt(self.wkt)

    def to_geojson(self) -> dict[str, Any]:
        return dict(shapely.geometry.mapping(self.shape))


def _check_polygon_coordinates(kind: str, coordinates: Any) -> None:
    """The nesting GeoJSON prescribes, checked before shapely reads it (shapely fails on a
    malformed member with a KeyError or a TypeError rather than a clear message): a
    MultiPolygon is a list of polygons, a polygon a non-empty list of rings, a ring a list of
    [longitude, latitude] positions of finite numbers."""
    polygons = [coordinates] if kind == "Polygon" else coordinates
    if not isinstance(polygons, list | tuple) or not polygons:
        raise InvalidValue("a MultiPolygon's coordinates are a non-empty list of polygons")
    count = 0
    for p, rings in enumerate(polygons, start=1):
        where = "polygon" if kind == "Polygon" else f"polygon {p}"
        if not isinstance(rings, list | tuple) or not rings:
            raise InvalidValue(f"{where}: a polygon is a non-empty list of rings")
        for r, ring in enumerate(rings, start=1):
            if not isinstance(ring, list | tuple):
                raise InvalidValue(f"{where}, ring {r}: a ring is a list of [longitude, "
                                   "latitude] positions")
            for k, position in enumerate(ring, start=1):
                if not isinstance(position, list | tuple) or len(position) not in (2, 3) \
                        or not all(isinstance(v, int | float) and not isinstance(v, bool)
                                   and math.isfinite(v) for v in position):
                    raise InvalidValue(f"{where}, ring {r}, position {k}: a position is "
                                       "[longitude, latitude] in finite numbers")
            count += len(ring)
            if count > MAX_AREA_POSITIONS:
                raise InvalidValue(f"an area has at most {MAX_AREA_POSITIONS} positions")
