"""Statistics: the key figures leaders read (open cases by light, on-time rate per
department, incidents by category, hotline reply and satisfaction rates) and the tables per
grid area, per department, for incidents and for the hotline. Computed when asked, from the
read models, at the system's current time (or `at`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from cityops.command_center.dependencies import CommandCentreSystem, CurrentActor
from cityops.command_center.models.statistics import (
    AreasPublic,
    DepartmentsPublic,
    HotlineStatisticsPublic,
    IncidentFiguresPublic,
    KeyFiguresPublic,
)
from cityops.command_center.scopes import require_citywide, scope_of
from cityops.command_center.time_travel import ReadSystem
from cityops.domain.errors import InvalidValue
from cityops.domain.values import checked_instant
from cityops.projections.response_figures import read_response_time_figures
from cityops.projections.statistics import AreaLevel, HotlineFigures

router = APIRouter(prefix="/statistics", tags=["statistics"])

AtQuery = Annotated[
    datetime | None,
    Query(description="The time the figures are for, with its UTC offset (default: now); "
                      "decides which open cases are overdue and which light they show"),
]


def _moment(system: CommandCentreSystem, at: datetime | None) -> datetime:
    if at is None:
        return system.grid_cases.clock()
    if at.tzinfo is None:
        raise InvalidValue(f"`at` must have a UTC offset (like 2025-03-01T08:00:00+08:00), "
                           f"got {at.isoformat()}")
    return checked_instant("at", at)


@router.get("/key-figures", response_model=KeyFiguresPublic)
def key_figures(system: ReadSystem, actor: CurrentActor, at: AtQuery = None) -> dict[str, Any]:
    """The overview: open cases by light, case totals, on-time rate per department,
    incidents by category, hotline reply and satisfaction rates."""
    require_citywide(actor, "the key figures")
    return system.statistics.key_figures(_moment(system, at)).as_dict()


@router.get("/areas", response_model=AreasPublic)
def areas(
    system: ReadSystem,
    actor: CurrentActor,
    level: Annotated[AreaLevel, Query(description="district, street, community or cell")]
    = AreaLevel.DISTRICT,
    within: Annotated[str | None, Query(
        description="Only areas inside this grid code (a district, street, community or "
                    "cell code)", max_length=100)] = None,
    at: AtQuery = None,
) -> dict[str, Any]:
    """Grid cases per area of the unit grid: reported, open, closed, lights now, and what
    the departments did with the cases dispatched from there."""
    require_citywide(actor, "the statistics per area")
    moment = _moment(system, at)
    rows = system.statistics.areas(level, moment, within=within)
    return {"level": level.value, "within": within, "at": moment.isoformat(),
            "data": [row.as_dict() for row in rows], "count": len(rows)}


@router.get("/departments", response_model=DepartmentsPublic)
def departments(system: ReadSystem, actor: CurrentActor, at: AtQuery = None) -> dict[str, Any]:
    """Per department the cases were dispatched to: dispatched, handled, on time, overdue,
    reworked, returned, rates and average handling time, and the lights of the cases it
    holds now."""
    moment = _moment(system, at)
    data = [row.as_dict() for row in system.statistics.departments(moment)]
    if scope_of(actor) is not None:
        data = [row for row in data if row["department"] == scope_of(actor)]
    return {"at": moment.isoformat(), "data": data, "count": len(data)}


@router.get("/incidents", response_model=IncidentFiguresPublic)
def incidents(system: ReadSystem, actor: CurrentActor) -> dict[str, Any]:
    """Incidents by category, level and status, and response times from the report to
    dispatch, arrival on scene, containment and closing (count, mean, p50, p90 seconds)."""
    require_citywide(actor, "the incident statistics")
    return system.statistics.incidents().as_dict()


@router.get("/hotline", response_model=HotlineStatisticsPublic)
def hotline(system: ReadSystem, actor: CurrentActor, at: AtQuery = None) -> dict[str, Any]:
    """Hotline tickets: on-time reply rate and callers' satisfaction, overall and per
    department the tickets were assigned to."""
    moment = _moment(system, at)
    per_department = system.statistics.hotline_departments(moment)
    if scope_of(actor) is not None:
        per_department = {name: figures for name, figures in per_department.items()
                          if name == scope_of(actor)}
    total = sum(per_department.values(), HotlineFigures())
    return {
        "at": moment.isoformat(),
        "total": total.as_dict(),
        "departments": [
            {"department": name, **figures.as_dict()}
            for name, figures in sorted(per_department.items(), key=lambda i: i[0] or "")
        ],
    }


class DurationsPublic(BaseModel):
    """One interval over a group of assignments, in seconds (None: none measured)."""

    model_config = ConfigDict(extra="forbid")

    count: int = Field(description="Assignments in which it could be measured")
    mean_s: float | None
    p50_s: float | None = Field(description="Median (nearest rank)")
    p90_s: float | None = Field(description="90th percentile (nearest rank)")


class AssignmentTimesPublic(BaseModel):
    """Queue, turnout, travel, response and on-scene times of a group of assignments."""

    model_config = ConfigDict(extra="forbid")

    assignments: int
    queue: DurationsPublic = Field(description="Incident reported -> resource dispatched")
    turnout: DurationsPublic = Field(description="Dispatched -> en route")
    travel: DurationsPublic = Field(description="En route -> on scene")
    response: DurationsPublic = Field(description="Incident reported -> resource on scene")
    on_scene: DurationsPublic = Field(description="On scene -> left the scene")


class ResourceTimesPublic(AssignmentTimesPublic):
    resource_id: str
    call_sign: str | None
    name: str | None
    kind: str
    department: str | None


class KindTimesPublic(AssignmentTimesPublic):
    kind: str


class IncidentTimesPublic(AssignmentTimesPublic):
    incident_id: str
    title: str | None
    category: str | None
    level: str | None
    status: str | None
    reported_at: datetime
    first_on_scene_s: float | None = Field(
        description="Report -> first resource on scene (the incident's response time)")


class ResponseTimesPublic(BaseModel):
    """Assignment times per resource, per kind of resource and per incident."""

    model_config = ConfigDict(extra="forbid")

    by_resource: list[ResourceTimesPublic]
    by_kind: list[KindTimesPublic]
    by_incident: list[IncidentTimesPublic]


@router.get("/response-times", response_model=ResponseTimesPublic)
def response_times(system: ReadSystem, actor: CurrentActor) -> dict[str, Any]:
    """Queue, turnout, travel, response and on-scene times (count, mean, p50, p90 seconds)
    per resource, per kind of resource and per incident (formulas: docs/indicators.md)."""
    require_citywide(actor, "the response times")
    return read_response_time_figures(system.statistics.store).as_dict()
