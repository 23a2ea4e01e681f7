"""Map answers: GeoJSON features and feature collections (with OGC API's counts), the
layers that can be asked about, an inspector's cells, and the OGC API documents."""

from __future__ import annotations

from typing import Any, Literal

from fastapi.responses import JSONResponse
from pydantic import Field

from cityops.command_center.feature_requests import GEOJSON
from cityops.command_center.models.common import (
    GeometryPublic,
    Number,
    PointPublic,
    Public,
    Timestamp,
    sometimes,
)

OPENAPI_30 = "application/vnd.oai.openapi+json;version=3.0"


class GeoJSONResponse(JSONResponse):
    """A JSON answer of media type application/geo+json (RFC 7946)."""

    media_type = GEOJSON


class OpenAPI30Response(JSONResponse):
    """An OpenAPI 3.0 document (OGC API's service description)."""

    media_type = OPENAPI_30


class LinkPublic(Public):
    """A hypermedia link (OGC API)."""

    href: str
    rel: str
    type: str
    title: str = sometimes("What it links to")


class FeaturePublic(Public):
    """A GeoJSON Feature with its layer's flat properties (GET /spatial/layers lists each
    layer's; /ogc/api gives their types per collection)."""

    type: Literal["Feature"]
    id: str | int
    geometry: GeometryPublic | None
    properties: dict[str, Any] = Field(description="The layer's properties (and `distance_m`, "
                                       "in metres, in the answers to a distance question)")
    links: list[LinkPublic] = sometimes("OGC API links (one feature of a collection)")


class FeatureCollectionPublic(Public):
    """A GeoJSON FeatureCollection with OGC API's counts; the keys after `numberMatched`
    come with the questions that ask them."""

    type: Literal["FeatureCollection"]
    features: list[FeaturePublic]
    number_returned: int = Field(alias="numberReturned")
    time_stamp: Timestamp = Field(alias="timeStamp", description="When it was answered (UTC)")
    number_matched: int = sometimes("How many match in all (not with `nearest`)",
                                    alias="numberMatched")
    limit: int = sometimes("The page size asked for (paged answers)")
    offset: int = sometimes("The features skipped (paged answers)")
    repair: str | None = sometimes("What was repaired in the polygon (within)")
    centre: PointPublic = sometimes("The centre of a radius question")
    radius_m: Number = sometimes("The radius asked for, in metres")
    origin: PointPublic = sometimes("The point of a nearest question")
    incident_id: str = sometimes("The incident whose surroundings are asked about")
    hazard_source_id: str = sometimes("The hazard source whose impact zone is asked about")
    links: list[LinkPublic] = sometimes("OGC API links: this page, the collection, next and "
                                        "previous pages")


class LayerFilterPublic(Public):
    name: str
    type: str = Field(description="string, integer, number or boolean")


class LayerPublic(Public):
    """A layer that can be asked about."""

    id: str
    title: str
    description: str
    geometry_type: str
    static: bool = Field(description="True for the city's administrative layers")
    filters: list[LayerFilterPublic]
    temporal: str | None = Field(description="The property a datetime filter applies to")


class InspectorPublic(Public):
    id: str
    name: str
    district: str
    communities: list[str]


class CellPropertiesPublic(Public):
    code: str
    community: str
    street: str
    district: str
    area_m2: Number


class CellPublic(Public):
    type: Literal["Feature"]
    id: str
    geometry: GeometryPublic
    properties: CellPropertiesPublic


class InspectorCellsPublic(Public):
    """The cells an inspector patrols, as a GeoJSON FeatureCollection (WGS84)."""

    type: Literal["FeatureCollection"]
    inspector: InspectorPublic
    number_matched: int = Field(alias="numberMatched")
    features: list[CellPublic]
    bbox: list[Number] = sometimes("min lon, min lat, max lon, max lat (with cells)")


class OgcLandingPublic(Public):
    """OGC API - Features' landing page."""

    title: str
    description: str
    links: list[LinkPublic]


class OgcConformancePublic(Public):
    conforms_to: list[str] = Field(alias="conformsTo")


class SpatialExtentPublic(Public):
    bbox: list[list[Number]]
    crs: str


class TemporalExtentPublic(Public):
    interval: list[list[str | None]]
    trs: str


class ExtentPublic(Public):
    spatial: SpatialExtentPublic
    temporal: TemporalExtentPublic = sometimes("For a layer with time")


class OgcCollectionPublic(Public):
    """One collection (a layer): its extent and links to its items."""

    id: str
    title: str
    description: str
    keywords: list[str]
    item_type: str = Field(alias="itemType")
    crs: list[str]
    extent: ExtentPublic
    links: list[LinkPublic]


class OgcCollectionsPublic(Public):
    links: list[LinkPublic]
    collections: list[OgcCollectionPublic]


class OgcApiDefinitionPublic(Public):
    """The OpenAPI 3.0 definition of the OGC API: one items path per collection, with its
    property filters and the types of its features' properties."""

    openapi: str = Field(examples=["3.0.3"])
    info: dict[str, Any]
    servers: list[dict[str, Any]]
    paths: dict[str, Any]
    components: dict[str, Any]
