"""Performance statistics of city management and emergency response: the key figures leaders
read, per unit grid cell, community, street, district and department, and for incidents and
the hotline.

How they stay exact. Every figure is computed when asked, with the current time as a
parameter (an open case is overdue because its deadline is earlier than *now*). The rows are
state-derived upserts, written in the same transaction as the follower's position:

- `rm_grid_cases` (one row per case: open or closed, the instants its light turns yellow and
  red) gives the counts and lights per cell;
- `rm_case_dispatches` (below: one row per dispatch of a case to a department) gives what each
  department did with what it was sent: on time or late, reworked, returned, handling time.

A restart resumes after the last committed batch, and if a batch were ever applied twice
its upserts would write the same rows again; a count can therefore neither be lost nor
doubled, and a rebuilt generation gives the same figures as the one it replaces.

The figures of the whole city and of each department (the key figures) are sums over
tallies kept with those rows (`tallies.py`: a few hundred groups, the instants by their
hour; the rows of the hour being asked are counted from the table), so that their cost
does not grow with the history: 1.8 s -> 0.1 s at 1,000,000 grid cases
(bench/city_scale.py). The figures per cell and area, and every figure at a past instant
(`PastStore`, no tallies there), are a GROUP BY over two covering indexes (one row per cell
or department comes back; areas are summed from cells by their code prefix in Python).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate

from cityops.domain.errors import InvalidValue
from cityops.domain.gridcases.case import CaseStatus, GridCase
from cityops.domain.resources.resource import ResourceStatus, StatusChange
from cityops.domain.response_times import (
    DurationStatistics,
    assignments,
    duration_statistics,
    response_time,
)
from cityops.maps.hierarchy import CODE_SEPARATOR
from cityops.projections.returns import (
    CASE_RETURNS_TABLE,
    TICKET_RETURNS_TABLE,
    ReturnFigures,
    return_figures,
)
from cityops.projections.tables import utc_text
from cityops.projections.tallies import Instant, Tally, TallyGroup, kept
from cityops.storage import ReadStore, Transaction, row_document

DISPATCH_TABLE = "rm_case_dispatches"
MICROSECOND = timedelta(microseconds=1)


class DispatchStage(StrEnum):
    """Where one dispatch of a case stands, from the department's point of view."""

    WITH_DEPARTMENT = "with-department"
    SUSPENDED = "suspended"
    RETURNED = "returned"
    """Sent back as not its responsibility (the case went on to another dispatch)."""
    HANDLED = "handled"
    """Reported done (handled or verified); a rework order brings it back."""
    CLOSED = "closed"


_STAGE_OF_STATUS = {
    CaseStatus.DISPATCHED: DispatchStage.WITH_DEPARTMENT,
    CaseStatus.SUSPENDED: DispatchStage.SUSPENDED,
    CaseStatus.RETURNED: DispatchStage.RETURNED,
    CaseStatus.HANDLED: DispatchStage.HANDLED,
    CaseStatus.VERIFIED: DispatchStage.HANDLED,
    CaseStatus.CLOSED: DispatchStage.CLOSED,
}
_DONE = (DispatchStage.HANDLED.value, DispatchStage.CLOSED.value)

_DISPATCH_COLUMNS = (
    ("case_id", "TEXT NOT NULL"),
    ("ordinal", "INTEGER NOT NULL"),
    ("department", "TEXT NOT NULL"),
    ("grid_cell", "TEXT"),
    ("category", "TEXT NOT NULL"),
    ("stage", "TEXT NOT NULL"),
    ("dispatched_at", "TEXT NOT NULL"),
    ("deadline", "TEXT"),
    ("handled_at", "TEXT"),
    ("on_time", "BOOLEAN"),
    # Whole microseconds: integer sums are exact and the same in every database.
    ("handling_us", "BIGINT"),
    ("reworks_at_dispatch", "INTEGER NOT NULL"),
    ("reworks", "INTEGER NOT NULL"),
    # The case passed its verification in this dispatch (verified, not yet closed): stored,
    # so that counting the verified dispatches never looks the case up row by row.
    ("verified", "BOOLEAN NOT NULL"),
)
_REWORKS_AT_DISPATCH = 11
DISPATCH_COLUMNS = tuple(name for name, _ in _DISPATCH_COLUMNS)
DISPATCH_COUNTED = ("stage", "on_time", "deadline", "reworks", "reworks_at_dispatch",
                     "handling_us", "verified")
"""The columns the figures count (after the cell or department, in the covering indexes)."""
CASE_STATISTICS_INDEX = ("grid_cell", "status", "is_open", "frozen_light", "yellow_at",
                         "red_at")
"""The columns of rm_grid_cases the statistics read: an index over them covers the query."""
CASE_LIGHTS_INDEX = ("status", "department", "is_open", "frozen_light", "yellow_at", "red_at")
"""The columns the lights of the cases each department holds read (`departments`): indexed,
and in the history after the interval, so that the question now and at a past instant is
answered from an index, not from the rows' documents (bench/time_travel.py)."""


def _yes_no(condition: str, unknown: str | None = None) -> str:
    """SQL naming a condition's truth in a tally group ('yes', 'no'; '' where `unknown`)."""
    if unknown is None:
        return f"CASE WHEN {condition} THEN 'yes' ELSE 'no' END"
    return f"CASE WHEN {unknown} THEN '' WHEN {condition} THEN 'yes' ELSE 'no' END"


