"""Properties of emergency resources that must hold whatever happens to them: random
sequences of commands follow the transition table, keep the invariants and replay exactly;
random position fixes follow the recording rule; statistics and nearest-resource choices
are consistent whatever the input."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cityops.domain.actors import Actor, Role
from cityops.domain.catalogue import Catalogue
from cityops.domain.errors import IllegalTransition
from cityops.domain.geometry import EARTH_RADIUS_M, GeoPoint
from cityops.domain.resources.application import Resources
from cityops.domain.resources.resource import (
    WITH_INCIDENT_STATUSES,
    PositionOutcome,
    PositionPolicy,
    Resource,
    ResourceStatus,
    nearest_available,
)
from cityops.domain.response_times import (
    assignments,
    duration_statistics,
    queue_time,
    status_changes,
    time_on_scene,
    travel_time,
    turnout_time,
)

POPO = {"PERSISTENCE_MODULE": "eventsourcing.popo"}
T0 = datetime(2025, 7, 14, 8, 0, tzinfo=UTC)
BASE = GeoPoint(116.39, 39.91)
CATALOGUE = Catalogue.load()
DISPATCHER = Actor("duty-1", Role.DISPATCHER)
PLANNER = Actor("planner-1", Role.PLANNER)
TRACKER = Actor("avl-gateway", Role.SYSTEM)
INCIDENTS = [UUID(int=1), UUID(int=2), UUID(int=3)]
S = ResourceStatus
PROPERTY_SETTINGS = settings(max_examples=150, deadline=None,
                             suppress_health_check=[HealthCheck.too_slow])


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def offset(point: GeoPoint, east_m: float, north_m: float) -> GeoPoint:
    metres_per_degree = EARTH_RADIUS_M * math.pi / 180
    return GeoPoint(point.lon + east_m / (metres_per_degree * math.cos(math.radians(point.lat))),
                    point.lat + north_m / metres_per_degree)


def new_app(clock: Clock, policy: PositionPolicy | None = None) -> Resources:
    return Resources(POPO, catalogue=CATALOGUE, clock=clock, position_policy=policy)


# --- the transition table as an independent model ------------------------------------------

def expected(mobile: bool, status: ResourceStatus, serving: UUID | None, command: str,
             incident: UUID) -> ResourceStatus | None:
    """The status after `command` per the module docstring's table; None if illegal."""
    both = {
        ("dispatch", S.AVAILABLE): S.DISPATCHED,
        ("stand_down", S.DISPATCHED): S.AVAILABLE,
        ("take_out_of_service", S.AVAILABLE): S.OUT_OF_SERVICE,
        ("return_to_service", S.OUT_OF_SERVICE): S.AVAILABLE,
    }
    mobile_only = {
        ("report_en_route", S.DISPATCHED): S.EN_ROUTE,
        ("report_on_scene", S.EN_ROUTE): S.ON_SCENE,
        ("report_on_scene", S.DISPATCHED): S.ON_SCENE,
        ("clear_scene", S.ON_SCENE): S.RETURNING,
        ("stand_down", S.EN_ROUTE): S.RETURNING,
        ("report_available", S.RETURNING): S.AVAILABLE,
        ("take_out_of_service", S.RETURNING): S.OUT_OF_SERVICE,
    }
    fixed_only = {
        ("activate", S.DISPATCHED): S.ON_SCENE,
        ("deactivate", S.ON_SCENE): S.AVAILABLE,
    }
    if command == "reassign":
        serves = status in (S.DISPATCHED, S.EN_ROUTE, S.ON_SCENE)
        return S.DISPATCHED if serves and incident != serving else None
    table = both | (mobile_only if mobile else fixed_only)
    return table.get((command, status))


COMMANDS: dict[str, Callable[[Resources, UUID, UUID], Any]] = {
    "dispatch": lambda a, r, i: a.dispatch(r, incident_id=i, actor=DISPATCHER),
    "reassign": lambda a, r, i: a.reassign(r, incident_id=i, actor=DISPATCHER),
    "report_en_route": lambda a, r, i: a.report_en_route(r, actor=DISPATCHER),
    "report_on_scene": lambda a, r, i: a.report_on_scene(r, actor=DISPATCHER),
    "activate": lambda a, r, i: a.activate(r, actor=DISPATCHER),
    "clear_scene": lambda a, r, i: a.clear_scene(r, actor=DISPATCHER),
    "deactivate": lambda a, r, i: a.deactivate(r, actor=DISPATCHER),
    "stand_down": lambda a, r, i: a.stand_down(r, actor=DISPATCHER),
    "report_available": lambda a, r, i: a.report_available(r, actor=DISPATCHER),
    "take_out_of_service": lambda a, r, i: a.take_out_of_service(r, reason="maintenance",
                                                                 actor=DISPATCHER),
    "return_to_service": lambda a, r, i: a.return_to_service(r, actor=DISPATCHER),
    "revise": lambda a, r, i: a.revise_resource(r, notes=f"note {i.int}", actor=PLANNER),
    "position": lambda a, r, i: a.report_position(
        r, offset(BASE, 100 * i.int, 0), a.clock() - timedelta(seconds=i.int), actor=TRACKER),
}

