"""Hotline tickets as the API answers them: the ticket document (its `summary()`), with its
reply timeliness on GET and commands, and the answers of the hand-overs."""

from __future__ import annotations

from pydantic import Field

from cityops.command_center.models.common import (
    BulkResultsPublic,
    PagePublic,
    PointPublic,
    Public,
    Timestamp,
    Uuid,
    withheld,
)
from cityops.command_center.models.grid_cases import ReturnPublic
from cityops.domain.hotline.ticket import (
    Channel,
    ReplyTimeliness,
    Satisfaction,
    TicketStatus,
    TicketType,
)


class CallerPublic(Public):
    """The caller (personal data)."""

    name: str | None
    phone: str | None


class ExtraCallPublic(Public):
    """A call merged into the ticket (personal data)."""

    ticket_id: Uuid
    caller_name: str | None
    caller_phone: str | None
    channel: Channel
    received_at: Timestamp


class LinkedWorkPublic(Public):
    """A grid case or incident the ticket became, and how far it got."""

    kind: str = Field(description="`grid-case` or `incident`")
    id: Uuid
    stage: str
    detail: str
    finished: bool
    department: str | None
    at: Timestamp


class HotlineTicketDocument(Public):
    """A hotline ticket as recorded: its `summary()` (also the read model's document)."""

    id: Uuid
    version: int = Field(description="Also the answer's ETag; send it as If-Match")
    status: TicketStatus
    channel: Channel
    ticket_type: TicketType
    topic: str
    description: str
    caller: CallerPublic = withheld("The caller's name and phone number.")
    location: PointPublic | None
    grid_cell: str | None
    proposed_department: str | None
    department: str | None
    received_at: Timestamp
    assigned_at: Timestamp | None
    reply_deadline: Timestamp | None
    assignment_count: int
    return_count: int
    returned_by: str | None
    answer: str | None
    reply: str | None
    replied_at: Timestamp | None
    replied_on_time: bool | None
    satisfaction: Satisfaction | None
    callbacks: int
    reopen_count: int
    possible_duplicates: list[Uuid] = withheld("Open tickets that may be the same matter.")
    extra_calls: list[ExtraCallPublic] = withheld("Calls merged into this ticket.")
    merged_into: Uuid | None
    case_id: Uuid | None
    incident_id: Uuid | None
    closed_at: Timestamp | None
    notes: list[str]
    return_reason: str | None
    returns: list[ReturnPublic]
    linked_work: list[LinkedWorkPublic]
    replied_from_linked_work: bool


class HotlineTicketPublic(HotlineTicketDocument):
    """A hotline ticket as recorded now, with its reply timeliness."""

    reply_timeliness: ReplyTimeliness | None


class TicketToCasePublic(HotlineTicketPublic):
    """The ticket after its conversion, and the grid case it became."""

    case_id: Uuid  # type: ignore[assignment]  # not null once converted


class TicketToIncidentPublic(HotlineTicketPublic):
    """The ticket after its escalation, and the incident it became or joined."""

    incident_id: Uuid  # type: ignore[assignment]  # not null once escalated


class HotlineTicketsPublic(PagePublic[HotlineTicketDocument]):
    """A page of hotline tickets."""


class TicketBulkResults(BulkResultsPublic[HotlineTicketPublic]):
    """What each item of a bulk action came to, with the item after the command (withheld
    fields absent, as in the single action's answer)."""