_CELL = "COALESCE(grid_cell, '')"
"""A case's unit grid cell in a tally ('': located outside the grid). Grouped by cell, the
tallies answer the figures per cell and area as well as the city's: the groups grow with
the cells and the open cases' hours, not with the history."""


GRID_CASE_TALLY = Tally(
    table="tally_grid_cases",
    source="rm_grid_cases",
    key="id",
    groups=(
        ("grid_cell", _CELL),
        ("status", "status"),
        ("is_open", _yes_no("is_open")),
        # The department holding an open case (dispatched or suspended to it): its lights.
        ("holder", f"CASE WHEN is_open AND status IN ('{CaseStatus.DISPATCHED.value}', "
                   f"'{CaseStatus.SUSPENDED.value}') THEN COALESCE(department, '') ELSE '' END"),
        ("frozen_light", "CASE WHEN is_open THEN COALESCE(frozen_light, '') ELSE '' END"),
    ),
    instants=(Instant("yellow_at", "is_open AND frozen_light IS NULL"),
              Instant("red_at", "is_open AND frozen_light IS NULL")),
    sums=(("rows", "1"),),
)
"""Grid cases by cell and state, and the open ones by the hours their light turns yellow
and red."""

DISPATCH_TALLY = Tally(
    table="tally_case_dispatches",
    source=DISPATCH_TABLE,
    key="case_id",
    groups=(
        ("grid_cell", _CELL),
        ("department", "department"),
        ("stage", "stage"),
        ("on_time", _yes_no("on_time", unknown="on_time IS NULL")),
        ("verified", _yes_no("verified")),
        ("reworked", _yes_no("reworks > reworks_at_dispatch")),
    ),
    instants=(Instant("deadline", f"stage = '{DispatchStage.WITH_DEPARTMENT.value}'"),),
    sums=(("rows", "1"), ("reworks", "reworks - reworks_at_dispatch"),
          ("handling_us", "COALESCE(handling_us, 0)"),
          ("handlings", "CASE WHEN handling_us IS NULL THEN 0 ELSE 1 END")),
)
"""Dispatches by cell, department and outcome, those with the department by their
deadline's hour."""

TICKET_TALLY = Tally(
    table="tally_tickets",
    source="rm_tickets",
    key="id",
    groups=(
        # Merged duplicates are counted apart (the figures leave them out), so that the
        # tally counts every row of the table (`SummaryTable.row_count`).
        ("merged", _yes_no("status = 'merged'")),
        ("department", "COALESCE(department, '')"),
        ("is_open", _yes_no("is_open")),
        ("replied", _yes_no("replied_at IS NOT NULL")),
        ("replied_on_time", _yes_no("replied_on_time", unknown="replied_on_time IS NULL")),
        ("satisfaction", "COALESCE(satisfaction, '')"),
    ),
    instants=(Instant("reply_deadline", "is_open AND replied_at IS NULL"),),
    sums=(("rows", "1"),),
)
"""Hotline tickets by department, reply and evaluation (merged ones apart), the open
unreplied ones by their reply deadline's hour."""


def dispatch_row(case: GridCase) -> tuple[Any, ...] | None:
    """The row of the case's current dispatch (None before its first one), from its state.

    A case's dispatches are numbered by its dispatch count; each event updates the row of the
    dispatch in force, so a returned dispatch keeps the state it was returned in. Reworks are
    counted as the case's rework count now minus the count when the dispatch began (kept
    from the row's first write).
    """
    if case.dispatch_count == 0:
        return None
    stage = _STAGE_OF_STATUS.get(case.status)
    department = case.department or case.returned_by
    if stage is None or department is None or case.dispatched_at is None:
        raise InvalidValue(f"grid case {case.id} has been dispatched {case.dispatch_count} "
                           f"times but is {case.status.value} with no department")
    done = stage.value in _DONE
    handled_at = case.handled_at if done else None
    return (
        str(case.id),
        case.dispatch_count,
        department,
        case.grid_cell,
        case.category,
        stage.value,
        utc_text(case.dispatched_at),
        utc_text(case.handling_deadline),
        utc_text(handled_at),
        case.handled_on_time if done else None,
        (handled_at - case.dispatched_at) // MICROSECOND if handled_at is not None else None,
        case.rework_count,
        case.rework_count,
        case.status is CaseStatus.VERIFIED,
    )


@dataclass(frozen=True)
class CaseDispatchTable:
    """One row per dispatch of a grid case to a department: what the department was sent and
    what it did with it (the per-department evaluation of digital city management)."""

    table: str = DISPATCH_TABLE
    aggregate_class: type[Aggregate] = GridCase
    tallies: tuple[Tally, ...] = (DISPATCH_TALLY,)

    def ddl(self, dialect: str) -> list[str]:
        columns = ", ".join(f"{name} {sql_type}" for name, sql_type in _DISPATCH_COLUMNS)
        counted = ", ".join(DISPATCH_COUNTED)
        # Covering indexes: the figures per cell and per department are counted from them.
        return [
            f"CREATE TABLE IF NOT EXISTS {self.table} ({columns}, "
            "PRIMARY KEY (case_id, ordinal))",
            f"CREATE INDEX IF NOT EXISTS {self.table}_department_idx "
            f"ON {self.table} (department, {counted})",
            f"CREATE INDEX IF NOT EXISTS {self.table}_grid_cell_idx "
            f"ON {self.table} (grid_cell, {counted})",
            *(statement for tally in self.tallies for statement in tally.ddl(dialect)),
        ]

    def batch(self) -> CaseDispatchRows:
        return CaseDispatchRows(self)

    def upsert_rows(self, txn: Transaction, rows: Sequence[Sequence[Any]]) -> None:
        """Write dispatch rows; the rework count at the start of a dispatch is written once."""
        if not rows:
            return
        names = [name for name, _ in _DISPATCH_COLUMNS]
        updates = ", ".join(f"{n} = excluded.{n}" for n in names
                            if n not in ("case_id", "ordinal", "reworks_at_dispatch"))
        with kept(txn, self.tallies, sorted({row[0] for row in rows})):
            txn.executemany(
                f"INSERT INTO {self.table} ({', '.join(names)}) "
                f"VALUES ({', '.join(['%s'] * len(names))}) "
                f"ON CONFLICT (case_id, ordinal) DO UPDATE SET {updates}",
                rows,
            )


