"""The incident application: every command of the emergency stream and of its contingency
plans, in one place.

Incidents and plans share one application because activating a plan reads the plan and
writes the incident's tasks in the same command; the incident (with its new tasks) is saved
in one transaction with the command's receipt.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from uuid import UUID, uuid4, uuid5

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate

from cityops.domain.actors import Actor
from cityops.domain.application import COMMAND_NAMESPACE, CityApplication, Clock, system_clock
from cityops.domain.catalogue import Catalogue, IncidentLevel
from cityops.domain.errors import IllegalTransition, InvalidValue
from cityops.domain.geometry import Area, GeoPoint
from cityops.domain.incidents.incident import (
    Finding,
    Incident,
    IncidentSource,
    LinkKind,
)
from cityops.domain.incidents.plans import (
    MAX_LEVEL_RANK,
    MIN_LEVEL_RANK,
    REGISTRY_ID,
    ContingencyPlan,
    PlanLevel,
    PlanOrders,
    PlanRegistry,
    plan_id_for,
)
from cityops.domain.values import checked_instant, parse_enum

PLAN_CODE = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")


def _aware(label: str, value: datetime | None) -> None:
    if value is not None:
        checked_instant(label, value)


class Incidents(CityApplication):
    """Reports, verifies and commands emergency incidents, and keeps the contingency plans."""

    name = "incidents"

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        *,
        catalogue: Catalogue,
        clock: Clock = system_clock,
    ) -> None:
        super().__init__(env, clock=clock)
        self.catalogue = catalogue

    # --- helpers ------------------------------------------------------------------------


    def _level(self, code: str) -> IncidentLevel:
        return self.catalogue.incident_level(code)

    def _level_of_rank(self, rank: int) -> IncidentLevel:
        for level in self.catalogue.incident_levels.values():
            if level.rank == rank:
                return level
        raise AssertionError(f"the catalogue has no level of rank {rank}")

    def _check_plan_content(self, category: str, incident_types: Sequence[str],
                            levels: Sequence[PlanLevel]) -> None:
        """Every code a plan uses must be in the catalogue."""
        if category not in self.catalogue.incident_categories:
            known = ", ".join(self.catalogue.incident_categories)
            raise InvalidValue(f"unknown incident category {category!r}; categories are {known}")
        for incident_type in incident_types:
            self.catalogue.incident_type(category, incident_type)
        for content in levels:
            if not isinstance(content, PlanLevel):
                raise InvalidValue("each level of a plan must be a PlanLevel")
            self._level(content.level)
            for task in content.tasks:
                self.catalogue.department(task.department)
            for requirement in content.resources:
                self.catalogue.resource_kind(requirement.kind)

    def _registry(self) -> PlanRegistry | None:
        try:
            registry: object = self.repository.get(REGISTRY_ID)
        except AggregateNotFoundError:
            return None
        assert isinstance(registry, PlanRegistry)
        return registry

    # --- queries ------------------------------------------------------------------------

    def incident(self, incident_id: UUID) -> Incident:
        return self.load(Incident, incident_id)

    def plan(self, plan_id: UUID) -> ContingencyPlan:
        return self.load(ContingencyPlan, plan_id)

    def plan_by_code(self, code: str) -> ContingencyPlan:
        return self.plan(plan_id_for(code))

    def plans(self, category: str | None = None) -> list[ContingencyPlan]:
        """Every plan ever defined (retired ones too), of one category or all, by code."""
        registry = self._registry()
        if registry is None:
            return []
        return [self.plan(plan_id) for plan_id in registry.plan_ids(category)]

    def plans_for(self, category: str, level: str,
                  incident_type: str | None = None) -> list[ContingencyPlan]:
        """The active plans that can be activated on an incident of this category (and type)
        at this level, by code."""
        if incident_type is not None:
            self.catalogue.incident_type(category, incident_type)
        elif category not in self.catalogue.incident_categories:
            raise InvalidValue(f"unknown incident category {category!r}")
        self._level(level)
        return [
            plan for plan in self.plans(category)
            if plan.is_active and plan.covers(category, incident_type)
            and plan.orders(level) is not None
        ]

    # --- incident commands ------------------------------------------------------------

    def report(
        self,
        *,
        category: str,
        incident_type: str,
        title: str,
        location: GeoPoint,
        source: IncidentSource | str,
        actor: Actor,
        description: str = "",
        level: str | None = None,
        affected_area: Area | None = None,
        source_ref: str | None = None,
        warning: str | None = None,
        incident_id: UUID | None = None,
        at: datetime | None = None,
        command_id: str | None = None,
    ) -> UUID:
        """Report an incident. `incident_id` is given when an alarm or a ticket escalates
        into an incident (the id follows from it); the level defaults to IV until verified."""
        source = parse_enum(IncidentSource, source, "incident source")
        self.catalogue.incident_type(category, incident_type)
        assessed = self._level(level) if level is not None else self._level_of_rank(MAX_LEVEL_RANK)
        if warning is not None and warning not in self.catalogue.warning_colours:
            known = ", ".join(self.catalogue.warning_colours)
            raise InvalidValue(f"unknown warning colour {warning!r}; colours are {known}")
        if not isinstance(location, GeoPoint):
            raise InvalidValue("an incident's location must be a point")
        if affected_area is not None and not isinstance(affected_area, Area):
            raise InvalidValue("an incident's affected area must be an area")
        when = self.now(at)
        if incident_id is not None:
            new_id = incident_id
        elif command_id:
            # A derived id makes a repeated report (same command id) land on the same incident.
            new_id = uuid5(COMMAND_NAMESPACE, f"incident:{command_id}")
        else:
            new_id = uuid4()

        def decide() -> list[Incident]:
            if self.exists(new_id):
                existing = self.incident(new_id)
                raise IllegalTransition(Incident.KIND, new_id,
                                        f"already reported ({existing.status.value})", "report")
            return [Incident.report(
                incident_id=new_id, category=category, incident_type=incident_type,
                level=assessed.code, level_rank=assessed.rank, title=title,
                description=description, location=location, affected_area=affected_area,
                source=source, source_ref=source_ref, warning=warning, actor=actor, at=when,
            )]

        return self.command("incident.report", actor, command_id, {
            "category": category, "incident_type": incident_type, "title": title,
            "description": description, "location": [location.lon, location.lat],
            "source": source, "level": level,
            "affected_area": affected_area.wkt if affected_area else None,
            "source_ref": source_ref, "warning": warning, "incident_id": incident_id,
        }, decide)

    def verify(self, incident_id: UUID, *, actor: Actor, category: str | None = None,
               incident_type: str | None = None, level: str | None = None, note: str = "",
               at: datetime | None = None, command_id: str | None = None) -> UUID:
        """The centre confirms the incident (correcting its category, type or level)."""
        when = self.now(at)

        def decide() -> list[Incident]:
            incident = self.incident(incident_id)
            final_category = category or incident.category
            final_type = incident_type or incident.incident_type
            self.catalogue.incident_type(final_category, final_type)
            final_level = self._level(level or incident.level)
            incident.verify(category=final_category, incident_type=final_type,
                            level=final_level.code, level_rank=final_level.rank, note=note,
                            actor=actor, at=when)
            return [incident]

        return self.command("incident.verify", actor, command_id, {
            "incident_id": incident_id, "category": category, "incident_type": incident_type,
            "level": level, "note": note,
        }, decide)

    def dismiss(self, incident_id: UUID, *, reason: str, actor: Actor,
                at: datetime | None = None, command_id: str | None = None) -> UUID:
        """The centre finds the report false."""
        when = self.now(at)

        def decide() -> list[Incident]:
            incident = self.incident(incident_id)
            incident.dismiss(reason=reason, actor=actor, at=when)
            return [incident]

        return self.command("incident.verify", actor, command_id,
                             {"incident_id": incident_id, "dismiss": reason}, decide)

    def respond(self, incident_id: UUID, *, level: str, actor: Actor,
                plan_id: UUID | None = None, reason: str = "", at: datetime | None = None,
                command_id: str | None = None) -> UUID:
        """Start the response at a level and, usually, activate a contingency plan at it."""
        when = self.now(at)
        target = self._level(level)

        def decide() -> list[Incident]:
            incident = self.incident(incident_id)
            incident.respond(level=target.code, level_rank=target.rank, reason=reason,
                             actor=actor, at=when)
            if plan_id is not None:
                plan = self.plan(plan_id)
                orders = plan.activation_orders(incident.category, incident.incident_type,
                                                target.code)
                incident.activate_plan(orders, actor=actor, at=when)
            return [incident]

        return self.command("incident.respond", actor, command_id, {
            "incident_id": incident_id, "level": level, "plan_id": plan_id, "reason": reason,
        }, decide)

    def activate_plan(self, incident_id: UUID, *, plan_id: UUID, actor: Actor,
                      at: datetime | None = None, command_id: str | None = None) -> UUID:
        """Activate (another) contingency plan on a responding incident, at its level."""
        when = self.now(at)

        def decide() -> list[Incident]:
            incident = self.incident(incident_id)
            plan = self.plan(plan_id)
            orders = plan.activation_orders(incident.category, incident.incident_type,
                                            incident.level)
            incident.activate_plan(orders, actor=actor, at=when)
            return [incident]

        return self.command("incident.activate-plan", actor, command_id,
                             {"incident_id": incident_id, "plan_id": plan_id}, decide)

    def _orders_for_level(self, incident: Incident, level: str) -> list[PlanOrders]:
        """The content for `level` of the plans activated on the incident. A plan retired
        since it was activated gives no more tasks."""
        orders = []
        for plan_id in incident.plans:
            plan = self.plan(plan_id)
            plan_orders = plan.orders(level) if plan.is_active else None
            if plan_orders is not None:
                orders.append(plan_orders)
        return orders

    def change_level(self, incident_id: UUID, *, level: str, reason: str, actor: Actor,
                     at: datetime | None = None, command_id: str | None = None) -> UUID:
        """Raise or lower the response level (with the reason); raising it activates the
        activated plans' tasks of the new level that were not given out yet."""
        when = self.now(at)
        target = self._level(level)

        def decide() -> list[Incident]:
            incident = self.incident(incident_id)
            incident.change_level(level=target.code, level_rank=target.rank, reason=reason,
                                  orders=self._orders_for_level(incident, target.code),
                                  actor=actor, at=when)
            return [incident]

        return self.command("incident.change-level", actor, command_id,
                             {"incident_id": incident_id, "level": level, "reason": reason},
                             decide)

    def _step_level(self, incident_id: UUID, step: int, *, reason: str, actor: Actor,
                    at: datetime | None, command_id: str | None) -> UUID:
        when = self.now(at)
        attempted = "raise the level of" if step < 0 else "lower the level of"

        def decide() -> list[Incident]:
            incident = self.incident(incident_id)
            rank = incident.level_rank + step
            if not MIN_LEVEL_RANK <= rank <= MAX_LEVEL_RANK:
                extreme = "highest" if step < 0 else "lowest"
                incident.refuse(attempted, f"already at the {extreme} level {incident.level}")
            target = self._level_of_rank(rank)
            incident.change_level(level=target.code, level_rank=target.rank, reason=reason,
                                  orders=self._orders_for_level(incident, target.code),
                                  actor=actor, at=when)
            return [incident]

        return self.command("incident.change-level", actor, command_id,
                             {"incident_id": incident_id, "step": step, "reason": reason},
                             decide)

    def escalate(self, incident_id: UUID, *, reason: str, actor: Actor,
                 at: datetime | None = None, command_id: str | None = None) -> UUID:
        """Raise the response level by one (IV -> III -> II -> I); nothing is above I."""
        return self._step_level(incident_id, -1, reason=reason, actor=actor, at=at,
                                command_id=command_id)

    def deescalate(self, incident_id: UUID, *, reason: str, actor: Actor,
                   at: datetime | None = None, command_id: str | None = None) -> UUID:
        """Lower the response level by one (I -> II -> III -> IV); nothing is below IV."""
        return self._step_level(incident_id, +1, reason=reason, actor=actor, at=at,
                                command_id=command_id)

    def add_situation_report(self, incident_id: UUID, *, text: str, actor: Actor,
                             casualties: Mapping[str, int] | None = None,
                             affected_area: Area | None = None, at: datetime | None = None,
                             command_id: str | None = None) -> UUID:
        """Add what is known now to the timeline (casualty figures, the affected area)."""
        when = self.now(at)
        if affected_area is not None and not isinstance(affected_area, Area):
            raise InvalidValue("an incident's affected area must be an area")

        def decide() -> list[Incident]:
            incident = self.incident(incident_id)
            incident.add_situation_report(text=text, casualties=casualties,
                                          affected_area=affected_area, actor=actor, at=when)
            return [incident]

        return self.command("incident.add-situation-report", actor, command_id, {
            "incident_id": incident_id, "text": text,
            "casualties": dict(casualties) if casualties is not None else None,
            "affected_area": affected_area.wkt if affected_area else None,
        }, decide)

    def link(self, incident_id: UUID, *, kind: LinkKind | str, target_id: UUID, actor: Actor,
             at: datetime | None = None, command_id: str | None = None) -> UUID:
        """Link a grid case, hotline ticket or hazard alarm (again: no change)."""
        when = self.now(at)
        kind = parse_enum(LinkKind, kind, "link kind")

        def decide() -> list[Incident]:
            incident = self.incident(incident_id)
            incident.link(kind=kind, target_id=target_id, actor=actor, at=when)
            return [incident]

        return self.command("incident.link", actor, command_id, {
            "incident_id": incident_id, "kind": kind, "target_id": target_id,
        }, decide)

    def unlink(self, incident_id: UUID, *, kind: LinkKind | str, target_id: UUID, reason: str,
               actor: Actor, at: datetime | None = None, command_id: str | None = None) -> UUID:
        """Remove a link made by mistake."""
        when = self.now(at)
        kind = parse_enum(LinkKind, kind, "link kind")

        def decide() -> list[Incident]:
            incident = self.incident(incident_id)
            incident.unlink(kind=kind, target_id=target_id, reason=reason, actor=actor, at=when)
            return [incident]

        return self.command("incident.link", actor, command_id, {
            "incident_id": incident_id, "unlink": kind, "target_id": target_id,
            "reason": reason,
        }, decide)

    def assign_commander(self, incident_id: UUID, *, commander: str, actor: Actor,
                         reason: str = "", at: datetime | None = None,
                         command_id: str | None = None) -> UUID:
        """Name the incident's commander (a user id), or replace the current one."""
        when = self.now(at)

        def decide() -> list[Incident]:
            incident = self.incident(incident_id)
            incident.assign_commander(commander=commander, reason=reason, actor=actor, at=when)
            return [incident]

        return self.command("incident.assign-commander", actor, command_id, {
            "incident_id": incident_id, "commander": commander, "reason": reason,
        }, decide)

    def assign_task(self, incident_id: UUID, *, department: str, description: str,
                    allowance: timedelta, actor: Actor, task_id: UUID | None = None,
                    at: datetime | None = None, command_id: str | None = None) -> UUID:
        """Give a department a task outside the plans, due `allowance` from now."""
        when = self.now(at)
        self.catalogue.department(department)
        if task_id is not None:
            new_task_id = task_id
        elif command_id:
            new_task_id = uuid5(COMMAND_NAMESPACE, f"incident-task:{command_id}")
        else:
            new_task_id = uuid4()

        def decide() -> list[Incident]:
            incident = self.incident(incident_id)
            incident.assign_task(task_id=new_task_id, department=department,
                                 description=description, allowance=allowance, actor=actor,
                                 at=when)
            return [incident]

        return self.command("incident.assign-task", actor, command_id, {
            "incident_id": incident_id, "department": department, "description": description,
            "allowance": allowance, "task_id": task_id,
        }, decide)

    def acknowledge_task(self, incident_id: UUID, task_id: UUID, *, actor: Actor,
                         at: datetime | None = None, command_id: str | None = None) -> UUID:
        """The department confirms it has the task in hand (its own department's only)."""
        when = self.now(at)

        def decide() -> list[Incident]:
            incident = self.incident(incident_id)
            incident.acknowledge_task(task_id, actor=actor, at=when)
            return [incident]

        return self.command("incident.task", actor, command_id, {
            "incident_id": incident_id, "task_id": task_id, "move": "acknowledge",
        }, decide)

    def complete_task(self, incident_id: UUID, task_id: UUID, *, actor: Actor,
                      result: str = "", at: datetime | None = None,
                      command_id: str | None = None) -> UUID:
        """The department reports the task done (its own department's only)."""
        when = self.now(at)

        def decide() -> list[Incident]:
            incident = self.incident(incident_id)
            incident.complete_task(task_id, result=result, actor=actor, at=when)
            return [incident]

        return self.command("incident.task", actor, command_id, {
            "incident_id": incident_id, "task_id": task_id, "move": "complete",
            "result": result,
        }, decide)

    def cancel_task(self, incident_id: UUID, task_id: UUID, *, reason: str, actor: Actor,
                    at: datetime | None = None, command_id: str | None = None) -> UUID:
        """The centre calls a task off."""
        when = self.now(at)

        def decide() -> list[Incident]:
            incident = self.incident(incident_id)
            incident.cancel_task(task_id, reason=reason, actor=actor, at=when)
            return [incident]

        return self.command("incident.cancel-task", actor, command_id, {
            "incident_id": incident_id, "task_id": task_id, "reason": reason,
        }, decide)

    def waive_task(self, incident_id: UUID, task_id: UUID, *, reason: str, actor: Actor,
                   at: datetime | None = None, command_id: str | None = None) -> UUID:
        """The centre, for the commander, accepts closing without an open task, with the
        reason (the task counts as not done)."""
        when = self.now(at)

        def decide() -> list[Incident]:
            incident = self.incident(incident_id)
            incident.waive_task(task_id, reason=reason, actor=actor, at=when)
            return [incident]

        return self.command("incident.waive-task", actor, command_id, {
            "incident_id": incident_id, "task_id": task_id, "reason": reason,
        }, decide)

    def assign_resource(self, incident_id: UUID, *, resource_id: UUID, kind: str,
                        actor: Actor, at: datetime | None = None,
                        command_id: str | None = None) -> UUID:
        """Record that a resource of a kind now works for the incident."""
        when = self.now(at)
        self.catalogue.resource_kind(kind)

        def decide() -> list[Incident]:
            incident = self.incident(incident_id)
            incident.assign_resource(resource_id=resource_id, kind=kind, actor=actor, at=when)
            return [incident]

        return self.command("incident.assign-resource", actor, command_id, {
            "incident_id": incident_id, "resource_id": resource_id, "kind": kind,
        }, decide)

    def release_resource(self, incident_id: UUID, *, resource_id: UUID, actor: Actor,
                         at: datetime | None = None, command_id: str | None = None) -> UUID:
        """Record that a resource no longer works for the incident."""
        when = self.now(at)

        def decide() -> list[Incident]:
            incident = self.incident(incident_id)
            incident.release_resource(resource_id=resource_id, actor=actor, at=when)
            return [incident]

        return self.command("incident.assign-resource", actor, command_id, {
            "incident_id": incident_id, "release": resource_id,
        }, decide)

    def record_resource_arrival(self, incident_id: UUID, *, resource_id: UUID, kind: str,
                                sent_at: datetime, actor: Actor,
                                command_id: str | None = None) -> UUID:
        """The resource stream says the resource was sent to the incident (dispatched or
        reassigned to it): its assignment starts at the time it was sent, or at the
        incident's last event when that is later (history is kept in time order)."""
        sent = self.now(sent_at)
        self.catalogue.resource_kind(kind)

        def decide() -> list[Incident]:
            incident = self.incident(incident_id)
            incident.assign_resource(resource_id=resource_id, kind=kind, actor=actor,
                                     at=max(sent, incident.modified_on))
            return [incident]

        return self.command("incident.assign-resource", actor, command_id, {
            "incident_id": incident_id, "resource_id": resource_id, "kind": kind,
            "sent_at": sent,
        }, decide)

    def record_resource_departure(self, incident_id: UUID, *, resource_id: UUID, how: str,
                                  left_at: datetime, actor: Actor,
                                  command_id: str | None = None) -> UUID:
        """The resource stream says the resource left the incident (`how`: cleared the
        scene, stood down, reassigned...): its assignment ends at the time it left, or at the
        incident's last event when that is later (history is kept in time order)."""
        left = self.now(left_at)

        def decide() -> list[Incident]:
            incident = self.incident(incident_id)
            incident.release_resource(resource_id=resource_id, reason=how, actor=actor,
                                      at=max(left, incident.modified_on))
            return [incident]

        return self.command("incident.record-resource-departure", actor, command_id, {
            "incident_id": incident_id, "resource_id": resource_id, "how": how,
            "left_at": left,
        }, decide)

    def contain(self, incident_id: UUID, *, actor: Actor, note: str = "",
                at: datetime | None = None, command_id: str | None = None) -> UUID:
        """The situation is under control."""
        when = self.now(at)

        def decide() -> list[Incident]:
            incident = self.incident(incident_id)
            incident.contain(note=note, actor=actor, at=when)
            return [incident]

        return self.command("incident.contain", actor, command_id,
                             {"incident_id": incident_id, "note": note}, decide)

    def flare_up(self, incident_id: UUID, *, reason: str, actor: Actor,
                 at: datetime | None = None, command_id: str | None = None) -> UUID:
        """A contained incident flared up: back to responding (its level and plans stay)."""
        when = self.now(at)

        def decide() -> list[Incident]:
            incident = self.incident(incident_id)
            incident.flare_up(reason=reason, actor=actor, at=when)
            return [incident]

        return self.command("incident.contain", actor, command_id,
                            {"incident_id": incident_id, "reason": reason, "flare_up": True},
                            decide)

    def close_incident(self, incident_id: UUID, *, actor: Actor, note: str = "",
                       at: datetime | None = None, command_id: str | None = None) -> UUID:
        """Close a contained incident (releasing the resources still assigned)."""
        when = self.now(at)

        def decide() -> list[Incident]:
            incident = self.incident(incident_id)
            incident.close(note=note, actor=actor, at=when)
            return [incident]

        return self.command("incident.close", actor, command_id,
                             {"incident_id": incident_id, "note": note}, decide)

    def review(self, incident_id: UUID, *, summary: str, actor: Actor,
               findings: Sequence[Finding] = (), at: datetime | None = None,
               command_id: str | None = None) -> UUID:
        """Record the after-action review of a closed incident."""
        when = self.now(at)
        for finding in findings:
            if not isinstance(finding, Finding):
                raise InvalidValue("each finding of a review must be a Finding")
            if finding.department is not None:
                self.catalogue.department(finding.department)

        def decide() -> list[Incident]:
            incident = self.incident(incident_id)
            incident.review(summary=summary, findings=findings, actor=actor, at=when)
            return [incident]

        return self.command("incident.review", actor, command_id, {
            "incident_id": incident_id, "summary": summary,
            "findings": [f.as_fact() for f in findings],
        }, decide)

    # --- contingency plan commands --------------------------------------------------------

    def define_plan(self, *, code: str, name: str, category: str, levels: Sequence[PlanLevel],
                    actor: Actor, incident_types: Sequence[str] = (),
                    at: datetime | None = None, command_id: str | None = None) -> UUID:
        """Define a contingency plan for an incident category (all its types unless some are
        named): per level, the departments' tasks and the resources required."""
        if not isinstance(code, str) or not PLAN_CODE.match(code):
            raise InvalidValue(
                f"plan code {code!r} must be 1-64 lower-case letters, digits and hyphens"
            )
        self._check_plan_content(category, incident_types, levels)
        when = self.now(at)
        plan_id = plan_id_for(code)

        def decide() -> list[Aggregate]:
            if self.exists(plan_id):
                existing = self.plan(plan_id)
                raise IllegalTransition(ContingencyPlan.KIND, f"{code} ({plan_id})",
                                        f"already defined ({existing.status.value})", "define")
            plan = ContingencyPlan.define(code=code, name=name, category=category,
                                          incident_types=incident_types, levels=levels,
                                          actor=actor, at=when)
            registry = self._registry() or PlanRegistry.open()
            registry.list_plan(plan, actor)
            return [plan, registry]

        return self.command("plan.define", actor, command_id, {
            "code": code, "name": name, "category": category,
            "incident_types": list(incident_types), "levels": [lv.as_fact() for lv in levels],
        }, decide)

    def revise_plan(self, plan_id: UUID, *, levels: Sequence[PlanLevel], note: str,
                    actor: Actor, name: str | None = None,
                    incident_types: Sequence[str] | None = None, at: datetime | None = None,
                    command_id: str | None = None) -> UUID:
        """Replace a plan's content with a new revision (name and types kept unless given);
        incidents already responding keep the tasks they were given."""
        when = self.now(at)

        def decide() -> list[ContingencyPlan]:
            plan = self.plan(plan_id)
            types = list(incident_types) if incident_types is not None else plan.incident_types
            self._check_plan_content(plan.category, types, levels)
            plan.revise(name=name if name is not None else plan.name, incident_types=types,
                        levels=levels, note=note, actor=actor, at=when)
            return [plan]

        return self.command("plan.revise", actor, command_id, {
            "plan_id": plan_id, "levels": [lv.as_fact() for lv in levels], "note": note,
            "name": name,
            "incident_types": list(incident_types) if incident_types is not None else None,
        }, decide)

    def retire_plan(self, plan_id: UUID, *, reason: str, actor: Actor,
                    at: datetime | None = None, command_id: str | None = None) -> UUID:
        """Retire a plan: it can no longer be activated."""
        when = self.now(at)

        def decide() -> list[ContingencyPlan]:
            plan = self.plan(plan_id)
            plan.retire(reason=reason, actor=actor, at=when)
            return [plan]

        return self.command("plan.retire", actor, command_id,
                             {"plan_id": plan_id, "reason": reason}, decide)

