"""Emergency resources: register and revise them, their dispatch and status reports, their
positions; list, get (with the latest position) and find the nearest available ones."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query
from pydantic import Field

from cityops.command_center.dependencies import (
    MAX_PAGE,
    BBoxDep,
    CommandId,
    CurrentActor,
    PagingDep,
    SystemDep,
    page_body,
)
from cityops.command_center.models.resources import (
    NearestResourcePublic,
    PositionOutcomePublic,
    ResourcePublic,
    ResourcesPublic,
)
from cityops.command_center.schemas import Command, PointIn
from cityops.command_center.scopes import OutOfScope, scope_guard, scope_of, scoped_filters
from cityops.command_center.sharing import shared_route
from cityops.command_center.time_travel import ReadSystem
from cityops.command_center.versions import SeenVersion
from cityops.domain.commands import CommandContext
from cityops.domain.geometry import GeoPoint
from cityops.domain.resources.commands import (
    UNCHANGED,
    ActivateResource,
    RegisterResource,
    ReportEnRoute,
    ReportOnScene,
    ReportPosition,
    ResourceCommand,
    ReturnToService,
    ReviseResource,
)
from cityops.domain.resources.resource import ResourceStatus, nearest_available

router = APIRouter(
    prefix="/resources", tags=["resources"], route_class=shared_route("resources"),
    dependencies=[scope_guard("resource_id", "resource",
                              lambda system, i: system.resources.resource_view(i))],
)

MAX_NEAREST = 50


class ResourceRegistration(Command):
    kind: str = Field(description="Resource kind code from the catalogue, e.g. fire-engine")
    name: str = Field(min_length=1, max_length=200)
    call_sign: str = Field(min_length=1, max_length=40, description="Unique call sign")
    department: str = Field(description="Owning department code")
    home_base: PointIn
    capacity: int | None = Field(default=None, ge=0)
    stock: dict[str, float] = Field(default_factory=dict,
                                    description="Depot stock: item -> quantity")
    speciality: str = ""
    notes: str = ""


class ResourceRevision(Command):
    """Only the fields given change; `capacity: null` clears the capacity."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    home_base: PointIn | None = None
    capacity: int | None = Field(default=None, ge=0)
    stock: dict[str, float] | None = None
    speciality: str | None = None
    notes: str | None = None


class StatusReport(Command):
    position: PointIn | None = Field(default=None, description="Where it is now, if known")
    at: datetime | None = Field(default=None, description="When it happened (default: now)")


class Dispatch(StatusReport):
    incident_id: UUID


class OutOfService(StatusReport):
    reason: str = Field(min_length=1)


class Timed(Command):
    at: datetime | None = Field(default=None, description="When it happened (default: now)")


class PositionReport(Command):
    position: PointIn
    at: datetime = Field(description="When the fix was measured")


def _state(system: SystemDep, resource_id: UUID) -> dict[str, Any]:
    """The resource as the write side knows it now, with its latest known position."""
    system.wake_projections()
    return system.resources.resource_view(resource_id)


def _point(body: StatusReport) -> GeoPoint | None:
    return body.position.to_point() if body.position is not None else None


def _issue(system: SystemDep, command: ResourceCommand, actor: CurrentActor,
           command_id: CommandId, seen: SeenVersion, at: datetime | None = None,
           ) -> dict[str, Any]:
    """Run a command on one resource, as its user saw it (`If-Match`), and answer the
    resource."""
    outcome = system.commands.handle(command, CommandContext(
        actor=actor, command_id=command_id, at=at, seen_versions=seen))
    return _state(system, outcome.subject)


@router.post("", response_model=ResourcePublic, status_code=201)
def register_resource(body: ResourceRegistration, system: SystemDep, actor: CurrentActor,
                      command_id: CommandId) -> dict[str, Any]:
    """Register a rescue team, vehicle, supply depot, shelter or expert of a department."""
    register = RegisterResource(
        kind=body.kind, resource_name=body.name, call_sign=body.call_sign,
        department=body.department, home_base=body.home_base.to_point(),
        capacity=body.capacity, stock=body.stock, speciality=body.speciality, notes=body.notes,
    )
    outcome = system.commands.handle(register,
                                     CommandContext(actor=actor, command_id=command_id))
    return _state(system, outcome.subject)


@router.get("", response_model=ResourcesPublic)
def list_resources(
    system: ReadSystem,
    actor: CurrentActor,
    paging: PagingDep,
    bbox: BBoxDep,
    kind: str | None = None,
    status: Annotated[list[ResourceStatus] | None, Query(description="Any of these states")]
    = None,
    department: str | None = None,
    incident_id: UUID | None = None,
) -> dict[str, Any]:
    """List resources with filters, newest first (bbox: where they last were)."""
    filters: dict[str, Any] = {}
    if kind:
        filters["kind"] = kind
    if status:
        filters["status"] = [s.value for s in status]
    if department:
        filters["department"] = department
    if incident_id is not None:
        filters["incident_id"] = str(incident_id)
    try:
        filters = scoped_filters("rm_resources", filters, actor)
    except OutOfScope:
        return page_body([], 0, paging)
    page = system.read_models.page("rm_resources", filters=filters, bbox=bbox,
                                   limit=paging.limit, offset=paging.offset)
    return page_body(page.items, page.total, paging)


