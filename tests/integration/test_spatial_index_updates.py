"""The embedded spatial index keeps up with the read models: a resource that moves is found
where it is now, rows written while questions are being asked end up in the index exactly
as a full reload would have them, and a rebuild's switch-over to a new generation of the
read models is followed."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cityops.bootstrap import CitySystem, build_system
from cityops.domain.actors import Actor, Role
from cityops.domain.commands import CommandContext
from cityops.domain.geometry import GeoPoint
from cityops.domain.resources.commands import RegisterResource, ReportPosition
from cityops.projections.generations import rebuild
from cityops.projections.spatial import EVERYTHING, FeatureQuery, SpatialQueries
from cityops.projections.spatial_embedded import EmbeddedSpatialQueries
from cityops.settings import Settings
from cityops.simulator import build_demo

DISPATCHER = Actor("disp-1", Role.DISPATCHER)
ORIGIN = GeoPoint(lon=118.80, lat=32.05)
LIVE_LAYERS = ("incidents", "grid-cases", "hazard-sources", "hazard-zones", "resources",
               "hotline-tickets")


def eventually(condition: Callable[[], bool], timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def fresh_index(system: CitySystem) -> EmbeddedSpatialQueries:
    """An index loaded in full from the tables as they are now."""
    return EmbeddedSpatialQueries(system.store, list(system.read_models.tables.values()),
                                  system.city)


def snapshot(spatial: SpatialQueries) -> dict[str, Any]:
    """Every live layer's features (ids, documents, shapes) and a few distance answers."""
    answers: dict[str, Any] = {}
    for layer in LIVE_LAYERS:
        answers[layer] = [(f.id, f.doc, f.geometry.wkb if f.geometry else None)
                          for f in spatial.features(layer, EVERYTHING).features]
    answers["near"] = [(f.id, round(f.distance_m or 0, 6)) for f in spatial.within_radius(
        "grid-cases", ORIGIN, 2500, FeatureQuery(limit=None)).features]
    answers["nearest"] = [(f.id, round(f.distance_m or 0, 6)) for f in spatial.nearest(
        "resources", ORIGIN, 5, FeatureQuery(where={"status": ("available",)}))]
    return answers


def test_a_moving_resource_is_found_where_it_is_now(tmp_path: Path, demo_city: Any) -> None:
    system = build_system(Settings(data_dir=tmp_path), city=demo_city)
    try:
        near = system.resources.handle(
            RegisterResource(kind="ambulance", resource_name="Near", call_sign="AMB-N",
                department="health", home_base=GeoPoint(lon=118.801, lat=32.051)),
            CommandContext(actor=DISPATCHER)).subject
        far = system.resources.handle(
            RegisterResource(kind="ambulance", resource_name="Far", call_sign="AMB-F",
                department="health", home_base=GeoPoint(lon=118.83, lat=32.07)),
            CommandContext(actor=DISPATCHER)).subject
        system.catch_up()
        ambulances = FeatureQuery(where={"kind": ("ambulance",)})
        first = system.spatial.nearest("resources", ORIGIN, 2, ambulances)
        assert [f.id for f in first] == [str(near), str(far)]

        system.resources.judge_position(
            ReportPosition(resource_id=far, point=GeoPoint(lon=118.8001, lat=32.0501),
                measured_at=datetime.now(UTC)),
            CommandContext(actor=DISPATCHER))
        system.catch_up()
        moved = system.spatial.nearest("resources", ORIGIN, 2, ambulances)
        assert [f.id for f in moved] == [str(far), str(near)]
        assert moved[0].distance_m == pytest.approx(14.4, abs=0.5)
        assert snapshot(system.spatial) == snapshot(fresh_index(system))
    finally:
        system.close()


def test_questions_asked_while_the_followers_write_see_every_row(tmp_path: Path) -> None:
    system, demo = build_demo(Settings(data_dir=tmp_path, projection_poll_interval_s=0.01),
                              seed=3, speed=0.0, today=date(2026, 11, 24))
    try:
        system.start_projections()
        moment = demo.start
        asked = 0
        for _ in range(24):  # six hours in quarters, asking between the steps
            moment += timedelta(minutes=15)
            demo.run_until(moment)
            asked += len(system.spatial.within_radius("grid-cases", ORIGIN, 3000,
                                                      FeatureQuery(limit=None)).features)
            system.spatial.nearest("resources", ORIGIN, 3, FeatureQuery())
        assert eventually(lambda: all(f.head() == f.position() for f in system.followers))
        assert asked > 0
        assert snapshot(system.spatial) == snapshot(fresh_index(system))
    finally:
        system.close()


def test_a_rebuild_switch_over_is_followed(tmp_path: Path) -> None:
    system, demo = build_demo(Settings(data_dir=tmp_path), seed=5, speed=0.0,
                              today=date(2026, 11, 24))
    try:
        demo.run_until(demo.start + timedelta(hours=3))
        system.catch_up()
        before = snapshot(system.spatial)
        generation = system.generations.active().number
        result = rebuild(system.generations)
        assert system.generations.active().number == result.generation != generation
        # The rebuilt generation holds the same rows; the index reloaded from it answers the
        # same, and keeps following the new generation's followers afterwards.
        assert snapshot(system.spatial) == before
        demo.run_until(demo.start + timedelta(hours=5))
        system.catch_up()
        assert snapshot(system.spatial) == snapshot(fresh_index(system))
        assert snapshot(system.spatial) != before
    finally:
        system.close()
