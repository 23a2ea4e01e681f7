"""The map layers the command centre publishes (its "one map", the OGC API collections and
the exports): which read-model table or city layer each comes from, which of its geometries
it shows, which flat properties it carries, what it can be filtered by, and which time its
`datetime` filter applies to.

Properties are a fixed, flat list per layer, so that GIS tools see one schema and exports
have plain columns. Hotline tickets carry no personal data: neither the caller nor any free
text a caller may have filled with it (description, answer, notes).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import shapely
from shapely.geometry.base import BaseGeometry

from cityops.domain.errors import InvalidValue
from cityops.domain.warnings.warning import as_sent
from cityops.projections.views import case_light

PropertyType = Literal["string", "integer", "number", "boolean"]
Getter = Callable[[Mapping[str, Any], datetime], Any]


@dataclass(frozen=True)
class Property:
    """One flat property of a layer's features, and how it is read from a row's document."""

    name: str
    type: PropertyType = "string"
    read: Getter | None = None
    """Reads the value from the document (default: the key of the same name)."""
    format: str | None = None
    """JSON-schema format (date-time for times)."""
    keys: tuple[str, ...] | None = None
    """The document keys a custom `read` uses (None: it may read any)."""

    @property
    def document_keys(self) -> tuple[str, ...] | None:
        """The keys of the document this property is read from (None: the whole document)."""
        return (self.name,) if self.read is None else self.keys

    def value(self, doc: Mapping[str, Any], now: datetime) -> Any:
        """The property of one document at `now`."""
        if self.read is not None:
            return self.read(doc, now)
        return doc.get(self.name)


def _time(name: str) -> Property:
    return Property(name, "string", format="date-time")


@dataclass(frozen=True)
class Filter:
    """A column a layer's features can be filtered by (query parameter = column name)."""

    name: str
    type: PropertyType = "string"

    def parse(self, text: str) -> Any:
        """The typed value of a query parameter; a wrong one is a clear error."""
        if self.type == "boolean":
            lowered = text.strip().lower()
            if lowered in ("true", "1", "yes"):
                return True
            if lowered in ("false", "0", "no"):
                return False
            raise InvalidValue(f"{self.name} must be true or false, got {text!r}")
        if self.type == "integer":
            try:
                return int(text)
            except ValueError:
                raise InvalidValue(f"{self.name} must be an integer, got {text!r}") from None
        return text


@dataclass(frozen=True)
class ReadModelSource:
    """A layer drawn from a read-model table, with one of its geometry columns."""

    table: str
    geometry: str
    """A `GeometryColumn` name of the table ('geom' for the row's point)."""


@dataclass(frozen=True)
class CitySource:
    """A layer of the city's map, which never changes while the system runs."""

    kind: Literal["districts", "streets", "communities", "grid-cells", "facilities"]


@dataclass(frozen=True)
class Layer:
    """One published layer: a collection of features of one geometry type."""

    id: str
    title: str
    description: str
    geometry_type: Literal["Point", "Polygon"]
    source: ReadModelSource | CitySource
    properties: tuple[Property, ...]
    filters: tuple[Filter, ...] = ()
    temporal: str | None = None
    """The column (ISO UTC text) the `datetime` filter applies to; None: no time."""
    temporal_property: str | None = None
    """The property that shows that time."""
    keywords: tuple[str, ...] = field(default_factory=tuple)

    @property
    def points(self) -> bool:
        """Whether its features are points (radius and nearest questions apply)."""
        return self.geometry_type == "Point"

    @property
    def static(self) -> bool:
        """Whether it is part of the city's map rather than a live read model."""
        return isinstance(self.source, CitySource)

    def filter(self, name: str) -> Filter:
        """The filter of that name, or a clear error listing the layer's filters."""
        for candidate in self.filters:
            if candidate.name == name:
                return candidate
        known = ", ".join(f.name for f in self.filters) or "none"
        raise InvalidValue(f"{self.id} cannot be filtered by {name!r}; its filters: {known}")

    @property
    def document_keys(self) -> frozenset[str] | None:
        """The document keys its properties are read from (None: the whole document)."""
        keys: set[str] = set()
        for prop in self.properties:
            if prop.document_keys is None:
                return None
            keys.update(prop.document_keys)
        return frozenset(keys)

    def properties_of(self, doc: Mapping[str, Any], now: datetime) -> dict[str, Any]:
        """The flat properties of one feature's document at `now`."""
        return {p.name: p.value(doc, now) for p in self.properties}


