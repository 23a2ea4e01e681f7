"""Request and response models shared by the routers (GeoJSON points, pages)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cityops.domain.errors import InvalidValue
from cityops.domain.geometry import GeoPoint


class Command(BaseModel):
    """Base of command bodies: unknown fields are refused, not ignored."""

    model_config = ConfigDict(extra="forbid")


class PointIn(BaseModel):
    """A GeoJSON Point in WGS84: [longitude, latitude]."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["Point"]
    coordinates: list[float] = Field(min_length=2, max_length=3)

    @field_validator("coordinates")
    @classmethod
    def _valid(cls, value: list[float]) -> list[float]:
        try:
            GeoPoint(lon=value[0], lat=value[1])
        except InvalidValue as error:
            raise ValueError(str(error)) from None
        return value

    def to_point(self) -> GeoPoint:
        return GeoPoint(lon=self.coordinates[0], lat=self.coordinates[1])


class Page(BaseModel):
    """A page of read-model documents."""

    data: list[dict[str, Any]]
    count: int
    limit: int
    offset: int


LevelCode = Literal["I", "II", "III", "IV"]
"""An incident or response level in a query (an unknown one is refused, 422, not matched)."""

HazardGrade = Annotated[int, Field(ge=1, le=4)]
"""A hazard grade in a query: 1 highest to 4."""
