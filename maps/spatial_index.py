"""An in-memory spatial index of geometries that change while it is used (resources move,
incidents are reported): the embedded back end of the spatial queries.

Shapely's STRtree cannot be changed once built, so the index is an STRtree over most items
plus a short unindexed tail of the items added or changed since it was built, scanned with
vectorised shapely/numpy; an item that changes is marked dead in place and appended to the
tail. When the tail or the dead grow past a share of the whole, the index is compacted and its
trees rebuilt (tens of milliseconds for 100,000 points). Topological questions (bbox,
within-polygon) are answered in WGS84, as PostGIS answers them on `geometry(…, 4326)`:
polygon edges are straight lines in longitude/latitude. Distance questions search the tree
of points in the city's metric CRS and then measure the exact geodesic distance on the WGS84
ellipsoid (GeographicLib through pyproj, as PostGIS measures `geography`), so that both back
ends give the same metres.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely
from pyproj import Geod
from shapely.geometry.base import BaseGeometry

from cityops.domain.errors import InvalidValue
from cityops.maps.crs import MetricProjection

WGS84_ELLIPSOID = Geod(ellps="WGS84")

SCALE_MARGIN = 1.01
"""Bound on (metric CRS distance / geodesic distance) inside the city. A UTM zone distorts
lengths by less than 0.1 % within it (by about 1 % eight degrees of longitude off its
central meridian), so a metric search radius of r x 1.01 + 1 m finds every item within r
metres on the ellipsoid."""
MIN_COMPACT_TAIL = 512
TAIL_SHARE = 8
"""Compact when the tail exceeds 1/8 of the indexed items (and at least 512 items)."""
DEAD_SHARE = 4
"""Compact when more than 1/4 of the slots hold replaced or removed items."""
INITIAL_CAPACITY = 64

Slots = npt.NDArray[np.intp]
Floats = npt.NDArray[np.float64]


def geodesic_distances_m(lon: float, lat: float, lons: Any, lats: Any) -> Floats:
    """Distances in metres on the WGS84 ellipsoid from one point to many (vectorised)."""
    lons = np.asarray(lons, dtype=float)
    lats = np.asarray(lats, dtype=float)
    if lons.size == 0:
        return np.empty(0, dtype=float)
    _, _, distances = WGS84_ELLIPSOID.inv(np.full(lons.shape, lon), np.full(lats.shape, lat),
                                          lons, lats)
    return np.asarray(distances, dtype=float)


@dataclass(frozen=True)
class IndexedItem:
    """One geometry (WGS84; None when the item has no place yet) and the attributes its
    queries filter on."""

    id: str
    geometry: BaseGeometry | None
    attributes: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Condition:
    """What the items of a query must satisfy besides their place: attribute values among
    allowed ones, and attributes (ISO times as text) within a half-open range."""

    equals: Mapping[str, Collection[Any]] = field(default_factory=dict)
    between: Mapping[str, tuple[str | None, str | None]] = field(default_factory=dict)
    """name -> (lowest included or None, highest included or None)."""


NO_CONDITION = Condition()


class LiveIndex:
    """Geometries keyed by id, changed in place, queried by bbox, polygon, radius and
    nearest. Not thread-safe by itself: its owner serialises access."""

    def __init__(self, projection: MetricProjection, attributes: Sequence[str] = (),
                 *, points: bool = True) -> None:
        """`points`: the items are points (radius and nearest questions are allowed);
        otherwise polygons (bbox and within-polygon only)."""
        self.projection = projection
        self.points = points
        self.attribute_names = tuple(attributes)
        self._slot_of: dict[str, int] = {}
        self._size = 0
        self._built = 0
        self._dead = 0
        self._extent: tuple[float, float, float, float] | None = None
        """Metric bounds of every point indexed since the last compaction (a removed or
        moved point may leave it larger than needed, never smaller)."""
        self._allocate(INITIAL_CAPACITY)
        self._tree = shapely.STRtree(np.empty(0, dtype=object))
        self._metric_tree = shapely.STRtree(np.empty(0, dtype=object))

    # --- storage ---------------------------------------------------------------------------

    def _allocate(self, capacity: int) -> None:
        self._ids = np.empty(capacity, dtype=object)
        self._geometries = np.full(capacity, None, dtype=object)
        self._metric = np.full(capacity, None, dtype=object)
        self._lons = np.full(capacity, np.nan)
        self._lats = np.full(capacity, np.nan)
        self._xs = np.full(capacity, np.nan)
        self._ys = np.full(capacity, np.nan)
        self._alive = np.zeros(capacity, dtype=bool)
        self._attributes = {name: np.full(capacity, None, dtype=object)
                            for name in self.attribute_names}

    def _arrays(self) -> list[np.ndarray]:
        return [self._ids, self._geometries, self._metric, self._lons, self._lats, self._xs,
                self._ys, self._alive, *self._attributes.values()]

    def _grow(self, needed: int) -> None:
        capacity = len(self._ids)
        if needed <= capacity:
            return
        new_capacity = max(needed, capacity * 2)
        old = self._arrays()
        old_attributes = self._attributes
        self._allocate(new_capacity)
        for target, source in zip(self._arrays(), old, strict=True):
            target[:capacity] = source
        for name, values in old_attributes.items():
            self._attributes[name][:capacity] = values

    def __len__(self) -> int:
        return len(self._slot_of)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._slot_of

    # --- changes ---------------------------------------------------------------------------

    def replace_all(self, items: Iterable[IndexedItem]) -> None:
        """Forget everything and index `items` (a full load)."""
        self._slot_of = {}
        self._size = self._built = self._dead = 0
        self._extent = None
        self._allocate(INITIAL_CAPACITY)
        self.upsert(items)
        self._compact()

    def upsert(self, items: Iterable[IndexedItem]) -> None:
        """Add items, or replace the items with the same ids."""
        batch = list(items)
        if not batch:
            return
        for item in batch:
            previous = self._slot_of.pop(item.id, None)
            if previous is not None:
                self._alive[previous] = False
                self._dead += 1
        # Later items of the batch win over earlier ones with the same id.
        latest = list({item.id: item for item in batch}.values())
        start = self._size
        self._grow(start + len(latest))
        end = start + len(latest)
        geometries = np.array([i.geometry for i in latest] + [None], dtype=object)[:-1]
        self._ids[start:end] = [i.id for i in latest]
        self._geometries[start:end] = geometries
        present = ~shapely.is_missing(geometries)
        if self.points:
            lons = np.full(len(latest), np.nan)
            lats = np.full(len(latest), np.nan)
            if present.any():
                lons[present] = shapely.get_x(geometries[present])
                lats[present] = shapely.get_y(geometries[present])
                xs, ys = self.projection.points_to_metric(lons[present], lats[present])
                metric = np.full(len(latest), None, dtype=object)
                metric[present] = shapely.points(xs, ys)
                self._metric[start:end] = metric
                x_all = np.full(len(latest), np.nan)
                y_all = np.full(len(latest), np.nan)
                x_all[present], y_all[present] = xs, ys
                self._xs[start:end], self._ys[start:end] = x_all, y_all
                self._widen(xs, ys)
            self._lons[start:end], self._lats[start:end] = lons, lats
        self._alive[start:end] = True
        for name in self.attribute_names:
            self._attributes[name][start:end] = [i.attributes.get(name) for i in latest]
        for offset, item in enumerate(latest):
            self._slot_of[item.id] = start + offset
        self._size = end
        self._maybe_compact()

    def _widen(self, xs: Floats, ys: Floats) -> None:
        bounds = (float(np.min(xs)), float(np.min(ys)), float(np.max(xs)), float(np.max(ys)))
        if self._extent is not None:
            bounds = (min(bounds[0], self._extent[0]), min(bounds[1], self._extent[1]),
                      max(bounds[2], self._extent[2]), max(bounds[3], self._extent[3]))
        self._extent = bounds

    def remove(self, ids: Iterable[str]) -> None:
        """Forget items (unknown ids are ignored)."""
        for item_id in ids:
            slot = self._slot_of.pop(item_id, None)
            if slot is not None:
                self._alive[slot] = False
                self._dead += 1
        self._maybe_compact()

    def _maybe_compact(self) -> None:
        tail = self._size - self._built
        if tail > max(MIN_COMPACT_TAIL, self._built // TAIL_SHARE) or \
                self._dead > max(MIN_COMPACT_TAIL, self._size // DEAD_SHARE):
            self._compact()

    def _compact(self) -> None:
        """Move the live items to the front and rebuild the trees over all of them."""
        keep = np.flatnonzero(self._alive[:self._size])
        count = len(keep)
        for array in self._arrays():
            array[:count] = array[keep]
            array[count:self._size] = None if array.dtype == object else (
                False if array.dtype == bool else np.nan)
        self._size = self._built = count
        self._dead = 0
        self._slot_of = {str(self._ids[k]): k for k in range(count)}
        self._extent = None
        located = np.isfinite(self._xs[:count])
        if self.points and located.any():
            self._widen(self._xs[:count][located], self._ys[:count][located])
        self._tree = shapely.STRtree(self._geometries[:count])
        if self.points:
            self._metric_tree = shapely.STRtree(self._metric[:count])

    # --- questions -------------------------------------------------------------------------

    def ids(self, slots: Slots) -> list[str]:
        """The ids of items at `slots`."""
        return [str(v) for v in self._ids[slots]]

    def geometries(self, slots: Slots) -> list[BaseGeometry | None]:
        """The geometries of items at `slots`."""
        return list(self._geometries[slots])

    def attribute(self, name: str, slots: Slots) -> npt.NDArray[Any]:
        """One attribute of the items at `slots`."""
        return self._attributes[name][slots]

    def everything(self) -> Slots:
        """Slots of every item that has a geometry."""
        candidates = np.flatnonzero(self._alive[:self._size])
        located: Slots = candidates[~shapely.is_missing(self._geometries[candidates])]
        return located

    def _live(self, slots: Slots) -> Slots:
        return np.unique(slots[self._alive[slots]]) if len(slots) else slots

    def intersecting(self, shape: BaseGeometry) -> Slots:
        """Items intersecting a WGS84 geometry (a bbox or a polygon): on the edge counts."""
        main = self._tree.query(shape, predicate="intersects")
        tail_geometries = self._geometries[self._built:self._size]
        tail = self._built + np.flatnonzero(shapely.intersects(tail_geometries, shape))
        return self._live(np.concatenate([main, tail]).astype(np.intp))

    def matching(self, slots: Slots, condition: Condition) -> Slots:
        """Those of `slots` whose attributes satisfy `condition`."""
        keep = np.ones(len(slots), dtype=bool)
        for name, allowed in condition.equals.items():
            values = self._attributes[name][slots]
            wanted = set(allowed)
            keep &= np.fromiter((v in wanted for v in values), dtype=bool, count=len(values))
        for name, (low, high) in condition.between.items():
            values = self._attributes[name][slots]
            keep &= np.fromiter(
                (v is not None and (low is None or v >= low) and (high is None or v <= high)
                 for v in values),
                dtype=bool, count=len(values),
            )
        return slots[keep]

    def _require_points(self) -> None:
        if not self.points:
            raise InvalidValue("radius and nearest questions are asked of point layers; "
                               "ask a polygon layer with a bbox or a polygon")

    def _metric_near(self, lon: float, lat: float, reach: float) -> Slots:
        x, y = self.projection.points_to_metric([lon], [lat])
        centre = shapely.Point(float(x[0]), float(y[0]))
        main = self._metric_tree.query(centre, predicate="dwithin", distance=reach)
        tail_d = np.hypot(self._xs[self._built:self._size] - x[0],
                          self._ys[self._built:self._size] - y[0])
        with np.errstate(invalid="ignore"):
            tail = self._built + np.flatnonzero(tail_d <= reach)
        return self._live(np.concatenate([main, tail]).astype(np.intp))

    def within_distance(self, lon: float, lat: float, radius_m: float,
                        condition: Condition = NO_CONDITION) -> tuple[Slots, Floats]:
        """Items at most `radius_m` metres (geodesic) from a point, with their distances,
        nearest first (ties by id)."""
        self._require_points()
        candidates = self.matching(self._metric_near(lon, lat, radius_m * SCALE_MARGIN + 1.0),
                                   condition)
        distances = geodesic_distances_m(lon, lat, self._lons[candidates],
                                         self._lats[candidates])
        inside = distances <= radius_m
        return self._ordered(candidates[inside], distances[inside])

    def nearest(self, lon: float, lat: float, n: int,
                condition: Condition = NO_CONDITION) -> tuple[Slots, Floats]:
        """The `n` items nearest to a point (geodesic), nearest first (ties by id)."""
        self._require_points()
        if self._extent is None or not self._slot_of:
            return np.empty(0, dtype=np.intp), np.empty(0)
        x, y = self.projection.points_to_metric([lon], [lat])
        minx, miny, maxx, maxy = self._extent
        # Beyond this metric radius there is nothing left to find.
        reach = max(math.hypot(cx - x[0], cy - y[0]) for cx in (minx, maxx)
                    for cy in (miny, maxy)) * SCALE_MARGIN + 1.0
        # A first guess at the radius holding n items, were they spread evenly.
        spread = max(maxx - minx, maxy - miny, 1.0)
        radius = max(spread * math.sqrt(n / len(self._slot_of)), 100.0)
        while True:
            exhausted = radius * SCALE_MARGIN + 1.0 >= reach
            candidates = self.matching(self._metric_near(lon, lat, radius * SCALE_MARGIN + 1.0),
                                       condition)
            distances = geodesic_distances_m(lon, lat, self._lons[candidates],
                                             self._lats[candidates])
            # Items not among the candidates are farther than `radius` on the ellipsoid, so
            # the answer is complete once n candidates lie within it.
            if exhausted or int(np.count_nonzero(distances <= radius)) >= n:
                slots, ordered = self._ordered(candidates, distances)
                return slots[:n], ordered[:n]
            radius *= 2.0

    def _ordered(self, slots: Slots, distances: Floats) -> tuple[Slots, Floats]:
        ids = self._ids[slots].astype(str)
        order = np.lexsort((ids, distances))
        return slots[order], distances[order]
