"""The hotline ticket follows the grid case or incident it became ("one number takes it, one
network handles it"): a process that follows the grid-case and incident event logs and
records on the ticket what became of its work, up to the reply filled from the result.

It is a process across streams (`cityops.domain.processes.following`, the eventsourcing
library's process-application pattern): the hotline application owns the tickets it changes,
so it records the new ticket events together with the position of the case or incident
notification that caused them (`Tracking(<upstream>, <notification id>)`) in one
transaction of its own store. A restart resumes after the last tracked position, and a
notification is never applied twice: another save at a position not after the tracked one
is refused by the store (two processes following at once take turns the same way).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError, Tracking

from cityops.domain.actors import Actor, Role
from cityops.domain.errors import DomainError, NotFound
from cityops.domain.gridcases.application import GridCases
from cityops.domain.gridcases.case import GridCase, RejectionReason
from cityops.domain.hotline.application import HotlineTickets
from cityops.domain.hotline.ticket import TRANSFERABLE, HotlineTicket, LinkedWorkKind
from cityops.domain.incidents.application import Incidents
from cityops.domain.incidents.incident import Incident, LinkKind
from cityops.domain.permissions import check_permitted
from cityops.domain.processes.following import CrossStreamProcess, Upstream, topics_of

log = logging.getLogger(__name__)

FOLLOW_UP_ACTOR = Actor("ticket-follow-up", Role.SYSTEM)
"""Who records on a ticket what became of its case or incident."""
MAX_ATTEMPTS = 5
"""Decisions remade on a ticket an operator changed at the same moment, before giving up
until the next round."""

REJECTION_WORDS = {
    RejectionReason.DUPLICATE: "it duplicates grid case {duplicate_of}, which deals with it",
    RejectionReason.NOT_CITY_MANAGEMENT: "it is not a city-management matter",
    RejectionReason.NOT_REPRODUCIBLE: "an inspector could not find the problem on site",
}


@dataclass(frozen=True)
class TicketStep:
    """What one upstream event means for one ticket: `apply` changes the ticket (True) or
    finds nothing to record (False)."""

    ticket_id: UUID
    apply: Callable[[HotlineTicket], bool]


class TicketFollowUp(CrossStreamProcess):
    """Follows the grid cases and incidents that tickets became, and records their progress
    and end on the tickets (where the reply is filled from the result)."""

    name = "ticket-follow-up"

    def __init__(self, hotline: HotlineTickets, grid_cases: GridCases,
                 incidents: Incidents) -> None:
        self.hotline = hotline
        self.grid_cases = grid_cases
        self.incidents = incidents
        super().__init__(hotline, {
            grid_cases.name: Upstream(
                grid_cases,
                topics_of(GridCase.Handled, GridCase.ReworkOrdered, GridCase.Closed,
                          GridCase.Rejected),
                lambda event, tracking: self._apply(
                    tracking.application_name, tracking.notification_id,
                    self._case_steps(event))),
            incidents.name: Upstream(
                incidents,
                topics_of(Incident.Contained, Incident.Closed, Incident.Dismissed),
                lambda event, tracking: self._apply(
                    tracking.application_name, tracking.notification_id,
                    self._incident_steps(event))),
        })

    # --- recording on the tickets ----------------------------------------------------------

    def _apply(self, upstream: str, notification_id: int, steps: list[TicketStep]) -> bool:
        """Record on the tickets what one notification means for them, with its position;
        True when something was recorded (by this process)."""
        if not steps:
            return False
        check_permitted("ticket.follow-linked-work", FOLLOW_UP_ACTOR)
        tracking = Tracking(upstream, notification_id)
        for _ in range(MAX_ATTEMPTS):
            changed = [ticket for ticket in self._decide(steps) if ticket.pending_events]
            if not changed:
                return False
            try:
                self.hotline.save_tracked(*changed, tracking=tracking)
                return True
            except IntegrityError:
                if self.position(upstream) >= notification_id:
                    return False  # another process recorded it
                # An operator changed one of the tickets at the same moment: decide again.
        raise RuntimeError(f"{self.name}: notification {notification_id} of {upstream} "
                           f"conflicted {MAX_ATTEMPTS} times; trying again next round")

    def _decide(self, steps: list[TicketStep]) -> Iterable[HotlineTicket]:
        tickets: dict[UUID, HotlineTicket] = {}
        for step in steps:
            ticket = tickets.get(step.ticket_id)
            if ticket is None:
                try:
                    ticket = tickets[step.ticket_id] = self.hotline.ticket(step.ticket_id)
                except NotFound:
                    log.warning("%s: hotline ticket %s does not exist", self.name,
                                step.ticket_id)
                    continue
            try:
                step.apply(ticket)
            except DomainError as error:
                # The ticket went its own way (say, closed at the same time): nothing to add.
                log.info("%s: nothing recorded on ticket %s: %s", self.name, ticket.id, error)
        return tickets.values()

    # --- grid cases ------------------------------------------------------------------------

    def _case_steps(self, event: Any) -> list[TicketStep]:
        case_id = event.originator_id
        first: object = self.grid_cases.repository.get(case_id, version=1)
        if not isinstance(first, GridCase) or first.ticket_id is None:
            return []
        case: object = self.grid_cases.repository.get(case_id, version=event.originator_version)
        assert isinstance(case, GridCase) and case.ticket_id is not None
        at = event.timestamp
        department = case.department or case.returned_by
        if isinstance(event, GridCase.Handled):
            return [self._progress(case, "handled",
                                   f"{department} reports it handled: {case.result}", at)]
        if isinstance(event, GridCase.ReworkOrdered):
            return [self._progress(case, "rework",
                                   f"the on-site check found it not fixed: back to "
                                   f"{department} for rework", at)]
        if isinstance(event, GridCase.Closed):
            detail = (f"Grid case {case.id}: {department} handled it ({case.result}); an "
                      "inspector confirmed on site that it is fixed, and the case is closed.")
            return [self._finished(case, "closed", detail, department, at)]
        if isinstance(event, GridCase.Rejected):
            assert case.rejection_reason is not None
            why = REJECTION_WORDS[case.rejection_reason].format(
                duplicate_of=case.duplicate_of)
            note = f" ({event.note})" if event.note else ""
            detail = f"Grid case {case.id} was not taken on: {why}{note}."
            return [self._finished(case, "rejected", detail, None, at)]
        return []

    @staticmethod
    def _progress(case: GridCase, stage: str, detail: str, at: Any) -> TicketStep:
        def apply(ticket: HotlineTicket) -> bool:
            return ticket.record_linked_progress(
                kind=LinkedWorkKind.GRID_CASE, work_id=case.id, stage=stage, detail=detail,
                actor=FOLLOW_UP_ACTOR, at=at)

        assert case.ticket_id is not None
        return TicketStep(case.ticket_id, apply)

    @staticmethod
    def _finished(case: GridCase, outcome: str, detail: str, department: str | None,
                  at: Any) -> TicketStep:
        def apply(ticket: HotlineTicket) -> bool:
            if ticket.case_id is None and ticket.status in TRANSFERABLE:
                # The conversion was interrupted after the case was reported (the case
                # names the ticket): the follow-up completes it.
                ticket.convert_to_case(case_id=case.id, actor=FOLLOW_UP_ACTOR,
                                       at=max(at, ticket.modified_on))
            return ticket.record_linked_work_finished(
                kind=LinkedWorkKind.GRID_CASE, work_id=case.id, outcome=outcome,
                detail=detail, department=department, actor=FOLLOW_UP_ACTOR, at=at)

        assert case.ticket_id is not None
        return TicketStep(case.ticket_id, apply)

    # --- incidents -------------------------------------------------------------------------

    def _incident_steps(self, event: Any) -> list[TicketStep]:
        incident: object = self.incidents.repository.get(event.originator_id,
                                                         version=event.originator_version)
        assert isinstance(incident, Incident)
        tickets = [link.target_id for link in incident.links
                   if link.kind is LinkKind.HOTLINE_TICKET]
        if not tickets:
            return []
        at = event.timestamp
        title = f"Incident {incident.id} ({incident.title})"
        if isinstance(event, Incident.Contained):
            detail = f"the situation is under control{_note(event.note)}"
            return [self._incident_step(t, incident.id, at, stage="contained", detail=detail)
                    for t in tickets]
        if isinstance(event, Incident.Closed):
            detail = f"{title} is over and closed{_note(event.note)}."
            return [self._incident_step(t, incident.id, at, outcome="closed", detail=detail)
                    for t in tickets]
        if isinstance(event, Incident.Dismissed):
            detail = f"{title} was checked and found a false report ({event.reason})."
            return [self._incident_step(t, incident.id, at, outcome="dismissed",
                                        detail=detail) for t in tickets]
        return []

    @staticmethod
    def _incident_step(ticket_id: UUID, incident_id: UUID, at: Any, *, detail: str,
                       stage: str | None = None, outcome: str | None = None) -> TicketStep:
        def apply(ticket: HotlineTicket) -> bool:
            if outcome is None:
                assert stage is not None
                return ticket.record_linked_progress(
                    kind=LinkedWorkKind.INCIDENT, work_id=incident_id, stage=stage,
                    detail=detail, actor=FOLLOW_UP_ACTOR, at=at)
            return ticket.record_linked_work_finished(
                kind=LinkedWorkKind.INCIDENT, work_id=incident_id, outcome=outcome,
                detail=detail, department=None, actor=FOLLOW_UP_ACTOR, at=at)

        return TicketStep(ticket_id, apply)


def _note(note: str) -> str:
    return f": {note}" if note else ""
