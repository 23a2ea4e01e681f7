"""Each message type is applied by its one command, with the message id as command id; a
message applied twice changes nothing; what the domain refuses is dead-lettered with the
domain's own words. Runs the real applications with in-memory persistence."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from cityops.domain.actors import Actor, Role
from cityops.domain.application import CommandReceipt
from cityops.domain.commands import CommandContext
from cityops.domain.coordination import ResourceAssignments
from cityops.domain.geometry import GeoPoint
from cityops.domain.gridcases.case import CaseStatus
from cityops.domain.gridcases.commands import DispatchCase, RegisterCase, ReportCase
from cityops.domain.hazards.commands import AddSensor, RegisterHazardSource
from cityops.domain.hazards.source import AlarmLevel
from cityops.domain.hotline.commands import AcceptTicket, AssignTicket, ReceiveTicket
from cityops.domain.hotline.ticket import TicketStatus
from cityops.domain.incidents.commands import ReportIncident, VerifyIncident
from cityops.domain.resources.commands import RegisterResource, ReportOnScene
from cityops.domain.resources.resource import Resource, ResourceStatus
from cityops.domain.response_times import assignments
from cityops.ingest import messages
from cityops.ingest.deadletters import StoredDeadLetters
from cityops.ingest.handlers import IngestTarget
from cityops.ingest.pipeline import Delivery, IngestPipeline, Outcome
from cityops.ingest.topics import IngestStream
from cityops.ingest.tracks import ResourceTracks

REPORTS = IngestStream.GRID_CASE_REPORTS
POSITIONS = IngestStream.RESOURCE_POSITIONS
INSPECTOR = Actor("insp-D01-01", Role.INSPECTOR)
"""The inspector who patrols `city_point` (a report elsewhere is marked as outside their cells)."""
OPERATOR = Actor("operator-zhao", Role.HOTLINE_OPERATOR)
DISPATCHER = Actor("dispatcher-wang", Role.DISPATCHER)
PLANNER = Actor("planner-li", Role.PLANNER)
GATEWAY = Actor("iot-gateway", Role.SYSTEM)
TRACKER = Actor("vehicle-tracker", Role.SYSTEM)
Sender = Any  # the `sender` fixture: delivers messages like a transport, numbering offsets


def recently(minutes: float = 5) -> datetime:
    """A moment shortly before now (message times are checked against the real clock)."""
    return datetime.now(UTC) - timedelta(minutes=minutes)


def register_engine(target: IngestTarget, call_sign: str, home: GeoPoint) -> UUID:
    return target.resources.handle(
        RegisterResource(kind="fire-engine", resource_name=f"Engine {call_sign}",
            call_sign=call_sign, department="fire", home_base=home),
        CommandContext(actor=PLANNER, at=recently(60))).subject


def dispatch_to_a_fire(target: IngestTarget, resource_id: UUID, where: GeoPoint, *,
                       at: datetime | None = None) -> UUID:
    """Dispatch the resource, as the centre does, to a verified fire (recorded on both)."""
    incidents = target.incidents
    assert incidents is not None
    incident_id = incidents.handle(
        ReportIncident(category="accident-disaster", incident_type="fire", title="Warehouse fire",
            location=where, source="inspector"),
        CommandContext(actor=INSPECTOR, at=recently(40))).subject
    incidents.handle(
        VerifyIncident(incident_id=incident_id),
        CommandContext(actor=DISPATCHER, at=recently(39)))
    ResourceAssignments(incidents=incidents, resources=target.resources).dispatch(
        resource_id, incident_id=incident_id, actor=DISPATCHER, at=at)
    return incident_id


def event_topics(application: Any) -> list[str]:
    """Every event the application has stored, by class name, in order."""
    return [n.topic.rsplit(":", 1)[1]
            for n in application.recorder.select_notifications(start=1, limit=10_000)]


def last_letter(dead_letters: StoredDeadLetters) -> Any:
    letters = dead_letters.recent(1)
    assert letters, "nothing was dead-lettered"
    return letters[0]


def test_a_grid_case_report_becomes_a_case_with_the_message_id_as_command_id(
        target: IngestTarget, sender: Sender, city_point: GeoPoint) -> None:
    reported_at = recently(3)
    message = messages.grid_case_report(category="E0101", description="Exposed garbage",
                                        location=city_point, actor=INSPECTOR, urgency="urgent",
                                        photos=["s3://p/1.jpg"], occurred_at=reported_at)
    assert sender.send(REPORTS, message) is Outcome.APPLIED

    receipt = target.grid_cases.repository.get(CommandReceipt.create_id(message["message_id"]))
    assert isinstance(receipt, CommandReceipt)
    case = target.grid_cases.case(receipt.aggregate_id)
    assert case.status is CaseStatus.REPORTED
    assert (case.category, case.urgency.value, case.photos) == ("E0101", "urgent",
                                                               ["s3://p/1.jpg"])
    assert case.location == city_point
    assert case.grid_cell == target.grid_cases.locator.locate_cell(city_point)
    assert case.created_on == reported_at
    assert event_topics(target.grid_cases) == ["GridCase.Reported", "CommandReceipt.Recorded"]


def test_a_redelivered_report_changes_nothing_even_in_a_fresh_worker(
        target: IngestTarget, sender: Sender, pipeline: IngestPipeline, city_point: GeoPoint,
        restart: Any) -> None:
    message = messages.grid_case_report(category="E0101", description="garbage",
                                        location=city_point, actor=INSPECTOR)
    assert sender.send(REPORTS, message) is Outcome.APPLIED
    # Same process: its memory of message ids answers.
    assert sender.send(REPORTS, message) is Outcome.DUPLICATE
    # A restarted worker has no memory: the receipt recorded with the case answers.
    fresh = restart()
    assert fresh.send(REPORTS, message) is Outcome.DUPLICATE
    assert event_topics(target.grid_cases) == ["GridCase.Reported", "CommandReceipt.Recorded"]
    assert pipeline.counters.stats()["total"] == {"consumed": 2, "applied": 1, "duplicate": 1,
                                                  "dead_lettered": 0}
    assert fresh.pipeline.counters.total().duplicate == 1


def test_a_message_id_reused_for_another_message_is_dead_lettered(
        target: IngestTarget, sender: Sender, city_point: GeoPoint,
        dead_letters: StoredDeadLetters) -> None:
    first = messages.grid_case_report(category="E0101", description="garbage",
                                      location=city_point, actor=INSPECTOR)
    second = messages.grid_case_report(category="E0102", description="other",
                                       location=city_point, actor=INSPECTOR,
                                       message_id=first["message_id"])
    assert sender.send(REPORTS, first) is Outcome.APPLIED
    assert sender.send(REPORTS, second) is Outcome.DEAD_LETTERED
    letter = last_letter(dead_letters)
    assert (letter.code, letter.error_class) == ("message-id-reused", "CommandIdReused")
    assert letter.message_id == first["message_id"]
    assert len(event_topics(target.grid_cases)) == 2


def test_a_report_outside_the_city_or_of_an_unknown_category_is_dead_lettered(
        target: IngestTarget, sender: Sender, city_point: GeoPoint,
        dead_letters: StoredDeadLetters) -> None:
    outside = messages.grid_case_report(category="E0101", description="far away",
                                        location=GeoPoint(lon=2.35, lat=48.85), actor=INSPECTOR)
    unknown = messages.grid_case_report(category="E9999", description="what",
                                        location=city_point, actor=INSPECTOR)
    assert sender.send(REPORTS, outside) is Outcome.DEAD_LETTERED
    assert "outside the city" in last_letter(dead_letters).reason
    assert sender.send(REPORTS, unknown) is Outcome.DEAD_LETTERED
    letter = last_letter(dead_letters)
    assert (letter.code, letter.reason) == ("invalid-value", "unknown grid-case category 'E9999'")
    assert event_topics(target.grid_cases) == []


def test_a_hotline_ticket_is_received_with_its_caller(
        target: IngestTarget, sender: Sender, city_point: GeoPoint) -> None:
    message = messages.hotline_ticket(channel="phone", ticket_type="complaint", topic="garbage",
                                      description="Not collected for three days",
                                      caller_name="Chen Jing", caller_phone="+86 25 5555 0101",
                                      location=city_point, actor=OPERATOR)
    assert sender.send(IngestStream.HOTLINE_TICKETS, message) is Outcome.APPLIED
    receipt = target.hotline.repository.get(CommandReceipt.create_id(message["message_id"]))
    ticket = target.hotline.ticket(receipt.aggregate_id)
    assert ticket.status is TicketStatus.RECEIVED
    assert (ticket.topic, ticket.caller_name, ticket.caller_phone) == (
        "garbage", "Chen Jing", "+86 25 5555 0101")


def _watched_tank(target: IngestTarget, city_point: GeoPoint) -> UUID:
    source_id = target.hazards.handle(
        RegisterHazardSource(hazard_type="chemical-storage", source_name="Tank farm 3",
            owner_name="Jinling Chemicals", owner_contact="+86 25 0000 0000", grade=2,
            location=city_point),
        CommandContext(actor=PLANNER, at=recently(120))).subject
    target.hazards.handle(
        AddSensor(source_id=source_id, sensor_id="tank3-gas", kind="gas-concentration",
            unit="%LEL", direction="high", warning=20, alarm=40),
        CommandContext(actor=PLANNER, at=recently(110)))
    return source_id


def test_readings_record_only_threshold_crossings_and_repeats_change_nothing(
        target: IngestTarget, sender: Sender, city_point: GeoPoint, restart: Any) -> None:
    source_id = _watched_tank(target, city_point)
    start = recently(60)
    readings = [messages.hazard_reading(source_id=source_id, sensor_id="tank3-gas", value=v,
                                        measured_at=start + timedelta(minutes=i), actor=GATEWAY)
                for i, v in enumerate([5.0, 6.0, 25.0, 26.0, 45.0, 3.0])]
    outcomes = [sender.send(IngestStream.HAZARD_READINGS, r) for r in readings]
    assert outcomes == [Outcome.APPLIED] * 6
    crossings = ["HazardSource.AlarmRaised", "HazardSource.AlarmLevelChanged",
                 "HazardSource.AlarmCleared"]
    stored = event_topics(target.hazards)
    assert stored[-3:] == crossings
    assert target.hazards.source(source_id).levels["tank3-gas"] is AlarmLevel.NORMAL

    # Redelivered after a restart (no memory of ids): every reading is not newer than the
    # last crossing, so nothing changes.
    fresh = restart()
    again = [fresh.send(IngestStream.HAZARD_READINGS, r) for r in readings]
    assert again == [Outcome.DUPLICATE] * 6
    assert event_topics(target.hazards) == stored


def test_a_reading_of_an_unknown_source_or_sensor_is_dead_lettered(
        target: IngestTarget, sender: Sender, city_point: GeoPoint,
        dead_letters: StoredDeadLetters) -> None:
    source_id = _watched_tank(target, city_point)
    unknown_source = messages.hazard_reading(source_id=uuid4(), sensor_id="tank3-gas",
                                             value=1.0, measured_at=recently(1), actor=GATEWAY)
    unknown_sensor = messages.hazard_reading(source_id=source_id, sensor_id="tank9",
                                             value=1.0, measured_at=recently(1), actor=GATEWAY)
    assert sender.send(IngestStream.HAZARD_READINGS, unknown_source) is Outcome.DEAD_LETTERED
    assert last_letter(dead_letters).code == "not-found"
    assert sender.send(IngestStream.HAZARD_READINGS, unknown_sensor) is Outcome.DEAD_LETTERED
    assert "tank9" in last_letter(dead_letters).reason


def test_every_position_fix_is_kept_in_the_track_and_only_some_become_events(
        target: IngestTarget, sender: Sender, city_point: GeoPoint, tracks: ResourceTracks,
        restart: Any) -> None:
    resource_id = register_engine(target, "FIRE 12", city_point)
    start = recently(30)
    fixes = [messages.resource_position(
        call_sign="fire 12", actor=TRACKER, speed_mps=5.0, heading_deg=90.0,
        position=GeoPoint(lon=city_point.lon + i * 0.00005, lat=city_point.lat),
        measured_at=start + timedelta(seconds=5 * i)) for i in range(15)]
    assert [sender.send(POSITIONS, f) for f in fixes] == [Outcome.APPLIED] * 15

    track = tracks.movement(resource_id)
    assert [p.measured_at for p in track] == [start + timedelta(seconds=5 * i)
                                              for i in range(15)]
    assert track[3].position == GeoPoint(lon=city_point.lon + 3 * 0.00005, lat=city_point.lat)
    assert (track[0].call_sign, track[0].speed_mps, track[0].heading_deg) == ("fire 12", 5.0, 90.0)
    recorded = [t for t in event_topics(target.resources) if t == "Resource.PositionReported"]
    # About 5 m per fix, every 5 s for 70 s: the first fix, and the one a minute later.
    assert len(recorded) == 2

    fresh = restart()
    assert [fresh.send(POSITIONS, f) for f in fixes] == [Outcome.DUPLICATE] * 15
    assert len(tracks.movement(resource_id)) == 15
    assert len([t for t in event_topics(target.resources)
                if t == "Resource.PositionReported"]) == 2
    between = tracks.movement(since=start + timedelta(seconds=10),
                              until=start + timedelta(seconds=20))
    assert [p.measured_at for p in between] == [start + timedelta(seconds=s) for s in (10, 15, 20)]


def test_a_late_fix_is_kept_in_the_track_without_rewriting_history(
        target: IngestTarget, sender: Sender, city_point: GeoPoint, tracks: ResourceTracks) -> None:
    resource_id = register_engine(target, "FIRE 7", city_point)
    now = recently(1)
    newer = messages.resource_position(call_sign="FIRE 7", position=city_point,
                                       measured_at=now, actor=TRACKER)
    older = messages.resource_position(call_sign="FIRE 7", position=city_point,
                                       measured_at=now - timedelta(minutes=2), actor=TRACKER)
    assert sender.send(POSITIONS, newer) is Outcome.APPLIED
    events = event_topics(target.resources)
    assert sender.send(POSITIONS, older) is Outcome.APPLIED
    assert event_topics(target.resources) == events
    assert [p.measured_at for p in tracks.movement(resource_id)] == [now - timedelta(minutes=2),
                                                                     now]


def test_a_fix_outside_the_city_or_of_an_unknown_call_sign_is_dead_lettered(
        target: IngestTarget, sender: Sender, city_point: GeoPoint, tracks: ResourceTracks,
        dead_letters: StoredDeadLetters) -> None:
    register_engine(target, "FIRE 3", city_point)
    # A tracker without a fix yet reports (0, 0).
    null_island = messages.resource_position(
        call_sign="FIRE 3", position=GeoPoint(lon=0.0, lat=0.0), measured_at=recently(1),
        actor=TRACKER)
    assert sender.send(POSITIONS, null_island) is Outcome.DEAD_LETTERED
    letter = last_letter(dead_letters)
    assert letter.code == "invalid-value"
    assert letter.reason.startswith("point (0.000000, 0.000000) is outside ")
    assert " km from its boundary" in letter.reason
    nobody = messages.resource_position(call_sign="GHOST 1", position=city_point,
                                        measured_at=recently(1), actor=TRACKER)
    assert sender.send(POSITIONS, nobody) is Outcome.DEAD_LETTERED
    assert last_letter(dead_letters).code == "not-found"
    assert tracks.movement() == []


def test_status_reports_move_a_dispatched_resource_and_illegal_ones_are_refused(
        target: IngestTarget, sender: Sender, city_point: GeoPoint,
        dead_letters: StoredDeadLetters) -> None:
    resource_id = register_engine(target, "FIRE 5", city_point)
    crew = Actor("crew-fire5", Role.SYSTEM)
    too_early = messages.resource_status(call_sign="FIRE 5", status="on-scene", actor=crew)
    assert sender.send(IngestStream.RESOURCE_STATUS, too_early) is Outcome.DEAD_LETTERED
    letter = last_letter(dead_letters)
    assert (letter.code, letter.error_class) == ("illegal-transition", "IllegalTransition")
    assert "it is available" in letter.reason

    dispatch_to_a_fire(target, resource_id, city_point)
    en_route = messages.resource_status(call_sign="FIRE 5", status="en-route", actor=crew,
                                        position=city_point)
    assert sender.send(IngestStream.RESOURCE_STATUS, en_route) is Outcome.APPLIED
    assert sender.send(IngestStream.RESOURCE_STATUS, en_route) is Outcome.DUPLICATE
    on_scene = messages.resource_status(call_sign="FIRE 5", status="on-scene", actor=crew)
    assert sender.send(IngestStream.RESOURCE_STATUS, on_scene) is Outcome.APPLIED
    resource = target.resources.resource(resource_id)
    assert resource.status is ResourceStatus.ON_SCENE
    assert Resource.create_id("FIRE 5") == resource_id


def test_a_crew_leaving_the_scene_is_recorded_on_its_incident_too(
        target: IngestTarget, sender: Sender, pipeline: IngestPipeline,
        city_point: GeoPoint) -> None:
    incidents = target.incidents
    assert incidents is not None
    incident_id = incidents.handle(
        ReportIncident(category="accident-disaster", incident_type="fire", title="Warehouse fire",
            location=city_point, source="inspector"),
        CommandContext(actor=INSPECTOR, at=recently(60))).subject
    incidents.handle(
        VerifyIncident(incident_id=incident_id),
        CommandContext(actor=DISPATCHER, at=recently(59)))
    engines = [register_engine(target, f"FIRE {n}", city_point) for n in (7, 8)]
    assignments = ResourceAssignments(incidents=incidents, resources=target.resources)
    for engine in engines:
        assignments.assign(incident_id, engine, actor=DISPATCHER)
        target.resources.handle(
            ReportOnScene(resource_id=engine),
            CommandContext(actor=DISPATCHER))
    crew = Actor("crew-fire7", Role.DEPARTMENT_USER, "fire")
    # Reported a little after the incident's last event (the clocks are real ones).
    left_at = datetime.now(UTC) + timedelta(seconds=30)
    returning = messages.resource_status(call_sign="FIRE 7", status="returning", actor=crew,
                                         occurred_at=left_at)
    assert sender.send(IngestStream.RESOURCE_STATUS, returning) is Outcome.APPLIED
    released = incidents.incident(incident_id).resources[0]
    assert (released.released_at, released.released_by, released.release_reason) == (
        left_at, "crew-fire7", "cleared the scene")
    # Delivered again: nothing more happens on either stream.
    version = incidents.incident(incident_id).version
    assert sender.send(IngestStream.RESOURCE_STATUS, returning) is Outcome.DUPLICATE
    assert incidents.incident(incident_id).version == version

    # In a batch with others: staged with them, and its incident records it once the
    # batch is committed (the movements process follows the resource's change then).
    batch = [messages.resource_status(call_sign="FIRE 8", status="returning", actor=crew,
                                      occurred_at=left_at + timedelta(seconds=10)),
             messages.resource_status(call_sign="FIRE 7", status="available", actor=crew,
                                      occurred_at=left_at + timedelta(seconds=20)),
             messages.grid_case_report(category="E0101", description="Exposed garbage",
                                       location=city_point, actor=INSPECTOR)]
    topics = [IngestStream.RESOURCE_STATUS, IngestStream.RESOURCE_STATUS, REPORTS]
    done = pipeline.process_batch([
        Delivery(topic=pipeline.topics.name(topic), value=messages.encode(message),
                 offset=100 + n)
        for n, (topic, message) in enumerate(zip(topics, batch, strict=True))])
    assert done.outcomes == [Outcome.APPLIED] * 3 and done.stalled is None
    assert [a.release_reason for a in incidents.incident(incident_id).resources] == [
        "cleared the scene", "cleared the scene"]


def test_a_status_report_that_arrives_after_a_later_fix_keeps_its_reported_time(
        target: IngestTarget, sender: Sender, city_point: GeoPoint,
        dead_letters: StoredDeadLetters) -> None:
    # The crew's status button and the vehicle's tracker are two devices on two topics: the
    # fix measured after the crew set off can be applied before their en-route report.
    resource_id = register_engine(target, "FIRE 6", city_point)
    dispatched_at = recently(20)
    dispatch_to_a_fire(target, resource_id, city_point, at=dispatched_at)
    set_off, fixed = dispatched_at + timedelta(minutes=2), dispatched_at + timedelta(minutes=4)
    moved = GeoPoint(lon=city_point.lon + 0.004, lat=city_point.lat)
    fix = messages.resource_position(call_sign="FIRE 6", position=moved, measured_at=fixed,
                                     actor=TRACKER)
    assert sender.send(POSITIONS, fix) is Outcome.APPLIED
    assert event_topics(target.resources)[-1] == "Resource.PositionReported"

    crew = Actor("crew-fire6", Role.SYSTEM)
    en_route = messages.resource_status(call_sign="FIRE 6", status="en-route", actor=crew,
                                        occurred_at=set_off)
    assert sender.send(IngestStream.RESOURCE_STATUS, en_route) is Outcome.APPLIED
    resource = target.resources.resource(resource_id)
    event = list(target.resources.events.get(resource_id))[-1]
    assert isinstance(event, Resource.WentEnRoute)
    # Logged in time order, after the fix; the crew's time is kept and is what counts.
    assert (event.timestamp, event.reported_at) == (fixed, set_off)
    assert resource.status is ResourceStatus.EN_ROUTE
    assert resource.status_since == set_off
    [assignment] = assignments(resource.history)
    assert assignment.en_route_at - assignment.dispatched_at == timedelta(minutes=2)
    assert resource.position is not None and resource.position.at == fixed
    assert target.resources.resource_view(resource_id)["status_since"] == set_off.isoformat()
    # Delivered again, it changes nothing.
    assert sender.send(IngestStream.RESOURCE_STATUS, en_route) is Outcome.DUPLICATE

    # A status reported before the last status change is out of order: refused.
    before = messages.resource_status(call_sign="FIRE 6", status="on-scene", actor=crew,
                                      occurred_at=set_off - timedelta(seconds=30))
    assert sender.send(IngestStream.RESOURCE_STATUS, before) is Outcome.DEAD_LETTERED
    letter = last_letter(dead_letters)
    assert letter.code == "invalid-value"
    assert "precedes its last status change" in letter.reason
    assert target.resources.resource(resource_id).status is ResourceStatus.EN_ROUTE


def _dispatched_case(target: IngestTarget, city_point: GeoPoint) -> tuple[UUID, str]:
    case_id = target.grid_cases.handle(
        ReportCase(source="inspector", category="E0101", description="garbage",
                   location=city_point),
        CommandContext(actor=INSPECTOR)).subject
    target.grid_cases.handle(RegisterCase(case_id=case_id), CommandContext(actor=DISPATCHER))
    target.grid_cases.handle(DispatchCase(case_id=case_id), CommandContext(actor=DISPATCHER))
    department = target.grid_cases.case(case_id).department
    assert department is not None
    return case_id, department


def test_department_reports_handle_or_return_a_dispatched_case(
        target: IngestTarget, sender: Sender, city_point: GeoPoint,
        dead_letters: StoredDeadLetters) -> None:
    case_id, department = _dispatched_case(target, city_point)
    outsider = Actor("roads-system", Role.DEPARTMENT_USER, "roads" if department != "roads"
                     else "water")
    wrong = messages.grid_case_handled(case_id=case_id, result="done", actor=outsider)
    assert sender.send(IngestStream.DEPARTMENT_REPORTS, wrong) is Outcome.DEAD_LETTERED
    assert last_letter(dead_letters).code == "not-permitted"

    insider = Actor(f"{department}-system", Role.DEPARTMENT_USER, department)
    handled = messages.grid_case_handled(case_id=case_id, result="Removed", actor=insider,
                                         evidence=["s3://after.jpg"])
    assert sender.send(IngestStream.DEPARTMENT_REPORTS, handled) is Outcome.APPLIED
    case = target.grid_cases.case(case_id)
    assert case.status is CaseStatus.HANDLED

    other_id, other_department = _dispatched_case(
        target, GeoPoint(lon=city_point.lon + 0.01, lat=city_point.lat))
    owner = Actor("dept-system", Role.DEPARTMENT_USER, other_department)
    returned = messages.grid_case_returned(case_id=other_id, reason="Not ours",
                                           suggested_department="water", actor=owner)
    assert sender.send(IngestStream.DEPARTMENT_REPORTS, returned) is Outcome.APPLIED
    assert target.grid_cases.case(other_id).status is CaseStatus.RETURNED

    missing = messages.grid_case_handled(case_id=uuid4(), result="done", actor=insider)
    assert sender.send(IngestStream.DEPARTMENT_REPORTS, missing) is Outcome.DEAD_LETTERED
    assert last_letter(dead_letters).code == "not-found"


def test_a_department_reply_is_recorded_on_its_ticket(
        target: IngestTarget, sender: Sender, city_point: GeoPoint) -> None:
    ticket_id = target.hotline.handle(
        ReceiveTicket(channel="phone", ticket_type="complaint", topic="water-supply",
                      description="No water", location=city_point),
        CommandContext(actor=OPERATOR)).subject
    target.hotline.handle(AssignTicket(ticket_id=ticket_id), CommandContext(actor=OPERATOR))
    department = target.hotline.ticket(ticket_id).department
    assert department is not None
    water = Actor("water-crm", Role.DEPARTMENT_USER, department)
    target.hotline.handle(AcceptTicket(ticket_id=ticket_id), CommandContext(actor=water))
    reply = messages.hotline_ticket_replied(ticket_id=ticket_id, reply="Repaired", actor=water)
    assert sender.send(IngestStream.DEPARTMENT_REPORTS, reply) is Outcome.APPLIED
    assert target.hotline.ticket(ticket_id).status is TicketStatus.REPLIED
