"""Impact zones in metres, hazard sources near an incident, facilities inside a zone."""

from __future__ import annotations

import math

import pytest
import shapely

from cityops.domain.errors import InvalidValue
from cityops.domain.geometry import Area, GeoPoint
from cityops.maps import (
    City,
    FacilityKind,
    PositionIndex,
    circle_zone,
    facilities_at_risk,
    facilities_in_zone,
    hazard_sources_near,
    impact_zone,
    zone_area_m2,
)

INCIDENT = GeoPoint(118.815, 32.045)


@pytest.mark.parametrize("radius", [50.0, 500.0, 3000.0])
def test_a_circle_zone_has_the_area_of_its_radius_in_metres(demo: City, radius: float) -> None:
    zone = circle_zone(INCIDENT, radius, demo.map.projection)
    assert isinstance(zone, Area) and zone.crs == "EPSG:4326"
    assert zone_area_m2(zone, demo.map.projection) == pytest.approx(math.pi * radius**2,
                                                                    rel=0.01)
    # Without a projection at hand, the UTM zone of the place is used: the same answer.
    assert zone_area_m2(circle_zone(INCIDENT, radius)) == pytest.approx(math.pi * radius**2,
                                                                        rel=0.01)


def test_a_circle_zone_reaches_its_radius_in_every_direction(demo: City) -> None:
    zone = circle_zone(INCIDENT, 500.0, demo.map.projection)
    ring = shapely.get_coordinates(zone.shape)
    distances = [INCIDENT.distance_m(GeoPoint(float(x), float(y))) for x, y in ring]
    assert min(distances) == pytest.approx(500.0, rel=0.01)
    assert max(distances) == pytest.approx(500.0, rel=0.01)


def test_a_zone_radius_must_be_positive() -> None:
    with pytest.raises(InvalidValue, match="positive number of metres"):
        circle_zone(INCIDENT, 0.0)


def test_the_impact_zone_is_the_sources_own_polygon_or_its_radius(demo: City) -> None:
    dam = demo.hazard_source("HS-04")
    assert dam.impact_zone is not None
    assert impact_zone(dam).shape.equals_exact(dam.impact_zone.shape, tolerance=0.0)
    plant = demo.hazard_source("HS-01")
    zone = impact_zone(plant, demo.map.projection)
    assert zone_area_m2(zone, demo.map.projection) == pytest.approx(math.pi * 1000.0**2,
                                                                     rel=0.01)


def test_hazard_sources_near_an_incident_match_brute_force(demo: City) -> None:
    for radius in (500.0, 1500.0, 3000.0):
        found = hazard_sources_near(INCIDENT, radius, demo.hazard_sources, demo.map.projection)
        expected = sorted(
            (INCIDENT.distance_m(s.location), s.id) for s in demo.hazard_sources
            if INCIDENT.distance_m(s.location) <= radius
        )
        assert [n.item.id for n in found] == [i for _, i in expected]
        assert [n.distance_m for n in found] == pytest.approx([d for d, _ in expected],
                                                              rel=3e-3)


def test_facilities_at_risk_are_those_inside_the_impact_zone(demo: City) -> None:
    index = PositionIndex(demo.facilities, demo.map.projection)
    for source in demo.hazard_sources:
        zone = impact_zone(source, demo.map.projection)
        found = facilities_at_risk(source, index, projection=demo.map.projection)
        expected = [f for f in demo.facilities if zone.shape.covers(f.location.shape)]
        assert found == expected
    # The demo city has facilities to protect near its hazards.
    lpg = facilities_at_risk(demo.hazard_source("HS-02"), demo.facilities)
    assert [f.id for f in lpg] == ["SCH-04"]
    dam = facilities_at_risk(demo.hazard_source("HS-04"), demo.facilities,
                             kinds=[FacilityKind.SCHOOL])
    assert "SCH-08" in [f.id for f in dam]


def test_facilities_in_a_zone_can_be_filtered_by_kind(demo: City) -> None:
    zone = circle_zone(INCIDENT, 3000.0, demo.map.projection)
    everything = facilities_in_zone(zone, demo.facilities)
    shelters = facilities_in_zone(zone, demo.facilities, kinds=["shelter"])
    assert shelters == [f for f in everything if f.kind is FacilityKind.SHELTER]
    assert shelters
    with pytest.raises(InvalidValue, match="unknown facility kind 'stadium'"):
        facilities_in_zone(zone, demo.facilities, kinds=["stadium"])