steps = st.lists(
    st.tuples(st.sampled_from(sorted(COMMANDS)), st.sampled_from(INCIDENTS),
              st.integers(min_value=0, max_value=900)),
    max_size=40,
)


def check_invariants(app: Resources, resource: Resource) -> None:
    assert resource.status in set(ResourceStatus)
    if not resource.mobile:
        assert resource.status not in (S.EN_ROUTE, S.RETURNING)
        assert resource.position is None
    assert (resource.incident_id is not None) == (resource.status in WITH_INCIDENT_STATUSES)
    assert (resource.out_of_service_reason is not None) == (resource.status is S.OUT_OF_SERVICE)
    last = resource.history[-1]
    assert (last.status, last.at, last.incident_id) == (
        resource.status, resource.status_since, resource.incident_id)
    times = [c.at for c in resource.history]
    assert times == sorted(times)
    events = list(app.repository.event_store.get(resource.id))
    assert status_changes(events) == resource.history
    recorded = [e.position_at for e in events if isinstance(e, Resource.PositionReported)]
    assert recorded == sorted(recorded) and len(set(recorded)) == len(recorded)
    found = assignments(resource.history)
    open_ones = [a for a in found if a.outcome is None]
    serving = resource.status in (S.DISPATCHED, S.EN_ROUTE, S.ON_SCENE)
    assert len(open_ones) == (1 if serving else 0)
    if serving:
        assert found[-1].outcome is None and found[-1].incident_id == resource.incident_id
    for a in found:
        assert queue_time(T0, a) >= timedelta(0)
        for measured in (turnout_time(a), travel_time(a), time_on_scene(a)):
            assert measured is None or measured >= timedelta(0)
    assert app.repository.get(resource.id).summary() == resource.summary()


@PROPERTY_SETTINGS
@given(mobile=st.booleans(), plan=steps)
def test_any_sequence_of_commands_follows_the_table_and_replays_exactly(
        mobile: bool, plan: list[tuple[str, UUID, int]]) -> None:
    clock = Clock()
    app = new_app(clock)
    resource_id = app.register_resource(
        kind="fire-engine" if mobile else "shelter", name="R", call_sign="R1",
        department="fire", home_base=BASE, actor=PLANNER)
    for command, incident, seconds in plan:
        clock.now += timedelta(seconds=seconds)
        before = app.resource(resource_id)
        if command in ("revise", "position"):
            if command == "position" and not mobile:
                try:
                    COMMANDS[command](app, resource_id, incident)
                except IllegalTransition:
                    pass
                else:
                    raise AssertionError("a shelter reported a position")
            else:
                COMMANDS[command](app, resource_id, incident)
            assert app.resource(resource_id).status is before.status
        else:
            target = expected(mobile, before.status, before.incident_id, command, incident)
            try:
                COMMANDS[command](app, resource_id, incident)
            except IllegalTransition:
                assert target is None, f"{command} from {before.status} was refused"
                assert app.resource(resource_id).version == before.version
            else:
                assert target is not None, f"{command} from {before.status} was allowed"
                after = app.resource(resource_id)
                assert after.status is target
                assert after.version == before.version + 1
                if command in ("dispatch", "reassign"):
                    assert after.incident_id == incident
        check_invariants(app, app.resource(resource_id))


# --- positions ---------------------------------------------------------------------------------

fixes = st.lists(
    st.tuples(st.integers(min_value=-120, max_value=120),      # seconds from the previous fix
              st.floats(min_value=-400, max_value=400),          # metres east
              st.floats(min_value=-400, max_value=400)),         # metres north
    min_size=1, max_size=60,
)


