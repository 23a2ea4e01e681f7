"""The hotline application: receives calls and messages on the single service number, routes
them to departments, supervises reply deadlines, calls back, merges calls about one matter,
and hands city-management matters and emergencies over to grid cases and incidents.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from uuid import UUID, uuid4, uuid5

from eventsourcing.persistence import ProcessRecorder

from cityops.domain.actors import Actor
from cityops.domain.application import COMMAND_NAMESPACE, CityApplication, Clock, system_clock
from cityops.domain.catalogue import Catalogue, HotlineTopic, TimeLimit
from cityops.domain.duplicates import DuplicatePolicy, OpenReportFinder, propose_duplicates
from cityops.domain.errors import InvalidValue
from cityops.domain.geometry import GeoPoint
from cityops.domain.hotline.ticket import (
    Channel,
    HotlineTicket,
    ReplyTimeliness,
    Satisfaction,
    TicketStatus,
    TicketType,
    case_id_for_ticket,
    incident_id_for_ticket,
    reply_timeliness,
)
from cityops.domain.ports import GridLocator
from cityops.domain.values import parse_enum


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

    def construct_recorder(self) -> ProcessRecorder:
        """A process recorder: the ticket follow-up (`TicketFollowUp`) records what it
        learns from the grid cases and incidents together with its position in their logs."""
        return self.factory.process_recorder()

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


    # --- commands ---------------------------------------------------------------------------

    def receive(
        self,
        *,
        channel: Channel | str,
        ticket_type: TicketType | str,
        topic: str,
        description: str,
        actor: Actor,
        caller_name: str | None = None,
        caller_phone: str | None = None,
        location: GeoPoint | None = None,
        at: datetime | None = None,
        command_id: str | None = None,
    ) -> UUID:
        """Take a call or message: it is located, given a proposed department and checked
        for possible duplicates (same topic, near, recent), which are only proposed."""
        chosen_channel = parse_enum(Channel, channel, "channel")
        chosen_type = parse_enum(TicketType, ticket_type, "ticket type")
        hotline_topic = self.catalogue.hotline_topic(topic)
        when = self.now(at)
        # A derived id makes a repeated reception (same command id) land on the same ticket.
        ticket_id = (uuid5(COMMAND_NAMESPACE, f"hotline-ticket:{command_id}") if command_id
                     else uuid4())

        def decide() -> list[HotlineTicket]:
            cell = None
            duplicates: list[UUID] = []
            if location is not None:
                # A call about a place outside the city is still taken; it is just not in a
                # grid cell, so only the topic routes it.
                cell = self.locator.locate_cell(location)
                policy = self.duplicate_policy
                candidates = self.open_tickets.open_reports_near(
                    location, policy.radius_m, when - policy.window
                )
                duplicates = [d for d in propose_duplicates(
                    category=topic, location=location, at=when, candidates=candidates,
                    policy=policy,
                ) if d != ticket_id]
            return [HotlineTicket.receive(
                ticket_id=ticket_id, channel=chosen_channel, ticket_type=chosen_type, topic=topic,
                description=description, caller_name=caller_name, caller_phone=caller_phone,
                location=location, grid_cell=cell,
                proposed_department=propose_department(self.catalogue, hotline_topic, cell),
                possible_duplicates=duplicates, actor=actor, at=when,
            )]

        def already_received() -> None:
            # The new ticket's first event conflicts on save when its id is taken.
            if self.exists(ticket_id):
                self.ticket(ticket_id).refuse("receive", "it was already received")

        return self.command("ticket.receive", actor, command_id, {
            "channel": chosen_channel, "ticket_type": chosen_type, "topic": topic,
            "description": description, "caller_name": caller_name,
            "caller_phone": caller_phone,
            "location": [location.lon, location.lat] if location else None,
        }, decide, explain_conflict=already_received)

    def answer_at_first_contact(self, ticket_id: UUID, *, answer: str, actor: Actor,
                                at: datetime | None = None,
                                command_id: str | None = None) -> UUID:
        """The operator answers the caller directly and the ticket closes."""
        when = self.now(at)

        def decide() -> list[HotlineTicket]:
            ticket = self.ticket(ticket_id)
            ticket.answer_at_first_contact(answer=answer, actor=actor, at=when)
            return [ticket]

        return self.command("ticket.answer", actor, command_id,
                             {"ticket_id": ticket_id, "answer": answer}, decide)

    def assign(self, ticket_id: UUID, *, actor: Actor, department: str | None = None,
               note: str = "", at: datetime | None = None,
               command_id: str | None = None) -> UUID:
        """Route the ticket to a department (the proposed one unless the operator overrides),
        with the topic's reply deadline counted on the business calendar from now."""
        when = self.now(at)
        if department is not None:
            self.catalogue.department(department)

        def decide() -> list[HotlineTicket]:
            ticket = self.ticket(ticket_id)
            self._assign(ticket, department=department, note=note, actor=actor, at=when)
            return [ticket]

        return self.command("ticket.assign", actor, command_id, {
            "ticket_id": ticket_id, "department": department, "note": note,
        }, decide)

    def _assign(self, ticket: HotlineTicket, *, department: str | None, note: str,
                actor: Actor, at: datetime, review_note: str = "") -> None:
        target = department or ticket.proposed_department
        deadline, limit = self._reply_deadline(ticket, at)
        ticket.assign(department=target, deadline=deadline, limit_unit=limit.unit, note=note,
                      actor=actor, at=at, review_note=review_note)

    def review_return(self, ticket_id: UUID, *, accept: bool, actor: Actor,
                      department: str | None = None, reason: str = "",
                      at: datetime | None = None, command_id: str | None = None) -> UUID:
        """The centre reviews a department's return. Accept: the ticket is routed to another
        department (`department`, default the proposed one) with a new reply deadline.
        Reject (`reason` required): back to the returning department, owing its reply by the
        deadline it had."""
        when = self.now(at)
        if department is not None:
            self.catalogue.department(department)

        def decide() -> list[HotlineTicket]:
            ticket = self.ticket(ticket_id)
            if accept:
                ticket.require_status("accept the return of", TicketStatus.RETURNED)
                self._assign(ticket, department=department, note="", actor=actor, at=when,
                             review_note=reason)
            else:
                if department is not None:
                    raise InvalidValue("a rejected return goes back to the department that "
                                       "returned it: give no department")
                ticket.reject_return(reason=reason, actor=actor, at=when)
            return [ticket]

        return self.command("ticket.review-return", actor, command_id, {
            "ticket_id": ticket_id, "accept": accept, "department": department,
            "reason": reason,
        }, decide)

    def accept(self, ticket_id: UUID, *, actor: Actor, note: str = "",
               at: datetime | None = None, command_id: str | None = None) -> UUID:
        """The department takes the ticket on."""
        when = self.now(at)

        def decide() -> list[HotlineTicket]:
            ticket = self.ticket(ticket_id)
            ticket.accept(note=note, actor=actor, at=when)
            return [ticket]

        return self.command("ticket.accept", actor, command_id,
                             {"ticket_id": ticket_id, "note": note}, decide)

    def return_to_centre(self, ticket_id: UUID, *, reason: str, actor: Actor,
                         suggested_department: str | None = None, at: datetime | None = None,
                         command_id: str | None = None) -> UUID:
        """The department sends the ticket back as not its matter (it may suggest another)."""
        when = self.now(at)
        if suggested_department is not None:
            self.catalogue.department(suggested_department)

        def decide() -> list[HotlineTicket]:
            ticket = self.ticket(ticket_id)
            ticket.return_to_centre(reason=reason, suggested_department=suggested_department,
                                    actor=actor, at=when)
            return [ticket]

        return self.command("ticket.return", actor, command_id, {
            "ticket_id": ticket_id, "reason": reason,
            "suggested_department": suggested_department,
        }, decide)

    def reply(self, ticket_id: UUID, *, reply: str, actor: Actor, at: datetime | None = None,
              command_id: str | None = None) -> UUID:
        """The department's reply to the caller (on time or not is recorded)."""
        when = self.now(at)

        def decide() -> list[HotlineTicket]:
            ticket = self.ticket(ticket_id)
            ticket.reply_to_caller(reply=reply, actor=actor, at=when)
            return [ticket]

        return self.command("ticket.reply", actor, command_id,
                             {"ticket_id": ticket_id, "reply": reply}, decide)

    def call_back(self, ticket_id: UUID, *, satisfaction: Satisfaction | str, actor: Actor,
                  note: str = "", at: datetime | None = None,
                  command_id: str | None = None) -> UUID:
        """Ask the caller whether they are satisfied; dissatisfied with a reply reopens the
        ticket to the same department with a new reply deadline."""
        answer = parse_enum(Satisfaction, satisfaction, "satisfaction", "satisfactions")
        when = self.now(at)

        def decide() -> list[HotlineTicket]:
            ticket = self.ticket(ticket_id)
            deadline, limit = self._reply_deadline(ticket, when)
            ticket.call_back(satisfaction=answer, note=note, reopen_deadline=deadline,
                             reopen_unit=limit.unit, actor=actor, at=when)
            return [ticket]

        return self.command("ticket.callback", actor, command_id, {
            "ticket_id": ticket_id, "satisfaction": answer, "note": note,
        }, decide)

    def merge_into(self, ticket_id: UUID, primary_id: UUID, *, actor: Actor, note: str = "",
                   at: datetime | None = None, command_id: str | None = None) -> UUID:
        """Merge a ticket into the primary ticket of the same matter; both are saved in one
        transaction. Returns the merged ticket's id."""
        when = self.now(at)
        if ticket_id == primary_id:
            raise InvalidValue("a ticket cannot be merged into itself")

        def decide() -> list[HotlineTicket]:
            ticket = self.ticket(ticket_id)
            primary = self.ticket(primary_id)
            ticket.merge_into(primary, note=note, actor=actor, at=when)
            return [ticket, primary]

        return self.command("ticket.merge", actor, command_id, {
            "ticket_id": ticket_id, "primary_id": primary_id, "note": note,
        }, decide)

    def convert_to_case(self, ticket_id: UUID, *, actor: Actor, case_id: UUID | None = None,
                        at: datetime | None = None, command_id: str | None = None) -> UUID:
        """Record that the ticket became a grid case (created by the grid-case application,
        by default with the id `case_id_for_ticket`); returns the case id. Repeating it for
        the same case changes nothing."""
        when = self.now(at)
        target = case_id or case_id_for_ticket(ticket_id)

        def decide() -> list[HotlineTicket]:
            ticket = self.ticket(ticket_id)
            ticket.convert_to_case(case_id=target, actor=actor, at=when)
            return [ticket]

        self.command("ticket.convert-to-case", actor, command_id,
                      {"ticket_id": ticket_id, "case_id": case_id}, decide)
        return target

    def escalate_to_incident(self, ticket_id: UUID, *, actor: Actor,
                             incident_id: UUID | None = None, at: datetime | None = None,
                             command_id: str | None = None) -> UUID:
        """Record that the ticket became an incident (default id `incident_id_for_ticket`) or
        joined an existing one (its id given); returns the incident id. Repeating it for the
        same incident changes nothing."""
        when = self.now(at)
        target = incident_id or incident_id_for_ticket(ticket_id)

        def decide() -> list[HotlineTicket]:
            ticket = self.ticket(ticket_id)
            ticket.escalate_to_incident(incident_id=target, actor=actor, at=when)
            return [ticket]

        self.command("ticket.escalate-to-incident", actor, command_id,
                      {"ticket_id": ticket_id, "incident_id": incident_id}, decide)
        return target

    def close_ticket(self, ticket_id: UUID, *, actor: Actor, note: str = "",
                     at: datetime | None = None, command_id: str | None = None) -> UUID:
        """Close a ticket after the callback (or a transferred one at the end)."""
        when = self.now(at)

        def decide() -> list[HotlineTicket]:
            ticket = self.ticket(ticket_id)
            ticket.close(note=note, actor=actor, at=when)
            return [ticket]

        return self.command("ticket.close", actor, command_id,
                             {"ticket_id": ticket_id, "note": note}, decide)
