"""Import of the city's administrative layers (districts, streets, communities, and optionally
the unit grid itself) from GeoJSON, GeoPackage or Shapefile: required columns, CRS, axis
order and geometry types are checked on the way in, and each problem names the file and the
feature.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd

from cityops.domain.errors import InvalidValue
from cityops.maps.crs import MetricProjection, layer_to_wgs84
from cityops.maps.validity import GeometryRepair, InvalidGeometryPolicy, check_polygons, refuse

SUPPORTED_SUFFIXES = (".geojson", ".json", ".gpkg", ".shp", ".zip")


class AdminLevel(StrEnum):
    """A level of the city's hierarchy, from the largest to the smallest."""

    DISTRICT = "district"
    STREET = "street"
    COMMUNITY = "community"
    CELL = "cell"

    @property
    def parent(self) -> AdminLevel | None:
        """The level this one subdivides (None for districts)."""
        order = list(AdminLevel)
        index = order.index(self)
        return order[index - 1] if index > 0 else None

    @property
    def plural(self) -> str:
        """The level's name for several areas, for messages."""
        return "communities" if self is AdminLevel.COMMUNITY else f"{self.value}s"

    @property
    def required_columns(self) -> tuple[str, ...]:
        """Columns a layer of this level must have; the parent is named by its code."""
        parent = self.parent
        own = ("code",) if self is AdminLevel.CELL else ("code", "name")
        return own + ((parent.value,) if parent is not None else ())


@dataclass(frozen=True)
class ImportedLayer:
    """One administrative layer in WGS84 with its columns checked, and the repairs made."""

    level: AdminLevel
    frame: gpd.GeoDataFrame
    repairs: tuple[GeometryRepair, ...]


def read_layer(path: Path, *, layer: str | None = None) -> gpd.GeoDataFrame:
    """Any vector file geopandas can read, with a clear error naming the file if it cannot."""
    if path.suffix.lower() not in SUPPORTED_SUFFIXES:
        raise InvalidValue(
            f"{path}: unsupported layer format {path.suffix!r}; use GeoJSON (.geojson), "
            "GeoPackage (.gpkg) or Shapefile (.shp)"
        )
    if not path.is_file():
        raise InvalidValue(f"{path}: file not found")
    try:
        frame = gpd.read_file(path, layer=layer, engine="pyogrio")
    except Exception as error:  # pyogrio/GDAL raise many error types for unreadable files
        raise InvalidValue(f"{path}: cannot be read as a map layer: {error}") from None
    if not isinstance(frame, gpd.GeoDataFrame) or "geometry" not in frame:
        raise InvalidValue(f"{path}: the layer has no geometry column")
    return frame


def _text(value: Any) -> str | None:
    """A code or name as text; numbers from a Shapefile's numeric field become their digits."""
    if value is None or (not isinstance(value, str) and bool(pd.isna(value))):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    return text or None


def admin_layer_from_frame(
    frame: gpd.GeoDataFrame,
    level: AdminLevel,
    label: str,
    *,
    projection: MetricProjection,
    policy: InvalidGeometryPolicy = InvalidGeometryPolicy.REFUSE,
    assume_crs: Any = None,
    city_bbox: tuple[float, float, float, float] | None = None,
    optional_columns: tuple[str, ...] = (),
) -> ImportedLayer:
    """Check and normalise an administrative layer already in memory (any CRS)."""
    # Shapefile fields come upper-case from many desktop GIS: match names case-insensitively.
    by_lower = {str(c).lower(): c for c in frame.columns if c != frame.geometry.name}
    missing = [c for c in level.required_columns if c not in by_lower]
    if missing:
        raise InvalidValue(
            f"{label}: missing column(s) {', '.join(missing)}; a {level.value} layer needs "
            f"{', '.join(level.required_columns)}"
        )
    if len(frame) == 0:
        raise InvalidValue(f"{label}: the layer has no features")
    frame = layer_to_wgs84(frame, label, assume_crs=assume_crs, city_bbox=city_bbox)

    wanted = level.required_columns + tuple(c for c in optional_columns if c in by_lower)
    columns: dict[str, list[str | None]] = {
        name: [_text(v) for v in frame[by_lower[name]]] for name in wanted
    }
    problems: list[str] = []
    names: list[str] = []
    for row, code in enumerate(columns["code"]):
        names.append(code if code is not None else f"#{row + 1}")
        for name in level.required_columns:
            if columns[name][row] is None:
                problems.append(f"{level.value} {names[-1]} (feature #{row + 1}): empty {name}")
    seen: set[str] = set()
    for code in columns["code"]:
        if code is not None and code in seen:
            problems.append(f"{level.value} code {code} appears more than once")
        seen.add(code or "")
    refuse(label, problems)

    geometries, repairs = check_polygons(
        list(frame.geometry), names, label, policy, projection, what=level.value
    )
    data = {name: [v or "" for v in values] for name, values in columns.items()}
    normalised = gpd.GeoDataFrame(data, geometry=geometries, crs=frame.crs)
    return ImportedLayer(level=level, frame=normalised, repairs=tuple(repairs))


def read_admin_layer(
    path: Path,
    level: AdminLevel,
    *,
    projection: MetricProjection,
    layer: str | None = None,
    policy: InvalidGeometryPolicy = InvalidGeometryPolicy.REFUSE,
    assume_crs: Any = None,
    city_bbox: tuple[float, float, float, float] | None = None,
    optional_columns: tuple[str, ...] = (),
) -> ImportedLayer:
    """Read and check one administrative layer file (GeoJSON, GeoPackage or Shapefile)."""
    frame = read_layer(path, layer=layer)
    return admin_layer_from_frame(
        frame, level, str(path), projection=projection, policy=policy, assume_crs=assume_crs,
        city_bbox=city_bbox, optional_columns=optional_columns,
    )