class CaseDispatchRows:
    """The dispatch rows of one batch: read from the case after every event (a dispatch
    ends when the next begins, possibly within the batch), the last state of each kept."""

    def __init__(self, table: CaseDispatchTable) -> None:
        self.table = table
        self._rows: dict[tuple[str, int], tuple[Any, ...]] = {}

    def add(self, event: Any, aggregate: Any) -> None:
        row = dispatch_row(aggregate)
        if row is None:
            return
        key = (row[0], row[1])
        first = self._rows.get(key)
        if first is not None:
            # Within a batch the first state of a new dispatch holds its starting rework
            # count; for an existing row the database keeps it (the upsert never updates it).
            row = (*row[:_REWORKS_AT_DISPATCH], first[_REWORKS_AT_DISPATCH],
                   *row[_REWORKS_AT_DISPATCH + 1:])
        self._rows[key] = row

    def write(self, txn: Transaction) -> None:
        self.table.upsert_rows(txn, list(self._rows.values()))


# --- figures --------------------------------------------------------------------------------


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


@dataclass(frozen=True)
class LightCounts:
    """Open cases by the supervision light they show now."""

    green: int = 0
    yellow: int = 0
    red: int = 0

    def __add__(self, other: LightCounts) -> LightCounts:
        return LightCounts(self.green + other.green, self.yellow + other.yellow,
                           self.red + other.red)

    def as_dict(self) -> dict[str, int]:
        return {"green": self.green, "yellow": self.yellow, "red": self.red}


@dataclass(frozen=True)
class DispatchFigures:
    """What departments did with the cases dispatched to them.

    `overdue` counts dispatches handled after their deadline and those still with the
    department past it (a suspended case's clock stands still, so it is not counted);
    `on_time_rate` is on time / (on time + overdue). The rework rate is reworked / verified:
    of the dispatches whose result an inspector checked on site (fixed or not), the share
    sent back as rework. The returned rate is per dispatch; the average handling time runs
    from dispatch to the (last) handling report. Formulas: docs/indicators.md.
    """

    dispatched: int = 0
    with_department: int = 0
    handled: int = 0
    closed: int = 0
    on_time: int = 0
    handled_late: int = 0
    overdue_open: int = 0
    reworked: int = 0
    reworks: int = 0
    returned: int = 0
    handling_us: int = 0
    """Total handling time of the handled dispatches, in microseconds."""
    handling_count: int = 0
    verified: int = 0
    """Dispatches whose handling went through verification on site at least once (found
    fixed, or sent back as rework)."""

    def __add__(self, other: DispatchFigures) -> DispatchFigures:
        return DispatchFigures(**{f.name: getattr(self, f.name) + getattr(other, f.name)
                                  for f in fields(self)})

    @property
    def overdue(self) -> int:
        return self.handled_late + self.overdue_open

    @property
    def on_time_rate(self) -> float | None:
        return _rate(self.on_time, self.on_time + self.overdue)

    @property
    def rework_rate(self) -> float | None:
        """Reworked / verified: a rework order is a failed verification, so only the
        dispatches that were verified could have been reworked."""
        return _rate(self.reworked, self.verified)

    @property
    def returned_rate(self) -> float | None:
        return _rate(self.returned, self.dispatched)

    @property
    def average_handling_seconds(self) -> float | None:
        if not self.handling_count:
            return None
        return self.handling_us / self.handling_count / 1_000_000

    def as_dict(self) -> dict[str, Any]:
        return {
            "dispatched": self.dispatched,
            "with_department": self.with_department,
            "handled": self.handled,
            "closed": self.closed,
            "on_time": self.on_time,
            "overdue": self.overdue,
            "handled_late": self.handled_late,
            "overdue_open": self.overdue_open,
            "verified": self.verified,
            "reworked": self.reworked,
            "reworks": self.reworks,
            "returned": self.returned,
            "on_time_rate": self.on_time_rate,
            "rework_rate": self.rework_rate,
            "returned_rate": self.returned_rate,
            "average_handling_seconds": self.average_handling_seconds,
        }


class AreaLevel(StrEnum):
    """The levels of the unit grid: a code is its parent's code plus one part."""

    DISTRICT = "district"
    STREET = "street"
    COMMUNITY = "community"
    CELL = "cell"

    @property
    def parts(self) -> int:
        return list(AreaLevel).index(self) + 1

    def code_of(self, cell: str) -> str:
        """The code of the area at this level that contains `cell`."""
        parts = cell.split(CODE_SEPARATOR)
        if len(parts) < self.parts:
            raise InvalidValue(f"grid code {cell!r} has no {self.value} part")
        return CODE_SEPARATOR.join(parts[: self.parts])


