"""GeoJSON polygons in request bodies (affected areas, impact zones), checked where they
enter with the domain's own rules."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, model_validator

from cityops.domain.errors import InvalidValue
from cityops.domain.geometry import Area


class AreaIn(BaseModel):
    """A GeoJSON Polygon or MultiPolygon in WGS84 ([longitude, latitude] positions)."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["Polygon", "MultiPolygon"]
    coordinates: list[Any]

    @model_validator(mode="after")
    def _valid(self) -> AreaIn:
        try:
            Area.from_geojson({"type": self.type, "coordinates": self.coordinates})
        except InvalidValue as error:
            raise ValueError(str(error)) from None
        return self

    def to_area(self) -> Area:
        return Area.from_geojson({"type": self.type, "coordinates": self.coordinates})
