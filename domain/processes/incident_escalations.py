"""A hotline ticket or a hazard alarm escalated into an incident: a process that follows the
hotline and hazard logs and reports the new incident, or links the ticket or alarm to the
incident it joins.

The escalation is recorded on the ticket or the alarm's hazard source first
(`HotlineTicket.EscalatedToIncident`, `HazardSource.AlarmEscalated`: the incident's id, and
for a new one what to report), after everything the incident's side would refuse has been
checked (`coordination.CityOperations`); this process, which belongs to the incident
application and tracks its positions in the hotline and hazard logs there, records the
incident's side from that event. Its commands' ids derive from the ticket or the alarm (the
same as before the process existed, so an incident reported then has its receipt), so a step
run again after a crash changes nothing, and a link already made is not made again.
"""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Tracking

from cityops.domain.actors import Actor
from cityops.domain.commands import CommandContext
from cityops.domain.errors import DomainError
from cityops.domain.geometry import GeoPoint
from cityops.domain.hazards.application import HazardSources
from cityops.domain.hazards.source import HazardSource
from cityops.domain.hotline.application import HotlineTickets
from cityops.domain.hotline.ticket import HotlineTicket
from cityops.domain.incidents.application import Incidents
from cityops.domain.incidents.commands import LinkToIncident, NewIncident, ReportIncident
from cityops.domain.incidents.incident import IncidentSource, LinkKind
from cityops.domain.processes.following import CrossStreamProcess, Upstream, topics_of

log = logging.getLogger(__name__)

def ticket_command_id(ticket_id: UUID) -> str:
    """The command id of the report of the incident a ticket became."""
    return f"ticket-to-incident:{ticket_id}"


def alarm_command_id(alarm_id: UUID) -> str:
    """The command id of the report of the incident an alarm became."""
    return f"alarm-to-incident:{alarm_id}"


class IncidentEscalations(CrossStreamProcess):
    """Reports the incident a ticket or an alarm became, and links it to the incident."""

    name = "incident-escalations"

    def __init__(self, hotline: HotlineTickets, hazards: HazardSources,
                 incidents: Incidents) -> None:
        self.hotline = hotline
        self.hazards = hazards
        self.incidents = incidents
        super().__init__(incidents, {
            hotline.name: Upstream(hotline, topics_of(HotlineTicket.EscalatedToIncident),
                                   self._ticket_escalated),
            hazards.name: Upstream(hazards, topics_of(HazardSource.AlarmEscalated),
                                   self._alarm_escalated),
        })

    def _ticket_escalated(self, event: Any, tracking: Tracking) -> bool:
        ticket: object = self.hotline.repository.get(event.originator_id,
                                                      version=event.originator_version)
        assert isinstance(ticket, HotlineTicket)
        return self._escalated(
            event, tracking, kind=LinkKind.HOTLINE_TICKET, subject=ticket.id,
            command_id=ticket_command_id(ticket.id), source=IncidentSource.HOTLINE,
            location=ticket.location, description=ticket.description)

    def _alarm_escalated(self, event: Any, tracking: Tracking) -> bool:
        source: object = self.hazards.repository.get(event.originator_id,
                                                      version=event.originator_version)
        assert isinstance(source, HazardSource)
        return self._escalated(
            event, tracking, kind=LinkKind.HAZARD_ALARM, subject=event.alarm_id,
            command_id=alarm_command_id(event.alarm_id), source=IncidentSource.ALARM,
            location=source.location, description=f"Alarm at {source.name}")

    def _escalated(self, event: Any, tracking: Tracking, *, kind: LinkKind, subject: UUID,
                   command_id: str, source: IncidentSource, location: GeoPoint | None,
                   description: str) -> bool:
        """Report the new incident (if the event asks for one and it is not there yet),
        then link the ticket or alarm to it, then record the position."""
        actor: Actor = event.actor
        incident_id: UUID = event.incident_id
        try:
            if event.new_incident is not None and not self.incidents.exists(incident_id):
                facts = NewIncident.from_fact(event.new_incident)
                assert location is not None  # checked before the escalation was recorded
                self.incidents.handle(ReportIncident(
                    category=facts.category, incident_type=facts.incident_type,
                    title=facts.title, level=facts.level, location=location, source=source,
                    description=description, source_ref=str(subject), incident_id=incident_id,
                ), CommandContext(actor=actor, at=event.timestamp, command_id=command_id))
            self.incidents.handle(
                LinkToIncident(incident_id=incident_id, kind=kind, target_id=subject),
                CommandContext(actor=actor, command_id=f"{command_id}:{incident_id}:link"))
        except DomainError as error:
            # Checked before the escalation was recorded; only an incident closed since (or
            # a catalogue changed) refuses it.
            log.error("%s: incident %s does not record %s %s: %s", self.name, incident_id,
                      kind.value, subject, error)
        self.track(tracking)
        return True