@PROPERTY_SETTINGS
@given(plan=fixes)
def test_position_fixes_follow_the_recording_rule(plan: list[tuple[int, float, float]]) -> None:
    clock = Clock()
    app = new_app(clock)
    policy = app.position_policy
    resource_id = app.register_resource(kind="ambulance", name="A", call_sign="A1",
                                        department="health", home_base=BASE, actor=PLANNER)
    clock.now = T0 + timedelta(hours=4)  # every fix is in the past (60 x 2 min at most)
    at = T0 + timedelta(hours=2)
    point = BASE
    recorded: tuple[GeoPoint, datetime] | None = None
    latest: datetime | None = None
    for seconds, east, north in plan:
        at += timedelta(seconds=seconds)
        point = offset(point, east, north)
        outcome = app.report_position(resource_id, point, at, actor=TRACKER)

        # The documented rule, restated.
        if recorded is not None and at <= recorded[1]:
            assert outcome is PositionOutcome.IGNORED
            continue
        moved = recorded[0].distance_m(point) if recorded else math.inf
        elapsed = at - recorded[1] if recorded else timedelta.max
        worth = moved >= policy.distance_m or (elapsed >= policy.interval
                                               and moved >= policy.jitter_m)
        newest = latest is None or at > latest
        if worth:
            assert outcome is PositionOutcome.RECORDED
            recorded = (point, at)
        else:
            assert outcome is (PositionOutcome.CACHED if newest else PositionOutcome.IGNORED)
        if newest:
            latest = at

    events = [e for e in app.repository.event_store.get(resource_id)
              if isinstance(e, Resource.PositionReported)]
    assert len(events) <= len(plan)
    resource = app.resource(resource_id)
    if recorded is not None:
        assert resource.position is not None
        assert (resource.position.point, resource.position.at) == recorded
    fix = app.latest_position(resource_id)
    assert (fix.at if fix else None) == latest
    assert app.repository.get(resource_id).summary() == resource.summary()


# --- statistics --------------------------------------------------------------------------------

durations = st.lists(st.integers(min_value=0, max_value=7200).map(lambda s: timedelta(seconds=s)),
                     max_size=200)


@given(values=durations)
def test_statistics_are_consistent(values: list[timedelta]) -> None:
    stats = duration_statistics(values)
    assert stats.count == len(values)
    if not values:
        assert (stats.mean, stats.p50, stats.p90) == (None, None, None)
        return
    assert stats.mean is not None and stats.p50 is not None and stats.p90 is not None
    assert min(values) <= stats.p50 <= stats.p90 <= max(values)
    assert min(values) <= stats.mean <= max(values)
    assert stats.p50 in values and stats.p90 in values
    # Nearest rank: at least 90 % are within p90, and fewer are within anything shorter.
    assert sum(v <= stats.p90 for v in values) >= 0.9 * len(values)
    assert sum(v < stats.p90 for v in values) < 0.9 * len(values)


# --- nearest available -------------------------------------------------------------------------

summaries = st.lists(
    st.fixed_dictionaries({
        "kind": st.sampled_from(["fire-engine", "ambulance", "shelter"]),
        "status": st.sampled_from([s.value for s in ResourceStatus]),
        "mobile": st.booleans(),
        "east": st.floats(min_value=-20_000, max_value=20_000),
        "north": st.floats(min_value=-20_000, max_value=20_000),
        "moved": st.none() | st.tuples(st.floats(-5000, 5000), st.floats(-5000, 5000)),
    }),
    max_size=30,
)


@given(drawn=summaries, n=st.integers(min_value=1, max_value=10))
def test_nearest_available_returns_the_nearest_eligible(drawn: list[dict[str, Any]],
                                                        n: int) -> None:
    resources = []
    for index, d in enumerate(drawn):
        home = offset(BASE, d["east"], d["north"])
        position = None
        if d["moved"] is not None:
            position = {"point": offset(home, *d["moved"]).to_geojson(), "at": T0.isoformat()}
        resources.append({"id": f"r{index}", "call_sign": f"C{index:02d}", "kind": d["kind"],
                          "status": d["status"], "mobile": d["mobile"],
                          "home_base": home.to_geojson(), "position": position})
    chosen = nearest_available(resources, "fire-engine", BASE, n)
    eligible = [r for r in resources if r["kind"] == "fire-engine" and r["status"] == "available"]
    assert len(chosen) == min(n, len(eligible))
    assert all(c.summary["status"] == "available" for c in chosen)
    distances = [c.distance_m for c in chosen]
    assert distances == sorted(distances)
    if chosen:
        picked = {c.resource_id for c in chosen}
        for r in eligible:
            if r["id"] not in picked:
                where = (r["position"]["point"] if r["mobile"] and r["position"]
                         else r["home_base"])
                assert BASE.distance_m(GeoPoint.from_geojson(where)) >= distances[-1]
