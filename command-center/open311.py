"""Open311 GeoReport v2 as CityOps speaks it: which matters citizens' apps may report (the
service list, drawn from the catalogue), each service's definition and the validation of its
attributes, how a grid case or a hotline ticket reads as a service request, and the spec's
XML and JSON (errors included).

Services, by the domain brief's rule "one number takes it, one network handles it":
- every grid-case category is a service whose requests enter the grid intake as a case
  reported through the hotline's channels (source `hotline`); the centre's registration step
  (register, or reject as duplicate / not city management / not reproducible) is the triage,
  exactly as for a report by phone. Left out: a category that a hotline topic marks as an
  emergency (waterlogging): that must reach a person at once, by phone, not a queue;
- every hotline topic that is neither an emergency (gas smell, fire, traffic accident: call
  the emergency numbers) nor a city-management matter (those are offered as their precise
  grid-case category instead, so the same matter is not offered twice) is a service whose
  requests become hotline tickets.
"""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, tzinfo
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from cityops.domain.catalogue import Catalogue, Urgency
from cityops.domain.geometry import GeoPoint
from cityops.domain.gridcases.case import CaseStatus, RejectionReason
from cityops.domain.hotline.ticket import TicketStatus, TicketType
from cityops.domain.sharing import SharingPolicy, Viewer
from cityops.domain.values import checked_instant

OPEN311_USER_PREFIX = "open311:"
"""Every request from an Open311 client is acted by `open311:<client name>` (role system)."""

COMMAND_CENTRE = "command-centre"
HOTLINE_DESK = "hotline"
"""The departments (codes of departments.json) that take requests before a department is
responsible: the supervision centre for cases, the citizen hotline for tickets."""

MAX_DESCRIPTION = 4000
"""The spec: free text limited to 4,000 characters."""
MAX_ADDRESS = 300
MAX_MEDIA_URL = 500
MAX_NAME = 100
MAX_IDENTIFIER = 200
MAX_REQUESTS = 1000
"""The spec's largest answer to GET requests; the newest come first."""
DEFAULT_WINDOW_DAYS = 90
"""GET requests looks at the last 90 days by default, and a date range may not be longer."""

ADDRESS_LINE = "Address given: "
PHOTO_LINE = "Photo: "
"""A hotline ticket has no address or media field: what the client sent is kept as labelled
lines at the end of the ticket's description, where the operator reads it, and read back from
there for GET."""

EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class Format(StrEnum):
    """The two formats of the spec (XML is the one it requires)."""

    JSON = "json"
    XML = "xml"

    @property
    def media_type(self) -> str:
        return "application/json; charset=utf-8" if self is Format.JSON \
            else "text/xml; charset=utf-8"


class Intake(StrEnum):
    """Where a service's requests enter CityOps."""

    GRID = "grid"
    """A grid case (reported, then registered or rejected by the centre)."""
    HOTLINE = "hotline"
    """A hotline ticket (routed by the hotline to a department, which replies)."""


class Datatype(StrEnum):
    STRING = "string"
    NUMBER = "number"
    DATETIME = "datetime"
    TEXT = "text"
    SINGLEVALUELIST = "singlevaluelist"
    MULTIVALUELIST = "multivaluelist"


class Open311Error(Exception):
    """A request refused the spec's way: an HTTP status and the list of what is wrong (each
    one an `<error>` with the status as its code)."""

    def __init__(self, status: int, *descriptions: str) -> None:
        super().__init__("; ".join(descriptions))
        self.status = status
        self.descriptions = descriptions or ("error",)

    def as_list(self) -> list[dict[str, Any]]:
        return [{"code": self.status, "description": d} for d in self.descriptions]


@dataclass(frozen=True)
class AttributeValue:
    """One option of a single- or multi-value list."""

    key: str
    name: str


