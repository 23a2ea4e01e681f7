"""A hotline ticket converted into a grid case ("one number takes it, one network handles
it"): a process that follows the hotline log and reports the grid case of each ticket the
centre converted.

The conversion is recorded on the ticket first (`HotlineTicket.ConvertedToCase`, with the
case's id derived from the ticket's, the category and the urgency chosen), after everything
the report would refuse has been checked (`coordination.CityOperations.ticket_to_case`);
this process, which belongs to the grid-case application and tracks its position in the
hotline log there, reports the case from that event. The report's command id is derived from
the ticket (its receipt makes a report run again after a crash change nothing) and the case
id is the ticket's, so the case exists once however often the event is followed; a
conversion recorded before this process existed (the case reported first) is left alone.
"""

from __future__ import annotations

import logging
from typing import Any

from eventsourcing.persistence import Tracking

from cityops.domain.commands import CommandContext
from cityops.domain.errors import DomainError
from cityops.domain.gridcases.application import GridCases
from cityops.domain.gridcases.case import CaseSource
from cityops.domain.gridcases.commands import ReportCase
from cityops.domain.hotline.application import HotlineTickets
from cityops.domain.hotline.ticket import HotlineTicket
from cityops.domain.processes.following import CrossStreamProcess, Upstream, topics_of

log = logging.getLogger(__name__)


def report_command_id(ticket_id: object) -> str:
    """The command id of the report of the case a ticket became (the same since before the
    process: a case reported then has the receipt)."""
    return f"ticket-to-case:{ticket_id}"


class CaseConversions(CrossStreamProcess):
    """Reports the grid case of each ticket converted into one."""

    name = "case-conversions"

    def __init__(self, hotline: HotlineTickets, grid_cases: GridCases) -> None:
        self.hotline = hotline
        self.grid_cases = grid_cases
        super().__init__(grid_cases, {
            hotline.name: Upstream(hotline, topics_of(HotlineTicket.ConvertedToCase),
                                   self._converted),
        })

    def _converted(self, event: Any, tracking: Tracking) -> bool:
        if event.category is not None and not self.grid_cases.exists(event.case_id):
            ticket: object = self.hotline.repository.get(event.originator_id,
                                                          version=event.originator_version)
            assert isinstance(ticket, HotlineTicket) and ticket.location is not None
            try:
                self.grid_cases.handle(ReportCase(
                    source=CaseSource.HOTLINE, category=event.category,
                    description=ticket.description, location=ticket.location,
                    urgency=event.urgency, ticket_id=ticket.id, case_id=event.case_id,
                ), CommandContext(actor=event.actor, at=event.timestamp,
                                  command_id=report_command_id(ticket.id)))
            except DomainError as error:
                # Checked before the ticket recorded it; only a catalogue changed since
                # could refuse it. The ticket says which case it awaits: logged for the centre.
                log.error("%s: grid case %s of hotline ticket %s not reported: %s",
                          self.name, event.case_id, ticket.id, error)
        self.track(tracking)
        return True
