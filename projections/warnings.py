"""Read-model table of the warning desk: one row per warning, its summary as the document,
with the columns the lists and the map filter by and its whole area as a geometry.

Whether an issued warning has expired is not a column: it depends on the time it is asked
(`expires` is, and the readers compare it with their clock)."""

from __future__ import annotations

from typing import Any

from cityops.domain.geometry import Area, GeoPoint
from cityops.domain.warnings.content import WarningContent
from cityops.domain.warnings.warning import IN_FORCE, Warning
from cityops.projections.tables import (
    ROW_POINT,
    Column,
    GeometryColumn,
    GeometryKind,
    SummaryTable,
    utc_text,
)

WARNING_TABLE = "rm_warnings"


def _shown(warning: Warning) -> WarningContent | None:
    """The content a row shows: the one in force, else the one under preparation."""
    if warning.notices:
        return warning.notices[-1].content
    return warning.draft


def _area(warning: Warning) -> Area | None:
    content = _shown(warning)
    return content.area.outline() if content is not None else None


def _centre(warning: Warning) -> GeoPoint | None:
    area = _area(warning)
    if area is None:
        return None
    point = area.shape.representative_point()
    return GeoPoint(lon=float(point.x), lat=float(point.y))


def _origin_id(warning: Warning) -> str | None:
    content = _shown(warning)
    if content is None:
        return None
    origin = content.origin
    found: Any = origin.incident_id or origin.hazard_source_id
    return str(found) if found is not None else None


def warning_table() -> SummaryTable:
    return SummaryTable(
        table=WARNING_TABLE,
        aggregate_class=Warning,
        columns=(
            Column("alert_status", "TEXT", lambda w: w.alert_status.value, indexed=True),
            Column("scope", "TEXT", lambda w: c.scope.value if (c := _shown(w)) else None),
            Column("level", "TEXT", lambda w: c.level.code if (c := _shown(w)) else None),
            Column("level_rank", "INTEGER",
                   lambda w: c.level.rank if (c := _shown(w)) else None),
            Column("in_force", "BOOLEAN", lambda w: w.status in IN_FORCE, indexed=True),
            Column("expires", "TEXT",
                   lambda w: utc_text(c.expires) if (c := _shown(w)) else None, indexed=True),
            Column("issued", "BOOLEAN", lambda w: bool(w.notices), indexed=True),
            Column("origin_kind", "TEXT",
                   lambda w: c.origin.kind.value if (c := _shown(w)) else None),
            Column("origin_id", "TEXT", _origin_id, indexed=True),
        ),
        locate=_centre,
        geometries=(ROW_POINT, GeometryColumn("area", GeometryKind.AREA, _area)),
    )