@dataclass(frozen=True)
class Attribute:
    """One question of a service definition."""

    code: str
    datatype: Datatype
    description: str
    order: int
    required: bool = False
    variable: bool = True
    """False: information shown to the user, not a question."""
    datatype_description: str | None = None
    values: tuple[AttributeValue, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "variable": self.variable, "code": self.code, "datatype": self.datatype.value,
            "required": self.required, "datatype_description": self.datatype_description,
            "order": self.order, "description": self.description,
        }
        if self.datatype in (Datatype.SINGLEVALUELIST, Datatype.MULTIVALUELIST):
            body["values"] = [{"key": v.key, "name": v.name} for v in self.values]
        return body

    def parse(self, raw: Sequence[str]) -> Any:
        """The answer given as form values, checked against the datatype; raises ValueError
        with what is wrong."""
        values = [v.strip() for v in raw if v.strip()]
        if self.datatype is Datatype.MULTIVALUELIST:
            keys = [k.strip() for v in values for k in v.split(",") if k.strip()] \
                if len(values) == 1 else values
            self._check_keys(keys)
            return sorted(set(keys))
        if len(values) > 1:
            raise ValueError(f"attribute {self.code} takes one value, not {len(values)}")
        value = values[0]
        if self.datatype is Datatype.SINGLEVALUELIST:
            self._check_keys([value])
            return value
        if self.datatype is Datatype.NUMBER:
            try:
                number = float(value)
            except ValueError:
                raise ValueError(f"attribute {self.code} must be a number, not {value!r}") \
                    from None
            if not math.isfinite(number):
                raise ValueError(f"attribute {self.code} must be a finite number")
            return number
        if self.datatype is Datatype.DATETIME:
            return parse_w3c_datetime(value, f"attribute {self.code}").isoformat()
        if self.datatype is Datatype.STRING and ("\n" in value or "\r" in value):
            raise ValueError(f"attribute {self.code} is one line of text (no line breaks)")
        if len(value) > MAX_DESCRIPTION:
            raise ValueError(f"attribute {self.code} is longer than {MAX_DESCRIPTION} "
                             "characters")
        return value

    def _check_keys(self, keys: Sequence[str]) -> None:
        known = [v.key for v in self.values]
        unknown = [k for k in keys if k not in known]
        if unknown:
            raise ValueError(f"attribute {self.code}: {', '.join(map(repr, unknown))} is not "
                             f"one of {', '.join(known)}")


@dataclass(frozen=True)
class Service:
    """One service of the list, with its definition and where its requests go."""

    code: str
    name: str
    description: str
    group: str
    keywords: tuple[str, ...]
    intake: Intake
    department: str
    notice: str
    """What the city will do with a request (the spec's `service_notice`)."""
    attributes: tuple[Attribute, ...] = field(default=())

    @property
    def metadata(self) -> bool:
        """Whether the client must read the definition: it has questions to ask."""
        return any(a.variable for a in self.attributes)

    def as_dict(self) -> dict[str, Any]:
        return {"service_code": self.code, "service_name": self.name,
                "description": self.description, "metadata": self.metadata,
                "type": "realtime", "keywords": ", ".join(self.keywords), "group": self.group}

    def definition(self) -> dict[str, Any]:
        return {"service_code": self.code,
                "attributes": [a.as_dict() for a in sorted(self.attributes,
                                                            key=lambda a: a.order)]}

    def attribute_answers(self, given: Mapping[str, Sequence[str]]) -> dict[str, Any]:
        """The attributes a request answered, checked against the definition; every problem
        is reported at once (400)."""
        by_code = {a.code: a for a in self.attributes}
        problems: list[str] = []
        answers: dict[str, Any] = {}
        for code in given:
            attribute = by_code.get(code)
            if attribute is None:
                known = ", ".join(a.code for a in self.attributes if a.variable) or "none"
                problems.append(f"service {self.code} has no attribute {code!r} "
                                f"(its attributes: {known})")
            elif not attribute.variable:
                problems.append(f"attribute {code} of service {self.code} is information "
                                "for the user, not a question")
        for attribute in self.attributes:
            raw = [v for v in given.get(attribute.code, ()) if v.strip()]
            if not attribute.variable or attribute.code not in given:
                if attribute.required and attribute.variable:
                    problems.append(f"attribute {attribute.code} is required for service "
                                    f"{self.code}: {attribute.description}")
                continue
            if not raw:
                if attribute.required:
                    problems.append(f"attribute {attribute.code} is required for service "
                                    f"{self.code} and was empty")
                continue
            try:
                answers[attribute.code] = attribute.parse(raw)
            except ValueError as error:
                problems.append(str(error))
        if problems:
            raise Open311Error(400, *problems)
        return answers


