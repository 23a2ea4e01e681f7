"""What the map endpoints (spatial queries, OGC API Features, exports) share: reading a
feature request's query parameters (bbox in a declared CRS, datetime intervals, a layer's
property filters) into a `FeatureQuery`, and writing features as GeoJSON.

Every parser raises `InvalidValue` with what is wrong; each router turns it into its own
status (422 for our API, 400 as OGC API Features requires).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import shapely

from cityops.command_center.dependencies import CommandCentreSystem
from cityops.domain.errors import InvalidValue
from cityops.domain.values import parse_instant
from cityops.maps.query_geometry import AxisOrder, query_bbox
from cityops.projections.spatial import Feature, FeatureQuery
from cityops.projections.spatial_layers import Layer

GEOJSON = "application/geo+json"


def now_of(system: CommandCentreSystem) -> datetime:
    """The system's time (a drill or the demo runs on its own clock)."""
    return system.clock()


def parse_bbox(text: str | None, crs: str | None, system: CommandCentreSystem,
               axis_order: AxisOrder = AxisOrder.XY, *, near_city: bool = True) \
        -> tuple[float, float, float, float] | None:
    """A `bbox` parameter ("x1,y1,x2,y2", in `crs`, default WGS84 lon/lat) as WGS84. With
    `near_city` a box that misses the city is an error (it is one for a dispatcher's
    question); a GIS client panning away from the city just gets no features."""
    if text is None:
        if crs is not None:
            raise InvalidValue("bbox-crs given without a bbox")
        return None
    parts = [p.strip() for p in text.split(",")]
    if len(parts) == 6:
        raise InvalidValue("bbox: three-dimensional boxes are not supported; give four numbers")
    if len(parts) != 4:
        raise InvalidValue("bbox must be four comma-separated numbers: lower corner, then "
                           "upper corner")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise InvalidValue(f"bbox values must be numbers, got {text!r}") from None
    return query_bbox(values, crs, system.city.map if near_city else None,
                      axis_order=axis_order)


def _instant(text: str) -> str:
    return parse_instant("datetime", text).astimezone(UTC).isoformat()


def parse_datetime(text: str | None) -> tuple[str | None, str | None] | None:
    """A `datetime` parameter: an instant, or an interval `start/end` where either end may
    be `..` or empty (open). Returned as UTC ISO text, comparable with the read models."""
    if text is None or text.strip() == "":
        return None
    text = text.strip()
    if "/" not in text:
        instant = _instant(text)
        return instant, instant
    start_text, _, end_text = text.partition("/")
    if "/" in end_text:
        raise InvalidValue(f"datetime {text!r}: an interval has exactly one '/'")
    start = None if start_text in ("", "..") else _instant(start_text)
    end = None if end_text in ("", "..") else _instant(end_text)
    if start is None and end is None:
        raise InvalidValue("datetime: an interval needs at least one end")
    if start is not None and end is not None and start > end:
        raise InvalidValue(f"datetime {text!r}: the interval ends before it starts")
    return start, end


def property_filters(layer: Layer, params: Iterable[tuple[str, str]],
                     reserved: Collection[str]) -> dict[str, tuple[Any, ...]]:
    """The layer's property filters among the query parameters (all but `reserved`); a
    parameter that is neither reserved nor a filter of the layer is an error."""
    where: dict[str, list[Any]] = {}
    for name, value in params:
        if name in reserved:
            continue
        where.setdefault(layer.filter(name).name, []).append(layer.filter(name).parse(value))
    return {name: tuple(values) for name, values in where.items()}


def feature_query(layer: Layer, system: CommandCentreSystem, params: Iterable[tuple[str, str]], *,
                  reserved: Collection[str], bbox: str | None, bbox_crs: str | None,
                  datetime_text: str | None, limit: int | None, offset: int,
                  axis_order: AxisOrder = AxisOrder.XY, near_city: bool = True) \
        -> FeatureQuery:
    """A `FeatureQuery` from the parameters of a feature request."""
    return FeatureQuery(
        where=property_filters(layer, params, reserved),
        bbox=parse_bbox(bbox, bbox_crs, system, axis_order, near_city=near_city),
        period=_period(layer, datetime_text),
        limit=limit,
        offset=offset,
    )


def _period(layer: Layer, text: str | None) -> tuple[str | None, str | None] | None:
    period = parse_datetime(text)
    if period is not None and layer.temporal is None:
        raise InvalidValue(f"{layer.id} has no time: it cannot be filtered by datetime")
    return period


def feature_json(layer: Layer, feature: Feature, now: datetime,
                 links: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A GeoJSON Feature with the layer's flat properties (and its distance, if asked)."""
    properties = layer.properties_of(feature.doc, now)
    if feature.distance_m is not None:
        properties["distance_m"] = round(feature.distance_m, 3)
    body: dict[str, Any] = {
        "type": "Feature",
        "id": feature.id,
        "geometry": shapely.geometry.mapping(feature.geometry)
        if feature.geometry is not None else None,
        "properties": properties,
    }
    if links is not None:
        body["links"] = links
    return body


def feature_collection(layer: Layer, features: list[Feature], now: datetime, *,
                       matched: int | None, extra: Mapping[str, Any] | None = None) \
        -> dict[str, Any]:
    """A GeoJSON FeatureCollection with OGC API's counts."""
    body: dict[str, Any] = {
        "type": "FeatureCollection",
        "features": [feature_json(layer, f, now) for f in features],
        "numberReturned": len(features),
        "timeStamp": now.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00",
                                                                             "Z"),
    }
    if matched is not None:
        body["numberMatched"] = matched
    body.update(extra or {})
    return body
