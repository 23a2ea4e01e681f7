"""The processes across streams on each storage back end (issue 11, trip-over 3): converting a
hotline ticket into a grid case and sending a resource to an incident or taking it off are
recorded on the first stream by the command, and on the second by a process that follows the
first stream's log from a tracked position. A command process killed with SIGKILL between the
two streams, or a process that fails between its command and its tracking record, leaves a
site that completes the second step on its next round, nobody repeating a call, and exactly
once however often the events are followed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.persistence import Tracking

from cityops.bootstrap import CitySystem, build_system
from cityops.domain.actors import Actor, Role
from cityops.domain.application import CommandReceipt
from cityops.domain.commands import CommandContext
from cityops.domain.geometry import GeoPoint
from cityops.domain.gridcases.case import CaseSource
from cityops.domain.gridcases.commands import ReportCase
from cityops.domain.hazards.commands import AddSensor, RecordReading, RegisterHazardSource
from cityops.domain.hotline.commands import ReceiveTicket
from cityops.domain.hotline.ticket import TicketStatus
from cityops.domain.incidents.commands import ReportIncident, VerifyIncident
from cityops.domain.incidents.incident import LinkKind
from cityops.domain.processes.case_conversions import report_command_id
from cityops.domain.processes.following import CrossStreamProcess
from cityops.domain.resources.commands import RegisterResource
from cityops.domain.resources.resource import ResourceStatus
from cityops.settings import Settings

OPERATOR = Actor("op-1", Role.HOTLINE_OPERATOR)
DISPATCHER = Actor("disp-1", Role.DISPATCHER)
PLANNER = Actor("planner-1", Role.PLANNER)
HOTLINE = Actor("operator-1", Role.HOTLINE_OPERATOR)
SystemFactory = Callable[..., CitySystem]

CHILD = """
import json, os, signal, sys
from uuid import UUID
from cityops.bootstrap import build_system
from cityops.domain.actors import Actor, Role
from cityops.domain.gridcases.commands import ReportCase
from cityops.domain.incidents.commands import (
    LinkToIncident, RecordResourceArrival, RecordResourceDeparture, ReportIncident)
from cityops.maps import load_demo_city
from cityops.settings import Settings

args = json.loads(sys.argv[1])
system = build_system(Settings(**args["settings"]), city=load_demo_city())


def killed_on(application, command_class):
    # The process dies after the first stream recorded the command, before the second did:
    # when the process issues its command on the second stream.
    handle = application.handle

    def handle_or_die(command, context):
        if isinstance(command, command_class):
            os.kill(os.getpid(), signal.SIGKILL)
        return handle(command, context)

    application.handle = handle_or_die


if args["command"] == "convert":
    killed_on(system.grid_cases, ReportCase)
    system.operations.ticket_to_case(UUID(args["ticket"]),
                                     actor=Actor("op-1", Role.HOTLINE_OPERATOR))
elif args["command"] == "assign":
    killed_on(system.incidents, RecordResourceArrival)
    system.operations.assign_resource(UUID(args["incident"]), UUID(args["resource"]),
                                      actor=Actor("disp-1", Role.DISPATCHER))
elif args["command"] == "release":
    killed_on(system.incidents, RecordResourceDeparture)
    system.operations.release_resource(UUID(args["incident"]), UUID(args["resource"]),
                                       actor=Actor("disp-1", Role.DISPATCHER))
elif args["command"] == "escalate-alarm":
    killed_on(system.incidents, ReportIncident)
    system.operations.escalate_alarm(
        UUID(args["source"]), UUID(args["alarm"]), category="accident-disaster",
        incident_type="hazmat-leak", title="Gas leak at the depot",
        actor=Actor("disp-1", Role.DISPATCHER))
elif args["command"] == "escalate-ticket":
    killed_on(system.incidents, LinkToIncident)
    system.operations.ticket_to_incident(UUID(args["ticket"]), incident_id=UUID(args["incident"]),
                                         actor=Actor("op-1", Role.HOTLINE_OPERATOR))
sys.exit(3)
"""


class InjectedCrash(Exception):
    """Stands for the process dying between a command it issued and its tracking record."""


def run_killed(settings: dict[str, Any], **args: str) -> None:
    """Run one command in a real child process that is killed (SIGKILL) half-way."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    done = subprocess.run([sys.executable, "-c", CHILD,
                           json.dumps({"settings": settings, **args})],
                          env=env, capture_output=True, timeout=300, check=False)
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()[-3000:]


