"""OGC API - Features - Part 1 (Core, GeoJSON, OpenAPI 3.0) under `/ogc`, so that QGIS,
ArcGIS and GDAL (`OAPIF:` driver) read the command centre's layers directly: landing page,
conformance, collections, items with `bbox` (and `bbox-crs`), `datetime`, `limit`/`offset`
paging with `next`/`prev` links and the layer's property filters, and single features.

Errors follow the standard: 400 for a bad parameter (an unknown one included), 404 for an
unknown collection or feature, with a JSON body `{"code": ..., "description": ...}`. A
`limit` above the maximum is lowered to it, as the standard asks, not refused.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from cityops.command_center.dependencies import MAX_OFFSET, CurrentActor, SystemDep, get_system
from cityops.command_center.errors import parameter_problems
from cityops.command_center.feature_requests import (
    GEOJSON,
    feature_collection,
    feature_json,
    feature_query,
    now_of,
)
from cityops.command_center.json_bodies import GeoJSONBody
from cityops.command_center.models.spatial import (
    OPENAPI_30,
    FeatureCollectionPublic,
    FeaturePublic,
    GeoJSONResponse,
    OgcApiDefinitionPublic,
    OgcCollectionPublic,
    OgcCollectionsPublic,
    OgcConformancePublic,
    OgcLandingPublic,
    OpenAPI30Response,
)
from cityops.command_center.prefix_routes import named_routes
from cityops.command_center.scopes import (
    LOGGED_IN,
    SCOPE_DOCUMENT_KEYS,
    feature_in_scope,
    scoped_features,
)
from cityops.command_center.time_travel import AsOf, ReadSystem
from cityops.domain.errors import InvalidValue, NotFound
from cityops.maps.query_geometry import CRS84_URI, AxisOrder
from cityops.projections.spatial import NotOnMap
from cityops.projections.spatial_layers import Layer

DEFAULT_LIMIT = 10
MAX_LIMIT = 10_000
CONFORMANCE = (
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
)
GREGORIAN = "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian"
ITEM_PARAMETERS = frozenset({"bbox", "bbox-crs", "datetime", "limit", "offset", "f", "as_of"})


def ogc_error(status: int, code: str, description: str) -> JSONResponse:
    """An OGC API exception body."""
    return JSONResponse(status_code=status, content={"code": code, "description": description})


class OgcRoute(APIRoute):
    """Routes whose errors take the OGC API exception form (400/404), not our 422 body."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """The route's handler, answering its errors in the OGC form."""
        handler = super().get_route_handler()

        async def ogc_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as error:
                return ogc_error(400, "InvalidParameterValue",
                                 "; ".join(parameter_problems(error)))
            except InvalidValue as error:
                return ogc_error(400, "InvalidParameterValue", str(error))
            except NotFound as error:
                return ogc_error(404, "NotFound", str(error))

        return ogc_handler


router = APIRouter(prefix="/ogc", tags=["OGC API Features"], route_class=OgcRoute,
                   dependencies=[LOGGED_IN])


def _url(request: Request, name: str, **params: str) -> str:
    """What `request.url_for(name, **params)` answers, from this router's route of that
    name (url_for tries every route of the app in turn, for each link)."""
    route = _ROUTES.get(name)
    if route is None:
        _ROUTES.update(named_routes(router))
        route = _ROUTES[name]
    url = route.url_path_for(name, **params).make_absolute_url(base_url=request.base_url)
    if getattr(request.state, "as_of", None) is not None:
        # An answer about the past links to the past: a GIS client that follows the links
        # from a collection of T stays at T.
        url = url.include_query_params(as_of=request.query_params["as_of"])
    return str(url)


_ROUTES: dict[str, APIRoute] = {}


def _link(href: str, rel: str, media_type: str, title: str | None = None) -> dict[str, Any]:
    link = {"href": href, "rel": rel, "type": media_type}
    if title:
        link["title"] = title
    return link


def _check_format(f: str | None) -> None:
    if f is not None and f not in ("json", "geojson"):
        raise InvalidValue(f"f={f!r} is not offered; this service answers in JSON/GeoJSON "
                           "(f=json)")


def _layer(system: SystemDep, collection_id: str) -> Layer:
    layer = system.spatial.layers.get(collection_id)
    if layer is None:
        known = ", ".join(sorted(system.spatial.layers))
        raise NotOnMap("collection", collection_id, f"collections: {known}")
    return layer


Format = Annotated[str | None, Query(description="json (the only format)")]


