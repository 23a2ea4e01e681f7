"""The warnings as CAP 1.2 alerts: the public endpoints that alert aggregators and national
warning systems poll, and the centre's view of every alert a warning sent.

Public (no login): `/cap/alerts.atom`, an Atom feed of the public alerts in force (one entry
per warning: its latest message; a cancellation stays until the warning's expiry), and
`/cap/alerts/{identifier}.xml`, one alert, at a URL that never changes. Only public alerts of
this system are there: a restricted alert, or a drill's exercise alert, is not found.

Logged in: `/cap/warnings/{warning_id}` lists every alert a warning sent, and
`/cap/warnings/{warning_id}/{sequence}.xml` serves each, restricted ones included where the
sharing catalogue lets the user see them (`restricted-warnings`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Path, Request, Response
from lxml import etree

from cityops.command_center.dependencies import CurrentActor, SystemDep
from cityops.command_center.models.warnings import CapAlertsPublic
from cityops.command_center.routers.subscriptions import FeedsDep
from cityops.command_center.sharing import SharingSource
from cityops.domain.actors import Actor
from cityops.domain.errors import NotFound
from cityops.domain.sharing import Viewer
from cityops.feeds.cap import CAP_MEDIA_TYPE
from cityops.feeds.cap_publishing import StoredAlert
from cityops.feeds.streams import Stream

router = APIRouter(prefix="/cap", tags=["warnings (CAP)"])

ATOM_MEDIA_TYPE = "application/atom+xml"
ATOM_NAMESPACE = "http://www.w3.org/2005/Atom"
DRILL_CATEGORY = "cityops-drill"
"""The Atom category of a drill's feed (labelled with the drill's id)."""
IDENTIFIER = r"^[^\s,<&/]{1,300}$"
CAP_ANSWER: dict[int | str, dict[str, Any]] = {
    200: {"description": "The CAP 1.2 alert document",
          "content": {CAP_MEDIA_TYPE: {"schema": {"type": "string"}}}}}
ATOM_ANSWER: dict[int | str, dict[str, Any]] = {
    200: {"description": "An Atom 1.0 feed, one entry per warning in force",
          "content": {ATOM_MEDIA_TYPE: {"schema": {"type": "string"}}}}}


def _document(alert: StoredAlert) -> Response:
    return Response(content=alert.document, media_type=CAP_MEDIA_TYPE,
                    headers={"Cache-Control": "public, max-age=60"})


def _atom(parent: Any, name: str, text: str | None = None, **attributes: str) -> Any:
    element = etree.SubElement(parent, f"{{{ATOM_NAMESPACE}}}{name}", attributes)
    if text is not None:
        element.text = text
    return element


def atom_feed(alerts: list[StoredAlert], *, base: str, now: datetime,
              drill: str | None = None) -> bytes:
    """The Atom 1.0 feed of `alerts` (newest first): one entry per alert, linking to its
    CAP document (written with lxml: feedgen 1.0 drops the links' type and rel). A drill's
    feed (`drill`) says so: its own id, "DRILL" in its title, and the category
    `cityops-drill` labelled with the drill's id."""
    url = f"{base}/cap/alerts.atom"
    feed = etree.Element(f"{{{ATOM_NAMESPACE}}}feed", nsmap={None: ATOM_NAMESPACE})
    feed.set("{http://www.w3.org/XML/1998/namespace}lang", "zh-CN")
    _atom(feed, "id", url if drill is None else f"{url}#drill-{drill}")
    _atom(feed, "title", "CityOps warnings (CAP 1.2)" if drill is None
          else f"DRILL {drill}: CityOps exercise warnings (CAP 1.2)")
    if drill is not None:
        _atom(feed, "category", term=DRILL_CATEGORY, label=drill)
    _atom(feed, "subtitle", "Public warnings of the city's emergency command centre in force")
    _atom(feed, "updated", max((a.sent for a in alerts), default=now).isoformat())
    author = _atom(feed, "author")
    _atom(author, "name", "City Emergency Command Centre")
    _atom(feed, "link", href=url, rel="self", type=ATOM_MEDIA_TYPE)
    for alert in alerts:
        document = f"{base}/cap/alerts/{alert.identifier}.xml"
        entry = _atom(feed, "entry")
        _atom(entry, "id", document)
        _atom(entry, "title", alert.headline)
        _atom(entry, "updated", alert.sent.isoformat())
        _atom(entry, "published", alert.sent.isoformat())
        _atom(entry, "link", href=document, rel="alternate", type=CAP_MEDIA_TYPE)
        _atom(entry, "summary", f"{alert.msg_type}: {alert.headline} (until "
                                f"{alert.expires.isoformat()})")
        _atom(entry, "category", term=alert.msg_type)
    data: bytes = etree.tostring(feed, xml_declaration=True, encoding="UTF-8")
    return data


@router.get("/alerts.atom", response_class=Response, responses=ATOM_ANSWER)
def alerts_feed(request: Request, feeds: FeedsDep, system: SystemDep) -> Response:
    """The public alerts in force, as the Atom feed public-alert aggregators poll."""
    now = system.clock()
    data = atom_feed(feeds.cap_alerts.current(now), base=str(request.base_url).rstrip("/"),
                     now=now, drill=feeds.drill_id)
    return Response(content=data, media_type=ATOM_MEDIA_TYPE,
                    headers={"Cache-Control": "public, max-age=30"})


@router.get("/alerts/{identifier}.xml", response_class=Response, responses=CAP_ANSWER)
def public_alert(feeds: FeedsDep,
                 identifier: str = Path(pattern=IDENTIFIER, max_length=300)) -> Response:
    """One public alert, at its stable URL (restricted and drill alerts are not here)."""
    alert = feeds.cap_alerts.alert(identifier)
    if alert is None or not alert.public:
        raise NotFound("CAP alert", identifier)
    return _document(alert)


def _visible(alert: StoredAlert, system: SharingSource, actor: Actor) -> bool:
    field = "alert" if alert.scope == "Public" else "restricted_alert"
    return bool(system.sharing.allows(Stream.WARNINGS, field, Viewer.of(actor)))


@router.get("/warnings/{warning_id}", response_model=CapAlertsPublic)
def warning_alerts(warning_id: UUID, request: Request, feeds: FeedsDep, system: SystemDep,
                   actor: CurrentActor) -> dict[str, Any]:
    """Every alert a warning sent, oldest first (those the user may see)."""
    base = str(request.base_url).rstrip("/")
    alerts = [a for a in feeds.cap_alerts.of_warning(warning_id)
              if _visible(a, system, actor)]
    data = [{**a.summary(), "url": f"{base}/cap/warnings/{warning_id}/{a.sequence}.xml"}
            for a in alerts]
    return {"data": data, "count": len(data)}


@router.get("/warnings/{warning_id}/{sequence}.xml", response_class=Response,
            responses=CAP_ANSWER)
def warning_alert(warning_id: UUID, feeds: FeedsDep, system: SystemDep, actor: CurrentActor,
                  sequence: int = Path(ge=1, le=1_000_000)) -> Response:
    """One alert of a warning: its `sequence`th message (1 the first alert)."""
    for alert in feeds.cap_alerts.of_warning(warning_id):
        if alert.sequence == sequence and _visible(alert, system, actor):
            return _document(alert)
    raise NotFound("CAP alert", f"{warning_id}/{sequence}")
