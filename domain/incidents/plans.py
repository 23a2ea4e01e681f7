"""Contingency plans: what each department must do, and which resources are required, per
response level of an incident category; and the registry that lists them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate

from cityops.domain.actors import Actor
from cityops.domain.errors import (
    InvalidValue,
)
from cityops.domain.model import CityAggregate, checked_text, iso_or_none

PLAN_NAMESPACE = uuid5(NAMESPACE_URL, "https://cityops.invalid/contingency-plans")
MAX_TITLE = 200
MAX_ALLOWANCE = timedelta(days=30)
MIN_LEVEL_RANK = 1
"""Rank of level I, especially major: there is nothing above it."""
MAX_LEVEL_RANK = 4
"""Rank of level IV, general: there is nothing below it."""


class PlanStatus(StrEnum):
    ACTIVE = "active"
    RETIRED = "retired"


def checked_level_rank(rank: int) -> int:
    if isinstance(rank, bool) or not isinstance(rank, int):
        raise InvalidValue(f"level rank must be an integer, got {rank!r}")
    if not MIN_LEVEL_RANK <= rank <= MAX_LEVEL_RANK:
        raise InvalidValue(f"level rank {rank} is outside {MIN_LEVEL_RANK}..{MAX_LEVEL_RANK}")
    return rank


# --- contingency plan content (value objects) ----------------------------------------------


@dataclass(frozen=True)
class PlanTask:
    """What one department must do when a plan level is activated, and within how long."""

    department: str
    description: str
    allowance: timedelta

    def __post_init__(self) -> None:
        object.__setattr__(self, "department", checked_text("task department", self.department))
        object.__setattr__(self, "description", checked_text("task description", self.description))
        if not isinstance(self.allowance, timedelta):
            raise InvalidValue("a task's time allowance must be a duration")
        if not timedelta() < self.allowance <= MAX_ALLOWANCE:
            raise InvalidValue(
                f"a task's time allowance must be more than zero and at most {MAX_ALLOWANCE.days}"
                f" days, got {self.allowance}"
            )

    @property
    def key(self) -> tuple[str, str]:
        """The same department and description is the same task, whatever the level."""
        return (self.department, self.description)

    def as_fact(self) -> dict[str, Any]:
        return {"department": self.department, "description": self.description,
                "allowance": self.allowance}

    @classmethod
    def from_fact(cls, fact: Mapping[str, Any]) -> PlanTask:
        return cls(department=fact["department"], description=fact["description"],
                   allowance=fact["allowance"])


@dataclass(frozen=True)
class ResourceRequirement:
    """How many resources of one kind a plan level requires."""

    kind: str
    count: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", checked_text("resource kind", self.kind))
        if isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 1:
            raise InvalidValue(f"required count of {self.kind} must be a whole number >= 1")

    def as_fact(self) -> dict[str, Any]:
        return {"kind": self.kind, "count": self.count}

    @classmethod
    def from_fact(cls, fact: Mapping[str, Any]) -> ResourceRequirement:
        return cls(kind=fact["kind"], count=fact["count"])


@dataclass(frozen=True)
class PlanLevel:
    """The content of a plan for one response level: departments' tasks and resources."""

    level: str
    tasks: tuple[PlanTask, ...] = ()
    resources: tuple[ResourceRequirement, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "level", checked_text("plan level", self.level))
        object.__setattr__(self, "tasks", tuple(self.tasks))
        object.__setattr__(self, "resources", tuple(self.resources))
        if not self.tasks and not self.resources:
            raise InvalidValue(f"plan level {self.level} has neither tasks nor resources")
        keys = [t.key for t in self.tasks]
        if len(set(keys)) != len(keys):
            raise InvalidValue(f"plan level {self.level} lists the same task twice")
        kinds = [r.kind for r in self.resources]
        if len(set(kinds)) != len(kinds):
            raise InvalidValue(f"plan level {self.level} lists a resource kind twice")

    def as_fact(self) -> dict[str, Any]:
        return {"level": self.level, "tasks": [t.as_fact() for t in self.tasks],
                "resources": [r.as_fact() for r in self.resources]}

    @classmethod
    def from_fact(cls, fact: Mapping[str, Any]) -> PlanLevel:
        return cls(level=fact["level"],
                   tasks=tuple(PlanTask.from_fact(t) for t in fact["tasks"]),
                   resources=tuple(ResourceRequirement.from_fact(r) for r in fact["resources"]))

    def summary(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "tasks": [{"department": t.department, "description": t.description,
                       "allowance_minutes": t.allowance.total_seconds() / 60}
                      for t in self.tasks],
            "resources": [r.as_fact() for r in self.resources],
        }