NOT_AN_EMERGENCY = Attribute(
    code="not_an_emergency", datatype=Datatype.TEXT, order=1, variable=False,
    description="This is not an emergency channel: for a fire, a smell of gas, a traffic "
    "accident or danger to life call 119, 110, 122 or 120 now.",
)


def _urgency_attribute(catalogue: Catalogue, category_code: str) -> Attribute:
    category = catalogue.case_category(category_code)
    normal = category.time_limit(Urgency.NORMAL).describe()
    urgent = category.time_limit(Urgency.URGENT).describe()
    return Attribute(
        code="urgency", datatype=Datatype.SINGLEVALUELIST, order=2, required=False,
        description="How urgent is it? Urgent only if it endangers people or blocks traffic "
        "now; the command centre checks it when it registers the report (default: normal).",
        datatype_description="normal or urgent",
        values=(AttributeValue(Urgency.NORMAL.value, f"Normal (handled within {normal})"),
                AttributeValue(Urgency.URGENT.value,
                               f"Urgent: a danger now (handled within {urgent})")),
    )


REQUEST_TYPE_NAMES = {
    TicketType.CONSULTATION: "A question",
    TicketType.REQUEST_FOR_HELP: "A request for help",
    TicketType.COMPLAINT: "A complaint",
    TicketType.REPORT: "A report (tip-off)",
    TicketType.SUGGESTION: "A suggestion",
    TicketType.PRAISE: "Praise",
}

REQUEST_TYPE = Attribute(
    code="request_type", datatype=Datatype.SINGLEVALUELIST, order=2, required=True,
    description="What kind of message is it? The hotline routes and answers it accordingly.",
    values=tuple(AttributeValue(t.value, REQUEST_TYPE_NAMES[t]) for t in TicketType),
)


def _department_name(catalogue: Catalogue, code: str | None) -> str | None:
    if code is None:
        return None
    found = catalogue.departments.get(code)
    return found.name if found else code


class ServiceList:
    """The services this city offers to Open311 clients, derived from its catalogue (so a
    catalogue change changes the list; nothing here names a category)."""

    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue
        centre = _department_name(catalogue, COMMAND_CENTRE) or "the command centre"
        hotline = _department_name(catalogue, HOTLINE_DESK) or "the citizen hotline"
        topics_by_category: dict[str, list[str]] = {}
        emergency_categories: set[str] = set()
        for topic in catalogue.hotline_topics.values():
            if topic.case_category is not None:
                topics_by_category.setdefault(topic.case_category, []).append(topic.name)
                if topic.emergency:
                    emergency_categories.add(topic.case_category)
        services: list[Service] = []
        for category in catalogue.case_categories.values():
            if category.code in emergency_categories:
                continue
            department = _department_name(catalogue, category.department) or ""
            normal = category.time_limit(Urgency.NORMAL).describe()
            urgent = category.time_limit(Urgency.URGENT).describe()
            kind = ("a fixed city asset" if category.case_class.value == "component"
                    else "something happening in the street")
            services.append(Service(
                code=category.code, name=category.name,
                description=f"{category.name}: {kind} ({category.major_name}), "
                f"handled by the {department}.",
                group=category.major_name,
                keywords=tuple(dict.fromkeys([
                    category.name.lower(), *(n.lower() for n in
                                             topics_by_category.get(category.code, [])),
                    category.major_name.lower(), category.case_class.value])),
                intake=Intake.GRID, department=category.department,
                notice=f"The {centre} registers the report and dispatches it to the "
                f"{department}, which must handle it within {normal} (urgent: {urgent}).",
                attributes=(NOT_AN_EMERGENCY, _urgency_attribute(catalogue, category.code)),
            ))
        for topic in catalogue.hotline_topics.values():
            if topic.emergency or topic.case_category is not None:
                continue
            department = _department_name(catalogue, topic.department) or ""
            services.append(Service(
                code=topic.code, name=topic.name,
                description=f"{topic.name}: a message to the {hotline}, answered by the "
                f"{department}.",
                group="Citizen service hotline",
                keywords=tuple(dict.fromkeys([topic.name.lower(),
                                              topic.code.replace("-", " "),
                                              department.lower()])),
                intake=Intake.HOTLINE, department=topic.department,
                notice=f"The {hotline} passes your message to the {department}, which "
                f"replies within {topic.reply_limit.describe()}.",
                attributes=(NOT_AN_EMERGENCY, REQUEST_TYPE),
            ))
        self.services: dict[str, Service] = {s.code: s for s in services}

    def __iter__(self) -> Iterator[Service]:
        return iter(self.services.values())

    def service(self, code: str | None) -> Service:
        """The service of `code`: 400 when none is given, 404 when it is not offered."""
        if code is None or not code.strip():
            raise Open311Error(400, "service_code was not provided")
        found = self.services.get(code.strip())
        if found is None:
            raise Open311Error(404, f"service_code {code!r} was not found; GET services "
                               "lists the services offered")
        return found

    def codes(self, intake: Intake) -> list[str]:
        return [s.code for s in self.services.values() if s.intake is intake]


