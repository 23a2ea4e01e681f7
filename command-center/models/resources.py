"""Emergency resources as the API answers them: the resource document (its `summary()`),
with its latest known position on GET and commands, the nearest available ones, and what
became of a position fix."""

from __future__ import annotations

from pydantic import Field

from cityops.command_center.models.common import (
    Number,
    PagePublic,
    PointPublic,
    Public,
    Timestamp,
    Uuid,
    sometimes,
    withheld,
)
from cityops.domain.resources.resource import PositionOutcome, ResourceStatus


class PositionFixPublic(Public):
    """A position fix: where, and when it was measured."""

    point: PointPublic
    at: Timestamp


class StatusChangePublic(Public):
    """One status of the resource's history."""

    status: ResourceStatus
    at: Timestamp
    incident_id: Uuid | None


class ResourceDocument(Public):
    """A resource as recorded: its `summary()` (also the read model's document)."""

    id: Uuid
    version: int = Field(description="Also the answer's ETag; send it as If-Match")
    kind: str = Field(description="Resource kind code from the catalogue")
    mobile: bool
    name: str
    call_sign: str
    department: str
    home_base: PointPublic
    capacity: int | None
    stock: dict[str, Number] = Field(description="Depot stock: item -> quantity")
    speciality: str
    notes: str = withheld()
    status: ResourceStatus
    status_since: Timestamp
    incident_id: Uuid | None = Field(description="The incident it works for")
    out_of_service_reason: str | None
    position: PositionFixPublic | None = Field(description="The last recorded position")
    registered_at: Timestamp
    history: list[StatusChangePublic]


class ResourcePublic(ResourceDocument):
    """A resource as recorded now, with the latest position this server knows (a mobile
    resource's fixes between recorded positions are only cached)."""

    latest_position: PositionFixPublic | None


class ResourcesPublic(PagePublic[ResourceDocument]):
    """A page of resources."""


class NearResourcePublic(ResourceDocument):
    """An available resource as the nearest-resources answer shows it."""

    latest_position: PositionFixPublic | None = sometimes(
        "A newer fix than its recorded position, when this server knows one")


class NearestResourcePublic(Public):
    """An available resource and its straight-line distance."""

    resource_id: Uuid
    call_sign: str
    distance_m: Number
    resource: NearResourcePublic


class PositionOutcomePublic(Public):
    """What became of a position fix, and the latest position known now."""

    resource_id: Uuid
    outcome: PositionOutcome
    latest_position: PositionFixPublic | None
