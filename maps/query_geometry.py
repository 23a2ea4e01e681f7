"""Geometries that come in with a question (a point, a bounding box, a polygon), in whatever
CRS the asker declares, checked and brought to WGS84 before any query sees them.

Every problem is a clear `InvalidValue`, never a silent wrong answer: an unknown CRS, a ring
that is not closed or has too few positions, a self-intersecting polygon (refused, or repaired
with `make_valid` only when the asker says so, and the repair reported), coordinates that
cannot be longitude/latitude or would only fit the city with the axes swapped, and places
outside the city.

Axis order: coordinates of our own query API are always given easting/longitude first, as
GeoJSON does, whatever the CRS definition says (`always_xy`). OGC API bounding boxes with a
`bbox-crs` follow the CRS's own axis order, as that standard requires (see
`query_bbox(axis_order=...)`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
import shapely
from pyproj import CRS, Transformer
from shapely.geometry.base import BaseGeometry

from cityops.domain.errors import InvalidValue
from cityops.domain.geometry import GeoPoint
from cityops.maps.citymap import CityMap
from cityops.maps.crs import WGS84_CRS, resolve_crs

CRS84_URI = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EPSG_URI_PREFIX = "http://www.opengis.net/def/crs/EPSG/0/"
MAX_VERTICES = 50_000
"""A query polygon larger than this is refused: no street-level question needs one."""
SEGMENT_UNITS = 100.0
"""A polygon in a projected CRS is densified to this many CRS units per segment before it
is reprojected, so that its straight edges stay (nearly) straight in WGS84."""
CITY_MARGIN_DEG = 0.01
"""About a kilometre: a query area may reach this far beyond the city's bounding box."""
POLYGONAL = ("Polygon", "MultiPolygon")


class AxisOrder(StrEnum):
    """How the two numbers of a coordinate pair are ordered."""

    XY = "xy"
    """Easting/longitude first (GeoJSON, our query API)."""
    AUTHORITY = "authority"
    """As the CRS definition says (OGC API bbox-crs: EPSG:4326 is latitude first)."""


def query_crs(value: str | None) -> CRS:
    """The CRS named by a query: None means WGS84 longitude/latitude (OGC CRS84). Accepts
    `EPSG:3857`, a bare code `3857`, OGC URIs (`http://www.opengis.net/def/crs/EPSG/0/3857`,
    the CRS84 URI) and URNs; anything else is a clear error."""
    if value is None or value == "":
        return CRS.from_user_input("OGC:CRS84")
    text = value.strip()
    if text in (CRS84_URI, "CRS84", "OGC:CRS84"):
        return CRS.from_user_input("OGC:CRS84")
    if text.startswith(EPSG_URI_PREFIX):
        text = "EPSG:" + text[len(EPSG_URI_PREFIX):]
    elif text.isdigit():
        text = f"EPSG:{text}"
    return resolve_crs(text, f"crs {value!r}")


def crs_uri(crs: CRS) -> str:
    """The OGC URI of a CRS (for links and `storageCrs`)."""
    if crs.equals(CRS.from_user_input("OGC:CRS84")) and crs.axis_info[0].direction == "east":
        return CRS84_URI
    code = crs.to_epsg()
    return f"{EPSG_URI_PREFIX}{code}" if code is not None else crs.to_string()


def _to_wgs84(crs: CRS, order: AxisOrder) -> Transformer:
    return Transformer.from_crs(crs, WGS84_CRS, always_xy=order is AxisOrder.XY)


def _transform(crs: CRS, order: AxisOrder, xs: Any, ys: Any) -> tuple[Any, Any]:
    """(lon, lat) arrays from coordinates in `crs`; the output is always lon/lat."""
    transformer = _to_wgs84(crs, order)
    a, b = transformer.transform(np.asarray(xs, float), np.asarray(ys, float))
    if order is AxisOrder.AUTHORITY:
        # Without always_xy the output is in EPSG:4326's own order: latitude first.
        a, b = b, a
    lons, lats = np.asarray(a, float), np.asarray(b, float)
    if not (np.all(np.isfinite(lons)) and np.all(np.isfinite(lats))):
        raise InvalidValue(
            f"coordinates cannot be transformed from {crs.name!r} to longitude/latitude: "
            "they are outside the area where that CRS is defined (wrong CRS, or wrong axis "
            "order?)"
        )
    return lons, lats


