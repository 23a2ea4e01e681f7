"""Reference data, loaded and validated at start-up: the grid-case category catalogue, incident
categories and levels, departments, resource kinds, hotline topics, the business calendar and
the routing rules. It is data (JSON files), never hard-coded in logic; a bad file is refused
at start-up with the file and the place of the error.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cityops.domain.calendar import BusinessCalendar, WorkingPeriod
from cityops.domain.errors import CatalogueError, InvalidValue


class Urgency(StrEnum):
    """How fast a grid case must be handled; each category has a time limit per urgency."""

    URGENT = "urgent"
    NORMAL = "normal"


class CaseClass(StrEnum):
    """Components are fixed city assets; events are things that happen."""

    COMPONENT = "component"
    EVENT = "event"


class LimitUnit(StrEnum):
    HOURS = "hours"
    """Clock hours, round the clock (urgent matters)."""
    WORKING_HOURS = "working_hours"
    WORKING_DAYS = "working_days"


@dataclass(frozen=True)
class TimeLimit:
    """A handling time limit such as 2 hours or 3 working days."""

    amount: float
    unit: LimitUnit

    def deadline(self, start: datetime, calendar: BusinessCalendar) -> datetime:
        if self.unit is LimitUnit.HOURS:
            return start + timedelta(hours=self.amount)
        return calendar.add_working_time(start, self.duration(calendar))

    def duration(self, calendar: BusinessCalendar) -> timedelta:
        """The limit as an amount of (working or clock) time."""
        if self.unit is LimitUnit.WORKING_DAYS:
            return calendar.working_day * self.amount
        return timedelta(hours=self.amount)

    def elapsed(self, start: datetime, now: datetime, calendar: BusinessCalendar) -> timedelta:
        """Time counted against the limit between `start` and `now`."""
        if self.unit is LimitUnit.HOURS:
            return max(now - start, timedelta())
        return calendar.working_time_between(start, now)

    def describe(self) -> str:
        amount = int(self.amount) if float(self.amount).is_integer() else self.amount
        return f"{amount} {self.unit.value.replace('_', ' ')}"


@dataclass(frozen=True)
class CaseCategory:
    """One entry of the grid-case catalogue: class, major/minor codes and time limits."""

    code: str
    name: str
    case_class: CaseClass
    major_code: str
    major_name: str
    minor_code: str
    department: str
    time_limits: dict[Urgency, TimeLimit]

    def time_limit(self, urgency: Urgency) -> TimeLimit:
        return self.time_limits[urgency]


@dataclass(frozen=True)
class Department:
    code: str
    name: str
    kind: str


@dataclass(frozen=True)
class ResourceKind:
    code: str
    name: str
    mobile: bool


@dataclass(frozen=True)
class IncidentCategory:
    code: str
    name: str
    types: dict[str, str]


@dataclass(frozen=True)
class IncidentLevel:
    code: str
    rank: int
    """1 is the most severe (I, especially major); 4 the least (IV, general)."""
    name: str


@dataclass(frozen=True)
class HotlineTopic:
    """What a hotline ticket is about; `case_category` makes it a city-management matter."""

    code: str
    name: str
    department: str
    case_category: str | None
    emergency: bool
    reply_limit: TimeLimit


@dataclass(frozen=True)
class RoutingRule:
    """`category` (exact code, or a prefix ending in '*') in `area` (code prefix) -> department."""

    category: str
    area: str
    department: str

    def matches(self, category: str, area_code: str | None) -> bool:
        if self.category.endswith("*"):
            category_ok = category.startswith(self.category[:-1])
        else:
            category_ok = category == self.category
        if not category_ok:
            return False
        if self.area == "*":
            return True
        return area_code is not None and (
            area_code == self.area or area_code.startswith(self.area + "-")
        )

    @property
    def specificity(self) -> tuple[int, int, int]:
        area_depth = 0 if self.area == "*" else self.area.count("-") + 1
        exact = 0 if self.category.endswith("*") else 1
        return (area_depth, exact, len(self.category))


# --- file schemas (pydantic): what a valid data file looks like ---------------------------


class StrictModel(BaseModel):
    """A data-file record: unknown keys are refused, so a typo is an error, not a default."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class _TimeLimitFile(StrictModel):
    amount: float = Field(gt=0)
    unit: LimitUnit


