"""The hotline application: receives calls and messages on the single service number, routes
them to departments, supervises reply deadlines, calls back, merges calls about one matter,
and hands city-management matters and emergencies over to grid cases and incidents (the
handler of every hotline command; the commands themselves, as values:
`domain/hotline/commands.py`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from uuid import UUID, uuid4, uuid5

from cityops.domain.actors import Actor
from cityops.domain.application import (
    COMMAND_NAMESPACE,
    CityApplication,
    Clock,
    UnitOfWork,
    system_clock,
)
from cityops.domain.catalogue import Catalogue, HotlineTopic, TimeLimit
from cityops.domain.commands import handles
from cityops.domain.duplicates import DuplicatePolicy, OpenReportFinder, propose_duplicates
from cityops.domain.errors import InvalidValue
from cityops.domain.hotline.commands import (
    AcceptTicket,
    AnswerTicket,
    AssignTicket,
    CallBackCaller,
    CloseTicket,
    ConvertTicketToCase,
    EscalateTicketToIncident,
    MergeTicket,
    ReceiveTicket,
    ReplyToCaller,
    ReturnTicket,
    ReviewTicketReturn,
)
from cityops.domain.hotline.ticket import (
    HotlineTicket,
    ReplyTimeliness,
    TicketStatus,
    case_id_for_ticket,
    incident_id_for_ticket,
    reply_timeliness,
)
from cityops.domain.ports import GridLocator


def propose_department(catalogue: Catalogue, topic: HotlineTopic, area_code: str | None) -> str:
    """The department a ticket should go to: a routing rule written for the topic itself
    wins; a city-management topic is then routed like its grid-case category (so area rules
    apply); otherwise the topic's own department."""
    if any(rule.matches(topic.code, area_code) for rule in catalogue.routing_rules):
        return catalogue.route(topic.code, area_code)
    if topic.case_category is not None:
        return catalogue.route(topic.case_category, area_code)
    return topic.department


