"""Spatial questions of the command centre, answered as GeoJSON: features of a layer in a
bbox or a polygon, within a radius of a point, the nearest resources of a kind, the hazard
sources near an incident and the facilities in a hazard source's impact zone.

Points and polygons may be given in any CRS (`crs`, default WGS84 longitude/latitude; always
easting/longitude first). Bad geometry (unclosed or short rings, self-intersections unless
`repair` is asked for, swapped axes, places outside the city, unknown CRS) is refused with
422 and a message saying what is wrong. Radius answers are ordered by distance (geodesic
metres, `distance_m`), others by id; pages follow `limit` and `offset`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Body, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from shapely.geometry.base import BaseGeometry

from cityops.command_center.dependencies import MAX_OFFSET, CurrentActor, SystemDep
from cityops.command_center.feature_requests import (
    GEOJSON,
    feature_collection,
    feature_query,
    now_of,
    parse_bbox,
    parse_datetime,
)
from cityops.command_center.models.spatial import (
    FeatureCollectionPublic,
    GeoJSONResponse,
    LayerPublic,
)
from cityops.command_center.scopes import (
    LOGGED_IN,
    scope_of,
    scoped_features,
    scoped_nearest,
    visible,
)
from cityops.command_center.time_travel import ReadSystem
from cityops.domain.errors import InvalidValue, NotFound
from cityops.maps.query_geometry import query_area, query_point
from cityops.projections.hazards import impact_area
from cityops.projections.spatial import (
    MAX_NEAREST,
    MAX_RADIUS_M,
    FeaturePage,
    FeatureQuery,
    NotOnMap,
    facilities_in_hazard_zone,
    hazard_sources_near_incident,
)
from cityops.projections.spatial_layers import Layer

router = APIRouter(prefix="/spatial", tags=["spatial"], dependencies=[LOGGED_IN])

MAX_LIMIT = 10_000
DEFAULT_LIMIT = 100
COMMON = {"bbox", "bbox-crs", "crs", "datetime", "limit", "offset", "point", "radius_m", "n",
          "as_of"}
"""Query parameters of these endpoints; any other one must be a filter of the layer."""

LayerId = Annotated[str, Path(description="Layer id, e.g. grid-cases, resources, facilities")]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Features to skip")]
Crs = Annotated[str | None, Query(description="CRS of the given coordinates (EPSG:4326 by "
                                  "default; e.g. EPSG:3857, EPSG:32650); x/easting first")]
PointParam = Annotated[str, Query(description="x,y of the point in `crs`",
                                  examples=["118.80,32.05"])]
DateTime = Annotated[str | None, Query(alias="datetime", description="RFC 3339 instant or "
                                       "interval (start/end, '..' for open)")]


def _geojson(body: dict[str, Any]) -> JSONResponse:
    return JSONResponse(body, media_type=GEOJSON)


def _page_body(layer: Layer, page: FeaturePage, system: SystemDep, limit: int | None,
               offset: int, extra: dict[str, Any] | None = None) -> JSONResponse:
    paging = {"limit": limit, "offset": offset} if limit is not None else {}
    return _geojson(feature_collection(layer, page.features, now_of(system),
                                       matched=page.matched, extra={**paging, **(extra or {})}))


def _point(text: str, crs: str | None, system: SystemDep) -> Any:
    parts = text.split(",")
    if len(parts) != 2:
        raise InvalidValue("point must be two numbers: x,y")
    try:
        x, y = float(parts[0]), float(parts[1])
    except ValueError:
        raise InvalidValue(f"point values must be numbers, got {text!r}") from None
    return query_point(x, y, crs, system.city.map)


@router.get("/layers", response_model=list[LayerPublic])
def list_layers(system: ReadSystem) -> list[dict[str, Any]]:
    """The layers that can be asked about, with their geometry type and filters."""
    return [
        {"id": layer.id, "title": layer.title, "description": layer.description,
         "geometry_type": layer.geometry_type, "static": layer.static,
         "filters": [{"name": f.name, "type": f.type} for f in layer.filters],
         "temporal": layer.temporal_property}
        for layer in system.spatial.layers.values()
    ]


@router.get("/{layer}/features", response_class=GeoJSONResponse,
            response_model=FeatureCollectionPublic)
def layer_features(
    layer: LayerId, request: Request, system: ReadSystem, actor: CurrentActor,
    bbox: Annotated[str | None, Query(description="x1,y1,x2,y2 in bbox-crs")] = None,
    bbox_crs: Annotated[str | None, Query(alias="bbox-crs")] = None,
    datetime_text: DateTime = None,
    limit: Limit = DEFAULT_LIMIT, offset: Offset = 0,
) -> JSONResponse:
    """Features of a layer, optionally in a bbox, a time interval and by property filters
    (any other query parameter, e.g. `status=open`; repeat it for several values)."""
    definition = system.spatial.layers.get(layer) or _unknown(system, layer)
    query = feature_query(definition, system, request.query_params.multi_items(),
                          reserved=COMMON, bbox=bbox, bbox_crs=bbox_crs,
                          datetime_text=datetime_text, limit=limit, offset=offset)
    page = scoped_features(layer, query, actor, system.sharing,
                           lambda q: system.spatial.features(layer, q))
    return _page_body(definition, page, system, limit, offset)


class WithinRequest(BaseModel):
    """A within-polygon question."""

    model_config = ConfigDict(extra="forbid")
    geometry: dict[str, Any] = Field(description="GeoJSON Polygon or MultiPolygon")
    crs: str | None = Field(default=None, description="CRS of its coordinates (x first)")
    repair: bool = Field(default=False, description="Repair an invalid polygon with "
                         "make_valid (and say so) instead of refusing it")
    filters: dict[str, list[str]] = Field(default_factory=dict,
                                          description="Property filters: name -> values")
    datetime: str | None = None
    bbox: str | None = Field(default=None, description="Also within this WGS84 bbox")
    limit: int = Field(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    offset: int = Field(default=0, ge=0, le=MAX_OFFSET)


@router.post("/{layer}/within", response_class=GeoJSONResponse,
             response_model=FeatureCollectionPublic)
def features_within(layer: LayerId, system: ReadSystem, actor: CurrentActor,
                    body: Annotated[WithinRequest, Body()]) -> JSONResponse:
    """Features intersecting a polygon (inside or on its edge), ordered by id; `repair` in
    the answer says what was repaired in the polygon, if anything."""
    definition = system.spatial.layers.get(layer) or _unknown(system, layer)
    area = query_area(body.geometry, body.crs, system.city.map, repair=body.repair)
    where = {name: tuple(definition.filter(name).parse(v) for v in values)
             for name, values in body.filters.items()}
    query = FeatureQuery(where=where, within=area.shape,
                         bbox=parse_bbox(body.bbox, None, system),
                         period=parse_datetime(body.datetime), limit=body.limit,
                         offset=body.offset)
    page = scoped_features(layer, query, actor, system.sharing,
                           lambda q: system.spatial.features(layer, q))
    return _page_body(definition, page, system, body.limit, body.offset,
                      {"repair": area.repair})


@router.get("/{layer}/radius", response_class=GeoJSONResponse,
            response_model=FeatureCollectionPublic)
def features_within_radius(
    layer: LayerId, request: Request, system: ReadSystem, actor: CurrentActor,
    point: PointParam,
    radius_m: Annotated[float, Query(ge=0, le=MAX_RADIUS_M, description="Metres")],
    crs: Crs = None, datetime_text: DateTime = None,
    limit: Limit = DEFAULT_LIMIT, offset: Offset = 0,
) -> JSONResponse:
    """Features of a point layer within `radius_m` metres of a point (geodesic), nearest
    first, with their `distance_m`; other query parameters are property filters."""
    definition = system.spatial.layers.get(layer) or _unknown(system, layer)
    centre = _point(point, crs, system)
    query = feature_query(definition, system, request.query_params.multi_items(),
                          reserved=COMMON, bbox=None, bbox_crs=None,
                          datetime_text=datetime_text, limit=limit, offset=offset)
    page = scoped_features(
        layer, query, actor, system.sharing,
        lambda q: system.spatial.within_radius(layer, centre, radius_m, q))
    return _page_body(definition, page, system, limit, offset,
                      {"centre": centre.to_geojson(), "radius_m": radius_m})


@router.get("/{layer}/nearest", response_class=GeoJSONResponse,
            response_model=FeatureCollectionPublic)
def nearest_features(
    layer: LayerId, request: Request, system: ReadSystem, actor: CurrentActor,
    point: PointParam,
    n: Annotated[int, Query(ge=1, le=MAX_NEAREST, description="How many")] = 5,
    crs: Crs = None,
) -> JSONResponse:
    """The `n` features of a point layer nearest to a point (geodesic), nearest first; e.g.
    `/spatial/resources/nearest?point=118.8,32.05&kind=ambulance&status=available`."""
    definition = system.spatial.layers.get(layer) or _unknown(system, layer)
    origin = _point(point, crs, system)
    query = feature_query(definition, system, request.query_params.multi_items(),
                          reserved=COMMON, bbox=None, bbox_crs=None, datetime_text=None,
                          limit=None, offset=0)
    features = scoped_nearest(layer, query, n, actor, system.sharing,
                              lambda q, k: system.spatial.nearest(layer, origin, k, q),
                              MAX_NEAREST)
    return _geojson(feature_collection(definition, features, now_of(system), matched=None,
                                       extra={"origin": origin.to_geojson()}))


@router.get("/incidents/{incident_id}/hazard-sources", response_class=GeoJSONResponse,
            response_model=FeatureCollectionPublic)
def hazard_sources_near(
    incident_id: str, system: ReadSystem, actor: CurrentActor,
    radius_m: Annotated[float, Query(ge=0, le=MAX_RADIUS_M, description="Metres")] = 2000.0,
    limit: Limit = DEFAULT_LIMIT, offset: Offset = 0,
) -> JSONResponse:
    """Active hazard sources within `radius_m` metres of an incident, nearest first."""
    if scope_of(actor) is not None:
        found = system.spatial.feature("incidents", incident_id)
        doc = found.doc if found is not None else _recorded_incident_doc(system, incident_id)
        if doc is not None:
            visible("incident", incident_id, doc, actor, system.sharing)
    page = hazard_sources_near_incident(
        system.spatial, incident_id, radius_m, limit=limit, offset=offset,
        recorded=lambda i: _recorded(system, i, lambda u: system.incidents.incident(u)
                                     .location.shape))
    return _page_body(system.spatial.layers["hazard-sources"], page, system, limit, offset,
                      {"incident_id": incident_id, "radius_m": radius_m})


@router.get("/hazard-sources/{source_id}/facilities", response_class=GeoJSONResponse,
            response_model=FeatureCollectionPublic)
def facilities_at_risk(
    source_id: str, system: ReadSystem,
    kind: Annotated[list[str] | None, Query(description="school, hospital, shelter")] = None,
) -> JSONResponse:
    """The schools, hospitals and shelters inside a hazard source's impact zone."""
    facilities = system.spatial.layers["facilities"]
    for value in kind or []:
        if value not in ("school", "hospital", "shelter"):
            raise InvalidValue(f"unknown facility kind {value!r}; kinds are school, hospital, "
                               "shelter")
    page = facilities_in_hazard_zone(
        system.spatial, source_id, kind or [],
        recorded=lambda i: _recorded(system, i, lambda u: _impact_shape(system, u)))
    return _page_body(facilities, page, system, None, 0, {"hazard_source_id": source_id})


# An item recorded a moment ago may not be in the read models yet (they follow the event
# stores a little later): the questions about one item then take it from the write side, so
# that an item that exists is never answered 404.


def _recorded(system: SystemDep, item_id: str,
              shape: Callable[[UUID], BaseGeometry | None]) -> BaseGeometry | None:
    """The geometry of an item as recorded (None if no item has that id)."""
    try:
        return shape(UUID(item_id))
    except (ValueError, NotFound):
        return None


def _recorded_incident_doc(system: SystemDep, incident_id: str) -> dict[str, Any] | None:
    try:
        return system.incidents.incident(UUID(incident_id)).summary()
    except (ValueError, NotFound):
        return None


def _impact_shape(system: SystemDep, source_id: UUID) -> BaseGeometry | None:
    area = impact_area(system.hazards.source(source_id))
    return area.shape if area is not None else None


def _unknown(system: SystemDep, layer: str) -> Layer:
    known = ", ".join(sorted(system.spatial.layers))
    raise NotOnMap("layer", layer, f"layers: {known}")