class _CategoryFile(StrictModel):
    code: str = Field(pattern=r"^[CE]\d{4}$")
    name: str = Field(min_length=1)
    major_name: str = Field(min_length=1)
    department: str
    time_limits: dict[Urgency, _TimeLimitFile]

    @field_validator("time_limits")
    @classmethod
    def _every_urgency(cls, value: dict[Urgency, _TimeLimitFile]) -> dict[Urgency, _TimeLimitFile]:
        missing = [u.value for u in Urgency if u not in value]
        if missing:
            raise ValueError(f"time limit missing for urgency {', '.join(missing)}")
        return value


class _CategoriesFile(StrictModel):
    version: int
    categories: list[_CategoryFile] = Field(min_length=1)


class _DepartmentFile(StrictModel):
    code: str = Field(pattern=r"^[a-z][a-z0-9-]*$")
    name: str
    kind: Literal["centre", "municipal", "utility", "emergency"]


class _DepartmentsFile(StrictModel):
    version: int
    departments: list[_DepartmentFile] = Field(min_length=1)


class _ResourceKindFile(StrictModel):
    code: str = Field(pattern=r"^[a-z][a-z0-9-]*$")
    name: str
    mobile: bool


class _ResourceKindsFile(StrictModel):
    version: int
    resource_kinds: list[_ResourceKindFile] = Field(min_length=1)


class _NamedCode(StrictModel):
    code: str = Field(pattern=r"^[a-z][a-z0-9-]*$")
    name: str


class _IncidentCategoryFile(_NamedCode):
    types: list[_NamedCode] = Field(min_length=1)


class _LevelFile(StrictModel):
    code: str
    rank: int = Field(ge=1, le=4)
    name: str


class _IncidentFile(StrictModel):
    version: int
    categories: list[_IncidentCategoryFile] = Field(min_length=1)
    levels: list[_LevelFile] = Field(min_length=4, max_length=4)
    warning_colours: list[str]


class _TopicFile(StrictModel):
    code: str = Field(pattern=r"^[a-z][a-z0-9-]*$")
    name: str
    department: str
    case_category: str | None = None
    emergency: bool = False
    reply_limit: _TimeLimitFile


class _TopicsFile(StrictModel):
    version: int
    topics: list[_TopicFile] = Field(min_length=1)


class _CalendarFile(StrictModel):
    version: int
    source: str = ""
    timezone: str
    working_periods: list[tuple[time, time]] = Field(min_length=1)
    weekend: list[int]
    holidays: list[date]
    extra_working_days: list[date]

    @field_validator("weekend")
    @classmethod
    def _iso_weekdays(cls, value: list[int]) -> list[int]:
        if any(not 1 <= d <= 7 for d in value):
            raise ValueError("weekend days are ISO weekday numbers 1 (Monday) to 7 (Sunday)")
        return value


class _SupervisionFile(StrictModel):
    version: int
    yellow_fraction: float = Field(gt=0, lt=1)
    stage_limits: dict[str, _TimeLimitFile]


class _RuleFile(StrictModel):
    category: str
    area: str = "*"
    department: str


class _RoutingFile(StrictModel):
    version: int
    rules: list[_RuleFile]


def read_data_file(directory: Path | None, name: str, model: type[BaseModel]) -> Any:
    """Read and validate one reference data file (from `directory`, or the built-in one)."""
    if directory is None:
        source = resources.files("cityops.domain").joinpath("data", name)
        label = f"built-in {name}"
    else:
        source = directory / name  # type: ignore[assignment]
        label = str(source)
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CatalogueError(f"{label}: file not found") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as error:
        raise CatalogueError(f"{label}: not valid JSON: {error}") from None
    try:
        return model.model_validate(raw)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in error.errors()
        )
        raise CatalogueError(f"{label}: {problems}") from None


