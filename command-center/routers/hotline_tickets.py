"""Hotline tickets: receive calls and messages, answer them at first contact or route them to
departments, replies, callbacks, merges, hand-overs to cases and incidents, closing; list,
get and history; caller personal data only for those the sharing catalogue entitles (the
router's sharing policy, command-center/sharing.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query
from pydantic import Field

from cityops.command_center.dependencies import (
    CommandId,
    CurrentActor,
    PagingDep,
    SystemDep,
    page_body,
)
from cityops.command_center.history import event_history
from cityops.command_center.models.common import HistoryEntryPublic
from cityops.command_center.models.hotline import (
    HotlineTicketPublic,
    HotlineTicketsPublic,
    TicketToCasePublic,
    TicketToIncidentPublic,
)
from cityops.command_center.schemas import Command, PointIn
from cityops.command_center.scopes import OutOfScope, scope_guard, scoped_filters
from cityops.command_center.sharing import shared_route
from cityops.command_center.time_travel import ReadSystem
from cityops.command_center.versions import SeenVersion
from cityops.domain.actors import Actor
from cityops.domain.catalogue import Urgency
from cityops.domain.commands import Command as DomainCommand
from cityops.domain.commands import CommandContext, CommandOutcome
from cityops.domain.hotline.commands import (
    AcceptTicket,
    AnswerTicket,
    AssignTicket,
    CallBackCaller,
    CloseTicket,
    MergeTicket,
    ReceiveTicket,
    ReplyToCaller,
    ReturnTicket,
    ReviewTicketReturn,
)
from cityops.domain.hotline.ticket import (
    Channel,
    HotlineTicket,
    Satisfaction,
    TicketStatus,
    TicketType,
)

router = APIRouter(
    prefix="/hotline-tickets", tags=["hotline tickets"], route_class=shared_route("hotline"),
    dependencies=[scope_guard("ticket_id", "hotline ticket",
                              lambda system, i: system.hotline.ticket(i).summary())],
)


class TicketReception(Command):
    channel: Channel = Channel.PHONE
    ticket_type: TicketType
    topic: str = Field(description="Hotline topic code from the catalogue, e.g. garbage")
    description: str = Field(min_length=1, max_length=4000)
    caller_name: str | None = Field(default=None, max_length=100)
    caller_phone: str | None = Field(default=None, max_length=40)
    location: PointIn | None = None
    at: datetime | None = Field(default=None, description="When it came in (default: now)")


class Answer(Command):
    answer: str = Field(min_length=1, max_length=4000)


class TicketAssignment(Command):
    department: str | None = Field(default=None,
                                   description="Default: the proposed department")
    note: str = ""


class Note(Command):
    note: str = ""


class TicketReturn(Command):
    reason: str = Field(min_length=1)
    suggested_department: str | None = None


class TicketReturnReview(Command):
    accept: bool = Field(description="true: the return is right, route the ticket to another "
                                     "department; false: send it back to the one that "
                                     "returned it")
    department: str | None = Field(
        default=None, description="On acceptance: the department to route to (default: the "
                                  "proposed one)")
    reason: str = Field(default="", description="The reviewer's reason (required to reject)")


class Reply(Command):
    reply: str = Field(min_length=1, max_length=4000)


class Callback(Command):
    satisfaction: Satisfaction
    note: str = ""


class Merge(Command):
    primary_id: UUID = Field(description="The ticket of the same matter to merge into")
    note: str = ""


class CaseConversion(Command):
    category: str | None = Field(
        default=None, description="Grid-case category (default: the topic's own category)")
    urgency: Urgency = Urgency.NORMAL


class IncidentEscalation(Command):
    incident_id: UUID | None = Field(
        default=None, description="An existing incident to join; else a new one is reported")
    category: str | None = Field(default=None, description="For a new incident")
    incident_type: str | None = Field(default=None, description="For a new incident")
    title: str | None = Field(default=None, description="For a new incident")
    level: str | None = Field(default=None, description="For a new incident: I to IV")


def _state(system: SystemDep, ticket_id: UUID, actor: Actor,
           outcome: CommandOutcome | None = None) -> dict[str, Any]:
    """The ticket as the write side knows it now, with its reply timeliness (the router's
    sharing policy removes what `actor` may not see): as the command of `outcome` saved
    it, if it did (not read back from the event store), else loaded."""
    system.wake_projections()
    saved = outcome.subject_as(HotlineTicket) if outcome is not None else None
    ticket = saved if saved is not None else system.hotline.ticket(ticket_id)
    body = ticket.summary()
    timeliness = system.hotline.timeliness(ticket)
    body["reply_timeliness"] = timeliness.value if timeliness else None
    return body


@router.post("", response_model=HotlineTicketPublic, status_code=201)
def receive_ticket(body: TicketReception, system: SystemDep, actor: CurrentActor,
                   command_id: CommandId) -> dict[str, Any]:
    """Take a call or message: located, routed by proposal, checked for likely duplicates."""
    reception = ReceiveTicket(
        channel=body.channel, ticket_type=body.ticket_type, topic=body.topic,
        description=body.description, caller_name=body.caller_name,
        caller_phone=body.caller_phone,
        location=body.location.to_point() if body.location else None)
    outcome = system.commands.handle(
        reception, CommandContext(actor=actor, command_id=command_id, at=body.at))
    return _state(system, outcome.subject, actor, outcome)


@router.get("", response_model=HotlineTicketsPublic)
def list_tickets(
    system: ReadSystem,
    actor: CurrentActor,
    paging: PagingDep,
    status: Annotated[list[TicketStatus] | None, Query(description="Any of these states")]
    = None,
    topic: str | None = None,
    department: str | None = None,
    open_only: bool = False,
    area: Annotated[str | None, Query(description="Grid code prefix: district, street, "
                                      "community or cell")] = None,
) -> dict[str, Any]:
    """List tickets with filters, newest first."""
    filters: dict[str, Any] = {}
    if status:
        filters["status"] = [s.value for s in status]
    if topic:
        filters["topic"] = topic
    if department:
        filters["department"] = department
    if open_only:
        filters["is_open"] = True
    try:
        filters = scoped_filters("rm_tickets", filters, actor)
    except OutOfScope:
        return page_body([], 0, paging)
    page = system.read_models.page(
        "rm_tickets", filters=filters, prefixes={"grid_cell": area} if area else None,
        limit=paging.limit, offset=paging.offset,
    )
    return page_body(page.items, page.total, paging)


@router.get("/{ticket_id}", response_model=HotlineTicketPublic)
def get_ticket(ticket_id: UUID, system: ReadSystem, actor: CurrentActor) -> dict[str, Any]:
    """One ticket, as recorded now, with its reply timeliness."""
    return _state(system, ticket_id, actor)


@router.get("/{ticket_id}/history", response_model=list[HistoryEntryPublic])
def ticket_history(ticket_id: UUID, system: ReadSystem,
                   actor: CurrentActor) -> list[dict[str, Any]]:
    """Every event of the ticket: what happened, who did it, in what role, and when."""
    system.hotline.ticket(ticket_id)
    return event_history(system.hotline.events.get(ticket_id))


def _issue(system: SystemDep, command: DomainCommand, actor: CurrentActor,
           command_id: CommandId, seen: SeenVersion) -> dict[str, Any]:
    """Run a command on one ticket, as its user saw it (`If-Match`), and answer the ticket."""
    outcome = system.commands.handle(
        command, CommandContext(actor=actor, command_id=command_id, seen_versions=seen))
    return _state(system, outcome.subject, actor, outcome)


@router.post("/{ticket_id}/answer", response_model=HotlineTicketPublic)
def answer_ticket(ticket_id: UUID, body: Answer, system: SystemDep, actor: CurrentActor,
                  command_id: CommandId, seen: SeenVersion) -> dict[str, Any]:
    """The operator answers the caller directly and the ticket closes."""
    return _issue(system, AnswerTicket(ticket_id=ticket_id, answer=body.answer), actor,
                  command_id, seen)


@router.post("/{ticket_id}/assign", response_model=HotlineTicketPublic)
def assign_ticket(ticket_id: UUID, body: TicketAssignment, system: SystemDep,
                  actor: CurrentActor, command_id: CommandId,
                  seen: SeenVersion) -> dict[str, Any]:
    """Route the ticket to a department (default: the proposed one) with a reply deadline."""
    command = AssignTicket(ticket_id=ticket_id, department=body.department, note=body.note)
    return _issue(system, command, actor, command_id, seen)


@router.post("/{ticket_id}/accept", response_model=HotlineTicketPublic)
def accept_ticket(ticket_id: UUID, body: Note, system: SystemDep, actor: CurrentActor,
                  command_id: CommandId, seen: SeenVersion) -> dict[str, Any]:
    """The department takes the ticket on."""
    return _issue(system, AcceptTicket(ticket_id=ticket_id, note=body.note), actor,
                  command_id, seen)


@router.post("/{ticket_id}/return", response_model=HotlineTicketPublic)
def return_ticket(ticket_id: UUID, body: TicketReturn, system: SystemDep, actor: CurrentActor,
                  command_id: CommandId, seen: SeenVersion) -> dict[str, Any]:
    """The department sends the ticket back as not its matter (it may suggest another)."""
    command = ReturnTicket(ticket_id=ticket_id, reason=body.reason,
                           suggested_department=body.suggested_department)
    return _issue(system, command, actor, command_id, seen)


@router.post("/{ticket_id}/return-review", response_model=HotlineTicketPublic)
def review_return(ticket_id: UUID, body: TicketReturnReview, system: SystemDep,
                  actor: CurrentActor, command_id: CommandId,
                  seen: SeenVersion) -> dict[str, Any]:
    """The centre reviews a department's return: accept (routed to another department) or
    reject with a reason (back to the same department, owing its reply by the deadline it
    had)."""
    command = ReviewTicketReturn(ticket_id=ticket_id, accept=body.accept,
                                 department=body.department, reason=body.reason)
    return _issue(system, command, actor, command_id, seen)


@router.post("/{ticket_id}/reply", response_model=HotlineTicketPublic)
def reply_to_ticket(ticket_id: UUID, body: Reply, system: SystemDep, actor: CurrentActor,
                    command_id: CommandId, seen: SeenVersion) -> dict[str, Any]:
    """The department's reply to the caller (whether it was on time is recorded)."""
    return _issue(system, ReplyToCaller(ticket_id=ticket_id, reply=body.reply), actor,
                  command_id, seen)