def simplest(geometry: BaseGeometry | None) -> BaseGeometry | None:
    """A single-part multi-geometry as its one part: PostGIS stores every area as a
    MultiPolygon, and both back ends show the same shape the same way."""
    if geometry is not None and geometry.geom_type.startswith("Multi") \
            and shapely.get_num_geometries(geometry) == 1:
        part: BaseGeometry = shapely.get_geometry(geometry, 0)
        return part
    return geometry


# --- the read-model layers -----------------------------------------------------------------


def _light(doc: Mapping[str, Any], now: datetime) -> str | None:
    current = case_light(dict(doc), now)
    return current.value if current is not None else None


def _open_alarm_count(doc: Mapping[str, Any], _: datetime) -> int:
    return len(doc.get("open_alarms") or [])


def _position_at(doc: Mapping[str, Any], _: datetime) -> str | None:
    position = doc.get("position")
    return position.get("at") if isinstance(position, dict) else None


INCIDENT_PROPERTIES = (
    Property("status"), Property("category"), Property("incident_type"), Property("level"),
    Property("level_rank", "integer"), Property("title"), Property("source"),
    Property("commander"), _time("reported_at"), _time("verified_at"),
    _time("responding_at"), _time("contained_at"), _time("closed_at"),
    Property("open_tasks", "integer"),
)
INCIDENT_FILTERS = (Filter("status"), Filter("category"), Filter("level"),
                    Filter("is_open", "boolean"))

HAZARD_PROPERTIES = (
    Property("status"), Property("name"), Property("hazard_type"), Property("grade", "integer"),
    Property("impact_radius_m", "number"), Property("alarm_count", "integer"),
    Property("open_alarm_count", "integer", _open_alarm_count, keys=("open_alarms",)),
    _time("registered_at"),
)
HAZARD_FILTERS = (Filter("status"), Filter("hazard_type"), Filter("grade", "integer"))

def _warning_status(doc: Mapping[str, Any], now: datetime) -> str | None:
    """A warning's status at `now` as it went out (the layers show everyone the same flat
    properties): an update in preparation is not shown, expired once an issued warning's
    expiry has passed."""
    status = as_sent(doc).get("status")
    content = doc.get("content")
    if status in WARNING_IN_FORCE and isinstance(content, dict) \
            and datetime.fromisoformat(content["expires"]) <= now:
        return "expired"
    return status if isinstance(status, str) else None


WARNING_IN_FORCE = frozenset({"issued", "update-drafted", "update-approved"})
WARNING_PROPERTIES = (
    Property("status", "string", _warning_status, keys=("status", "content")),
    Property("alert_status"),
    Property("scope"), Property("level"), Property("event_type"), Property("headline"),
    Property("sequence", "integer"), _time("issued_at"), _time("last_sent_at"),
    _time("expires"), _time("drafted_at"),
)
WARNING_FILTERS = (Filter("level"), Filter("alert_status"), Filter("in_force", "boolean"),
                   Filter("issued", "boolean"), Filter("origin_id"), Filter("scope"))