def require_unique(label: str, codes: Iterable[str]) -> None:
    """Refuse a data file in which a code appears twice."""
    seen: set[str] = set()
    for code in codes:
        if code in seen:
            raise CatalogueError(f"{label}: code {code!r} appears more than once")
        seen.add(code)


def _limit(data: _TimeLimitFile) -> TimeLimit:
    return TimeLimit(amount=data.amount, unit=data.unit)


@dataclass(frozen=True)
class Catalogue:
    """All reference data of the city, validated as a whole (cross-references included)."""

    case_categories: dict[str, CaseCategory]
    departments: dict[str, Department]
    resource_kinds: dict[str, ResourceKind]
    incident_categories: dict[str, IncidentCategory]
    incident_levels: dict[str, IncidentLevel]
    warning_colours: tuple[str, ...]
    hotline_topics: dict[str, HotlineTopic]
    calendar: BusinessCalendar
    routing_rules: tuple[RoutingRule, ...]
    yellow_fraction: float
    """Share of a time limit after which a case turns yellow."""
    stage_limits: dict[str, TimeLimit]
    """Time limits of the centre's own stages (register, dispatch, verify, close)."""

    @classmethod
    def load(cls, directory: Path | None = None) -> Catalogue:
        """Load the catalogue from `directory` (or the built-in files) and validate it."""
        departments_file = read_data_file(directory, "departments.json", _DepartmentsFile)
        require_unique("departments.json", (d.code for d in departments_file.departments))
        departments = {
            d.code: Department(code=d.code, name=d.name, kind=d.kind)
            for d in departments_file.departments
        }

        def department(label: str, code: str) -> str:
            if code not in departments:
                raise CatalogueError(f"{label}: unknown department {code!r}")
            return code

        categories_file = read_data_file(directory, "case_categories.json", _CategoriesFile)
        require_unique("case_categories.json", (c.code for c in categories_file.categories))
        categories = {
            c.code: CaseCategory(
                code=c.code,
                name=c.name,
                case_class=CaseClass.COMPONENT if c.code[0] == "C" else CaseClass.EVENT,
                major_code=c.code[1:3],
                major_name=c.major_name,
                minor_code=c.code[3:5],
                department=department(f"case_categories.json {c.code}", c.department),
                time_limits={u: _limit(t) for u, t in c.time_limits.items()},
            )
            for c in categories_file.categories
        }

        kinds_file = read_data_file(directory, "resource_kinds.json", _ResourceKindsFile)
        require_unique("resource_kinds.json", (k.code for k in kinds_file.resource_kinds))
        kinds = {
            k.code: ResourceKind(code=k.code, name=k.name, mobile=k.mobile)
            for k in kinds_file.resource_kinds
        }

        incident_file = read_data_file(directory, "incident_categories.json", _IncidentFile)
        require_unique("incident_categories.json", (c.code for c in incident_file.categories))
        require_unique("incident_categories.json levels", (lv.code for lv in incident_file.levels))
        require_unique(
            "incident_categories.json types",
            (t.code for c in incident_file.categories for t in c.types),
        )
        incident_categories = {
            c.code: IncidentCategory(code=c.code, name=c.name,
                                     types={t.code: t.name for t in c.types})
            for c in incident_file.categories
        }
        levels = {
            lv.code: IncidentLevel(code=lv.code, rank=lv.rank, name=lv.name)
            for lv in incident_file.levels
        }
        if sorted(lv.rank for lv in levels.values()) != [1, 2, 3, 4]:
            raise CatalogueError("incident_categories.json: levels must have ranks 1 to 4")

        topics_file = read_data_file(directory, "hotline_topics.json", _TopicsFile)
        require_unique("hotline_topics.json", (t.code for t in topics_file.topics))
        topics = {}
        for t in topics_file.topics:
            label = f"hotline_topics.json {t.code}"
            if t.case_category is not None and t.case_category not in categories:
                raise CatalogueError(f"{label}: unknown case category {t.case_category!r}")
            topics[t.code] = HotlineTopic(
                code=t.code,
                name=t.name,
                department=department(label, t.department),
                case_category=t.case_category,
                emergency=t.emergency,
                reply_limit=_limit(t.reply_limit),
            )

        calendar_file = read_data_file(directory, "calendar.json", _CalendarFile)
        try:
            zone = ZoneInfo(calendar_file.timezone)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise CatalogueError(
                f"calendar.json: unknown time zone {calendar_file.timezone!r}"
            ) from None
        try:
            calendar = BusinessCalendar(
                timezone=zone,
                periods=tuple(WorkingPeriod(start=s, end=e)
                              for s, e in calendar_file.working_periods),
                weekend=frozenset(calendar_file.weekend),
                holidays=frozenset(calendar_file.holidays),
                extra_working_days=frozenset(calendar_file.extra_working_days),
            )
        except CatalogueError as error:
            raise CatalogueError(f"calendar.json: {error}") from None

        routing_file = read_data_file(directory, "routing.json", _RoutingFile)
        rules = []
        for index, r in enumerate(routing_file.rules):
            label = f"routing.json rule {index + 1}"
            known = r.category.endswith("*") or r.category in categories or r.category in topics
            if not known:
                raise CatalogueError(f"{label}: unknown category or topic {r.category!r}")
            rules.append(
                RoutingRule(category=r.category, area=r.area,
                            department=department(label, r.department))
            )

        supervision_file = read_data_file(directory, "supervision.json", _SupervisionFile)
        stage_limits = {stage: _limit(t) for stage, t in supervision_file.stage_limits.items()}

        return cls(
            yellow_fraction=supervision_file.yellow_fraction,
            stage_limits=stage_limits,
            case_categories=categories,
            departments=departments,
            resource_kinds=kinds,
            incident_categories=incident_categories,
            incident_levels=levels,
            warning_colours=tuple(incident_file.warning_colours),
            hotline_topics=topics,
            calendar=calendar,
            routing_rules=tuple(rules),
        )

    # --- look-ups with clear errors ---------------------------------------------------------

    def case_category(self, code: str) -> CaseCategory:
        try:
            return self.case_categories[code]
        except KeyError:
            raise InvalidValue(f"unknown grid-case category {code!r}") from None

    def department(self, code: str) -> Department:
        try:
            return self.departments[code]
        except KeyError:
            raise InvalidValue(f"unknown department {code!r}") from None

    def resource_kind(self, code: str) -> ResourceKind:
        try:
            return self.resource_kinds[code]
        except KeyError:
            raise InvalidValue(f"unknown resource kind {code!r}") from None

    def incident_level(self, code: str) -> IncidentLevel:
        try:
            return self.incident_levels[code]
        except KeyError:
            known = ", ".join(self.incident_levels)
            raise InvalidValue(f"unknown incident level {code!r}; levels are {known}") from None

    def incident_type(self, category: str, incident_type: str) -> str:
        try:
            types = self.incident_categories[category].types
        except KeyError:
            known = ", ".join(self.incident_categories)
            raise InvalidValue(
                f"unknown incident category {category!r}; categories are {known}"
            ) from None
        if incident_type not in types:
            raise InvalidValue(f"incident type {incident_type!r} is not in category {category!r}")
        return incident_type

    def hotline_topic(self, code: str) -> HotlineTopic:
        try:
            return self.hotline_topics[code]
        except KeyError:
            raise InvalidValue(f"unknown hotline topic {code!r}") from None

    def route(self, category: str, area_code: str | None) -> str:
        """Propose the responsible department: the most specific matching rule wins, then
        the category's (or topic's) own default department."""
        matching = [r for r in self.routing_rules if r.matches(category, area_code)]
        if matching:
            return max(matching, key=lambda r: r.specificity).department
        if category in self.case_categories:
            return self.case_categories[category].department
        if category in self.hotline_topics:
            return self.hotline_topics[category].department
        raise InvalidValue(f"unknown category or topic {category!r}")