# --- input ----------------------------------------------------------------------------------


def parse_w3c_datetime(text: str, label: str, zone: tzinfo | None = None) -> datetime:
    """A W3C date-time with its time zone ("2010-01-01T00:00:00Z", "...+08:00"); a date
    alone is midnight in `zone` (the city's). Raises ValueError saying what is wrong."""
    value = text.strip()
    try:
        if len(value) == 10 and zone is not None:
            return checked_instant(label, datetime.combine(date.fromisoformat(value), time(),
                                                           tzinfo=zone))
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(f"{label} must be a W3C date-time such as 2010-01-01T00:00:00Z, "
                         f"not {text!r}") from None
    if moment.tzinfo is None:
        raise ValueError(f"{label} must include its time zone (Z or +hh:mm): {text!r}")
    return checked_instant(label, moment)  # an InvalidValue is a ValueError


def parse_coordinate(text: str, label: str, limit: float) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{label} must be a number in decimal degrees, not {text!r}") from None
    if not math.isfinite(value) or not -limit <= value <= limit:
        raise ValueError(f"{label} must be within -{limit:g}..{limit:g}, not {text!r}")
    return value


def check_media_url(text: str) -> str:
    value = text.strip()
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"media_url must be an http(s):// address, not {text!r}")
    if len(value) > MAX_MEDIA_URL or any(c.isspace() for c in value):
        raise ValueError(f"media_url must be one address of at most {MAX_MEDIA_URL} "
                         "characters")
    return value


def check_email(text: str) -> str:
    value = text.strip()
    if len(value) > MAX_NAME * 2 or not EMAIL_PATTERN.match(value):
        raise ValueError(f"email {text!r} is not an e-mail address")
    return value


def ticket_text(description: str, address: str | None, media_url: str | None) -> str:
    """A hotline ticket's description: the citizen's text, then what has no field of its
    own on a ticket (the address they typed, the link to their photo)."""
    lines = [description]
    extra = [f"{ADDRESS_LINE}{address}" if address else None,
             f"{PHOTO_LINE}{media_url}" if media_url else None]
    if any(extra):
        lines.append("")
        lines.extend(e for e in extra if e)
    return "\n".join(lines)


def labelled_line(description: str, label: str) -> str | None:
    """The value of a labelled line `ticket_text` added (the last one wins)."""
    found = None
    for line in description.splitlines():
        if line.startswith(label):
            found = line[len(label):].strip() or None
    return found


# --- output ---------------------------------------------------------------------------------


def w3c(moment: datetime | str | None, zone: tzinfo) -> str | None:
    """A time as the spec writes it (W3C, with the city's UTC offset)."""
    if moment is None:
        return None
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment.astimezone(zone).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Place:
    """Where a request is, as the spec's address fields say it."""

    lat: float | None = None
    long: float | None = None
    address: str | None = None
    address_id: str | None = None


def place_of(location: Mapping[str, Any] | None, city_map: Any, city_name: str,
             typed_address: str | None) -> Place:
    """The address of a point: its unit grid cell and the areas around it, from the most
    specific to the most general as the spec asks (the cell code is the address id: the
    grid is the city's addressing system). Without a point, the address the client typed."""
    if not location:
        return Place(address=typed_address)
    lon, lat = location["coordinates"][:2]
    found = city_map.locate(GeoPoint(lon=lon, lat=lat))
    if found is None:
        return Place(lat=lat, long=lon, address=typed_address)
    address = (f"{typed_address} (" if typed_address else "") + \
        f"unit grid cell {found.cell_code}, {found.community_name}, {found.street_name}, " \
        f"{found.district_name}, {city_name}" + (")" if typed_address else "")
    return Place(lat=lat, long=lon, address=address, address_id=found.cell_code)


