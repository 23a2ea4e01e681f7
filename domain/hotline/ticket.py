"""The hotline ticket: one call or message to the single service number, from reception to
closing.

received -> answered at first contact and closed, or assigned to a department -> accepted
(or returned: not ours, the centre re-routes) -> replied within the reply deadline ->
called back (satisfied / basically satisfied; dissatisfied reopens it to the same
department with a new deadline) -> closed. Side paths: several calls about one matter are
merged into one ticket (the merged ticket is `merged`, the primary keeps the extra call);
"one number takes it, one network handles it": a city-management matter becomes a grid case,
an emergency becomes or joins an incident, after which the ticket is `transferred` and
follows it: it records how its case or incident progresses, and once that work is finished
(the case closed or rejected, the incident closed or dismissed) the reply is filled from its
result and the caller is called back as after any reply (see `TicketFollowUp`). A callback
before the linked work is finished is refused.

Caller name and phone number are personal data (see `PERSONAL_DATA`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from cityops.domain.actors import Actor, Role
from cityops.domain.calendar import BusinessCalendar
from cityops.domain.catalogue import LimitUnit
from cityops.domain.errors import IllegalTransition, InvalidValue
from cityops.domain.geometry import GeoPoint
from cityops.domain.model import CityAggregate, checked_text, iso_or_none
from cityops.domain.returns import ReturnOutcome, ReturnRecord, returns_as_dicts, review_latest
from cityops.domain.supervision import Light, StageClock, light

TICKET_NAMESPACE = uuid5(NAMESPACE_URL, "https://cityops.invalid/hotline-tickets")
MAX_NAME = 100
PHONE_PATTERN = re.compile(r"^\+?[0-9(][0-9 ()\-.]*$")
PHONE_DIGITS = (3, 20)
"""Loose: from short service numbers to international numbers with an extension."""

PERSONAL_DATA = frozenset({"caller", "extra_calls"})
"""Keys of `HotlineTicket.summary()` holding caller personal data: shared only on condition."""


class TicketStatus(StrEnum):
    RECEIVED = "received"
    ASSIGNED = "assigned"
    ACCEPTED = "accepted"
    RETURNED = "returned"
    """The department sent it back as not its responsibility; the centre re-routes it."""
    REPLIED = "replied"
    CALLED_BACK = "called-back"
    """The caller was called back and is (basically) satisfied; the ticket can be closed."""
    TRANSFERRED = "transferred"
    """Became a grid case or an incident and follows it."""
    CLOSED = "closed"
    MERGED = "merged"
    """Merged into another ticket about the same matter (terminal)."""


class Channel(StrEnum):
    PHONE = "phone"
    WEB = "web"
    MESSAGING_APP = "messaging-app"
    MOBILE_APP = "mobile-app"


class TicketType(StrEnum):
    CONSULTATION = "consultation"
    REQUEST_FOR_HELP = "request-for-help"
    COMPLAINT = "complaint"
    REPORT = "report"
    """A tip-off."""
    SUGGESTION = "suggestion"
    PRAISE = "praise"


class Satisfaction(StrEnum):
    SATISFIED = "satisfied"
    BASICALLY_SATISFIED = "basically-satisfied"
    DISSATISFIED = "dissatisfied"


class LinkedWorkKind(StrEnum):
    """What a ticket can become: the other streams' aggregates it then follows."""

    GRID_CASE = "grid-case"
    INCIDENT = "incident"


class ReplyTimeliness(StrEnum):
    """The reply-deadline light of a ticket, as the supervision light of a grid case."""

    ON_TIME = "on-time"
    DUE_SOON = "due-soon"
    OVERDUE = "overdue"


TERMINAL = frozenset({TicketStatus.CLOSED, TicketStatus.MERGED})
MERGEABLE = frozenset({TicketStatus.RECEIVED, TicketStatus.ASSIGNED, TicketStatus.RETURNED})
"""A ticket is merged while its matter is still being routed; once a department has accepted
it, the department's work is not silently folded into another ticket."""
TRANSFERABLE = frozenset({TicketStatus.RECEIVED, TicketStatus.ASSIGNED, TicketStatus.ACCEPTED,
                          TicketStatus.RETURNED, TicketStatus.TRANSFERRED})
"""A ticket can become a case or an incident until it is replied to; a transferred ticket can
also become the other one (a case that turns out to be an emergency)."""


