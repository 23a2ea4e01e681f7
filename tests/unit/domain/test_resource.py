"""Emergency resources: registration, the dispatch status model, positions, response times
and the choice of the nearest available resources, told as the centre lives them."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from cityops.domain.actors import Actor, Role
from cityops.domain.catalogue import Catalogue
from cityops.domain.errors import (
    CommandIdReused,
    IllegalTransition,
    InvalidValue,
    NotFound,
    NotPermitted,
)
from cityops.domain.geometry import EARTH_RADIUS_M, GeoPoint
from cityops.domain.resources.application import Resources
from cityops.domain.resources.resource import (
    PositionFix,
    PositionOutcome,
    PositionPolicy,
    Resource,
    ResourceStatus,
    StatusChange,
    nearest_available,
)
from cityops.domain.response_times import (
    Assignment,
    AssignmentOutcome,
    assignments,
    duration_statistics,
    percentile,
    queue_time,
    response_time,
    status_changes,
    time_on_scene,
    travel_time,
    turnout_time,
)

POPO = {"PERSISTENCE_MODULE": "eventsourcing.popo"}
T0 = datetime(2025, 7, 14, 8, 0, tzinfo=UTC)
STATION = GeoPoint(116.3900, 39.9100)
SCENE = GeoPoint(116.4100, 39.9200)
DEPOT_SITE = GeoPoint(116.3500, 39.9500)

DISPATCHER = Actor("duty-1", Role.DISPATCHER)
PLANNER = Actor("planner-1", Role.PLANNER)
FIRE_CREW = Actor("crew-e12", Role.DEPARTMENT_USER, "fire")
WATER_USER = Actor("water-1", Role.DEPARTMENT_USER, "water")
TRACKER = Actor("avl-gateway", Role.SYSTEM)
LEADER = Actor("mayor", Role.LEADER)
INSPECTOR = Actor("insp-1", Role.INSPECTOR)


class Clock:
    """A hand-moved clock: time passes only when a test says so."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def tick(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return Catalogue.load()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app(catalogue: Catalogue, clock: Clock) -> Resources:
    return Resources(POPO, catalogue=catalogue, clock=clock)


def register_engine(app: Resources, call_sign: str = "Engine 12", **extra: Any) -> UUID:
    return app.register_resource(kind="fire-engine", name="Engine 12, Xicheng station",
                                 call_sign=call_sign, department="fire", home_base=STATION,
                                 actor=PLANNER, **extra)


def register_shelter(app: Resources, call_sign: str = "Shelter 3") -> UUID:
    return app.register_resource(kind="shelter", name="No. 3 Middle School shelter",
                                 call_sign=call_sign, department="emergency-management",
                                 home_base=DEPOT_SITE, capacity=800, actor=PLANNER)


# --- registration -------------------------------------------------------------------------


def test_a_resource_is_registered_available_at_its_home_base(app: Resources) -> None:
    resource_id = app.register_resource(
        kind="supply-depot", name="Fengtai emergency supply depot", call_sign=" depot  ft-1 ",
        department="emergency-management", home_base=DEPOT_SITE, actor=PLANNER,
        stock={"sandbags": 5000, "drinking water (t)": 12.5, "tents": 40},
        notes="Key with the duty officer",
    )

    depot = app.resource(resource_id)
    assert depot.status is ResourceStatus.AVAILABLE
    assert depot.call_sign == "DEPOT FT-1"
    assert depot.mobile is False
    assert depot.location == DEPOT_SITE
    assert depot.history == [StatusChange(ResourceStatus.AVAILABLE, T0, None)]
    summary = depot.summary()
    assert summary["stock"] == {"sandbags": 5000, "drinking water (t)": 12.5, "tents": 40}
    assert summary["home_base"] == {"type": "Point", "coordinates": [116.35, 39.95]}
    assert summary["kind"] == "supply-depot"
    assert summary["position"] is None
    assert resource_id == Resource.create_id("Depot FT-1")


def test_an_expert_is_registered_with_a_speciality(app: Resources) -> None:
    resource_id = app.register_resource(
        kind="expert", name="Dr. Wang Li", call_sign="EXP-CHEM-07", department="environment",
        home_base=STATION, speciality="hazardous chemicals", actor=PLANNER)
    assert app.resource(resource_id).summary()["speciality"] == "hazardous chemicals"


