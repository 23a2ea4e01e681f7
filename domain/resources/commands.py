"""Every command of the emergency-resources stream, as values: registering resources,
dispatching them, their status reports and their positions.

One frozen dataclass per command, checked when it is built (types, times, geometries); what
needs the catalogue or the resource's state is checked by the handler in `resources`.
`name` is the command's name in the permissions table and the receipts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, ClassVar
from uuid import UUID

from cityops.domain.commands import Command
from cityops.domain.errors import InvalidValue
from cityops.domain.geometry import GeoPoint
from cityops.domain.resources.resource import normalise_call_sign
from cityops.domain.values import checked_id, checked_instant


class Unchanged(Enum):
    """Marks an optional revision argument left as it is (where None has a meaning)."""

    UNCHANGED = "unchanged"


UNCHANGED = Unchanged.UNCHANGED


def _set(command: object, field: str, value: object) -> None:
    object.__setattr__(command, field, value)



def _fix_args(point: GeoPoint | None) -> list[float] | None:
    return [point.lon, point.lat] if point is not None else None


def _check_point(label: str, point: GeoPoint | None) -> None:
    if point is not None and not isinstance(point, GeoPoint):
        raise InvalidValue(f"{label} must be a GeoPoint")


def _stock(stock: Mapping[str, float] | None) -> Mapping[str, float] | None:
    if stock is not None and not isinstance(stock, Mapping):
        raise InvalidValue("stock must map item names to quantities")
    return dict(stock) if stock is not None else None


@dataclass(frozen=True, kw_only=True)
class RegisterResource(Command):
    """Register a resource of a catalogue kind, owned by a department; its call sign is
    unique (the resource id derives from it)."""

    name: ClassVar[str] = "resource.register"
    kind: str
    resource_name: str
    call_sign: str
    department: str
    home_base: GeoPoint
    capacity: int | None = None
    stock: Mapping[str, float] | None = None
    speciality: str = ""
    notes: str = ""

    def __post_init__(self) -> None:
        _set(self, "call_sign", normalise_call_sign(self.call_sign))
        _check_point("home base", self.home_base)
        _set(self, "stock", _stock(self.stock))

    def fingerprint_args(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "name": self.resource_name, "call_sign": self.call_sign,
            "department": self.department, "home_base": _fix_args(self.home_base),
            "capacity": self.capacity, "stock": dict(self.stock or {}),
            "speciality": self.speciality, "notes": self.notes,
        }


@dataclass(frozen=True, kw_only=True)
class ResourceCommand(Command):
    """A command on one registered resource."""

    name: ClassVar[str]
    resource_id: UUID

    def __post_init__(self) -> None:
        checked_id("resource id", self.resource_id)

    def fingerprint_args(self) -> dict[str, Any]:
        return {"resource_id": self.resource_id}


@dataclass(frozen=True, kw_only=True)
class ReviseResource(ResourceCommand):
    """Correct a resource's details (None, or UNCHANGED for capacity, keeps a value); kind,
    department and call sign do not change."""

    name: ClassVar[str] = "resource.revise"
    resource_name: str | None = None
    home_base: GeoPoint | None = None
    capacity: int | Unchanged | None = UNCHANGED
    stock: Mapping[str, float] | None = None
    speciality: str | None = None
    notes: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_point("home base", self.home_base)
        _set(self, "stock", _stock(self.stock))

    def fingerprint_args(self) -> dict[str, Any]:
        return {
            "resource_id": self.resource_id, "name": self.resource_name,
            "home_base": _fix_args(self.home_base),
            "capacity": (self.capacity.value if isinstance(self.capacity, Unchanged)
                         else self.capacity),
            "stock": dict(self.stock) if self.stock is not None else None,
            "speciality": self.speciality, "notes": self.notes,
        }


@dataclass(frozen=True, kw_only=True)
class StatusReport(ResourceCommand):
    """A status change of a resource; it carries the reported position, if any (else the
    position this process last saw)."""

    position: GeoPoint | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_point("position", self.position)

    def fingerprint_args(self) -> dict[str, Any]:
        return {"resource_id": self.resource_id, "position": _fix_args(self.position)}


@dataclass(frozen=True, kw_only=True)
class DispatchResource(StatusReport):
    """Assign an available resource to an incident, this stream's side only (the incident
    may be recorded elsewhere; the command centre sends `DispatchToOpenIncident`)."""

    name: ClassVar[str] = "resource.dispatch"
    incident_id: UUID

    def __post_init__(self) -> None:
        super().__post_init__()
        checked_id("incident id", self.incident_id)

    def fingerprint_args(self) -> dict[str, Any]:
        return {**super().fingerprint_args(), "incident_id": self.incident_id}


@dataclass(frozen=True, kw_only=True)
class ReassignResource(DispatchResource):
    """Move a resource serving one incident straight to another (this stream's side, as
    `DispatchResource`)."""

    name: ClassVar[str] = "resource.reassign"


@dataclass(frozen=True, kw_only=True)
class DispatchToOpenIncident(DispatchResource):
    """`DispatchResource` to an incident of this city, refused (with nothing recorded) unless
    the incident is open for resources: how the command centre sends resources (see
    `ResourceAssignments`). The same command for receipts and permissions."""

    name: ClassVar[str] = "resource.dispatch"


@dataclass(frozen=True, kw_only=True)
class ReassignToOpenIncident(ReassignResource):
    """`ReassignResource` to an incident of this city open for resources (as
    `DispatchToOpenIncident`)."""

    name: ClassVar[str] = "resource.reassign"


@dataclass(frozen=True, kw_only=True)
class StandDownResource(StatusReport):
    """Cancel an assignment before arrival (available if it had not moved, else
    returning)."""

    name: ClassVar[str] = "resource.stand-down"


@dataclass(frozen=True, kw_only=True)
class ReportEnRoute(StatusReport):
    """A mobile resource sets off for its incident."""

    name: ClassVar[str] = "resource.report-en-route"


@dataclass(frozen=True, kw_only=True)
class ReportOnScene(StatusReport):
    """A mobile resource arrives at its incident."""

    name: ClassVar[str] = "resource.report-on-scene"


@dataclass(frozen=True, kw_only=True)
class ClearScene(StatusReport):
    """A mobile resource leaves the scene, its work done: returning."""

    name: ClassVar[str] = "resource.clear-scene"


@dataclass(frozen=True, kw_only=True)
class ReportAvailable(StatusReport):
    """A returning resource is ready for the next assignment."""

    name: ClassVar[str] = "resource.report-available"


@dataclass(frozen=True, kw_only=True)
class ReturnToService(StatusReport):
    """An out-of-service resource is available again."""

    name: ClassVar[str] = "resource.return-to-service"


@dataclass(frozen=True, kw_only=True)
class TakeOutOfService(StatusReport):
    """Withdraw a resource that is not on an incident, with the reason."""

    name: ClassVar[str] = "resource.take-out-of-service"
    reason: str

    def fingerprint_args(self) -> dict[str, Any]:
        return {**super().fingerprint_args(), "reason": self.reason}


@dataclass(frozen=True, kw_only=True)
class ActivateResource(ResourceCommand):
    """A depot or shelter dispatched to an incident opens for it."""

    name: ClassVar[str] = "resource.activate"

    def fingerprint_args(self) -> dict[str, Any]:
        return {"resource_id": self.resource_id, "position": None}


@dataclass(frozen=True, kw_only=True)
class DeactivateResource(ResourceCommand):
    """A depot or shelter closes for its incident: available again."""

    name: ClassVar[str] = "resource.deactivate"

    def fingerprint_args(self) -> dict[str, Any]:
        return {"resource_id": self.resource_id, "position": None}


@dataclass(frozen=True, kw_only=True)
class ReportPosition(Command):
    """A position fix of a mobile resource, measured at `measured_at`. No receipt: a fix is
    idempotent by its time (a repeat is not newer than what is known)."""

    name: ClassVar[str] = "resource.position"
    resource_id: UUID
    point: GeoPoint
    measured_at: datetime

    def __post_init__(self) -> None:
        checked_id("resource id", self.resource_id)
        if not isinstance(self.point, GeoPoint):
            raise InvalidValue("position must be a GeoPoint")
        if not isinstance(self.measured_at, datetime):
            raise InvalidValue("a position fix needs the time it was measured")
        checked_instant("time", self.measured_at)