@dataclass(frozen=True)
class CaseFigures:
    """Grid cases of one area (or one department): counts, lights now, and dispatches."""

    reported: int = 0
    open: int = 0
    closed: int = 0
    rejected: int = 0
    lights: LightCounts = field(default_factory=LightCounts)
    dispatches: DispatchFigures = field(default_factory=DispatchFigures)

    def __add__(self, other: CaseFigures) -> CaseFigures:
        return CaseFigures(self.reported + other.reported, self.open + other.open,
                           self.closed + other.closed, self.rejected + other.rejected,
                           self.lights + other.lights, self.dispatches + other.dispatches)

    def as_dict(self) -> dict[str, Any]:
        return {"reported": self.reported, "open": self.open, "closed": self.closed,
                "rejected": self.rejected, "lights": self.lights.as_dict(),
                "dispatches": self.dispatches.as_dict()}


@dataclass(frozen=True)
class AreaFigures:
    """The figures of one district, street, community or cell."""

    level: AreaLevel
    code: str
    figures: CaseFigures

    def as_dict(self) -> dict[str, Any]:
        return {"level": self.level.value, "code": self.code, **self.figures.as_dict()}


@dataclass(frozen=True)
class DepartmentFigures:
    """The figures of one department: the lights of the open cases it holds, and what it did
    with every case dispatched to it."""

    department: str
    lights: LightCounts
    dispatches: DispatchFigures
    returns: ReturnFigures = field(default_factory=ReturnFigures)
    """The cases it returned as not its own, and the centre's review of them."""

    def as_dict(self) -> dict[str, Any]:
        return {"department": self.department, "lights": self.lights.as_dict(),
                **self.dispatches.as_dict(), **self.returns.as_dict()}


@dataclass(frozen=True)
class Durations:
    """Count, mean, p50 and p90 of one response interval, in seconds."""

    count: int
    mean_s: float | None
    p50_s: float | None
    p90_s: float | None

    @classmethod
    def of(cls, statistics: DurationStatistics) -> Durations:
        def seconds(value: timedelta | None) -> float | None:
            return value.total_seconds() if value is not None else None

        return cls(statistics.count, seconds(statistics.mean), seconds(statistics.p50),
                   seconds(statistics.p90))

    def as_dict(self) -> dict[str, Any]:
        return {"count": self.count, "mean_s": self.mean_s, "p50_s": self.p50_s,
                "p90_s": self.p90_s}


RESPONSE_STAGES = ("dispatch", "on_scene", "contained", "closed")
"""Report -> first resource dispatched -> first on scene -> contained -> closed."""


@dataclass(frozen=True)
class IncidentFigures:
    """Incidents by category, level and status, and response times from the report."""

    total: int
    open: int
    by_category: dict[str, int]
    by_level: dict[str, int]
    by_status: dict[str, int]
    open_by_category: dict[str, int]
    open_by_level: dict[str, int]
    response_times: dict[str, Durations]
    """Seconds from the report to each stage of `RESPONSE_STAGES`."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": self.total, "open": self.open, "by_category": self.by_category,
            "by_level": self.by_level, "by_status": self.by_status,
            "open_by_category": self.open_by_category, "open_by_level": self.open_by_level,
            "response_times": {k: v.as_dict() for k, v in self.response_times.items()},
        }


@dataclass(frozen=True)
class HotlineFigures:
    """Hotline tickets (merged duplicates left out) of one department or of all."""

    tickets: int = 0
    open: int = 0
    replied: int = 0
    replied_on_time: int = 0
    replied_late: int = 0
    overdue_unreplied: int = 0
    satisfied: int = 0
    basically_satisfied: int = 0
    dissatisfied: int = 0
    # The tickets the department returned as not its matter, and the centre's review of them
    # (counted against the returning department, wherever the ticket went next).
    returns_made: int = 0
    returns_awaiting_review: int = 0
    returns_accepted: int = 0
    returns_rejected: int = 0
    returns_lapsed: int = 0

    def __add__(self, other: HotlineFigures) -> HotlineFigures:
        return HotlineFigures(**{f.name: getattr(self, f.name) + getattr(other, f.name)
                                 for f in fields(self)})

    @property
    def on_time_reply_rate(self) -> float | None:
        """Replied on time / (replied + open past the reply deadline)."""
        return _rate(self.replied_on_time,
                     self.replied_on_time + self.replied_late + self.overdue_unreplied)

    @property
    def satisfaction_rate(self) -> float | None:
        """(Satisfied + basically satisfied) / callers who gave an answer."""
        rated = self.satisfied + self.basically_satisfied + self.dissatisfied
        return _rate(self.satisfied + self.basically_satisfied, rated)

    @property
    def returns(self) -> ReturnFigures:
        return ReturnFigures(**{f.name: getattr(self, f.name) for f in fields(ReturnFigures)})

    def as_dict(self) -> dict[str, Any]:
        return {**{f.name: getattr(self, f.name) for f in fields(self)},
                "on_time_reply_rate": self.on_time_reply_rate,
                "satisfaction_rate": self.satisfaction_rate,
                "returns_reviewed": self.returns.returns_reviewed,
                "dispute_rate": self.returns.dispute_rate}


@dataclass(frozen=True)
class KeyFigures:
    """The leader's overview: lights of the open cases, departments' on-time rates,
    incidents by category, the hotline's reply and satisfaction rates."""

    at: datetime
    cases: CaseFigures
    departments: list[DepartmentFigures]
    incidents: IncidentFigures
    hotline: HotlineFigures

    def as_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "open_cases_by_light": self.cases.lights.as_dict(),
            "cases": self.cases.as_dict(),
            "on_time_rate_by_department": {d.department: d.dispatches.on_time_rate
                                           for d in self.departments},
            "incidents_by_category": self.incidents.by_category,
            "open_incidents_by_category": self.incidents.open_by_category,
            "hotline": self.hotline.as_dict(),
        }


