"""How the domain's value types are stored in events (the library knows only UUID, Decimal
and datetime); each transcoding has a stable name because stored events outlive the code.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from eventsourcing.persistence import JSONTranscoder, Transcoding

from cityops.domain.actors import Actor, Role
from cityops.domain.geometry import Area, GeoPoint


class ActorAsDict(Transcoding):
    type = Actor
    name = "actor"

    def encode(self, obj: Actor) -> dict[str, Any]:
        return obj.as_dict()

    def decode(self, data: dict[str, Any]) -> Actor:
        return Actor(user_id=data["user_id"], role=Role(data["role"]),
                     department=data["department"])


class GeoPointAsList(Transcoding):
    type = GeoPoint
    name = "geopoint"

    def encode(self, obj: GeoPoint) -> list[float]:
        return [obj.lon, obj.lat]

    def decode(self, data: list[float]) -> GeoPoint:
        return GeoPoint(lon=data[0], lat=data[1])


class AreaAsWKT(Transcoding):
    type = Area
    name = "area_wkt"

    def encode(self, obj: Area) -> str:
        return obj.wkt

    def decode(self, data: str) -> Area:
        return Area(wkt=data)


class DateAsISO(Transcoding):
    type = date
    name = "date_iso"

    def encode(self, obj: date) -> str:
        return obj.isoformat()

    def decode(self, data: str) -> date:
        return date.fromisoformat(data)


class TimedeltaAsSeconds(Transcoding):
    type = timedelta
    name = "timedelta_s"

    def encode(self, obj: timedelta) -> float:
        return obj.total_seconds()

    def decode(self, data: float) -> timedelta:
        return timedelta(seconds=data)


def register_domain_transcodings(transcoder: JSONTranscoder) -> None:
    """Register every domain value type on an application's transcoder."""
    for transcoding in (
        ActorAsDict(),
        GeoPointAsList(),
        AreaAsWKT(),
        DateAsISO(),
        TimedeltaAsSeconds(),
    ):
        transcoder.register(transcoding)
