"""Coordinate reference systems of the city's map: everything is stored and returned in WGS84
(EPSG:4326, longitude first), and measured (distances, buffers, areas) in a metric projected
CRS, by default the UTM zone of the data. Layers in any other CRS are reprojected on the way
in; a layer without a CRS, with an unknown one, or with its axes swapped is refused.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import shapely
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError

from cityops.domain.errors import InvalidValue
from cityops.domain.geometry import WGS84

WGS84_CRS = CRS.from_epsg(4326)

FloatArray = npt.NDArray[np.float64]


def resolve_crs(value: Any, label: str) -> CRS:
    """A CRS from whatever a file or setting gives ("EPSG:32650", WKT, a pyproj CRS), or a
    clear error naming where it came from."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise InvalidValue(
            f"{label}: no coordinate reference system; declare one (for example EPSG:4326) "
            "instead of letting it be guessed"
        )
    try:
        crs = CRS.from_user_input(value)
    except CRSError as error:
        raise InvalidValue(f"{label}: unknown coordinate reference system {value!r}: {error}") \
            from None
    if not (crs.is_geographic or crs.is_projected):
        # Engineering/local CRSs (a CAD drawing's own axes) cannot be placed on the Earth.
        raise InvalidValue(
            f"{label}: coordinate reference system {crs.name!r} is neither geographic nor "
            "projected, so it cannot be placed on the map"
        )
    return crs


