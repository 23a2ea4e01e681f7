"""Building blocks of the response models: values that pass through unchanged (a model
must never change a body on the wire), GeoJSON geometries, pages and event histories."""

from __future__ import annotations

from typing import Annotated, Any, Generic, Literal, TypeVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, Strict, WithJsonSchema


class Public(BaseModel):
    """Base of every response model: a field the route answers that the model does not
    declare is an error (the contract test fails), never silently dropped."""

    # Enumerated fields keep their text: validated against the enumeration, answered as is.
    model_config = ConfigDict(extra="forbid", use_enum_values=True)


Number = Annotated[
    Annotated[int, Strict()] | Annotated[float, Strict()],
    WithJsonSchema({"type": "number"}),
]
"""A JSON number, answered as the route gives it (5 stays 5: pydantic's `float` would
answer 5.0; a boolean or a text is refused)."""

Timestamp = Annotated[str, Field(json_schema_extra={"format": "date-time"})]
"""An instant in ISO 8601 with its UTC offset (answered as the domain wrote it)."""

Uuid = Annotated[str, Field(json_schema_extra={"format": "uuid"})]
"""An id (answered as text, as recorded)."""


class PointPublic(Public):
    """A GeoJSON Point in WGS84: [longitude, latitude]."""

    type: Literal["Point"]
    coordinates: list[Number]


class PolygonPublic(Public):
    """A GeoJSON Polygon in WGS84."""

    type: Literal["Polygon"]
    coordinates: list[list[list[Number]]]


class MultiPolygonPublic(Public):
    """A GeoJSON MultiPolygon in WGS84."""

    type: Literal["MultiPolygon"]
    coordinates: list[list[list[list[Number]]]]


AreaPublic = Annotated[PolygonPublic | MultiPolygonPublic, Field(discriminator="type")]
"""An area: a GeoJSON Polygon or MultiPolygon in WGS84."""


class GeometryPublic(Public):
    """Any GeoJSON geometry (a map feature's: point, line or polygon)."""

    model_config = ConfigDict(extra="allow")
    type: str
    coordinates: Any = None


T = TypeVar("T")


class PagePublic(Public, Generic[T]):
    """A page of documents (`XsPublic`): the items, how many match in all, and the paging
    asked for."""

    data: list[T]
    count: int = Field(description="How many match in all (not only on this page)")
    limit: int
    offset: int


class ActorPublic(Public):
    """Who did it: the user, in what role, for which department."""

    user_id: str
    role: str
    department: str | None


class HistoryEntryPublic(Public):
    """One event of a document's history: what happened, who did it (in what role, for
    which department), when, and the facts of the event (by event kind)."""

    event: str = Field(description="The event's kind, e.g. `Dispatched`")
    version: int = Field(description="The document's version after the event")
    at: Timestamp
    actor: ActorPublic | None
    facts: dict[str, Any] = Field(description="The event's facts; which depends on `event` "
                                  "(geometries in GeoJSON, durations in seconds); fields the "
                                  "sharing catalogue does not share with you are absent")




def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def withheld(description: str = "") -> Any:
    """A field the sharing catalogue may withhold: absent (not null) from the answer of a
    user it is not shared with (docs/sharing.md), so not required."""
    text = "Absent when the sharing catalogue does not share it with you."
    return Field(default=None, description=f"{description} {text}".strip(),
                 json_schema_extra=_no_default)


def sometimes(description: str, alias: str | None = None) -> Any:
    """A field some answers of a route carry and others do not (not required)."""
    return Field(default=None, alias=alias, description=description,
                 json_schema_extra=_no_default)


D = TypeVar("D")


class BulkResultPublic(Public, Generic[D]):
    """What the single action answered for one item of a bulk action."""

    model_config = ConfigDict(extra="forbid", from_attributes=True)
    id: UUID
    ok: bool
    status: int = Field(description="The HTTP status the single action answered")
    error: str | None = Field(description="Why the item was refused (null when ok)")
    code: str | None = Field(
        description="The error's code, e.g. stale-version, illegal-transition (null when ok)")
    document: D | None = Field(description="The item after the command (when ok)")


class BulkResultsPublic(Public, Generic[D]):
    """A result per item, in order."""

    model_config = ConfigDict(extra="forbid", from_attributes=True)
    results: list[BulkResultPublic[D]]
    succeeded: int
    failed: int
