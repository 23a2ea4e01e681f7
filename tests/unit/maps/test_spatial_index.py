"""The live spatial index answers like brute force, however items were added, moved and
removed (the tail, the dead slots and the compactions are invisible from outside)."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from cityops.domain.errors import InvalidValue
from cityops.maps import MetricProjection
from cityops.maps.spatial_index import (
    Condition,
    IndexedItem,
    LiveIndex,
    geodesic_distances_m,
)

PROJECTION = MetricProjection.from_crs("EPSG:32650")
CENTRE = (118.80, 32.05)


def _random_items(rng: np.random.Generator, count: int, prefix: str = "") -> list[IndexedItem]:
    lons = CENTRE[0] + rng.uniform(-0.05, 0.05, count)
    lats = CENTRE[1] + rng.uniform(-0.04, 0.04, count)
    return [IndexedItem(f"{prefix}{k:05d}", shapely.Point(lons[k], lats[k]),
                        {"kind": "ambulance" if k % 3 == 0 else "fire-engine",
                         "at": f"2026-11-24T{k % 24:02d}:00:00+00:00"})
            for k in range(count)]


class BruteForce:
    """What the index must answer, computed the slow obvious way."""

    def __init__(self) -> None:
        self.items: dict[str, IndexedItem] = {}

    def apply(self, upserts: list[IndexedItem], removals: list[str]) -> None:
        for item in upserts:
            self.items[item.id] = item
        for item_id in removals:
            self.items.pop(item_id, None)

    def _located(self, kind: str | None) -> list[IndexedItem]:
        return [i for i in self.items.values() if i.geometry is not None
                and (kind is None or i.attributes.get("kind") == kind)]

    def within(self, lon: float, lat: float, radius: float,
               kind: str | None = None) -> list[tuple[str, float]]:
        found = self._located(kind)
        d = geodesic_distances_m(lon, lat, [i.geometry.x for i in found],
                                 [i.geometry.y for i in found])
        return sorted(((i.id, float(x)) for i, x in zip(found, d, strict=True)
                       if x <= radius), key=lambda p: (p[1], p[0]))

    def nearest(self, lon: float, lat: float, n: int,
                kind: str | None = None) -> list[tuple[str, float]]:
        return self.within(lon, lat, 1e9, kind)[:n]

    def intersecting(self, shape: shapely.Geometry) -> list[str]:
        return sorted(i.id for i in self._located(None) if i.geometry.intersects(shape))


def _answers(index: LiveIndex, slots: np.ndarray, distances: np.ndarray) \
        -> list[tuple[str, float]]:
    return list(zip(index.ids(slots), (float(d) for d in distances), strict=True))


def _same(got: list[tuple[str, float]], want: list[tuple[str, float]]) -> None:
    assert [g[0] for g in got] == [w[0] for w in want]
    assert np.allclose([g[1] for g in got], [w[1] for w in want], atol=1e-6)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), rounds=st.integers(1, 6),
       n=st.integers(1, 12), radius=st.floats(0, 3000))
def test_changes_in_any_order_give_brute_force_answers(seed: int, rounds: int, n: int,
                                                       radius: float) -> None:
    rng = np.random.default_rng(seed)
    index = LiveIndex(PROJECTION, ["kind", "at"])
    truth = BruteForce()
    initial = _random_items(rng, int(rng.integers(0, 900)))
    index.replace_all(initial)
    truth.apply(initial, [])
    for round_number in range(rounds):
        # Moves of existing items, new items, items losing their place, removals.
        known = sorted(truth.items)
        moved = [IndexedItem(i, shapely.Point(CENTRE[0] + rng.uniform(-0.05, 0.05),
                                              CENTRE[1] + rng.uniform(-0.04, 0.04)),
                             truth.items[i].attributes)
                 for i in rng.choice(known, size=min(len(known), 200), replace=False)] \
            if known else []
        new = _random_items(rng, int(rng.integers(0, 700)), prefix=f"r{round_number}-")
        unplaced = [IndexedItem(i, None, {}) for i in known[:5]]
        removed = [str(i) for i in rng.choice(known, size=min(len(known), 50),
                                              replace=False)] if known else []
        index.upsert([*moved, *new, *unplaced])
        index.remove(removed)
        truth.apply([*moved, *new, *unplaced], removed)

    lon, lat = CENTRE[0] + rng.uniform(-0.03, 0.03), CENTRE[1] + rng.uniform(-0.03, 0.03)
    assert len(index) == len(truth.items)
    _same(_answers(index, *index.within_distance(lon, lat, radius)),
          truth.within(lon, lat, radius))
    _same(_answers(index, *index.nearest(lon, lat, n)), truth.nearest(lon, lat, n))
    ambulances = Condition(equals={"kind": ["ambulance"]})
    _same(_answers(index, *index.nearest(lon, lat, n, ambulances)),
          truth.nearest(lon, lat, n, "ambulance"))
    box = shapely.box(lon - 0.01, lat - 0.01, lon + 0.01, lat + 0.01)
    assert sorted(index.ids(index.intersecting(box))) == truth.intersecting(box)


def test_a_time_range_keeps_only_items_within_it() -> None:
    rng = np.random.default_rng(3)
    items = _random_items(rng, 240)
    index = LiveIndex(PROJECTION, ["kind", "at"])
    index.replace_all(items)
    morning = Condition(between={"at": ("2026-11-24T06:00:00+00:00",
                                        "2026-11-24T09:00:00+00:00")})
    found = index.ids(index.matching(index.everything(), morning))
    assert sorted(found) == sorted(i.id for i in items
                                   if "06:00" <= i.attributes["at"][11:16] <= "09:00")
    assert len(found) == 40


def test_an_item_moved_many_times_is_found_only_where_it_is_now() -> None:
    index = LiveIndex(PROJECTION, [])
    index.replace_all(_random_items(np.random.default_rng(1), 2000))
    for step in range(3000):  # enough to compact several times
        lon = CENTRE[0] + 0.00001 * step
        index.upsert([IndexedItem("vehicle", shapely.Point(lon, CENTRE[1]))])
    slots, distances = index.nearest(lon, CENTRE[1], 1)
    assert index.ids(slots) == ["vehicle"] and distances[0] == pytest.approx(0.0, abs=1e-6)
    assert len(index) == 2001


def test_distances_are_geodesic_metres() -> None:
    # One minute of latitude at 32 degrees N is about 1,848 m on the WGS84 ellipsoid.
    index = LiveIndex(PROJECTION, [])
    index.replace_all([IndexedItem("north", shapely.Point(118.8, 32.05 + 1 / 60))])
    _, distances = index.within_distance(118.8, 32.05, 2000)
    assert distances[0] == pytest.approx(1848.2, abs=0.5)


def test_polygon_layers_refuse_distance_questions() -> None:
    index = LiveIndex(PROJECTION, [], points=False)
    index.replace_all([IndexedItem("zone", shapely.box(118.79, 32.04, 118.81, 32.06))])
    assert index.ids(index.intersecting(shapely.Point(118.8, 32.05))) == ["zone"]
    with pytest.raises(InvalidValue, match="point layers"):
        index.within_distance(118.8, 32.05, 100)