def test_a_call_sign_is_registered_once(app: Resources) -> None:
    register_engine(app)
    with pytest.raises(InvalidValue, match="call sign ENGINE 12 is already registered"):
        register_engine(app, call_sign="engine  12")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kind": "submarine"}, "unknown resource kind"),
        ({"department": "navy"}, "unknown department"),
        ({"name": "  "}, "name must not be empty"),
        ({"call_sign": ""}, "call sign must not be empty"),
        ({"call_sign": "X" * 41}, "call sign is longer than 40"),
        ({"capacity": -1}, "capacity must be a whole number"),
        ({"capacity": True}, "capacity must be a whole number"),
        ({"stock": {"tents": -3}}, "stock quantity of 'tents'"),
        ({"stock": {"": 3}}, "stock item must not be empty"),
        ({"stock": {"tents": float("nan")}}, "stock quantity"),
        ({"home_base": (116.4, 39.9)}, "home base must be a GeoPoint"),
        ({"at": datetime(2025, 7, 14, 8, 0)}, "has no time zone"),
        ({"at": T0 + timedelta(hours=1)}, "is in the future"),
    ],
)
def test_registration_refuses_bad_values(app: Resources, change: dict[str, Any],
                                         message: str) -> None:
    args: dict[str, Any] = {"kind": "fire-engine", "name": "Engine 12", "call_sign": "E12",
                            "department": "fire", "home_base": STATION, "actor": PLANNER}
    with pytest.raises(InvalidValue, match=message):
        app.register_resource(**(args | change))


def test_a_department_registers_and_revises_only_its_own_resources(app: Resources) -> None:
    with pytest.raises(NotPermitted, match="may not register a resource of fire"):
        app.register_resource(kind="fire-engine", name="Engine 9", call_sign="E9",
                              department="fire", home_base=STATION, actor=WATER_USER)
    resource_id = app.register_resource(kind="fire-engine", name="Engine 9", call_sign="E9",
                                        department="fire", home_base=STATION, actor=FIRE_CREW)
    with pytest.raises(NotPermitted, match="it belongs to fire"):
        app.revise_resource(resource_id, notes="ours now", actor=WATER_USER)
    assert app.resource(resource_id).version == 1


def test_details_are_revised_keeping_what_is_not_given(app: Resources, clock: Clock) -> None:
    resource_id = register_shelter(app)
    clock.tick(days=1)
    app.revise_resource(resource_id, capacity=650, notes="East wing closed", actor=PLANNER)
    shelter = app.resource(resource_id)
    assert (shelter.capacity, shelter.notes, shelter.name) == (
        650, "East wing closed", "No. 3 Middle School shelter")
    app.revise_resource(resource_id, capacity=None, actor=PLANNER)
    assert app.resource(resource_id).capacity is None


# --- the dispatch lifecycle ------------------------------------------------------------------


def test_an_engine_answers_an_incident_and_comes_back(app: Resources, clock: Clock) -> None:
    engine = register_engine(app)
    incident = uuid4()
    reported_at = clock.tick(minutes=10)

    # The dispatcher assigns the engine; the crew sets off, arrives, works, leaves, is back.
    dispatched_at = clock.tick(seconds=75)
    app.dispatch(engine, incident_id=incident, actor=DISPATCHER)
    en_route_at = clock.tick(seconds=80)
    app.report_en_route(engine, actor=FIRE_CREW, position=STATION)
    on_scene_at = clock.tick(minutes=6)
    app.report_on_scene(engine, actor=TRACKER, position=SCENE)
    assert app.resource(engine).incident_id == incident
    cleared_at = clock.tick(minutes=45)
    app.clear_scene(engine, actor=FIRE_CREW)
    assert app.resource(engine).status is ResourceStatus.RETURNING
    assert app.resource(engine).incident_id == incident
    back_at = clock.tick(minutes=12)
    app.report_available(engine, actor=FIRE_CREW, position=STATION)

    resource = app.resource(engine)
    assert resource.status is ResourceStatus.AVAILABLE
    assert resource.incident_id is None
    assert [(c.status, c.at, c.incident_id) for c in resource.history] == [
        (ResourceStatus.AVAILABLE, T0, None),
        (ResourceStatus.DISPATCHED, dispatched_at, incident),
        (ResourceStatus.EN_ROUTE, en_route_at, incident),
        (ResourceStatus.ON_SCENE, on_scene_at, incident),
        (ResourceStatus.RETURNING, cleared_at, incident),
        (ResourceStatus.AVAILABLE, back_at, None),
    ]
    assert resource.position == PositionFix(STATION, back_at)
    events = list(app.repository.event_store.get(engine))
    assert [type(e).__name__ for e in events] == [
        "Registered", "Dispatched", "WentEnRoute", "ArrivedOnScene", "ClearedScene",
        "BecameAvailable",
    ]
    assert events[3].actor == TRACKER
    assert status_changes(events) == resource.history

    # What the after-action review reads from that history.
    [assignment] = assignments(resource.history)
    assert assignment.outcome is AssignmentOutcome.CLEARED
    assert queue_time(reported_at, assignment) == timedelta(seconds=75)
    assert turnout_time(assignment) == timedelta(seconds=80)
    assert travel_time(assignment) == timedelta(minutes=6)
    assert response_time(reported_at, [assignment]) == timedelta(minutes=6, seconds=155)
    assert time_on_scene(assignment) == timedelta(minutes=45)


