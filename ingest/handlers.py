"""One handler per message type: it turns a validated payload into the one application
command that handles it (nothing else decides anything here) and says whether the message
changed something or was a repeat.

A handler builds the command's value (`domain/<context>/commands.py`) and hands it to the owning
application's entry point with a `CommandContext`: the message's actor and time, the message
id as the command id, and the pipeline's `CommandBatch` (when it batches), in which the
command is staged rather than saved. So the receipt is saved in the same transaction as the
events the message caused; a redelivered message finds the receipt and changes nothing.
Readings and positions have no receipt: the domain ignores a reading or fix that is not newer
than what it knows, and the track keeps one row per fix.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol
from uuid import UUID

from cityops.domain.application import CommandBatch
from cityops.domain.commands import CommandContext, CommandOutcome
from cityops.domain.geometry import GeoPoint
from cityops.domain.gridcases.application import GridCases
from cityops.domain.gridcases.commands import HandleCase, ReportCase, ReturnCaseToCentre
from cityops.domain.hazards.application import HazardSources
from cityops.domain.hazards.commands import RecordReading
from cityops.domain.hazards.source import ReadingEffect
from cityops.domain.hotline.application import HotlineTickets
from cityops.domain.hotline.commands import ReceiveTicket, ReplyToCaller
from cityops.domain.incidents.application import Incidents
from cityops.domain.processes.resource_movements import ResourceMovements
from cityops.domain.resources.application import Resources
from cityops.domain.resources.commands import (
    ClearScene,
    ReportAvailable,
    ReportEnRoute,
    ReportOnScene,
    ReportPosition,
    StatusReport,
)
from cityops.domain.resources.resource import Resource
from cityops.ingest.catalogue import Message
from cityops.ingest.prefetch import BatchLookups
from cityops.ingest.tracks import ResourceTracks, TrackPoint
from cityops.projections.generations import ReadModelGenerations
from cityops.settings import Settings


class Effect(StrEnum):
    """What applying a message did."""

    APPLIED = "applied"
    DUPLICATE = "duplicate"
    """Nothing: a repeat of a message already applied, or a reading or fix not newer than
    what is already known."""


class CityBoundary(Protocol):
    """The city map as ingest needs it: is a point inside the city (else a clear error)."""

    def require_inside(self, point: GeoPoint) -> object: ...


class IngestSources(Protocol):
    """What ingest takes from the system (the composition root hands it the whole
    `CitySystem`, which has all of it): the applications its messages command, the lookups
    a batch fetches at once, the store of its own tables, and the broker."""

    grid_cases: GridCases
    hotline: HotlineTickets
    hazards: HazardSources
    resources: Resources
    incidents: Incidents
    batch_lookups: BatchLookups
    generations: ReadModelGenerations
    """Whose base store (not a generation) keeps ingest's own tables."""
    settings: Settings
    """The broker (`kafka_bootstrap_servers`) and the ingest's section."""


@dataclass(frozen=True)
class IngestTarget:
    """What the handlers act on: the applications of a `CitySystem`, its city map, and the
    track table."""

    grid_cases: GridCases
    hotline: HotlineTickets
    hazards: HazardSources
    resources: Resources
    city_map: CityBoundary
    tracks: ResourceTracks
    lookups: BatchLookups | None = None
    """Lookups fetched once per batch, in front of the applications' own (None: each
    message looks up its own)."""
    incidents: Incidents | None = None
    """Where a resource's leaving an incident is recorded too (None: nowhere, for targets
    without incidents)."""

    @classmethod
    def of(cls, system: IngestSources, tracks: ResourceTracks) -> IngestTarget:
        lookups = system.batch_lookups
        return cls(grid_cases=system.grid_cases, hotline=system.hotline,
                   hazards=system.hazards, resources=system.resources,
                   city_map=lookups.locator, tracks=tracks, lookups=lookups,
                   incidents=system.incidents)


