"""Exports of any map layer to GeoPackage, GeoJSON or CSV (geometry as WKT), with the same
filters as the layer's features (bbox, bbox-crs, datetime, property filters).

The file is written by GDAL (pyogrio) into a private temporary folder, streamed to the
client, and the folder is removed once the response is sent (or if writing fails), so that
nothing is left behind.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any

import geopandas as gpd
import pandas as pd
import pyogrio
from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from cityops.command_center.dependencies import CurrentActor
from cityops.command_center.feature_requests import feature_query, now_of
from cityops.command_center.scopes import scoped_features
from cityops.command_center.time_travel import ReadSystem
from cityops.domain.errors import InvalidValue
from cityops.maps.crs import WGS84_CRS
from cityops.projections.spatial import Feature, NotOnMap
from cityops.projections.spatial_layers import Layer

router = APIRouter(prefix="/exports", tags=["exports"])

FORMATS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "gpkg": ("GPKG", "application/geopackage+sqlite3", {}),
    # RFC 7946 would round to 7 decimals (about a centimetre): keep what the map has.
    "geojson": ("GeoJSON", "application/geo+json", {"RFC7946": "YES",
                                                     "COORDINATE_PRECISION": 15}),
    "csv": ("CSV", "text/csv", {"GEOMETRY": "AS_WKT"}),
}
"""Suffix -> (GDAL driver, media type, layer creation options)."""

BINARY: dict[str, Any] = {"type": "string", "format": "binary"}
FILE_SCHEMAS: dict[str, dict[str, Any]] = {
    "application/geo+json": {
        "type": "object", "required": ["type", "features"],
        "description": "A GeoJSON FeatureCollection as GDAL writes it: the layer's "
                       "properties flat on each feature (GET /spatial/layers)",
        "properties": {"type": {"const": "FeatureCollection"}, "name": {"type": "string"},
                       "features": {"type": "array", "items": {"type": "object"}}}},
}
"""The schema of each downloaded format (a GeoPackage or CSV file is bytes)."""
RESERVED = frozenset({"bbox", "bbox-crs", "datetime", "as_of"})
EXPORT_DIR: str | None = None
"""Where the temporary folders are made (None: the system's temporary directory)."""

_DTYPES = {"integer": "Int64", "number": "Float64", "boolean": "boolean", "string": "object"}


def layer_frame(layer: Layer, features: list[Feature], now: Any) -> gpd.GeoDataFrame:
    """The features as a WGS84 GeoDataFrame with one typed column per property."""
    records = [{"id": f.id, **layer.properties_of(f.doc, now)} for f in features]
    columns = ["id", *(p.name for p in layer.properties)]
    frame = pd.DataFrame.from_records(records, columns=columns)
    for prop in layer.properties:
        frame[prop.name] = frame[prop.name].astype(_DTYPES[prop.type])
    return gpd.GeoDataFrame(frame, geometry=[f.geometry for f in features], crs=WGS84_CRS)


def _split(name: str) -> tuple[str, str]:
    stem, dot, suffix = name.rpartition(".")
    if not dot or suffix not in FORMATS:
        raise InvalidValue(f"export {name!r}: name it <layer>.<format>, format one of "
                           f"{', '.join(FORMATS)}")
    return stem, suffix


@router.get("/{name}", response_class=FileResponse,
            responses={200: {"content": {m: {"schema": FILE_SCHEMAS.get(m, BINARY)}
                                      for _, m, _ in FORMATS.values()},
                          "description": "The layer as a file to download"}})
def export_layer(
    name: Annotated[str, PathParam(description="<layer>.<gpkg|geojson|csv>, e.g. "
                                   "incidents.gpkg")],
    request: Request, system: ReadSystem, actor: CurrentActor,
    bbox: Annotated[str | None, Query(description="x1,y1,x2,y2 in bbox-crs")] = None,
    bbox_crs: Annotated[str | None, Query(alias="bbox-crs")] = None,
    datetime_text: Annotated[str | None, Query(alias="datetime")] = None,
) -> FileResponse:
    """Download a layer (every matching feature) as GeoPackage, GeoJSON or CSV; other
    query parameters are the layer's property filters."""
    layer_id, suffix = _split(name)
    layer = system.spatial.layers.get(layer_id)
    if layer is None:
        known = ", ".join(sorted(system.spatial.layers))
        raise NotOnMap("layer", layer_id, f"layers: {known}")
    query = feature_query(layer, system, request.query_params.multi_items(), reserved=RESERVED,
                          bbox=bbox, bbox_crs=bbox_crs, datetime_text=datetime_text,
                          limit=None, offset=0)
    page = scoped_features(layer.id, query, actor, system.sharing,
                           lambda q: system.spatial.features(layer.id, q))
    frame = layer_frame(layer, page.features, now_of(system))
    driver, media_type, options = FORMATS[suffix]
    folder = Path(tempfile.mkdtemp(prefix="cityops-export-", dir=EXPORT_DIR))
    path = folder / f"{layer.id}.{suffix}"
    try:
        pyogrio.write_dataframe(
            frame, path, layer=layer.id, driver=driver, layer_options=options or None,
            geometry_type=None if len(frame) else layer.geometry_type,
        )
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return FileResponse(path, media_type=media_type, filename=path.name,
                        background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True))
