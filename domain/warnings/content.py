"""What a warning says and where: the typed, frozen values of a warning's content and of each
message the warning desk sends out (`WarningNotice`: an alert, an update or a cancellation).

These are the domain's words for what OASIS CAP 1.2 calls an `alert` with its `info` blocks
and `area`s; the CAP documents, feeds and publishing are built from a `WarningNotice` alone
(`cityops.feeds.cap` and friends), so a notice carries everything a message needs: its own
identifier and sequence, what it replaces (identifiers and sent times), sender, status
(actual or exercise), scope, and the full content.

Coordinates are WGS84 (EPSG:4326) longitude/latitude, GeoJSON order, like every geometry of
the domain; a CAP writer turns them into CAP's "lat,lon" pairs. Values check themselves when
built, so a content that exists is a content that may be issued as far as its own fields go
(whether its area lies in the city is asked of the city's map by the application).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

import shapely

from cityops.domain.errors import InvalidValue
from cityops.domain.geometry import WGS84, Area, GeoPoint
from cityops.domain.model import checked_text
from cityops.domain.values import checked_instant, checked_number, parse_enum

MAX_HEADLINE = 160
"""CAP recommends a headline short enough for a text message (about 160 characters)."""
MAX_CIRCLE_RADIUS_KM = 100.0
"""No city warning needs a larger circle; a bigger number is a unit mistake (metres)."""
MAX_AREA_PARTS = 50
"""Polygons plus circles of one warning area, at most."""
MAX_RING_POSITIONS = 2_000
"""Positions of one polygon ring, at most (a CAP receiver sends it as one text element)."""
LANGUAGES = ("zh-CN", "en-US")
"""The languages every warning is written in (one CAP `info` block each, in this order),
as RFC 3066 tags."""


class MessageType(StrEnum):
    """What a notice does to the warning (CAP `msgType`)."""

    ALERT = "alert"
    UPDATE = "update"
    CANCEL = "cancel"

    @property
    def cap(self) -> str:
        return self.value.capitalize()


class AlertStatus(StrEnum):
    """Whether the warning is real or an exercise of a drill (CAP `status`)."""

    ACTUAL = "actual"
    EXERCISE = "exercise"

    @property
    def cap(self) -> str:
        return self.value.capitalize()


class Scope(StrEnum):
    """Who the warning is for (CAP `scope`): everyone, or named agencies only."""

    PUBLIC = "public"
    RESTRICTED = "restricted"

    @property
    def cap(self) -> str:
        return self.value.capitalize()


class Urgency(StrEnum):
    """How soon people must act (CAP `urgency`)."""

    IMMEDIATE = "immediate"
    EXPECTED = "expected"
    FUTURE = "future"
    PAST = "past"
    UNKNOWN = "unknown"

    @property
    def cap(self) -> str:
        return self.value.capitalize()


class Certainty(StrEnum):
    """How sure the centre is that it happens (CAP `certainty`)."""

    OBSERVED = "observed"
    LIKELY = "likely"
    POSSIBLE = "possible"
    UNLIKELY = "unlikely"
    UNKNOWN = "unknown"

    @property
    def cap(self) -> str:
        return self.value.capitalize()


class LevelKind(StrEnum):
    """A warning's level is a warning colour (before an event) or an incident level."""

    COLOUR = "colour"
    """red, orange, yellow, blue: the early-warning levels."""
    INCIDENT_LEVEL = "incident-level"
    """I, II, III, IV: the severity of an incident under way."""


class AdminLevel(StrEnum):
    """The administrative areas a warning area names (the unit grid's hierarchy above the
    cell)."""

    DISTRICT = "district"
    STREET = "street"
    COMMUNITY = "community"


class OriginKind(StrEnum):
    """What a warning was drafted from."""

    INCIDENT = "incident"
    HAZARD_ALARM = "hazard-alarm"
    NONE = "none"
    """Drafted from scratch."""


