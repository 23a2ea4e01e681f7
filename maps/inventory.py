"""What the city has where: hazard sources with their sensors, facilities to protect (schools,
hospitals, shelters) and emergency resources with their home bases, as plain typed values,
and the readers of their GeoJSON files (each problem names the file and the feature).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal, Protocol

import shapely
from pydantic import Field, model_validator
from pyproj import Transformer

from cityops.domain.errors import InvalidValue
from cityops.domain.geometry import Area, GeoPoint
from cityops.maps.crs import WGS84_CRS, resolve_crs
from cityops.maps.files import StrictFile, read_json, validate

MAX_IMPACT_RADIUS_M = 50_000.0


@dataclass(frozen=True)
class Sensor:
    """A monitoring sensor of a hazard source and its warning and alarm thresholds, in the
    shape the hazard-source registry takes them (`direction` says which way is dangerous)."""

    id: str
    kind: str
    """A sensor kind code of the hazard catalogue (gas-concentration, water-level...)."""
    unit: str
    direction: Literal["high", "low"]
    """'high': danger when the value rises (warning < alarm); 'low': when it falls."""
    warning: float
    alarm: float
    label: str = ""


@dataclass(frozen=True)
class HazardSource:
    """A registered major hazard installation or risky place, where it is and how far it
    threatens (a radius, or its own zone such as a dam's flood path)."""

    id: str
    name: str
    hazard_type: str
    """A hazard type code of the hazard catalogue (chemical-plant, lpg-depot...)."""
    owner_name: str
    owner_contact: str
    grade: int
    """1 (highest hazard) to 4."""
    location: GeoPoint
    impact_radius_m: float | None
    """Exactly one of a radius and a zone says how far the source threatens."""
    impact_zone: Area | None
    sensors: tuple[Sensor, ...]


class FacilityKind(StrEnum):
    """Places whose people must be protected or can be sheltered."""

    SCHOOL = "school"
    HOSPITAL = "hospital"
    SHELTER = "shelter"


@dataclass(frozen=True)
class Facility:
    """A school, hospital or shelter: who is there (pupils, beds, places) and where."""

    id: str
    kind: FacilityKind
    name: str
    location: GeoPoint
    capacity: int
    """Pupils of a school, beds of a hospital, places of a shelter."""


@dataclass(frozen=True)
class EmergencyResource:
    """A team, vehicle, depot or shelter that can be assigned to an incident, at its home base
    (vehicles report their live positions elsewhere; this is where they return to)."""

    id: str
    kind: str
    """A resource kind code of the catalogue (fire-engine, ambulance...)."""
    department: str
    """The department code of the catalogue that owns it."""
    name: str
    base: str
    """Name of the home base (station, depot)."""
    location: GeoPoint
    facility_id: str | None = None
    """The facility it is (a shelter resource is a shelter facility put at disposal)."""


# --- reference codes: checked against the domain catalogues when the caller has them ------


class ResourceCodes(Protocol):
    """What the loader needs from the domain catalogue (`cityops.domain.catalogue.Catalogue`)."""

    def department(self, code: str) -> Any: ...

    def resource_kind(self, code: str) -> Any: ...


class HazardCodes(Protocol):
    """What the loader needs from the hazard catalogue of the domain."""

    def hazard_type(self, code: str) -> Any: ...

    def check_unit(self, kind_code: str, unit: str) -> str: ...


# --- file schemas ---------------------------------------------------------------------------


class _SensorFile(StrictFile):
    id: str = Field(min_length=1)
    kind: str = Field(min_length=1)
    unit: str = Field(min_length=1)
    direction: Literal["high", "low"]
    warning: float
    alarm: float
    label: str = ""

    @model_validator(mode="after")
    def _alarm_beyond_warning(self) -> _SensorFile:
        # A value reaches the warning threshold first, then the alarm threshold.
        if self.direction == "high" and not self.warning < self.alarm:
            raise ValueError(
                f"a 'high' sensor needs warning ({self.warning}) below alarm ({self.alarm})"
            )
        if self.direction == "low" and not self.warning > self.alarm:
            raise ValueError(
                f"a 'low' sensor needs warning ({self.warning}) above alarm ({self.alarm})"
            )
        return self


class _HazardFile(StrictFile):
    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    type: str = Field(min_length=1)
    owner_name: str = Field(min_length=1)
    owner_contact: str = ""
    grade: int = Field(ge=1, le=4)
    impact_radius_m: float | None = Field(default=None, gt=0, le=MAX_IMPACT_RADIUS_M)
    impact_zone: dict[str, Any] | None = None
    sensors: list[_SensorFile] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_impact(self) -> _HazardFile:
        if (self.impact_radius_m is None) == (self.impact_zone is None):
            raise ValueError("give exactly one of impact_radius_m and impact_zone")
        return self


class _FacilityFile(StrictFile):
    id: str = Field(min_length=1)
    kind: FacilityKind
    name: str = Field(min_length=1)
    capacity: int = Field(ge=0)


class _ResourceFile(StrictFile):
    id: str = Field(min_length=1)
    kind: str = Field(min_length=1)
    department: str = Field(min_length=1)
    name: str = Field(min_length=1)
    base: str = Field(min_length=1)
    facility_id: str | None = None


@dataclass(frozen=True)
class PointFeature:
    """One feature of a point file: its label for errors, position and raw properties."""

    where: str
    location: GeoPoint
    properties: dict[str, Any]


def read_point_features(
    path: Path, place_check: Callable[[GeoPoint, str], None] | None = None
) -> list[PointFeature]:
    """The Point features of a GeoJSON file in WGS84 (another declared CRS is reprojected);
    `place_check` refuses positions outside the city."""
    label = str(path)
    data = read_json(path)
    if not isinstance(data, dict) or data.get("type") != "FeatureCollection":
        raise InvalidValue(f"{label}: expected a GeoJSON FeatureCollection")
    features = data.get("features")
    if not isinstance(features, list):
        raise InvalidValue(f"{label}: 'features' must be a list")
    transformer = _declared_crs(data, label)
    result: list[PointFeature] = []
    for number, feature in enumerate(features, start=1):
        properties = feature.get("properties") if isinstance(feature, dict) else None
        name = properties.get("id") if isinstance(properties, dict) else None
        where = f"{label}: feature #{number}" + (f" ({name})" if name else "")
        if not isinstance(properties, dict):
            raise InvalidValue(f"{where}: missing properties")
        geometry = feature.get("geometry")
        if not isinstance(geometry, dict) or geometry.get("type") != "Point":
            raise InvalidValue(f"{where}: geometry must be a Point")
        coordinates = geometry.get("coordinates")
        if (not isinstance(coordinates, list) or len(coordinates) not in (2, 3)
                or not all(isinstance(c, int | float) for c in coordinates)):
            raise InvalidValue(f"{where}: a Point needs coordinates [longitude, latitude]")
        x, y = float(coordinates[0]), float(coordinates[1])
        if transformer is not None:
            x, y = (float(v) for v in transformer.transform(x, y))
        try:
            location = GeoPoint(lon=x, lat=y)
        except InvalidValue as error:
            raise InvalidValue(f"{where}: {error}") from None
        if place_check is not None:
            place_check(location, where)
        result.append(PointFeature(where=where, location=location, properties=properties))
    ids = [f.properties.get("id") for f in result]
    duplicates = sorted({str(i) for i in ids if ids.count(i) > 1})
    if duplicates:
        raise InvalidValue(f"{label}: id(s) {', '.join(duplicates)} appear more than once")
    return result


def _declared_crs(data: dict[str, Any], label: str) -> Transformer | None:
    """A transformation to WGS84 when an (old-style) GeoJSON declares another CRS."""
    declared = data.get("crs")
    if declared is None:
        return None  # RFC 7946: GeoJSON is WGS84, longitude first.
    name = declared.get("properties", {}).get("name") if isinstance(declared, dict) else None
    crs = resolve_crs(name, f"{label}: crs")
    if crs.equals(WGS84_CRS, ignore_axis_order=True):
        return None
    return Transformer.from_crs(crs, WGS84_CRS, always_xy=True)


def _zone(data: dict[str, Any], where: str) -> Area:
    try:
        zone = Area.from_geojson(data)
    except InvalidValue as error:
        raise InvalidValue(f"{where}: impact_zone: {error}") from None
    if not shapely.is_valid(zone.shape):
        raise InvalidValue(f"{where}: impact_zone is not a valid polygon")
    return zone


def _check(check: Callable[[str], Any], code: str, where: str) -> None:
    try:
        check(code)
    except InvalidValue as error:
        raise InvalidValue(f"{where}: {error}") from None


def hazard_sources_from(
    features: Sequence[PointFeature], codes: HazardCodes | None = None
) -> tuple[HazardSource, ...]:
    """Hazard sources from validated point features (codes checked when `codes` is given)."""
    sources = []
    for feature in features:
        data = validate(_HazardFile, feature.properties, feature.where)
        if codes is not None:
            _check(codes.hazard_type, data.type, feature.where)
            for sensor in data.sensors:
                try:
                    codes.check_unit(sensor.kind, sensor.unit)
                except InvalidValue as error:
                    raise InvalidValue(f"{feature.where}: sensor {sensor.id}: {error}") \
                        from None
        sensor_ids = [s.id for s in data.sensors]
        if len(set(sensor_ids)) != len(sensor_ids):
            raise InvalidValue(f"{feature.where}: sensor ids must be unique")
        sources.append(HazardSource(
            id=data.id, name=data.name, hazard_type=data.type, owner_name=data.owner_name,
            owner_contact=data.owner_contact, grade=data.grade, location=feature.location,
            impact_radius_m=data.impact_radius_m,
            impact_zone=_zone(data.impact_zone, feature.where) if data.impact_zone else None,
            sensors=tuple(
                Sensor(id=s.id, kind=s.kind, unit=s.unit, direction=s.direction,
                       warning=s.warning, alarm=s.alarm, label=s.label)
                for s in data.sensors
            ),
        ))
    return tuple(sources)


def facilities_from(features: Sequence[PointFeature]) -> tuple[Facility, ...]:
    """Facilities from validated point features."""
    facilities = []
    for feature in features:
        data = validate(_FacilityFile, feature.properties, feature.where)
        facilities.append(Facility(id=data.id, kind=data.kind, name=data.name,
                                   location=feature.location, capacity=data.capacity))
    return tuple(facilities)


def resources_from(
    features: Sequence[PointFeature],
    facilities: Sequence[Facility],
    codes: ResourceCodes | None = None,
) -> tuple[EmergencyResource, ...]:
    """Emergency resources from validated point features; a `facility_id` must exist."""
    known_facilities = {f.id for f in facilities}
    resources = []
    for feature in features:
        data = validate(_ResourceFile, feature.properties, feature.where)
        if codes is not None:
            _check(codes.resource_kind, data.kind, feature.where)
            _check(codes.department, data.department, feature.where)
        if data.facility_id is not None and data.facility_id not in known_facilities:
            raise InvalidValue(f"{feature.where}: unknown facility {data.facility_id!r}")
        resources.append(EmergencyResource(
            id=data.id, kind=data.kind, department=data.department, name=data.name,
            base=data.base, location=feature.location, facility_id=data.facility_id,
        ))
    return tuple(resources)
