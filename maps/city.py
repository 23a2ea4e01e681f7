"""A city's map data as one validated whole, read from a directory: `city.json` (name, time
zone, metric CRS, bounding box, which files hold which layer), the administrative layers,
the inspectors, hazard sources, facilities and emergency resources. The demo city ships with
the package; a real city replaces it by pointing `load_city` at its own directory.

The layout (file names are those of the demo; `city.json` may name others):

- `city.json`: version, name, timezone, metric_crs (projected, metres; default: the UTM zone
  of the bbox centre), bbox [min lon, min lat, max lon, max lat], layers, grid
  {cell_size_m, min_piece_share}, tiling_tolerance_m2, invalid_geometries (refuse|repair).
- `districts`, `streets`, `communities` layers (GeoJSON, GeoPackage or Shapefile, any CRS):
  code and name, plus the parent's code (`district`, `street`); optional `cells` layer
  (code, community, optional inspector) to use the city's own grid instead of generating it.
- `inspectors.json`: {version, inspectors: [{id, name, district, communities}]}.
- `hazard_sources.geojson`, `facilities.geojson`, `resources.geojson`: Point features
  (WGS84) whose properties follow the schemas in `cityops.maps.inventory`.
- `landmarks.geojson` (optional, display only): name, kind, any geometry.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import geopandas as gpd
from pydantic import Field, field_validator

from cityops.domain.errors import InvalidValue
from cityops.domain.geometry import GeoPoint
from cityops.maps.citymap import CityMap, ImportReport, Inspector, assign_inspectors
from cityops.maps.crs import MetricProjection, layer_to_wgs84
from cityops.maps.files import StrictFile, read_json_file
from cityops.maps.grid import GridSpec
from cityops.maps.hierarchy import DEFAULT_TILING_TOLERANCE_M2, AdministrativeHierarchy
from cityops.maps.inventory import (
    EmergencyResource,
    Facility,
    HazardCodes,
    HazardSource,
    ResourceCodes,
    facilities_from,
    hazard_sources_from,
    read_point_features,
    resources_from,
)
from cityops.maps.layers import AdminLevel, ImportedLayer, read_admin_layer, read_layer
from cityops.maps.validity import InvalidGeometryPolicy, refuse

logger = logging.getLogger(__name__)

CITY_FILE = "city.json"
DEMO_CITY_PACKAGE = "cityops.maps"
DEMO_CITY_DIR = ("data", "demo-city")


# --- file schemas ---------------------------------------------------------------------------


class _LayerFile(StrictFile):
    path: str = Field(min_length=1)
    layer: str | None = None
    """Layer name inside a GeoPackage holding several."""
    crs: str | None = None
    """CRS of a file that declares none (a Shapefile without .prj)."""


class _LayersFile(StrictFile):
    districts: _LayerFile = _LayerFile(path="districts.geojson")
    streets: _LayerFile = _LayerFile(path="streets.geojson")
    communities: _LayerFile = _LayerFile(path="communities.geojson")
    cells: _LayerFile | None = None
    """The city's own unit grid; without it the grid is generated from the communities."""

    @field_validator("districts", "streets", "communities", "cells", mode="before")
    @classmethod
    def _path_alone(cls, value: Any) -> Any:
        return {"path": value} if isinstance(value, str) else value


class _GridFile(StrictFile):
    cell_size_m: float = Field(default=100.0, ge=1, le=10_000)
    min_piece_share: float = Field(default=0.25, ge=0, lt=1)