def _check_lonlat(lons: Any, lats: Any, label: str) -> None:
    lons, lats = np.asarray(lons, float), np.asarray(lats, float)
    if np.any(np.abs(lats) > 90):
        hint = (" Longitude and latitude appear to be swapped: write longitude first."
                if np.all(np.abs(lons) <= 90) else "")
        raise InvalidValue(f"{label}: latitude outside -90..90.{hint}")
    if np.any(np.abs(lons) > 180):
        raise InvalidValue(f"{label}: longitude outside -180..180 (projected coordinates "
                           "given without their crs?)")


def query_point(x: float, y: float, crs_value: str | None, city: CityMap,
                label: str = "point") -> GeoPoint:
    """A point of a question (an incident location, a dispatcher's click) in WGS84; it must
    be inside the city (the error says how far out it is, and whether swapped axes fit)."""
    for name, value in (("x", x), ("y", y)):
        if not isinstance(value, int | float) or isinstance(value, bool) \
                or not math.isfinite(value):
            raise InvalidValue(f"{label}: {name} must be a finite number, got {value!r}")
    crs = query_crs(crs_value)
    lons, lats = _transform(crs, AxisOrder.XY, [x], [y])
    _check_lonlat(lons, lats, label)
    point = GeoPoint(lon=float(lons[0]), lat=float(lats[0]))
    try:
        city.require_inside(point)
    except InvalidValue as error:
        raise InvalidValue(f"{label}: {error}") from None
    return point


def query_bbox(values: Sequence[float], crs_value: str | None, city: CityMap | None = None,
               *, axis_order: AxisOrder = AxisOrder.XY) -> tuple[float, float, float, float]:
    """A bounding box (4 numbers: lower corner, upper corner) as WGS84
    (min lon, min lat, max lon, max lat). A box in a projected CRS is densified along its
    edges before it is reprojected, so that the WGS84 box covers it."""
    if len(values) != 4:
        raise InvalidValue("a bbox is four numbers: the lower corner, then the upper corner")
    if not all(isinstance(v, int | float) and math.isfinite(v) for v in values):
        raise InvalidValue("bbox values must be finite numbers")
    crs = query_crs(crs_value)
    a1, b1, a2, b2 = (float(v) for v in values)
    if a1 > a2 or b1 > b2:
        raise InvalidValue("bbox: the lower corner is above or right of the upper corner "
                           "(order is min, min, max, max)")
    edge = np.linspace(0.0, 1.0, 21)
    xs = np.concatenate([a1 + (a2 - a1) * edge, np.full(21, a2), a1 + (a2 - a1) * edge,
                         np.full(21, a1)])
    ys = np.concatenate([np.full(21, b1), b1 + (b2 - b1) * edge, np.full(21, b2),
                         b1 + (b2 - b1) * edge])
    lons, lats = _transform(crs, axis_order, xs, ys)
    _check_lonlat(lons, lats, "bbox")
    box = (float(lons.min()), float(lats.min()), float(lons.max()), float(lats.max()))
    if city is not None:
        _near_city(shapely.box(*box), city, "bbox")
    return box


def _near_city(shape: BaseGeometry, city: CityMap, label: str) -> None:
    """Refuse an area that does not come near the city (saying if swapped axes would)."""
    minx, miny, maxx, maxy = city.bounds
    reach = shapely.box(minx - CITY_MARGIN_DEG, miny - CITY_MARGIN_DEG,
                        maxx + CITY_MARGIN_DEG, maxy + CITY_MARGIN_DEG)
    if shape.intersects(reach):
        return
    swapped = shapely.transform(shape, lambda c: c[:, ::-1])
    if swapped.intersects(reach):
        raise InvalidValue(f"{label} lies outside {city.name} but would cover it with "
                           "longitude and latitude swapped: write longitude first")
    sx0, sy0, sx1, sy1 = shape.bounds
    raise InvalidValue(
        f"{label} ({sx0:.6f}, {sy0:.6f})..({sx1:.6f}, {sy1:.6f}) lies outside {city.name} "
        f"(bounding box {minx:.6f}, {miny:.6f}..{maxx:.6f}, {maxy:.6f})"
    )


@dataclass(frozen=True)
class QueryArea:
    """A query polygon in WGS84, and what was repaired in it (None if nothing)."""

    shape: BaseGeometry
    repair: str | None = None


