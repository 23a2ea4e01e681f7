"""A hotline ticket follows the grid case or incident it became ("one number takes it, one
network handles it"): it records how that work progresses, gets its reply from the result
once the work is finished, and only then is the caller called back (issue 9, item 5).

The follow-up is a process over the grid-case and incident logs with a tracked position in
the hotline's store; here everything runs in memory, the storage back ends are tested in
tests/integration/test_ticket_follow_up.py."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.persistence import IntegrityError, Tracking

from cityops.domain.actors import Actor, Role
from cityops.domain.catalogue import Catalogue
from cityops.domain.commands import CommandContext
from cityops.domain.errors import IllegalTransition
from cityops.domain.gridcases.application import GridCases
from cityops.domain.gridcases.commands import (
    CloseCase,
    DispatchCase,
    HandleCase,
    RegisterCase,
    RejectCase,
    ReportCase,
    VerifyCase,
)
from cityops.domain.hotline.application import HotlineTickets
from cityops.domain.hotline.commands import (
    AssignTicket,
    CallBackCaller,
    CloseTicket,
    ConvertTicketToCase,
    EscalateTicketToIncident,
    ReceiveTicket,
)
from cityops.domain.hotline.ticket import TicketStatus, case_id_for_ticket, incident_id_for_ticket
from cityops.domain.incidents.application import Incidents
from cityops.domain.incidents.commands import (
    CloseIncident,
    ContainIncident,
    DismissIncident,
    IncidentCommand,
    LinkToIncident,
    ReportIncident,
    RespondToIncident,
    VerifyIncident,
)
from cityops.domain.incidents.incident import LinkKind
from cityops.domain.processes.ticket_follow_up import TicketFollowUp

POPO = {"PERSISTENCE_MODULE": "eventsourcing.popo"}
OPERATOR = Actor("op-li", Role.HOTLINE_OPERATOR)


@dataclass
class Centre:
    """The hotline, the grid cases and the incidents of one city, and the follow-up."""

    hotline: HotlineTickets
    grid_cases: GridCases
    incidents: Incidents
    follow_up: TicketFollowUp
    clock: Any
    cast: Any
    places: Any

    def call(self, **overrides: Any) -> UUID:
        facts: dict[str, Any] = {
            "channel": "phone", "ticket_type": "complaint", "topic": "street-lighting",
            "description": "The street lamp at the corner is out", "actor": OPERATOR,
            "caller_name": "Zhang Wei", "caller_phone": "13800138000",
            "location": self.places.in_d01,
        }
        facts.update(overrides)
        context = CommandContext(**{k: facts.pop(k) for k in ("actor", "at", "command_id")
                                    if k in facts})
        return self.hotline.handle(ReceiveTicket(**facts), context).subject

    def to_case(self, ticket_id: UUID, *, record_on_ticket: bool = True) -> UUID:
        """What `CityOperations.ticket_to_case` does (optionally interrupted half-way)."""
        ticket = self.hotline.ticket(ticket_id)
        assert ticket.location is not None
        case_id = self.grid_cases.handle(
            ReportCase(source="hotline", category="C0201", description=ticket.description,
                       location=ticket.location, ticket_id=ticket_id,
                       case_id=case_id_for_ticket(ticket_id)),
            CommandContext(actor=OPERATOR)).subject
        if record_on_ticket:
            self.hotline.handle(
                ConvertTicketToCase(ticket_id=ticket_id, case_id=case_id),
                CommandContext(actor=OPERATOR))
        return case_id

    def to_incident(self, ticket_id: UUID) -> UUID:
        """What `CityOperations.ticket_to_incident` does for a new incident."""
        incident_id = self.incidents.handle(
            ReportIncident(category="accident-disaster", incident_type="traffic-accident",
                title="Two cars collided", location=self.places.in_d01, source="hotline",
                incident_id=incident_id_for_ticket(ticket_id)),
            CommandContext(actor=OPERATOR)).subject
        self.hotline.handle(
            EscalateTicketToIncident(ticket_id=ticket_id, incident_id=incident_id),
            CommandContext(actor=OPERATOR))
        self.incidents.handle(
            LinkToIncident(incident_id=incident_id, kind=LinkKind.HOTLINE_TICKET,
                target_id=ticket_id),
            CommandContext(actor=OPERATOR))
        return incident_id

    def case_step(self, step: str, case_id: UUID, **kw: Any) -> None:
        self.clock.advance(minutes=20)
        cases, cast = self.grid_cases, self.cast
        if step == "register":
            cases.handle(RegisterCase(case_id=case_id), CommandContext(actor=cast.dispatcher))
        elif step == "dispatch":
            cases.handle(
                DispatchCase(case_id=case_id, department="urban-management"),
                CommandContext(actor=cast.dispatcher))
        elif step == "handle":
            cases.handle(
                HandleCase(case_id=case_id, result="lamp replaced"),
                CommandContext(actor=Actor("urb-1", Role.DEPARTMENT_USER, "urban-management")))
        elif step == "verify":
            cases.handle(
                VerifyCase(case_id=case_id, fixed=kw.get("fixed", True), note=kw.get("note", "")),
                CommandContext(actor=cast.inspector))
        elif step == "close":
            cases.handle(CloseCase(case_id=case_id), CommandContext(actor=cast.dispatcher))
        elif step == "reject":
            cases.handle(
                RejectCase(case_id=case_id, reason="not-reproducible", note="no lamp out there"),
                CommandContext(actor=cast.dispatcher))
        else:
            raise AssertionError(step)

    def incident_step(self, step: str, incident_id: UUID) -> None:
        self.clock.advance(minutes=20)
        commands: dict[str, IncidentCommand] = {
            "verify": VerifyIncident(incident_id=incident_id),
            "respond": RespondToIncident(incident_id=incident_id, level="IV",
                                         reason="crews sent"),
            "contain": ContainIncident(incident_id=incident_id, note="road reopened"),
            "close": CloseIncident(incident_id=incident_id, note="vehicles towed away"),
            "dismiss": DismissIncident(incident_id=incident_id, reason="nobody there"),
        }
        if step not in commands:
            raise AssertionError(step)
        self.incidents.handle(commands[step], CommandContext(actor=self.cast.dispatcher))

    def follow(self) -> None:
        self.follow_up.catch_up()

    def call_back(self, ticket_id: UUID, satisfaction: str = "satisfied") -> None:
        self.clock.advance(minutes=5)
        self.hotline.handle(
            CallBackCaller(ticket_id=ticket_id, satisfaction=satisfaction),
            CommandContext(actor=OPERATOR))


@pytest.fixture
def centre(catalogue: Catalogue, clock: Any, locator: Any, open_reports: Any, cast: Any,
           places: Any) -> Iterator[Centre]:
    hotline = HotlineTickets(POPO, catalogue=catalogue, locator=locator,
                             open_tickets=open_reports, clock=clock)
    grid_cases = GridCases(POPO, catalogue=catalogue, locator=locator,
                           open_reports=open_reports, clock=clock)
    incidents = Incidents(POPO, catalogue=catalogue, clock=clock)
    yield Centre(hotline, grid_cases, incidents,
                 TicketFollowUp(hotline, grid_cases, incidents), clock, cast, places)
    for app in (hotline, grid_cases, incidents):
        app.close()


def test_a_ticket_that_became_a_case_is_replied_from_the_case_result_when_it_closes(
        centre: Centre) -> None:
    ticket_id = centre.call()
    case_id = centre.to_case(ticket_id)
    # Before the case is finished, the caller cannot be called back or the ticket closed.
    with pytest.raises(IllegalTransition, match=f"grid case {case_id} is not finished yet"):
        centre.call_back(ticket_id)
    with pytest.raises(IllegalTransition, match="is not finished yet"):
        centre.hotline.handle(CloseTicket(ticket_id=ticket_id), CommandContext(actor=OPERATOR))
    for step in ("register", "dispatch", "handle"):
        centre.case_step(step, case_id)
    centre.follow()
    ticket = centre.hotline.ticket(ticket_id)
    assert ticket.status is TicketStatus.TRANSFERRED
    [work] = ticket.summary()["linked_work"]
    assert (work["kind"], work["id"], work["stage"], work["finished"]) == (
        "grid-case", str(case_id), "handled", False)
    assert "lamp replaced" in work["detail"]
    with pytest.raises(IllegalTransition, match=rf"grid case {case_id} \(handled\) is not "
                                                "finished yet"):
        centre.call_back(ticket_id)

    centre.case_step("verify", case_id)
    centre.case_step("close", case_id)
    centre.follow()
    ticket = centre.hotline.ticket(ticket_id)
    assert ticket.status is TicketStatus.REPLIED
    assert ticket.reply is not None
    assert str(case_id) in ticket.reply and "lamp replaced" in ticket.reply
    assert "urban-management" in ticket.reply
    assert ticket.department == "urban-management"
    assert ticket.summary()["replied_from_linked_work"] is True
    events = [type(e).__name__ for e in centre.hotline.events.get(ticket_id)]
    assert events[-3:] == ["LinkedWorkProgressed", "LinkedWorkFinished",
                           "RepliedFromLinkedWork"]
    assert all(e.actor.role is Role.SYSTEM for e in centre.hotline.events.get(ticket_id)
               if type(e).__name__.startswith(("Linked", "RepliedFrom")))

    centre.call_back(ticket_id)
    centre.hotline.handle(CloseTicket(ticket_id=ticket_id), CommandContext(actor=OPERATOR))
    assert centre.hotline.ticket(ticket_id).status is TicketStatus.CLOSED


def test_rework_is_recorded_as_the_case_progresses(centre: Centre) -> None:
    ticket_id = centre.call()
    case_id = centre.to_case(ticket_id)
    for step in ("register", "dispatch", "handle"):
        centre.case_step(step, case_id)
    centre.case_step("verify", case_id, fixed=False, note="still dark at night")
    centre.follow()
    ticket = centre.hotline.ticket(ticket_id)
    assert ticket.status is TicketStatus.TRANSFERRED
    assert ticket.summary()["linked_work"][0]["stage"] == "rework"


def test_a_rejected_case_gives_the_reply_with_its_reason(centre: Centre) -> None:
    ticket_id = centre.call()
    case_id = centre.to_case(ticket_id)
    centre.case_step("reject", case_id)
    centre.follow()
    ticket = centre.hotline.ticket(ticket_id)
    assert ticket.status is TicketStatus.REPLIED
    assert ticket.reply == (f"Grid case {case_id} was not taken on: an inspector could not "
                            "find the problem on site (no lamp out there).")


def test_a_ticket_that_became_an_incident_waits_for_its_closing(centre: Centre) -> None:
    ticket_id = centre.call(topic="traffic-accident", ticket_type="request-for-help",
                            description="Two cars collided at the crossing")
    incident_id = centre.to_incident(ticket_id)
    # The caller cannot be told "satisfied" while the incident is still open.
    with pytest.raises(IllegalTransition, match=f"incident {incident_id} is not finished"):
        centre.call_back(ticket_id)
    for step in ("verify", "respond", "contain"):
        centre.incident_step(step, incident_id)
    centre.follow()
    ticket = centre.hotline.ticket(ticket_id)
    assert ticket.status is TicketStatus.TRANSFERRED
    assert ticket.summary()["linked_work"][0]["stage"] == "contained"
    with pytest.raises(IllegalTransition, match=r"\(contained\) is not finished yet"):
        centre.call_back(ticket_id)
    centre.incident_step("close", incident_id)
    centre.follow()
    ticket = centre.hotline.ticket(ticket_id)
    assert ticket.status is TicketStatus.REPLIED
    assert ticket.reply == (f"Incident {incident_id} (Two cars collided) is over and closed: "
                            "vehicles towed away.")
    centre.call_back(ticket_id)
    assert centre.hotline.ticket(ticket_id).status is TicketStatus.CALLED_BACK


def test_every_ticket_linked_to_an_incident_is_replied_when_it_is_dismissed(
        centre: Centre) -> None:
    first = centre.call(topic="traffic-accident", ticket_type="request-for-help")
    incident_id = centre.to_incident(first)
    second = centre.call(topic="traffic-accident", ticket_type="request-for-help")
    centre.hotline.handle(
        EscalateTicketToIncident(ticket_id=second, incident_id=incident_id),
        CommandContext(actor=OPERATOR))
    centre.incidents.handle(
        LinkToIncident(incident_id=incident_id, kind=LinkKind.HOTLINE_TICKET, target_id=second),
        CommandContext(actor=OPERATOR))
    centre.incident_step("dismiss", incident_id)
    centre.follow()
    for ticket_id in (first, second):
        ticket = centre.hotline.ticket(ticket_id)
        assert ticket.status is TicketStatus.REPLIED
        assert ticket.reply is not None and "false report (nobody there)" in ticket.reply


def test_a_ticket_that_became_both_is_replied_when_both_are_finished(centre: Centre) -> None:
    ticket_id = centre.call()
    incident_id = centre.to_incident(ticket_id)
    case_id = centre.to_case(ticket_id)
    centre.case_step("reject", case_id)
    centre.follow()
    ticket = centre.hotline.ticket(ticket_id)
    assert ticket.status is TicketStatus.TRANSFERRED
    with pytest.raises(IllegalTransition, match=f"incident {incident_id} is not finished"):
        centre.call_back(ticket_id)
    centre.incident_step("dismiss", incident_id)
    centre.follow()
    ticket = centre.hotline.ticket(ticket_id)
    assert ticket.status is TicketStatus.REPLIED
    assert ticket.reply is not None
    assert str(case_id) in ticket.reply and str(incident_id) in ticket.reply


def test_dissatisfied_with_the_result_the_ticket_goes_back_to_the_centre(
        centre: Centre) -> None:
    ticket_id = centre.call()
    case_id = centre.to_case(ticket_id)
    for step in ("register", "dispatch", "handle", "verify", "close"):
        centre.case_step(step, case_id)
    centre.follow()
    centre.call_back(ticket_id, "dissatisfied")
    ticket = centre.hotline.ticket(ticket_id)
    assert ticket.status is TicketStatus.RETURNED
    assert (ticket.reopen_count, ticket.reply, ticket.department) == (1, None, None)
    assert ticket.return_reason == (f"the caller is dissatisfied with the result of grid "
                                    f"case {case_id}")
    # Routed again, by default to the department that did the work, which replies itself.
    centre.hotline.handle(AssignTicket(ticket_id=ticket_id), CommandContext(actor=OPERATOR))
    assert centre.hotline.ticket(ticket_id).department == "urban-management"


def test_a_conversion_interrupted_after_the_case_was_reported_is_completed(
        centre: Centre) -> None:
    ticket_id = centre.call()
    case_id = centre.to_case(ticket_id, record_on_ticket=False)
    assert centre.hotline.ticket(ticket_id).status is TicketStatus.RECEIVED
    for step in ("register", "dispatch", "handle", "verify", "close"):
        centre.case_step(step, case_id)
    centre.follow()
    ticket = centre.hotline.ticket(ticket_id)
    assert (ticket.case_id, ticket.status) == (case_id, TicketStatus.REPLIED)


def test_the_position_covers_what_does_not_concern_tickets(centre: Centre) -> None:
    case_id = centre.grid_cases.handle(
        ReportCase(source="inspector", category="C0201", description="lamp out",
                   location=centre.places.in_d01),
        CommandContext(actor=centre.cast.inspector)).subject
    for step in ("register", "dispatch", "handle"):
        centre.case_step(step, case_id)
    assert centre.follow_up.lag()["gridcases"] > 0
    centre.follow()
    assert centre.follow_up.lag() == {"gridcases": 0, "incidents": 0}
    assert centre.follow_up.process_batch() == 0
    assert centre.hotline.recorder.max_notification_id() is None


def test_a_notification_already_followed_is_never_applied_again(centre: Centre) -> None:
    ticket_id = centre.call()
    case_id = centre.to_case(ticket_id)
    centre.case_step("reject", case_id)
    centre.follow()
    version = centre.hotline.ticket(ticket_id).version
    position = centre.follow_up.position("gridcases")
    # The same notification once more, as a second process or a restart would meet it.
    rejected = centre.grid_cases.recorder.select_notifications(start=position, limit=1)[0]
    event = centre.grid_cases.mapper.to_domain_event(rejected)
    assert centre.follow_up._apply("gridcases", rejected.id,
                                   centre.follow_up._case_steps(event)) is False
    ticket = centre.hotline.ticket(ticket_id)
    ticket.record_linked_progress(kind="grid-case", work_id=case_id, stage="again",
                                  detail="", actor=centre.cast.system, at=centre.clock())
    with pytest.raises(IntegrityError):
        centre.hotline.save_tracked(ticket, tracking=Tracking("gridcases", rejected.id))
    assert centre.hotline.ticket(ticket_id).version == version
