"""Drills on both back ends, over the demo's simulated day: a window replayed as fast as
possible gives the read models live had at the window's end; no row of live data changes
while drills run (and participants act in them); several drills run at once without
interfering; participants' actions branch the drill from the history (what no longer applies
is skipped and counted); a drill survives a restart, paused where it was; deleting a drill
removes its folder or schema entirely."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest

from cityops.backup import projected_table_names, read_models_of, table_lines
from cityops.bootstrap import CitySystem
from cityops.domain.actors import Actor, Role
from cityops.domain.commands import CommandContext
from cityops.domain.drills.commands import (
    InviteDrillParticipants,
    JumpDrillForward,
    PauseDrill,
    ResumeDrill,
    StartDrill,
)
from cityops.domain.drills.drill import DrillStatus
from cityops.domain.gridcases.commands import RejectCase
from cityops.drills import DrillRoom, drill_schema, drill_settings
from cityops.settings import Settings
from cityops.simulator import DemoDay, build_demo
from cityops.site import DURABLE_TABLES, open_snapshot

DEMO_DATE = date(2026, 11, 24)
HOURS = 3.0
PLANNER = CommandContext(actor=Actor("planner-1", Role.PLANNER))
DISPATCHER = Actor("dispatcher-1", Role.DISPATCHER)


class Live:
    """The demo day played up to `HOURS`, on one back end."""

    def __init__(self, system: CitySystem, demo: DemoDay, url: str | None) -> None:
        self.system = system
        self.demo = demo
        self.url = url
        self.end = system.clock()

    @property
    def settings(self) -> Settings:
        return self.system.settings


@pytest.fixture(scope="module", params=["sqlite",
                                        pytest.param("postgres", marks=pytest.mark.postgres)])
def live(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
         ) -> Iterator[Live]:
    url = None
    if request.param == "postgres":
        databases = request.getfixturevalue("test_databases")
        url = databases.create("drills")
    settings = Settings(data_dir=tmp_path_factory.mktemp("live"), database_url=url,
                        database_pool_size=2)
    system, demo = build_demo(settings, seed=7, speed=0.0, today=DEMO_DATE)
    demo.run_until(demo.start + timedelta(hours=HOURS))
    system.catch_up()
    try:
        yield Live(system, demo, url)
    finally:
        system.close()
        if url is not None:
            databases.drop(url)


@pytest.fixture
def room(live: Live) -> Iterator[DrillRoom]:
    opened = DrillRoom(live.system)
    try:
        yield opened
    finally:
        opened.close()


def fingerprint(settings: Settings) -> dict[str, Any]:
    """Every row of a site: each event store's events, the durable tables, the read
    models."""
    snapshot = open_snapshot(settings)
    try:
        found: dict[str, Any] = {}
        for store in snapshot.stores():
            digest = hashlib.sha256()
            count = 0
            for nid, oid, version, topic, state in snapshot.events(store):
                digest.update(f"{nid}:{oid}:{version}:{topic}:".encode() + state)
                count += 1
            found[f"store:{store}"] = (count, digest.hexdigest())
        for table in DURABLE_TABLES:
            rows = snapshot.table(table)
            if rows is not None:
                found[f"table:{table.name}"] = hashlib.sha256(
                    b"".join(table_lines(*rows))).hexdigest()
        found["read-models"] = read_models_of(snapshot, projected_table_names(settings))
        return found
    finally:
        snapshot.close()


def start(room: DrillRoom, live: Live, *, since: timedelta, speed: float | str | None,
          until: datetime | None = None, participants: tuple[str, ...] = ()) -> UUID:
    drill_id = uuid4()
    room.handle(StartDrill(drill_id=drill_id, title="test drill",
                           window_from=live.demo.start + since,
                           window_to=until or live.end, speed=speed,  # type: ignore[arg-type]
                           participants=participants), PLANNER)
    return drill_id


def replayed(room: DrillRoom, drill_id: UUID, timeout: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        view = room.view(drill_id).summary()
        assert view["failure"] is None, view["failure"]
        if view["window_replayed"]:
            run = room.run_of(drill_id)
            assert run is not None
            run.system.catch_up()
            return view
        assert time.monotonic() < deadline, view
        time.sleep(0.1)


def reported_in_drill(run: Any, live: Live, before: datetime,
                      changed_later: bool = False) -> UUID:
    """A case reported before `before` that the drill has as reported (copied with the city
    as it stood at the window's start); with `changed_later`, one that the history changes
    again afterwards."""
    candidates = [UUID(c["id"]) for c in live.system.read_models.page(
        "rm_grid_cases", limit=500).items if c["reported_at"] < before.isoformat()
        and (c["status"] != "reported" or not changed_later)]
    deadline = time.monotonic() + 60
    while True:
        for case_id in candidates:
            if run.system.grid_cases.exists(case_id) and \
                    run.system.grid_cases.case(case_id).status.value == "reported":
                return case_id
        assert time.monotonic() < deadline, "no reported case in the drill"
        time.sleep(0.1)


def drill_read_models(room: DrillRoom, drill_id: UUID) -> dict[str, Any]:
    settings = drill_settings(room.settings, drill_id)
    snapshot = open_snapshot(settings)
    try:
        return read_models_of(snapshot, projected_table_names(settings))
    finally:
        snapshot.close()


def test_a_window_replayed_as_fast_as_possible_gives_the_read_models_live_had(
        live: Live, room: DrillRoom) -> None:
    before = fingerprint(live.settings)
    drill_id = start(room, live, since=timedelta(hours=1), speed="max")
    view = replayed(room, drill_id)
    assert view["events_replayed"] > 300 and view["events_skipped"] == 0
    expected = before["read-models"]
    assert drill_read_models(room, drill_id) == expected
    assert {t: v["rows"] for t, v in expected.items()}["rm_grid_cases"] > 20
    # Replayed, nothing of live changed (events, durable tables, read models).
    assert fingerprint(live.settings) == before


def test_no_row_of_live_data_changes_while_drills_run_and_participants_act(
        live: Live, room: DrillRoom) -> None:
    before = fingerprint(live.settings)
    drill_id = start(room, live, since=timedelta(hours=2), speed=100.0,
                     participants=("dispatcher-1",))
    run = room.run_of(drill_id)
    assert run is not None
    # A participant rejects a case that the drill has as reported.
    case_id = reported_in_drill(run, live, live.demo.start + timedelta(hours=2))
    case = {"id": str(case_id), "status": live.system.grid_cases.case(case_id).status.value}
    run.system.commands.handle(RejectCase(case_id=case_id, reason="not-city-management",
                                          note="drill"), CommandContext(actor=DISPATCHER))
    drilled = run.system.grid_cases.case(case_id)
    assert drilled.status.value == "rejected"
    # Recorded in the drill's own store, with who did it.
    last = run.system.grid_cases.recorder.select_events(drilled.id, desc=True, limit=1)[0]
    assert b'"user_id":"dispatcher-1"' in last.state
    room.handle(JumpDrillForward(drill_id=drill_id, to=live.end, current=live.end), PLANNER)
    replayed(room, drill_id)
    assert fingerprint(live.settings) == before
    assert live.system.grid_cases.case(UUID(case["id"])).status.value == case["status"]


def test_several_drills_run_at_once_without_interfering(live: Live, room: DrillRoom) -> None:
    expected = fingerprint(live.settings)["read-models"]
    first = start(room, live, since=timedelta(hours=1), speed=1.0,
                  participants=("dispatcher-1",))
    second = start(room, live, since=timedelta(hours=1), speed="max")
    third = start(room, live, since=timedelta(hours=2), speed=100.0)
    run = room.run_of(first)
    assert run is not None
    case_id = reported_in_drill(run, live, live.demo.start + timedelta(hours=1))
    case = {"id": str(case_id), "status": live.system.grid_cases.case(case_id).status.value}
    run.system.commands.handle(RejectCase(case_id=case_id, reason="not-city-management",
                                          note="only in the first drill"),
                               CommandContext(actor=DISPATCHER))
    for jumping in (first, third):
        room.handle(JumpDrillForward(drill_id=jumping, to=live.end, current=live.end),
                    PLANNER)
    for drill_id in (first, second, third):
        replayed(room, drill_id)
    assert drill_read_models(room, second) == expected
    assert drill_read_models(room, third) == expected
    assert drill_read_models(room, first) != expected
    for other in (second, third):
        system = room.run_of(other).system  # type: ignore[union-attr]
        assert system.grid_cases.case(UUID(case["id"])).status.value == case["status"]


def test_participants_branch_the_drill_and_later_history_of_it_is_skipped(
        live: Live, room: DrillRoom) -> None:
    since = timedelta(hours=1)
    drill_id = start(room, live, since=since, speed=1.0, participants=("dispatcher-1",))
    run = room.run_of(drill_id)
    assert run is not None
    room.handle(PauseDrill(drill_id=drill_id, drill_time=live.demo.start), PLANNER)
    # A case reported before the window's start that the history changes again later.
    target = reported_in_drill(run, live, live.demo.start + since, changed_later=True)
    run.system.commands.handle(
        RejectCase(case_id=target, reason="not-city-management", note="drill"),
        CommandContext(actor=DISPATCHER))
    room.handle(ResumeDrill(drill_id=drill_id), PLANNER)
    room.handle(JumpDrillForward(drill_id=drill_id, to=live.end, current=live.end), PLANNER)
    view = replayed(room, drill_id)
    assert view["events_skipped"] > 0 and view["branched_aggregates"] >= 1
    assert run.system.grid_cases.case(target).status.value == "rejected"
    assert live.system.grid_cases.case(target).status.value != "rejected"


def test_a_drill_survives_a_restart_paused_where_it_was(live: Live) -> None:
    room = DrillRoom(live.system)
    drill_id = start(room, live, since=timedelta(hours=1), speed=1.0,
                     participants=("dispatcher-1",))
    time.sleep(1.0)
    replayed_before = room.view(drill_id).summary()["events_replayed"]
    assert replayed_before > 0  # the city as it stood at the window's start
    room.close()
    again = DrillRoom(live.system)
    try:
        again.open()
        view = again.view(drill_id).summary()
        assert view["status"] == DrillStatus.PAUSED.value
        assert view["events_replayed"] >= replayed_before
        assert view["participants"] == ["dispatcher-1"]
        again.handle(ResumeDrill(drill_id=drill_id), PLANNER)
        again.handle(InviteDrillParticipants(drill_id=drill_id, users=("water",)), PLANNER)
        again.handle(JumpDrillForward(drill_id=drill_id, to=live.end, current=live.end),
                     PLANNER)
        replayed(again, drill_id)
        assert drill_read_models(again, drill_id) == fingerprint(live.settings)["read-models"]
    finally:
        again.close()


def test_deleting_a_drill_removes_its_folder_or_schema(live: Live, room: DrillRoom) -> None:
    from cityops.domain.drills.commands import DeleteDrill

    drill_id = start(room, live, since=timedelta(hours=2), speed="max")
    replayed(room, drill_id)
    room.handle(DeleteDrill(drill_id=drill_id), PLANNER)
    settings = drill_settings(live.settings, drill_id)
    if live.url is None:
        assert not settings.data_dir.exists()
    else:
        schema = drill_schema(live.settings, drill_id)
        with psycopg.connect(live.url) as connection:
            left = connection.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE %s",
                                      (f"%{drill_id.hex}%",)).fetchall()
        assert left == [], (schema, left)
    assert drill_id not in {d.drill.id for d in room.views(PLANNER.actor)}