@router.post("/{ticket_id}/callback", response_model=HotlineTicketPublic)
def call_back(ticket_id: UUID, body: Callback, system: SystemDep, actor: CurrentActor,
              command_id: CommandId, seen: SeenVersion) -> dict[str, Any]:
    """Record how satisfied the caller is; dissatisfied with a reply reopens the ticket."""
    command = CallBackCaller(ticket_id=ticket_id, satisfaction=body.satisfaction,
                             note=body.note)
    return _issue(system, command, actor, command_id, seen)


@router.post("/{ticket_id}/merge", response_model=HotlineTicketPublic)
def merge_ticket(ticket_id: UUID, body: Merge, system: SystemDep, actor: CurrentActor,
                 command_id: CommandId, seen: SeenVersion) -> dict[str, Any]:
    """Merge the ticket into the primary ticket of the same matter (which keeps its call)."""
    command = MergeTicket(ticket_id=ticket_id, primary_id=body.primary_id, note=body.note)
    return _issue(system, command, actor, command_id, seen)


@router.post("/{ticket_id}/convert-to-case", response_model=TicketToCasePublic)
def convert_to_case(ticket_id: UUID, body: CaseConversion, system: SystemDep,
                    actor: CurrentActor, command_id: CommandId,
                    seen: SeenVersion) -> dict[str, Any]:
    """Turn a city-management ticket into a grid case (reported by the hotline) and record it
    on the ticket; running it again completes or repeats nothing."""
    case_id = system.operations.ticket_to_case(ticket_id, category=body.category,
                                               urgency=body.urgency, actor=actor,
                                               command_id=command_id, seen_versions=seen)
    return {**_state(system, ticket_id, actor), "case_id": str(case_id)}


@router.post("/{ticket_id}/escalate-to-incident", response_model=TicketToIncidentPublic)
def escalate_to_incident(ticket_id: UUID, body: IncidentEscalation, system: SystemDep,
                         actor: CurrentActor, command_id: CommandId,
                         seen: SeenVersion) -> dict[str, Any]:
    """Make an emergency ticket a new incident, or join it to an existing one."""
    incident_id = system.operations.ticket_to_incident(
        ticket_id, incident_id=body.incident_id, category=body.category,
        incident_type=body.incident_type, title=body.title, level=body.level, actor=actor,
        command_id=command_id, seen_versions=seen)
    return {**_state(system, ticket_id, actor), "incident_id": str(incident_id)}


@router.post("/{ticket_id}/close", response_model=HotlineTicketPublic)
def close_ticket(ticket_id: UUID, body: Note, system: SystemDep, actor: CurrentActor,
                 command_id: CommandId, seen: SeenVersion) -> dict[str, Any]:
    """Close a ticket after the callback (or a transferred one at the end)."""
    return _issue(system, CloseTicket(ticket_id=ticket_id, note=body.note), actor,
                  command_id, seen)