@dataclass(frozen=True, slots=True)
class WarningLevel:
    """A warning's level: its code (red/orange/yellow/blue or I/II/III/IV), which of the two
    scales it is on, and its rank on that scale (1 the most severe: red, I)."""

    code: str
    kind: LevelKind
    rank: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "code", checked_text("warning level", self.code, limit=20))
        object.__setattr__(self, "kind", parse_enum(LevelKind, self.kind, "level kind"))
        if isinstance(self.rank, bool) or not isinstance(self.rank, int) \
                or not 1 <= self.rank <= 4:
            raise InvalidValue(f"warning level rank must be 1..4, got {self.rank!r}")

    def as_fact(self) -> dict[str, Any]:
        return {"code": self.code, "kind": self.kind.value, "rank": self.rank}

    @classmethod
    def from_fact(cls, fact: Mapping[str, Any]) -> WarningLevel:
        return cls(code=fact["code"], kind=LevelKind(fact["kind"]), rank=fact["rank"])


@dataclass(frozen=True, slots=True)
class WarningText:
    """The words of a warning in one language (one CAP `info` block)."""

    language: str
    headline: str
    description: str
    instruction: str
    event: str = ""
    """The event named in this language ("Gas leak", "燃气泄漏"); empty: the event type."""

    def __post_init__(self) -> None:
        if self.language not in LANGUAGES:
            raise InvalidValue(f"unknown warning language {self.language!r}; languages are "
                               f"{', '.join(LANGUAGES)}")
        object.__setattr__(self, "headline", checked_text(
            f"headline ({self.language})", self.headline, limit=MAX_HEADLINE))
        object.__setattr__(self, "description", checked_text(
            f"description ({self.language})", self.description))
        object.__setattr__(self, "instruction", checked_text(
            f"instruction ({self.language})", self.instruction))
        object.__setattr__(self, "event", checked_text(
            f"event ({self.language})", self.event, required=False, limit=200))

    def as_fact(self) -> dict[str, Any]:
        return {"language": self.language, "headline": self.headline,
                "description": self.description, "instruction": self.instruction,
                "event": self.event}

    @classmethod
    def from_fact(cls, fact: Mapping[str, Any]) -> WarningText:
        return cls(language=fact["language"], headline=fact["headline"],
                   description=fact["description"], instruction=fact["instruction"],
                   event=fact.get("event", ""))


@dataclass(frozen=True, slots=True)
class WarningCircle:
    """A circle of a warning area: a centre and a radius in kilometres (CAP `circle`)."""

    centre: GeoPoint
    radius_km: float

    def __post_init__(self) -> None:
        if not isinstance(self.centre, GeoPoint):
            raise InvalidValue("a warning circle's centre must be a point")
        radius = checked_number("circle radius (km)", self.radius_km, minimum=0.0,
                                maximum=MAX_CIRCLE_RADIUS_KM)
        if radius <= 0:
            raise InvalidValue("a warning circle's radius must be more than 0 km")
        object.__setattr__(self, "radius_km", radius)

    def as_fact(self) -> dict[str, Any]:
        return {"centre": [self.centre.lon, self.centre.lat], "radius_km": self.radius_km}

    @classmethod
    def from_fact(cls, fact: Mapping[str, Any]) -> WarningCircle:
        lon, lat = fact["centre"]
        return cls(centre=GeoPoint(lon=lon, lat=lat), radius_km=fact["radius_km"])

    def to_geojson(self) -> dict[str, Any]:
        """The circle as a GeoJSON point with its radius (GeoJSON has no circles)."""
        return {"type": "Point", "coordinates": [self.centre.lon, self.centre.lat],
                "radius_km": self.radius_km}


@dataclass(frozen=True, slots=True)
class AdminAreaRef:
    """A district, street or community of the unit grid that a warning area touches."""

    level: AdminLevel
    code: str
    name: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "level", parse_enum(AdminLevel, self.level, "area level"))
        object.__setattr__(self, "code", checked_text("area code", self.code, limit=64))
        object.__setattr__(self, "name", checked_text("area name", self.name, limit=200))

    def as_fact(self) -> dict[str, Any]:
        return {"level": self.level.value, "code": self.code, "name": self.name}

    @classmethod
    def from_fact(cls, fact: Mapping[str, Any]) -> AdminAreaRef:
        return cls(level=AdminLevel(fact["level"]), code=fact["code"], name=fact["name"])


CIRCLE_SEGMENTS = 64
MEAN_EARTH_RADIUS_KM = 6371.0088