class _CityFile(StrictFile):
    version: Literal[1]
    name: str = Field(min_length=1)
    timezone: str
    metric_crs: str | None = None
    """Projected CRS in metres; without it, the UTM zone of the city's centre."""
    bbox: tuple[float, float, float, float]
    """min longitude, min latitude, max longitude, max latitude."""
    layers: _LayersFile = _LayersFile()
    grid: _GridFile = _GridFile()
    inspectors: str = "inspectors.json"
    hazard_sources: str = "hazard_sources.geojson"
    facilities: str = "facilities.geojson"
    resources: str = "resources.geojson"
    landmarks: str | None = None
    """Optional display layer (river, lakes, parks): name, kind, any geometry."""
    tiling_tolerance_m2: float = Field(default=DEFAULT_TILING_TOLERANCE_M2, ge=0)
    invalid_geometries: InvalidGeometryPolicy = InvalidGeometryPolicy.REFUSE

    @field_validator("bbox")
    @classmethod
    def _ordered(cls, value: tuple[float, float, float, float]) -> tuple[float, ...]:
        minx, miny, maxx, maxy = value
        if not (-180 <= minx < maxx <= 180):
            raise ValueError("longitudes must satisfy -180 <= min < max <= 180")
        if not (-90 <= miny < maxy <= 90):
            raise ValueError(
                "latitudes must satisfy -90 <= min < max <= 90 (is the order "
                "[min lon, min lat, max lon, max lat]?)"
            )
        return value


class _InspectorFile(StrictFile):
    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    district: str = Field(min_length=1)
    communities: list[str] = Field(min_length=1)


class _InspectorsFile(StrictFile):
    version: Literal[1]
    inspectors: list[_InspectorFile] = Field(min_length=1)


# --- the loaded city ------------------------------------------------------------------------


@dataclass(frozen=True)
class CityInfo:
    """Who the city is: name, time zone, where it measures, where it lies."""

    name: str
    timezone: str
    metric_crs: str
    bbox: tuple[float, float, float, float]
    directory: Path


@dataclass(frozen=True, eq=False)
class City:
    """A city's map and positioned inventory, validated together and never changed."""

    info: CityInfo
    map: CityMap
    hazard_sources: tuple[HazardSource, ...]
    facilities: tuple[Facility, ...]
    resources: tuple[EmergencyResource, ...]
    landmarks: gpd.GeoDataFrame | None = field(default=None, repr=False)
    """Display-only layer (river, reservoir...): name, kind, geometry in WGS84."""

    def hazard_source(self, source_id: str) -> HazardSource:
        """A hazard source by id."""
        return _by_id(self.hazard_sources, source_id, "hazard source")

    def facility(self, facility_id: str) -> Facility:
        """A facility by id."""
        return _by_id(self.facilities, facility_id, "facility")

    def resource(self, resource_id: str) -> EmergencyResource:
        """An emergency resource by id."""
        return _by_id(self.resources, resource_id, "emergency resource")


DemoCity = City
"""The demo city is a `City` like any other; the name is kept for readers of the brief."""


class _Identified(Protocol):
    @property
    def id(self) -> str: ...


ItemT = TypeVar("ItemT", bound=_Identified)


def _by_id(items: tuple[ItemT, ...], item_id: str, what: str) -> ItemT:
    for item in items:
        if item.id == item_id:
            return item
    raise InvalidValue(f"unknown {what} {item_id!r}")


# --- loading ------------------------------------------------------------------------------


def _inspectors(path: Path) -> list[Inspector]:
    data = read_json_file(path, _InspectorsFile)
    return [
        Inspector(id=i.id, name=i.name, district=i.district, communities=tuple(i.communities))
        for i in data.inspectors
    ]


def _landmarks(path: Path) -> gpd.GeoDataFrame:
    frame = layer_to_wgs84(read_layer(path), str(path))
    missing = [c for c in ("name", "kind") if c not in frame]
    if missing:
        raise InvalidValue(f"{path}: missing column(s) {', '.join(missing)}")
    invalid = [str(n) for n, ok in zip(frame["name"], frame.is_valid, strict=True) if not ok]
    refuse(str(path), [f"feature {n} has an invalid geometry" for n in invalid])
    return frame[["name", "kind", "geometry"]]