@router.get("/nearest", response_model=list[NearestResourcePublic],
            response_model_exclude_unset=True)
def nearest_resources(
    system: ReadSystem,
    actor: CurrentActor,
    kind: Annotated[str, Query(description="Resource kind code")],
    lon: Annotated[float, Query(ge=-180, le=180, description="Longitude (WGS84)")],
    lat: Annotated[float, Query(ge=-90, le=90, description="Latitude (WGS84)")],
    n: Annotated[int, Query(ge=1, le=MAX_NEAREST, description="How many")] = 5,
) -> list[dict[str, Any]]:
    """The nearest available resources of a kind, straight-line from where they are now."""
    system.catalogue.resource_kind(kind)
    docs = _available_of_kind(system, kind, scope_of(actor))
    for doc in docs:
        if doc.get("mobile"):
            # The read model knows recorded positions; this process may know a newer fix.
            latest = system.resources.latest_position(UUID(doc["id"]))
            if latest is not None:
                doc["latest_position"] = {"point": latest.point.to_geojson(),
                                          "at": latest.at.isoformat()}
    candidates = nearest_available(docs, kind, GeoPoint(lon=lon, lat=lat), n)
    return [{"resource_id": c.resource_id, "call_sign": c.call_sign,
             "distance_m": round(c.distance_m, 1), "resource": dict(c.summary)}
            for c in candidates]


def _available_of_kind(system: SystemDep, kind: str,
                       department: str | None) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    filters = {"kind": kind, "status": ResourceStatus.AVAILABLE.value}
    if department is not None:
        filters["department"] = department
    while True:
        page = system.read_models.page(
            "rm_resources", filters=filters,
            order_by="id", limit=MAX_PAGE, offset=len(docs),
        )
        docs.extend(page.items)
        if len(page.items) < MAX_PAGE:
            return docs


@router.get("/{resource_id}", response_model=ResourcePublic)
def get_resource(resource_id: UUID, system: ReadSystem) -> dict[str, Any]:
    """One resource, as recorded now, with the latest position this server knows."""
    return _state(system, resource_id)


@router.post("/{resource_id}/revise", response_model=ResourcePublic)
def revise_resource(resource_id: UUID, body: ResourceRevision, system: SystemDep,
                    actor: CurrentActor, command_id: CommandId,
                    seen: SeenVersion) -> dict[str, Any]:
    """Correct a resource's details; kind, department and call sign do not change."""
    command = ReviseResource(
        resource_id=resource_id, resource_name=body.name,
        home_base=body.home_base.to_point() if body.home_base else None,
        capacity=body.capacity if "capacity" in body.model_fields_set else UNCHANGED,
        stock=body.stock, speciality=body.speciality, notes=body.notes,
    )
    return _issue(system, command, actor, command_id, seen)


@router.post("/{resource_id}/dispatch", response_model=ResourcePublic)
def dispatch_resource(resource_id: UUID, body: Dispatch, system: SystemDep,
                      actor: CurrentActor, command_id: CommandId,
                      seen: SeenVersion) -> dict[str, Any]:
    """Dispatch an available resource to an incident open for resources (verified or
    responding), recorded on both: the incident lists it too."""
    system.operations.resource_assignments.dispatch(
        resource_id, incident_id=body.incident_id, position=_point(body), at=body.at,
        actor=actor, command_id=command_id, seen_versions=seen)
    return _state(system, resource_id)


@router.post("/{resource_id}/reassign", response_model=ResourcePublic)
def reassign_resource(resource_id: UUID, body: Dispatch, system: SystemDep,
                      actor: CurrentActor, command_id: CommandId,
                      seen: SeenVersion) -> dict[str, Any]:
    """Move a resource serving one incident straight to another open for resources: released
    on the one it leaves, assigned on the new one, each recorded on both."""
    system.operations.resource_assignments.reassign(
        resource_id, incident_id=body.incident_id, position=_point(body), at=body.at,
        actor=actor, command_id=command_id, seen_versions=seen)
    return _state(system, resource_id)


@router.post("/{resource_id}/stand-down", response_model=ResourcePublic)
def stand_down_resource(resource_id: UUID, body: StatusReport, system: SystemDep,
                        actor: CurrentActor, command_id: CommandId,
                        seen: SeenVersion) -> dict[str, Any]:
    """Cancel an assignment before arrival (available if it had not moved, else returning);
    its incident records it."""
    system.operations.resource_assignments.stand_down(
        resource_id, position=_point(body), at=body.at, actor=actor, command_id=command_id,
        seen_versions=seen)
    return _state(system, resource_id)


