"""Every command of the hotline-ticket stream, as values (handled by `HotlineTickets`, one
handler each; who may issue them: `domain/permissions.py`).

Each names the ticket it acts on by `ticket_id` (but `ReceiveTicket`, which makes one).
Checks that need no state are made here, when the value is built; checks against the
catalogue, the map, the clock or the ticket are the handler's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar
from uuid import UUID

from cityops.domain.catalogue import Urgency
from cityops.domain.commands import Command, enum_field
from cityops.domain.errors import InvalidValue
from cityops.domain.geometry import GeoPoint
from cityops.domain.hotline.ticket import Channel, Satisfaction, TicketType
from cityops.domain.incidents.commands import NewIncident


@dataclass(frozen=True, kw_only=True)
class TicketCommand(Command):
    """A command on one existing ticket."""

    ticket_id: UUID


@dataclass(frozen=True, kw_only=True)
class ReceiveTicket(Command):
    """Take a call or message: it is located, given a proposed department and checked for
    possible duplicates (same topic, near, recent), which are only proposed. Its id derives
    from the command id (or is new)."""

    name: ClassVar[str] = "ticket.receive"
    channel: Channel
    ticket_type: TicketType
    topic: str
    description: str
    caller_name: str | None = None
    caller_phone: str | None = None
    location: GeoPoint | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "channel", enum_field(Channel, "channel", self.channel))
        object.__setattr__(self, "ticket_type",
                           enum_field(TicketType, "ticket type", self.ticket_type))
        if self.location is not None and not isinstance(self.location, GeoPoint):
            raise InvalidValue(f"a ticket's location must be a point, not {self.location!r}")

    def fingerprint_args(self) -> dict[str, Any]:
        # As recorded before commands were values: the location as [lon, lat].
        return {"channel": self.channel, "ticket_type": self.ticket_type, "topic": self.topic,
                "description": self.description, "caller_name": self.caller_name,
                "caller_phone": self.caller_phone,
                "location": ([self.location.lon, self.location.lat] if self.location
                             else None)}


@dataclass(frozen=True, kw_only=True)
class AnswerTicket(TicketCommand):
    """The operator answers the caller directly and the ticket closes."""

    name: ClassVar[str] = "ticket.answer"
    answer: str


@dataclass(frozen=True, kw_only=True)
class AssignTicket(TicketCommand):
    """Route the ticket to a department (the proposed one unless the operator overrides),
    with the topic's reply deadline counted on the business calendar from now."""

    name: ClassVar[str] = "ticket.assign"
    department: str | None = None
    note: str = ""


@dataclass(frozen=True, kw_only=True)
class ReviewTicketReturn(TicketCommand):
    """The centre reviews a department's return. Accept: routed to another department
    (`department`, default the proposed one) with a new reply deadline. Reject (`reason`
    required): back to the returning department, owing its reply by the deadline it had."""

    name: ClassVar[str] = "ticket.review-return"
    accept: bool
    department: str | None = None
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class AcceptTicket(TicketCommand):
    """The department takes the ticket on."""

    name: ClassVar[str] = "ticket.accept"
    note: str = ""


@dataclass(frozen=True, kw_only=True)
class ReturnTicket(TicketCommand):
    """The department sends the ticket back as not its matter (it may suggest another)."""

    name: ClassVar[str] = "ticket.return"
    reason: str
    suggested_department: str | None = None


@dataclass(frozen=True, kw_only=True)
class ReplyToCaller(TicketCommand):
    """The department's reply to the caller (on time or not is recorded)."""

    name: ClassVar[str] = "ticket.reply"
    reply: str


@dataclass(frozen=True, kw_only=True)
class CallBackCaller(TicketCommand):
    """Ask the caller whether they are satisfied; dissatisfied with a reply reopens the
    ticket to the same department with a new reply deadline."""

    name: ClassVar[str] = "ticket.callback"
    satisfaction: Satisfaction
    note: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "satisfaction",
                           enum_field(Satisfaction, "satisfaction", self.satisfaction))


@dataclass(frozen=True, kw_only=True)
class MergeTicket(TicketCommand):
    """Merge a ticket into the primary ticket of the same matter; both are saved in one
    transaction (the merged ticket is the subject)."""

    name: ClassVar[str] = "ticket.merge"
    primary_id: UUID
    note: str = ""

    def __post_init__(self) -> None:
        if self.ticket_id == self.primary_id:
            raise InvalidValue("a ticket cannot be merged into itself")


@dataclass(frozen=True, kw_only=True)
class ConvertTicketToCase(TicketCommand):
    """Record that the ticket became a grid case (created by the grid-case application, by
    default with the id `case_id_for_ticket`). Repeating it for the same case changes
    nothing."""

    name: ClassVar[str] = "ticket.convert-to-case"
    case_id: UUID | None = None
    category: str | None = None
    """The category the grid-case application reports the case in (`processes.
    case_conversions`); None: the case exists already."""
    urgency: Urgency | None = None

    def __post_init__(self) -> None:
        if self.urgency is not None:
            object.__setattr__(self, "urgency", enum_field(Urgency, "urgency", self.urgency,
                                                          "urgencies"))

    def fingerprint_args(self) -> dict[str, Any]:
        # As recorded before the process reported the case from the ticket's event.
        return {"ticket_id": self.ticket_id, "case_id": self.case_id}


@dataclass(frozen=True, kw_only=True)
class EscalateTicketToIncident(TicketCommand):
    """Record that the ticket became an incident (default id `incident_id_for_ticket`) or
    joined an existing one (its id given). Repeating it for the same incident changes
    nothing."""

    name: ClassVar[str] = "ticket.escalate-to-incident"
    incident_id: UUID | None = None
    new_incident: NewIncident | None = None
    """What the incident application reports (`processes.incident_escalations`); None: the
    ticket joins an incident that exists."""

    def fingerprint_args(self) -> dict[str, Any]:
        # As recorded before the process reported the incident from the ticket's event.
        return {"ticket_id": self.ticket_id, "incident_id": self.incident_id}


@dataclass(frozen=True, kw_only=True)
class CloseTicket(TicketCommand):
    """Close a ticket after the callback (or a transferred one at the end)."""

    name: ClassVar[str] = "ticket.close"
    note: str = ""