@dataclass(frozen=True)
class PlanOrders:
    """What activating one plan at one level orders: handed by a plan to an incident."""

    plan_id: UUID
    plan_code: str
    plan_revision: int
    content: PlanLevel

    @property
    def level(self) -> str:
        return self.content.level


@dataclass(frozen=True)
class PlanRevision:
    """One revision of a plan's content: when, by whom and why (the first: "defined")."""

    revision: int
    at: datetime
    by: str
    note: str

    def summary(self) -> dict[str, Any]:
        return {"revision": self.revision, "at": self.at.isoformat(), "by": self.by,
                "note": self.note}


# --- contingency plans ------------------------------------------------------------------


def plan_id_for(code: str) -> UUID:
    """A plan's id follows from its code, so the same code can never be two plans."""
    return uuid5(PLAN_NAMESPACE, f"plan:{code}")


class ContingencyPlan(CityAggregate):
    """What departments must do, and which resources are required, per response level of an
    incident category (optionally only for some of its types)."""

    KIND = "contingency plan"

    class Defined(CityAggregate.Created):
        """`ContingencyPlan.__init__` makes the plan's state from these facts (the library
        passes a created event's fields to `__init__` by name)."""

        actor: Actor
        code: str
        name: str
        category: str
        incident_types: list[str]
        levels: list[dict[str, Any]]

    class Revised(CityAggregate.Event):
        """A new revision of the plan's content replaces the previous one."""

        name: str
        incident_types: list[str]
        levels: list[dict[str, Any]]
        note: str

        def apply(self, plan: ContingencyPlan) -> None:
            plan.name = self.name
            plan.incident_types = list(self.incident_types)
            plan.levels = _content(self.levels)
            plan.revision += 1
            plan.revisions.append(PlanRevision(revision=plan.revision, at=self.timestamp,
                                               by=self.actor.user_id, note=self.note))

    class Retired(CityAggregate.Event):
        reason: str

        def apply(self, plan: ContingencyPlan) -> None:
            plan.status = PlanStatus.RETIRED
            plan.retired_at = self.timestamp
            plan.retire_reason = self.reason

    def __init__(self, *, code: str, name: str, category: str, incident_types: list[str],
                 levels: list[dict[str, Any]], actor: Actor, timestamp: datetime) -> None:
        """The plan as defined (from the `Defined` event's facts): every attribute it keeps
        is declared here, once, with its type; the events change them."""
        self.status: PlanStatus = PlanStatus.ACTIVE
        self.code = code
        self.name = name
        self.category = category
        self.incident_types = list(incident_types)
        self.levels = _content(levels)
        self.revision = 1
        """The revision of the plan's content (the aggregate's `version` counts events)."""
        self.defined_at = timestamp
        self.retired_at: datetime | None = None
        self.retire_reason: str | None = None
        self.revisions = [PlanRevision(revision=1, at=timestamp, by=actor.user_id,
                                       note="defined")]

    @classmethod
    def define(cls, *, code: str, name: str, category: str, incident_types: Sequence[str],
               levels: Sequence[PlanLevel], actor: Actor, at: datetime) -> ContingencyPlan:
        """A planner defines a plan (the application has checked the codes it uses)."""
        return cls._create(
            cls.Defined,
            id=plan_id_for(code),
            timestamp=at,
            actor=actor,
            code=code,
            name=checked_text("plan name", name, limit=MAX_TITLE),
            category=category,
            incident_types=_types(incident_types),
            levels=_levels(levels),
        )

    def revise(self, *, name: str, incident_types: Sequence[str], levels: Sequence[PlanLevel],
               note: str, actor: Actor, at: datetime) -> None:
        self.require_status("revise", PlanStatus.ACTIVE)
        self.record(self.Revised, actor=actor, at=at,
                    name=checked_text("plan name", name, limit=MAX_TITLE),
                    incident_types=_types(incident_types), levels=_levels(levels),
                    note=checked_text("note", note))

    def retire(self, *, reason: str, actor: Actor, at: datetime) -> None:
        self.require_status("retire", PlanStatus.ACTIVE)
        self.record(self.Retired, actor=actor, at=at, reason=checked_text("reason", reason))

    @property
    def is_active(self) -> bool:
        return self.status is PlanStatus.ACTIVE

    def covers(self, category: str, incident_type: str | None = None) -> bool:
        """Whether the plan is for incidents of this category (and type, when it names types)."""
        if category != self.category:
            return False
        return incident_type is None or not self.incident_types or (
            incident_type in self.incident_types
        )

    def orders(self, level: str) -> PlanOrders | None:
        """The plan's content for a level, as orders an incident can carry out."""
        content = self.levels.get(level)
        if content is None:
            return None
        return PlanOrders(plan_id=self.id, plan_code=self.code, plan_revision=self.revision,
                          content=content)

    def activation_orders(self, category: str, incident_type: str, level: str) -> PlanOrders:
        """The orders for activating this plan on an incident, or why it cannot be."""
        attempted = f"activate (at level {level}, for a {category}/{incident_type} incident)"
        self.require_status(attempted, PlanStatus.ACTIVE)
        if not self.covers(category, incident_type):
            self.refuse(attempted, f"it is a plan for {self._scope()}")
        orders = self.orders(level)
        if orders is None:
            self.refuse(attempted, f"it has nothing for level {level}")
        assert orders is not None
        return orders

    def _scope(self) -> str:
        if not self.incident_types:
            return self.category
        return f"{self.category}/{', '.join(self.incident_types)}"

    def summary(self) -> dict[str, Any]:
        """The plan's current state as plain data (for API responses and tests)."""
        return {
            "id": str(self.id),
            "version": self.version,
            "code": self.code,
            "name": self.name,
            "status": self.status.value,
            "category": self.category,
            "incident_types": list(self.incident_types),
            "revision": self.revision,
            "levels": [lv.summary() for lv in self.levels.values()],
            "defined_at": self.defined_at.isoformat(),
            "retired_at": iso_or_none(self.retired_at),
            "retire_reason": self.retire_reason,
            "revisions": [r.summary() for r in self.revisions],
        }