@router.post("/{resource_id}/en-route", response_model=ResourcePublic)
def report_en_route(resource_id: UUID, body: StatusReport, system: SystemDep,
                    actor: CurrentActor, command_id: CommandId,
                    seen: SeenVersion) -> dict[str, Any]:
    """A mobile resource sets off for its incident."""
    command = ReportEnRoute(resource_id=resource_id, position=_point(body))
    return _issue(system, command, actor, command_id, seen, body.at)


@router.post("/{resource_id}/on-scene", response_model=ResourcePublic)
def report_on_scene(resource_id: UUID, body: StatusReport, system: SystemDep,
                    actor: CurrentActor, command_id: CommandId,
                    seen: SeenVersion) -> dict[str, Any]:
    """A mobile resource arrives at its incident."""
    command = ReportOnScene(resource_id=resource_id, position=_point(body))
    return _issue(system, command, actor, command_id, seen, body.at)


@router.post("/{resource_id}/activate", response_model=ResourcePublic)
def activate_resource(resource_id: UUID, body: Timed, system: SystemDep, actor: CurrentActor,
                      command_id: CommandId, seen: SeenVersion) -> dict[str, Any]:
    """A depot or shelter dispatched to an incident opens for it."""
    command = ActivateResource(resource_id=resource_id)
    return _issue(system, command, actor, command_id, seen, body.at)


@router.post("/{resource_id}/clear-scene", response_model=ResourcePublic)
def clear_scene(resource_id: UUID, body: StatusReport, system: SystemDep, actor: CurrentActor,
                command_id: CommandId, seen: SeenVersion) -> dict[str, Any]:
    """A mobile resource leaves the scene, its work done: returning; its incident records
    it."""
    system.operations.resource_assignments.clear_scene(
        resource_id, position=_point(body), at=body.at, actor=actor, command_id=command_id,
        seen_versions=seen)
    return _state(system, resource_id)


@router.post("/{resource_id}/deactivate", response_model=ResourcePublic)
def deactivate_resource(resource_id: UUID, body: Timed, system: SystemDep,
                        actor: CurrentActor, command_id: CommandId,
                        seen: SeenVersion) -> dict[str, Any]:
    """A depot or shelter closes for its incident: available again; its incident records
    it."""
    system.operations.resource_assignments.deactivate(resource_id, at=body.at, actor=actor,
                                                      command_id=command_id,
                                                      seen_versions=seen)
    return _state(system, resource_id)


@router.post("/{resource_id}/available", response_model=ResourcePublic)
def report_available(resource_id: UUID, body: StatusReport, system: SystemDep,
                     actor: CurrentActor, command_id: CommandId,
                     seen: SeenVersion) -> dict[str, Any]:
    """A returning resource is ready for the next assignment."""
    system.operations.resource_assignments.report_available(
        resource_id, position=_point(body), at=body.at, actor=actor, command_id=command_id,
        seen_versions=seen)
    return _state(system, resource_id)


@router.post("/{resource_id}/out-of-service", response_model=ResourcePublic)
def take_out_of_service(resource_id: UUID, body: OutOfService, system: SystemDep,
                        actor: CurrentActor, command_id: CommandId,
                        seen: SeenVersion) -> dict[str, Any]:
    """Withdraw a resource that is not on an incident (maintenance, rest), with the reason."""
    system.operations.resource_assignments.take_out_of_service(
        resource_id, reason=body.reason, position=_point(body), at=body.at, actor=actor,
        command_id=command_id, seen_versions=seen)
    return _state(system, resource_id)


@router.post("/{resource_id}/return-to-service", response_model=ResourcePublic)
def return_to_service(resource_id: UUID, body: StatusReport, system: SystemDep,
                      actor: CurrentActor, command_id: CommandId,
                      seen: SeenVersion) -> dict[str, Any]:
    """An out-of-service resource is available again."""
    command = ReturnToService(resource_id=resource_id, position=_point(body))
    return _issue(system, command, actor, command_id, seen, body.at)


@router.post("/{resource_id}/positions", response_model=PositionOutcomePublic)
def report_position(resource_id: UUID, body: PositionReport, system: SystemDep,
                    actor: CurrentActor, seen: SeenVersion) -> dict[str, Any]:
    """Take a position fix of a mobile resource: recorded, cached, or ignored (not newer)."""
    # A fix is idempotent by its time (a repeat is not newer), so it takes no Idempotency-Key;
    # only fixes worth keeping in the history are recorded as events.
    fix = ReportPosition(resource_id=resource_id, point=body.position.to_point(),
                         measured_at=body.at)
    outcome = system.resources.judge_position(fix, CommandContext(actor=actor,
                                                                  seen_versions=seen))
    system.wake_projections()
    latest = system.resources.latest_position(resource_id)
    return {
        "resource_id": str(resource_id),
        "outcome": outcome.value,
        "latest_position": ({"point": latest.point.to_geojson(), "at": latest.at.isoformat()}
                            if latest is not None else None),
    }
