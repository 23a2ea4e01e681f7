"""A warning desk's message (`WarningNotice`: an alert, an update or a cancellation) as a CAP
1.2 alert: the mapping of the domain's words to the standard's (docs/cap.md lists it).

- severity from the warning's level: red and I Extreme, orange and II Severe, yellow and III
  Moderate, blue and IV Minor (the rank on either scale: 1 to 4);
- urgency and certainty as the drafter chose them (the content carries CAP's own values);
- CAP categories from the event type, else from the incident category (`CATEGORIES`);
- one `info` block per language of the content (zh-CN, then en-US);
- the area's polygons as closed "lat,lon" rings, circles as "lat,lon radius-km", and the
  districts, streets and communities it touches as geocodes (`CITYOPS-DISTRICT` ...);
- eventCodes `CITYOPS-EVENT` (the event type code) and `CITYOPS-LEVEL` (the level code);
- `incidents`: the warning's id (every message of one warning shares it) and, for a warning
  drafted from an incident, the incident's id;
- a drill's exercise: `status` Exercise and the `code` `CITYOPS-DRILL:<drill id>` (CAP's
  code of special handling), so that the document itself names its drill.
"""

from __future__ import annotations

from cityops.domain.warnings.content import WarningNotice
from cityops.feeds.cap import (
    AlertArea,
    AlertInfo,
    AlertMessage,
    AlertReference,
    Circle,
    Geocode,
    MsgType,
    Scope,
    Status,
    polygon_rings,
)

SEVERITY_BY_RANK = {1: "Extreme", 2: "Severe", 3: "Moderate", 4: "Minor"}
"""A level's rank (1 the most severe, on the colour scale and the incident scale alike)."""

CATEGORIES: dict[str, tuple[str, ...]] = {
    # event types of the incident catalogue
    "flood": ("Met",), "waterlogging": ("Met",), "typhoon": ("Met",), "rainstorm": ("Met",),
    "earthquake": ("Geo",), "landslide": ("Geo",), "geological-hazard": ("Geo",),
    "forest-fire": ("Fire",), "fire": ("Fire",), "traffic-accident": ("Transport",),
    "hazmat-leak": ("CBRNE", "Env"), "explosion": ("CBRNE",),
    "building-collapse": ("Rescue",), "utility-failure": ("Infra",),
    "gas-leak": ("Safety", "Infra"), "dam-failure": ("Infra", "Safety"),
    "epidemic": ("Health",), "food-poisoning": ("Health",),
    "occupational-poisoning": ("Health",), "public-order": ("Security",),
    "mass-gathering": ("Safety",), "attack": ("Security",),
    # incident categories, for an event type not listed above
    "natural-disaster": ("Env",), "accident-disaster": ("Safety",),
    "public-health": ("Health",), "social-security": ("Security",),
}
"""CAP `category` values of the catalogue's event types and incident categories."""

MSG_TYPES = {"alert": MsgType.ALERT, "update": MsgType.UPDATE, "cancel": MsgType.CANCEL}
DRILL_CODE = "CITYOPS-DRILL"
"""The CAP `code` of a drill's alerts: `CITYOPS-DRILL:<drill id>`."""
GEOCODE_NAMES = {"district": "CITYOPS-DISTRICT", "street": "CITYOPS-STREET",
                 "community": "CITYOPS-COMMUNITY"}


def cap_categories(category: str, event_type: str) -> tuple[str, ...]:
    """The CAP categories of a warning (Other when the catalogue has a code not mapped)."""
    return CATEGORIES.get(event_type) or CATEGORIES.get(category) or ("Other",)


def alert_message(notice: WarningNotice, *, web: str | None = None) -> AlertMessage:
    """The CAP alert of one message of the warning desk (`web`: where people read more)."""
    content = notice.content
    area = content.area
    alert_area = AlertArea(
        description=area.description,
        polygons=tuple(ring for polygon in area.polygons for ring in polygon_rings(polygon)),
        circles=tuple(Circle(c.centre, c.radius_km) for c in area.circles),
        geocodes=tuple(Geocode(GEOCODE_NAMES[a.level.value], a.code)
                       for a in area.admin_areas))
    categories = cap_categories(content.category, content.event_type)
    infos = tuple(
        AlertInfo(
            language=text.language, categories=categories,
            event=text.event or content.event_type,
            urgency=content.urgency.cap, severity=SEVERITY_BY_RANK[content.level.rank],
            certainty=content.certainty.cap, headline=text.headline,
            description=text.description, instruction=text.instruction,
            sender_name=notice.sender_name, contact=content.contact, areas=(alert_area,),
            onset=content.onset, expires=content.expires,
            event_codes=(Geocode("CITYOPS-EVENT", content.event_type),
                         Geocode("CITYOPS-LEVEL", content.level.code)),
            web=web)
        for text in content.texts)
    incidents = [str(notice.warning_id)]
    if content.origin.incident_id is not None:
        incidents.append(str(content.origin.incident_id))
    return AlertMessage(
        identifier=notice.identifier, sender=notice.sender, sent=notice.sent,
        status=Status(notice.status.cap), msg_type=MSG_TYPES[notice.msg_type.value],
        scope=Scope(content.scope.cap),
        restriction=content.restriction or None,
        references=tuple(AlertReference(r.sender, r.identifier, r.sent)
                         for r in notice.references),
        note=notice.note or None, incidents=tuple(incidents), infos=infos,
        codes=(f"{DRILL_CODE}:{notice.drill_id}",) if notice.drill_id is not None else ())
