"""The demo's simulated day, played at once: it must be coherent (no command refused),
touch every stream, and be the same day for the same seed."""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta
from pathlib import Path

from cityops.bootstrap import CitySystem
from cityops.settings import Settings
from cityops.simulator import DemoDay, build_demo

DEMO_DATE = date(2026, 11, 24)


def play(directory: Path, seed: int, hours: float = 14) -> tuple[CitySystem, DemoDay]:
    system, demo = build_demo(Settings(data_dir=directory), seed=seed, speed=0.0,
                              today=DEMO_DATE)
    demo.run_until(demo.start + timedelta(hours=hours))
    system.catch_up()
    return system, demo


def event_trace(system: CitySystem) -> list[tuple[str, str, int]]:
    trace = []
    for application in system.applications:
        for notification in application.recorder.select_notifications(start=1, limit=10_000):
            trace.append((application.name, notification.topic, notification.originator_version))
    return trace


def test_the_demo_day_is_coherent_and_touches_every_stream(tmp_path: Path) -> None:
    system, demo = play(tmp_path / "day", seed=7)
    try:
        assert demo.failures == []
        cases = system.read_models.page("rm_grid_cases", limit=500).items
        statuses = Counter(c["status"] for c in cases)
        assert len(cases) > 100
        assert statuses["closed"] > 10 and statuses["rejected"] > 0
        assert any(c["rework_count"] > 0 for c in cases)
        tickets = system.read_models.page("rm_tickets", limit=500).items
        assert len(tickets) > 50
        assert {"closed", "transferred"} <= {t["status"] for t in tickets}
        incidents = system.read_models.page("rm_incidents", limit=10).items
        assert {i["status"] for i in incidents} == {"reviewed"}
        assert {i["level"] for i in incidents} == {"III", "IV"}
        gas_leak = next(i for i in incidents if i["incident_type"] == "gas-leak")
        assert gas_leak["tasks"] and len(gas_leak["resources"]) >= 3
        hazards = system.read_models.page("rm_hazard_sources", limit=20).items
        assert sum(h["alarm_count"] for h in hazards) >= 1
        resources = system.read_models.page("rm_resources", limit=100).items
        moved = [r for r in resources if len(r["history"]) > 3]
        assert moved, "some resources went out and came back"
        assert {r["status"] for r in resources} == {"available"}
    finally:
        system.close()


def test_the_same_seed_gives_the_same_day(tmp_path: Path) -> None:
    first, _ = play(tmp_path / "one", seed=11, hours=3)
    second, _ = play(tmp_path / "two", seed=11, hours=3)
    other, _ = play(tmp_path / "three", seed=12, hours=3)
    try:
        assert event_trace(first) == event_trace(second)
        assert event_trace(first) != event_trace(other)
        ids_first = [d["id"] for d in first.read_models.page("rm_grid_cases", limit=500).items]
        ids_second = [d["id"] for d in second.read_models.page("rm_grid_cases", limit=500).items]
        assert ids_first == ids_second
    finally:
        for system in (first, second, other):
            system.close()
