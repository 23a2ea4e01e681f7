"""Nearest-N and within-radius searches, checked against brute force on seeded random data,
with the straight-line model and with a stand-in for a road-network model."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pytest

from cityops.domain.errors import InvalidValue
from cityops.domain.geometry import GeoPoint
from cityops.maps import (
    City,
    FacilityKind,
    MetricProjection,
    PositionIndex,
    StraightLine,
    nearest,
    nearest_of_kind,
    within_radius,
)
from cityops.maps.proximity import Positioned

PROJECTION = MetricProjection.from_crs("EPSG:32650")


@dataclass(frozen=True)
class Unit:
    id: int
    location: GeoPoint


def _units(count: int, seed: int) -> list[Unit]:
    rng = np.random.default_rng(seed)
    lons = rng.uniform(118.75, 118.85, count)
    lats = rng.uniform(32.02, 32.08, count)
    return [Unit(k, GeoPoint(float(x), float(y))) for k, (x, y) in enumerate(zip(lons, lats,
                                                                                  strict=True))]


def _straight(origin: GeoPoint, units: Sequence[Positioned]) -> list[float]:
    ox, oy = PROJECTION.points_to_metric([origin.lon], [origin.lat])
    xs, ys = PROJECTION.points_to_metric([u.location.lon for u in units],
                                         [u.location.lat for u in units])
    return [float(d) for d in np.hypot(xs - ox[0], ys - oy[0])]


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("n", [1, 3, 10, 50, 300, 400])
def test_nearest_n_matches_brute_force(seed: int, n: int) -> None:
    units = _units(300, seed)
    origin = _units(1, seed + 100)[0].location
    found = nearest(origin, units, n, projection=PROJECTION)
    distances = _straight(origin, units)
    expected = sorted(range(len(units)), key=lambda k: (distances[k], k))[:n]
    assert [f.item.id for f in found] == expected
    assert [f.distance_m for f in found] == pytest.approx([distances[k] for k in expected])


def test_straight_line_distance_agrees_with_the_great_circle() -> None:
    units = _units(50, 7)
    origin = GeoPoint(118.8, 32.05)
    measured = StraightLine(PROJECTION).distances_m(origin, [u.location for u in units])
    # The haversine's sphere is up to 0.2 % off the ellipsoid at this latitude.
    assert measured == pytest.approx([origin.distance_m(u.location) for u in units], rel=3e-3)
    assert StraightLine().distances_m(origin, []) == []


@dataclass
class Detours:
    """A stand-in road network: each destination costs its straight line times a detour
    factor (>= 1, so never shorter), and some cannot be reached at all."""

    factors: dict[GeoPoint, float]
    asked: int = 0

    def distances_m(self, origin: GeoPoint, destinations: Sequence[GeoPoint]) -> list[float]:
        self.asked += len(destinations)
        straight = StraightLine(PROJECTION).distances_m(origin, destinations)
        return [d * self.factors[p] for d, p in zip(straight, destinations, strict=True)]


@pytest.mark.parametrize("n", [1, 5, 20])
def test_nearest_n_by_another_model_matches_brute_force_and_asks_less(n: int) -> None:
    units = _units(1000, 11)
    rng = np.random.default_rng(12)
    factors = {u.location: float(f) for u, f in zip(units, rng.uniform(1.0, 1.8, len(units)),
                                                    strict=True)}
    for u in units[::97]:
        factors[u.location] = math.inf  # across the river, no bridge
    model = Detours(factors)
    origin = GeoPoint(118.80, 32.05)
    found = PositionIndex(units, PROJECTION).nearest(origin, n, model)

    everything = Detours(factors).distances_m(origin, [u.location for u in units])
    expected = sorted((d, k) for k, d in enumerate(everything) if math.isfinite(d))[:n]
    assert [f.item.id for f in found] == [k for _, k in expected]
    assert [f.distance_m for f in found] == pytest.approx([d for d, _ in expected])
    assert model.asked < len(units)  # the straight-line bound spared most of the work


def test_within_radius_matches_brute_force() -> None:
    units = _units(500, 21)
    origin = GeoPoint(118.80, 32.05)
    found = within_radius(origin, units, 1500.0, PROJECTION)
    distances = _straight(origin, units)
    expected = sorted((d, k) for k, d in enumerate(distances) if d <= 1500.0)
    assert [f.item.id for f in found] == [k for _, k in expected]
    assert all(f.distance_m <= 1500.0 for f in found)


def test_nearest_of_a_kind_among_the_demo_resources_and_shelters(demo: City) -> None:
    origin = GeoPoint(118.815, 32.045)
    ambulances = nearest_of_kind(origin, demo.resources, "ambulance", 3, projection=PROJECTION)
    expected = sorted((_straight(origin, [r])[0], r.id) for r in demo.resources
                      if r.kind == "ambulance")[:3]
    assert [a.item.id for a in ambulances] == [i for _, i in expected]
    shelters = nearest_of_kind(origin, demo.facilities, FacilityKind.SHELTER, 2)
    assert len(shelters) == 2 and all(s.item.kind is FacilityKind.SHELTER for s in shelters)
    assert shelters[0].distance_m <= shelters[1].distance_m
    assert nearest_of_kind(origin, demo.resources, "spaceship", 3) == []


def test_edge_cases_of_the_searches() -> None:
    origin = GeoPoint(118.80, 32.05)
    assert nearest(origin, [], 3) == []
    assert len(nearest(origin, _units(2, 5), 10)) == 2
    with pytest.raises(InvalidValue, match="at least 1"):
        nearest(origin, _units(2, 5), 0)
    with pytest.raises(InvalidValue, match="radius"):
        within_radius(origin, _units(2, 5), -1.0)
    assert within_radius(origin, [], 100.0) == []