def test_a_shelter_is_activated_and_deactivated_for_an_incident(app: Resources,
                                                                clock: Clock) -> None:
    shelter = register_shelter(app)
    flood = uuid4()
    clock.tick(minutes=30)
    app.dispatch(shelter, incident_id=flood, actor=DISPATCHER)
    with pytest.raises(IllegalTransition, match="shelter is not a mobile kind"):
        app.report_en_route(shelter, actor=DISPATCHER)
    opened_at = clock.tick(hours=1)
    app.activate(shelter, actor=Actor("em-1", Role.DEPARTMENT_USER, "emergency-management"))
    assert app.resource(shelter).status is ResourceStatus.ON_SCENE
    with pytest.raises(IllegalTransition, match="deactivate it instead"):
        app.clear_scene(shelter, actor=DISPATCHER)
    clock.tick(days=2)
    app.deactivate(shelter, actor=DISPATCHER)

    resource = app.resource(shelter)
    assert resource.status is ResourceStatus.AVAILABLE
    [assignment] = assignments(resource.history)
    assert (assignment.on_scene_at, assignment.en_route_at) == (opened_at, None)
    assert turnout_time(assignment) is None
    assert time_on_scene(assignment) == timedelta(days=2)
    assert resource.position is None


def test_a_mobile_resource_is_not_activated(app: Resources) -> None:
    engine = register_engine(app)
    app.dispatch(engine, incident_id=uuid4(), actor=DISPATCHER)
    with pytest.raises(IllegalTransition, match="fire-engine is a mobile kind"):
        app.activate(engine, actor=DISPATCHER)


def test_a_dispatched_resource_stood_down_is_available_at_once(app: Resources,
                                                               clock: Clock) -> None:
    engine = register_engine(app)
    app.dispatch(engine, incident_id=uuid4(), actor=DISPATCHER)
    clock.tick(seconds=30)
    app.stand_down(engine, actor=DISPATCHER)
    resource = app.resource(engine)
    assert resource.status is ResourceStatus.AVAILABLE
    assert resource.incident_id is None
    assert assignments(resource.history)[0].outcome is AssignmentOutcome.STOOD_DOWN


def test_a_resource_stood_down_on_the_road_is_returning(app: Resources, clock: Clock) -> None:
    engine = register_engine(app)
    incident = uuid4()
    app.dispatch(engine, incident_id=incident, actor=DISPATCHER)
    clock.tick(minutes=1)
    app.report_en_route(engine, actor=FIRE_CREW)
    clock.tick(minutes=2)
    app.stand_down(engine, actor=DISPATCHER)
    resource = app.resource(engine)
    assert (resource.status, resource.incident_id) == (ResourceStatus.RETURNING, incident)
    [assignment] = assignments(resource.history)
    assert assignment.outcome is AssignmentOutcome.STOOD_DOWN
    assert travel_time(assignment) is None
    assert response_time(T0, [assignment]) is None


def test_a_busy_resource_is_reassigned_not_dispatched_twice(app: Resources,
                                                            clock: Clock) -> None:
    engine = register_engine(app)
    fire, collapse = uuid4(), uuid4()
    app.dispatch(engine, incident_id=fire, actor=DISPATCHER)
    clock.tick(minutes=1)
    app.report_en_route(engine, actor=FIRE_CREW)
    with pytest.raises(IllegalTransition, match=f"serves incident {fire}"):
        app.dispatch(engine, incident_id=collapse, actor=DISPATCHER)
    with pytest.raises(IllegalTransition, match=f"already serves incident {fire}"):
        app.reassign(engine, incident_id=fire, actor=DISPATCHER)
    diverted_at = clock.tick(minutes=2)
    app.reassign(engine, incident_id=collapse, actor=DISPATCHER)

    resource = app.resource(engine)
    assert (resource.status, resource.incident_id) == (ResourceStatus.DISPATCHED, collapse)
    last = list(app.repository.event_store.get(engine))[-1]
    assert isinstance(last, Resource.Reassigned)
    assert (last.from_incident_id, last.incident_id) == (fire, collapse)
    first, second = assignments(resource.history)
    assert (first.incident_id, first.outcome, first.ended_at) == (
        fire, AssignmentOutcome.REASSIGNED, diverted_at)
    assert (second.incident_id, second.dispatched_at, second.outcome) == (
        collapse, diverted_at, None)


def test_out_of_service_with_a_reason_and_back(app: Resources, clock: Clock) -> None:
    engine = register_engine(app)
    clock.tick(hours=1)
    app.take_out_of_service(engine, reason="pump failure", actor=FIRE_CREW)
    resource = app.resource(engine)
    assert (resource.status, resource.out_of_service_reason) == (
        ResourceStatus.OUT_OF_SERVICE, "pump failure")
    with pytest.raises(IllegalTransition, match="it is out-of-service"):
        app.dispatch(engine, incident_id=uuid4(), actor=DISPATCHER)
    with pytest.raises(InvalidValue, match="reason must not be empty"):
        app.take_out_of_service(engine, reason=" ", actor=FIRE_CREW)
    clock.tick(hours=5)
    app.return_to_service(engine, actor=FIRE_CREW)
    resource = app.resource(engine)
    assert (resource.status, resource.out_of_service_reason) == (ResourceStatus.AVAILABLE, None)