READ_MODEL_LAYERS = (
    Layer(
        id="incidents", title="Emergency incidents",
        description="Incidents where they were reported, with their category, level and "
                    "state.",
        geometry_type="Point", source=ReadModelSource("rm_incidents", "geom"),
        properties=INCIDENT_PROPERTIES, filters=INCIDENT_FILTERS,
        temporal="reported_at", temporal_property="reported_at",
        keywords=("incident", "emergency"),
    ),
    Layer(
        id="incident-areas", title="Affected areas of incidents",
        description="The affected area of each incident that has one.",
        geometry_type="Polygon", source=ReadModelSource("rm_incidents", "affected_area"),
        properties=INCIDENT_PROPERTIES, filters=INCIDENT_FILTERS,
        temporal="reported_at", temporal_property="reported_at",
        keywords=("incident", "emergency", "area"),
    ),
    Layer(
        id="grid-cases", title="Grid cases",
        description="Urban management cases with their supervision light (green, yellow, "
                    "red) at the time of the request.",
        geometry_type="Point", source=ReadModelSource("rm_grid_cases", "geom"),
        properties=(
            Property("status"), Property("source"), Property("category"),
            Property("urgency"), Property("grid_cell"), Property("department"),
            _time("reported_at"), _time("handling_deadline"), _time("closed_at"),
            Property("rework_count", "integer"), Property("return_count", "integer"),
            Property("light", "string", _light,
                     keys=("frozen_light", "yellow_at", "red_at")),
        ),
        filters=(Filter("status"), Filter("category"), Filter("department"),
                 Filter("grid_cell"), Filter("is_open", "boolean")),
        temporal="reported_at", temporal_property="reported_at",
        keywords=("grid", "case", "supervision"),
    ),
    Layer(
        id="hazard-sources", title="Hazard sources",
        description="Registered major hazard installations and risky places.",
        geometry_type="Point", source=ReadModelSource("rm_hazard_sources", "geom"),
        properties=HAZARD_PROPERTIES, filters=HAZARD_FILTERS,
        temporal="created_at", temporal_property="registered_at",
        keywords=("hazard",),
    ),
    Layer(
        id="hazard-zones", title="Impact zones of hazard sources",
        description="Where each hazard source threatens: its own zone, or its impact radius "
                    "buffered in metres.",
        geometry_type="Polygon", source=ReadModelSource("rm_hazard_sources", "impact_zone"),
        properties=HAZARD_PROPERTIES, filters=HAZARD_FILTERS,
        temporal="created_at", temporal_property="registered_at",
        keywords=("hazard", "zone"),
    ),
    Layer(
        id="resources", title="Emergency resources",
        description="Rescue teams, vehicles, depots, shelters and experts at their last "
                    "reported position (else their home base), with their status.",
        geometry_type="Point", source=ReadModelSource("rm_resources", "geom"),
        properties=(
            Property("kind"), Property("name"), Property("call_sign"), Property("department"),
            Property("mobile", "boolean"), Property("status"), _time("status_since"),
            Property("incident_id"),
            Property("position_at", "string", _position_at, format="date-time",
                     keys=("position",)),
        ),
        filters=(Filter("kind"), Filter("status"), Filter("department"),
                 Filter("incident_id")),
        temporal="updated_at", temporal_property="status_since",
        keywords=("resource", "dispatch"),
    ),
    Layer(
        id="warnings", title="Warnings",
        description="The centre's public and inter-agency warnings, at a point inside their "
                    "area, with their level and state (expired once past their expiry).",
        geometry_type="Point", source=ReadModelSource("rm_warnings", "geom"),
        properties=WARNING_PROPERTIES, filters=WARNING_FILTERS,
        temporal="created_at", temporal_property="drafted_at",
        keywords=("warning", "alert", "CAP"),
    ),
    Layer(
        id="warning-areas", title="Areas of warnings",
        description="Where each warning applies: its polygons and circles (circles drawn as "
                    "64-sided polygons).",
        geometry_type="Polygon", source=ReadModelSource("rm_warnings", "area"),
        properties=WARNING_PROPERTIES, filters=WARNING_FILTERS,
        temporal="created_at", temporal_property="drafted_at",
        keywords=("warning", "alert", "area"),
    ),
    Layer(
        id="hotline-tickets", title="Hotline tickets (locations)",
        description="Where hotline tickets are about, with their topic and state; no caller "
                    "data and no free text.",
        geometry_type="Point", source=ReadModelSource("rm_tickets", "geom"),
        properties=(
            Property("status"), Property("channel"), Property("ticket_type"),
            Property("topic"), Property("grid_cell"), Property("department"),
            _time("received_at"), _time("closed_at"), Property("case_id"),
            Property("incident_id"),
        ),
        filters=(Filter("status"), Filter("topic"), Filter("department"),
                 Filter("grid_cell"), Filter("is_open", "boolean")),
        temporal="created_at", temporal_property="received_at",
        keywords=("hotline", "ticket"),
    ),
)

