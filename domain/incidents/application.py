"""The incident application: the handler of every command of the emergency stream and of
its contingency plans (the commands themselves, as values: `domain/incidents/commands.py`).

Incidents and plans share one application because activating a plan reads the plan and
writes the incident's tasks in the same command; the incident (with its new tasks) is saved
in one transaction with the command's receipt.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from uuid import UUID, uuid4, uuid5

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate

from cityops.domain.application import (
    COMMAND_NAMESPACE,
    CityApplication,
    Clock,
    UnitOfWork,
    system_clock,
)
from cityops.domain.catalogue import Catalogue, IncidentLevel
from cityops.domain.commands import handles
from cityops.domain.errors import IllegalTransition, InvalidValue
from cityops.domain.incidents.commands import (
    AcknowledgeTask,
    ActivatePlan,
    AddSituationReport,
    AssignCommander,
    AssignResourceToIncident,
    AssignTask,
    CancelTask,
    ChangeIncidentLevel,
    CloseIncident,
    CompleteTask,
    ContainIncident,
    DeescalateIncident,
    DefinePlan,
    DismissIncident,
    EscalateIncident,
    FlareUpIncident,
    LinkToIncident,
    RecordResourceArrival,
    RecordResourceDeparture,
    ReleaseResourceFromIncident,
    ReportIncident,
    RespondToIncident,
    RetirePlan,
    ReviewIncident,
    RevisePlan,
    UnlinkFromIncident,
    VerifyIncident,
    WaiveTask,
)
from cityops.domain.incidents.incident import (
    ASSIGN_RESOURCE,
    INCIDENT_OPEN_FOR_RESOURCES,
    Incident,
)
from cityops.domain.incidents.plans import (
    MAX_LEVEL_RANK,
    MAX_TITLE,
    MIN_LEVEL_RANK,
    REGISTRY_ID,
    ContingencyPlan,
    PlanLevel,
    PlanOrders,
    PlanRegistry,
    plan_id_for,
)
from cityops.domain.model import checked_text


class Incidents(CityApplication):
    """Reports, verifies and commands emergency incidents, and keeps the contingency plans."""

    name = "incidents"
    runs_processes = True

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

    def admit_resource(self, incident_id: UUID) -> None:
        """Raise unless resources may be sent to the incident: `NotFound` for no such
        incident, `IllegalTransition` for one not open for resources."""
        self.incident(incident_id).require_status(ASSIGN_RESOURCE, *INCIDENT_OPEN_FOR_RESOURCES)

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

    # --- command handlers (run through `handle`, see `domain/commands.py`) ----------------

    @handles(ReportIncident)
    def report(self, command: ReportIncident, uow: UnitOfWork) -> list[Incident]:
        """An incident is reported at a level (IV until verified if none is assessed); its
        id is given when an alarm or a ticket escalates into it, else it derives from the
        command id (a repeated report lands on the same incident)."""
        self.catalogue.incident_type(command.category, command.incident_type)
        assessed = (self._level(command.level) if command.level is not None
                    else self._level_of_rank(MAX_LEVEL_RANK))
        warning = command.warning
        if warning is not None and warning not in self.catalogue.warning_colours:
            known = ", ".join(self.catalogue.warning_colours)
            raise InvalidValue(f"unknown warning colour {warning!r}; colours are {known}")
        if command.incident_id is not None:
            new_id = command.incident_id
        elif uow.command_id:
            new_id = uuid5(COMMAND_NAMESPACE, f"incident:{uow.command_id}")
        else:
            new_id = uuid4()
        if uow.exists(new_id):
            existing = uow.load(Incident, new_id)
            raise IllegalTransition(Incident.KIND, new_id,
                                    f"already reported ({existing.status.value})", "report")
        return [Incident.report(
            incident_id=new_id, category=command.category,
            incident_type=command.incident_type, level=assessed.code,
            level_rank=assessed.rank, title=command.title, description=command.description,
            location=command.location, affected_area=command.affected_area,
            source=command.source, source_ref=command.source_ref, warning=warning,
            actor=uow.actor, at=uow.now,
        )]

    def check_reportable(self, command: ReportIncident) -> None:
        """Refuse now what the `report` handler would refuse in this command: a command whose
        second step reports the incident (a ticket or an alarm escalated into one) checks it
        before its first."""
        self.catalogue.incident_type(command.category, command.incident_type)
        if command.level is not None:
            self._level(command.level)
        checked_text("title", command.title, limit=MAX_TITLE)

    @handles(VerifyIncident)
    def verify(self, command: VerifyIncident, uow: UnitOfWork) -> list[Incident]:
        """The centre confirms the incident (correcting its category, type or level)."""
        incident = uow.load(Incident, command.incident_id)
        final_category = command.category or incident.category
        final_type = command.incident_type or incident.incident_type
        self.catalogue.incident_type(final_category, final_type)
        final_level = self._level(command.level or incident.level)
        incident.verify(category=final_category, incident_type=final_type,
                        level=final_level.code, level_rank=final_level.rank,
                        note=command.note, actor=uow.actor, at=uow.now)
        return [incident]

    @handles(DismissIncident)
    def dismiss(self, command: DismissIncident, uow: UnitOfWork) -> list[Incident]:
        """The centre finds the report false."""
        incident = uow.load(Incident, command.incident_id)
        incident.dismiss(reason=command.reason, actor=uow.actor, at=uow.now)
        return [incident]

    @handles(RespondToIncident)
    def respond(self, command: RespondToIncident, uow: UnitOfWork) -> list[Incident]:
        """The response starts at a level and, usually, a contingency plan is activated."""
        target = self._level(command.level)
        incident = uow.load(Incident, command.incident_id)
        incident.respond(level=target.code, level_rank=target.rank, reason=command.reason,
                         actor=uow.actor, at=uow.now)
        if command.plan_id is not None:
            plan = uow.load(ContingencyPlan, command.plan_id)
            orders = plan.activation_orders(incident.category, incident.incident_type,
                                            target.code)
            incident.activate_plan(orders, actor=uow.actor, at=uow.now)
        return [incident]

    @handles(ActivatePlan)
    def activate_plan(self, command: ActivatePlan, uow: UnitOfWork) -> list[Incident]:
        """(Another) contingency plan is activated on a responding incident, at its level."""
        incident = uow.load(Incident, command.incident_id)
        plan = uow.load(ContingencyPlan, command.plan_id)
        orders = plan.activation_orders(incident.category, incident.incident_type,
                                        incident.level)
        incident.activate_plan(orders, actor=uow.actor, at=uow.now)
        return [incident]

    def _orders_for_level(self, incident: Incident, level: str,
                          uow: UnitOfWork) -> list[PlanOrders]:
        """The content for `level` of the plans activated on the incident. A plan retired
        since it was activated gives no more tasks."""
        orders = []
        for plan_id in incident.plans:
            plan = uow.load(ContingencyPlan, plan_id)
            plan_orders = plan.orders(level) if plan.is_active else None
            if plan_orders is not None:
                orders.append(plan_orders)
        return orders

    def _change_level(self, incident: Incident, target: IncidentLevel, reason: str,
                      uow: UnitOfWork) -> list[Incident]:
        incident.change_level(level=target.code, level_rank=target.rank, reason=reason,
                              orders=self._orders_for_level(incident, target.code, uow),
                              actor=uow.actor, at=uow.now)
        return [incident]

    @handles(ChangeIncidentLevel)
    def change_level(self, command: ChangeIncidentLevel, uow: UnitOfWork) -> list[Incident]:
        """The response level is raised or lowered (with the reason); raising it activates
        the activated plans' tasks of the new level that were not given out yet."""
        target = self._level(command.level)
        incident = uow.load(Incident, command.incident_id)
        return self._change_level(incident, target, command.reason, uow)

    def _step_level(self, command: EscalateIncident, uow: UnitOfWork) -> list[Incident]:
        step = command.STEP
        attempted = "raise the level of" if step < 0 else "lower the level of"
        incident = uow.load(Incident, command.incident_id)
        rank = incident.level_rank + step
        if not MIN_LEVEL_RANK <= rank <= MAX_LEVEL_RANK:
            extreme = "highest" if step < 0 else "lowest"
            incident.refuse(attempted, f"already at the {extreme} level {incident.level}")
        return self._change_level(incident, self._level_of_rank(rank), command.reason, uow)

    @handles(EscalateIncident)
    def escalate(self, command: EscalateIncident, uow: UnitOfWork) -> list[Incident]:
        """The response level goes up by one (IV -> III -> II -> I); nothing is above I."""
        return self._step_level(command, uow)

    @handles(DeescalateIncident)
    def deescalate(self, command: DeescalateIncident, uow: UnitOfWork) -> list[Incident]:
        """The response level goes down by one (I -> II -> III -> IV); nothing is below IV."""
        return self._step_level(command, uow)

    @handles(AddSituationReport)
    def add_situation_report(self, command: AddSituationReport,
                             uow: UnitOfWork) -> list[Incident]:
        """What is known now goes on the timeline (casualty figures, the affected area)."""
        incident = uow.load(Incident, command.incident_id)
        incident.add_situation_report(text=command.text, casualties=command.casualties,
                                      affected_area=command.affected_area, actor=uow.actor,
                                      at=uow.now)
        return [incident]

    @handles(LinkToIncident)
    def link(self, command: LinkToIncident, uow: UnitOfWork) -> list[Incident]:
        """A grid case, hotline ticket or hazard alarm is linked (again: no change)."""
        incident = uow.load(Incident, command.incident_id)
        incident.link(kind=command.kind, target_id=command.target_id, actor=uow.actor,
                      at=uow.now)
        return [incident]

    @handles(UnlinkFromIncident)
    def unlink(self, command: UnlinkFromIncident, uow: UnitOfWork) -> list[Incident]:
        """A link made by mistake is removed."""
        incident = uow.load(Incident, command.incident_id)
        incident.unlink(kind=command.kind, target_id=command.target_id, reason=command.reason,
                        actor=uow.actor, at=uow.now)
        return [incident]

    @handles(AssignCommander)
    def assign_commander(self, command: AssignCommander, uow: UnitOfWork) -> list[Incident]:
        """The incident's commander (a user id) is named, or replaced."""
        incident = uow.load(Incident, command.incident_id)
        incident.assign_commander(commander=command.commander, reason=command.reason,
                                  actor=uow.actor, at=uow.now)
        return [incident]

    @handles(AssignTask)
    def assign_task(self, command: AssignTask, uow: UnitOfWork) -> list[Incident]:
        """A department gets a task outside the plans, due `allowance` from now (its id
        derives from the command id unless given)."""
        self.catalogue.department(command.department)
        if command.task_id is not None:
            new_task_id = command.task_id
        elif uow.command_id:
            new_task_id = uuid5(COMMAND_NAMESPACE, f"incident-task:{uow.command_id}")
        else:
            new_task_id = uuid4()
        incident = uow.load(Incident, command.incident_id)
        incident.assign_task(task_id=new_task_id, department=command.department,
                             description=command.description, allowance=command.allowance,
                             actor=uow.actor, at=uow.now)
        return [incident]

    @handles(AcknowledgeTask)
    def acknowledge_task(self, command: AcknowledgeTask, uow: UnitOfWork) -> list[Incident]:
        """The department confirms it has the task in hand (its own department's only)."""
        incident = uow.load(Incident, command.incident_id)
        incident.acknowledge_task(command.task_id, actor=uow.actor, at=uow.now)
        return [incident]

    @handles(CompleteTask)
    def complete_task(self, command: CompleteTask, uow: UnitOfWork) -> list[Incident]:
        """The department reports the task done (its own department's only)."""
        incident = uow.load(Incident, command.incident_id)
        incident.complete_task(command.task_id, result=command.result, actor=uow.actor,
                               at=uow.now)
        return [incident]

    @handles(CancelTask)
    def cancel_task(self, command: CancelTask, uow: UnitOfWork) -> list[Incident]:
        """The centre calls a task off."""
        incident = uow.load(Incident, command.incident_id)
        incident.cancel_task(command.task_id, reason=command.reason, actor=uow.actor,
                             at=uow.now)
        return [incident]

    @handles(WaiveTask)
    def waive_task(self, command: WaiveTask, uow: UnitOfWork) -> list[Incident]:
        """The centre, for the commander, accepts closing without an open task, with the
        reason (the task counts as not done)."""
        incident = uow.load(Incident, command.incident_id)
        incident.waive_task(command.task_id, reason=command.reason, actor=uow.actor,
                            at=uow.now)
        return [incident]

    @handles(AssignResourceToIncident)
    def assign_resource(self, command: AssignResourceToIncident,
                        uow: UnitOfWork) -> list[Incident]:
        """A resource of a kind now works for the incident (this stream's side only)."""
        self.catalogue.resource_kind(command.kind)
        incident = uow.load(Incident, command.incident_id)
        incident.assign_resource(resource_id=command.resource_id, kind=command.kind,
                                 actor=uow.actor, at=uow.now)
        return [incident]

    @handles(ReleaseResourceFromIncident)
    def release_resource(self, command: ReleaseResourceFromIncident,
                         uow: UnitOfWork) -> list[Incident]:
        """A resource no longer works for the incident (this stream's side only)."""
        incident = uow.load(Incident, command.incident_id)
        incident.release_resource(resource_id=command.resource_id, actor=uow.actor,
                                  at=uow.now)
        return [incident]

    @handles(RecordResourceArrival)
    def record_resource_arrival(self, command: RecordResourceArrival,
                                uow: UnitOfWork) -> list[Incident]:
        """The resource stream says the resource was sent to the incident (dispatched or
        reassigned to it): its assignment starts at the time it was sent, or at the
        incident's last event when that is later (history is kept in time order)."""
        sent = self.now(command.sent_at)
        self.catalogue.resource_kind(command.kind)
        incident = uow.load(Incident, command.incident_id)
        incident.assign_resource(resource_id=command.resource_id, kind=command.kind,
                                 actor=uow.actor, at=max(sent, incident.modified_on))
        return [incident]

    @handles(RecordResourceDeparture)
    def record_resource_departure(self, command: RecordResourceDeparture,
                                  uow: UnitOfWork) -> list[Incident]:
        """The resource stream says the resource left the incident (`how`: cleared the
        scene, stood down, reassigned...): its assignment ends at the time it left, or at the
        incident's last event when that is later (history is kept in time order)."""
        left = self.now(command.left_at)
        incident = uow.load(Incident, command.incident_id)
        incident.release_resource(resource_id=command.resource_id, reason=command.how,
                                  actor=uow.actor, at=max(left, incident.modified_on))
        return [incident]

    @handles(ContainIncident)
    def contain(self, command: ContainIncident, uow: UnitOfWork) -> list[Incident]:
        """The situation is under control."""
        incident = uow.load(Incident, command.incident_id)
        incident.contain(note=command.note, actor=uow.actor, at=uow.now)
        return [incident]

    @handles(FlareUpIncident)
    def flare_up(self, command: FlareUpIncident, uow: UnitOfWork) -> list[Incident]:
        """A contained incident flared up: back to responding (its level and plans stay)."""
        incident = uow.load(Incident, command.incident_id)
        incident.flare_up(reason=command.reason, actor=uow.actor, at=uow.now)
        return [incident]

    @handles(CloseIncident)
    def close_incident(self, command: CloseIncident, uow: UnitOfWork) -> list[Incident]:
        """A contained incident is closed (the resources still assigned are released)."""
        incident = uow.load(Incident, command.incident_id)
        incident.close(note=command.note, actor=uow.actor, at=uow.now)
        return [incident]

    @handles(ReviewIncident)
    def review(self, command: ReviewIncident, uow: UnitOfWork) -> list[Incident]:
        """The after-action review of a closed incident is recorded."""
        for finding in command.findings:
            if finding.department is not None:
                self.catalogue.department(finding.department)
        incident = uow.load(Incident, command.incident_id)
        incident.review(summary=command.summary, findings=command.findings,
                        actor=uow.actor, at=uow.now)
        return [incident]

    # --- contingency plan handlers ---------------------------------------------------------

    @handles(DefinePlan)
    def define_plan(self, command: DefinePlan, uow: UnitOfWork) -> list[Aggregate]:
        """A contingency plan is defined for an incident category (all its types unless some
        are named): per level, the departments' tasks and the resources required. The plan
        registry lists it in the same transaction."""
        self._check_plan_content(command.category, command.incident_types, command.levels)
        plan_id = plan_id_for(command.code)
        if uow.exists(plan_id):
            existing = uow.load(ContingencyPlan, plan_id)
            raise IllegalTransition(ContingencyPlan.KIND, f"{command.code} ({plan_id})",
                                    f"already defined ({existing.status.value})", "define")
        plan = ContingencyPlan.define(code=command.code, name=command.plan_name,
                                      category=command.category,
                                      incident_types=command.incident_types,
                                      levels=command.levels, actor=uow.actor, at=uow.now)
        registry = self._registry() or PlanRegistry.open()
        registry.list_plan(plan, uow.actor)
        return [plan, registry]

    @handles(RevisePlan)
    def revise_plan(self, command: RevisePlan, uow: UnitOfWork) -> list[ContingencyPlan]:
        """A plan's content is replaced by a new revision (name and types kept unless
        given); incidents already responding keep the tasks they were given."""
        plan = uow.load(ContingencyPlan, command.plan_id)
        types = (list(command.incident_types) if command.incident_types is not None
                 else plan.incident_types)
        self._check_plan_content(plan.category, types, command.levels)
        plan.revise(name=command.plan_name if command.plan_name is not None else plan.name,
                    incident_types=types, levels=command.levels, note=command.note,
                    actor=uow.actor, at=uow.now)
        return [plan]

    @handles(RetirePlan)
    def retire_plan(self, command: RetirePlan, uow: UnitOfWork) -> list[ContingencyPlan]:
        """A plan is retired: it can no longer be activated."""
        plan = uow.load(ContingencyPlan, command.plan_id)
        plan.retire(reason=command.reason, actor=uow.actor, at=uow.now)
        return [plan]
