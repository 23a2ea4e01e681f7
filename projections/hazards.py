"""Read-model table of hazard sources, with their grade, how many alarms are open, and the
impact zone as a polygon (the source's own zone, or its radius drawn in a metric CRS)."""

from __future__ import annotations

from cityops.domain.geometry import Area
from cityops.domain.hazards.source import HazardSource, open_alarms
from cityops.maps.zones import circle_zone
from cityops.projections.tables import (
    ROW_POINT,
    Column,
    GeometryColumn,
    GeometryKind,
    SummaryTable,
)


def impact_area(source: HazardSource) -> Area | None:
    """Where a hazard source threatens: its own polygon (a dam's flood path) if it has one,
    else the circle of its impact radius, buffered in metres in the UTM zone of the source."""
    if source.impact_zone is not None:
        zone: Area = source.impact_zone
        return zone
    if source.impact_radius_m is None:
        return None
    return circle_zone(source.location, source.impact_radius_m)


def hazard_source_table() -> SummaryTable:
    """Hazard sources, located by their point and with their impact zone as a polygon."""
    return SummaryTable(
        table="rm_hazard_sources",
        aggregate_class=HazardSource,
        columns=(
            Column("hazard_type", "TEXT", lambda h: h.hazard_type, indexed=True),
            Column("grade", "INTEGER", lambda h: h.grade, indexed=True),
            Column("open_alarm_count", "INTEGER", lambda h: len(open_alarms(h)), indexed=True),
        ),
        geometries=(ROW_POINT, GeometryColumn("impact_zone", GeometryKind.AREA, impact_area)),
    )