def linked_work_key(kind: str, work_id: UUID) -> str:
    """How a ticket names one case or incident it became (`HotlineTicket.linked_work`)."""
    return f"{LinkedWorkKind(kind).value}:{work_id}"


def case_id_for_ticket(ticket_id: UUID) -> UUID:
    """The id of the grid case a ticket becomes: a retried conversion creates the same case."""
    return uuid5(TICKET_NAMESPACE, f"grid-case-from-ticket:{ticket_id}")


def incident_id_for_ticket(ticket_id: UUID) -> UUID:
    """The id of the incident a ticket becomes (when it does not join an existing one)."""
    return uuid5(TICKET_NAMESPACE, f"incident-from-ticket:{ticket_id}")


def reply_timeliness(ticket: HotlineTicket, now: datetime, calendar: BusinessCalendar,
                     yellow_fraction: float) -> ReplyTimeliness | None:
    """On time, due soon or overdue while a department owes a reply (None otherwise); it
    changes as time passes, not only when an event arrives."""
    if ticket.reply_clock is None:
        return None
    colour = light(ticket.reply_clock, now, calendar, yellow_fraction)
    return {
        Light.GREEN: ReplyTimeliness.ON_TIME,
        Light.YELLOW: ReplyTimeliness.DUE_SOON,
        Light.RED: ReplyTimeliness.OVERDUE,
    }[colour]


def check_phone(phone: str | None) -> str | None:
    """A phone number, loosely checked: digits with optional +, spaces, dashes, brackets."""
    if phone is None:
        return None
    if not isinstance(phone, str):
        raise InvalidValue("phone number must be text")
    phone = phone.strip()
    if not phone:
        return None
    digits = sum(c.isdigit() for c in phone)
    low, high = PHONE_DIGITS
    if not PHONE_PATTERN.match(phone) or not low <= digits <= high:
        raise InvalidValue(
            f"phone number {phone!r} is not a phone number (digits, optional leading +, "
            f"spaces, dashes or brackets; {low} to {high} digits)"
        )
    return phone






@dataclass(frozen=True)
class Call:
    """One call (or message) about the matter: the first one, or one merged in later."""

    ticket_id: UUID
    caller_name: str | None
    caller_phone: str | None
    channel: Channel
    received_at: datetime

    def as_fact(self) -> dict[str, Any]:
        return {"ticket_id": self.ticket_id, "caller_name": self.caller_name,
                "caller_phone": self.caller_phone, "channel": self.channel.value,
                "received_at": self.received_at}

    @classmethod
    def from_fact(cls, fact: dict[str, Any]) -> Call:
        return cls(ticket_id=fact["ticket_id"], caller_name=fact["caller_name"],
                   caller_phone=fact["caller_phone"], channel=Channel(fact["channel"]),
                   received_at=fact["received_at"])

    def as_dict(self) -> dict[str, Any]:
        return {"ticket_id": str(self.ticket_id), "caller_name": self.caller_name,
                "caller_phone": self.caller_phone, "channel": self.channel.value,
                "received_at": self.received_at.isoformat()}


@dataclass(frozen=True)
class LinkedWork:
    """What the ticket last heard of a case or incident it became: its stage, or its
    outcome once it is finished."""

    kind: LinkedWorkKind
    work_id: UUID
    stage: str
    """The stage it reached, or (finished) its outcome."""
    detail: str
    finished: bool
    department: str | None
    """The department that did the work (known once a grid case is finished)."""
    at: datetime

    def summary(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "id": str(self.work_id), "stage": self.stage,
                "detail": self.detail, "finished": self.finished,
                "department": self.department, "at": self.at.isoformat()}