def a_point(system: CitySystem) -> GeoPoint:
    centre = system.city.map.cells.geometry.iloc[40].centroid
    return GeoPoint(lon=float(centre.x), lat=float(centre.y))


def a_ticket(system: CitySystem) -> UUID:
    return system.commands.handle(ReceiveTicket(
        channel="phone", ticket_type="complaint", topic="street-lighting",
        description="Street lamp is out", caller_phone="13800138000",
        location=a_point(system)), CommandContext(actor=OPERATOR)).subject


def a_verified_flood_and_a_truck(system: CitySystem) -> tuple[UUID, UUID]:
    incident_id = system.commands.handle(ReportIncident(
        category="natural-disaster", incident_type="waterlogging", title="Underpass",
        location=a_point(system), source="hotline"), CommandContext(actor=HOTLINE)).subject
    system.commands.handle(VerifyIncident(incident_id=incident_id),
                           CommandContext(actor=DISPATCHER))
    truck = system.commands.handle(RegisterResource(
        kind="drainage-pump-truck", resource_name="Pump truck 3", call_sign="PUMP 3",
        department="water", home_base=a_point(system)), CommandContext(actor=PLANNER)).subject
    return incident_id, truck


def event_names(application: Any, aggregate_id: UUID) -> list[str]:
    return [type(e).__name__ for e in application.events.get(aggregate_id)]


def offered_again(system: CitySystem, process: CrossStreamProcess) -> None:
    """Every notification of the followed logs run through the process's policy again (a
    position lost, another runner): its commands are repeats."""
    for name, upstream in process.upstreams.items():
        recorder = upstream.application.recorder
        for notification in recorder.select_notifications(start=1, limit=10_000,
                                                           topics=upstream.topics):
            event = upstream.application.mapper.to_domain_event(notification)
            upstream.policy(event, Tracking(name, notification.id))


def fail_tracking_once(process: CrossStreamProcess) -> None:
    """Make the process fail after its commands for the next notification, before it records
    that notification's position."""
    original = process.track

    def track(tracking: Tracking) -> None:
        process.track = original  # type: ignore[method-assign]
        raise InjectedCrash(f"killed before tracking {tracking}")

    process.track = track  # type: ignore[method-assign]