# --- queries --------------------------------------------------------------------------------


def _light_sums(now_text: str | None, prefix: str = "") -> tuple[str, list[Any]]:
    """SUM expressions counting open rows of rm_grid_cases by their light at `now` (the
    same rule as `ReadModels.grid_case_lights`, and as the domain's `light_at`)."""
    p = prefix
    sql = (
        f"SUM(CASE WHEN {p}is_open AND ({p}frozen_light = 'green' OR ({p}frozen_light IS NULL "
        f"AND {p}yellow_at > %s)) THEN 1 ELSE 0 END), "
        f"SUM(CASE WHEN {p}is_open AND ({p}frozen_light = 'yellow' OR ({p}frozen_light IS NULL"
        f" AND {p}yellow_at <= %s AND {p}red_at >= %s)) THEN 1 ELSE 0 END), "
        f"SUM(CASE WHEN {p}is_open AND ({p}frozen_light = 'red' OR ({p}frozen_light IS NULL "
        f"AND {p}red_at < %s)) THEN 1 ELSE 0 END)"
    )
    return sql, [now_text] * 4


# One row per cell (or department) with every count, so that the database does the
# counting; the covering indexes (`CASE_STATISTICS_INDEX`, and the dispatch table's) let it
# count from the index alone, without reading the rows' documents.
_CASE_SUMS = (
    "COUNT(*), SUM(CASE WHEN is_open THEN 1 ELSE 0 END), "
    "SUM(CASE WHEN status = 'closed' THEN 1 ELSE 0 END), "
    "SUM(CASE WHEN status = 'rejected' THEN 1 ELSE 0 END)"
)
_DISPATCH_SUMS = (
    "COUNT(*), "
    "SUM(CASE WHEN stage IN ('with-department', 'suspended') THEN 1 ELSE 0 END), "
    "SUM(CASE WHEN stage IN ('handled', 'closed') THEN 1 ELSE 0 END), "
    "SUM(CASE WHEN stage = 'closed' THEN 1 ELSE 0 END), "
    "SUM(CASE WHEN stage IN ('handled', 'closed') AND on_time THEN 1 ELSE 0 END), "
    "SUM(CASE WHEN stage IN ('handled', 'closed') AND NOT on_time THEN 1 ELSE 0 END), "
    "SUM(CASE WHEN stage = 'with-department' AND deadline < %s THEN 1 ELSE 0 END), "
    "SUM(CASE WHEN reworks > reworks_at_dispatch THEN 1 ELSE 0 END), "
    "SUM(reworks - reworks_at_dispatch), "
    "SUM(CASE WHEN stage = 'returned' THEN 1 ELSE 0 END), "
    "SUM(handling_us), COUNT(handling_us), "
    # Verified: a failed verification is a rework order; a passed one leaves the case
    # verified (the dispatch still 'handled'), then closed (closing needs a verification).
    "SUM(CASE WHEN reworks > reworks_at_dispatch OR stage = 'closed' OR (stage = 'handled' "
    "AND verified) THEN 1 ELSE 0 END)"
)

# Counts are gathered as vectors (cheap to add up from cells to districts) and become
# dataclasses once, at the end: reported, open, closed, rejected, green, yellow, red, then
# the `DispatchFigures` fields in their order.
_CASE_COUNTS = 4
_LIGHTS = 3
_DISPATCH_FIELDS = 13
_VECTOR = _CASE_COUNTS + _LIGHTS + _DISPATCH_FIELDS


def _ints(values: Sequence[Any]) -> list[int]:
    return [int(v or 0) for v in values]


def _add_into(total: list[int], vector: Sequence[int]) -> None:
    for index, value in enumerate(vector):
        total[index] += value


def _case_figures(vector: Sequence[int]) -> CaseFigures:
    lights = _CASE_COUNTS + _LIGHTS
    return CaseFigures(reported=vector[0], open=vector[1], closed=vector[2],
                       rejected=vector[3], lights=LightCounts(*vector[_CASE_COUNTS:lights]),
                       dispatches=DispatchFigures(*vector[lights:]))


def _now_text(now: datetime) -> str:
    if now.tzinfo is None:
        raise InvalidValue("statistics need an aware time (with its UTC offset)")
    text = utc_text(now)
    assert text is not None
    return text


_TALLIED_LIGHTS = tuple(
    f"CASE WHEN is_open = 'yes' AND (frozen_light = '{light}' OR (frozen_light = '' AND "
    f"{turned})) THEN rows ELSE 0 END"
    for light, turned in (("green", "yellow_at = 1"),
                          ("yellow", "yellow_at <= 0 AND red_at >= 0"),
                          ("red", "red_at = -1")))
