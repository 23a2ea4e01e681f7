"""The incidents follow their resources: a process that follows the resource log and
records on each incident the resources sent to it and leaving it.

A resource's status is kept by the resource stream; the incident lists the resources working
for it (and counts its shortfall from them). The centre's commands (`coordination.
ResourceAssignments`: dispatch, reassign, release, stand down...) and the crews' own reports
(ingest, the field page) record only the resource's side; this process, which belongs to the
incident application and tracks its position in the resource log there, records the
incident's side: the assignment when a resource is sent (dispatched or reassigned) and its
end when the resource leaves (clears the scene, is stood down, reassigned, deactivated, taken
out of service), at the time it left and by whoever made it leave.

Each of its commands has an id named by what it records (the resource's arrival by its place
in the resource's status history, a departure by the assignment it ends), so that a command
run again after a crash (before its position was tracked) changes nothing. The decisions are
taken from the resource's and the incident's current states, as the steps of the synchronous
coordination were before this process existed, so following an old log from the start
repeats nothing either.
"""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Tracking

from cityops.domain.actors import Actor
from cityops.domain.commands import CommandContext
from cityops.domain.errors import DomainError, NotFound
from cityops.domain.incidents.application import Incidents
from cityops.domain.incidents.commands import RecordResourceArrival, RecordResourceDeparture
from cityops.domain.processes.following import CrossStreamProcess, Upstream, topics_of
from cityops.domain.resources.application import Resources
from cityops.domain.resources.resource import Resource

log = logging.getLogger(__name__)

RECENT_INCIDENTS = 5
"""How many of the incidents a resource served last are checked for an assignment its
leaving has not ended yet."""
STATUS_EVENTS = (
    Resource.Dispatched, Resource.Reassigned, Resource.WentEnRoute, Resource.ArrivedOnScene,
    Resource.Activated, Resource.ClearedScene, Resource.Deactivated, Resource.StoodDown,
    Resource.BecameAvailable, Resource.TakenOutOfService, Resource.ReturnedToService,
)
"""The resource events that can send it to an incident or take it off one (not its
position reports, by far the most numerous)."""


class ResourceMovements(CrossStreamProcess):
    """Records on the incidents the resources' arrivals and departures."""

    name = "resource-movements"

    def __init__(self, resources: Resources, incidents: Incidents) -> None:
        self.resources = resources
        self.incidents = incidents
        super().__init__(incidents, {
            resources.name: Upstream(resources, topics_of(*STATUS_EVENTS), self._moved),
        })

    def _moved(self, event: Any, tracking: Tracking) -> bool:
        """A resource's status changed (by `event.actor`): its incidents record it."""
        actor: Actor = event.actor
        resource_id: UUID = event.originator_id
        # The incident it left records that first, so it is never active on two.
        self.settle(resource_id, actor=actor)
        self.record_arrival(resource_id, actor=actor)
        self.track(tracking)
        return True

    def settle(self, resource_id: UUID, *, actor: Actor) -> list[UUID]:
        """End, on each incident the resource has left, the assignment still open there, in
        the name of whoever made it leave (`actor` for a change recorded before that was
        kept); returns those incidents. Run any number of times, it records each departure
        once."""
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
            try:
                self.incidents.handle(
                    RecordResourceDeparture(incident_id=incident.id, resource_id=resource_id,
                                            how=departure.how, left_at=departure.at),
                    CommandContext(actor=departure.by or actor, command_id=(
                        f"resource-departure:{incident.id}:{resource_id}:{number}")))
            except DomainError as error:
                log.warning("%s: incident %s does not record resource %s leaving: %s",
                            self.name, incident.id, resource_id, error)
                continue
            released.append(incident.id)
        return released

    def record_arrival(self, resource_id: UUID, *, actor: Actor) -> UUID | None:
        """Record on the incident the resource serves its assignment there (in the name of
        whoever sent it), if the incident does not list the resource yet (once per arrival,
        however often it is asked); returns that incident."""
        resource = self.resources.resource(resource_id)
        arrival = resource.arrival()
        incident_id = resource.incident_id
        if arrival is None or incident_id is None:
            return None
        try:
            if self.incidents.incident(incident_id).assignment(resource_id) is not None:
                return None
            position, sent_at = arrival
            self.incidents.handle(
                RecordResourceArrival(incident_id=incident_id, resource_id=resource_id,
                                      kind=resource.kind, sent_at=sent_at),
                CommandContext(actor=resource.history[position].by or actor, command_id=(
                    f"resource-arrival:{incident_id}:{resource_id}:{position}")))
        except NotFound:
            return None  # dispatched by its id alone, to an incident not recorded here
        except DomainError as error:
            # Closed since it was checked when the resource was sent (the command that
            # sent it checks that the incident is open for resources).
            log.warning("%s: incident %s does not record resource %s sent to it: %s",
                        self.name, incident_id, resource_id, error)
            return None
        return incident_id