class CrossStreamContract:
    """What the processes across streams must do on every back end."""

    @pytest.fixture
    def settings(self) -> dict[str, Any]:
        raise NotImplementedError

    @pytest.fixture
    def make_system(self, settings: dict[str, Any], demo_city: Any) -> Iterator[SystemFactory]:
        systems: list[CitySystem] = []

        def make(run_projections: bool = False) -> CitySystem:
            system = build_system(Settings(**settings, run_projections=run_projections),
                                  city=demo_city)
            systems.append(system)
            return system

        yield make
        for system in systems:
            system.close()

    # --- a ticket converted into a grid case ------------------------------------------------

    def test_a_conversion_killed_between_the_ticket_and_the_case_completes_once(
            self, make_system: SystemFactory, settings: dict[str, Any]) -> None:
        writer = make_system()
        ticket_id = a_ticket(writer)
        run_killed(settings, command="convert", ticket=str(ticket_id))
        ticket = writer.hotline.ticket(ticket_id)
        assert ticket.status is TicketStatus.TRANSFERRED and ticket.case_id is not None
        case_id = ticket.case_id
        assert not writer.grid_cases.exists(case_id)

        # The next round of the restarted site's processes reports the case.
        restarted = make_system()
        restarted.catch_up()
        case = restarted.grid_cases.case(case_id)
        assert (case.ticket_id, case.category, case.source.value) == (
            ticket_id, "C0105", "hotline")
        assert case.reporter == OPERATOR
        process = restarted.case_conversions
        assert process.lag() == {"hotline": 0}
        version = case.version
        offered_again(restarted, make_system().case_conversions)
        assert restarted.grid_cases.case(case_id).version == version
        row = restarted.read_models.get("rm_grid_cases", str(case_id))
        assert row is not None and row["ticket_id"] == str(ticket_id)

    def test_the_process_reports_the_case_as_a_command_value_under_the_ticket_derived_id(
            self, make_system: SystemFactory) -> None:
        system = make_system()
        ticket_id = a_ticket(system)
        seen = {ticket_id: system.hotline.ticket(ticket_id).version}
        # The versions the user saw (the ticket's If-Match) go with the first step only: the
        # process's command has a context of its own.
        case_id = system.operations.ticket_to_case(ticket_id, actor=OPERATOR,
                                                   seen_versions=seen)
        case = system.grid_cases.case(case_id)
        receipt = system.grid_cases.repository.get(
            CommandReceipt.create_id(report_command_id(ticket_id)))
        assert isinstance(receipt, CommandReceipt)
        assert (receipt.command, receipt.aggregate_id, receipt.actor) == (
            "grid-case.report", case_id, OPERATOR)
        # The same value under the same id through the one entry point is a repeat.
        report = ReportCase(source=CaseSource.HOTLINE, category=case.category,
                            description=case.description, location=case.location,
                            urgency=case.urgency, ticket_id=ticket_id, case_id=case_id)
        assert receipt.fingerprint == report.fingerprint()
        again = system.commands.handle(report, CommandContext(
            actor=OPERATOR, command_id=report_command_id(ticket_id)))
        assert again.repeated and again.subject == case_id
        assert system.grid_cases.case(case_id).version == case.version

    def test_a_conversion_failing_before_its_position_is_tracked_reports_the_case_once(
            self, make_system: SystemFactory) -> None:
        system = make_system()
        ticket_id = a_ticket(system)
        fail_tracking_once(system.case_conversions)
        # The command answers (the case id) though its process step failed half-way.
        case_id = system.operations.ticket_to_case(ticket_id, actor=OPERATOR)
        assert system.grid_cases.exists(case_id)
        assert system.case_conversions.lag()["hotline"] > 0

        restarted = make_system()
        restarted.catch_up()
        assert restarted.case_conversions.lag() == {"hotline": 0}
        assert event_names(restarted.grid_cases, case_id).count("Reported") == 1

    # --- a resource sent to an incident and taken off ---------------------------------------

    def test_a_dispatch_killed_between_the_resource_and_the_incident_completes_once(
            self, make_system: SystemFactory, settings: dict[str, Any]) -> None:
        writer = make_system()
        incident_id, truck = a_verified_flood_and_a_truck(writer)
        run_killed(settings, command="assign", incident=str(incident_id), resource=str(truck))
        assert writer.resources.resource(truck).serves(incident_id)
        assert writer.incidents.incident(incident_id).assignment(truck) is None

        restarted = make_system()
        restarted.catch_up()
        incident = restarted.incidents.incident(incident_id)
        assignment = incident.assignment(truck)
        assert assignment is not None and assignment.assigned_by == "disp-1"
        assert restarted.resource_movements.lag() == {"resources": 0}
        version = incident.version
        offered_again(restarted, make_system().resource_movements)
        assert restarted.incidents.incident(incident_id).version == version
        assert event_names(restarted.incidents, incident_id).count("ResourceAssigned") == 1

    def test_a_release_killed_between_the_resource_and_the_incident_completes_once(
            self, make_system: SystemFactory, settings: dict[str, Any]) -> None:
        writer = make_system()
        incident_id, truck = a_verified_flood_and_a_truck(writer)
        writer.operations.assign_resource(incident_id, truck, actor=DISPATCHER)
        assert writer.incidents.incident(incident_id).assignment(truck) is not None
        run_killed(settings, command="release", incident=str(incident_id), resource=str(truck))
        assert writer.resources.resource(truck).status is ResourceStatus.AVAILABLE
        assert writer.incidents.incident(incident_id).assignment(truck) is not None

        restarted = make_system()
        restarted.catch_up()
        incident = restarted.incidents.incident(incident_id)
        assert incident.assignment(truck) is None
        released = incident.resources[0]
        assert (released.released_by, released.release_reason) == ("disp-1", "stood down")
        version = incident.version
        offered_again(restarted, make_system().resource_movements)
        assert restarted.incidents.incident(incident_id).version == version
        assert event_names(restarted.incidents, incident_id).count("ResourceReleased") == 1

    def test_a_dispatch_failing_before_its_position_is_tracked_is_assigned_once(
            self, make_system: SystemFactory) -> None:
        system = make_system()
        incident_id, truck = a_verified_flood_and_a_truck(system)
        fail_tracking_once(system.resource_movements)
        system.operations.assign_resource(incident_id, truck, actor=DISPATCHER)
        assert system.incidents.incident(incident_id).assignment(truck) is not None
        assert system.resource_movements.lag()["resources"] > 0

        restarted = make_system()
        restarted.catch_up()
        assert restarted.resource_movements.lag() == {"resources": 0}
        assert event_names(restarted.incidents, incident_id).count("ResourceAssigned") == 1

    def test_the_projection_thread_completes_a_killed_dispatch(
            self, make_system: SystemFactory, settings: dict[str, Any]) -> None:
        writer = make_system()
        incident_id, truck = a_verified_flood_and_a_truck(writer)
        run_killed(settings, command="assign", incident=str(incident_id), resource=str(truck))
        running = make_system(run_projections=True)
        running.start_projections()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if writer.incidents.incident(incident_id).assignment(truck) is not None:
                break
            time.sleep(0.1)
        assert writer.incidents.incident(incident_id).assignment(truck) is not None


    # --- a ticket or an alarm escalated into an incident -------------------------------------

    def test_an_alarm_escalation_killed_between_the_source_and_the_incident_completes_once(
            self, make_system: SystemFactory, settings: dict[str, Any]) -> None:
        writer = make_system()
        source_id, alarm_id = an_alarm(writer)
        run_killed(settings, command="escalate-alarm", source=str(source_id),
                   alarm=str(alarm_id))
        incident_id = writer.hazards.source(source_id).alarms[alarm_id].incident_id
        assert incident_id is not None and not writer.incidents.exists(incident_id)

        restarted = make_system()
        restarted.catch_up()
        incident = restarted.incidents.incident(incident_id)
        assert (incident.title, incident.source.value, incident.source_ref) == (
            "Gas leak at the depot", "alarm", str(alarm_id))
        assert incident.is_linked(LinkKind.HAZARD_ALARM, alarm_id)
        version = incident.version
        offered_again(restarted, make_system().incident_escalations)
        assert restarted.incidents.incident(incident_id).version == version
        assert event_names(restarted.incidents, incident_id).count("Linked") == 1

    def test_a_ticket_joining_an_incident_killed_before_the_link_completes_once(
            self, make_system: SystemFactory, settings: dict[str, Any]) -> None:
        writer = make_system()
        ticket_id = a_ticket(writer)
        incident_id, _ = a_verified_flood_and_a_truck(writer)
        run_killed(settings, command="escalate-ticket", ticket=str(ticket_id),
                   incident=str(incident_id))
        assert writer.hotline.ticket(ticket_id).incident_id == incident_id
        assert not writer.incidents.incident(incident_id).is_linked(LinkKind.HOTLINE_TICKET,
                                                                      ticket_id)
        restarted = make_system()
        restarted.catch_up()
        incident = restarted.incidents.incident(incident_id)
        assert incident.is_linked(LinkKind.HOTLINE_TICKET, ticket_id)
        version = incident.version
        offered_again(restarted, make_system().incident_escalations)
        assert restarted.incidents.incident(incident_id).version == version


