"""Warnings: draft (from an incident, a hazard alarm or from scratch), revise, approve (a second
person for a public warning), issue, update, cancel or discard; list and get from the read
model, each message sent out, and the history. Each command route builds the warning desk's
command value and its `CommandContext` (the version seen from `If-Match`) and hands them to
`system.commands.handle`."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from cityops.command_center.areas import AreaIn
from cityops.command_center.dependencies import (
    BBoxDep,
    CommandId,
    CurrentActor,
    PagingDep,
    SystemDep,
    page_body,
)
from cityops.command_center.history import event_history
from cityops.command_center.models.common import HistoryEntryPublic
from cityops.command_center.models.warnings import (
    WarningNoticePublic,
    WarningPublic,
    WarningsPublic,
)
from cityops.command_center.schemas import Command, PointIn
from cityops.command_center.scopes import scope_guard, scope_of, warning_filters
from cityops.command_center.sharing import DocumentView, warning_view
from cityops.command_center.time_travel import ReadSystem
from cityops.command_center.versions import SeenVersion
from cityops.domain.actors import Actor
from cityops.domain.commands import CommandContext
from cityops.domain.warnings.commands import (
    ApproveWarning,
    CancelWarning,
    DiscardWarningDraft,
    DraftWarning,
    DraftWarningUpdate,
    DrawnArea,
    IssueWarning,
    ReviseWarningDraft,
    WarningCommand,
)
from cityops.domain.warnings.content import (
    LANGUAGES,
    AlertStatus,
    Certainty,
    OriginKind,
    Scope,
    Urgency,
    WarningCircle,
    WarningText,
    polygons_of,
)
from cityops.domain.warnings.warning import (
    IN_FORCE,
    PREPARING_UPDATE,
    SENT_EVENTS,
    WarningStatus,
)
from cityops.projections.tables import utc_text
from cityops.projections.warnings import WARNING_TABLE

router = APIRouter(
    prefix="/warnings", tags=["warnings"],
    dependencies=[scope_guard("warning_id", "warning",
                              lambda system, w: system.warnings.warning(w).summary())],
)



# --- bodies ---------------------------------------------------------------------------------


class TextIn(BaseModel):
    """The words of the warning in one language (one CAP `info` block)."""

    model_config = ConfigDict(extra="forbid")
    language: Literal["zh-CN", "en-US"]
    headline: str = Field(min_length=1, max_length=160)
    description: str = Field(min_length=1, max_length=4000)
    instruction: str = Field(min_length=1, max_length=4000,
                             description="What people must do")
    event: str = Field(default="", max_length=200, description="The event in this language")

    def to_text(self) -> WarningText:
        return WarningText(language=self.language, headline=self.headline,
                           description=self.description, instruction=self.instruction,
                           event=self.event)


class CircleIn(BaseModel):
    """A circle of the area: its centre and radius in kilometres."""

    model_config = ConfigDict(extra="forbid")
    centre: PointIn
    radius_km: float = Field(gt=0, le=100)

    def to_circle(self) -> WarningCircle:
        return WarningCircle(centre=self.centre.to_point(), radius_km=self.radius_km)


class DrawnAreaIn(BaseModel):
    """The warning's area as drawn: GeoJSON polygons (each part a polygon, no holes) and/or
    circles; the districts, streets and communities it touches are found on the map."""

    model_config = ConfigDict(extra="forbid")
    polygons: list[AreaIn] = Field(default_factory=list, max_length=50)
    circles: list[CircleIn] = Field(default_factory=list, max_length=50)
    description: str = Field(default="", max_length=500,
                             description="Default: the areas it touches")

    def to_area(self) -> DrawnArea:
        polygons = tuple(p for area in self.polygons for p in polygons_of(area.to_area()))
        return DrawnArea(polygons=polygons, circles=tuple(c.to_circle() for c in self.circles),
                         description=self.description)


class WordingIn(Command):
    texts: list[TextIn] = Field(min_length=1, max_length=len(LANGUAGES),
                                description="One per language: zh-CN and en-US")
    expires: datetime = Field(description="When the warning ends (with an offset)")
    contact: str = Field(min_length=1, max_length=200)
    urgency: Urgency = Urgency.IMMEDIATE
    certainty: Certainty = Certainty.OBSERVED
    level: str | None = Field(default=None, description="red, orange, yellow, blue or I-IV "
                              "(default: the origin's warning colour or level)")
    onset: datetime | None = Field(default=None, description="Default: now (a draft) or "
                                   "unchanged (a revision or an update)")
    scope: Scope = Scope.PUBLIC
    restriction: str = Field(default="", max_length=500,
                             description="Who may receive a restricted warning")
    area: DrawnAreaIn | None = Field(default=None, description="Default: the origin's area "
                                     "(a draft) or the area in force")
    area_from_origin: bool = Field(default=False, description="Take the origin's area as it "
                                   "is now (an incident's affected area grew)")

    def wording(self) -> dict[str, Any]:
        return {"texts": tuple(t.to_text() for t in self.texts), "expires": self.expires,
                "contact": self.contact, "urgency": self.urgency,
                "certainty": self.certainty, "level": self.level, "onset": self.onset,
                "scope": self.scope, "restriction": self.restriction,
                "area": self.area.to_area() if self.area is not None else None,
                "area_from_origin": self.area_from_origin}


class WarningDraftIn(WordingIn):
    origin: OriginKind = OriginKind.NONE
    incident_id: UUID | None = None
    hazard_source_id: UUID | None = None
    alarm_id: UUID | None = None
    category: str | None = Field(default=None, description="Incident category code "
                                 "(default: the incident's)")
    event_type: str | None = Field(default=None, description="Incident type code (default: "
                                   "the incident's)")


class WarningRevisionIn(WordingIn):
    reason: str = Field(default="", max_length=4000)


class WarningUpdateIn(WordingIn):
    reason: str = Field(min_length=1, max_length=4000)


class ApprovalIn(Command):
    note: str = Field(default="", max_length=4000)


class IssueIn(Command):
    pass


class ReasonIn(Command):
    reason: str = Field(min_length=1, max_length=4000)


# --- helpers ---------------------------------------------------------------------------------


def shown(doc: dict[str, Any], now: datetime, view: DocumentView) -> dict[str, Any]:
    """A warning's document as a viewer sees it at `now`: `expired` once its expiry passed;
    its preparation only where the sharing catalogue allows (`warning_view`)."""
    doc = dict(doc)
    if (doc.get("recorded_status") in {s.value for s in IN_FORCE} and doc.get("content")
            and datetime.fromisoformat(doc["content"]["expires"]) <= now):
        doc["status"] = WarningStatus.EXPIRED.value
    return view.apply(doc)


def _state(system: SystemDep, warning_id: UUID, actor: Actor) -> dict[str, Any]:
    """The warning as the write side knows it now (read-your-writes for the caller)."""
    system.wake_projections()
    now = system.clock()
    return shown(system.warnings.warning(warning_id).summary(now), now,
                 warning_view(system, actor))


def _run(system: SystemDep, command: WarningCommand, actor: Actor, command_id: str | None,
         seen: Mapping[UUID, int]) -> dict[str, Any]:
    """Hand the command to the one entry point, as its user saw the warning (`If-Match`),
    and answer the warning."""
    outcome = system.commands.handle(command, CommandContext(
        actor=actor, command_id=command_id, seen_versions=seen))
    return _state(system, outcome.subject, actor)


# --- routes ----------------------------------------------------------------------------------


@router.post("", status_code=201, response_model=WarningPublic,
             response_model_exclude_unset=True)
def draft_warning(body: WarningDraftIn, system: SystemDep, actor: CurrentActor,
                  command_id: CommandId) -> dict[str, Any]:
    """Draft a warning from an incident, a hazard source's alarm, or from scratch."""
    command = DraftWarning(origin=body.origin, incident_id=body.incident_id,
                           hazard_source_id=body.hazard_source_id, alarm_id=body.alarm_id,
                           category=body.category, event_type=body.event_type,
                           **body.wording())
    return _run(system, command, actor, command_id, {})