def _public_media(photos: Sequence[str]) -> str | None:
    """The first photo a client sent as a link. The field's own photos (`photo:<sha256>`)
    are for logged-in users only: an inspector's photo is not published."""
    return next((p for p in photos if urlsplit(p).scheme in ("http", "https")), None)


CASE_NOTES: dict[CaseStatus, str] = {
    CaseStatus.REPORTED: "Received; waiting for the command centre to register it.",
    CaseStatus.REGISTERED: "Registered by the command centre; to be dispatched.",
    CaseStatus.DISPATCHED: "Dispatched to the {department}.",
    CaseStatus.RETURNED: "The department sent it back as not its responsibility; the "
    "command centre is dispatching it again.",
    CaseStatus.SUSPENDED: "Suspended: it needs longer work.",
    CaseStatus.HANDLED: "The {department} reports it fixed; an inspector will check on site.",
    CaseStatus.VERIFIED: "Fixed, and confirmed on site by an inspector.",
    CaseStatus.CLOSED: "Fixed and closed.",
    CaseStatus.REJECTED: "Not accepted.",
}
REJECTION_NOTES: dict[RejectionReason, str] = {
    RejectionReason.DUPLICATE: "Duplicate of request {duplicate_of}.",
    RejectionReason.NOT_CITY_MANAGEMENT: "Not accepted: not a city-management matter.",
    RejectionReason.NOT_REPRODUCIBLE: "Not accepted: an inspector could not find the "
    "problem on site.",
}
TICKET_NOTES: dict[TicketStatus, str] = {
    TicketStatus.RECEIVED: "Received by the hotline; being routed.",
    TicketStatus.ASSIGNED: "Sent to the {department}.",
    TicketStatus.ACCEPTED: "The {department} is working on it.",
    TicketStatus.RETURNED: "Being routed to the responsible department.",
    TicketStatus.REPLIED: "The {department} has replied; the hotline will call you back.",
    TicketStatus.CALLED_BACK: "Replied and called back.",
    TicketStatus.TRANSFERRED: "Handed over to the services that deal with it.",
    TicketStatus.CLOSED: "Closed.",
    TicketStatus.MERGED: "Merged with an earlier request about the same matter.",
}


AWAITED_CASE = frozenset({CaseStatus.DISPATCHED, CaseStatus.SUSPENDED, CaseStatus.HANDLED})
AWAITED_TICKET = frozenset({TicketStatus.ASSIGNED, TicketStatus.ACCEPTED})
"""The states in which a deadline says when the request can be expected to be fulfilled
(the spec's `expected_datetime`): the department's handling or reply deadline."""


@dataclass(frozen=True)
class RequestContext:
    """What turning a case or a ticket into a service request needs from the city."""

    services: ServiceList
    city_map: Any
    city_name: str
    zone: tzinfo
    sharing: SharingPolicy
    """Open311 is public: a request shows only what is shared with everyone."""


def case_as_request(doc: Mapping[str, Any], created: datetime | str, updated: datetime | str,
                    context: RequestContext) -> dict[str, Any]:
    """A grid case (its summary document) as a service request. Nothing of whoever reported
    it is part of a case, so nothing personal can leak."""
    doc = context.sharing.document("grid-cases", doc, Viewer.city_wide())
    catalogue = context.services.catalogue
    service = context.services.services.get(doc["category"])
    status = CaseStatus(doc["status"])
    department = _department_name(catalogue, doc.get("department"))
    if status is CaseStatus.REJECTED and doc.get("rejection_reason"):
        note = REJECTION_NOTES[RejectionReason(doc["rejection_reason"])].format(
            duplicate_of=doc.get("duplicate_of") or "reported earlier")
    else:
        note = CASE_NOTES[status].format(department=department or "department")
        if status is CaseStatus.DISPATCHED and doc.get("rework_count"):
            note = f"Sent back to the {department} for rework after an inspection."
    place = place_of(doc.get("location"), context.city_map, context.city_name,
                     labelled_line(doc.get("description") or "", ADDRESS_LINE))
    category = catalogue.case_categories.get(doc["category"])
    return _request(
        doc=doc, is_open=status not in (CaseStatus.CLOSED, CaseStatus.REJECTED), note=note,
        service_name=service.name if service else (category.name if category else ""),
        agency=department or _department_name(catalogue, COMMAND_CENTRE),
        notice=service.notice if service else None, created=created, updated=updated,
        expected=doc.get("handling_deadline") if status in AWAITED_CASE else None,
        place=place, media_url=_public_media(doc.get("photos") or []), context=context,
        service_code=doc["category"])