class HotlineTicket(CityAggregate):
    """A citizen's call or message to the service hotline and what became of it."""

    KIND = "hotline ticket"

    class Received(CityAggregate.Created):
        """`HotlineTicket.__init__` makes the ticket's state from these facts (the library
        passes a created event's fields to `__init__` by name)."""

        # Declared again only for the type checker: it sees `Created` without `Event`'s actor.
        actor: Actor
        channel: str
        ticket_type: str
        topic: str
        description: str
        caller_name: str | None
        caller_phone: str | None
        location: GeoPoint | None
        grid_cell: str | None
        proposed_department: str
        possible_duplicates: list[UUID]

    class AnsweredAtFirstContact(CityAggregate.Event):
        """The operator answered the caller directly; nothing to route, the ticket closes."""

        answer: str

        def apply(self, ticket: HotlineTicket) -> None:
            ticket.status = TicketStatus.CLOSED
            ticket.answer = self.answer
            ticket.closed_at = self.timestamp

    class Assigned(CityAggregate.Event):
        """Routed to a department, which owes a reply by `deadline` (business calendar)."""

        department: str
        deadline: datetime
        limit_unit: str
        note: str

        def apply(self, ticket: HotlineTicket) -> None:
            ticket.status = TicketStatus.ASSIGNED
            ticket.department = self.department
            ticket.assignment_count += 1
            ticket.note(self.note)
            ticket.start_reply_clock(self.timestamp, self.deadline, self.limit_unit)

    class Accepted(CityAggregate.Event):
        note: str

        def apply(self, ticket: HotlineTicket) -> None:
            ticket.status = TicketStatus.ACCEPTED
            ticket.note(self.note)

    class ReturnedToCentre(CityAggregate.Event):
        """The department says it is not its matter; the centre must route it again."""

        reason: str
        suggested_department: str | None

        def apply(self, ticket: HotlineTicket) -> None:
            assert ticket.department is not None
            ticket.returns.append(ReturnRecord(
                ordinal=len(ticket.returns) + 1, department=ticket.department,
                returned_at=self.timestamp, returned_by=self.actor.user_id,
                reason=self.reason, suggested_department=self.suggested_department,
                clock=ticket.reply_clock,
            ))
            ticket.status = TicketStatus.RETURNED
            ticket.return_count += 1
            ticket.returned_by = ticket.department
            ticket.return_reason = self.reason
            ticket.proposed_department = self.suggested_department or ticket.proposed_department
            ticket.department = None
            ticket.stop_reply_clock()

    class ReturnAccepted(CityAggregate.Event):
        """The centre agreed the ticket is not the returning department's: it is routed to
        another department (the `Assigned` event saved with this one)."""

        note: str

        def apply(self, ticket: HotlineTicket) -> None:
            review_latest(ticket.returns, ReturnOutcome.ACCEPTED, at=self.timestamp,
                          by=self.actor.user_id, note=self.note)

    class ReturnRejected(CityAggregate.Event):
        """The centre disagreed: the ticket goes back to the department that returned it,
        with the reviewer's reason, owing its reply by the deadline it had."""

        reason: str
        deadline: datetime
        """The reply deadline in force again: the one the department had when it returned
        the ticket."""

        def apply(self, ticket: HotlineTicket) -> None:
            record = ticket.returns[-1]
            assert record.clock is not None
            review_latest(ticket.returns, ReturnOutcome.REJECTED, at=self.timestamp,
                          by=self.actor.user_id, note=self.reason)
            ticket.status = TicketStatus.ASSIGNED
            ticket.department = record.department
            ticket.assigned_at = record.clock.started_at
            ticket.reply_deadline = self.deadline
            ticket.reply_clock = replace(record.clock, deadline=self.deadline)

    class Replied(CityAggregate.Event):
        reply: str
        on_time: bool

        def apply(self, ticket: HotlineTicket) -> None:
            ticket.status = TicketStatus.REPLIED
            ticket.reply = self.reply
            ticket.replied_at = self.timestamp
            ticket.replied_on_time = self.on_time
            ticket.replied_from_linked_work = False
            ticket.stop_reply_clock()

    class CalledBack(CityAggregate.Event):
        """The centre asked the caller how satisfied they are with the reply (or with the
        handling of the case or incident the ticket became)."""

        satisfaction: str
        note: str

        def apply(self, ticket: HotlineTicket) -> None:
            satisfaction = Satisfaction(self.satisfaction)
            ticket.satisfaction = satisfaction
            ticket.callbacks += 1
            ticket.note(self.note)
            if satisfaction is not Satisfaction.DISSATISFIED:
                ticket.status = TicketStatus.CALLED_BACK

    class Reopened(CityAggregate.Event):
        """The caller was dissatisfied: back to the same department with a new deadline."""

        deadline: datetime
        limit_unit: str

        def apply(self, ticket: HotlineTicket) -> None:
            ticket.status = TicketStatus.ASSIGNED
            ticket.reopen_count += 1
            ticket.reply = None
            ticket.replied_at = None
            ticket.replied_on_time = None
            ticket.start_reply_clock(self.timestamp, self.deadline, self.limit_unit)

    class CallMerged(CityAggregate.Event):
        """Another ticket about the same matter was merged into this one: its call (and any
        calls merged into it before) now belong here."""

        merged_ticket_id: UUID
        calls: list[dict[str, Any]]

        def apply(self, ticket: HotlineTicket) -> None:
            ticket.extra_calls.extend(Call.from_fact(c) for c in self.calls)

    class MergedInto(CityAggregate.Event):
        primary_id: UUID
        note: str

        def apply(self, ticket: HotlineTicket) -> None:
            ticket.status = TicketStatus.MERGED
            ticket.merged_into = self.primary_id
            ticket.closed_at = self.timestamp
            ticket.note(self.note)
            ticket.stop_reply_clock()

    class ConvertedToCase(CityAggregate.Event):
        """The matter became a grid case, which the grid-case application reports from this
        event (`processes.case_conversions`) in the category and urgency the centre chose
        (None: recorded before that process, or after the case was reported)."""

        class_version = 2
        case_id: UUID
        category: str | None
        urgency: str | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            # The case was reported before the ticket recorded its conversion then.
            state["category"] = None
            state["urgency"] = None

        def apply(self, ticket: HotlineTicket) -> None:
            ticket.status = TicketStatus.TRANSFERRED
            ticket.case_id = self.case_id
            ticket.stop_reply_clock()

    class EscalatedToIncident(CityAggregate.Event):
        """The matter became or joined an incident. A new one (`new_incident`: its category,
        incident type, title and level) is reported by the incident application from this
        event (`processes.incident_escalations`); None: it joins an existing one, or was
        recorded before that process."""

        class_version = 2
        incident_id: UUID
        new_incident: dict[str, str | None] | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            # The incident was reported before the ticket recorded its escalation then.
            state["new_incident"] = None

        def apply(self, ticket: HotlineTicket) -> None:
            ticket.status = TicketStatus.TRANSFERRED
            ticket.incident_id = self.incident_id
            ticket.stop_reply_clock()

    class LinkedWorkProgressed(CityAggregate.Event):
        """The case or incident the ticket became moved on (handled, sent back for rework,
        contained...): what the operator can tell a caller who asks meanwhile."""

        kind: str
        work_id: UUID
        stage: str
        detail: str

        def apply(self, ticket: HotlineTicket) -> None:
            ticket.linked_work[linked_work_key(self.kind, self.work_id)] = LinkedWork(
                kind=LinkedWorkKind(self.kind), work_id=self.work_id, stage=self.stage,
                detail=self.detail, finished=False, department=None, at=self.timestamp,
            )

    class LinkedWorkFinished(CityAggregate.Event):
        """The case or incident the ticket became is finished: the case closed or rejected,
        the incident closed or dismissed; `detail` says what came of it, for the reply."""

        kind: str
        work_id: UUID
        outcome: str
        detail: str
        department: str | None

        def apply(self, ticket: HotlineTicket) -> None:
            ticket.linked_work[linked_work_key(self.kind, self.work_id)] = LinkedWork(
                kind=LinkedWorkKind(self.kind), work_id=self.work_id, stage=self.outcome,
                detail=self.detail, finished=True, department=self.department,
                at=self.timestamp,
            )

    class RepliedFromLinkedWork(CityAggregate.Event):
        """All the work the ticket became is finished: the reply is filled from its results
        (as a hotline centre fills it from the department's result) and the caller is called
        back as after any reply."""

        reply: str
        department: str | None
        """The department that did the work (a grid case's), None for an incident."""

        def apply(self, ticket: HotlineTicket) -> None:
            ticket.status = TicketStatus.REPLIED
            ticket.reply = self.reply
            ticket.replied_at = self.timestamp
            ticket.replied_on_time = None  # no reply deadline runs while a ticket is handed over
            ticket.replied_from_linked_work = True
            ticket.department = self.department
            ticket.stop_reply_clock()

    class ReopenedToCentre(CityAggregate.Event):
        """The caller is dissatisfied with the result of the case or incident the ticket
        became: it goes back to the centre, which routes it again (by default to the
        department that did the work)."""

        reason: str

        def apply(self, ticket: HotlineTicket) -> None:
            ticket.status = TicketStatus.RETURNED
            ticket.reopen_count += 1
            ticket.return_reason = self.reason
            ticket.returned_by = None
            ticket.proposed_department = ticket.department or ticket.proposed_department
            ticket.department = None
            ticket.reply = None
            ticket.replied_at = None
            ticket.replied_on_time = None
            ticket.replied_from_linked_work = False

    class Closed(CityAggregate.Event):
        note: str

        def apply(self, ticket: HotlineTicket) -> None:
            ticket.status = TicketStatus.CLOSED
            ticket.closed_at = self.timestamp
            ticket.note(self.note)

    # --- state -----------------------------------------------------------------------------

    def __init__(self, *, channel: str, ticket_type: str, topic: str, description: str,
                 caller_name: str | None, caller_phone: str | None, location: GeoPoint | None,
                 grid_cell: str | None, proposed_department: str,
                 possible_duplicates: list[UUID], actor: Actor, timestamp: datetime) -> None:
        """The ticket as received (from the `Received` event's facts): every attribute it
        keeps is declared here, once, with its type; the events change them."""
        self.status: TicketStatus = TicketStatus.RECEIVED
        self.channel = Channel(channel)
        self.ticket_type = TicketType(ticket_type)
        self.topic = topic
        self.description = description
        self.caller_name = caller_name
        self.caller_phone = caller_phone
        self.location = location
        self.grid_cell = grid_cell
        self.proposed_department = proposed_department
        self.possible_duplicates = list(possible_duplicates)
        self.received_at = timestamp
        self.received_by = actor.user_id
        self.department: str | None = None
        self.assigned_at: datetime | None = None
        self.reply_deadline: datetime | None = None
        self.reply_clock: StageClock | None = None
        self.assignment_count = 0
        self.return_count = 0
        self.returned_by: str | None = None
        self.return_reason: str | None = None
        self.reply: str | None = None
        self.replied_at: datetime | None = None
        self.replied_on_time: bool | None = None
        self.answer: str | None = None
        self.satisfaction: Satisfaction | None = None
        self.callbacks = 0
        self.reopen_count = 0
        self.extra_calls: list[Call] = []
        self.merged_into: UUID | None = None
        self.case_id: UUID | None = None
        self.incident_id: UUID | None = None
        self.closed_at: datetime | None = None
        self.notes: list[str] = []
        self.returns: list[ReturnRecord] = []
        self.linked_work: dict[str, LinkedWork] = {}
        """What became of the case and incident the ticket became, by `linked_work_key`."""
        self.replied_from_linked_work = False

    def start_reply_clock(self, at: datetime, deadline: datetime, unit: str) -> None:
        self.assigned_at = at
        self.reply_deadline = deadline
        self.reply_clock = StageClock(started_at=at, deadline=deadline, unit=LimitUnit(unit))

    def stop_reply_clock(self) -> None:
        self.reply_deadline = None
        self.reply_clock = None

    def note(self, text: str) -> None:
        if text:
            self.notes.append(text)

    @property
    def is_open(self) -> bool:
        return self.status not in TERMINAL

    @property
    def first_call(self) -> Call:
        return Call(ticket_id=self.id, caller_name=self.caller_name,
                    caller_phone=self.caller_phone, channel=self.channel,
                    received_at=self.received_at)

    def linked_to(self) -> dict[str, tuple[LinkedWorkKind, UUID]]:
        """The case and the incident the ticket became, by `linked_work_key`."""
        linked = {}
        if self.case_id is not None:
            linked[linked_work_key(LinkedWorkKind.GRID_CASE, self.case_id)] = (
                LinkedWorkKind.GRID_CASE, self.case_id)
        if self.incident_id is not None:
            linked[linked_work_key(LinkedWorkKind.INCIDENT, self.incident_id)] = (
                LinkedWorkKind.INCIDENT, self.incident_id)
        return linked

    def unfinished_work(self) -> list[str]:
        """What the ticket became that is not finished yet, in words ("grid case <id>
        (handled)"), for the refusals that must wait for it."""
        unfinished = []
        for key, (kind, work_id) in self.linked_to().items():
            known = self.linked_work.get(key)
            if known is not None and known.finished:
                continue
            stage = f" ({known.stage})" if known is not None else ""
            unfinished.append(f"{kind.value.replace('-', ' ')} {work_id}{stage}")
        return unfinished

    def _check_linked_work_finished(self, attempted: str) -> None:
        """A transferred ticket waits for the case or incident it became."""
        unfinished = self.unfinished_work()
        if self.status is TicketStatus.TRANSFERRED and unfinished:
            verb = "is" if len(unfinished) == 1 else "are"
            self.refuse(attempted, f"{' and '.join(unfinished)} {verb} not finished yet: the "
                        "reply is filled from its result when it is, then the caller is "
                        "called back")

    def _check_department_scope(self, attempted: str, actor: Actor) -> None:
        """A department user acts only on tickets assigned to their own department."""
        if actor.role is Role.DEPARTMENT_USER and actor.department != self.department:
            self.refuse(attempted, f"assigned to {self.department}, not {actor.department}")

    # --- commands --------------------------------------------------------------------------

    @classmethod
    def receive(
        cls,
        *,
        ticket_id: UUID,
        channel: Channel,
        ticket_type: TicketType,
        topic: str,
        description: str,
        caller_name: str | None,
        caller_phone: str | None,
        location: GeoPoint | None,
        grid_cell: str | None,
        proposed_department: str,
        possible_duplicates: list[UUID],
        actor: Actor,
        at: datetime,
    ) -> HotlineTicket:
        """A call or message taken on the service number (the caller may stay anonymous)."""
        if location is not None and not isinstance(location, GeoPoint):
            raise InvalidValue("location must be a point")
        return cls._create(
            cls.Received,
            id=ticket_id,
            timestamp=at,
            actor=actor,
            channel=Channel(channel).value,
            ticket_type=TicketType(ticket_type).value,
            topic=topic,
            description=checked_text("description", description),
            caller_name=checked_text("caller name", caller_name, required=False,
                                     limit=MAX_NAME) or None,
            caller_phone=check_phone(caller_phone),
            location=location,
            grid_cell=grid_cell,
            proposed_department=proposed_department,
            possible_duplicates=list(possible_duplicates),
        )

    def answer_at_first_contact(self, *, answer: str, actor: Actor, at: datetime) -> None:
        self.require_status("answer at first contact", TicketStatus.RECEIVED)
        self.record(self.AnsweredAtFirstContact, actor=actor, at=at,
                    answer=checked_text("answer", answer))

    def assign(self, *, department: str, deadline: datetime, limit_unit: LimitUnit, note: str,
               actor: Actor, at: datetime, review_note: str = "") -> None:
        """Route the ticket to a department. Routing a returned ticket to another department
        accepts the return (recorded first, with the reviewer's `review_note`)."""
        self.require_status("assign", TicketStatus.RECEIVED, TicketStatus.RETURNED)
        if self.return_awaiting_review:
            if department == self.returned_by:
                self.refuse("assign", f"{department} already returned it as not its matter: "
                            "to send it back, reject the return with a reason")
            self.record(self.ReturnAccepted, actor=actor, at=at,
                        note=checked_text("note", review_note, required=False))
        self.record(self.Assigned, actor=actor, at=at, department=department, deadline=deadline,
                    limit_unit=LimitUnit(limit_unit).value,
                    note=checked_text("note", note, required=False))

    def accept(self, *, note: str, actor: Actor, at: datetime) -> None:
        self.require_status("accept", TicketStatus.ASSIGNED)
        self._check_department_scope("accept", actor)
        self.record(self.Accepted, actor=actor, at=at,
                    note=checked_text("note", note, required=False))

    @property
    def return_awaiting_review(self) -> bool:
        """Whether a department's return waits for the centre's review (a ticket the caller
        sent back to the centre is returned too, but by no department)."""
        return self.status is TicketStatus.RETURNED and self.returned_by is not None

    def return_to_centre(self, *, reason: str, suggested_department: str | None, actor: Actor,
                         at: datetime) -> None:
        self.require_status("return to the centre", TicketStatus.ASSIGNED)
        self._check_department_scope("return to the centre", actor)
        if suggested_department is not None and suggested_department == self.department:
            raise InvalidValue("the suggested department is the one returning the ticket")
        self.record(self.ReturnedToCentre, actor=actor, at=at,
                    reason=checked_text("reason", reason),
                    suggested_department=suggested_department)

    def reject_return(self, *, reason: str, actor: Actor, at: datetime) -> None:
        """The centre rejects the department's return: the ticket is assigned to it again,
        owing its reply by the deadline it had (the time in between counts)."""
        self.require_status("reject the return of", TicketStatus.RETURNED)
        if not self.return_awaiting_review:
            self.refuse("reject the return of", "no department returned it (the caller sent it "
                        "back to the centre): route it to a department")
        clock = self.returns[-1].clock if self.returns else None
        if clock is None:
            self.refuse("reject the return of", "no reply deadline ran when it was returned")
        self.record(self.ReturnRejected, actor=actor, at=at,
                    reason=checked_text("reason", reason), deadline=clock.deadline)

    def reply_to_caller(self, *, reply: str, actor: Actor, at: datetime) -> None:
        """The department's reply; whether it came by the deadline is recorded with it."""
        self.require_status("reply to", TicketStatus.ACCEPTED)
        self._check_department_scope("reply to", actor)
        on_time = self.reply_deadline is None or at <= self.reply_deadline
        self.record(self.Replied, actor=actor, at=at, reply=checked_text("reply", reply),
                    on_time=on_time)

    def call_back(self, *, satisfaction: Satisfaction, note: str, reopen_deadline: datetime,
                  reopen_unit: LimitUnit, actor: Actor, at: datetime) -> None:
        """Record the caller's satisfaction (a callback needs the caller's phone number).
        Dissatisfied with a department's reply: the ticket reopens to that department with
        `reopen_deadline`. A ticket that became a case or an incident is called back only
        once that work is finished and its result is the reply; dissatisfied with it, the
        ticket goes back to the centre to be routed again."""
        self._check_linked_work_finished("call back")
        self.require_status("call back", TicketStatus.REPLIED)
        satisfaction = Satisfaction(satisfaction)
        if self.caller_phone is None:
            self.refuse("call back", "the caller left no phone number")
        from_linked_work = self.replied_from_linked_work
        self.record(self.CalledBack, actor=actor, at=at, satisfaction=satisfaction.value,
                    note=checked_text("note", note, required=False))
        if satisfaction is not Satisfaction.DISSATISFIED:
            return
        if from_linked_work:
            work = ", ".join(f"{kind.value.replace('-', ' ')} {work_id}"
                             for kind, work_id in self.linked_to().values())
            self.record(self.ReopenedToCentre, actor=actor, at=at,
                        reason=f"the caller is dissatisfied with the result of {work}")
        else:
            self.record(self.Reopened, actor=actor, at=at, deadline=reopen_deadline,
                        limit_unit=LimitUnit(reopen_unit).value)

    def merge_into(self, primary: HotlineTicket, *, note: str, actor: Actor,
                   at: datetime) -> None:
        """Merge this ticket into `primary` (same matter): this one becomes `merged`, the
        primary keeps this call and those merged into this one before. Both must be saved
        together."""
        if primary.id == self.id:
            raise InvalidValue("a ticket cannot be merged into itself")
        self.require_status(f"merge into ticket {primary.id}", *MERGEABLE)
        if not primary.is_open:
            raise IllegalTransition(primary.KIND, primary.id, primary.status.value,
                                    f"merge ticket {self.id} into")
        calls = [self.first_call, *self.extra_calls]
        self.record(self.MergedInto, actor=actor, at=at, primary_id=primary.id,
                    note=checked_text("note", note, required=False))
        primary.record(primary.CallMerged, actor=actor, at=max(at, primary.modified_on),
                       merged_ticket_id=self.id, calls=[c.as_fact() for c in calls])

    def convert_to_case(self, *, case_id: UUID, actor: Actor, at: datetime,
                        category: str | None = None, urgency: str | None = None) -> bool:
        """Record that the ticket became a grid case, to be reported in `category` with
        `urgency` (None: the case exists already). The same case again changes nothing
        (False: a coordinator may retry); another case is refused."""
        if self.case_id == case_id:
            return False
        self.require_status("convert to a grid case", *TRANSFERABLE)
        if self.case_id is not None:
            self.refuse("convert to a grid case", f"it already became grid case {self.case_id}")
        self.record(self.ConvertedToCase, actor=actor, at=at, case_id=case_id,
                    category=category, urgency=urgency)
        return True

    def escalate_to_incident(self, *, incident_id: UUID, actor: Actor, at: datetime,
                             new_incident: dict[str, str | None] | None = None) -> bool:
        """Record that the ticket became (`new_incident`: what to report) or joined an
        incident; idempotent like `convert_to_case`."""
        if self.incident_id == incident_id:
            return False
        self.require_status("escalate to an incident", *TRANSFERABLE)
        if self.incident_id is not None:
            self.refuse("escalate to an incident",
                        f"it already joined incident {self.incident_id}")
        self.record(self.EscalatedToIncident, actor=actor, at=at, incident_id=incident_id,
                    new_incident=new_incident)
        return True

    def record_linked_progress(self, *, kind: LinkedWorkKind, work_id: UUID, stage: str,
                               detail: str, actor: Actor, at: datetime) -> bool:
        """Record that the case or incident the ticket became moved on. False (nothing
        recorded) when the ticket is finished or is not linked to that work."""
        kind = LinkedWorkKind(kind)
        key = linked_work_key(kind, work_id)
        if not self.is_open or key not in self.linked_to():
            return False
        self.record(self.LinkedWorkProgressed, actor=actor, at=max(at, self.modified_on),
                    kind=kind.value, work_id=work_id, stage=checked_text("stage", stage),
                    detail=checked_text("detail", detail, required=False))
        return True

    def record_linked_work_finished(self, *, kind: LinkedWorkKind, work_id: UUID, outcome: str,
                                    detail: str, department: str | None, actor: Actor,
                                    at: datetime) -> bool:
        """Record that the case or incident the ticket became is finished; once everything
        it became is finished, a transferred ticket gets its reply from their results and
        waits for the callback. False (nothing recorded) when the ticket is finished or is
        not linked to that work."""
        kind = LinkedWorkKind(kind)
        key = linked_work_key(kind, work_id)
        if not self.is_open or key not in self.linked_to():
            return False
        when = max(at, self.modified_on)
        self.record(self.LinkedWorkFinished, actor=actor, at=when, kind=kind.value,
                    work_id=work_id, outcome=checked_text("outcome", outcome),
                    detail=checked_text("detail", detail), department=department)
        if self.status is TicketStatus.TRANSFERRED and not self.unfinished_work():
            finished = [self.linked_work[k] for k in sorted(self.linked_to())]
            self.record(self.RepliedFromLinkedWork, actor=actor, at=when,
                        reply=" ".join(w.detail for w in finished),
                        department=next((w.department for w in finished
                                         if w.department), None))
        return True

    def close(self, *, note: str, actor: Actor, at: datetime) -> None:
        """Close after the callback; a replied ticket whose caller left no phone number
        cannot be called back and closes directly. A transferred ticket waits for its case
        or incident (it is replied to from its result)."""
        self._check_linked_work_finished("close")
        allowed = [TicketStatus.CALLED_BACK]
        if self.caller_phone is None:
            allowed.append(TicketStatus.REPLIED)
        self.require_status("close", *allowed)
        self.record(self.Closed, actor=actor, at=at,
                    note=checked_text("note", note, required=False))

    def summary(self) -> dict[str, Any]:
        """The ticket's current state as plain data; `PERSONAL_DATA` names the keys that
        hold the caller's personal data."""
        return {
            "id": str(self.id),
            "version": self.version,
            "status": self.status.value,
            "channel": self.channel.value,
            "ticket_type": self.ticket_type.value,
            "topic": self.topic,
            "description": self.description,
            "caller": {"name": self.caller_name, "phone": self.caller_phone},
            "location": self.location.to_geojson() if self.location else None,
            "grid_cell": self.grid_cell,
            "proposed_department": self.proposed_department,
            "department": self.department,
            "received_at": self.received_at.isoformat(),
            "assigned_at": iso_or_none(self.assigned_at),
            "reply_deadline": iso_or_none(self.reply_deadline),
            "assignment_count": self.assignment_count,
            "return_count": self.return_count,
            "returned_by": self.returned_by,
            "answer": self.answer,
            "reply": self.reply,
            "replied_at": iso_or_none(self.replied_at),
            "replied_on_time": self.replied_on_time,
            "satisfaction": self.satisfaction.value if self.satisfaction else None,
            "callbacks": self.callbacks,
            "reopen_count": self.reopen_count,
            "possible_duplicates": [str(i) for i in self.possible_duplicates],
            "extra_calls": [c.as_dict() for c in self.extra_calls],
            "merged_into": str(self.merged_into) if self.merged_into else None,
            "case_id": str(self.case_id) if self.case_id else None,
            "incident_id": str(self.incident_id) if self.incident_id else None,
            "closed_at": iso_or_none(self.closed_at),
            "notes": list(self.notes),
            "return_reason": self.return_reason,
            "returns": returns_as_dicts(self.returns,
                                        item_is_returned=self.return_awaiting_review),
            "linked_work": [w.summary() for _, w in sorted(self.linked_work.items())],
            "replied_from_linked_work": self.replied_from_linked_work,
        }