class HotlineTickets(CityApplication):
    """Takes, routes and follows up the calls to the service hotline."""

    name = "hotline"
    runs_processes = True
    """The ticket follow-up (`TicketFollowUp`) records what it learns from the grid cases
    and incidents here, together with its position in their logs."""

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        *,
        catalogue: Catalogue,
        locator: GridLocator,
        open_tickets: OpenReportFinder,
        duplicate_policy: DuplicatePolicy | None = None,
        clock: Clock = system_clock,
    ) -> None:
        super().__init__(env, clock=clock)
        self.catalogue = catalogue
        self.locator = locator
        self.open_tickets = open_tickets
        """Open tickets near a point (a read model), with the topic code as category."""
        self.duplicate_policy = duplicate_policy or DuplicatePolicy()

    # --- helpers ----------------------------------------------------------------------------

    def ticket(self, ticket_id: UUID) -> HotlineTicket:
        return self.load(HotlineTicket, ticket_id)

    def timeliness(self, ticket: HotlineTicket,
                   now: datetime | None = None) -> ReplyTimeliness | None:
        """On time / due soon / overdue while a department owes the reply (None otherwise)."""
        return reply_timeliness(ticket, now or self.clock(), self.catalogue.calendar,
                                self.catalogue.yellow_fraction)

    def _reply_deadline(self, ticket: HotlineTicket, at: datetime) -> tuple[datetime, TimeLimit]:
        limit = self.catalogue.hotline_topic(ticket.topic).reply_limit
        return limit.deadline(at, self.catalogue.calendar), limit

    # --- command handlers (run through `handle`, see `domain/commands.py`) ----------------

    @handles(ReceiveTicket)
    def receive(self, command: ReceiveTicket, uow: UnitOfWork) -> list[HotlineTicket]:
        """A call or message is located, given a proposed department and checked for
        possible duplicates, which are only proposed."""
        topic, location, when = command.topic, command.location, uow.now
        hotline_topic = self.catalogue.hotline_topic(topic)
        # A derived id makes a repeated reception (same command id) land on the same ticket.
        ticket_id = (uuid5(COMMAND_NAMESPACE, f"hotline-ticket:{uow.command_id}")
                     if uow.command_id else uuid4())

        def already_received() -> None:
            # The new ticket's first event conflicts on save when its id is taken.
            if uow.exists(ticket_id):
                self.ticket(ticket_id).refuse("receive", "it was already received")

        uow.on_conflict(already_received)
        cell = None
        duplicates: list[UUID] = []
        if location is not None:
            # A call about a place outside the city is still taken; it is just not in a grid
            # cell, so only the topic routes it.
            cell = self.locator.locate_cell(location)
            policy = self.duplicate_policy
            candidates = self.open_tickets.open_reports_near(location, policy.radius_m,
                                                             when - policy.window)
            duplicates = [d for d in propose_duplicates(
                category=topic, location=location, at=when, candidates=candidates,
                policy=policy,
            ) if d != ticket_id]
        return [HotlineTicket.receive(
            ticket_id=ticket_id, channel=command.channel, ticket_type=command.ticket_type,
            topic=topic, description=command.description, caller_name=command.caller_name,
            caller_phone=command.caller_phone, location=location, grid_cell=cell,
            proposed_department=propose_department(self.catalogue, hotline_topic, cell),
            possible_duplicates=duplicates, actor=uow.actor, at=when,
        )]

    @handles(AnswerTicket)
    def answer_at_first_contact(self, command: AnswerTicket,
                                uow: UnitOfWork) -> list[HotlineTicket]:
        """The operator answers the caller directly and the ticket closes."""
        ticket = uow.load(HotlineTicket, command.ticket_id)
        ticket.answer_at_first_contact(answer=command.answer, actor=uow.actor, at=uow.now)
        return [ticket]

    @handles(AssignTicket)
    def assign(self, command: AssignTicket, uow: UnitOfWork) -> list[HotlineTicket]:
        """Routed to a department with the topic's reply deadline."""
        if command.department is not None:
            self.catalogue.department(command.department)
        ticket = uow.load(HotlineTicket, command.ticket_id)
        self._assign(ticket, department=command.department, note=command.note,
                     actor=uow.actor, at=uow.now)
        return [ticket]

    def _assign(self, ticket: HotlineTicket, *, department: str | None, note: str,
                actor: Actor, at: datetime, review_note: str = "") -> None:
        target = department or ticket.proposed_department
        deadline, limit = self._reply_deadline(ticket, at)
        ticket.assign(department=target, deadline=deadline, limit_unit=limit.unit, note=note,
                      actor=actor, at=at, review_note=review_note)

    @handles(ReviewTicketReturn)
    def review_return(self, command: ReviewTicketReturn,
                      uow: UnitOfWork) -> list[HotlineTicket]:
        """Accepted: routed to another department; rejected: back to the returning one."""
        if command.department is not None:
            self.catalogue.department(command.department)
        ticket = uow.load(HotlineTicket, command.ticket_id)
        if command.accept:
            ticket.require_status("accept the return of", TicketStatus.RETURNED)
            self._assign(ticket, department=command.department, note="", actor=uow.actor,
                         at=uow.now, review_note=command.reason)
        else:
            if command.department is not None:
                raise InvalidValue("a rejected return goes back to the department that "
                                   "returned it: give no department")
            ticket.reject_return(reason=command.reason, actor=uow.actor, at=uow.now)
        return [ticket]

    @handles(AcceptTicket)
    def accept(self, command: AcceptTicket, uow: UnitOfWork) -> list[HotlineTicket]:
        """The department takes the ticket on."""
        ticket = uow.load(HotlineTicket, command.ticket_id)
        ticket.accept(note=command.note, actor=uow.actor, at=uow.now)
        return [ticket]

    @handles(ReturnTicket)
    def return_to_centre(self, command: ReturnTicket, uow: UnitOfWork) -> list[HotlineTicket]:
        """The department sends the ticket back as not its matter."""
        if command.suggested_department is not None:
            self.catalogue.department(command.suggested_department)
        ticket = uow.load(HotlineTicket, command.ticket_id)
        ticket.return_to_centre(reason=command.reason,
                                suggested_department=command.suggested_department,
                                actor=uow.actor, at=uow.now)
        return [ticket]

    @handles(ReplyToCaller)
    def reply(self, command: ReplyToCaller, uow: UnitOfWork) -> list[HotlineTicket]:
        """The department's reply to the caller (on time or not is recorded)."""
        ticket = uow.load(HotlineTicket, command.ticket_id)
        ticket.reply_to_caller(reply=command.reply, actor=uow.actor, at=uow.now)
        return [ticket]

    @handles(CallBackCaller)
    def call_back(self, command: CallBackCaller, uow: UnitOfWork) -> list[HotlineTicket]:
        """Dissatisfied with a reply reopens the ticket with a new reply deadline."""
        ticket = uow.load(HotlineTicket, command.ticket_id)
        deadline, limit = self._reply_deadline(ticket, uow.now)
        ticket.call_back(satisfaction=command.satisfaction, note=command.note,
                         reopen_deadline=deadline, reopen_unit=limit.unit, actor=uow.actor,
                         at=uow.now)
        return [ticket]

    @handles(MergeTicket)
    def merge_into(self, command: MergeTicket, uow: UnitOfWork) -> list[HotlineTicket]:
        """The ticket is merged into the primary one; both are saved together."""
        ticket = uow.load(HotlineTicket, command.ticket_id)
        primary = uow.load(HotlineTicket, command.primary_id)
        ticket.merge_into(primary, note=command.note, actor=uow.actor, at=uow.now)
        return [ticket, primary]

    @handles(ConvertTicketToCase)
    def convert_to_case(self, command: ConvertTicketToCase,
                        uow: UnitOfWork) -> list[HotlineTicket]:
        """The ticket records the grid case it became (which the grid-case application
        reports from the ticket's event: `processes.case_conversions`)."""
        target = command.case_id or case_id_for_ticket(command.ticket_id)
        ticket = uow.load(HotlineTicket, command.ticket_id)
        ticket.convert_to_case(case_id=target, actor=uow.actor, at=uow.now,
                               category=command.category,
                               urgency=None if command.urgency is None else str(command.urgency))
        return [ticket]

    @handles(EscalateTicketToIncident)
    def escalate_to_incident(self, command: EscalateTicketToIncident,
                             uow: UnitOfWork) -> list[HotlineTicket]:
        """The ticket records the incident it became or joined (which the incident
        application reports or links from the ticket's event: `processes.
        incident_escalations`)."""
        target = command.incident_id or incident_id_for_ticket(command.ticket_id)
        ticket = uow.load(HotlineTicket, command.ticket_id)
        ticket.escalate_to_incident(
            incident_id=target, actor=uow.actor, at=uow.now,
            new_incident=None if command.new_incident is None else command.new_incident.as_fact())
        return [ticket]

    @handles(CloseTicket)
    def close_ticket(self, command: CloseTicket, uow: UnitOfWork) -> list[HotlineTicket]:
        """A ticket closes after the callback (or a transferred one at the end)."""
        ticket = uow.load(HotlineTicket, command.ticket_id)
        ticket.close(note=command.note, actor=uow.actor, at=uow.now)
        return [ticket]
