"""Time travel: every read path answers "as it was at instant T" with one query parameter,
`as_of`, taken by one shared dependency (`ReadSystem`).

A route that reads through `ReadSystem` gets the live system, or with `as_of` the city as it
stood at T (`PastCity`): the read models read as the row versions in force at T
(projections/as_of.py), the applications' aggregates rebuilt from their events up to T, their
histories cut at T, and the clock standing at T (supervision lights, statistics and deadlines
are computed on the business calendar as at T). An answer about the past carries the header
`X-CityOps-As-Of` with the instant. Writes take no `as_of` (the query checks refuse it).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cityops.command_center.dependencies import CommandCentreSystem, CurrentActor, SystemDep
from cityops.projections.as_of import (
    APPLICATIONS,
    InstantRefused,
    check_past_instant,
    first_event_at,
    latest_track_fixes,
    parse_past_instant,
    past_store,
)
from cityops.projections.statistics import CityStatistics
from cityops.projections.views import ReadModels

if TYPE_CHECKING:
    from cityops.projections.spatial import SpatialQueries

AS_OF_HEADER = "X-CityOps-As-Of"
AS_OF_DESCRIPTION = (
    "Answer as the city stood at this past instant: ISO 8601 with a UTC offset "
    "(`2026-03-14T09:26:53+08:00` or `...Z`), not before the first recorded event and not "
    "in the future. The answer then carries the header `X-CityOps-As-Of`.")


class AsOfRefused(RequestValidationError):
    """An `as_of` that cannot be answered: a validation error of the parameter (422 with
    the app's error body, 400 in the OGC API's form on /ogc), saying why."""

    def __init__(self, reason: str, given: str | None = None) -> None:
        super().__init__([{"type": "value_error", "loc": ("query", "as_of"), "msg": reason,
                           "input": given}])


def parse_instant(text: str) -> datetime:
    """An ISO 8601 instant with its UTC offset (422 when malformed or without one)."""
    try:
        return parse_past_instant(text)
    except InstantRefused as refused:
        raise AsOfRefused(str(refused), text) from None


def check_instant(system: Any, instant: datetime) -> datetime:
    """`instant` if the city can be shown at it (422 saying why not)."""
    try:
        return check_past_instant(system, instant)
    except InstantRefused as refused:
        raise AsOfRefused(str(refused), instant.isoformat()) from None


AsOfQuery = Annotated[str | None, Query(description=AS_OF_DESCRIPTION,
                                        examples=["2026-03-14T09:26:53+08:00"])]
"""The `as_of` query parameter, as every read route declares it."""


def take_instant(request: Request, system: Any, as_of: str | None) -> datetime | None:
    """The instant of `as_of` (None: now), checked against `system`'s span, and noted on
    the request (its answer is marked as the past)."""
    if as_of is None:
        return None
    instant = check_instant(system, parse_instant(as_of))
    request.state.as_of = instant
    return instant


def as_of_instant(request: Request, system: SystemDep, as_of: AsOfQuery = None
                  ) -> datetime | None:
    """The instant of `as_of` (None: now), checked."""
    return take_instant(request, system, as_of)


AsOf = Annotated[datetime | None, Depends(as_of_instant)]


def system_at(system: CommandCentreSystem, instant: datetime | None) -> CommandCentreSystem:
    """`system` itself (None: now), or the city as it stood at `instant`."""
    if instant is None:
        return system
    past: CommandCentreSystem = PastCity(system, instant)  # type: ignore[assignment]
    return past


def read_system(system: SystemDep, instant: AsOf, response: Response) -> CommandCentreSystem:
    """The system to read from: live, or the city as it stood at `as_of`."""
    if instant is not None:
        response.headers[AS_OF_HEADER] = instant.isoformat()
    return system_at(system, instant)


ReadSystem = Annotated[CommandCentreSystem, Depends(read_system)]
"""What a read route answers from: `as_of` chooses the instant (default: now)."""


class PastRepository:
    """An application's repository as it stood at an instant: an aggregate at the last
    version recorded at or before it (not found if it did not exist yet)."""

    def __init__(self, application: Any, instant: datetime) -> None:
        self._application = application
        self._live = application.repository
        self.instant = instant
        self.cache = None

    def version_at(self, aggregate_id: UUID) -> int | None:
        """The aggregate's last version stamped at or before the instant."""
        version = None
        for event in self._application.events.get(aggregate_id):
            if event.timestamp > self.instant:
                break
            version = event.originator_version
        return version

    def get(self, aggregate_id: UUID, *, version: int | None = None, **kwargs: Any) -> Any:
        at = self.version_at(aggregate_id)
        if at is None:
            raise AggregateNotFoundError(aggregate_id)
        return self._live.get(aggregate_id, version=min(at, version or at), **kwargs)

    def __contains__(self, aggregate_id: UUID) -> bool:
        return self.version_at(aggregate_id) is not None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._live, name)


class PastEvents:
    """An application's event store cut at an instant (histories up to T)."""

    def __init__(self, events: Any, instant: datetime) -> None:
        self._events = events
        self.instant = instant

    def get(self, aggregate_id: UUID, *args: Any, **kwargs: Any) -> Iterator[Any]:
        for event in self._events.get(aggregate_id, *args, **kwargs):
            if event.timestamp > self.instant:
                return
            yield event

    def __getattr__(self, name: str) -> Any:
        return getattr(self._events, name)


