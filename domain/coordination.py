"""Commands that span two streams: a hotline ticket that becomes a grid case or an incident
("one number takes it, one network handles it"), a hazard alarm escalated into an incident,
a resource assigned to an incident or leaving it, a grid case linked to an incident.

Each stream has its own event store, so no transaction spans both. Each command here checks
everything its second stream would refuse, then records only the first stream's side (a
command value handled through the owning application's entry point); a process manager
(`domain/processes/`) follows the first stream's events from a tracked position and issues
the second stream's commands, with command ids derived from the source (ticket, alarm,
resource+incident), so that it takes effect once even after a crash. The command waits (a
bounded time) for the process to have followed its own event, so that its caller reads both
sides at once. No step is taken on a stale view: each command checks its subject against the
version its user saw (`seen_versions`, the route's `If-Match`) before its first step.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from uuid import UUID

from cityops.domain.actors import Actor
from cityops.domain.catalogue import Urgency
from cityops.domain.commands import CommandContext, enum_field
from cityops.domain.errors import InvalidValue
from cityops.domain.geometry import GeoPoint
from cityops.domain.gridcases.application import GridCases
from cityops.domain.gridcases.case import CaseSource
from cityops.domain.gridcases.commands import ReportCase
from cityops.domain.hazards.application import HazardSources
from cityops.domain.hazards.commands import RecordAlarmEscalation
from cityops.domain.hazards.source import incident_id_for_alarm
from cityops.domain.hotline.application import HotlineTickets
from cityops.domain.hotline.commands import ConvertTicketToCase, EscalateTicketToIncident
from cityops.domain.hotline.ticket import case_id_for_ticket, incident_id_for_ticket
from cityops.domain.incidents.application import Incidents
from cityops.domain.incidents.commands import (
    LinkToIncident,
    NewIncident,
    RecordResourceArrival,
    RecordResourceDeparture,
    ReleaseResourceFromIncident,
    ReportIncident,
)
from cityops.domain.incidents.incident import OPEN_STATUSES, IncidentSource, LinkKind
from cityops.domain.permissions import check_permitted
from cityops.domain.processes.case_conversions import CaseConversions, report_command_id
from cityops.domain.processes.incident_escalations import (
    IncidentEscalations,
    alarm_command_id,
    ticket_command_id,
)
from cityops.domain.processes.resource_movements import ResourceMovements
from cityops.domain.resources.application import Resources
from cityops.domain.resources.commands import (
    ClearScene,
    DeactivateResource,
    DispatchToOpenIncident,
    ReassignToOpenIncident,
    ReportAvailable,
    StandDownResource,
    TakeOutOfService,
)
from cityops.domain.resources.resource import ResourceStatus

NOTHING_SEEN: Mapping[UUID, int] = MappingProxyType({})


@dataclass
class ResourceAssignments:
    """The centre's commands that send a resource to an incident or take it off: each is
    recorded on the resource's stream, and the incidents follow (`ResourceMovements`, a
    process that records on the incident the resource's arrival and its leaving).

    A resource has at most one active assignment: whatever takes it off an incident (the
    centre's release, clearing the scene, a stand-down, a reassignment, deactivation, going
    out of service) ends its assignment on that incident too, at the time it left and by
    whoever made it leave. Each command waits (a bounded time) for the process to have
    followed the resource's change, so that its caller reads both sides at once."""

    incidents: Incidents
    resources: Resources
    movements: ResourceMovements | None = None
    """The system's process (a new one, with the same tracked positions, if not given)."""

    def __post_init__(self) -> None:
        if self.movements is None:
            self.movements = ResourceMovements(self.resources, self.incidents)

    @property
    def process(self) -> ResourceMovements:
        assert self.movements is not None
        return self.movements

    def _followed(self, subject: UUID) -> UUID:
        """The incidents have recorded what the resource's command just did."""
        self.process.catch_up_with(self.resources.name)
        return subject

    # Arriving on an incident: every way a resource is sent to one (the incident's one-click
    # assignment, the resource's dispatch and reassignment, from the API or the simulator)
    # goes through `_arrive`, which refuses an incident not open for resources first.

    def assign(self, incident_id: UUID, resource_id: UUID, *, actor: Actor,
               command_id: str | None = None,
               seen_versions: Mapping[UUID, int] = NOTHING_SEEN) -> UUID:
        """Assign a resource to an incident from the incident (the centre's one click): an
        available one is dispatched; one that serves it already is only recorded there if
        it is not yet (the process does, once). `seen_versions`: the versions its user saw
        (of the incident), checked first."""
        if self.resources.resource(resource_id).serves(incident_id):
            return self._arrive(resource_id, incident_id, actor=actor, send=None,
                                seen_versions=seen_versions)
        return self.dispatch(resource_id, incident_id=incident_id, actor=actor,
                             command_id=command_id, seen_versions=seen_versions)

    def dispatch(self, resource_id: UUID, *, incident_id: UUID, actor: Actor,
                 position: GeoPoint | None = None, at: datetime | None = None,
                 command_id: str | None = None,
                 seen_versions: Mapping[UUID, int] = NOTHING_SEEN) -> UUID:
        """Dispatch an available resource to an incident open for resources; the incident
        records the assignment."""
        return self._arrive(resource_id, incident_id, actor=actor, send=lambda: (
            self.resources.handle(
                DispatchToOpenIncident(resource_id=resource_id, incident_id=incident_id,
                                       position=position),
                CommandContext(actor=actor, command_id=command_id, at=at,
                               seen_versions=seen_versions))),
            seen_versions=seen_versions)

    def reassign(self, resource_id: UUID, *, incident_id: UUID, actor: Actor,
                 position: GeoPoint | None = None, at: datetime | None = None,
                 command_id: str | None = None,
                 seen_versions: Mapping[UUID, int] = NOTHING_SEEN) -> UUID:
        """Move a resource straight to another incident open for resources: the one it
        leaves records its release, the new one its assignment."""
        return self._arrive(resource_id, incident_id, actor=actor, send=lambda: (
            self.resources.handle(
                ReassignToOpenIncident(resource_id=resource_id, incident_id=incident_id,
                                       position=position),
                CommandContext(actor=actor, command_id=command_id, at=at,
                               seen_versions=seen_versions))),
            seen_versions=seen_versions)

    def _arrive(self, resource_id: UUID, incident_id: UUID, *, actor: Actor,
                send: Callable[[], object] | None,
                seen_versions: Mapping[UUID, int]) -> UUID:
        """Send the resource (`send`: its dispatch or reassignment) to an incident; the
        process records it there and on the incident it left.

        A missing incident (404) or one not open for resources (409) is refused before
        anything is recorded. The incident's check is made while the resource's command
        decides (`DispatchToOpenIncident`), so a repeat of a command already done (same
        command id) is answered as such even if the incident has closed since. No step is
        taken on a view its user did not see (`seen_versions`, checked first)."""
        # Both streams' permissions first: the process records the incident's side in the
        # name of the same actor.
        check_permitted(RecordResourceArrival, actor)
        check_permitted(RecordResourceDeparture, actor)
        self.resources.check_seen_version(self.resources.resource(resource_id), seen_versions)
        self.incidents.check_seen_version(self.incidents.incident(incident_id), seen_versions)
        if send is None:
            self.incidents.admit_resource(incident_id)
        else:
            send()
        return self._followed(resource_id)

    def release(self, incident_id: UUID, resource_id: UUID, *, actor: Actor,
                command_id: str | None = None,
                seen_versions: Mapping[UUID, int] = NOTHING_SEEN) -> UUID:
        """The centre releases a resource from an incident: one that has not arrived is
        stood down, one on scene clears it (a depot or shelter closes); the incident records
        it (the process). `seen_versions`: the version of the incident its user saw,
        checked first."""
        check_permitted(RecordResourceArrival, actor)
        check_permitted(RecordResourceDeparture, actor)
        self.incidents.check_seen_version(self.incidents.incident(incident_id), seen_versions)
        if self.resources.exists(resource_id):
            resource = self.resources.resource(resource_id)
            if resource.serves(incident_id):
                leave = (StandDownResource if resource.status is not ResourceStatus.ON_SCENE
                         else ClearScene if resource.mobile else DeactivateResource)
                self.resources.handle(leave(resource_id=resource_id),
                                      CommandContext(actor=actor, command_id=command_id))
            self._followed(resource_id)
        # Assigned on the incident's side only (the resource never served it): the centre's
        # release ends what its leaving did not.
        if (self.incidents.incident(incident_id).assignment(resource_id) is not None
                and not (self.resources.exists(resource_id)
                         and self.resources.resource(resource_id).serves(incident_id))):
            self.incidents.handle(
                ReleaseResourceFromIncident(incident_id=incident_id, resource_id=resource_id),
                CommandContext(actor=actor, seen_versions=seen_versions,
                               command_id=None if command_id is None
                               else f"{command_id}:incident"))
        return resource_id

    # The resource's own status changes that can take it off an incident: each is recorded
    # on the resource, then its incident records it too (the process).

    def stand_down(self, resource_id: UUID, *, actor: Actor, position: GeoPoint | None = None,
                   at: datetime | None = None, command_id: str | None = None,
                   seen_versions: Mapping[UUID, int] = NOTHING_SEEN) -> UUID:
        """Cancel an assignment before arrival, recorded on the incident too."""
        return self._followed(self.resources.handle(
            StandDownResource(resource_id=resource_id, position=position),
            CommandContext(actor=actor, command_id=command_id, at=at,
                           seen_versions=seen_versions)).subject)

    def clear_scene(self, resource_id: UUID, *, actor: Actor, position: GeoPoint | None = None,
                    at: datetime | None = None, command_id: str | None = None,
                    seen_versions: Mapping[UUID, int] = NOTHING_SEEN) -> UUID:
        """The resource leaves the scene, its work done; the incident records it."""
        return self._followed(self.resources.handle(
            ClearScene(resource_id=resource_id, position=position),
            CommandContext(actor=actor, command_id=command_id, at=at,
                           seen_versions=seen_versions)).subject)

    def deactivate(self, resource_id: UUID, *, actor: Actor, at: datetime | None = None,
                   command_id: str | None = None,
                   seen_versions: Mapping[UUID, int] = NOTHING_SEEN) -> UUID:
        """A depot or shelter closes for its incident; the incident records it."""
        return self._followed(self.resources.handle(
            DeactivateResource(resource_id=resource_id),
            CommandContext(actor=actor, command_id=command_id, at=at,
                           seen_versions=seen_versions)).subject)

    def report_available(self, resource_id: UUID, *, actor: Actor,
                         position: GeoPoint | None = None, at: datetime | None = None,
                         command_id: str | None = None,
                         seen_versions: Mapping[UUID, int] = NOTHING_SEEN) -> UUID:
        """A returning resource is ready again."""
        return self._followed(self.resources.handle(
            ReportAvailable(resource_id=resource_id, position=position),
            CommandContext(actor=actor, command_id=command_id, at=at,
                           seen_versions=seen_versions)).subject)

    def take_out_of_service(self, resource_id: UUID, *, reason: str, actor: Actor,
                            position: GeoPoint | None = None, at: datetime | None = None,
                            command_id: str | None = None,
                            seen_versions: Mapping[UUID, int] = NOTHING_SEEN) -> UUID:
        """Withdraw a resource; an incident it still served records it."""
        return self._followed(self.resources.handle(
            TakeOutOfService(resource_id=resource_id, reason=reason, position=position),
            CommandContext(actor=actor, command_id=command_id, at=at,
                           seen_versions=seen_versions)).subject)


