"""The demo's simulated day, played at once: it must be coherent (no command refused, no
message dead-lettered), touch every stream, send what outside systems send through the
embedded ingest queue, and be the same day for the same seed."""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta
from pathlib import Path

from cityops.bootstrap import CitySystem
from cityops.domain.application import CommandReceipt
from cityops.ingest import messages
from cityops.ingest.composition import ingest_store
from cityops.ingest.counters import CounterTable
from cityops.ingest.deadletters import StoredDeadLetters
from cityops.ingest.pipeline import Outcome
from cityops.ingest.topics import INPUT_STREAMS, IngestStream
from cityops.ingest.tracks import ResourceTracks
from cityops.settings import Settings
from cityops.simulator import GATEWAY, DemoDay, build_demo

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
        # Every outside system had its say through the queue, and every message was applied.
        assert set(demo.sent) == set(INPUT_STREAMS)
        assert demo.messages == {Outcome.APPLIED: sum(demo.sent.values()),
                                 Outcome.DUPLICATE: 0, Outcome.DEAD_LETTERED: 0}
        cases = system.read_models.page("rm_grid_cases", limit=500).items
        statuses = Counter(c["status"] for c in cases)
        assert len(cases) > 100
        assert statuses["closed"] > 10 and statuses["rejected"] > 0
        assert any(c["rework_count"] > 0 for c in cases)
        tickets = system.read_models.page("rm_tickets", limit=500).items
        assert len(tickets) > 50
        assert {"closed", "transferred"} <= {t["status"] for t in tickets}
        # Returns are reviewed (accepted and disputed), suspensions asked for and decided.
        recorded = Counter(topic.rsplit(":", 1)[-1] for _, topic, _ in event_trace(system))
        for name in ("GridCase.ReturnAccepted", "GridCase.ReturnRejected",
                     "GridCase.SuspensionRequested", "GridCase.SuspensionApproved",
                     "GridCase.SuspensionRefused", "GridCase.Resumed",
                     "HotlineTicket.ReturnAccepted"):
            assert recorded[name] > 0, name
        assert recorded["GridCase.Suspended"] == 0  # the centre never suspended on its own
        # Tickets that became cases followed them to the reply from the result, then the
        # callback.
        assert any(t["status"] == "closed" and any(w["finished"] for w in t["linked_work"])
                   for t in tickets)
        incidents = system.read_models.page("rm_incidents", limit=10).items
        assert {i["status"] for i in incidents} == {"reviewed"}
        assert {i["level"] for i in incidents} == {"III", "IV"}
        gas_leak = next(i for i in incidents if i["incident_type"] == "gas-leak")
        assert gas_leak["tasks"] and len(gas_leak["resources"]) >= 3
        # Closed with every task settled; each resource's leaving was recorded on the
        # incident (the crews' "returning" reports came through the ingest queue).
        for incident in incidents:
            assert incident["open_tasks"] == 0
            assert {t["status"] for t in incident["tasks"]} <= {"done", "cancelled", "waived"}
            assert all(r["released_at"] for r in incident["resources"])
        assert {r["release_reason"] for r in gas_leak["resources"]} == {"cleared the scene"}
        hazards = system.read_models.page("rm_hazard_sources", limit=20).items
        assert sum(h["alarm_count"] for h in hazards) >= 1
        # The gas leak's public warning: drafted, approved by a second person, issued,
        # widened (update), cancelled.
        [warning] = system.read_models.page("rm_warnings", limit=10).items
        assert warning["origin"]["incident_id"] == gas_leak["id"]
        assert warning["status"] == "cancelled" and warning["scope"] == "public"
        sent = [(n["msg_type"], n["issued_by"], n["approved_by"]) for n in warning["notices"]]
        assert [m for m, _, _ in sent] == ["alert", "update", "cancel"]
        assert all(issuer != approver for _, issuer, approver in sent[:2])
        assert demo.gas_leak_warning is not None
        notices = system.warnings.notices(demo.gas_leak_warning.warning_id)  # type: ignore[arg-type]
        first, update = notices[0].content.area, notices[1].content.area
        assert update.circles[0].radius_km > first.circles[0].radius_km
        assert len(update.admin_areas) >= len(first.admin_areas) > 0
        resources = system.read_models.page("rm_resources", limit=100).items
        moved = [r for r in resources if len(r["history"]) > 3]
        assert moved, "some resources went out and came back"
        assert {r["status"] for r in resources} == {"available"}
        # The cases came from the inspectors' messages: each case's id is its report's.
        receipt = system.grid_cases.repository.get(CommandReceipt.create_id("demo:4:case"))
        assert isinstance(receipt, CommandReceipt)
        assert str(receipt.aggregate_id) in {c["id"] for c in cases}
        store = ingest_store(system)
        try:
            # The ingest path kept what it keeps: counters, the trackers' fixes, no dead letter.
            counted = CounterTable(store).by_topic()
            assert sum(c.applied for c in counted.values()) == sum(demo.sent.values())
            assert sum(c.dead_lettered for c in counted.values()) == 0
            assert StoredDeadLetters(store).count() == 0
            fixes = ResourceTracks(store).movement()
            assert len(fixes) == demo.sent[IngestStream.RESOURCE_POSITIONS]
            assert {f.call_sign for f in fixes} == {r["call_sign"] for r in moved}
        finally:
            store.close()
    finally:
        system.close()


def test_a_dead_lettered_message_is_a_failure_of_the_demo(tmp_path: Path) -> None:
    system, demo = build_demo(Settings(data_dir=tmp_path / "bad"), seed=7, speed=0.0,
                              today=DEMO_DATE)
    try:
        demo.run_until(demo.start)  # the registers only
        # A gateway reading for a sensor the depot does not have.
        source_id = next(iter(demo.hazard_ids.values()))
        demo.at(demo.start, "faulty gateway reading", lambda: demo.send(
            IngestStream.HAZARD_READINGS, messages.hazard_reading(
                source_id=source_id, sensor_id="NO-SUCH-SENSOR", value=1.0,
                measured_at=demo.clock(), actor=GATEWAY, message_id="demo:faulty")))
        demo.run_until(demo.start)
        assert len(demo.failures) == 1
        failure = demo.failures[0]
        assert failure.startswith("faulty gateway reading: message demo:faulty "
                                  "(hazard-reading/1) dead-lettered: ")
        assert "NO-SUCH-SENSOR" in failure
        assert demo.messages[Outcome.DEAD_LETTERED] == 1
        store = ingest_store(system)
        try:
            assert [d.message_id for d in StoredDeadLetters(store).recent()] == ["demo:faulty"]
        finally:
            store.close()
    finally:
        system.close()


def test_the_same_seed_gives_the_same_day(tmp_path: Path) -> None:
    first, first_day = play(tmp_path / "one", seed=11, hours=3)
    second, second_day = play(tmp_path / "two", seed=11, hours=3)
    other, _ = play(tmp_path / "three", seed=12, hours=3)
    try:
        assert first_day.sent == second_day.sent
        assert first_day.messages == second_day.messages
        assert event_trace(first) == event_trace(second)
        assert event_trace(first) != event_trace(other)
        ids_first = [d["id"] for d in first.read_models.page("rm_grid_cases", limit=500).items]
        ids_second = [d["id"] for d in second.read_models.page("rm_grid_cases", limit=500).items]
        assert ids_first == ids_second
    finally:
        for system in (first, second, other):
            system.close()