"""Green, yellow, red: the open cases of a group of the grid-case tally by their light now
(the rule of `_light_sums`, over instants before (-1), at (0) or after (+1) now)."""

_TALLIED_CASES = (
    "rows",
    "CASE WHEN is_open = 'yes' THEN rows ELSE 0 END",
    f"CASE WHEN status = '{CaseStatus.CLOSED.value}' THEN rows ELSE 0 END",
    f"CASE WHEN status = '{CaseStatus.REJECTED.value}' THEN rows ELSE 0 END",
    *_TALLIED_LIGHTS,
)
"""A group of the grid-case tally as the first fields of a figures vector (the rule of
`_CASE_SUMS`, then the lights)."""

_TALLIED_DISPATCHES = (
    "rows",
    "CASE WHEN stage IN ('with-department', 'suspended') THEN rows ELSE 0 END",
    "CASE WHEN stage IN ('handled', 'closed') THEN rows ELSE 0 END",
    "CASE WHEN stage = 'closed' THEN rows ELSE 0 END",
    "CASE WHEN stage IN ('handled', 'closed') AND on_time = 'yes' THEN rows ELSE 0 END",
    "CASE WHEN stage IN ('handled', 'closed') AND on_time = 'no' THEN rows ELSE 0 END",
    "CASE WHEN stage = 'with-department' AND deadline = -1 THEN rows ELSE 0 END",
    "CASE WHEN reworked = 'yes' THEN rows ELSE 0 END",
    "reworks",
    "CASE WHEN stage = 'returned' THEN rows ELSE 0 END",
    "handling_us",
    "handlings",
    "CASE WHEN reworked = 'yes' OR stage = 'closed' OR (stage = 'handled' "
    "AND verified = 'yes') THEN rows ELSE 0 END",
)
"""A group of the dispatch tally as the `DispatchFigures` fields (the rule of
`_DISPATCH_SUMS`, over the group's values and its deadline before (-1) or after now)."""


def _tallied_tickets(group: TallyGroup) -> HotlineFigures:
    """The figures of a group of tickets not merged (the rule of `hotline_departments`'
    query)."""
    rows, values = group.rows, group.values
    satisfaction = values["satisfaction"]
    return HotlineFigures(*(rows if counted else 0 for counted in (
        True,
        values["is_open"] == "yes",
        values["replied"] == "yes",
        values["replied_on_time"] == "yes",
        values["replied_on_time"] == "no",
        values["is_open"] == "yes" and values["replied"] == "no"
        and group.when["reply_deadline"] == -1,
        satisfaction == "satisfied",
        satisfaction == "basically-satisfied",
        satisfaction == "dissatisfied",
    )))


def _vectors(cases: Iterable[Sequence[Any]],
             dispatches: Iterable[Sequence[Any]]) -> dict[str | None, list[int]]:
    """Figures vectors by key ('' or None: outside the grid, or no key) from rows of a key
    and its case counts and lights, and rows of a key and its dispatch figures."""
    vectors: dict[str | None, list[int]] = {}
    for key, *counts in cases:
        vectors[key or None] = [*_ints(counts), *[0] * _DISPATCH_FIELDS]
    for key, *counts in dispatches:
        vector = vectors.setdefault(key or None, [0] * _VECTOR)
        vector[_CASE_COUNTS + _LIGHTS:] = _ints(counts)
    return vectors


def _keyed(cases: dict[tuple[str, ...], list[int]],
           dispatches: dict[tuple[str, ...], list[int]]) -> dict[str | None, list[int]]:
    """`_vectors` of what `Tally.summed` gives by one group's values, or in all."""
    return _vectors(((key[0] if key else None, *counts) for key, counts in cases.items()),
                    ((key[0] if key else None, *counts) for key, counts in dispatches.items()))


def _summed(vectors: Iterable[Sequence[int]]) -> CaseFigures:
    total = [0] * _VECTOR
    for vector in vectors:
        _add_into(total, vector)
    return _case_figures(total)