def circle_polygon(circle: WarningCircle, segments: int = CIRCLE_SEGMENTS) -> shapely.Polygon:
    """A circle as a polygon of points at its radius from its centre on the sphere (the
    destination-point formula), in WGS84."""
    lat1, lon1 = math.radians(circle.centre.lat), math.radians(circle.centre.lon)
    angle = circle.radius_km / MEAN_EARTH_RADIUS_KM
    ring = []
    for k in range(segments):
        bearing = 2 * math.pi * k / segments
        lat2 = math.asin(math.sin(lat1) * math.cos(angle)
                         + math.cos(lat1) * math.sin(angle) * math.cos(bearing))
        lon2 = lon1 + math.atan2(math.sin(bearing) * math.sin(angle) * math.cos(lat1),
                                 math.cos(angle) - math.sin(lat1) * math.sin(lat2))
        ring.append((math.degrees(lon2), math.degrees(lat2)))
    return shapely.Polygon(ring)


def warning_polygon(area: Area) -> Area:
    """A polygon of a warning area: one closed outer ring, no holes (CAP's `polygon` has
    none), at most `MAX_RING_POSITIONS` positions."""
    if not isinstance(area, Area):
        raise InvalidValue("a warning polygon must be an area")
    shape = area.shape
    if shape.geom_type != "Polygon":
        raise InvalidValue(f"a warning polygon must be one Polygon, got {shape.geom_type} "
                           "(give each part as its own polygon)")
    if len(shape.interiors):
        raise InvalidValue("a warning polygon cannot have holes (CAP polygons are one ring)")
    if len(shape.exterior.coords) > MAX_RING_POSITIONS:
        raise InvalidValue(f"a warning polygon has at most {MAX_RING_POSITIONS} positions")
    return area


def polygons_of(area: Area) -> tuple[Area, ...]:
    """An area (an incident's affected area, a hazard source's zone) as warning polygons:
    each part of a MultiPolygon, holes dropped (a warning covers them too: whoever is in a
    hole of a zone is surrounded by the hazard)."""
    shape = area.shape
    parts = list(shape.geoms) if shape.geom_type == "MultiPolygon" else [shape]
    return tuple(warning_polygon(Area(wkt=shapely.Polygon(p.exterior.coords).wkt))
                 for p in parts)


@dataclass(frozen=True, slots=True)
class WarningArea:
    """Where a warning applies: polygons and/or circles (at least one), the administrative
    areas they touch, and a description of the area for people (CAP `areaDesc`)."""

    description: str
    polygons: tuple[Area, ...] = ()
    circles: tuple[WarningCircle, ...] = ()
    admin_areas: tuple[AdminAreaRef, ...] = ()
    crs: str = WGS84

    def __post_init__(self) -> None:
        if self.crs != WGS84:
            raise InvalidValue(f"a warning area's CRS must be {WGS84}, got {self.crs!r}")
        object.__setattr__(self, "description", checked_text(
            "area description", self.description, limit=500))
        object.__setattr__(self, "polygons", tuple(warning_polygon(p) for p in self.polygons))
        object.__setattr__(self, "circles", tuple(self.circles))
        object.__setattr__(self, "admin_areas", tuple(self.admin_areas))
        if not self.polygons and not self.circles:
            raise InvalidValue("a warning needs an area: at least one polygon or circle")
        if len(self.polygons) + len(self.circles) > MAX_AREA_PARTS:
            raise InvalidValue(f"a warning area has at most {MAX_AREA_PARTS} polygons and "
                               "circles")
        for circle in self.circles:
            if not isinstance(circle, WarningCircle):
                raise InvalidValue("each circle of a warning area must be a WarningCircle")
        codes = [a.code for a in self.admin_areas]
        if len(set(codes)) != len(codes):
            raise InvalidValue("a warning area lists the same administrative area twice")

    def rings(self) -> tuple[tuple[tuple[float, float], ...], ...]:
        """Each polygon's outer ring as closed (lon, lat) positions, first == last."""
        rings = []
        for polygon in self.polygons:
            coords = tuple((float(x), float(y)) for x, y, *_ in polygon.shape.exterior.coords)
            rings.append(coords)
        return tuple(rings)

    def outline(self) -> Area:
        """The whole area as one polygonal area (circles as 64-sided polygons drawn on the
        sphere): for maps and spatial queries, never for the CAP document, which carries
        the circles as circles."""
        parts = [p.shape for p in self.polygons] + [circle_polygon(c) for c in self.circles]
        shape = shapely.union_all(parts)
        if shape.geom_type not in ("Polygon", "MultiPolygon"):
            shape = shapely.MultiPolygon([g for g in getattr(shape, "geoms", [])
                                          if g.geom_type == "Polygon"])
        return Area(wkt=shape.wkt)

    def with_admin_areas(self, admin_areas: Iterable[AdminAreaRef]) -> WarningArea:
        """The same area naming these administrative areas."""
        return WarningArea(description=self.description, polygons=self.polygons,
                           circles=self.circles, admin_areas=tuple(admin_areas))

    def as_fact(self) -> dict[str, Any]:
        return {"description": self.description,
                "polygons": [p.wkt for p in self.polygons],
                "circles": [c.as_fact() for c in self.circles],
                "admin_areas": [a.as_fact() for a in self.admin_areas],
                "crs": self.crs}

    @classmethod
    def from_fact(cls, fact: Mapping[str, Any]) -> WarningArea:
        return cls(description=fact["description"],
                   polygons=tuple(Area(wkt=w) for w in fact["polygons"]),
                   circles=tuple(WarningCircle.from_fact(c) for c in fact["circles"]),
                   admin_areas=tuple(AdminAreaRef.from_fact(a) for a in fact["admin_areas"]),
                   crs=fact.get("crs", WGS84))

    def to_geojson(self) -> dict[str, Any]:
        """The area as a GeoJSON GeometryCollection (circles as points with `radius_km`)."""
        return {"type": "GeometryCollection",
                "geometries": [p.to_geojson() for p in self.polygons]
                + [c.to_geojson() for c in self.circles]}


