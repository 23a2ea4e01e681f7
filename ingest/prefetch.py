"""What the commands of one ingest batch look up, asked once for the whole batch.

Deciding a grid-case report locates its point in the unit grid and asks the read model for
open cases near it; a position fix checks that its point is in the city; a sensor reading
updates the latest-reading table. Asked message by message, that is a spatial query and a
database round trip (or two) per message, which is most of what a message costs. Asked per
batch, it is one vectorised spatial query and one read-model query for all the points, and one
write per sensor.

The lookups here stand in front of the applications' own (the composition root,
app/bootstrap.py, builds the applications with them: nothing is re-wired later) and give the
same answers: a point the batch did not announce, a wider radius or an
older window than the batch's fetch covers, or any other thread (the command centre in the
embedded run) is answered by the lookup behind them. The open reports a batch fetched are a
superset of what each message would have been told (the domain's duplicate rule measures the
exact distance, category and time), taken when the batch starts: the read model they come
from is written by the projection process and lags the event store anyway, so within a batch
this is the same answer as asking a fraction of a second earlier.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable
from uuid import UUID

from cityops.domain.duplicates import DuplicatePolicy, OpenReport, OpenReportFinder
from cityops.domain.geometry import GeoPoint
from cityops.domain.hazards.application import LatestReading, LatestReadingsStore
from cityops.ingest.catalogue import Message

METRES_PER_DEGREE_LAT = 111_320.0


class PointLocator(Protocol):
    """The city map as ingest and the domain use it (see `cityops.maps.CityMap`)."""

    def locate_many(self, lons: Any, lats: Any) -> list[Any]: ...
    def locate_cell(self, point: GeoPoint) -> str | None: ...
    def require_inside(self, point: GeoPoint) -> object: ...
    def inspector_of(self, cell_code: str) -> str | None: ...
    def is_inspector(self, inspector_id: str) -> bool: ...


class BatchLocator:
    """The city map, with the points of the batch in hand located in one vectorised query."""

    def __init__(self, city_map: PointLocator) -> None:
        self.city_map = city_map
        self._local = threading.local()

    def _known(self) -> dict[tuple[float, float], Any] | None:
        known: dict[tuple[float, float], Any] | None = getattr(self._local, "known", None)
        return known

    @contextmanager
    def batch(self, points: Sequence[GeoPoint]) -> Iterator[None]:
        """Locate `points` now; inside the block, this thread's questions about them are
        answered from that."""
        usable = [p for p in points
                  if math.isfinite(p.lon) and math.isfinite(p.lat)
                  and abs(p.lon) <= 180 and abs(p.lat) <= 90]
        found = self.city_map.locate_many([p.lon for p in usable],
                                          [p.lat for p in usable]) if usable else []
        self._local.known = {(p.lon, p.lat): where for p, where in zip(usable, found,
                                                                       strict=True)}
        try:
            yield
        finally:
            self._local.known = None

    def locate_many(self, lons: Any, lats: Any) -> list[Any]:
        return self.city_map.locate_many(lons, lats)

    def locate_cell(self, point: GeoPoint) -> str | None:
        """The domain's `GridLocator`: the cell code of a point, None outside the city."""
        known = self._known()
        if known is not None and (point.lon, point.lat) in known:
            where = known[(point.lon, point.lat)]
            return where.cell_code if where is not None else None
        return self.city_map.locate_cell(point)

    def inspector_of(self, cell_code: str) -> str | None:
        """The domain's `CellInspectors`: who patrols a cell."""
        return self.city_map.inspector_of(cell_code)

    def is_inspector(self, inspector_id: str) -> bool:
        return self.city_map.is_inspector(inspector_id)

    def require_inside(self, point: GeoPoint) -> object:
        """The location of a point that must be in the city (the error, saying how far
        outside, comes from the map itself)."""
        known = self._known()
        if known is not None:
            where = known.get((point.lon, point.lat))
            if where is not None:
                return where
        return self.city_map.require_inside(point)