def utm_crs_for(lon: float, lat: float) -> CRS:
    """The WGS84 UTM zone that contains a point: the metric CRS chosen when none is declared.

    The zone is the standard arithmetic one (a point on a zone boundary goes east), as the
    EPSG 326xx/327xx definitions use; pyproj supplies the definition.
    """
    if not (-180.0 <= lon <= 180.0 and -80.0 <= lat <= 84.0):
        raise InvalidValue(f"no UTM zone covers longitude {lon}, latitude {lat}")
    zone = min(int((lon + 180.0) // 6.0) + 1, 60)
    return _utm_zone((32600 if lat >= 0 else 32700) + zone)


@functools.lru_cache(maxsize=16)
def _utm_zone(epsg: int) -> CRS:
    return CRS.from_epsg(epsg)


def require_metric(crs: CRS, label: str) -> CRS:
    """The CRS, if lengths in it are metres (a projected CRS in metres); else a clear error."""
    unit = crs.axis_info[0].unit_name if crs.axis_info else ""
    if not crs.is_projected or unit not in ("metre", "meter"):
        raise InvalidValue(
            f"{label}: {crs.name!r} is not a projected CRS in metres; distances, buffers and "
            "areas need one (for example the UTM zone of the city, EPSG:32650)"
        )
    return crs


@dataclass(frozen=True, eq=False)
class MetricProjection:
    """A pair of transformations between WGS84 and one metric CRS, where the map measures."""

    crs: CRS
    _to_metric: Transformer = field(repr=False)
    _to_wgs84: Transformer = field(repr=False)

    @classmethod
    def from_crs(cls, value: Any, label: str = "metric CRS") -> MetricProjection:
        """A projection to a declared metric CRS (refused if it is not in metres)."""
        crs = require_metric(resolve_crs(value, label), label)
        return cls(
            crs=crs,
            # always_xy: longitude first, whatever axis order the CRS definition declares.
            _to_metric=Transformer.from_crs(WGS84_CRS, crs, always_xy=True),
            _to_wgs84=Transformer.from_crs(crs, WGS84_CRS, always_xy=True),
        )

    @classmethod
    def around(cls, lon: float, lat: float) -> MetricProjection:
        """A projection to the UTM zone of a place, for work that has no city at hand."""
        return _utm_projection(int(utm_crs_for(lon, lat).to_epsg() or 0))

    @property
    def epsg(self) -> int | None:
        """The EPSG code of the metric CRS, when it has one."""
        code = self.crs.to_epsg()
        return int(code) if code is not None else None

    def points_to_metric(self, lons: Any, lats: Any) -> tuple[FloatArray, FloatArray]:
        """Vectorised longitude/latitude -> metric x/y."""
        x, y = self._to_metric.transform(np.asarray(lons, float), np.asarray(lats, float))
        return np.asarray(x, float), np.asarray(y, float)

    def points_to_wgs84(self, xs: Any, ys: Any) -> tuple[FloatArray, FloatArray]:
        """Vectorised metric x/y -> longitude/latitude."""
        lon, lat = self._to_wgs84.transform(np.asarray(xs, float), np.asarray(ys, float))
        return np.asarray(lon, float), np.asarray(lat, float)

    def to_metric(self, geometry: Any) -> Any:
        """WGS84 geometry (or array of geometries) -> the same in the metric CRS."""
        return shapely.transform(geometry, self._forward, interleaved=False)

    def to_wgs84(self, geometry: Any) -> Any:
        """Metric geometry (or array of geometries) -> the same in WGS84."""
        return shapely.transform(geometry, self._backward, interleaved=False)

    def _forward(self, x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
        return self.points_to_metric(x, y)

    def _backward(self, x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
        return self.points_to_wgs84(x, y)

    def layer_to_metric(self, layer: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
        """A WGS84 layer reprojected to the metric CRS (a new frame; the input is untouched)."""
        return layer.to_crs(self.crs)


@functools.lru_cache(maxsize=16)
def _utm_projection(epsg: int) -> MetricProjection:
    # Building transformers costs milliseconds; a projection is immutable, so share it.
    return MetricProjection.from_crs(CRS.from_epsg(epsg))


def check_lonlat_bounds(
    bounds: tuple[float, float, float, float],
    label: str,
    city_bbox: tuple[float, float, float, float] | None = None,
) -> None:
    """Refuse WGS84 coordinates that cannot be longitude/latitude, or that fall outside the
    city where the swapped ones would fall inside: the usual sign of lat/lon axis order."""
    minx, miny, maxx, maxy = bounds
    if not all(math.isfinite(v) for v in bounds):
        raise InvalidValue(f"{label}: coordinates are not finite numbers")
    if miny < -90.0 or maxy > 90.0:
        hint = (
            " Longitude and latitude appear to be swapped (latitude first); "
            "write longitude first, as GeoJSON does."
            if minx >= -90.0 and maxx <= 90.0
            else ""
        )
        raise InvalidValue(
            f"{label}: latitude {maxy if maxy > 90 else miny:g} is outside -90..90.{hint}"
        )
    if minx < -180.0 or maxx > 180.0:
        raise InvalidValue(
            f"{label}: longitude outside -180..180 ({minx:g}..{maxx:g}); are these projected "
            "coordinates labelled as EPSG:4326?"
        )
    if city_bbox is None:
        return
    if _inside(bounds, city_bbox):
        return
    swapped = (miny, minx, maxy, maxx)
    if _inside(swapped, city_bbox):
        raise InvalidValue(
            f"{label}: coordinates fall outside the city but would fall inside it with "
            "longitude and latitude swapped; write longitude first, as GeoJSON does"
        )
    raise InvalidValue(
        f"{label}: coordinates ({minx:.6f}, {miny:.6f})..({maxx:.6f}, {maxy:.6f}) fall "
        f"outside the city's bounding box {tuple(round(v, 6) for v in city_bbox)}"
    )


def _inside(
    bounds: tuple[float, float, float, float], bbox: tuple[float, float, float, float]
) -> bool:
    # A small margin (about 100 m) tolerates a bounding box drawn tight around the city.
    margin = 0.001
    return (
        bounds[0] >= bbox[0] - margin
        and bounds[1] >= bbox[1] - margin
        and bounds[2] <= bbox[2] + margin
        and bounds[3] <= bbox[3] + margin
    )


def layer_to_wgs84(
    layer: gpd.GeoDataFrame,
    label: str,
    *,
    assume_crs: Any = None,
    city_bbox: tuple[float, float, float, float] | None = None,
) -> gpd.GeoDataFrame:
    """A layer read from a file, reprojected to WGS84 and checked for axis order.

    `assume_crs` is used only for a file that declares no CRS (a Shapefile without .prj);
    a file that declares a different one is refused rather than silently overridden.
    """
    declared = layer.crs
    if declared is None:
        if assume_crs is None:
            raise InvalidValue(
                f"{label}: the layer has no coordinate reference system (a Shapefile without "
                "its .prj?); add it, or declare the layer's CRS in city.json"
            )
        crs = resolve_crs(assume_crs, label)
        layer = layer.set_crs(crs)
    else:
        crs = resolve_crs(declared, label)
        if assume_crs is not None and not crs.equals(resolve_crs(assume_crs, label)):
            raise InvalidValue(
                f"{label}: the file declares {crs.name!r} but city.json says "
                f"{resolve_crs(assume_crs, label).name!r}; remove one of them"
            )
    if crs.equals(WGS84_CRS, ignore_axis_order=True):
        # GIS files keep longitude first whatever the CRS definition says; only the label
        # is normalised. A real lat/lon swap is caught by the bounds check below.
        layer = layer.set_crs(WGS84_CRS, allow_override=True)
    else:
        layer = layer.to_crs(WGS84_CRS)
    if len(layer) > 0:
        bounds = tuple(float(v) for v in layer.total_bounds)
        check_lonlat_bounds((bounds[0], bounds[1], bounds[2], bounds[3]), label, city_bbox)
    return layer


__all__ = [
    "WGS84",
    "WGS84_CRS",
    "MetricProjection",
    "check_lonlat_bounds",
    "layer_to_wgs84",
    "require_metric",
    "resolve_crs",
    "utm_crs_for",
]
