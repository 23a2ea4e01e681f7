"""Proximity questions a dispatcher asks: what is within R metres of a place, and which N
items of a kind are nearest. Answers are measured in a metric CRS with an STRtree; the
distance itself is a `DistanceModel`, straight-line today, so that a road-network model can
replace it without changing the callers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

import numpy as np
import shapely

from cityops.domain.errors import InvalidValue
from cityops.domain.geometry import Area, GeoPoint
from cityops.maps.crs import MetricProjection


class Positioned(Protocol):
    """Anything with a position: a hazard source, a facility, a resource at its base or a
    vehicle at its last reported position."""

    @property
    def location(self) -> GeoPoint: ...


class PositionedOfKind(Positioned, Protocol):
    """A positioned item of some kind: a resource (fire-engine, ambulance...) or a facility
    (school, hospital, shelter)."""

    @property
    def kind(self) -> str: ...


T = TypeVar("T", bound=Positioned)
K = TypeVar("K", bound=PositionedOfKind)


@dataclass(frozen=True)
class Nearby(Generic[T]):
    """An item and how far it is from the place asked about."""

    item: T
    distance_m: float


class DistanceModel(Protocol):
    """How far apart places are for a responder. A model must never return less than the
    straight-line distance (a road is never shorter), which lets the nearest-N search stop
    early; an unreachable destination is `math.inf`."""

    def distances_m(self, origin: GeoPoint, destinations: Sequence[GeoPoint]) -> list[float]:
        """Distance in metres from `origin` to each destination, in order."""
        ...


@dataclass(frozen=True)
class StraightLine:
    """Straight-line distance in a metric CRS (by default the UTM zone of the origin)."""

    projection: MetricProjection | None = None

    def distances_m(self, origin: GeoPoint, destinations: Sequence[GeoPoint]) -> list[float]:
        """Euclidean distance in the metric CRS from `origin` to each destination."""
        if not destinations:
            return []
        projection = self.projection or MetricProjection.around(origin.lon, origin.lat)
        ox, oy = projection.points_to_metric([origin.lon], [origin.lat])
        xs, ys = projection.points_to_metric([d.lon for d in destinations],
                                             [d.lat for d in destinations])
        return [float(d) for d in np.hypot(xs - ox[0], ys - oy[0])]


def _check_radius(radius_m: float) -> float:
    if not (isinstance(radius_m, int | float) and math.isfinite(radius_m) and radius_m >= 0):
        raise InvalidValue(f"radius must be a non-negative number of metres, got {radius_m!r}")
    return float(radius_m)


class PositionIndex(Generic[T]):
    """A set of positioned items indexed once (STRtree in a metric CRS) for repeated
    proximity questions; items keep their order, which also breaks distance ties."""

    def __init__(self, items: Iterable[T], projection: MetricProjection | None = None) -> None:
        self._items: tuple[T, ...] = tuple(items)
        if projection is None:
            if self._items:
                lon = float(np.mean([i.location.lon for i in self._items]))
                lat = float(np.mean([i.location.lat for i in self._items]))
            else:
                lon, lat = 0.0, 0.0
            projection = MetricProjection.around(lon, lat)
        self.projection = projection
        xs, ys = projection.points_to_metric([i.location.lon for i in self._items],
                                             [i.location.lat for i in self._items])
        self._points = shapely.points(xs, ys) if self._items else np.empty(0, dtype=object)
        self._tree = shapely.STRtree(self._points)

    def __len__(self) -> int:
        return len(self._items)

    @property
    def items(self) -> tuple[T, ...]:
        """The indexed items, in the order given."""
        return self._items

    def _origin(self, point: GeoPoint) -> shapely.Point:
        x, y = self.projection.points_to_metric([point.lon], [point.lat])
        return shapely.Point(float(x[0]), float(y[0]))

    def _sorted(self, indices: np.ndarray, distances: np.ndarray) -> list[Nearby[T]]:
        order = np.lexsort((indices, distances))
        return [Nearby(self._items[int(indices[k])], float(distances[k])) for k in order]

    def within(self, origin: GeoPoint, radius_m: float) -> list[Nearby[T]]:
        """Items at most `radius_m` metres (straight line) from `origin`, nearest first."""
        radius = _check_radius(radius_m)
        centre = self._origin(origin)
        indices = self._tree.query(centre, predicate="dwithin", distance=radius)
        return self._sorted(indices, shapely.distance(self._points[indices], centre))

    def inside(self, zone: Area) -> list[T]:
        """Items inside (or on the edge of) a zone, in the order given."""
        shape = self.projection.to_metric(zone.shape)
        indices = np.sort(self._tree.query(shape, predicate="intersects"))
        return [self._items[int(i)] for i in indices]

    def nearest(
        self, origin: GeoPoint, n: int, distance: DistanceModel | None = None
    ) -> list[Nearby[T]]:
        """The `n` items nearest to `origin`, nearest first (fewer if there are fewer).

        Without a model, or with `StraightLine`, distance is the straight line in this index's
        metric CRS. Another model is asked only about the items that could still beat the
        n-th best found, searching outwards in growing circles.
        """
        if not isinstance(n, int) or n < 1:
            raise InvalidValue(f"the number of nearest items must be at least 1, got {n!r}")
        if not self._items:
            return []
        centre = self._origin(origin)
        minx, miny, maxx, maxy = (float(v) for v in shapely.total_bounds(self._points))
        # Beyond this radius there is nothing left to find.
        reach = max(math.hypot(x - centre.x, y - centre.y)
                    for x in (minx, maxx) for y in (miny, maxy))
        spread = max(maxx - minx, maxy - miny, 1.0)
        radius = max(spread * math.sqrt(n / len(self._items)), 100.0)
        measured: dict[int, float] = {}
        while True:
            indices = self._tree.query(centre, predicate="dwithin", distance=radius)
            exhausted = radius >= reach
            if len(indices) < n and not exhausted:
                radius *= 2.0
                continue
            if distance is None or isinstance(distance, StraightLine):
                found = self._sorted(indices, shapely.distance(self._points[indices], centre))
                return found[:n]
            new = [int(i) for i in indices if int(i) not in measured]
            values = distance.distances_m(origin, [self._items[i].location for i in new])
            if len(values) != len(new):
                raise ValueError("a distance model returned the wrong number of distances")
            measured.update(zip(new, (float(v) for v in values), strict=True))
            reachable = sorted((d, i) for i, d in measured.items() if math.isfinite(d))
            best = reachable[:n]
            # Anything not yet measured is farther than `radius` in a straight line, hence
            # at least that far by the model: it cannot beat a best found within `radius`.
            if exhausted or (len(best) == n and best[-1][0] <= radius):
                return [Nearby(self._items[i], d) for d, i in best]
            radius = max(radius * 2.0, best[-1][0] if len(best) == n else 0.0)


def within_radius(
    origin: GeoPoint,
    items: Iterable[T],
    radius_m: float,
    projection: MetricProjection | None = None,
) -> list[Nearby[T]]:
    """Items at most `radius_m` metres from `origin` (straight line), nearest first."""
    return PositionIndex(items, projection or MetricProjection.around(origin.lon, origin.lat)) \
        .within(origin, radius_m)


def nearest(
    origin: GeoPoint,
    items: Iterable[T],
    n: int,
    distance: DistanceModel | None = None,
    projection: MetricProjection | None = None,
) -> list[Nearby[T]]:
    """The `n` items nearest to `origin` by the distance model (straight line by default)."""
    return PositionIndex(items, projection or MetricProjection.around(origin.lon, origin.lat)) \
        .nearest(origin, n, distance)


def nearest_of_kind(
    origin: GeoPoint,
    items: Iterable[K],
    kind: str,
    n: int,
    distance: DistanceModel | None = None,
    projection: MetricProjection | None = None,
) -> list[Nearby[K]]:
    """The `n` items of one kind nearest to `origin` (the nearest ambulances, shelters...).
    The caller passes only the items that may be chosen (for example, available resources
    at their last reported positions)."""
    return nearest(origin, [i for i in items if i.kind == kind], n, distance, projection)
