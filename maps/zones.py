"""Zones of hazard supervision: the impact zone of a hazard source (a buffer in metres, or
the source's own polygon), the hazard sources near an incident, and the schools, hospitals
and shelters inside a zone. Buffers and areas are computed in a metric CRS, returned in WGS84.
"""

from __future__ import annotations

from collections.abc import Iterable

import shapely

from cityops.domain.errors import InvalidValue
from cityops.domain.geometry import Area, GeoPoint
from cityops.maps.crs import MetricProjection
from cityops.maps.inventory import Facility, FacilityKind, HazardSource
from cityops.maps.proximity import Nearby, PositionIndex, within_radius

BUFFER_QUAD_SEGMENTS = 16
"""64 segments per circle: the polygon's area is within 0.2 % of the true circle's."""


def circle_zone(
    centre: GeoPoint, radius_m: float, projection: MetricProjection | None = None
) -> Area:
    """The area within `radius_m` metres of a point, drawn in a metric CRS."""
    if not (isinstance(radius_m, int | float) and 0 < radius_m < float("inf")):
        raise InvalidValue(f"a zone radius must be a positive number of metres, got {radius_m!r}")
    projection = projection or MetricProjection.around(centre.lon, centre.lat)
    x, y = projection.points_to_metric([centre.lon], [centre.lat])
    circle = shapely.Point(float(x[0]), float(y[0])).buffer(
        float(radius_m), quad_segs=BUFFER_QUAD_SEGMENTS
    )
    return Area(wkt=projection.to_wgs84(circle).wkt)


def impact_zone(source: HazardSource, projection: MetricProjection | None = None) -> Area:
    """Where a hazard source threatens: its own zone if it has one (a dam's flood path),
    else the circle of its impact radius."""
    if source.impact_zone is not None:
        return source.impact_zone
    if source.impact_radius_m is None:
        raise InvalidValue(f"hazard source {source.id} has neither an impact radius nor a zone")
    return circle_zone(source.location, source.impact_radius_m, projection)


def zone_area_m2(zone: Area, projection: MetricProjection | None = None) -> float:
    """The area of a zone in square metres, measured in a metric CRS."""
    if projection is None:
        centre = zone.shape.centroid
        projection = MetricProjection.around(float(centre.x), float(centre.y))
    return float(shapely.area(projection.to_metric(zone.shape)))


def hazard_sources_near(
    location: GeoPoint,
    radius_m: float,
    sources: Iterable[HazardSource],
    projection: MetricProjection | None = None,
) -> list[Nearby[HazardSource]]:
    """Hazard sources within `radius_m` metres of an incident location, nearest first."""
    return within_radius(location, sources, radius_m, projection)


def facilities_in_zone(
    zone: Area,
    facilities: Iterable[Facility] | PositionIndex[Facility],
    kinds: Iterable[FacilityKind | str] | None = None,
    projection: MetricProjection | None = None,
) -> list[Facility]:
    """The facilities (optionally only some kinds) inside a zone, in the order given."""
    wanted = None if kinds is None else {_facility_kind(k) for k in kinds}
    if isinstance(facilities, PositionIndex):
        index = facilities
    else:
        if projection is None:
            centre = zone.shape.centroid
            projection = MetricProjection.around(float(centre.x), float(centre.y))
        index = PositionIndex(facilities, projection)
    return [f for f in index.inside(zone) if wanted is None or f.kind in wanted]


def _facility_kind(value: FacilityKind | str) -> FacilityKind:
    try:
        return FacilityKind(value)
    except ValueError:
        known = ", ".join(FacilityKind)
        raise InvalidValue(f"unknown facility kind {value!r}; kinds are {known}") from None


def facilities_at_risk(
    source: HazardSource,
    facilities: Iterable[Facility] | PositionIndex[Facility],
    kinds: Iterable[FacilityKind | str] | None = None,
    projection: MetricProjection | None = None,
) -> list[Facility]:
    """The schools, hospitals and shelters inside a hazard source's impact zone."""
    return facilities_in_zone(impact_zone(source, projection), facilities, kinds, projection)