# --- the city's layers ---------------------------------------------------------------------

CITY_LAYERS = (
    Layer(
        id="districts", title="Districts", description="The city's districts.",
        geometry_type="Polygon", source=CitySource("districts"),
        properties=(Property("code"), Property("name")),
        keywords=("administrative",),
    ),
    Layer(
        id="streets", title="Streets (sub-districts)",
        description="Streets, the level below districts.",
        geometry_type="Polygon", source=CitySource("streets"),
        properties=(Property("code"), Property("name"), Property("district")),
        filters=(Filter("district"),),
        keywords=("administrative",),
    ),
    Layer(
        id="communities", title="Communities",
        description="Communities, the level below streets.",
        geometry_type="Polygon", source=CitySource("communities"),
        properties=(Property("code"), Property("name"), Property("street"),
                    Property("district")),
        filters=(Filter("street"), Filter("district")),
        keywords=("administrative",),
    ),
    Layer(
        id="grid-cells", title="Unit grid cells",
        description="Cells of about 100 m x 100 m with their hierarchical code and inspector.",
        geometry_type="Polygon", source=CitySource("grid-cells"),
        properties=(Property("code"), Property("community"), Property("street"),
                    Property("district"), Property("inspector"),
                    Property("area_m2", "number")),
        filters=(Filter("community"), Filter("street"), Filter("district"),
                 Filter("inspector")),
        keywords=("grid", "administrative"),
    ),
    Layer(
        id="facilities", title="Schools, hospitals and shelters",
        description="Places whose people must be protected or can be sheltered.",
        geometry_type="Point", source=CitySource("facilities"),
        properties=(Property("kind"), Property("name"), Property("capacity", "integer")),
        filters=(Filter("kind"),),
        keywords=("facility",),
    ),
)

LAYERS: Mapping[str, Layer] = {layer.id: layer for layer in (*READ_MODEL_LAYERS, *CITY_LAYERS)}


@dataclass(frozen=True)
class CityFeature:
    """One feature of a city layer: its id (code), WGS84 geometry and document."""

    id: str
    geometry: BaseGeometry
    doc: dict[str, Any]


def city_features(city: Any, kind: str) -> list[CityFeature]:
    """The features of one city layer, from the loaded `City` (map and inventory)."""
    city_map = city.map
    if kind == "facilities":
        return [
            CityFeature(f.id, shapely.Point(f.location.lon, f.location.lat),
                        {"code": f.id, "kind": str(f.kind), "name": f.name,
                         "capacity": int(f.capacity)})
            for f in city.facilities
        ]
    frames = {"districts": city_map.districts, "streets": city_map.streets,
              "communities": city_map.communities, "grid-cells": city_map.cells}
    frame = frames[kind]
    columns = [c for c in frame.columns if c != frame.geometry.name]
    features = []
    for row, geometry in zip(frame[columns].to_dict("records"), frame.geometry, strict=True):
        doc = {k: (float(v) if k == "area_m2" else str(v)) for k, v in row.items()}
        features.append(CityFeature(str(row["code"]), geometry, doc))
    return features