@dataclass(frozen=True, slots=True)
class WarningOrigin:
    """What a warning was drafted from: an incident, a hazard source's alarm, or nothing."""

    kind: OriginKind = OriginKind.NONE
    incident_id: UUID | None = None
    hazard_source_id: UUID | None = None
    alarm_id: UUID | None = None
    title: str = ""
    """The incident's title or the hazard source's name, as it was when drafted."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", parse_enum(OriginKind, self.kind, "origin"))
        if self.kind is OriginKind.INCIDENT and self.incident_id is None:
            raise InvalidValue("a warning from an incident names the incident")
        if self.kind is OriginKind.HAZARD_ALARM and (self.hazard_source_id is None
                                                     or self.alarm_id is None):
            raise InvalidValue("a warning from a hazard alarm names the source and the alarm")

    def as_fact(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "incident_id": self.incident_id,
                "hazard_source_id": self.hazard_source_id, "alarm_id": self.alarm_id,
                "title": self.title}

    @classmethod
    def from_fact(cls, fact: Mapping[str, Any]) -> WarningOrigin:
        return cls(kind=OriginKind(fact["kind"]), incident_id=_uuid(fact["incident_id"]),
                   hazard_source_id=_uuid(fact["hazard_source_id"]),
                   alarm_id=_uuid(fact["alarm_id"]), title=fact["title"])


def _uuid(value: object) -> UUID | None:
    if value is None or isinstance(value, UUID):
        return value
    return UUID(str(value))


@dataclass(frozen=True, slots=True)
class WarningContent:
    """Everything a warning says: what, how bad, how urgent and sure, to whom and where, from
    when until when, in each language (`LANGUAGES`, every one required)."""

    category: str
    """Incident category code of the catalogue (natural-disaster, accident-disaster...)."""
    event_type: str
    """Incident type code of the catalogue (gas-leak, flood...)."""
    level: WarningLevel
    urgency: Urgency
    certainty: Certainty
    texts: tuple[WarningText, ...]
    area: WarningArea
    onset: datetime
    expires: datetime
    contact: str
    scope: Scope = Scope.PUBLIC
    restriction: str = ""
    """Who may receive a restricted warning (CAP `restriction`); empty for a public one."""
    origin: WarningOrigin = field(default_factory=WarningOrigin)

    def __post_init__(self) -> None:
        object.__setattr__(self, "category", checked_text("category", self.category, limit=64))
        object.__setattr__(self, "event_type", checked_text("event type", self.event_type,
                                                            limit=64))
        if not isinstance(self.level, WarningLevel):
            raise InvalidValue("a warning's level must be a WarningLevel")
        object.__setattr__(self, "urgency",
                           parse_enum(Urgency, self.urgency, "urgency", "urgencies"))
        object.__setattr__(self, "certainty", parse_enum(Certainty, self.certainty, "certainty",
                                                          "certainties"))
        object.__setattr__(self, "scope", parse_enum(Scope, self.scope, "scope"))
        texts = tuple(self.texts)
        given = [t.language for t in texts]
        missing = [lang for lang in LANGUAGES if lang not in given]
        if missing:
            raise InvalidValue(f"a warning is written in {', '.join(LANGUAGES)}: the text in "
                               f"{', '.join(missing)} is missing")
        if len(set(given)) != len(given):
            raise InvalidValue("a warning has one text per language")
        # Stored in the order of LANGUAGES, so that equal content is an equal fact.
        object.__setattr__(self, "texts", tuple(sorted(texts, key=lambda t:
                                                       LANGUAGES.index(t.language))))
        if not isinstance(self.area, WarningArea):
            raise InvalidValue("a warning needs an area")
        checked_instant("onset", self.onset)
        checked_instant("expiry", self.expires)
        if self.expires <= self.onset:
            raise InvalidValue(f"expiry {self.expires.isoformat()} is not after onset "
                               f"{self.onset.isoformat()}")
        object.__setattr__(self, "contact", checked_text("contact", self.contact, limit=200))
        object.__setattr__(self, "restriction", checked_text(
            "restriction", self.restriction, required=self.scope is Scope.RESTRICTED,
            limit=500))
        if self.scope is Scope.PUBLIC and self.restriction:
            raise InvalidValue("a public warning has no restriction (that is for a "
                               "restricted one)")
        if not isinstance(self.origin, WarningOrigin):
            raise InvalidValue("a warning's origin must be a WarningOrigin")

    def text(self, language: str) -> WarningText:
        for text in self.texts:
            if text.language == language:
                return text
        raise InvalidValue(f"no text in {language!r}")

    @property
    def headline(self) -> str:
        """The headline in the first language (for lists and logs)."""
        return self.texts[0].headline

    def as_fact(self) -> dict[str, Any]:
        return {"category": self.category, "event_type": self.event_type,
                "level": self.level.as_fact(), "urgency": self.urgency.value,
                "certainty": self.certainty.value, "texts": [t.as_fact() for t in self.texts],
                "area": self.area.as_fact(), "onset": self.onset, "expires": self.expires,
                "contact": self.contact, "scope": self.scope.value,
                "restriction": self.restriction, "origin": self.origin.as_fact()}

    @classmethod
    def from_fact(cls, fact: Mapping[str, Any]) -> WarningContent:
        return cls(category=fact["category"], event_type=fact["event_type"],
                   level=WarningLevel.from_fact(fact["level"]),
                   urgency=Urgency(fact["urgency"]), certainty=Certainty(fact["certainty"]),
                   texts=tuple(WarningText.from_fact(t) for t in fact["texts"]),
                   area=WarningArea.from_fact(fact["area"]), onset=fact["onset"],
                   expires=fact["expires"], contact=fact["contact"],
                   scope=Scope(fact["scope"]), restriction=fact["restriction"],
                   origin=WarningOrigin.from_fact(fact["origin"]))

    def summary(self) -> dict[str, Any]:
        """The content as JSON-ready data (API answers, read models)."""
        return {
            "category": self.category, "event_type": self.event_type,
            "level": self.level.code, "level_kind": self.level.kind.value,
            "level_rank": self.level.rank, "urgency": self.urgency.value,
            "certainty": self.certainty.value,
            "texts": [t.as_fact() for t in self.texts],
            "onset": self.onset.isoformat(), "expires": self.expires.isoformat(),
            "contact": self.contact, "scope": self.scope.value,
            "restriction": self.restriction,
            "area": {"description": self.area.description,
                     "geometry": self.area.to_geojson(),
                     "polygons": [p.to_geojson() for p in self.area.polygons],
                     "circles": [c.as_fact() for c in self.area.circles],
                     "admin_areas": [a.as_fact() for a in self.area.admin_areas],
                     "crs": self.area.crs},
            "origin": {k: (str(v) if isinstance(v, UUID) else v)
                       for k, v in self.origin.as_fact().items()},
        }


@dataclass(frozen=True, slots=True)
class NoticeReference:
    """An earlier message a notice replaces, as CAP's `references` names it: sender,
    identifier and sent time."""

    sender: str
    identifier: str
    sent: datetime

    def as_fact(self) -> dict[str, Any]:
        return {"sender": self.sender, "identifier": self.identifier, "sent": self.sent}

    @classmethod
    def from_fact(cls, fact: Mapping[str, Any]) -> NoticeReference:
        return cls(sender=fact["sender"], identifier=fact["identifier"], sent=fact["sent"])


@dataclass(frozen=True, slots=True)
class WarningNotice:
    """One message the warning desk sends out: the first alert of a warning, an update or
    its cancellation, with everything a CAP 1.2 `alert` document is made of.

    `identifier` is unique per message (`<warning id>.<sequence>` under the sender's
    prefix); `references` lists every earlier message of the same warning, oldest first
    (CAP practice: an update or cancellation references all that it replaces); `content` is
    what the message says (for a cancellation, the last content issued, with the reason in
    `note`). `status` is `exercise` for a warning of a drill (`drill_id`), which never
    leaves that drill.
    """

    warning_id: UUID
    identifier: str
    sequence: int
    msg_type: MessageType
    sent: datetime
    sender: str
    sender_name: str
    status: AlertStatus
    content: WarningContent
    references: tuple[NoticeReference, ...] = ()
    note: str = ""
    drill_id: str | None = None
    issued_by: str = ""
    """User id of who sent this message out."""
    approved_by: str | None = None
    """User id of who approved this content (None for a cancellation)."""

    def __post_init__(self) -> None:
        if self.msg_type is not MessageType.ALERT and not self.references:
            raise InvalidValue(f"an {self.msg_type.value} notice references what it replaces")
        if self.msg_type is MessageType.ALERT and self.references:
            raise InvalidValue("a first alert replaces nothing")
        if (self.status is AlertStatus.EXERCISE) != (self.drill_id is not None):
            raise InvalidValue("an exercise notice belongs to a drill, an actual one does not")

    @property
    def scope(self) -> Scope:
        return self.content.scope

    @property
    def is_exercise(self) -> bool:
        return self.status is AlertStatus.EXERCISE

    @property
    def reference(self) -> NoticeReference:
        """How a later message names this one."""
        return NoticeReference(sender=self.sender, identifier=self.identifier, sent=self.sent)

    def as_fact(self) -> dict[str, Any]:
        return {"warning_id": self.warning_id, "identifier": self.identifier,
                "sequence": self.sequence, "msg_type": self.msg_type.value,
                "sent": self.sent, "sender": self.sender, "sender_name": self.sender_name,
                "status": self.status.value, "content": self.content.as_fact(),
                "references": [r.as_fact() for r in self.references], "note": self.note,
                "drill_id": self.drill_id, "issued_by": self.issued_by,
                "approved_by": self.approved_by}

    @classmethod
    def from_fact(cls, fact: Mapping[str, Any]) -> WarningNotice:
        warning_id = _uuid(fact["warning_id"])
        assert warning_id is not None
        return cls(warning_id=warning_id, identifier=fact["identifier"],
                   sequence=fact["sequence"], msg_type=MessageType(fact["msg_type"]),
                   sent=fact["sent"], sender=fact["sender"], sender_name=fact["sender_name"],
                   status=AlertStatus(fact["status"]),
                   content=WarningContent.from_fact(fact["content"]),
                   references=tuple(NoticeReference.from_fact(r) for r in fact["references"]),
                   note=fact["note"], drill_id=fact["drill_id"], issued_by=fact["issued_by"],
                   approved_by=fact["approved_by"])

    def summary(self) -> dict[str, Any]:
        """The notice as JSON-ready data."""
        return {"warning_id": str(self.warning_id), "identifier": self.identifier,
                "sequence": self.sequence, "msg_type": self.msg_type.value,
                "sent": self.sent.isoformat(), "sender": self.sender,
                "sender_name": self.sender_name, "status": self.status.value,
                "references": [{"sender": r.sender, "identifier": r.identifier,
                                "sent": r.sent.isoformat()} for r in self.references],
                "note": self.note, "drill_id": self.drill_id, "issued_by": self.issued_by,
                "approved_by": self.approved_by, "content": self.content.summary()}


def notice_identifier(prefix: str, warning_id: UUID, sequence: int) -> str:
    """The CAP identifier of a warning's `sequence`th message: no spaces, commas, `<` or `&`
    (CAP's restricted characters), unique per message."""
    return f"{prefix}.{warning_id}.{sequence}"

