"""A resource's assignments to incidents, recorded on both streams: it is active on at most
one incident, and whatever takes it off an incident ends its assignment there too, at the
time it left and by whoever made it leave, once however often it is asked."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import pytest

from cityops.domain.actors import Actor, Role
from cityops.domain.catalogue import Catalogue
from cityops.domain.commands import CommandContext
from cityops.domain.coordination import ResourceAssignments
from cityops.domain.errors import IllegalTransition, NotFound, NotPermitted
from cityops.domain.geometry import GeoPoint
from cityops.domain.incidents.application import Incidents
from cityops.domain.incidents.commands import (
    AssignResourceToIncident,
    CloseIncident,
    ContainIncident,
    DefinePlan,
    DismissIncident,
    ReportIncident,
    RespondToIncident,
    VerifyIncident,
)
from cityops.domain.incidents.plans import PlanLevel, ResourceRequirement
from cityops.domain.processes.resource_movements import RECENT_INCIDENTS
from cityops.domain.resources.application import Resources
from cityops.domain.resources.commands import (
    ActivateResource,
    ClearScene,
    DispatchResource,
    RegisterResource,
    ReportAvailable,
    ReportEnRoute,
    ReportOnScene,
)
from cityops.domain.resources.resource import Departure, ResourceStatus

POPO = {"PERSISTENCE_MODULE": "eventsourcing.popo"}
START = datetime(2026, 7, 1, 8, 0, tzinfo=UTC)
UNDERPASS = GeoPoint(lon=120.155, lat=30.274)
DEPOT = GeoPoint(lon=120.14, lat=30.26)
DISPATCHER = Actor("duty-officer-1", Role.DISPATCHER)
PLANNER = Actor("planner-1", Role.PLANNER)
HOTLINE = Actor("operator-7", Role.HOTLINE_OPERATOR)
PUMP_CREW = Actor("pump-3-crew", Role.DEPARTMENT_USER, "water")


Clock = Any  # the `fixed_clock` fixture's FixedClock (tests/unit/domain/conftest.py)


@dataclass
class City:
    clock: Clock
    incidents: Incidents
    resources: Resources
    assignments: ResourceAssignments
    plan_id: UUID

    def flood(self, title: str) -> UUID:
        """A waterlogging incident responding at level IV: one pump truck required."""
        incident_id = self.incidents.handle(
            ReportIncident(category="natural-disaster", incident_type="waterlogging", title=title,
                location=UNDERPASS, source="hotline"),
            CommandContext(actor=HOTLINE)).subject
        self.incidents.handle(
            VerifyIncident(incident_id=incident_id),
            CommandContext(actor=DISPATCHER))
        self.incidents.handle(
            RespondToIncident(incident_id=incident_id, level="IV", plan_id=self.plan_id),
            CommandContext(actor=DISPATCHER))
        return incident_id

    def register(self, call_sign: str, kind: str = "drainage-pump-truck") -> UUID:
        return self.resources.handle(
            RegisterResource(kind=kind, resource_name=call_sign, call_sign=call_sign,
                department="water", home_base=DEPOT),
            CommandContext(actor=PLANNER)).subject

    def active(self, incident_id: UUID) -> list[UUID]:
        return [a.resource_id for a in self.incidents.incident(incident_id).resources
                if a.released_at is None]

    def releases(self, incident_id: UUID) -> list[tuple[UUID, datetime | None, str | None,
                                                         str | None]]:
        return [(a.resource_id, a.released_at, a.released_by, a.release_reason)
                for a in self.incidents.incident(incident_id).resources]


@pytest.fixture
def city(catalogue: Catalogue, fixed_clock: Callable[[datetime], Clock]) -> City:
    clock = fixed_clock(START)
    incidents = Incidents(POPO, catalogue=catalogue, clock=clock)
    resources = Resources(POPO, catalogue=catalogue, clock=clock, incidents=incidents)
    plan_id = incidents.handle(
        DefinePlan(code="underpass-flood", plan_name="Underpass flooding",
            category="natural-disaster",
            levels=[PlanLevel("IV", resources=(ResourceRequirement("drainage-pump-truck", 1),))]),
        CommandContext(actor=PLANNER)).subject
    return City(clock, incidents, resources,
                ResourceAssignments(incidents=incidents, resources=resources), plan_id)


def test_a_pump_truck_cleared_from_incident_a_is_active_only_on_incident_b(city: City) -> None:
    first, second = city.flood("Underpass A"), city.flood("Underpass B")
    truck = city.register("PUMP 3")
    city.assignments.assign(first, truck, actor=DISPATCHER)
    assert city.incidents.incident(first).resource_shortfall() == {}

    city.clock.advance(minutes=5)
    city.resources.handle(ReportEnRoute(resource_id=truck), CommandContext(actor=PUMP_CREW))
    city.clock.advance(minutes=15)
    city.resources.handle(ReportOnScene(resource_id=truck), CommandContext(actor=PUMP_CREW))
    cleared_at = city.clock.advance(hours=1)
    city.assignments.clear_scene(truck, actor=PUMP_CREW)
    city.clock.advance(minutes=20)
    city.assignments.report_available(truck, actor=PUMP_CREW)
    city.clock.advance(minutes=5)
    city.assignments.assign(second, truck, actor=DISPATCHER)

    assert city.active(first) == [] and city.active(second) == [truck]
    assert city.releases(first) == [(truck, cleared_at, "pump-3-crew", "cleared the scene")]
    assert city.incidents.incident(first).resource_shortfall() == {"drainage-pump-truck": 1}
    assert city.incidents.incident(second).resource_shortfall() == {}
    resource = city.resources.resource(truck)
    assert (resource.status, resource.incident_id) == (ResourceStatus.DISPATCHED, second)


def test_a_release_interrupted_half_way_is_completed_once_at_the_next_assignment(
        city: City) -> None:
    first, second = city.flood("Underpass A"), city.flood("Underpass B")
    truck = city.register("PUMP 3")
    city.assignments.assign(first, truck, actor=DISPATCHER)
    city.resources.handle(ReportOnScene(resource_id=truck), CommandContext(actor=PUMP_CREW))
    # The resource's side only, as if the process had stopped before the incident's side.
    cleared_at = city.clock.advance(minutes=40)
    city.resources.handle(ClearScene(resource_id=truck), CommandContext(actor=PUMP_CREW))
    city.clock.advance(minutes=20)
    city.resources.handle(ReportAvailable(resource_id=truck), CommandContext(actor=PUMP_CREW))
    assert city.active(first) == [truck]

    city.clock.advance(minutes=5)
    city.assignments.assign(second, truck, actor=DISPATCHER)
    assert city.active(first) == [] and city.active(second) == [truck]
    # Recorded at the time it left, by whoever made it leave.
    assert city.releases(first) == [(truck, cleared_at, "pump-3-crew", "cleared the scene")]
    # Settling again changes nothing.
    version = city.incidents.incident(first).version
    assert city.assignments.process.settle(truck, actor=DISPATCHER) == []
    assert city.incidents.incident(first).version == version


def test_each_way_of_leaving_an_incident_is_recorded_there(city: City) -> None:
    incident, other = city.flood("Underpass A"), city.flood("Underpass B")
    trucks = {name: city.register(f"PUMP {n}") for n, name in enumerate(
        ["stood-down", "on-the-way", "reassigned", "broke-down"], start=1)}
    shelter = city.register("SHELTER 1", kind="shelter")
    for resource_id in [*trucks.values(), shelter]:
        city.assignments.assign(incident, resource_id, actor=DISPATCHER)
    city.clock.advance(minutes=10)
    city.assignments.stand_down(trucks["stood-down"], actor=DISPATCHER)
    city.resources.handle(
        ReportEnRoute(resource_id=trucks["on-the-way"]),
        CommandContext(actor=PUMP_CREW))
    city.assignments.stand_down(trucks["on-the-way"], actor=DISPATCHER)
    city.assignments.reassign(trucks["reassigned"], incident_id=other, actor=DISPATCHER)
    city.resources.handle(
        ReportOnScene(resource_id=trucks["broke-down"]),
        CommandContext(actor=PUMP_CREW))
    city.resources.handle(
        ClearScene(resource_id=trucks["broke-down"]),
        CommandContext(actor=PUMP_CREW))  # not recorded there
    city.assignments.take_out_of_service(trucks["broke-down"], reason="pump failure",
                                         actor=PUMP_CREW)
    city.resources.handle(ActivateResource(resource_id=shelter), CommandContext(actor=DISPATCHER))
    city.assignments.deactivate(shelter, actor=DISPATCHER)

    reasons = {r: reason for r, _, _, reason in city.releases(incident)}
    assert reasons == {
        trucks["stood-down"]: "stood down",
        trucks["on-the-way"]: "stood down on the way",
        trucks["reassigned"]: f"reassigned to incident {other}",
        trucks["broke-down"]: "cleared the scene",
        shelter: "deactivated",
    }
    assert city.active(incident) == []


def test_the_centres_release_makes_the_resource_leave_too(city: City) -> None:
    incident = city.flood("Underpass A")
    on_scene, dispatched, shelter = (city.register("PUMP 1"), city.register("PUMP 2"),
                                     city.register("SHELTER 1", kind="shelter"))
    incident_only = uuid4()  # recorded on the incident alone (no resource stream)
    for resource_id in (on_scene, dispatched, shelter):
        city.assignments.assign(incident, resource_id, actor=DISPATCHER)
    city.incidents.handle(
        AssignResourceToIncident(incident_id=incident, resource_id=incident_only, kind="expert"),
        CommandContext(actor=DISPATCHER))
    city.resources.handle(ReportOnScene(resource_id=on_scene), CommandContext(actor=PUMP_CREW))
    city.resources.handle(ActivateResource(resource_id=shelter), CommandContext(actor=DISPATCHER))
    city.clock.advance(minutes=30)
    for resource_id in (on_scene, dispatched, shelter, incident_only):
        city.assignments.release(incident, resource_id, actor=DISPATCHER)
        # Released again: nothing more happens.
        city.assignments.release(incident, resource_id, actor=DISPATCHER)

    assert [city.resources.resource(r).status for r in (on_scene, dispatched, shelter)] == [
        ResourceStatus.RETURNING, ResourceStatus.AVAILABLE, ResourceStatus.AVAILABLE]
    assert city.releases(incident) == [
        (on_scene, city.clock.now, "duty-officer-1", "cleared the scene"),
        (dispatched, city.clock.now, "duty-officer-1", "stood down"),
        (shelter, city.clock.now, "duty-officer-1", "deactivated"),
        (incident_only, city.clock.now, "duty-officer-1", "released by the centre"),
    ]


def test_a_returning_resource_is_not_assigned_again_until_it_is_available(city: City) -> None:
    incident = city.flood("Underpass A")
    truck = city.register("PUMP 3")
    city.assignments.assign(incident, truck, actor=DISPATCHER)
    city.resources.handle(ReportOnScene(resource_id=truck), CommandContext(actor=PUMP_CREW))
    city.assignments.clear_scene(truck, actor=PUMP_CREW)
    with pytest.raises(IllegalTransition, match="it is returning"):
        city.assignments.assign(incident, truck, actor=DISPATCHER)
    assert city.active(incident) == []
    city.assignments.report_available(truck, actor=PUMP_CREW)
    city.assignments.assign(incident, truck, actor=DISPATCHER)
    assert city.active(incident) == [truck]
    assert len(city.incidents.incident(incident).resources) == 2


def test_a_resource_sent_to_an_incident_recorded_elsewhere_is_left_alone(city: City) -> None:
    truck = city.register("PUMP 3")
    city.resources.handle(
        DispatchResource(resource_id=truck, incident_id=uuid4()),
        CommandContext(actor=DISPATCHER))
    city.assignments.stand_down(truck, actor=DISPATCHER)
    assert city.resources.resource(truck).status is ResourceStatus.AVAILABLE


def test_departures_are_read_from_the_status_history_most_recent_first(city: City) -> None:
    truck = city.register("PUMP 3")
    served = []
    for _ in range(RECENT_INCIDENTS + 2):
        incident_id = uuid4()
        served.append(incident_id)
        city.clock.advance(minutes=10)
        city.resources.handle(
            DispatchResource(resource_id=truck, incident_id=incident_id),
            CommandContext(actor=DISPATCHER))
        city.clock.advance(minutes=10)
        city.resources.handle(ReportOnScene(resource_id=truck), CommandContext(actor=PUMP_CREW))
        city.clock.advance(minutes=10)
        city.resources.handle(ClearScene(resource_id=truck), CommandContext(actor=PUMP_CREW))
        city.resources.handle(ReportAvailable(resource_id=truck), CommandContext(actor=PUMP_CREW))
    current = uuid4()
    city.clock.advance(minutes=10)
    city.resources.handle(
        DispatchResource(resource_id=truck, incident_id=current),
        CommandContext(actor=DISPATCHER))
    resource = city.resources.resource(truck)
    assert resource.serves(current) and not resource.serves(served[-1])
    departures = resource.departures(RECENT_INCIDENTS)
    # The one it serves now is left out; the window counts it.
    assert [d.incident_id for d in departures] == served[::-1][:RECENT_INCIDENTS - 1]
    left_last = resource.history[-3]
    assert departures[0] == Departure(served[-1], left_last.at, "cleared the scene", PUMP_CREW)
    assert left_last.status is ResourceStatus.RETURNING


def assignments_on(city: City, incident_id: UUID) -> list[tuple[UUID, datetime, str]]:
    return [(a.resource_id, a.assigned_at, a.assigned_by)
            for a in city.incidents.incident(incident_id).resources]


def test_a_resource_dispatched_or_reassigned_from_its_own_side_is_assigned_on_the_incident(
        city: City) -> None:
    """Issue 9 item 1, the arrival side: whichever way it is sent, the incident it is sent
    to lists it, at the time it was sent, and counts it against its shortfall."""
    first, second = city.flood("Underpass A"), city.flood("Underpass B")
    truck = city.register("PUMP 3")
    sent_at = city.clock.advance(minutes=5)
    city.assignments.dispatch(truck, incident_id=first, actor=DISPATCHER)
    assert assignments_on(city, first) == [(truck, sent_at, "duty-officer-1")]
    assert city.incidents.incident(first).resource_shortfall() == {}

    city.resources.handle(ReportEnRoute(resource_id=truck), CommandContext(actor=PUMP_CREW))
    reassigned_at = city.clock.advance(minutes=5)
    city.assignments.reassign(truck, incident_id=second, actor=DISPATCHER)
    assert city.active(first) == [] and city.active(second) == [truck]
    assert assignments_on(city, second) == [(truck, reassigned_at, "duty-officer-1")]
    assert city.releases(first)[0][1:] == (reassigned_at, "duty-officer-1",
                                           f"reassigned to incident {second}")
    assert city.incidents.incident(first).resource_shortfall() == {"drainage-pump-truck": 1}
    assert city.incidents.incident(second).resource_shortfall() == {}

    # And straight back to the first: a second assignment there, the second one released.
    city.clock.advance(minutes=5)
    city.assignments.reassign(truck, incident_id=first, actor=DISPATCHER)
    assert city.active(first) == [truck] and city.active(second) == []
    assert len(city.incidents.incident(first).resources) == 2


def test_an_arrival_interrupted_half_way_is_completed_once(city: City) -> None:
    incident = city.flood("Underpass A")
    truck = city.register("PUMP 3")
    # The resource's side only, as if the process had stopped before the incident's side.
    sent_at = city.clock.advance(minutes=5)
    city.resources.handle(
        DispatchResource(resource_id=truck, incident_id=incident),
        CommandContext(actor=DISPATCHER, command_id="send-pump-3"))
    assert city.active(incident) == []

    city.clock.advance(minutes=5)
    # Running the command again with its id completes it, at the time it was sent.
    city.assignments.dispatch(truck, incident_id=incident, actor=DISPATCHER,
                              command_id="send-pump-3")
    assert assignments_on(city, incident) == [(truck, sent_at, "duty-officer-1")]
    resource_version = city.resources.resource(truck).version
    incident_version = city.incidents.incident(incident).version
    for _ in range(2):
        city.assignments.dispatch(truck, incident_id=incident, actor=DISPATCHER,
                                  command_id="send-pump-3")
        city.assignments.assign(incident, truck, actor=DISPATCHER)
    assert city.resources.resource(truck).version == resource_version
    assert city.incidents.incident(incident).version == incident_version

    # A repeat after the resource has left records no new assignment.
    city.assignments.stand_down(truck, actor=DISPATCHER)
    city.assignments.dispatch(truck, incident_id=incident, actor=DISPATCHER,
                              command_id="send-pump-3")
    assert city.active(incident) == []
    assert city.resources.resource(truck).status is ResourceStatus.AVAILABLE


def test_a_resource_is_sent_only_to_an_incident_open_for_resources(city: City) -> None:
    serving, reported = city.flood("Underpass A"), city.incidents.handle(
        ReportIncident(category="natural-disaster", incident_type="waterlogging",
            title="Not verified", location=UNDERPASS, source="hotline"),
        CommandContext(actor=HOTLINE)).subject
    contained, closed = city.flood("Underpass B"), city.flood("Underpass C")
    city.incidents.handle(
        ContainIncident(incident_id=contained),
        CommandContext(actor=DISPATCHER))
    city.incidents.handle(ContainIncident(incident_id=closed), CommandContext(actor=DISPATCHER))
    city.incidents.handle(CloseIncident(incident_id=closed), CommandContext(actor=DISPATCHER))
    dismissed = city.incidents.handle(
        ReportIncident(category="natural-disaster", incident_type="waterlogging",
            title="A puddle", location=UNDERPASS, source="hotline"),
        CommandContext(actor=HOTLINE)).subject
    city.incidents.handle(
        DismissIncident(incident_id=dismissed, reason="only a puddle"),
        CommandContext(actor=DISPATCHER))
    idle, busy = city.register("PUMP 1"), city.register("PUMP 2")
    city.assignments.dispatch(busy, incident_id=serving, actor=DISPATCHER)
    incidents = (serving, reported, contained, closed, dismissed)
    versions = {i: city.incidents.incident(i).version for i in incidents}
    resource_versions = {r: city.resources.resource(r).version for r in (idle, busy)}

    sends = {
        "dispatch": lambda r, i: city.assignments.dispatch(r, incident_id=i,
                                                           actor=DISPATCHER),
        "reassign": lambda r, i: city.assignments.reassign(r, incident_id=i,
                                                           actor=DISPATCHER),
        "assign": lambda r, i: city.assignments.assign(i, r, actor=DISPATCHER),
    }
    for name, send in sends.items():
        resource = busy if name == "reassign" else idle
        with pytest.raises(NotFound, match="does not exist"):
            send(resource, uuid4())
        for incident, state in ((reported, "reported"), (contained, "contained"),
                                (closed, "closed"), (dismissed, "dismissed")):
            with pytest.raises(IllegalTransition,
                               match=f"cannot assign a resource to incident {incident}: "
                                     f"it is {state}"):
                send(resource, incident)
    assert {i: city.incidents.incident(i).version for i in incidents} == versions
    assert {r: city.resources.resource(r).version for r in (idle, busy)} == resource_versions
    assert city.active(serving) == [busy]


def test_only_the_centre_sends_resources_and_nothing_is_recorded_otherwise(
        city: City) -> None:
    incident = city.flood("Underpass A")
    truck = city.register("PUMP 3")
    with pytest.raises(NotPermitted):
        city.assignments.dispatch(truck, incident_id=incident, actor=PUMP_CREW)
    assert city.resources.resource(truck).status is ResourceStatus.AVAILABLE
    assert city.active(incident) == []


def test_the_arrival_names_the_dispatch_that_began_the_current_assignment(
        city: City) -> None:
    first, second = city.flood("Underpass A"), city.flood("Underpass B")
    truck = city.register("PUMP 3")
    assert city.resources.resource(truck).arrival() is None
    sent_at = city.clock.advance(minutes=5)
    city.assignments.dispatch(truck, incident_id=first, actor=DISPATCHER)
    city.clock.advance(minutes=5)
    city.resources.handle(ReportEnRoute(resource_id=truck), CommandContext(actor=PUMP_CREW))
    city.clock.advance(minutes=5)
    city.resources.handle(ReportOnScene(resource_id=truck), CommandContext(actor=PUMP_CREW))
    assert city.resources.resource(truck).arrival() == (1, sent_at)
    moved_at = city.clock.advance(minutes=5)
    city.assignments.reassign(truck, incident_id=second, actor=DISPATCHER)
    assert city.resources.resource(truck).arrival() == (4, moved_at)
    city.assignments.stand_down(truck, actor=DISPATCHER)
    assert city.resources.resource(truck).arrival() is None