def _types(incident_types: Sequence[str]) -> list[str]:
    types = [checked_text("incident type", t) for t in incident_types]
    if len(set(types)) != len(types):
        raise InvalidValue("a plan lists an incident type twice")
    return types


def _content(levels: list[dict[str, Any]]) -> dict[str, PlanLevel]:
    """A plan's content by level, from the facts of its definition or revision."""
    return {lv["level"]: PlanLevel.from_fact(lv) for lv in levels}


def _levels(levels: Sequence[PlanLevel]) -> list[dict[str, Any]]:
    if not levels:
        raise InvalidValue("a plan needs the content of at least one level")
    codes = [lv.level for lv in levels]
    if len(set(codes)) != len(codes):
        raise InvalidValue("a plan gives the content of a level twice")
    return [lv.as_fact() for lv in levels]


REGISTRY_ID = uuid5(PLAN_NAMESPACE, "registry")


@dataclass(frozen=True)
class PlanEntry:
    """What the registry knows of one plan: enough to list the plans of a category."""

    code: str
    category: str


class PlanRegistry(Aggregate):
    """The list of all contingency plans ever defined (event stores have no index by kind),
    kept under a fixed id and saved with each plan's definition."""

    class Opened(Aggregate.Created):
        pass

    class Listed(Aggregate.Event):
        plan_id: UUID
        code: str
        category: str
        actor: Actor

        def apply(self, registry: PlanRegistry) -> None:
            registry.entries[self.plan_id] = PlanEntry(code=self.code, category=self.category)

    def __init__(self) -> None:
        self.entries: dict[UUID, PlanEntry] = {}

    @classmethod
    def open(cls) -> PlanRegistry:
        return cls._create(cls.Opened, id=REGISTRY_ID)

    def list_plan(self, plan: ContingencyPlan, actor: Actor) -> None:
        self.trigger_event(self.Listed, plan_id=plan.id, code=plan.code,
                           category=plan.category, actor=actor)

    def plan_ids(self, category: str | None = None) -> list[UUID]:
        """Ids of the plans (of one category), ordered by code."""
        chosen = [(e.code, plan_id) for plan_id, e in self.entries.items()
                  if category is None or e.category == category]
        return [plan_id for _, plan_id in sorted(chosen)]