def test_a_returning_resource_may_go_out_of_service(app: Resources, clock: Clock) -> None:
    engine = register_engine(app)
    app.dispatch(engine, incident_id=uuid4(), actor=DISPATCHER)
    for step in (app.report_en_route, app.report_on_scene, app.clear_scene):
        clock.tick(minutes=5)
        step(engine, actor=FIRE_CREW)
    clock.tick(minutes=5)
    app.take_out_of_service(engine, reason="crew decontamination", actor=DISPATCHER)
    resource = app.resource(engine)
    assert (resource.status, resource.incident_id) == (ResourceStatus.OUT_OF_SERVICE, None)
    assert assignments(resource.history)[0].outcome is AssignmentOutcome.CLEARED


# --- every illegal transition ----------------------------------------------------------------

Step = Callable[[Resources, UUID], Any]

COMMANDS: dict[str, Step] = {
    "dispatch": lambda a, r: a.dispatch(r, incident_id=uuid4(), actor=DISPATCHER),
    "reassign": lambda a, r: a.reassign(r, incident_id=uuid4(), actor=DISPATCHER),
    "report_en_route": lambda a, r: a.report_en_route(r, actor=DISPATCHER),
    "report_on_scene": lambda a, r: a.report_on_scene(r, actor=DISPATCHER),
    "activate": lambda a, r: a.activate(r, actor=DISPATCHER),
    "clear_scene": lambda a, r: a.clear_scene(r, actor=DISPATCHER),
    "deactivate": lambda a, r: a.deactivate(r, actor=DISPATCHER),
    "stand_down": lambda a, r: a.stand_down(r, actor=DISPATCHER),
    "report_available": lambda a, r: a.report_available(r, actor=DISPATCHER),
    "take_out_of_service": lambda a, r: a.take_out_of_service(r, reason="maintenance",
                                                              actor=DISPATCHER),
    "return_to_service": lambda a, r: a.return_to_service(r, actor=DISPATCHER),
}

# The module docstring's table, as data: (mobile, from status) -> commands allowed.
S = ResourceStatus
ALLOWED: dict[tuple[bool, ResourceStatus], set[str]] = {
    (True, S.AVAILABLE): {"dispatch", "take_out_of_service"},
    (True, S.DISPATCHED): {"reassign", "report_en_route", "report_on_scene", "stand_down"},
    (True, S.EN_ROUTE): {"reassign", "report_on_scene", "stand_down"},
    (True, S.ON_SCENE): {"reassign", "clear_scene"},
    (True, S.RETURNING): {"report_available", "take_out_of_service"},
    (True, S.OUT_OF_SERVICE): {"return_to_service"},
    (False, S.AVAILABLE): {"dispatch", "take_out_of_service"},
    (False, S.DISPATCHED): {"reassign", "activate", "stand_down"},
    (False, S.ON_SCENE): {"reassign", "deactivate"},
    (False, S.OUT_OF_SERVICE): {"return_to_service"},
}

# How to bring a resource into each status from available.
PATHS: dict[tuple[bool, ResourceStatus], list[str]] = {
    (True, S.AVAILABLE): [],
    (True, S.DISPATCHED): ["dispatch"],
    (True, S.EN_ROUTE): ["dispatch", "report_en_route"],
    (True, S.ON_SCENE): ["dispatch", "report_en_route", "report_on_scene"],
    (True, S.RETURNING): ["dispatch", "report_en_route", "report_on_scene", "clear_scene"],
    (True, S.OUT_OF_SERVICE): ["take_out_of_service"],
    (False, S.AVAILABLE): [],
    (False, S.DISPATCHED): ["dispatch"],
    (False, S.ON_SCENE): ["dispatch", "activate"],
    (False, S.OUT_OF_SERVICE): ["take_out_of_service"],
}

ILLEGAL = [
    pytest.param(mobile, status, command,
                 id=f"{'mobile' if mobile else 'fixed'}-{status.value}-{command}")
    for (mobile, status), allowed in ALLOWED.items()
    for command in COMMANDS
    if command not in allowed
]
LEGAL = [
    pytest.param(mobile, status, command,
                 id=f"{'mobile' if mobile else 'fixed'}-{status.value}-{command}")
    for (mobile, status), allowed in ALLOWED.items()
    for command in sorted(allowed)
]


