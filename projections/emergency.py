"""Read-model tables of the emergency streams: incidents, contingency plans, resources."""

from __future__ import annotations

from typing import Any

from cityops.domain.geometry import GeoPoint
from cityops.domain.incidents.incident import Incident
from cityops.domain.incidents.plans import ContingencyPlan
from cityops.domain.resources.resource import Resource
from cityops.projections.tables import (
    ROW_POINT,
    Column,
    GeometryColumn,
    GeometryKind,
    SummaryTable,
    utc_text,
)


def _resource_position(resource: Resource) -> GeoPoint | None:
    """A resource is where it last reported, else at its home base."""
    fix: Any = resource.position
    return fix.point if fix is not None else resource.home_base


def incident_table() -> SummaryTable:
    return SummaryTable(
        table="rm_incidents",
        aggregate_class=Incident,
        columns=(
            Column("category", "TEXT", lambda i: i.category, indexed=True),
            Column("incident_type", "TEXT", lambda i: i.incident_type),
            Column("level", "TEXT", lambda i: i.level, indexed=True),
            Column("level_rank", "INTEGER", lambda i: i.level_rank),
            Column("is_open", "BOOLEAN", lambda i: i.is_open,
                   indexed=True),
            Column("reported_at", "TEXT", lambda i: utc_text(i.created_on), indexed=True),
            # The response times are measured by these: read from the documents, they were
            # 147 ms of the key figures' 258 at 11,040 incidents (bench/city_scale.py).
            Column("contained_at", "TEXT", lambda i: utc_text(i.contained_at)),
            Column("closed_at", "TEXT", lambda i: utc_text(i.closed_at)),
        ),
        geometries=(
            ROW_POINT,
            GeometryColumn("affected_area", GeometryKind.AREA, lambda i: i.affected_area),
        ),
    )


def plan_table() -> SummaryTable:
    return SummaryTable(
        table="rm_plans",
        aggregate_class=ContingencyPlan,
        columns=(
            Column("code", "TEXT", lambda p: p.code, indexed=True),
            Column("category", "TEXT", lambda p: p.category, indexed=True),
        ),
        locate=lambda _: None,
    )


def resource_table() -> SummaryTable:
    return SummaryTable(
        table="rm_resources",
        aggregate_class=Resource,
        columns=(
            Column("kind", "TEXT", lambda r: r.kind, indexed=True),
            Column("department", "TEXT", lambda r: r.department, indexed=True),
            Column("call_sign", "TEXT", lambda r: r.call_sign),
            Column("incident_id", "TEXT",
                   lambda r: str(r.incident_id) if r.incident_id else None, indexed=True),
        ),
        locate=_resource_position,
        geometries=(ROW_POINT,),
    )