@dataclass(frozen=True)
class JudgedFix:
    """A position fix the resource has judged; what is left is its row in the track, which
    the pipeline writes together with the other fixes of the batch (one statement for all)."""

    point: TrackPoint


Batch = CommandBatch[Any] | None
"""The batch a message's command is staged in (None: saved at once)."""
Handler = Callable[[Message, IngestTarget, Batch], Effect | JudgedFix]


def _point(data: Any) -> GeoPoint:
    return GeoPoint.from_geojson(data)


def _optional_point(data: Any) -> GeoPoint | None:
    return GeoPoint.from_geojson(data) if data is not None else None


def _context(message: Message, batch: Batch) -> CommandContext:
    """The context of a message's command: its actor and time, its id as the command id."""
    return CommandContext(actor=message.actor, command_id=message.message_id,
                          at=message.occurred_at, batch=batch)


def _effect(outcome: CommandOutcome) -> Effect:
    """A receipted command's effect: the outcome says whether it only repeated (its receipt
    made the repeat harmless, or refused an id reused for another message)."""
    return Effect.DUPLICATE if outcome.repeated else Effect.APPLIED


def report_grid_case(message: Message, target: IngestTarget, batch: Batch = None) -> Effect:
    """grid-case-report: a new case from the field."""
    p = message.payload
    return _effect(target.grid_cases.handle(ReportCase(
        source=p.get("source", "inspector"), category=p["category"],
        description=p["description"], location=_point(p["location"]),
        urgency=p.get("urgency", "normal"), photos=tuple(p.get("photos", [])),
    ), _context(message, batch)))


def receive_hotline_ticket(message: Message, target: IngestTarget,
                           batch: Batch = None) -> Effect:
    """hotline-ticket: a call or message taken by the call centre."""
    p = message.payload
    caller = p.get("caller") or {}
    return _effect(target.hotline.handle(ReceiveTicket(
        channel=p["channel"], ticket_type=p["ticket_type"], topic=p["topic"],
        description=p["description"], caller_name=caller.get("name"),
        caller_phone=caller.get("phone"), location=_optional_point(p.get("location")),
    ), _context(message, batch)))


def record_hazard_reading(message: Message, target: IngestTarget,
                          batch: Batch = None) -> Effect:
    """hazard-reading: judged against the sensor's thresholds; only crossings are saved."""
    p = message.payload
    reading = RecordReading(source_id=UUID(p["source_id"]), sensor_id=p["sensor_id"],
                            value=p["value"], measured_at=message.occurred_at)
    outcome = target.hazards.judge_reading(
        reading, CommandContext(actor=message.actor, batch=batch))
    return Effect.DUPLICATE if outcome.effect is ReadingEffect.OUT_OF_ORDER else Effect.APPLIED


def report_resource_position(message: Message, target: IngestTarget,
                             batch: Batch = None) -> JudgedFix:
    """resource-position: the resource decides whether the fix is worth an event; the track
    keeps every fix."""
    p = message.payload
    point = _point(p["position"])
    # Trackers glitch to (0, 0) or swap axes: a fix must be in the city (the error says how
    # far outside and whether swapping the axes would put it inside).
    target.city_map.require_inside(point)
    call_sign = p["call_sign"]
    resource_id = Resource.create_id(call_sign)
    # The resource first: an unknown call sign or a resource that does not move is refused
    # before anything is kept. The track row is written after it, before the offset is
    # committed; a crash in between is repaired by the redelivery: the resource ignores the
    # repeated fix and the track gets its row.
    fix = ReportPosition(resource_id=resource_id, point=point, measured_at=message.occurred_at)
    target.resources.judge_position(fix, CommandContext(actor=message.actor, batch=batch))
    return JudgedFix(TrackPoint(
        resource_id=resource_id, call_sign=call_sign, measured_at=message.occurred_at,
        position=point, speed_mps=p.get("speed_mps"), heading_deg=p.get("heading_deg"),
        message_id=message.message_id,
    ))