# The landing page and conformance are the same in every city, but a client switched into a
# drill is told it is there (`get_system` checks and marks the switch).
@router.get("", name="ogc_landing", response_model=OgcLandingPublic,
            dependencies=[Depends(get_system)])
def landing_page(request: Request, f: Format = None) -> dict[str, Any]:
    """The landing page: links to the API definition, conformance and collections."""
    _check_format(f)
    return {
        "title": "CityOps command centre - map layers",
        "description": "Incidents, grid cases, hazard sources and zones, emergency resources, "
                       "hotline ticket locations and the city's administrative layers, live "
                       "from the read models (OGC API - Features).",
        "links": [
            _link(_url(request, "ogc_landing"), "self", "application/json", "This document"),
            _link(_url(request, "ogc_openapi"), "service-desc", OPENAPI_30,
                  "The API definition (OpenAPI 3.0)"),
            _link(str(request.base_url).rstrip("/") + "/docs", "service-doc", "text/html",
                  "The API documentation"),
            _link(_url(request, "ogc_conformance"), "conformance", "application/json",
                  "Conformance classes implemented"),
            _link(_url(request, "ogc_collections"), "data", "application/json",
                  "The collections"),
        ],
    }


@router.get("/conformance", name="ogc_conformance", response_model=OgcConformancePublic,
            dependencies=[Depends(get_system)])
def conformance(f: Format = None) -> dict[str, Any]:
    """The conformance classes this service implements."""
    _check_format(f)
    return {"conformsTo": list(CONFORMANCE)}


def _collection(request: Request, system: SystemDep, layer: Layer) -> dict[str, Any]:
    minx, miny, maxx, maxy = system.city.map.bounds
    body: dict[str, Any] = {
        "id": layer.id,
        "title": layer.title,
        "description": layer.description,
        "keywords": list(layer.keywords),
        "itemType": "feature",
        "crs": [CRS84_URI],
        "extent": {"spatial": {"bbox": [[minx, miny, maxx, maxy]], "crs": CRS84_URI}},
        "links": [
            _link(_url(request, "ogc_collection", collection_id=layer.id), "self",
                  "application/json", layer.title),
            _link(_url(request, "ogc_items", collection_id=layer.id), "items", GEOJSON,
                  f"{layer.title} (GeoJSON)"),
        ],
    }
    if layer.temporal is not None:
        body["extent"]["temporal"] = {"interval": [[None, None]], "trs": GREGORIAN}
    return body


@router.get("/collections", name="ogc_collections", response_model=OgcCollectionsPublic,
            response_model_exclude_unset=True)
def collections(request: Request, system: SystemDep, _: AsOf, f: Format = None
                ) -> dict[str, Any]:
    """Every published layer (with `as_of`, its links lead to the layers at that instant)."""
    _check_format(f)
    return {
        "links": [_link(_url(request, "ogc_collections"), "self", "application/json")],
        "collections": [_collection(request, system, layer)
                        for layer in system.spatial.layers.values()],
    }


@router.get("/collections/{collection_id}", name="ogc_collection",
            response_model=OgcCollectionPublic, response_model_exclude_unset=True)
def collection(collection_id: str, request: Request, system: SystemDep, _: AsOf,
               f: Format = None) -> dict[str, Any]:
    """One collection: its extent and links to its items (at `as_of`, if given)."""
    _check_format(f)
    return _collection(request, system, _layer(system, collection_id))


@router.get("/collections/{collection_id}/items", name="ogc_items",
            response_class=GeoJSONResponse, response_model=FeatureCollectionPublic)
