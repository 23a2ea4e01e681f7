"""Commands that span two streams: a hotline ticket that becomes a grid case or an incident
("one number takes it, one network handles it"), a hazard alarm escalated into an incident,
a resource assigned to an incident, a grid case linked to an incident.

Each stream has its own event store, so no transaction spans both. Every step uses an id
and a command id derived from the source (ticket, alarm, resource+incident): a step that
already happened is not repeated, so a command interrupted half-way is completed by simply
running it again. A step is not started on a stale view either: each command checks its
subject against the version its user saw (`require_seen_version`) before its first step.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from cityops.domain.actors import Actor
from cityops.domain.errors import InvalidValue
from cityops.domain.gridcase import CaseSource
from cityops.domain.gridcases import GridCases
from cityops.domain.hazard import incident_id_for_alarm
from cityops.domain.hazards import HazardSources
from cityops.domain.hotline import case_id_for_ticket, incident_id_for_ticket
from cityops.domain.hotlinetickets import HotlineTickets
from cityops.domain.incident import Incident, IncidentSource, IncidentStatus, LinkKind
from cityops.domain.incidents import Incidents
from cityops.domain.resources import Resources

INCIDENT_OPEN_FOR_RESOURCES = (IncidentStatus.VERIFIED, IncidentStatus.RESPONDING)


@dataclass
class CityOperations:
    """The cross-stream commands of the command centre."""

    grid_cases: GridCases
    incidents: Incidents
    hazards: HazardSources
    hotline: HotlineTickets
    resources: Resources

    def ticket_to_case(self, ticket_id: UUID, *, actor: Actor, category: str | None = None,
                       urgency: str = "normal") -> UUID:
        """A ticket about a city-management problem becomes a grid case (source: hotline)."""
        ticket = self.hotline.ticket(ticket_id)
        self.hotline.require_seen_version(ticket)
        topic = self.hotline.catalogue.hotline_topic(ticket.topic)
        chosen = category or topic.case_category
        if chosen is None:
            raise InvalidValue(
                f"hotline topic {ticket.topic!r} is not a city-management matter: "
                "give the grid-case category"
            )
        if ticket.location is None:
            raise InvalidValue(f"hotline ticket {ticket_id} has no location: a grid case needs one")
        case_id = case_id_for_ticket(ticket_id)
        if not self.grid_cases.exists(case_id):
            self.grid_cases.report(
                source=CaseSource.HOTLINE, category=chosen, description=ticket.description,
                location=ticket.location, urgency=urgency, ticket_id=ticket_id, case_id=case_id,
                actor=actor, command_id=f"ticket-to-case:{ticket_id}",
            )
        self.hotline.convert_to_case(ticket_id, case_id=case_id, actor=actor,
                                     command_id=f"ticket-to-case:{ticket_id}")
        return case_id

    def ticket_to_incident(self, ticket_id: UUID, *, actor: Actor,
                           incident_id: UUID | None = None, category: str | None = None,
                           incident_type: str | None = None, title: str | None = None,
                           level: str | None = None) -> UUID:
        """A ticket about an emergency joins an incident (`incident_id`) or becomes a new one
        (category, type and title needed)."""
        ticket = self.hotline.ticket(ticket_id)
        self.hotline.require_seen_version(ticket)
        if incident_id is None:
            if not (category and incident_type and title):
                raise InvalidValue("a new incident needs category, incident type and title")
            if ticket.location is None:
                raise InvalidValue(f"hotline ticket {ticket_id} has no location")
            incident_id = incident_id_for_ticket(ticket_id)
            if not self.incidents.exists(incident_id):
                self.incidents.report(
                    category=category, incident_type=incident_type, title=title,
                    location=ticket.location, source=IncidentSource.HOTLINE,
                    description=ticket.description, level=level, source_ref=str(ticket_id),
                    incident_id=incident_id, actor=actor,
                    command_id=f"ticket-to-incident:{ticket_id}",
                )
        else:
            self.incidents.incident(incident_id)
        # The ticket side first: it refuses a ticket already escalated to another incident.
        self.hotline.escalate_to_incident(ticket_id, incident_id=incident_id, actor=actor,
                                          command_id=f"ticket-to-incident:{ticket_id}:"
                                          f"{incident_id}")
        self.incidents.link(incident_id, kind=LinkKind.HOTLINE_TICKET, target_id=ticket_id,
                            actor=actor,
                            command_id=f"ticket-to-incident:{ticket_id}:{incident_id}:link")
        return incident_id

    def escalate_alarm(self, source_id: UUID, alarm_id: UUID, *, actor: Actor,
                       category: str | None = None, incident_type: str | None = None,
                       title: str | None = None, level: str | None = None,
                       incident_id: UUID | None = None) -> UUID:
        """A hazard alarm becomes an incident at the hazard source (category, type and title
        needed), or joins `incident_id`."""
        source = self.hazards.source(source_id)
        self.hazards.require_seen_version(source)
        if alarm_id not in source.alarms:
            raise InvalidValue(f"hazard source {source_id} has no alarm {alarm_id}")
        if incident_id is None:
            if not (category and incident_type and title):
                raise InvalidValue("a new incident needs category, incident type and title")
            incident_id = incident_id_for_alarm(alarm_id)
            if not self.incidents.exists(incident_id):
                self.incidents.report(
                    category=category, incident_type=incident_type, title=title,
                    location=source.location, source=IncidentSource.ALARM,
                    description=f"Alarm at {source.name}", level=level,
                    source_ref=str(alarm_id), incident_id=incident_id, actor=actor,
                    command_id=f"alarm-to-incident:{alarm_id}",
                )
        else:
            self.incidents.incident(incident_id)
        # The hazard side first: it refuses an alarm already escalated to another incident.
        self.hazards.escalate_alarm(source_id, alarm_id, incident_id=incident_id, actor=actor,
                                    command_id=f"alarm-to-incident:{alarm_id}:{incident_id}")
        self.incidents.link(incident_id, kind=LinkKind.HAZARD_ALARM, target_id=alarm_id,
                            actor=actor,
                            command_id=f"alarm-to-incident:{alarm_id}:{incident_id}:link")
        return incident_id

    def assign_resource(self, incident_id: UUID, resource_id: UUID, *, actor: Actor) -> UUID:
        """Dispatch an available resource to an incident and record it on both.

        Each side is checked for what it already records, so running this again after an
        interruption completes it without dispatching twice."""
        incident = self.incidents.incident(incident_id)
        self.incidents.require_seen_version(incident)
        incident.require_status("assign a resource to", *INCIDENT_OPEN_FOR_RESOURCES)
        resource = self.resources.resource(resource_id)
        if resource.incident_id != incident_id:
            self.resources.dispatch(resource_id, incident_id=incident_id, actor=actor)
        if not _assigned(incident, resource_id):
            self.incidents.assign_resource(incident_id, resource_id=resource_id,
                                           kind=resource.kind, actor=actor)
        return resource_id

    def release_resource(self, incident_id: UUID, resource_id: UUID, *, actor: Actor) -> UUID:
        """Stand a resource down from an incident (before arrival) and record it on both."""
        self.incidents.require_seen_version(self.incidents.incident(incident_id))
        resource = self.resources.resource(resource_id)
        if resource.incident_id == incident_id and resource.status.value in ("dispatched",
                                                                               "en-route"):
            self.resources.stand_down(resource_id, actor=actor)
        if _assigned(self.incidents.incident(incident_id), resource_id):
            self.incidents.release_resource(incident_id, resource_id=resource_id, actor=actor)
        return resource_id

    def link_case(self, incident_id: UUID, case_id: UUID, *, actor: Actor) -> UUID:
        """Link a grid case to an incident (for example a road collapse during a flood)."""
        self.grid_cases.case(case_id)
        return self.incidents.link(incident_id, kind=LinkKind.GRID_CASE, target_id=case_id,
                                   actor=actor)


def _assigned(incident: Incident, resource_id: UUID) -> bool:
    return any(a.resource_id == resource_id and a.released_at is None for a in incident.resources)