def resource_in(app: Resources, clock: Clock, mobile: bool, status: ResourceStatus) -> UUID:
    resource_id = register_engine(app) if mobile else register_shelter(app)
    for command in PATHS[(mobile, status)]:
        clock.tick(minutes=1)
        COMMANDS[command](app, resource_id)
    assert app.resource(resource_id).status is status
    return resource_id


def test_the_table_covers_every_reachable_status() -> None:
    assert {s for (mobile, s) in ALLOWED if mobile} == set(ResourceStatus)
    assert {s for (mobile, s) in ALLOWED if not mobile} == set(ResourceStatus) - {
        S.EN_ROUTE, S.RETURNING}


@pytest.mark.parametrize(("mobile", "status", "command"), ILLEGAL)
def test_an_illegal_transition_is_refused_and_records_nothing(
        app: Resources, clock: Clock, mobile: bool, status: ResourceStatus,
        command: str) -> None:
    resource_id = resource_in(app, clock, mobile, status)
    version = app.resource(resource_id).version
    clock.tick(minutes=1)
    with pytest.raises(IllegalTransition) as refused:
        COMMANDS[command](app, resource_id)
    assert refused.value.kind == "resource"
    assert refused.value.aggregate_id == resource_id
    assert status.value in refused.value.state
    assert app.resource(resource_id).version == version


@pytest.mark.parametrize(("mobile", "status", "command"), LEGAL)
def test_a_legal_transition_records_one_event(app: Resources, clock: Clock, mobile: bool,
                                              status: ResourceStatus, command: str) -> None:
    resource_id = resource_in(app, clock, mobile, status)
    version = app.resource(resource_id).version
    clock.tick(minutes=1)
    COMMANDS[command](app, resource_id)
    resource = app.resource(resource_id)
    assert resource.version == version + 1
    assert resource.history[-1].status is resource.status


# --- idempotency, permissions, look-ups ------------------------------------------------------


def test_a_repeated_command_id_records_once(app: Resources, clock: Clock) -> None:
    first = register_engine(app, command_id="reg-e12")
    assert register_engine(app, command_id="reg-e12") == first
    incident = uuid4()
    clock.tick(minutes=1)
    app.dispatch(first, incident_id=incident, actor=DISPATCHER, command_id="cad-991")
    clock.tick(minutes=1)
    app.dispatch(first, incident_id=incident, actor=DISPATCHER, command_id="cad-991")
    resource = app.resource(first)
    assert resource.version == 2
    assert [c.status for c in resource.history] == [S.AVAILABLE, S.DISPATCHED]


def test_a_reused_command_id_with_other_arguments_is_refused(app: Resources) -> None:
    engine = register_engine(app)
    app.dispatch(engine, incident_id=uuid4(), actor=DISPATCHER, command_id="cad-992")
    with pytest.raises(CommandIdReused, match="cad-992"):
        app.dispatch(engine, incident_id=uuid4(), actor=DISPATCHER, command_id="cad-992")
    with pytest.raises(CommandIdReused):
        app.stand_down(engine, actor=DISPATCHER, command_id="cad-992")
    assert app.resource(engine).version == 2


@pytest.mark.parametrize(
    ("actor", "command"),
    [
        (LEADER, "dispatch"),
        (FIRE_CREW, "dispatch"),
        (TRACKER, "stand_down"),
        (INSPECTOR, "report_en_route"),
        (TRACKER, "take_out_of_service"),
        (LEADER, "report_position"),
        (INSPECTOR, "register"),
    ],
)
def test_a_role_not_allowed_is_refused(app: Resources, actor: Actor, command: str) -> None:
    engine = register_engine(app)
    calls: dict[str, Callable[[], Any]] = {
        "dispatch": lambda: app.dispatch(engine, incident_id=uuid4(), actor=actor),
        "stand_down": lambda: app.stand_down(engine, actor=actor),
        "report_en_route": lambda: app.report_en_route(engine, actor=actor),
        "take_out_of_service": lambda: app.take_out_of_service(engine, reason="x",
                                                               actor=actor),
        "report_position": lambda: app.report_position(engine, SCENE, T0, actor=actor),
        "register": lambda: app.register_resource(
            kind="ambulance", name="A1", call_sign="A1", department="health",
            home_base=STATION, actor=actor),
    }
    with pytest.raises(NotPermitted, match=f"{actor.role.value} {actor.user_id} may not"):
        calls[command]()
    assert app.resource(engine).version == 1


def test_a_crew_reports_only_for_its_own_department(app: Resources) -> None:
    engine = register_engine(app)
    app.dispatch(engine, incident_id=uuid4(), actor=DISPATCHER)
    with pytest.raises(NotPermitted, match="it belongs to fire"):
        app.report_en_route(engine, actor=WATER_USER)
    with pytest.raises(NotPermitted, match="it belongs to fire"):
        app.report_position(engine, SCENE, T0, actor=WATER_USER)
    assert app.resource(engine).version == 2