@dataclass(frozen=True)
class _Fetched:
    """Open reports fetched for a batch: the region and window they cover, by bucket."""

    west: float
    east: float
    south: float
    north: float
    radius_m: float
    since: datetime
    bucket_deg: float
    buckets: dict[tuple[int, int], list[OpenReport]]

    def covers(self, point: GeoPoint, radius_m: float, since: datetime) -> bool:
        return (radius_m <= self.radius_m and since >= self.since
                and self.west <= point.lon <= self.east and self.south <= point.lat <= self.north)

    def near(self, point: GeoPoint) -> list[OpenReport]:
        """Every fetched report within the radius of `point`, and some a little further
        (buckets are at least as wide as the radius in both directions)."""
        bx, by = int(point.lon // self.bucket_deg), int(point.lat // self.bucket_deg)
        return [report for dx in (-1, 0, 1) for dy in (-1, 0, 1)
                for report in self.buckets.get((bx + dx, by + dy), ())]


class BatchOpenReports:
    """An `OpenReportFinder` (open cases, or open tickets) that fetches what a whole batch
    needs in one query: the open reports around all of its points."""

    def __init__(self, finder: OpenReportFinder) -> None:
        self.finder = finder
        self._local = threading.local()

    @contextmanager
    def batch(self, points: Sequence[GeoPoint], radius_m: float,
              since: datetime) -> Iterator[None]:
        """Fetch the open reports (since `since`) within `radius_m` of any of `points`;
        inside the block, this thread's questions that this covers are answered from it."""
        usable = [p for p in points if math.isfinite(p.lon) and math.isfinite(p.lat)
                  and abs(p.lon) <= 180 and abs(p.lat) < 89]
        if not usable:
            yield
            return
        west, east = min(p.lon for p in usable), max(p.lon for p in usable)
        south, north = min(p.lat for p in usable), max(p.lat for p in usable)
        centre = GeoPoint(lon=(west + east) / 2, lat=(south + north) / 2)
        # One question around the centre whose square covers every point's own square: the
        # finder's square is +-r/111 km in latitude and +-r/(111 km cos lat) in longitude.
        widest = max(abs(south), abs(north))
        cos_centre = math.cos(math.radians(centre.lat))
        cos_widest = math.cos(math.radians(widest))
        half_lat_m = (north - south) / 2 * METRES_PER_DEGREE_LAT + radius_m
        half_lon_m = ((east - west) / 2 * METRES_PER_DEGREE_LAT
                      + radius_m / cos_widest) * cos_centre
        reach = max(half_lat_m, half_lon_m) * 1.01 + 1.0
        reports = self.finder.open_reports_near(centre, reach, since)
        bucket_deg = radius_m / (METRES_PER_DEGREE_LAT * cos_widest) * 1.01
        buckets: dict[tuple[int, int], list[OpenReport]] = {}
        for report in reports:
            key = (int(report.location.lon // bucket_deg), int(report.location.lat // bucket_deg))
            buckets.setdefault(key, []).append(report)
        self._local.fetched = _Fetched(west, east, south, north, radius_m, since, bucket_deg,
                                       buckets)
        try:
            yield
        finally:
            self._local.fetched = None

    def open_reports_near(self, point: GeoPoint, radius_m: float,
                          since: datetime) -> Sequence[OpenReport]:
        fetched: _Fetched | None = getattr(self._local, "fetched", None)
        if fetched is not None and fetched.covers(point, radius_m, since):
            return [r for r in fetched.near(point) if r.reported_at >= since]
        return self.finder.open_reports_near(point, radius_m, since)


@runtime_checkable
class ManyLatestReadingsStore(Protocol):
    """A latest-readings store that writes many sensors' readings at once."""

    def remember_many(self, readings: Mapping[tuple[UUID, str], LatestReading]) -> None: ...


class BatchLatestReadings:
    """A `LatestReadingsStore` whose writes, during a batch, are kept and written when the
    batch ends: one write per sensor (its latest reading) instead of one per reading."""

    def __init__(self, store: LatestReadingsStore) -> None:
        self.store = store
        self._local = threading.local()

    def _pending(self) -> dict[tuple[UUID, str], LatestReading] | None:
        pending: dict[tuple[UUID, str], LatestReading] | None = getattr(
            self._local, "pending", None)
        return pending

    def begin(self) -> None:
        """Keep this thread's readings from now on, until `flush()`."""
        self._local.pending = {}

    def flush(self) -> None:
        """Write the latest kept reading of each sensor (in one statement when the store
        can), and stop keeping. If a write fails, what is not written yet stays kept for the
        next `flush()`."""
        pending = self._pending()
        if pending is None:
            return
        if pending and isinstance(self.store, ManyLatestReadingsStore):
            self.store.remember_many(pending)
            pending.clear()
        while pending:
            (source_id, sensor_id), reading = next(iter(pending.items()))
            self.store.remember(source_id, sensor_id, reading)
            del pending[(source_id, sensor_id)]
        self._local.pending = None

    def remember(self, source_id: UUID, sensor_id: str, reading: LatestReading) -> None:
        pending = self._pending()
        if pending is None:
            self.store.remember(source_id, sensor_id, reading)
            return
        kept = pending.get((source_id, sensor_id))
        # The store keeps the newest measurement, whatever the order of arrival: so here.
        if kept is None or reading.measured_at > kept.measured_at:
            pending[(source_id, sensor_id)] = reading

    def get(self, source_id: UUID, sensor_id: str) -> LatestReading | None:
        stored = self.store.get(source_id, sensor_id)
        pending = self._pending()
        kept = pending.get((source_id, sensor_id)) if pending is not None else None
        if kept is None or (stored is not None and stored.measured_at >= kept.measured_at):
            return stored
        return kept

    def of_source(self, source_id: UUID) -> dict[str, LatestReading]:
        readings = self.store.of_source(source_id)
        for (source, sensor), kept in (self._pending() or {}).items():
            if source == source_id and (sensor not in readings
                                        or kept.measured_at > readings[sensor].measured_at):
                readings[sensor] = kept
        return readings

    def forget(self, source_id: UUID, sensor_id: str) -> None:
        pending = self._pending()
        if pending is not None:
            pending.pop((source_id, sensor_id), None)
        self.store.forget(source_id, sensor_id)


def points_of(message: Message) -> list[GeoPoint]:
    """The points a message's command will look up (its location or position, if any)."""
    points = []
    for field in ("location", "position"):
        data = message.payload.get(field)
        if data is not None:
            try:
                points.append(GeoPoint.from_geojson(data))
            except Exception:  # the command itself says what is wrong with it
                continue
    return points


class BatchLookups:
    """The batch-aware lookups of one `CitySystem`, in front of its applications' own (they
    are built with them): `begin()` fetches what a batch's messages will look up, `flush()`
    writes what it kept."""

    def __init__(self, locator: BatchLocator, open_cases: BatchOpenReports,
                 open_tickets: BatchOpenReports, latest_readings: BatchLatestReadings,
                 duplicate_policy: DuplicatePolicy) -> None:
        self.locator = locator
        self.open_cases = open_cases
        self.open_tickets = open_tickets
        self.latest_readings = latest_readings
        self.duplicate_policy = duplicate_policy
        """How near and how recent an open report may be a duplicate (cases and tickets):
        what a batch fetches around its points."""
        self._local = threading.local()

    @classmethod
    def around(cls, city_map: PointLocator, open_cases: OpenReportFinder,
               open_tickets: OpenReportFinder, latest_readings: LatestReadingsStore,
               duplicate_policy: DuplicatePolicy) -> BatchLookups:
        """Batch-aware lookups in front of these (what the applications are built with)."""
        return cls(BatchLocator(city_map), BatchOpenReports(open_cases),
                   BatchOpenReports(open_tickets), BatchLatestReadings(latest_readings),
                   duplicate_policy)

    def _stack(self) -> list[Any]:
        stack: list[Any] | None = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        return stack

    def begin(self, messages: Sequence[Message]) -> None:
        """Fetch, for this thread, what `messages` will look up."""
        self.end()
        located: list[GeoPoint] = []
        reports: list[GeoPoint] = []
        calls: list[GeoPoint] = []
        report_times: list[datetime] = []
        call_times: list[datetime] = []
        for message in messages:
            points = points_of(message)
            located += points
            if message.type.type == "grid-case-report":
                reports += points
                report_times += [message.occurred_at] * len(points)
            elif message.type.type == "hotline-ticket":
                calls += points
                call_times += [message.occurred_at] * len(points)
        contexts = [self.locator.batch(located)]
        policy = self.duplicate_policy
        for finder, points, times in ((self.open_cases, reports, report_times),
                                      (self.open_tickets, calls, call_times)):
            if points:
                contexts.append(finder.batch(points, policy.radius_m,
                                             min(times) - policy.window))
        for context in contexts:
            context.__enter__()
            self._stack().append(context)
        self.latest_readings.begin()

    def flush(self) -> None:
        """Write the latest readings kept during the batch."""
        self.latest_readings.flush()

    def end(self) -> None:
        """Forget what `begin()` fetched (the kept readings must be flushed first)."""
        stack = self._stack()
        while stack:
            stack.pop().__exit__(None, None, None)