@dataclass
class CityOperations:
    """The cross-stream commands of the command centre."""

    grid_cases: GridCases
    incidents: Incidents
    hazards: HazardSources
    hotline: HotlineTickets
    resources: Resources
    case_conversions: CaseConversions
    resource_movements: ResourceMovements
    incident_escalations: IncidentEscalations

    def ticket_to_case(self, ticket_id: UUID, *, actor: Actor, category: str | None = None,
                       urgency: Urgency | str = Urgency.NORMAL, command_id: str | None = None,
                       seen_versions: Mapping[UUID, int] = NOTHING_SEEN) -> UUID:
        """A ticket about a city-management problem becomes a grid case (source: hotline):
        recorded on the ticket, then reported by the grid cases (`CaseConversions`), once
        everything the report could refuse has been checked. `seen_versions`: the version
        of the ticket its user saw (checked before any step)."""
        ticket = self.hotline.ticket(ticket_id)
        self.hotline.check_seen_version(ticket, seen_versions)
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
        # What the process will report, checked now (it reports in the same actor's name).
        report = ReportCase(source=CaseSource.HOTLINE, category=chosen,
                            description=ticket.description, location=ticket.location,
                            urgency=enum_field(Urgency, "urgency", urgency, "urgencies"),
                            ticket_id=ticket_id, case_id=case_id)
        check_permitted(ReportCase, actor)
        self.grid_cases.check_reportable(report)
        # A case reported before the ticket recorded it (before the process) is not
        # reported again.
        reported = self.grid_cases.exists(case_id)
        self.hotline.handle(
            ConvertTicketToCase(ticket_id=ticket_id, case_id=case_id,
                                category=None if reported else report.category,
                                urgency=None if reported else report.urgency),
            CommandContext(actor=actor, command_id=command_id or report_command_id(ticket_id),
                           seen_versions=seen_versions))
        self.case_conversions.catch_up_with(self.hotline.name)
        return case_id

    def ticket_to_incident(self, ticket_id: UUID, *, actor: Actor,
                           incident_id: UUID | None = None, category: str | None = None,
                           incident_type: str | None = None, title: str | None = None,
                           level: str | None = None, command_id: str | None = None,
                           seen_versions: Mapping[UUID, int] = NOTHING_SEEN) -> UUID:
        """A ticket about an emergency joins an incident (`incident_id`) or becomes a new one
        (category, type and title needed): recorded on the ticket, then on the incident
        (`IncidentEscalations`), once everything the incident's side could refuse has been
        checked. `seen_versions`: the version of the ticket its user saw (checked before
        any step)."""
        ticket = self.hotline.ticket(ticket_id)
        self.hotline.check_seen_version(ticket, seen_versions)
        new = None
        if incident_id is None:
            new = NewIncident(category=category or "", incident_type=incident_type or "",
                              title=title or "", level=level)
            if ticket.location is None:
                raise InvalidValue(f"hotline ticket {ticket_id} has no location")
        target, facts = self._escalation(
            incident_id, incident_id_for_ticket(ticket_id), new, actor,
            location=ticket.location, source=IncidentSource.HOTLINE)
        # The ticket side refuses a ticket already escalated to another incident.
        self.hotline.handle(
            EscalateTicketToIncident(ticket_id=ticket_id, incident_id=target,
                                     new_incident=facts),
            CommandContext(actor=actor,
                           command_id=command_id or f"{ticket_command_id(ticket_id)}:{target}",
                           seen_versions=seen_versions))
        self.incident_escalations.catch_up_with(self.hotline.name)
        return target

    def escalate_alarm(self, source_id: UUID, alarm_id: UUID, *, actor: Actor,
                       category: str | None = None, incident_type: str | None = None,
                       title: str | None = None, level: str | None = None,
                       incident_id: UUID | None = None, command_id: str | None = None,
                       seen_versions: Mapping[UUID, int] = NOTHING_SEEN) -> UUID:
        """A hazard alarm becomes an incident at the hazard source (category, type and title
        needed), or joins `incident_id`: recorded on the hazard source, then on the incident
        (`IncidentEscalations`), once everything the incident's side could refuse has been
        checked. `seen_versions`: the version of the hazard source its user saw (checked
        before any step)."""
        source = self.hazards.source(source_id)
        self.hazards.check_seen_version(source, seen_versions)
        if alarm_id not in source.alarms:
            raise InvalidValue(f"hazard source {source_id} has no alarm {alarm_id}")
        new = None
        if incident_id is None:
            new = NewIncident(category=category or "", incident_type=incident_type or "",
                              title=title or "", level=level)
        target, facts = self._escalation(
            incident_id, incident_id_for_alarm(alarm_id), new, actor,
            location=source.location, source=IncidentSource.ALARM)
        # The hazard side refuses an alarm already escalated to another incident.
        self.hazards.handle(
            RecordAlarmEscalation(source_id=source_id, alarm_id=alarm_id, incident_id=target,
                                  new_incident=facts),
            CommandContext(actor=actor,
                           command_id=command_id or f"{alarm_command_id(alarm_id)}:{target}",
                           seen_versions=seen_versions))
        self.incident_escalations.catch_up_with(self.hazards.name)
        return target

    def _escalation(self, incident_id: UUID | None, derived_id: UUID,
                    new: NewIncident | None, actor: Actor, *, location: GeoPoint | None,
                    source: IncidentSource) -> tuple[UUID, NewIncident | None]:
        """The incident an escalation goes to, and what to report for a new one (None: it
        exists), refused now if the incident's side would refuse it (the process records
        that side in the name of the same actor)."""
        check_permitted(LinkToIncident, actor)
        if incident_id is None:
            assert new is not None
            if not self.incidents.exists(derived_id):
                assert location is not None  # a ticket without one is refused before
                check_permitted(ReportIncident, actor)
                self.incidents.check_reportable(ReportIncident(
                    category=new.category, incident_type=new.incident_type, title=new.title,
                    level=new.level, location=location, source=source,
                    incident_id=derived_id))
                return derived_id, new
            # Reported already (by an earlier run, or before the process): only linked.
            incident_id = derived_id
        self.incidents.incident(incident_id).require_status("link to", *OPEN_STATUSES)
        return incident_id, None

    @property
    def resource_assignments(self) -> ResourceAssignments:
        """Resources assigned to incidents and leaving them, recorded on both streams."""
        return ResourceAssignments(incidents=self.incidents, resources=self.resources,
                                   movements=self.resource_movements)

    def assign_resource(self, incident_id: UUID, resource_id: UUID, *, actor: Actor,
                        command_id: str | None = None,
                        seen_versions: Mapping[UUID, int] = NOTHING_SEEN) -> UUID:
        """Dispatch an available resource to an incident and record it on both."""
        return self.resource_assignments.assign(incident_id, resource_id, actor=actor,
                                                command_id=command_id,
                                                seen_versions=seen_versions)

    def release_resource(self, incident_id: UUID, resource_id: UUID, *, actor: Actor,
                         command_id: str | None = None,
                         seen_versions: Mapping[UUID, int] = NOTHING_SEEN) -> UUID:
        """Release a resource from an incident (standing it down or clearing the scene) and
        record it on both."""
        return self.resource_assignments.release(incident_id, resource_id, actor=actor,
                                                 command_id=command_id,
                                                 seen_versions=seen_versions)

    def link_case(self, incident_id: UUID, case_id: UUID, *, actor: Actor) -> UUID:
        """Link a grid case to an incident (for example a road collapse during a flood)."""
        self.grid_cases.case(case_id)
        return self.incidents.handle(
            LinkToIncident(incident_id=incident_id, kind=LinkKind.GRID_CASE, target_id=case_id),
            CommandContext(actor=actor)).subject