def past_application(application: Any, instant: datetime) -> Any:
    """A read-only copy of `application` that sees its aggregates and events as at
    `instant` and whose clock stands at it (its rules for lights and deadlines then answer
    as at T). It shares the live one's stores; it is never given a command."""
    past = copy.copy(application)
    # The copy shares the live stores: dropping it (the library closes an application when
    # it is collected) must never close them.
    past.close = lambda: None
    past.events = PastEvents(application.events, instant)
    past._repository = PastRepository(past, instant)
    # `exists` reads the stored events directly: at T, an aggregate exists once its first
    # event is stamped by then.
    past.exists_for = lambda aggregate_id, batch=None: aggregate_id in past._repository
    past.clock = lambda: instant
    if hasattr(application, "latest_readings"):
        past.latest_readings = PastLatestReadings(application.latest_readings, instant)
    if hasattr(application, "_tracked_by_id"):
        # The live latest-position cache is now's: the past gets its own, and takes its
        # positions from the recorded tracks at T.
        past._tracked_by_id = {}
        past.latest_position = lambda resource_id: position_at(past, resource_id, instant)
    return past


class PastLatestReadings:
    """The hazard sensors' latest readings as known at an instant. Only each sensor's
    latest reading is kept (readings are not events): one measured by then was also the
    latest then; one measured later hides what the sensor read at the instant, so the
    sensor has none to show."""

    def __init__(self, readings: Any, instant: datetime) -> None:
        self._readings = readings
        self.instant = instant

    def get(self, source_id: UUID, sensor_id: str) -> Any:
        reading = self._readings.get(source_id, sensor_id)
        return reading if reading is not None and reading.measured_at <= self.instant else None

    def of_source(self, source_id: UUID) -> dict[str, Any]:
        return {sensor: reading for sensor, reading in self._readings.of_source(source_id).items()
                if reading.measured_at <= self.instant}


def position_at(resources: Any, resource_id: UUID, instant: datetime) -> Any:
    """Where a resource was at `instant`: the newer of the position its events recorded and
    the latest fix of its track measured by then."""
    from cityops.domain.geometry import GeoPoint
    from cityops.domain.resources.resource import PositionFix

    recorded = resources.resource(resource_id).position
    base = getattr(resources, "track_store", None)
    if base is None:
        return recorded
    fix = latest_track_fixes(base, [str(resource_id)], instant).get(str(resource_id))
    if fix is None:
        return recorded
    tracked = PositionFix(GeoPoint(lon=fix.lon, lat=fix.lat),
                          datetime.fromisoformat(fix.measured_at))
    return tracked if recorded is None or tracked.at > recorded.at else recorded


class PastCity:
    """The command centre's system as the city stood at an instant (read side only)."""

    def __init__(self, system: Any, instant: datetime) -> None:
        self._system = system
        self.instant = instant
        self.store = past_store(system, instant)
        tables = list(system.read_models.tables.values())
        self.read_models = ReadModels(self.store, tables)
        self.statistics = CityStatistics(self.store, tallied=False)
        self._spatial: SpatialQueries | None = None
        for name in APPLICATIONS:
            setattr(self, name, past_application(getattr(system, name), instant))
        self.resources.track_store = system.generations.registry.store

    @property
    def spatial(self) -> SpatialQueries:
        """Spatial questions over the read models at the instant."""
        if self._spatial is None:
            tables = list(self.read_models.tables.values())
            if self.store.dialect == "postgres":
                from cityops.projections.spatial_postgis import PostgisSpatialQueries

                # The city's layers are already in the schema: nothing to publish.
                self._spatial = PostgisSpatialQueries(self.store, tables, self._system.city)
            else:
                from cityops.projections.spatial_embedded import EmbeddedSpatialQueries

                self._spatial = EmbeddedSpatialQueries(self.store, tables, self._system.city)
        return self._spatial

    def clock(self) -> datetime:
        """The city's clock, standing at the instant."""
        return self.instant

    def wake_projections(self) -> None:
        """Nothing to wake: the past is already written."""

    def __getattr__(self, name: str) -> Any:
        return getattr(self._system, name)


class MarkThePast:
    """ASGI middleware: every answer about the past, whatever its kind (JSON, GeoJSON, a
    file), carries the header `X-CityOps-As-Of` naming the instant."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def marking_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                instant = scope.get("state", {}).get("as_of")
                headers = MutableHeaders(scope=message)
                if instant is not None and AS_OF_HEADER not in headers:
                    headers[AS_OF_HEADER] = instant.isoformat()
            await send(message)

        await self.app(scope, receive, marking_send)


def install_time_travel(app: Any) -> None:
    """Mark every answer about the past (`MarkThePast`)."""
    app.add_middleware(MarkThePast)


router = APIRouter(prefix="/time-travel", tags=["time travel"])


class TimeRangePublic(BaseModel):
    """How far back the city can be shown, and in which time zone it tells time."""

    model_config = ConfigDict(extra="forbid")

    first_event: str | None = Field(description="The first recorded event's time (ISO 8601, "
                                                "UTC); null before any")
    now: str = Field(description="The city's time now (the server's clock)")
    timezone: str = Field(description="The city's time zone (IANA), for showing instants")


@router.get("", response_model=TimeRangePublic)
def time_range(system: SystemDep, _: CurrentActor) -> dict[str, Any]:
    """The span `as_of` may take: from the first recorded event to now (server time)."""
    first = first_event_at(system)
    return {"first_event": first.isoformat() if first is not None else None,
            "now": system.clock().isoformat(),
            "timezone": str(system.catalogue.calendar.timezone)}