def items(
    collection_id: str, request: Request, system: ReadSystem, actor: CurrentActor,
    bbox: Annotated[str | None, Query(description="x1,y1,x2,y2 (CRS84 lon/lat unless "
                                      "bbox-crs says otherwise, in that CRS's axis order)")]
    = None,
    bbox_crs: Annotated[str | None, Query(alias="bbox-crs", description="CRS URI of bbox, "
                                          "e.g. http://www.opengis.net/def/crs/EPSG/0/3857")]
    = None,
    datetime_text: Annotated[str | None, Query(alias="datetime", description="RFC 3339 "
                                               "instant or interval")] = None,
    limit: Annotated[int, Query(ge=1, description=f"Page size (at most {MAX_LIMIT})")]
    = DEFAULT_LIMIT,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Features to skip")] = 0,
    f: Format = None,
) -> JSONResponse:
    """Features of a collection (GeoJSON), filtered by bbox, datetime and properties (any
    other parameter named after one of the collection's filters), in pages."""
    _check_format(f)
    layer = _layer(system, collection_id)
    limit = min(limit, MAX_LIMIT)
    query = feature_query(layer, system, request.query_params.multi_items(),
                          reserved=ITEM_PARAMETERS, bbox=bbox, bbox_crs=bbox_crs,
                          datetime_text=datetime_text, limit=limit, offset=offset,
                          axis_order=AxisOrder.AUTHORITY, near_city=False)
    keys = layer.document_keys
    if keys is not None:  # the page carries what its properties and its scope read
        query = replace(query, fields=keys | SCOPE_DOCUMENT_KEYS)
    page = scoped_features(layer.id, query, actor, system.sharing,
                           lambda q: system.spatial.features(layer.id, q))
    here = request.url.include_query_params(limit=limit, offset=offset)
    links = [
        _link(str(here), "self", GEOJSON, "This page"),
        _link(_url(request, "ogc_collection", collection_id=layer.id), "collection",
              "application/json", layer.title),
    ]
    if offset + len(page.features) < page.matched:
        links.append(_link(str(request.url.include_query_params(limit=limit,
                                                                offset=offset + limit)),
                           "next", GEOJSON, "Next page"))
    if offset > 0:
        links.append(_link(str(request.url.include_query_params(
            limit=limit, offset=max(0, offset - limit))), "prev", GEOJSON, "Previous page"))
    body = feature_collection(layer, page.features, now_of(system), matched=page.matched,
                              extra={"links": links})
    return GeoJSONBody(body)


@router.get("/collections/{collection_id}/items/{feature_id}", name="ogc_item",
            response_class=GeoJSONResponse, response_model=FeaturePublic)
def item(collection_id: str, feature_id: str, request: Request, system: ReadSystem,
         actor: CurrentActor, f: Format = None) -> JSONResponse:
    """One feature of a collection."""
    _check_format(f)
    layer = _layer(system, collection_id)
    found = system.spatial.feature(layer.id, feature_id)
    if found is None or not feature_in_scope(layer.id, found, actor, system.sharing):
        raise NotOnMap(f"feature of {layer.id}", feature_id)
    links = [
        _link(_url(request, "ogc_item", collection_id=layer.id, feature_id=feature_id),
              "self", GEOJSON, "This feature"),
        _link(_url(request, "ogc_collection", collection_id=layer.id), "collection",
              "application/json", layer.title),
    ]
    return GeoJSONBody(feature_json(layer, found, now_of(system), links))


@router.get("/api", name="ogc_openapi", response_class=OpenAPI30Response,
            response_model=OgcApiDefinitionPublic)
def api_definition(request: Request, system: SystemDep, f: Format = None) -> JSONResponse:
    """The OpenAPI 3.0 definition of this OGC API (the whole app's is at /openapi.json)."""
    _check_format(f)
    base = _url(request, "ogc_landing")
    return JSONResponse(openapi_document(base, list(system.spatial.layers.values())),
                        media_type=OPENAPI_30)


# --- the OpenAPI 3.0 definition --------------------------------------------------------------

_JSON_SCHEMA_TYPES = {"string": "string", "integer": "integer", "number": "number",
                      "boolean": "boolean"}


def _ok(description: str, media_type: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {media_type: {"schema": schema}}}


def _errors() -> dict[str, Any]:
    exception = {"$ref": "#/components/schemas/exception"}
    return {
        "400": _ok("A query parameter has an invalid value.", "application/json", exception),
        "404": _ok("The collection or feature does not exist.", "application/json", exception),
    }


