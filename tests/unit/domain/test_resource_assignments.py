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
from cityops.domain.coordination import RECENT_INCIDENTS, ResourceAssignments
from cityops.domain.errors import IllegalTransition
from cityops.domain.geometry import GeoPoint
from cityops.domain.incident import PlanLevel, ResourceRequirement
from cityops.domain.incidents import Incidents
from cityops.domain.resource import Departure, ResourceStatus
from cityops.domain.resources import Resources

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
        incident_id = self.incidents.report(
            category="natural-disaster", incident_type="waterlogging", title=title,
            location=UNDERPASS, source="hotline", actor=HOTLINE)
        self.incidents.verify(incident_id, actor=DISPATCHER)
        self.incidents.respond(incident_id, level="IV", plan_id=self.plan_id, actor=DISPATCHER)
        return incident_id

    def register(self, call_sign: str, kind: str = "drainage-pump-truck") -> UUID:
        return self.resources.register_resource(
            kind=kind, name=call_sign, call_sign=call_sign, department="water",
            home_base=DEPOT, actor=PLANNER)

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
    resources = Resources(POPO, catalogue=catalogue, clock=clock)
    plan_id = incidents.define_plan(
        code="underpass-flood", name="Underpass flooding", category="natural-disaster",
        levels=[PlanLevel("IV", resources=(ResourceRequirement("drainage-pump-truck", 1),))],
        actor=PLANNER)
    return City(clock, incidents, resources,
                ResourceAssignments(incidents=incidents, resources=resources), plan_id)


def test_a_pump_truck_cleared_from_incident_a_is_active_only_on_incident_b(city: City) -> None:
    first, second = city.flood("Underpass A"), city.flood("Underpass B")
    truck = city.register("PUMP 3")
    city.assignments.assign(first, truck, actor=DISPATCHER)
    assert city.incidents.incident(first).resource_shortfall() == {}

    city.clock.advance(minutes=5)
    city.resources.report_en_route(truck, actor=PUMP_CREW)
    city.clock.advance(minutes=15)
    city.resources.report_on_scene(truck, actor=PUMP_CREW)
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
    city.resources.report_on_scene(truck, actor=PUMP_CREW)
    # The resource's side only, as if the process had stopped before the incident's side.
    cleared_at = city.clock.advance(minutes=40)
    city.resources.clear_scene(truck, actor=PUMP_CREW)
    city.clock.advance(minutes=20)
    city.resources.report_available(truck, actor=PUMP_CREW)
    assert city.active(first) == [truck]

    city.clock.advance(minutes=5)
    city.assignments.assign(second, truck, actor=DISPATCHER)
    assert city.active(first) == [] and city.active(second) == [truck]
    # Recorded at the time it left, by whoever completed it.
    assert city.releases(first) == [(truck, cleared_at, "duty-officer-1", "cleared the scene")]
    # Settling again changes nothing.
    version = city.incidents.incident(first).version
    assert city.assignments.settle(truck, actor=DISPATCHER) == []
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
    city.resources.report_en_route(trucks["on-the-way"], actor=PUMP_CREW)
    city.assignments.stand_down(trucks["on-the-way"], actor=DISPATCHER)
    city.assignments.reassign(trucks["reassigned"], incident_id=other, actor=DISPATCHER)
    city.resources.report_on_scene(trucks["broke-down"], actor=PUMP_CREW)
    city.resources.clear_scene(trucks["broke-down"], actor=PUMP_CREW)  # not recorded there
    city.assignments.take_out_of_service(trucks["broke-down"], reason="pump failure",
                                         actor=PUMP_CREW)
    city.resources.activate(shelter, actor=DISPATCHER)
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
    city.incidents.assign_resource(incident, resource_id=incident_only, kind="expert",
                                   actor=DISPATCHER)
    city.resources.report_on_scene(on_scene, actor=PUMP_CREW)
    city.resources.activate(shelter, actor=DISPATCHER)
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
    city.resources.report_on_scene(truck, actor=PUMP_CREW)
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
    city.resources.dispatch(truck, incident_id=uuid4(), actor=DISPATCHER)
    city.assignments.stand_down(truck, actor=DISPATCHER)
    assert city.resources.resource(truck).status is ResourceStatus.AVAILABLE


def test_departures_are_read_from_the_status_history_most_recent_first(city: City) -> None:
    truck = city.register("PUMP 3")
    served = []
    for _ in range(RECENT_INCIDENTS + 2):
        incident_id = uuid4()
        served.append(incident_id)
        city.clock.advance(minutes=10)
        city.resources.dispatch(truck, incident_id=incident_id, actor=DISPATCHER)
        city.clock.advance(minutes=10)
        city.resources.report_on_scene(truck, actor=PUMP_CREW)
        city.clock.advance(minutes=10)
        city.resources.clear_scene(truck, actor=PUMP_CREW)
        city.resources.report_available(truck, actor=PUMP_CREW)
    current = uuid4()
    city.clock.advance(minutes=10)
    city.resources.dispatch(truck, incident_id=current, actor=DISPATCHER)
    resource = city.resources.resource(truck)
    assert resource.serves(current) and not resource.serves(served[-1])
    departures = resource.departures(RECENT_INCIDENTS)
    # The one it serves now is left out; the window counts it.
    assert [d.incident_id for d in departures] == served[::-1][:RECENT_INCIDENTS - 1]
    left_last = resource.history[-3]
    assert departures[0] == Departure(served[-1], left_last.at, "cleared the scene")
    assert left_last.status is ResourceStatus.RETURNING
