"""Statistics as the API answers them: key figures, figures per area, per department, of
incidents and of the hotline (rates are null when nothing was counted)."""

from __future__ import annotations

from pydantic import Field

from cityops.command_center.models.common import Number, Public, Timestamp
from cityops.projections.statistics import AreaLevel


class LightCountsPublic(Public):
    """Open cases by the supervision light they show now."""

    green: int
    yellow: int
    red: int


class DispatchFiguresPublic(Public):
    """What departments did with the cases dispatched to them (docs/indicators.md)."""

    dispatched: int
    with_department: int
    handled: int
    closed: int
    on_time: int
    overdue: int
    handled_late: int
    overdue_open: int
    verified: int
    reworked: int
    reworks: int
    returned: int
    on_time_rate: Number | None
    rework_rate: Number | None
    returned_rate: Number | None
    average_handling_seconds: Number | None


class CaseFiguresPublic(Public):
    """Grid cases: counts, lights now, and what became of their dispatches."""

    reported: int
    open: int
    closed: int
    rejected: int
    lights: LightCountsPublic
    dispatches: DispatchFiguresPublic


class ReturnFiguresMixin(Public):
    """The items a department returned as not its own, and the centre's review of them."""

    returns_made: int
    returns_awaiting_review: int
    returns_accepted: int
    returns_rejected: int
    returns_lapsed: int
    returns_reviewed: int
    dispute_rate: Number | None = Field(description="Rejected / reviewed returns")


class HotlineFiguresPublic(ReturnFiguresMixin):
    """Hotline tickets (merged duplicates left out) of one department or of all."""

    tickets: int
    open: int
    replied: int
    replied_on_time: int
    replied_late: int
    overdue_unreplied: int
    satisfied: int
    basically_satisfied: int
    dissatisfied: int
    on_time_reply_rate: Number | None
    satisfaction_rate: Number | None


class KeyFiguresPublic(Public):
    """The leader's overview."""

    at: Timestamp
    open_cases_by_light: LightCountsPublic
    cases: CaseFiguresPublic
    on_time_rate_by_department: dict[str, Number | None]
    incidents_by_category: dict[str, int]
    open_incidents_by_category: dict[str, int]
    hotline: HotlineFiguresPublic


class AreaFiguresPublic(CaseFiguresPublic):
    """The figures of one district, street, community or cell."""

    level: AreaLevel
    code: str


class AreasPublic(Public):
    """Grid cases per area of the unit grid."""

    level: AreaLevel
    within: str | None
    at: Timestamp
    data: list[AreaFiguresPublic]
    count: int


class DepartmentFiguresPublic(DispatchFiguresPublic, ReturnFiguresMixin):
    """One department: the lights of the cases it holds, what it did with the cases
    dispatched to it, and its returns."""

    department: str
    lights: LightCountsPublic


class DepartmentsPublic(Public):
    """Figures per department the cases were dispatched to."""

    at: Timestamp
    data: list[DepartmentFiguresPublic]
    count: int


class DurationFiguresPublic(Public):
    """Count, mean, p50 and p90 of one interval, in seconds (null: none measured)."""

    count: int
    mean_s: Number | None
    p50_s: Number | None
    p90_s: Number | None


class IncidentFiguresPublic(Public):
    """Incidents by category, level and status, and response times from the report."""

    total: int
    open: int
    by_category: dict[str, int]
    by_level: dict[str, int]
    by_status: dict[str, int]
    open_by_category: dict[str, int]
    open_by_level: dict[str, int]
    response_times: dict[str, DurationFiguresPublic] = Field(
        description="From the report to each stage: dispatch, on_scene, contained, closed")


class DepartmentHotlinePublic(HotlineFiguresPublic):
    """The hotline figures of one department the tickets were assigned to."""

    department: str | None


class HotlineStatisticsPublic(Public):
    """Hotline tickets overall and per department."""

    at: Timestamp
    total: HotlineFiguresPublic
    departments: list[DepartmentHotlinePublic]