def ticket_as_request(doc: Mapping[str, Any], created: datetime | str,
                      updated: datetime | str, context: RequestContext) -> dict[str, Any]:
    """A hotline ticket (its summary document) as a service request: the caller's name and
    phone number, the department's reply and the operator's notes stay inside CityOps."""
    doc = context.sharing.document("hotline", doc, Viewer.city_wide())
    catalogue = context.services.catalogue
    service = context.services.services.get(doc["topic"])
    status = TicketStatus(doc["status"])
    department = _department_name(catalogue, doc.get("department"))
    note = TICKET_NOTES[status].format(department=department or "department")
    if status is TicketStatus.TRANSFERRED and doc.get("case_id"):
        note = f"Handed over as city-management request {doc['case_id']}."
    if status is TicketStatus.CLOSED and doc.get("answer"):
        note = "Answered by the hotline and closed."
    description = doc.get("description") or ""
    place = place_of(doc.get("location"), context.city_map, context.city_name,
                     labelled_line(description, ADDRESS_LINE))
    topic = catalogue.hotline_topics.get(doc["topic"])
    return _request(
        doc=doc, is_open=status not in (TicketStatus.CLOSED, TicketStatus.MERGED), note=note,
        service_name=service.name if service else (topic.name if topic else ""),
        agency=department or _department_name(catalogue, HOTLINE_DESK),
        notice=service.notice if service else None, created=created, updated=updated,
        expected=doc.get("reply_deadline") if status in AWAITED_TICKET else None,
        place=place,
        media_url=labelled_line(description, PHOTO_LINE), context=context,
        service_code=doc["topic"])


def _request(*, doc: Mapping[str, Any], is_open: bool, note: str, service_name: str,
             service_code: str, agency: str | None, notice: str | None,
             created: datetime | str, updated: datetime | str, expected: str | None,
             place: Place, media_url: str | None, context: RequestContext) -> dict[str, Any]:
    zone = context.zone
    return {
        "service_request_id": doc["id"],
        "status": "open" if is_open else "closed",
        "status_notes": note,
        "service_name": service_name,
        "service_code": service_code,
        "description": doc.get("description"),
        "agency_responsible": agency,
        "service_notice": notice,
        "requested_datetime": w3c(created, zone),
        "updated_datetime": w3c(updated, zone),
        "expected_datetime": w3c(expected, zone),
        "address": place.address,
        "address_id": place.address_id,
        "zipcode": None,
        "lat": place.lat,
        "long": place.long,
        "media_url": media_url,
    }


# --- rendering ------------------------------------------------------------------------------

XML_DECLARATION = '<?xml version="1.0" encoding="utf-8"?>\n'
SINGULAR = {"attributes": "attribute", "values": "value", "endpoints": "endpoint",
            "formats": "format"}
"""The element of each item of a nested list, as the spec's examples write them."""


def _xml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return repr(value)
    return str(value)


def _append(parent: ET.Element, tag: str, value: Any) -> None:
    element = ET.SubElement(parent, tag)
    if value is None:
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            _append(element, key, item)
    elif isinstance(value, list | tuple):
        for item in value:
            _append(element, SINGULAR.get(tag, tag.rstrip("s")), item)
    else:
        element.text = _xml_value(value)


def to_xml(root: str, item: str | None, body: Any) -> str:
    """The spec's XML: `root` holding one `item` element per entry of a list, or (item
    None) the fields of one mapping."""
    element = ET.Element(root)
    if item is None:
        for key, value in body.items():
            _append(element, key, value)
    else:
        for entry in body:
            _append(element, item, entry)
    ET.indent(element)
    return XML_DECLARATION + ET.tostring(element, encoding="unicode") + "\n"


def render(fmt: Format, root: str, item: str | None, body: Any) -> str:
    """`body` in the requested format."""
    if fmt is Format.JSON:
        return json.dumps(body, ensure_ascii=False)
    return to_xml(root, item, body)