class CityStatistics:
    """The statistics queries, over the read models being served (any generation)."""

    def __init__(self, store: ReadStore, *, tallied: bool = True) -> None:
        # The system gives the active generation's store, which follows a switch-over.
        self.store = store
        self.tallied = tallied
        """Whole-city and per-department figures from the tallies (`tallies.py`); False
        for the read models at a past instant (`PastStore`), which have none: they are
        counted from the rows."""

    # --- grid cases ---------------------------------------------------------------------

    def _cell_vectors(self, now: datetime) -> dict[str | None, list[int]]:
        now_text = _now_text(now)
        if self.tallied:
            return _keyed(*self._tallied(now_text, "grid_cell", "grid_cell"))
        lights, light_params = _light_sums(now_text)
        with self.store.transaction() as txn:
            txn.execute(f"SELECT grid_cell, {_CASE_SUMS}, {lights} FROM rm_grid_cases "
                        "GROUP BY grid_cell", light_params)
            cases = txn.fetchall()
            txn.execute(f"SELECT grid_cell, {_DISPATCH_SUMS} FROM {DISPATCH_TABLE} "
                        "GROUP BY grid_cell", [now_text])
            return _vectors(cases, txn.fetchall())

    def cells(self, now: datetime) -> dict[str | None, CaseFigures]:
        """Figures per unit grid cell (None: cases located outside the grid)."""
        return {cell: _case_figures(v) for cell, v in self._cell_vectors(now).items()}

    def areas(self, level: AreaLevel, now: datetime,
              within: str | None = None) -> list[AreaFigures]:
        """Figures per area of `level` (optionally only inside the area coded `within`),
        summed from the figures per cell; ordered by code."""
        totals: dict[str, list[int]] = {}
        for cell, vector in self._cell_vectors(now).items():
            if cell is None:
                continue
            if within and not (cell == within or cell.startswith(within + CODE_SEPARATOR)):
                continue
            _add_into(totals.setdefault(level.code_of(cell), [0] * _VECTOR), vector)
        return [AreaFigures(level, code, _case_figures(totals[code])) for code in sorted(totals)]

    def city(self, now: datetime) -> CaseFigures:
        """Figures of the whole city (cases outside the grid included)."""
        if self.tallied:
            return _summed(_keyed(*self._tallied(_now_text(now))).values())
        return _summed(self._cell_vectors(now).values())

    def _tallied(self, now_text: str, cases_by: str | None = None,
                 dispatches_by: str | None = None
                 ) -> tuple[dict[tuple[str, ...], list[int]], dict[tuple[str, ...], list[int]]]:
        """The grid-case tally's counts and lights (`_TALLIED_CASES`) and the dispatch
        tally's figures (`_TALLIED_DISPATCHES`) at `now_text`, by the values of one of each
        tally's groups, or in all."""
        with self.store.transaction() as txn:
            return (GRID_CASE_TALLY.summed(txn, now_text, _TALLIED_CASES,
                                           (cases_by,) if cases_by else ()),
                    DISPATCH_TALLY.summed(txn, now_text, _TALLIED_DISPATCHES,
                                          (dispatches_by,) if dispatches_by else ()))

    def departments(self, now: datetime) -> list[DepartmentFigures]:
        """Figures per department the cases were dispatched to, ordered by name."""
        now_text = _now_text(now)
        if self.tallied:
            return self._tallied_departments(now_text)[1]
        lights, light_params = _light_sums(now_text)
        with self.store.transaction() as txn:
            txn.execute(f"SELECT department, {_DISPATCH_SUMS} FROM {DISPATCH_TABLE} "
                        "GROUP BY department", [now_text])
            dispatches = {row[0]: DispatchFigures(*_ints(row[1:])) for row in txn.fetchall()}
            # The lights of the cases each department holds now: dispatched or suspended
            # (the stages of a dispatch with the department), among the open cases only.
            txn.execute(
                f"SELECT department, {lights} FROM rm_grid_cases WHERE is_open = %s "
                "AND status IN (%s, %s) GROUP BY department",
                [*light_params, True, CaseStatus.DISPATCHED.value, CaseStatus.SUSPENDED.value],
            )
            held = {row[0]: LightCounts(*_ints(row[1:])) for row in txn.fetchall()}
            returned = return_figures(txn, CASE_RETURNS_TABLE)
        return [DepartmentFigures(name, held.get(name, LightCounts()), dispatches[name],
                                  returned.get(name, ReturnFigures()))
                for name in sorted(dispatches)]

    def _tallied_departments(self, now_text: str) -> tuple[CaseFigures,
                                                           list[DepartmentFigures]]:
        """The city's figures and each department's, from the tallies by the department
        holding a case and by the department of a dispatch."""
        cases, dispatches = self._tallied(now_text, "holder", "department")
        lights = slice(_CASE_COUNTS, _CASE_COUNTS + _LIGHTS)
        with self.store.transaction() as txn:
            returned = return_figures(txn, CASE_RETURNS_TABLE)
        departments = [
            DepartmentFigures(name, LightCounts(*cases.get((name,), [0] * _VECTOR)[lights]),
                              DispatchFigures(*counts), returned.get(name, ReturnFigures()))
            for (name,), counts in sorted(dispatches.items())]
        return _summed(_keyed(cases, dispatches).values()), departments

    # --- incidents ----------------------------------------------------------------------

    def incidents(self) -> IncidentFigures:
        """Incidents by category, level and status; response times from the report to each
        stage, measured from the incidents' own times and the resources' status history."""
        with self.store.transaction() as txn:
            txn.execute("SELECT category, level, status, is_open, COUNT(*) FROM rm_incidents "
                        "GROUP BY category, level, status, is_open")
            groups = txn.fetchall()
            # The times the response is measured by, not the whole documents (their plans
            # and tasks): reading and decoding those was most of this question's cost.
            txn.execute("SELECT id, status, reported_at, contained_at, closed_at "
                        "FROM rm_incidents")
            incidents = [dict(zip(_INCIDENT_TIMES, row, strict=True))
                         for row in txn.fetchall()]
            txn.execute("SELECT doc FROM rm_resources")
            resources = [row_document(row[0]) for row in txn.fetchall()]
        by_category: dict[str, int] = {}
        by_level: dict[str, int] = {}
        by_status: dict[str, int] = {}
        open_by_category: dict[str, int] = {}
        open_by_level: dict[str, int] = {}
        total = opened = 0
        for category, level, status, is_open, rows in groups:
            count = int(rows)
            total += count
            _add(by_category, category, count)
            _add(by_level, level, count)
            _add(by_status, status, count)
            if is_open:
                opened += count
                _add(open_by_category, category, count)
                _add(open_by_level, level, count)
        return IncidentFigures(
            total=total, open=opened, by_category=by_category, by_level=by_level,
            by_status=by_status, open_by_category=open_by_category, open_by_level=open_by_level,
            response_times=response_times(incidents, resources),
        )

    # --- hotline ------------------------------------------------------------------------

    def hotline_departments(self, now: datetime) -> dict[str | None, HotlineFigures]:
        """Hotline figures per department the tickets are assigned to (None: not assigned,
        answered at first contact or transferred)."""
        now_text = _now_text(now)
        if self.tallied:
            figures: dict[str | None, HotlineFigures] = {}
            with self.store.transaction() as txn:
                for group in TICKET_TALLY.read(txn, now_text):
                    if group.values["merged"] == "yes":
                        continue  # merged duplicates are not counted
                    department = group.values["department"] or None
                    figures[department] = figures.get(department, HotlineFigures()) \
                        + _tallied_tickets(group)
                returned = return_figures(txn, TICKET_RETURNS_TABLE)
            return _with_returns(figures, returned)
        with self.store.transaction() as txn:
            txn.execute(
                "SELECT department, COUNT(*), "
                "SUM(CASE WHEN is_open THEN 1 ELSE 0 END), "
                "SUM(CASE WHEN replied_at IS NOT NULL THEN 1 ELSE 0 END), "
                "SUM(CASE WHEN replied_on_time THEN 1 ELSE 0 END), "
                "SUM(CASE WHEN NOT replied_on_time THEN 1 ELSE 0 END), "
                "SUM(CASE WHEN is_open AND replied_at IS NULL AND reply_deadline < %s "
                "THEN 1 ELSE 0 END), "
                "SUM(CASE WHEN satisfaction = 'satisfied' THEN 1 ELSE 0 END), "
                "SUM(CASE WHEN satisfaction = 'basically-satisfied' THEN 1 ELSE 0 END), "
                "SUM(CASE WHEN satisfaction = 'dissatisfied' THEN 1 ELSE 0 END) "
                "FROM rm_tickets WHERE status <> 'merged' GROUP BY department",
                [now_text],
            )
            rows = txn.fetchall()
            returned = return_figures(txn, TICKET_RETURNS_TABLE)
        return _with_returns({row[0]: HotlineFigures(*(int(v or 0) for v in row[1:]))
                              for row in rows}, returned)

    def hotline(self, now: datetime) -> HotlineFigures:
        """Hotline figures of all tickets."""
        total = HotlineFigures()
        for figures in self.hotline_departments(now).values():
            total = total + figures
        return total

    def key_figures(self, now: datetime) -> KeyFigures:
        """The leader's overview at `now` (the tallies read once for the city and its
        departments)."""
        if not self.tallied:
            return KeyFigures(at=now, cases=self.city(now), departments=self.departments(now),
                              incidents=self.incidents(), hotline=self.hotline(now))
        city, departments = self._tallied_departments(_now_text(now))
        return KeyFigures(at=now, cases=city, departments=departments,
                          incidents=self.incidents(), hotline=self.hotline(now))