@router.get("", response_model=WarningsPublic, response_model_exclude_unset=True)
def list_warnings(
    system: ReadSystem,
    actor: CurrentActor,
    paging: PagingDep,
    bbox: BBoxDep,
    status: Annotated[list[WarningStatus] | None,
                      Query(description="Any of these states (expired: issued and past "
                            "its expiry)")] = None,
    current: Annotated[bool, Query(description="Only the warnings in force now (issued, "
                                   "not cancelled, not expired)")] = False,
    origin_id: Annotated[UUID | None, Query(description="Drafted from this incident or "
                                            "hazard source")] = None,
    alert_status: AlertStatus | None = None,
) -> dict[str, Any]:
    """List warnings with filters, newest first."""
    now = system.clock()
    view = warning_view(system, actor)
    filters: dict[str, Any] = {}
    extra: list[tuple[str, list[Any]]] = []
    now_text = utc_text(now)
    if status:
        asked = set(status)
        if view.as_sent:
            # Who sees warnings as they went out sees no update in preparation: an issued
            # warning is issued for them, whatever the centre prepares.
            asked -= PREPARING_UPDATE
            if WarningStatus.ISSUED in asked:
                asked |= PREPARING_UPDATE
        recorded = [s.value for s in asked if s is not WarningStatus.EXPIRED]
        in_force = [s.value for s in IN_FORCE]
        clauses: list[str] = []
        params: list[Any] = []
        live = [s for s in recorded if s in in_force]
        other = [s for s in recorded if s not in in_force]
        if live:
            clauses.append(f"(status IN ({', '.join(['%s'] * len(live))}) AND expires > %s)")
            params += [*live, now_text]
        if other:
            clauses.append(f"status IN ({', '.join(['%s'] * len(other))})")
            params += other
        if WarningStatus.EXPIRED in status:
            clauses.append("(in_force = %s AND expires <= %s)")
            params += [True, now_text]
        if not clauses:
            clauses.append("1 = 0")  # only states this reader never sees
        extra.append(("(" + " OR ".join(clauses) + ")", params))
    if current:
        filters["in_force"] = True
        extra.append(("expires > %s", [now_text]))
    if origin_id is not None:
        filters["origin_id"] = str(origin_id)
    if alert_status is not None:
        filters["alert_status"] = alert_status.value
    if scope_of(actor) is not None:
        for name, allowed in warning_filters(actor, system.sharing).items():
            extra.append((f"{name} IN ({', '.join(['%s'] * len(allowed))})", list(allowed)))
    page = system.read_models.page(WARNING_TABLE, filters=filters, bbox=bbox,
                                   extra_where=extra, limit=paging.limit,
                                   offset=paging.offset)
    return page_body([shown(doc, now, view) for doc in page.items], page.total, paging)


