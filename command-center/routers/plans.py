"""Contingency plans: define, revise and retire them; list, get, and find the plans that can
be activated on an incident of a category at a level."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query
from pydantic import Field

from cityops.command_center.dependencies import (
    CommandId,
    CurrentActor,
    PagingDep,
    SystemDep,
    page_body,
)
from cityops.command_center.models.incidents import (
    PlanPublic,
    PlansPublic,
)
from cityops.command_center.schemas import Command, LevelCode
from cityops.command_center.scopes import LOGGED_IN
from cityops.command_center.time_travel import ReadSystem
from cityops.command_center.versions import SeenVersion
from cityops.domain.commands import CommandContext
from cityops.domain.incidents.commands import DefinePlan, RetirePlan, RevisePlan
from cityops.domain.incidents.plans import (
    PlanLevel,
    PlanStatus,
    PlanTask,
    ResourceRequirement,
)
from cityops.domain.values import duration_from_minutes

router = APIRouter(prefix="/plans", tags=["contingency plans"],
                   dependencies=[LOGGED_IN])


class PlanTaskIn(Command):
    department: str = Field(description="Department code")
    description: str = Field(min_length=1, max_length=4000)
    allowance_minutes: float = Field(gt=0, description="Time allowed once activated, minutes")


class ResourceRequirementIn(Command):
    kind: str = Field(description="Resource kind code")
    count: int = Field(ge=1)


class PlanLevelIn(Command):
    level: str = Field(description="Response level I-IV")
    tasks: list[PlanTaskIn] = Field(default_factory=list, max_length=200)
    resources: list[ResourceRequirementIn] = Field(default_factory=list, max_length=100)

    def to_level(self) -> PlanLevel:
        return PlanLevel(
            level=self.level,
            tasks=tuple(PlanTask(department=t.department, description=t.description,
                                 allowance=duration_from_minutes(
                                     "allowance_minutes", t.allowance_minutes))
                        for t in self.tasks),
            resources=tuple(ResourceRequirement(kind=r.kind, count=r.count)
                            for r in self.resources),
        )


class PlanDefinition(Command):
    code: str = Field(description="Unique plan code: lower-case letters, digits, hyphens",
                      examples=["urban-fire"])
    name: str = Field(min_length=1, max_length=200)
    category: str = Field(description="Incident category code")
    incident_types: list[str] = Field(default_factory=list,
                                      description="Only these types (default: all)")
    levels: list[PlanLevelIn] = Field(min_length=1)


class PlanRevision(Command):
    levels: list[PlanLevelIn] = Field(min_length=1)
    note: str = Field(min_length=1, description="What changed and why")
    name: str | None = None
    incident_types: list[str] | None = None


class PlanRetirement(Command):
    reason: str = Field(min_length=1)


def _state(system: SystemDep, plan_id: UUID) -> dict[str, Any]:
    """The plan as the write side knows it now."""
    system.wake_projections()
    return system.incidents.plan(plan_id).summary()


@router.post("", response_model=PlanPublic, status_code=201)
def define_plan(body: PlanDefinition, system: SystemDep, actor: CurrentActor,
                command_id: CommandId) -> dict[str, Any]:
    """Define a plan: per level, the departments' tasks and the resources required."""
    define = DefinePlan(
        code=body.code, plan_name=body.name, category=body.category,
        incident_types=tuple(body.incident_types),
        levels=tuple(lv.to_level() for lv in body.levels),
    )
    outcome = system.commands.handle(define, CommandContext(actor=actor, command_id=command_id))
    return _state(system, outcome.subject)


@router.get("", response_model=PlansPublic)
def list_plans(
    system: ReadSystem,
    paging: PagingDep,
    category: str | None = None,
    status: PlanStatus | None = None,
    code: str | None = None,
) -> dict[str, Any]:
    """List plans with filters, newest first."""
    filters: dict[str, Any] = {}
    if category:
        filters["category"] = category
    if status is not None:
        filters["status"] = status.value
    if code:
        filters["code"] = code
    page = system.read_models.page("rm_plans", filters=filters, limit=paging.limit,
                                   offset=paging.offset)
    return page_body(page.items, page.total, paging)


@router.get("/applicable", response_model=list[PlanPublic])
def applicable_plans(
    system: ReadSystem,
    category: Annotated[str, Query(description="Incident category code")],
    level: Annotated[LevelCode, Query(description="Response level I-IV")],
    incident_type: Annotated[str | None, Query(description="Type within the category")]
    = None,
) -> list[dict[str, Any]]:
    """The active plans that can be activated on an incident of this category at this level."""
    plans = system.incidents.plans_for(category, level, incident_type)
    return [plan.summary() for plan in plans]


@router.get("/{plan_id}", response_model=PlanPublic)
def get_plan(plan_id: UUID, system: ReadSystem) -> dict[str, Any]:
    """One plan, its current revision and the history of its revisions."""
    return _state(system, plan_id)


@router.post("/{plan_id}/revise", response_model=PlanPublic)
def revise_plan(plan_id: UUID, body: PlanRevision, system: SystemDep, actor: CurrentActor,
                command_id: CommandId, seen: SeenVersion) -> dict[str, Any]:
    """Replace the plan's content with a new revision; responding incidents keep their tasks."""
    revise = RevisePlan(
        plan_id=plan_id, levels=tuple(lv.to_level() for lv in body.levels), note=body.note,
        plan_name=body.name,
        incident_types=tuple(body.incident_types) if body.incident_types is not None else None,
    )
    outcome = system.commands.handle(
        revise, CommandContext(actor=actor, command_id=command_id, seen_versions=seen))
    return _state(system, outcome.subject)


@router.post("/{plan_id}/retire", response_model=PlanPublic)
def retire_plan(plan_id: UUID, body: PlanRetirement, system: SystemDep, actor: CurrentActor,
                command_id: CommandId, seen: SeenVersion) -> dict[str, Any]:
    """Retire a plan: it can no longer be activated."""
    outcome = system.commands.handle(
        RetirePlan(plan_id=plan_id, reason=body.reason),
        CommandContext(actor=actor, command_id=command_id, seen_versions=seen))
    return _state(system, outcome.subject)