def _read_map(directory: Path, spec: _CityFile, projection: MetricProjection) -> CityMap:
    """The administrative layers, the inspectors and the grid (imported or generated)."""

    def admin(level: AdminLevel, ref: _LayerFile) -> ImportedLayer:
        return read_admin_layer(
            directory / ref.path, level, projection=projection, layer=ref.layer,
            policy=spec.invalid_geometries, assume_crs=ref.crs, city_bbox=spec.bbox,
            optional_columns=("inspector",) if level is AdminLevel.CELL else (),
        )

    districts = admin(AdminLevel.DISTRICT, spec.layers.districts)
    streets = admin(AdminLevel.STREET, spec.layers.streets)
    communities = admin(AdminLevel.COMMUNITY, spec.layers.communities)
    hierarchy = AdministrativeHierarchy.build(
        districts.frame, streets.frame, communities.frame, projection,
        tolerance_m2=spec.tiling_tolerance_m2,
        sources={
            AdminLevel.DISTRICT: str(directory / spec.layers.districts.path),
            AdminLevel.STREET: str(directory / spec.layers.streets.path),
            AdminLevel.COMMUNITY: str(directory / spec.layers.communities.path),
        },
    )
    repairs = districts.repairs + streets.repairs + communities.repairs
    cells, cells_source = None, "grid cells"
    if spec.layers.cells is not None:
        imported = admin(AdminLevel.CELL, spec.layers.cells)
        cells, cells_source = imported.frame, str(directory / spec.layers.cells.path)
        repairs += imported.repairs
    inspectors_path = directory / spec.inspectors
    inspectors = _inspectors(inspectors_path)
    assign_inspectors(hierarchy.communities, inspectors, str(inspectors_path))
    return CityMap(
        spec.name, projection, hierarchy, inspectors,
        grid=GridSpec(spec.grid.cell_size_m, spec.grid.min_piece_share), cells=cells,
        report=ImportReport(repairs, hierarchy.minor_issues),
        tiling_tolerance_m2=spec.tiling_tolerance_m2, cells_source=cells_source,
    )


def load_city(
    directory: Path | str,
    *,
    catalogue: ResourceCodes | None = None,
    hazard_catalogue: HazardCodes | None = None,
) -> City:
    """Read and validate a city from a directory holding `city.json` and the files it names.

    With `catalogue` (the domain `Catalogue`) and `hazard_catalogue` (the domain
    `HazardCatalogue`) the codes of departments, resource kinds, hazard types and sensor
    units are checked too; the composition root passes them.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise InvalidValue(f"{directory}: city directory not found")
    spec: _CityFile = read_json_file(directory / CITY_FILE, _CityFile)
    city_label = str(directory / CITY_FILE)
    try:
        ZoneInfo(spec.timezone)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # A region name ("Asia") is a folder of the tz database: ZoneInfo raises OSError.
        raise InvalidValue(f"{city_label}: unknown time zone {spec.timezone!r}") from None
    if spec.metric_crs is not None:
        projection = MetricProjection.from_crs(spec.metric_crs, f"{city_label}: metric_crs")
    else:
        minx, miny, maxx, maxy = spec.bbox
        projection = MetricProjection.around((minx + maxx) / 2, (miny + maxy) / 2)
    city_map = _read_map(directory, spec, projection)

    def inside(point: GeoPoint, where: str) -> None:
        try:
            city_map.require_inside(point)
        except InvalidValue as error:
            raise InvalidValue(f"{where}: {error}") from None

    hazard_sources = hazard_sources_from(
        read_point_features(directory / spec.hazard_sources, inside), hazard_catalogue
    )
    facilities = facilities_from(read_point_features(directory / spec.facilities, inside))
    emergency_resources = resources_from(
        read_point_features(directory / spec.resources, inside), facilities, catalogue
    )
    landmarks = _landmarks(directory / spec.landmarks) if spec.landmarks else None
    for line in city_map.report.lines():
        logger.warning("%s: %s", directory, line)
    return City(
        info=CityInfo(
            name=spec.name, timezone=spec.timezone,
            metric_crs=projection.crs.to_string(), bbox=spec.bbox, directory=directory,
        ),
        map=city_map,
        hazard_sources=hazard_sources,
        facilities=facilities,
        resources=emergency_resources,
        landmarks=landmarks,
    )


def demo_city_directory() -> Path:
    """Where the demo city's files are installed (package data)."""
    root = resources.files(DEMO_CITY_PACKAGE).joinpath(*DEMO_CITY_DIR)
    path = Path(str(root))
    if not path.is_dir():
        raise InvalidValue(f"{path}: the demo city's files are missing from the installation")
    return path


@functools.cache
def load_demo_city() -> City:
    """The shipped fictional "Demo City", loaded on first use and then shared (immutable)."""
    return load_city(demo_city_directory())