@router.get("/{warning_id}", response_model=WarningPublic,
             response_model_exclude_unset=True)
def get_warning(warning_id: UUID, system: ReadSystem, actor: CurrentActor) -> dict[str, Any]:
    """One warning as recorded now: what is in force, what is being prepared, its steps."""
    return _state(system, warning_id, actor)


@router.get("/{warning_id}/notices", response_model=list[WarningNoticePublic])
def warning_notices(warning_id: UUID, system: ReadSystem) -> list[dict[str, Any]]:
    """Every message the warning sent out (alert, updates, cancellation), oldest first."""
    return [n.summary() for n in system.warnings.notices(warning_id)]


@router.get("/{warning_id}/history", response_model=list[HistoryEntryPublic])
def warning_history(warning_id: UUID, system: ReadSystem,
                    actor: CurrentActor) -> list[dict[str, Any]]:
    """Every event of the warning: what happened, who did it, in what role, and when."""
    system.warnings.warning(warning_id)
    events = list(system.warnings.events.get(warning_id))
    if warning_view(system, actor).as_sent:
        # Who may not see a warning's preparation sees the messages it sent (the content of
        # drafts and updates in preparation never leaves the centre, in the history neither).
        events = [e for e in events if isinstance(e, SENT_EVENTS)]
    return event_history(events)


@router.post("/{warning_id}/revise", response_model=WarningPublic,
             response_model_exclude_unset=True)
def revise_warning(warning_id: UUID, body: WarningRevisionIn, system: SystemDep,
                   actor: CurrentActor, command_id: CommandId,
                   seen: SeenVersion) -> dict[str, Any]:
    """Change the content under preparation (an approval already given is withdrawn)."""
    command = ReviseWarningDraft(warning_id=warning_id, reason=body.reason, **body.wording())
    return _run(system, command, actor, command_id, seen)


@router.post("/{warning_id}/approve", response_model=WarningPublic,
             response_model_exclude_unset=True)
def approve_warning(warning_id: UUID, body: ApprovalIn, system: SystemDep,
                    actor: CurrentActor, command_id: CommandId,
                   seen: SeenVersion) -> dict[str, Any]:
    """Approve the content under preparation: a public warning by someone who did not write
    it (else 403)."""
    return _run(system, ApproveWarning(warning_id=warning_id, note=body.note), actor,
                command_id, seen)


@router.post("/{warning_id}/issue", response_model=WarningPublic,
             response_model_exclude_unset=True)
def issue_warning(warning_id: UUID, body: IssueIn, system: SystemDep, actor: CurrentActor,
                  command_id: CommandId, seen: SeenVersion) -> dict[str, Any]:
    """Send the approved content out: the first alert, or an update."""
    return _run(system, IssueWarning(warning_id=warning_id), actor, command_id, seen)


@router.post("/{warning_id}/update", response_model=WarningPublic,
             response_model_exclude_unset=True)
def update_warning(warning_id: UUID, body: WarningUpdateIn, system: SystemDep,
                   actor: CurrentActor, command_id: CommandId,
                   seen: SeenVersion) -> dict[str, Any]:
    """Prepare an update of the issued warning (approved and issued like the first alert)."""
    command = DraftWarningUpdate(warning_id=warning_id, reason=body.reason, **body.wording())
    return _run(system, command, actor, command_id, seen)


@router.post("/{warning_id}/cancel", response_model=WarningPublic,
             response_model_exclude_unset=True)
def cancel_warning(warning_id: UUID, body: ReasonIn, system: SystemDep, actor: CurrentActor,
                   command_id: CommandId, seen: SeenVersion) -> dict[str, Any]:
    """End the issued warning now: the cancellation goes out."""
    return _run(system, CancelWarning(warning_id=warning_id, reason=body.reason), actor,
                command_id, seen)


@router.post("/{warning_id}/discard", response_model=WarningPublic,
             response_model_exclude_unset=True)
def discard_warning(warning_id: UUID, body: ReasonIn, system: SystemDep, actor: CurrentActor,
                    command_id: CommandId, seen: SeenVersion) -> dict[str, Any]:
    """Drop the draft (never issued) or the update in preparation."""
    return _run(system, DiscardWarningDraft(warning_id=warning_id, reason=body.reason), actor,
                command_id, seen)

