"""The department scope over /ws agrees with the REST API's (command-center/scopes.py): a
department user receives the incidents that gave their department a task or that they
reported — in the snapshot, live, on resume and in presence — and every hazard source (shared
by every department); another department's user receives none of those incidents. An
incident leaving a user's scope is sent as a removal."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest

from cityops.bootstrap import CitySystem, build_system
from cityops.command_center.live import LiveClient, LiveHub, PushedChange, Subscription
from cityops.domain.actors import Actor, Role
from cityops.domain.catalogue import Catalogue
from cityops.domain.commands import CommandContext
from cityops.domain.geometry import GeoPoint
from cityops.domain.hazards.commands import RegisterHazardSource
from cityops.domain.incidents.commands import (
    DefinePlan,
    ReportIncident,
    RespondToIncident,
    VerifyIncident,
)
from cityops.domain.incidents.plans import PlanLevel, PlanTask
from cityops.feeds.sharing import load_sharing_policy
from cityops.projections.live_changes import ChangeRow, FilterValues, scope_document
from cityops.settings import Settings

from .conftest import DISPATCHER, IN_TOWN, LiveServer, open_session

SHARING = load_sharing_policy(departments=Catalogue.load().departments)

pytestmark = pytest.mark.anyio

PLANNER = Actor("planner-live", Role.PLANNER)
WATER_USER = "department-user-water"
LAYERS = ["incidents", "hazard-sources"]


def define_pumping_plan(system: CitySystem) -> UUID:
    """A flood plan whose level IV gives the water department one task."""
    pumps = PlanTask("water", "Open the drainage pumping stations", timedelta(minutes=30))
    plan_id: UUID = system.incidents.handle(
        DefinePlan(code="live-scope-flood", plan_name="Urban flood", category="natural-disaster",
            incident_types=["waterlogging"], levels=[PlanLevel("IV", tasks=(pumps,))]),
        CommandContext(actor=PLANNER)).subject
    return plan_id


def report_waterlogging(system: CitySystem, title: str,
                        actor: Actor = DISPATCHER, source: str = "hotline") -> UUID:
    incident_id: UUID = system.incidents.handle(
        ReportIncident(category="natural-disaster", incident_type="waterlogging", title=title,
            location=IN_TOWN, source=source),
        CommandContext(actor=actor)).subject
    return incident_id


def respond_with_plan(system: CitySystem, incident_id: UUID, plan_id: UUID) -> None:
    """Verify the incident and respond at level IV with the plan: water gets its task."""
    system.incidents.handle(
        VerifyIncident(incident_id=incident_id, level="IV"),
        CommandContext(actor=DISPATCHER))
    system.incidents.handle(
        RespondToIncident(incident_id=incident_id, level="IV", plan_id=plan_id),
        CommandContext(actor=DISPATCHER))


def register_hazard(system: CitySystem, name: str) -> UUID:
    hazard_id: UUID = system.hazards.handle(
        RegisterHazardSource(hazard_type="gas-station", source_name=name, owner_name="Sinopec",
            owner_contact="025-1", grade=3, location=GeoPoint(118.79, 32.04)),
        CommandContext(actor=DISPATCHER)).subject
    return hazard_id


def ids(features: list[dict[str, Any]]) -> set[str]:
    return {f["id"] for f in features}


async def test_a_department_user_receives_the_incidents_in_their_scope(
        live_server: LiveServer) -> None:
    system = live_server.system
    url = live_server.url
    plan = define_pumping_plan(system)
    tasked = report_waterlogging(system, "Underpass under water")
    respond_with_plan(system, tasked, plan)
    untasked = report_waterlogging(system, "Puddle on a square")
    water_actor = Actor(WATER_USER, Role.DEPARTMENT_USER, "water")
    water_token = live_server.token("department-user", "water")  # the user exists first
    reported = report_waterlogging(system, "Water main burst", actor=water_actor,
                                   source="department")
    hazard = register_hazard(system, "Station on Zhongshan Road")
    system.catch_up()

    water = await open_session(url, water_token, layers=LAYERS)
    roads = await open_session(url, live_server.token("department-user", "roads"),
                               layers=LAYERS)
    dispatcher = await open_session(url, live_server.token("dispatcher"), layers=LAYERS)
    snapshots = {name: await session.next_of("snapshot") for name, session in
                 (("water", water), ("roads", roads), ("dispatcher", dispatcher))}
    assert ids(snapshots["water"]["layers"]["incidents"]) == {str(tasked), str(reported)}
    assert ids(snapshots["roads"]["layers"]["incidents"]) == set()
    assert ids(snapshots["dispatcher"]["layers"]["incidents"]) == {
        str(tasked), str(untasked), str(reported)}
    for snapshot in snapshots.values():
        # Hazard sources are shared with every department, over REST and over /ws.
        assert ids(snapshot["layers"]["hazard-sources"]) == {str(hazard)}
    assert snapshots["water"]["limits"]["incidents"]["matched"] == 2

    # The same answer as the REST API gives the same user.
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{live_server.port}") as http:
        listed = await http.get("/incidents", headers={
            "Authorization": f"Bearer {water_token}"})
    assert listed.status_code == 200, listed.text
    assert {item["id"] for item in listed.json()["data"]} == {str(tasked), str(reported)}

    # Live: an incident enters water's scope when the plan gives water a task.
    coming = await asyncio.to_thread(report_waterlogging, system, "Tunnel flooding")
    await asyncio.to_thread(respond_with_plan, system, coming, plan)
    elsewhere = await asyncio.to_thread(report_waterlogging, system, "Gutter blocked")
    marker = await asyncio.to_thread(register_hazard, system, "Station on Hanzhong Road")
    entered = await water.until(lambda m: m["type"] == "change" and m["id"] == str(coming))
    assert entered["feature"]["properties"]["tasks"][0]["department"] == "water"
    for session in (water, roads, dispatcher):
        await session.until(lambda m: m.get("id") == str(marker))
    incident_changes = {name: {c["id"] for c in session.changes()
                               if c["layer"] == "incidents"}
                        for name, session in (("water", water), ("roads", roads),
                                              ("dispatcher", dispatcher))}
    assert incident_changes["water"] == {str(coming)}
    assert incident_changes["roads"] == set()
    assert incident_changes["dispatcher"] == {str(coming), str(elsewhere)}
    # Before its task, the incident was not water's: nothing of it came before that.
    assert all(c["feature"]["properties"]["tasks"] for c in water.changes()
               if c["layer"] == "incidents")

    # Resume: what water missed is replayed, its scope still applied.
    last = water.received[-1]
    await water.close()
    missed = await asyncio.to_thread(report_waterlogging, system, "Cellar flooded")
    await asyncio.to_thread(respond_with_plan, system, missed, plan)
    not_water = await asyncio.to_thread(report_waterlogging, system, "Fountain overflowing")
    await asyncio.to_thread(system.catch_up)
    resumed = await open_session(url, live_server.token("department-user", "water"),
                                 layers=LAYERS, resume={"generation": last["generation"],
                                                        "position": last["position"]})
    done = await resumed.next_of("position")
    replayed = {c["id"] for c in resumed.changes()}
    assert done["position"] > last["position"]
    assert str(missed) in replayed and str(not_water) not in replayed
    for session in (resumed, roads, dispatcher):
        await session.close()


async def test_presence_on_an_incident_goes_to_the_users_who_may_see_it(
        live_server: LiveServer) -> None:
    system = live_server.system
    plan = define_pumping_plan(system)
    tasked = report_waterlogging(system, "Underpass under water")
    respond_with_plan(system, tasked, plan)
    untasked = report_waterlogging(system, "Puddle on a square")
    system.catch_up()
    water = await open_session(live_server.url, live_server.token("department-user", "water"),
                               layers=["presence"])
    roads = await open_session(live_server.url, live_server.token("department-user", "roads"),
                               layers=["presence"])
    for session in (water, roads):
        await session.next_of("snapshot")
    viewer = await open_session(live_server.url, live_server.token("dispatcher"),
                                layers=["presence"])
    await viewer.next_of("snapshot")
    await viewer.send({"type": "viewing", "layer": "incidents", "id": str(untasked)})
    await viewer.send({"type": "viewing", "layer": "incidents", "id": str(tasked)})
    told = await water.next_of("presence")
    assert told["id"] == str(tasked)
    assert [v["user_id"] for v in told["viewers"]] == ["dispatcher-live"]
    # The viewer sees its own presence on both; roads may see neither incident.
    await viewer.until(lambda m: m["type"] == "presence" and m["id"] == str(tasked)
                       and m["viewers"])
    await asyncio.sleep(0.5)
    assert not [m for m in roads.received if m["type"] == "presence"]
    assert not [m for m in water.received if m["type"] == "presence"
                and m["id"] == str(untasked)]
    for session in (water, roads, viewer):
        await session.close()


@pytest.mark.postgres
def test_a_snapshot_on_postgresql_scopes_incidents_as_the_rest_api_does(
        fresh_database: str, tmp_path: Path, demo_city: Any) -> None:
    # The snapshot's SQL on PostgreSQL (JSONB) is the REST API's own condition.
    system = build_system(Settings(database_url=fresh_database, data_dir=tmp_path / "unused",
                                   database_pool_size=2), city=demo_city)
    try:
        plan = define_pumping_plan(system)
        tasked = report_waterlogging(system, "Underpass under water")
        respond_with_plan(system, tasked, plan)
        report_waterlogging(system, "Puddle on a square")
        hazard = register_hazard(system, "Station on Zhongshan Road")
        system.catch_up()
        hub = LiveHub(system)
        for department, expected in (("water", {str(tasked)}), ("roads", set())):
            actor = Actor(f"department-user-{department}", Role.DEPARTMENT_USER, department)
            client = LiveClient(actor=actor, outbox=_Nowhere(), queue_size=10,
                                subscription=Subscription(frozenset(LAYERS)).scoped_to(actor))
            snapshot = json.loads(asyncio.run(hub.snapshot(client))[2])
            assert ids(snapshot["layers"]["incidents"]) == expected, department
            assert ids(snapshot["layers"]["hazard-sources"]) == {str(hazard)}
    finally:
        system.close()


def _incident_row(doc: dict[str, Any], before: dict[str, Any] | None) -> ChangeRow:
    values = FilterValues(118.8, 32.05, "natural-disaster", "IV", None, None)
    previous = (FilterValues(118.8, 32.05, "natural-disaster", "IV", None, None,
                             scope_document(before)) if before is not None else None)
    return ChangeRow(seq=7, layer="incidents", item_id="i-1", events=["Changed"],
                     at="2026-05-01T08:00:00+00:00", doc=doc,
                     geometry={"type": "Point", "coordinates": [118.8, 32.05]},
                     values=values, previous=previous,
                     recorded_at="2026-05-01T08:00:00+00:00")


class _Nowhere:
    async def send_text(self, data: str) -> None:  # pragma: no cover - never sent here
        raise AssertionError("nothing is sent by text_for")


def test_an_incident_that_leaves_a_users_scope_is_sent_as_a_removal() -> None:
    # Today's domain never takes a task away (a cancelled task stays on the incident), so
    # this is the rule checked on its own: the state before had water's task, after not.
    water = LiveClient(actor=Actor(WATER_USER, Role.DEPARTMENT_USER, "water"),
                       subscription=Subscription(frozenset({"incidents"})).scoped_to(
                           Actor(WATER_USER, Role.DEPARTMENT_USER, "water")),
                       outbox=_Nowhere(), queue_size=10)
    roads = LiveClient(actor=Actor("department-user-roads", Role.DEPARTMENT_USER, "roads"),
                       subscription=Subscription(frozenset({"incidents"})),
                       outbox=_Nowhere(), queue_size=10)
    with_task = {"id": "i-1", "reported_by": "disp", "tasks": [{"department": "water"}]}
    without = {"id": "i-1", "reported_by": "disp", "tasks": []}

    left = PushedChange(_incident_row(without, with_task), 1, SHARING).text_for(water)
    assert left is not None and '"feature":null' in left
    # It was never roads': nothing to say to them, before or after.
    assert PushedChange(_incident_row(without, with_task), 1, SHARING).text_for(roads) is None
    # Entering the scope sends the incident; staying out of it sends nothing.
    entered = PushedChange(_incident_row(with_task, without), 1, SHARING).text_for(water)
    assert entered is not None and '"department":"water"' in entered
    assert PushedChange(_incident_row(without, without), 1, SHARING).text_for(water) is None