def test_an_unknown_resource_is_not_found(app: Resources) -> None:
    missing = uuid4()
    with pytest.raises(NotFound, match=f"resource {missing} does not exist"):
        app.dispatch(missing, incident_id=uuid4(), actor=DISPATCHER)
    with pytest.raises(NotFound):
        app.report_position(missing, SCENE, T0, actor=TRACKER)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda a, r: a.dispatch(r, incident_id="INC-1", actor=DISPATCHER),
         "incident id must be a UUID"),
        (lambda a, r: a.report_en_route(r, actor=DISPATCHER, position=[116.4, 39.9]),
         "position must be a GeoPoint"),
        (lambda a, r: a.report_position(r, (116.4, 39.9), T0, actor=TRACKER),
         "position must be a GeoPoint"),
        (lambda a, r: a.report_position(r, SCENE, datetime(2025, 7, 14, 8), actor=TRACKER),
         "has no time zone"),
    ],
)
def test_commands_refuse_bad_input(app: Resources, call: Step, message: str) -> None:
    engine = register_engine(app)
    with pytest.raises(InvalidValue, match=message):
        call(app, engine)


# --- positions -------------------------------------------------------------------------------


def east_of(point: GeoPoint, metres: float) -> GeoPoint:
    """A point `metres` east of `point` (small distances)."""
    metres_per_degree = EARTH_RADIUS_M * math.pi / 180 * math.cos(math.radians(point.lat))
    return GeoPoint(point.lon + metres / metres_per_degree, point.lat)


def test_positions_are_recorded_sparingly_and_cached_always(app: Resources,
                                                            clock: Clock) -> None:
    engine = register_engine(app)
    clock.tick(minutes=1)

    def fix(seconds: int, metres: float) -> PositionOutcome:
        clock.now = max(clock.now, T0 + timedelta(minutes=1, seconds=seconds))
        return app.report_position(engine, east_of(STATION, metres),
                                   T0 + timedelta(minutes=1, seconds=seconds), actor=TRACKER)

    assert fix(0, 0) is PositionOutcome.RECORDED       # the first position
    assert fix(5, 50) is PositionOutcome.CACHED        # close and soon: cache only
    assert fix(10, 150) is PositionOutcome.CACHED
    assert fix(15, 210) is PositionOutcome.RECORDED    # moved 210 m: recorded
    assert fix(15, 210) is PositionOutcome.IGNORED     # the same fix again
    assert fix(12, 500) is PositionOutcome.IGNORED     # older than the recorded one
    assert fix(80, 215) is PositionOutcome.CACHED      # a minute on, but only GPS jitter
    assert fix(90, 260) is PositionOutcome.RECORDED    # a minute on and moved 50 m
    assert fix(85, 300) is PositionOutcome.IGNORED     # out of order

    events = list(app.repository.event_store.get(engine))
    recorded = [e for e in events if isinstance(e, Resource.PositionReported)]
    assert [e.position_at - T0 for e in recorded] == [
        timedelta(minutes=1), timedelta(minutes=1, seconds=15),
        timedelta(minutes=1, seconds=90)]
    assert all(e.timestamp == e.position_at for e in recorded)
    latest = app.latest_position(engine)
    assert latest is not None
    assert latest.at == T0 + timedelta(minutes=1, seconds=90)


def test_the_latest_cached_position_travels_with_the_next_status_change(
        app: Resources, clock: Clock) -> None:
    engine = register_engine(app)
    app.dispatch(engine, incident_id=uuid4(), actor=DISPATCHER)
    clock.tick(seconds=40)
    app.report_en_route(engine, actor=FIRE_CREW, position=STATION)
    fix_at = clock.tick(seconds=20)
    assert app.report_position(engine, east_of(STATION, 20), fix_at,
                               actor=TRACKER) is PositionOutcome.CACHED
    fix_at = clock.tick(seconds=10)
    assert app.report_position(engine, east_of(STATION, 60), fix_at,
                               actor=TRACKER) is PositionOutcome.CACHED
    clock.tick(seconds=5)
    app.report_on_scene(engine, actor=FIRE_CREW)
    resource = app.resource(engine)
    assert resource.position == PositionFix(east_of(STATION, 60), fix_at)
    arrived = list(app.repository.event_store.get(engine))[-1]
    assert isinstance(arrived, Resource.ArrivedOnScene)
    assert (arrived.position, arrived.position_at) == (east_of(STATION, 60), fix_at)


def test_a_fix_older_than_the_last_event_is_only_cached(app: Resources, clock: Clock) -> None:
    engine = register_engine(app)
    clock.tick(minutes=5)
    app.dispatch(engine, incident_id=uuid4(), actor=DISPATCHER)
    late_fix = T0 + timedelta(minutes=4)
    assert app.report_position(engine, SCENE, late_fix, actor=TRACKER) is PositionOutcome.CACHED
    assert app.resource(engine).position is None
    assert app.latest_position(engine) == PositionFix(SCENE, late_fix)