def _with_returns(figures: dict[str | None, HotlineFigures],
                  returned: dict[str, ReturnFigures]) -> dict[str | None, HotlineFigures]:
    """A return counts for the department that made it, wherever the ticket went next."""
    for department, returns in returned.items():
        figures[department] = replace(figures.get(department, HotlineFigures()),
                                      **returns.counts())
    return figures


_INCIDENT_TIMES = ("id", "status", "reported_at", "contained_at", "closed_at")
"""What `response_times` reads of each incident."""


def _add(counts: dict[str, int], key: Any, count: int) -> None:
    counts[str(key)] = counts.get(str(key), 0) + count



def _time(text: str | None) -> datetime | None:
    # Aware times: their differences are exact whatever their offsets.
    return datetime.fromisoformat(text) if text else None


def response_times(incidents: Iterable[dict[str, Any]],
                   resources: Iterable[dict[str, Any]]) -> dict[str, Durations]:
    """Seconds from each incident's report to its first resource dispatched, its first
    arrival on scene (from the resources' status histories, with `response_times`), its
    containment and its closing; dismissed incidents are left out."""
    by_incident: dict[str, list[Any]] = {}
    for resource in resources:
        history = [StatusChange(ResourceStatus(h["status"]), datetime.fromisoformat(h["at"]),
                                UUID(h["incident_id"]) if h.get("incident_id") else None)
                   for h in resource.get("history", [])]
        for assignment in assignments(history):
            by_incident.setdefault(str(assignment.incident_id), []).append(assignment)
    spans: dict[str, list[timedelta | None]] = {stage: [] for stage in RESPONSE_STAGES}
    for incident in incidents:
        if incident.get("status") == "dismissed":
            continue
        reported = _time(incident["reported_at"])
        assert reported is not None
        served = by_incident.get(incident["id"])
        if served:
            first_dispatch = min(a.dispatched_at for a in served)
            spans["dispatch"].append(first_dispatch - reported)
            spans["on_scene"].append(response_time(reported, served))
        else:
            spans["dispatch"].append(None)
            spans["on_scene"].append(None)
        for stage, key in (("contained", "contained_at"), ("closed", "closed_at")):
            moment = _time(incident.get(key))
            spans[stage].append(moment - reported if moment else None)
    return {stage: Durations.of(duration_statistics(values)) for stage, values in spans.items()}
