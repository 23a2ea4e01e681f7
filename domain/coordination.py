"""Commands that span two streams: a hotline ticket that becomes a grid case or an incident
("one number takes it, one network handles it"), a hazard alarm escalated into an incident,
a resource assigned to an incident or leaving it, a grid case linked to an incident.

Each stream has its own event store, so no transaction spans both. Every step uses an id
and a command id derived from the source (ticket, alarm, resource+incident): a step that
already happened is not repeated, so a command interrupted half-way is completed by simply
running it again. A step is not started on a stale view either: each command checks its
subject against the version its user saw (`require_seen_version`) before its first step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from cityops.domain.actors import Actor
from cityops.domain.errors import InvalidValue, NotFound
from cityops.domain.geometry import GeoPoint
from cityops.domain.gridcases.application import GridCases
from cityops.domain.gridcases.case import CaseSource
from cityops.domain.hazards.application import HazardSources
from cityops.domain.hazards.source import incident_id_for_alarm
from cityops.domain.hotline.application import HotlineTickets
from cityops.domain.hotline.ticket import case_id_for_ticket, incident_id_for_ticket
from cityops.domain.incidents.application import Incidents
from cityops.domain.incidents.incident import IncidentSource, IncidentStatus, LinkKind
from cityops.domain.permissions import check_permitted
from cityops.domain.resources.application import Resources
from cityops.domain.resources.resource import ResourceStatus

INCIDENT_OPEN_FOR_RESOURCES = (IncidentStatus.VERIFIED, IncidentStatus.RESPONDING)
"""The incident states in which resources are sent to it (not while only reported, nor once
contained, closed, reviewed or dismissed)."""
ASSIGN_RESOURCE = "assign a resource to"
RECENT_INCIDENTS = 5
"""How many of the incidents a resource served last are checked for an assignment its
leaving has not ended yet (an interrupted release is completed by the next check)."""


@dataclass
class ResourceAssignments:
    """A resource's assignments to incidents, recorded on both streams: the resource's status
    says whom it serves, the incident lists the resources working for it (and counts its
    shortfall from them).

    A resource has at most one active assignment: whatever takes it off an incident (the
    centre's release, clearing the scene, a stand-down, a reassignment, deactivation, going
    out of service) ends its assignment on that incident too, at the time it left and by
    whoever made it leave. The incident's side is derived from the resource's own status
    history (`Resource.departures`) and named by the assignment it ends, so `settle` can be
    run any number of times, after any status change, and completes a release interrupted
    half-way (at the latest when the resource is next assigned)."""

    incidents: Incidents
    resources: Resources

    def settle(self, resource_id: UUID, *, actor: Actor) -> list[UUID]:
        """End, on each incident the resource has left, the assignment still open there;
        returns those incidents."""
        resource = self.resources.resource(resource_id)
        released = []
        for departure in resource.departures(RECENT_INCIDENTS):
            try:
                incident = self.incidents.incident(departure.incident_id)
            except NotFound:
                continue  # dispatched by its id alone, to an incident not recorded here
            number = incident.assignment_number(resource_id)
            if number is None:
                continue
            self.incidents.record_resource_departure(
                incident.id, resource_id=resource_id, how=departure.how,
                left_at=departure.at, actor=actor,
                command_id=f"resource-departure:{incident.id}:{resource_id}:{number}")
            released.append(incident.id)
        return released

    # Arriving on an incident: every way a resource is sent to one (the incident's one-click
    # assignment, the resource's dispatch and reassignment, from the API or the simulator)
    # goes through `_arrive`, so the incident always records it too.

    def assign(self, incident_id: UUID, resource_id: UUID, *, actor: Actor,
               command_id: str | None = None) -> UUID:
        """Assign a resource to an incident from the incident (the centre's one click): an
        available one is dispatched; one that serves it already is only recorded there if
        it is not yet (so running this again completes an interrupted assignment)."""
        if self.resources.resource(resource_id).serves(incident_id):
            return self._arrive(resource_id, incident_id, actor=actor, send=None)
        return self.dispatch(resource_id, incident_id=incident_id, actor=actor,
                             command_id=command_id)

    def dispatch(self, resource_id: UUID, *, incident_id: UUID, actor: Actor,
                 position: GeoPoint | None = None, at: datetime | None = None,
                 command_id: str | None = None) -> UUID:
        """Dispatch an available resource to an incident open for resources, recorded on
        both: dispatched on the resource, assigned on the incident."""
        return self._arrive(resource_id, incident_id, actor=actor, send=lambda admit: (
            self.resources.dispatch(resource_id, incident_id=incident_id, actor=actor,
                                    position=position, at=at, command_id=command_id,
                                    admit=admit)))

    def reassign(self, resource_id: UUID, *, incident_id: UUID, actor: Actor,
                 position: GeoPoint | None = None, at: datetime | None = None,
                 command_id: str | None = None) -> UUID:
        """Move a resource straight to another incident open for resources: released on the
        one it leaves and assigned on the new one, each recorded on both streams."""
        return self._arrive(resource_id, incident_id, actor=actor, send=lambda admit: (
            self.resources.reassign(resource_id, incident_id=incident_id, actor=actor,
                                    position=position, at=at, command_id=command_id,
                                    admit=admit)))

    def _arrive(self, resource_id: UUID, incident_id: UUID, *, actor: Actor,
                send: Callable[[Callable[[], None]], object] | None) -> UUID:
        """Send the resource (`send`: its dispatch or reassignment) to an incident and
        record it there; settle the incident it left.

        A missing incident (404) or one not open for resources (409) is refused before
        anything is recorded on either stream. The incident's check is made while the
        resource's command decides (`admit`), so a repeat of a command already done (same
        command id) is answered as such even if the incident has closed since. Each step is
        checked against what its stream already records (the incident's side is named by
        the resource's arrival, see `Resource.arrival`), so running this again after an
        interruption completes it without recording anything twice."""
        # Both streams' permissions first: no step is taken that the next would refuse.
        check_permitted("incident.assign-resource", actor)
        check_permitted("incident.record-resource-departure", actor)
        self.resources.require_seen_version(self.resources.resource(resource_id))
        self.incidents.require_seen_version(self.incidents.incident(incident_id))

        def admit() -> None:
            self.incidents.incident(incident_id).require_status(
                ASSIGN_RESOURCE, *INCIDENT_OPEN_FOR_RESOURCES)

        if send is None:
            admit()
        else:
            send(admit)
        # The incident it left records that first, so it is never active on two.
        self.settle(resource_id, actor=actor)
        self._record_arrival(incident_id, resource_id, actor=actor)
        return resource_id

    def _record_arrival(self, incident_id: UUID, resource_id: UUID, *, actor: Actor) -> None:
        """Record on the incident the assignment of a resource that serves it, if it does not
        list the resource yet (once per arrival, however often it is asked)."""
        resource = self.resources.resource(resource_id)
        arrival = resource.arrival()
        if arrival is None or resource.incident_id != incident_id:
            return  # a repeat of a command whose resource has moved on since
        if self.incidents.incident(incident_id).assignment(resource_id) is not None:
            return
        position, sent_at = arrival
        self.incidents.record_resource_arrival(
            incident_id, resource_id=resource_id, kind=resource.kind, sent_at=sent_at,
            actor=actor, command_id=f"resource-arrival:{incident_id}:{resource_id}:{position}")

    def release(self, incident_id: UUID, resource_id: UUID, *, actor: Actor) -> UUID:
        """The centre releases a resource from an incident, recorded on both: one that has
        not arrived is stood down, one on scene clears it (a depot or shelter closes)."""
        self.incidents.require_seen_version(self.incidents.incident(incident_id))
        released: list[UUID] = []
        if self.resources.exists(resource_id):
            resource = self.resources.resource(resource_id)
            if resource.serves(incident_id):
                if resource.status is not ResourceStatus.ON_SCENE:
                    self.resources.stand_down(resource_id, actor=actor)
                elif resource.mobile:
                    self.resources.clear_scene(resource_id, actor=actor)
                else:
                    self.resources.deactivate(resource_id, actor=actor)
            released = self.settle(resource_id, actor=actor)
        # Assigned on the incident's side only (the resource never served it): the centre's
        # release ends what its leaving did not.
        if (incident_id not in released
                and self.incidents.incident(incident_id).assignment(resource_id) is not None):
            self.incidents.release_resource(incident_id, resource_id=resource_id, actor=actor)
        return resource_id

    # The resource's own status changes that can take it off an incident: each is recorded
    # on the resource, then its incident records it too.

    def stand_down(self, resource_id: UUID, *, actor: Actor, position: GeoPoint | None = None,
                   at: datetime | None = None, command_id: str | None = None) -> UUID:
        """Cancel an assignment before arrival, recorded on the incident too."""
        subject = self.resources.stand_down(resource_id, actor=actor, position=position, at=at,
                                            command_id=command_id)
        self.settle(resource_id, actor=actor)
        return subject

    def clear_scene(self, resource_id: UUID, *, actor: Actor, position: GeoPoint | None = None,
                    at: datetime | None = None, command_id: str | None = None) -> UUID:
        """The resource leaves the scene, its work done; the incident records it."""
        subject = self.resources.clear_scene(resource_id, actor=actor, position=position,
                                             at=at, command_id=command_id)
        self.settle(resource_id, actor=actor)
        return subject

    def deactivate(self, resource_id: UUID, *, actor: Actor, at: datetime | None = None,
                   command_id: str | None = None) -> UUID:
        """A depot or shelter closes for its incident; the incident records it."""
        subject = self.resources.deactivate(resource_id, actor=actor, at=at,
                                            command_id=command_id)
        self.settle(resource_id, actor=actor)
        return subject

    def report_available(self, resource_id: UUID, *, actor: Actor,
                         position: GeoPoint | None = None, at: datetime | None = None,
                         command_id: str | None = None) -> UUID:
        """A returning resource is ready again (its incident's release is completed if it
        was interrupted)."""
        subject = self.resources.report_available(resource_id, actor=actor, position=position,
                                                  at=at, command_id=command_id)
        self.settle(resource_id, actor=actor)
        return subject

    def take_out_of_service(self, resource_id: UUID, *, reason: str, actor: Actor,
                            position: GeoPoint | None = None, at: datetime | None = None,
                            command_id: str | None = None) -> UUID:
        """Withdraw a resource (its incident's release is completed if it was
        interrupted)."""
        subject = self.resources.take_out_of_service(resource_id, reason=reason, actor=actor,
                                                     position=position, at=at,
                                                     command_id=command_id)
        self.settle(resource_id, actor=actor)
        return subject


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

    @property
    def resource_assignments(self) -> ResourceAssignments:
        """Resources assigned to incidents and leaving them, recorded on both streams."""
        return ResourceAssignments(incidents=self.incidents, resources=self.resources)

    def assign_resource(self, incident_id: UUID, resource_id: UUID, *, actor: Actor,
                        command_id: str | None = None) -> UUID:
        """Dispatch an available resource to an incident and record it on both."""
        return self.resource_assignments.assign(incident_id, resource_id, actor=actor,
                                                command_id=command_id)

    def release_resource(self, incident_id: UUID, resource_id: UUID, *, actor: Actor) -> UUID:
        """Release a resource from an incident (standing it down or clearing the scene) and
        record it on both."""
        return self.resource_assignments.release(incident_id, resource_id, actor=actor)

    def link_case(self, incident_id: UUID, case_id: UUID, *, actor: Actor) -> UUID:
        """Link a grid case to an incident (for example a road collapse during a flood)."""
        self.grid_cases.case(case_id)
        return self.incidents.link(incident_id, kind=LinkKind.GRID_CASE, target_id=case_id,
                                   actor=actor)