def test_the_aggregate_has_the_last_word_on_a_fix(app: Resources, clock: Clock) -> None:
    # What another process with an empty cache would find when it loads the resource.
    engine = register_engine(app)
    clock.tick(minutes=1)
    app.report_position(engine, STATION, clock.now, actor=TRACKER)
    resource = app.resource(engine)
    policy = PositionPolicy()

    def judge(point: GeoPoint, at: datetime) -> PositionOutcome:
        return resource.report_position(fix=PositionFix(point, at), policy=policy,
                                        actor=TRACKER, at=at)

    assert judge(SCENE, T0) is PositionOutcome.IGNORED
    assert judge(east_of(STATION, 5), clock.now + timedelta(seconds=5)) is PositionOutcome.CACHED
    assert judge(east_of(STATION, 500), clock.now + timedelta(seconds=6)) is (
        PositionOutcome.RECORDED)
    assert resource.version == 3


def test_a_shelter_reports_no_positions(app: Resources) -> None:
    shelter = register_shelter(app)
    with pytest.raises(IllegalTransition, match="shelter is not a mobile kind"):
        app.report_position(shelter, SCENE, T0, actor=TRACKER)


def test_the_resource_view_adds_the_cached_position(app: Resources, clock: Clock) -> None:
    engine = register_engine(app)
    clock.tick(minutes=1)
    app.report_position(engine, STATION, clock.now, actor=TRACKER)
    clock.tick(seconds=10)
    app.report_position(engine, east_of(STATION, 30), clock.now, actor=TRACKER)
    view = app.resource_view(engine)
    assert view["position"]["at"] == (T0 + timedelta(minutes=1)).isoformat()
    assert view["latest_position"]["at"] == clock.now.isoformat()


@pytest.mark.parametrize(
    "policy",
    [
        {"interval": timedelta(0)},
        {"distance_m": -1.0},
        {"distance_m": float("inf")},
        {"jitter_m": 300.0},
    ],
)
def test_a_position_policy_must_make_sense(policy: dict[str, Any]) -> None:
    with pytest.raises(InvalidValue):
        PositionPolicy(**policy)


def test_a_stricter_policy_records_more(catalogue: Catalogue, clock: Clock) -> None:
    app = Resources(POPO, catalogue=catalogue, clock=clock,
                    position_policy=PositionPolicy(interval=timedelta(seconds=10),
                                                   distance_m=50.0, jitter_m=5.0))
    engine = register_engine(app)
    clock.tick(minutes=1)
    outcomes = [
        app.report_position(engine, east_of(STATION, 20 * i), clock.now + timedelta(
            seconds=5 * i), actor=TRACKER)
        for i in range(6)
    ]
    assert outcomes == [PositionOutcome.RECORDED, PositionOutcome.CACHED,
                        PositionOutcome.RECORDED, PositionOutcome.CACHED,
                        PositionOutcome.RECORDED, PositionOutcome.CACHED]


def test_a_fix_from_our_future_never_blocks_the_next_command(app: Resources,
                                                             clock: Clock) -> None:
    engine = register_engine(app)
    clock.tick(minutes=1)
    ahead = clock.now + timedelta(seconds=2)
    assert app.report_position(engine, SCENE, ahead, actor=TRACKER) is PositionOutcome.RECORDED
    app.dispatch(engine, incident_id=uuid4(), actor=DISPATCHER)
    events = list(app.repository.event_store.get(engine))
    assert (events[1].timestamp, events[1].position_at) == (clock.now, ahead)
    assert app.resource(engine).status is ResourceStatus.DISPATCHED


# --- response times --------------------------------------------------------------------------


def _assignment(incident: UUID, dispatched: int, en_route: int | None, on_scene: int | None,
                ended: int | None) -> Assignment:
    def at(minute: int | None) -> datetime | None:
        return None if minute is None else T0 + timedelta(minutes=minute)

    dispatched_at = at(dispatched)
    assert dispatched_at is not None
    return Assignment(incident, dispatched_at, at(en_route), at(on_scene), at(ended),
                      AssignmentOutcome.CLEARED if ended is not None else None)


def test_the_response_time_of_an_incident_is_its_first_arrival() -> None:
    incident = uuid4()
    engine = _assignment(incident, 2, 3, 11, 60)
    ambulance = _assignment(incident, 1, 2, 8, 30)
    late = _assignment(incident, 5, None, None, None)
    assert response_time(T0, [engine, ambulance, late]) == timedelta(minutes=8)
    assert response_time(T0, [late]) is None
    with pytest.raises(InvalidValue, match="one incident"):
        response_time(T0, [engine, _assignment(uuid4(), 1, 2, 3, 4)])