def an_alarm(system: CitySystem) -> tuple[UUID, UUID]:
    """A hazard source whose gas sensor raised an alarm."""
    city_source = system.city.hazard_sources[0]
    source_id = system.commands.handle(RegisterHazardSource(
        hazard_type=city_source.hazard_type, source_name=city_source.name,
        owner_name=city_source.owner_name, owner_contact=city_source.owner_contact,
        grade=city_source.grade, location=city_source.location),
        CommandContext(actor=DISPATCHER)).subject
    system.commands.handle(AddSensor(
        source_id=source_id, sensor_id="gas-1", kind="gas-concentration", unit="%LEL",
        direction="high", warning=20, alarm=40), CommandContext(actor=DISPATCHER))
    outcome = system.hazards.judge_reading(
        RecordReading(source_id=source_id, sensor_id="gas-1", value=55.0,
                      measured_at=system.clock()),
        CommandContext(actor=Actor("iot-gateway", Role.SYSTEM)))
    assert outcome.alarm is not None
    return source_id, outcome.alarm.alarm_id


class TestSqlite(CrossStreamContract):
    @pytest.fixture
    def settings(self, tmp_path: Path) -> dict[str, Any]:
        return {"data_dir": str(tmp_path / "store")}


@pytest.mark.postgres
class TestPostgres(CrossStreamContract):
    @pytest.fixture
    def settings(self, fresh_database: str) -> dict[str, Any]:
        return {"database_url": fresh_database, "database_pool_size": 2}