def _positions(ring: Any, where: str) -> list[tuple[float, float]]:
    if not isinstance(ring, list | tuple):
        raise InvalidValue(f"{where}: a ring is a list of [x, y] positions")
    positions: list[tuple[float, float]] = []
    for k, position in enumerate(ring):
        if not isinstance(position, list | tuple) or len(position) not in (2, 3):
            raise InvalidValue(f"{where}, position {k + 1}: a position is [x, y]")
        if not all(isinstance(v, int | float) and not isinstance(v, bool)
                   and math.isfinite(v) for v in position):
            raise InvalidValue(f"{where}, position {k + 1}: coordinates must be finite "
                               "numbers")
        positions.append((float(position[0]), float(position[1])))
    if len(positions) < 4:
        raise InvalidValue(f"{where}: a ring needs at least 4 positions (a triangle and its "
                           f"closing position), got {len(positions)}")
    if positions[0] != positions[-1]:
        raise InvalidValue(f"{where}: the ring is not closed (its last position must repeat "
                           "the first)")
    return positions


def _polygon(rings: Any, where: str) -> shapely.Polygon:
    if not isinstance(rings, list | tuple) or not rings:
        raise InvalidValue(f"{where}: a polygon is a non-empty list of rings")
    shells = [_positions(ring, f"{where}, ring {k + 1}") for k, ring in enumerate(rings)]
    return shapely.Polygon(shells[0], shells[1:])


def _polygonal(geometry: BaseGeometry) -> BaseGeometry | None:
    if geometry.geom_type in POLYGONAL:
        return geometry
    parts = [p for p in shapely.get_parts(geometry) if p.geom_type in POLYGONAL]
    merged = shapely.union_all(parts) if parts else None
    if merged is None or merged.is_empty or merged.geom_type not in POLYGONAL:
        return None
    return merged


def _valid(shape: BaseGeometry, repair: bool, where: str) -> tuple[BaseGeometry, str | None]:
    if shape.is_valid:
        return shape, None
    reason = shapely.is_valid_reason(shape)
    if not repair:
        raise InvalidValue(f"{where} is not a valid polygon ({reason}); fix it, or ask for "
                           "an explicit repair (repair=true)")
    repaired = _polygonal(shapely.make_valid(shape, method="structure"))
    if repaired is None:
        raise InvalidValue(f"{where} is not a valid polygon ({reason}) and cannot be "
                           "repaired: nothing of it is a polygon")
    return repaired, f"{reason}; repaired with make_valid"


def query_area(geometry: Mapping[str, Any], crs_value: str | None, city: CityMap, *,
               repair: bool = False, label: str = "polygon") -> QueryArea:
    """A GeoJSON Polygon or MultiPolygon of a question (coordinates in `crs`, x first), as a
    valid WGS84 shape near the city."""
    if not isinstance(geometry, Mapping) or geometry.get("type") not in POLYGONAL:
        raise InvalidValue(f"{label}: expected a GeoJSON Polygon or MultiPolygon geometry "
                           "object")
    coordinates = geometry.get("coordinates")
    if geometry["type"] == "Polygon":
        shape: BaseGeometry = _polygon(coordinates, label)
    else:
        if not isinstance(coordinates, list | tuple) or not coordinates:
            raise InvalidValue(f"{label}: a MultiPolygon is a non-empty list of polygons")
        shape = shapely.MultiPolygon(
            [_polygon(p, f"{label}, polygon {k + 1}") for k, p in enumerate(coordinates)]
        )
    if shapely.get_num_coordinates(shape) > MAX_VERTICES:
        raise InvalidValue(f"{label}: more than {MAX_VERTICES} positions")
    shape, repaired = _valid(shape, repair, label)
    crs = query_crs(crs_value)
    if not crs.equals(WGS84_CRS, ignore_axis_order=True):
        if crs.is_projected:
            shape = shapely.segmentize(shape, SEGMENT_UNITS)

        def reproject(coords: Any) -> Any:
            """Positions in the asker's CRS -> longitude/latitude."""
            lons, lats = _transform(crs, AxisOrder.XY, coords[:, 0], coords[:, 1])
            return np.column_stack([lons, lats])

        shape = shapely.transform(shape, reproject)
        if not shape.is_valid:
            raise InvalidValue(f"{label} becomes invalid when reprojected from {crs.name!r} "
                               f"({shapely.is_valid_reason(shape)}); send it in EPSG:4326")
    lons, lats = shapely.get_coordinates(shape).T
    _check_lonlat(lons, lats, label)
    _near_city(shape, city, label)
    return QueryArea(shape=shape, repair=repaired)


__all__ = [
    "CRS84_URI",
    "AxisOrder",
    "QueryArea",
    "crs_uri",
    "query_area",
    "query_bbox",
    "query_crs",
    "query_point",
]