def test_queue_time_is_negative_when_a_crew_came_upon_the_incident() -> None:
    assignment = _assignment(uuid4(), 0, 0, 1, None)
    assert queue_time(T0 + timedelta(minutes=2), assignment) == timedelta(minutes=-2)
    assert time_on_scene(assignment) is None


def test_statistics_use_nearest_rank_percentiles() -> None:
    minutes = [timedelta(minutes=m) for m in (7, 3, 5, 9, 4, 6, 8, 10, 2, 1)]
    stats = duration_statistics([*minutes, None])
    assert stats.count == 10
    assert stats.mean == timedelta(minutes=5.5)
    assert stats.p50 == timedelta(minutes=5)
    assert stats.p90 == timedelta(minutes=9)
    assert duration_statistics([None]).count == 0
    assert duration_statistics([]).mean is None
    assert percentile([timedelta(1)], 90) == timedelta(1)
    with pytest.raises(InvalidValue):
        percentile([], 50)
    with pytest.raises(InvalidValue):
        percentile(minutes, 0)


def test_assignments_ignore_history_before_the_first_dispatch() -> None:
    incident = uuid4()
    history = [
        StatusChange(S.AVAILABLE, T0, None),
        StatusChange(S.OUT_OF_SERVICE, T0 + timedelta(hours=1), None),
        StatusChange(S.AVAILABLE, T0 + timedelta(hours=2), None),
        StatusChange(S.DISPATCHED, T0 + timedelta(hours=3), incident),
    ]
    [open_assignment] = assignments(history)
    assert (open_assignment.incident_id, open_assignment.outcome) == (incident, None)
    with pytest.raises(InvalidValue, match="without an incident"):
        assignments([StatusChange(S.DISPATCHED, T0, None)])


# --- the nearest available resources ---------------------------------------------------------


def test_the_nearest_available_resources_of_a_kind(app: Resources, clock: Clock) -> None:
    near = register_engine(app, call_sign="E1")
    far = app.register_resource(kind="fire-engine", name="Engine 2", call_sign="E2",
                                department="fire", home_base=east_of(SCENE, 5000),
                                actor=PLANNER)
    busy = app.register_resource(kind="fire-engine", name="Engine 3", call_sign="E3",
                                 department="fire", home_base=east_of(SCENE, 10),
                                 actor=PLANNER)
    broken = app.register_resource(kind="fire-engine", name="Engine 4", call_sign="E4",
                                   department="fire", home_base=east_of(SCENE, 20),
                                   actor=PLANNER)
    ambulance = app.register_resource(kind="ambulance", name="Ambulance 1", call_sign="A1",
                                      department="health", home_base=SCENE, actor=PLANNER)
    clock.tick(minutes=1)
    app.dispatch(busy, incident_id=uuid4(), actor=DISPATCHER)
    app.take_out_of_service(broken, reason="tyres", actor=DISPATCHER)
    # E1 drove out on patrol and is now 300 m from the scene: its cached fix counts.
    app.report_position(near, east_of(SCENE, -300), clock.now, actor=TRACKER)
    views = [app.resource_view(r) for r in (far, busy, broken, ambulance, near)]

    chosen = nearest_available(views, "fire-engine", SCENE, 5)
    assert [c.call_sign for c in chosen] == ["E1", "E2"]
    assert chosen[0].distance_m == pytest.approx(300, abs=0.5)
    assert chosen[1].distance_m == pytest.approx(5000, abs=0.5)
    assert [c.resource_id for c in nearest_available(views, "fire-engine", SCENE, 1)] == [
        str(near)]
    assert nearest_available(views, "ladder-truck", SCENE, 3) == []
    with pytest.raises(InvalidValue, match="at least 1"):
        nearest_available(views, "fire-engine", SCENE, 0)


def test_a_depot_is_found_at_its_home_base() -> None:
    summary = {"id": "d1", "call_sign": "DEPOT 1", "kind": "supply-depot", "mobile": False,
               "status": "available", "home_base": DEPOT_SITE.to_geojson(),
               "position": {"point": SCENE.to_geojson(), "at": T0.isoformat()}}
    [candidate] = nearest_available([summary], "supply-depot", DEPOT_SITE, 2)
    assert candidate.distance_m == 0.0


def test_a_crew_that_skipped_en_route_can_still_arrive_and_its_response_is_measured(
    app: Resources, clock: Clock
) -> None:
    """Crews forget the en-route button: arrival is still recorded; turnout and travel are
    unknown rather than invented."""
    engine = register_engine(app)
    app.dispatch(engine, incident_id=uuid4(), actor=DISPATCHER)
    clock.tick(minutes=9)
    app.report_on_scene(engine, actor=DISPATCHER, position=SCENE)
    resource = app.resource(engine)
    assert resource.status is ResourceStatus.ON_SCENE
    (assignment,) = assignments(resource.history)
    assert assignment.on_scene_at is not None
    assert (turnout_time(assignment), travel_time(assignment)) == (None, None)