STATUS_COMMANDS: dict[str, type[StatusReport]] = {
    "en-route": ReportEnRoute,
    "on-scene": ReportOnScene,
    "returning": ClearScene,
    "available": ReportAvailable,
}
LEAVING_STATUSES = frozenset({"returning", "available"})
"""Statuses reported on leaving an incident (or after it): the incident records it too."""


def report_resource_status(message: Message, target: IngestTarget,
                           batch: Batch = None) -> Effect:
    """resource-status: the status change the crew reports; one that takes the resource off
    its incident is recorded on the incident too (by the process the incidents follow the
    resources with, which this worker runs once the change is saved)."""
    p = message.payload
    resource_id = Resource.create_id(p["call_sign"])
    report = STATUS_COMMANDS[p["status"]](resource_id=resource_id,
                                          position=_optional_point(p.get("position")))
    outcome = target.resources.handle(report, _context(message, batch))
    incidents = target.incidents
    if p["status"] in LEAVING_STATUSES and incidents is not None:
        movements = ResourceMovements(target.resources, incidents)

        def follow() -> None:
            movements.catch_up_with(target.resources.name)

        # Once the change is saved: now, or after the commit of the batch it is staged in
        # (a repeat staged nothing: the projection thread follows whatever is left).
        if batch is None:
            follow()
        else:
            batch.after_current_saved(follow)
    return _effect(outcome)


def handle_grid_case(message: Message, target: IngestTarget, batch: Batch = None) -> Effect:
    """grid-case-handled: the department's result."""
    p = message.payload
    return _effect(target.grid_cases.handle(HandleCase(
        case_id=UUID(p["case_id"]), result=p["result"], evidence=tuple(p.get("evidence", [])),
    ), _context(message, batch)))


def return_grid_case(message: Message, target: IngestTarget, batch: Batch = None) -> Effect:
    """grid-case-returned: not the department's responsibility."""
    p = message.payload
    return _effect(target.grid_cases.handle(ReturnCaseToCentre(
        case_id=UUID(p["case_id"]), reason=p["reason"],
        suggested_department=p.get("suggested_department"),
    ), _context(message, batch)))


def reply_to_hotline_ticket(message: Message, target: IngestTarget,
                            batch: Batch = None) -> Effect:
    """hotline-ticket-replied: the department's reply to the caller."""
    p = message.payload
    return _effect(target.hotline.handle(
        ReplyToCaller(ticket_id=UUID(p["ticket_id"]), reply=p["reply"]),
        _context(message, batch)))


def aggregate_loaded(message: Message, target: IngestTarget) -> tuple[Any, UUID] | None:
    """The application and aggregate a message's command will load, if it loads one that
    exists already (a batch asks the store once for all of them: see
    `CityApplication.bring_up_to_date`); None for a message that creates one or is unusable
    (its command says what is wrong with it)."""
    p = message.payload
    try:
        match message.type.type:
            case "resource-position" | "resource-status":
                return target.resources, Resource.create_id(p["call_sign"])
            case "hazard-reading":
                return target.hazards, UUID(p["source_id"])
            case "grid-case-handled" | "grid-case-returned":
                return target.grid_cases, UUID(p["case_id"])
            case "hotline-ticket-replied":
                return target.hotline, UUID(p["ticket_id"])
    except (KeyError, TypeError, ValueError):
        return None
    return None


HANDLERS: dict[str, Handler] = {
    "grid-case-report/1": report_grid_case,
    "hotline-ticket/1": receive_hotline_ticket,
    "hazard-reading/1": record_hazard_reading,
    "resource-position/1": report_resource_position,
    "resource-status/1": report_resource_status,
    "grid-case-handled/1": handle_grid_case,
    "grid-case-returned/1": return_grid_case,
    "hotline-ticket-replied/1": reply_to_hotline_ticket,
}
"""Every message type of the catalogue has exactly one handler (a unit test checks it)."""