def openapi_document(base: str, layers: list[Layer]) -> dict[str, Any]:
    """An OpenAPI 3.0 document of the OGC endpoints, with one items path per collection
    listing its property filters (GIS clients read them from here)."""
    json_object = {"type": "object"}
    paths: dict[str, Any] = {
        "/": {"get": {"summary": "Landing page", "operationId": "getLandingPage",
                      "tags": ["Capabilities"],
                      "responses": {"200": _ok("Links to the API's resources.",
                                               "application/json", json_object)}}},
        "/conformance": {"get": {"summary": "Conformance classes",
                                 "operationId": "getConformanceDeclaration",
                                 "tags": ["Capabilities"],
                                 "responses": {"200": _ok("The conformance classes.",
                                                          "application/json",
                                                          json_object)}}},
        "/collections": {"get": {"summary": "Collections", "operationId": "getCollections",
                                 "tags": ["Capabilities"],
                                 "responses": {"200": _ok("The feature collections.",
                                                          "application/json",
                                                          json_object)}}},
    }
    for layer in layers:
        filters = [
            {"name": f.name, "in": "query", "required": False, "style": "form",
             "explode": True, "description": f"Only features whose {f.name} is this value",
             "schema": {"type": _JSON_SCHEMA_TYPES[f.type]}}
            for f in layer.filters
        ]
        common = [{"$ref": "#/components/parameters/f"}]
        item_parameters = [
            {"$ref": "#/components/parameters/bbox"},
            {"$ref": "#/components/parameters/bbox-crs"},
            {"$ref": "#/components/parameters/limit"},
            {"$ref": "#/components/parameters/offset"},
            *([{"$ref": "#/components/parameters/datetime"}] if layer.temporal else []),
            *filters, *common,
        ]
        properties = {p.name: {"type": _JSON_SCHEMA_TYPES[p.type], "nullable": True,
                               **({"format": p.format} if p.format else {})}
                      for p in layer.properties}
        feature_schema = {"type": "object", "required": ["type", "geometry", "properties"],
                          "properties": {"type": {"type": "string", "enum": ["Feature"]},
                                         "id": {"type": "string"},
                                         "geometry": {"type": "object"},
                                         "properties": {"type": "object",
                                                        "properties": properties}}}
        prefix = f"/collections/{layer.id}"
        paths[prefix] = {"get": {
            "summary": f"{layer.title}: the collection", "tags": [layer.title],
            "operationId": f"describe-{layer.id}", "parameters": common,
            "responses": {"200": _ok("The collection.", "application/json", json_object),
                          **_errors()}}}
        paths[f"{prefix}/items"] = {"get": {
            "summary": f"{layer.title}: features", "tags": [layer.title],
            "operationId": f"get-{layer.id}-features", "parameters": item_parameters,
            "responses": {
                "200": _ok("The features.", GEOJSON, {
                    "type": "object", "required": ["type", "features"],
                    "properties": {"type": {"type": "string", "enum": ["FeatureCollection"]},
                                   "features": {"type": "array", "items": feature_schema},
                                   "numberMatched": {"type": "integer", "minimum": 0},
                                   "numberReturned": {"type": "integer", "minimum": 0},
                                   "links": {"type": "array", "items": json_object}}}),
                **_errors()}}}
        paths[f"{prefix}/items/{{featureId}}"] = {"get": {
            "summary": f"{layer.title}: one feature", "tags": [layer.title],
            "operationId": f"get-{layer.id}-feature",
            "parameters": [{"$ref": "#/components/parameters/featureId"}, *common],
            "responses": {"200": _ok("The feature.", GEOJSON, feature_schema), **_errors()}}}
    return {
        "openapi": "3.0.3",
        "info": {"title": "CityOps map layers (OGC API - Features)", "version": "1.0.0",
                 "description": "Live map layers of the CityOps command centre."},
        "servers": [{"url": base}],
        "paths": paths,
        "components": {
            "parameters": {
                "bbox": {"name": "bbox", "in": "query", "required": False, "style": "form",
                         "explode": False,
                         "description": "Lower corner, upper corner (CRS84 unless bbox-crs)",
                         "schema": {"type": "array", "minItems": 4, "maxItems": 4,
                                    "items": {"type": "number"}}},
                "bbox-crs": {"name": "bbox-crs", "in": "query", "required": False,
                             "schema": {"type": "string", "format": "uri"}},
                "datetime": {"name": "datetime", "in": "query", "required": False,
                             "description": "RFC 3339 instant or interval ('..' for open)",
                             "schema": {"type": "string"}},
                "limit": {"name": "limit", "in": "query", "required": False,
                          "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT,
                                     "default": DEFAULT_LIMIT}},
                "offset": {"name": "offset", "in": "query", "required": False,
                           "schema": {"type": "integer", "minimum": 0,
                                      "maximum": MAX_OFFSET, "default": 0}},
                "featureId": {"name": "featureId", "in": "path", "required": True,
                              "schema": {"type": "string"}},
                "f": {"name": "f", "in": "query", "required": False,
                      "schema": {"type": "string", "enum": ["json", "geojson"]}},
            },
            "schemas": {
                "exception": {"type": "object", "required": ["code"],
                              "properties": {"code": {"type": "string"},
                                             "description": {"type": "string"}}},
            },
        },
    }
