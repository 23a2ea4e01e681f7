"""The grid-case application: the handler of every command of the city-management workflow
(the commands themselves, as values: `domain/gridcases/commands.py`)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4, uuid5

from cityops.domain.actors import Actor
from cityops.domain.application import (
    COMMAND_NAMESPACE,
    CityApplication,
    Clock,
    UnitOfWork,
    system_clock,
)
from cityops.domain.catalogue import Catalogue, LimitUnit, TimeLimit
from cityops.domain.commands import handles
from cityops.domain.duplicates import DuplicatePolicy, OpenReportFinder, propose_duplicates
from cityops.domain.errors import InvalidValue
from cityops.domain.geometry import GeoPoint
from cityops.domain.gridcases.case import CaseStatus, GridCase
from cityops.domain.gridcases.commands import (
    AssignCaseVerifier,
    CloseCase,
    DecideCaseExtension,
    DecideCaseSuspension,
    DispatchCase,
    HandleCase,
    RegisterCase,
    RejectCase,
    ReportCase,
    RequestCaseExtension,
    RequestCaseSuspension,
    ResumeCase,
    ReturnCaseToCentre,
    ReviewCaseReturn,
    SuspendCase,
    VerifyCase,
)
from cityops.domain.ports import CityGrid
from cityops.domain.supervision import Light, light
from cityops.domain.values import checked_deadline


class GridCases(CityApplication):
    """Reports, registers, dispatches and supervises city-management cases."""

    name = "gridcases"
    runs_processes = True

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        *,
        catalogue: Catalogue,
        locator: CityGrid,
        open_reports: OpenReportFinder,
        duplicate_policy: DuplicatePolicy | None = None,
        clock: Clock = system_clock,
    ) -> None:
        super().__init__(env, clock=clock)
        self.catalogue = catalogue
        self.locator = locator
        """Locates reports to their cell, and says who patrols each cell."""
        self.open_reports = open_reports
        self.duplicate_policy = duplicate_policy or DuplicatePolicy()

    # --- helpers ------------------------------------------------------------------------

    def _stage_limit(self, stage: str) -> TimeLimit:
        return self.catalogue.stage_limits.get(stage, TimeLimit(1, LimitUnit.WORKING_DAYS))

    def _stage(self, stage: str, at: datetime) -> dict[str, Any]:
        limit = self._stage_limit(stage)
        return {"stage_deadline": limit.deadline(at, self.catalogue.calendar),
                "stage_unit": limit.unit}

    def _handling(self, case: GridCase, at: datetime) -> tuple[datetime, LimitUnit]:
        limit = self.catalogue.case_category(case.category).time_limit(case.urgency)
        return limit.deadline(at, self.catalogue.calendar), limit.unit

    def case(self, case_id: UUID) -> GridCase:
        return self.load(GridCase, case_id)

    def cell_inspector(self, case: GridCase) -> str | None:
        """The inspector who patrols the case's cell now (the city's map)."""
        return self.locator.inspector_of(case.grid_cell) if case.grid_cell else None

    def light(self, case: GridCase, now: datetime | None = None) -> Light | None:
        """The supervision light of an open case now (None for closed or rejected cases)."""
        if not case.is_open or case.stage is None:
            return None
        return light(case.stage, now or self.clock(), self.catalogue.calendar,
                     self.catalogue.yellow_fraction)

    # --- command handlers (run through `handle`, see `domain/commands.py`) ----------------

    @handles(ReportCase)
    def report(self, command: ReportCase, uow: UnitOfWork) -> list[GridCase]:
        """A reported case is located to its grid cell and checked for duplicates."""
        self.catalogue.case_category(command.category)
        when, location = uow.now, command.location
        # A derived id makes a repeated report (same command id) land on the same case.
        new_id = command.case_id
        if new_id is None:
            new_id = (uuid5(COMMAND_NAMESPACE, f"grid-case:{uow.command_id}")
                      if uow.command_id else uuid4())

        def already_reported() -> None:
            if uow.exists(new_id):
                self.case(new_id).refuse("report", "it was already reported")

        uow.on_conflict(already_reported)
        cell = self._cell_of(location)
        policy = self.duplicate_policy
        candidates = self.open_reports.open_reports_near(location, policy.radius_m,
                                                         when - policy.window)
        duplicates = propose_duplicates(category=command.category, location=location,
                                        at=when, candidates=candidates, policy=policy)
        # No look-up of `new_id` first: the new case's first event conflicts on save if the
        # id is taken, and only then is the conflict explained (above).
        return [GridCase.report(
            case_id=new_id, source=command.source, category=command.category,
            urgency=command.urgency, description=command.description, location=location,
            grid_cell=cell, photos=list(command.photos), possible_duplicates=duplicates,
            ticket_id=command.ticket_id, actor=uow.actor, at=when,
            cell_inspector=self.locator.inspector_of(cell), **self._stage("reported", when),
        )]

    def check_reportable(self, command: ReportCase) -> None:
        """Refuse now what the `report` handler would refuse in this command: a command whose
        second step reports the case (a ticket converted into one) checks it before its
        first."""
        self.catalogue.case_category(command.category)
        self._cell_of(command.location)

    def _cell_of(self, location: GeoPoint) -> str:
        cell = self.locator.locate_cell(location)
        if cell is None:
            raise InvalidValue(f"location {location.lon}, {location.lat} is outside the city")
        return cell

    @handles(RegisterCase)
    def register(self, command: RegisterCase, uow: UnitOfWork) -> list[GridCase]:
        """The centre accepts a reported case (it may correct category and urgency)."""
        case = uow.load(GridCase, command.case_id)
        final_category = command.category or case.category
        self.catalogue.case_category(final_category)
        final_urgency = command.urgency if command.urgency is not None else case.urgency
        proposed = self.catalogue.route(final_category, case.grid_cell)
        case.register(category=final_category, urgency=final_urgency,
                      proposed_department=proposed, note=command.note, actor=uow.actor,
                      at=uow.now, **self._stage("registered", uow.now))
        return [case]

    @handles(RejectCase)
    def reject(self, command: RejectCase, uow: UnitOfWork) -> list[GridCase]:
        """The centre refuses a report (a duplicate is merged into another case)."""
        case = uow.load(GridCase, command.case_id)
        if command.duplicate_of is not None:
            original = uow.load(GridCase, command.duplicate_of)
            if not original.is_open and original.status is not CaseStatus.CLOSED:
                raise InvalidValue(
                    f"case {command.duplicate_of} was rejected: merge into another")
        case.reject(reason=command.reason, duplicate_of=command.duplicate_of,
                    note=command.note, actor=uow.actor, at=uow.now)
        return [case]

    @handles(DispatchCase)
    def dispatch(self, command: DispatchCase, uow: UnitOfWork) -> list[GridCase]:
        """The case goes to one department with a deadline from the category catalogue."""
        case = uow.load(GridCase, command.case_id)
        self._dispatch(case, department=command.department,
                       instructions=command.instructions, actor=uow.actor, at=uow.now)
        return [case]

    def _dispatch(self, case: GridCase, *, department: str | None, instructions: str,
                  actor: Actor, at: datetime, review_note: str = "") -> None:
        target = department or case.proposed_department
        if target is None:
            # Only a case that was never registered has no proposal: say that first.
            case.require_status("dispatch", CaseStatus.REGISTERED, CaseStatus.RETURNED)
            raise InvalidValue("no department given and none proposed")
        self.catalogue.department(target)
        deadline, unit = self._handling(case, at)
        case.dispatch(department=target, deadline=deadline, limit_unit=unit,
                      instructions=instructions, actor=actor, at=at, review_note=review_note)

    @handles(ReviewCaseReturn)
    def review_return(self, command: ReviewCaseReturn, uow: UnitOfWork) -> list[GridCase]:
        """Accepted: dispatched to another department; rejected: back to the one that
        returned it, on the clock it had."""
        case = uow.load(GridCase, command.case_id)
        if command.accept:
            case.require_status("accept the return of", CaseStatus.RETURNED)
            self._dispatch(case, department=command.department,
                           instructions=command.instructions, actor=uow.actor, at=uow.now,
                           review_note=command.reason)
        else:
            case.reject_return(reason=command.reason, actor=uow.actor, at=uow.now)
        return [case]

    @handles(ReturnCaseToCentre)
    def return_to_centre(self, command: ReturnCaseToCentre,
                         uow: UnitOfWork) -> list[GridCase]:
        """A department sends the case back as not its responsibility."""
        if command.suggested_department is not None:
            self.catalogue.department(command.suggested_department)
        case = uow.load(GridCase, command.case_id)
        case.return_to_centre(reason=command.reason,
                              suggested_department=command.suggested_department,
                              actor=uow.actor, at=uow.now, **self._stage("returned", uow.now))
        return [case]

    @handles(RequestCaseExtension)
    def request_extension(self, command: RequestCaseExtension,
                          uow: UnitOfWork) -> list[GridCase]:
        """A department asks for more time."""
        checked_deadline("requested deadline", command.requested_deadline, uow.now)
        case = uow.load(GridCase, command.case_id)
        case.request_extension(requested_deadline=command.requested_deadline,
                               reason=command.reason, actor=uow.actor, at=uow.now)
        return [case]

    @handles(DecideCaseExtension)
    def decide_extension(self, command: DecideCaseExtension,
                         uow: UnitOfWork) -> list[GridCase]:
        """The centre approves (optionally with another deadline) or refuses."""
        if command.deadline is not None:
            checked_deadline("deadline", command.deadline, uow.now)
        case = uow.load(GridCase, command.case_id)
        if command.approve:
            case.approve_extension(deadline=command.deadline, actor=uow.actor, at=uow.now)
        else:
            case.refuse_extension(reason=command.reason, actor=uow.actor, at=uow.now)
        return [case]

    @handles(RequestCaseSuspension)
    def request_suspension(self, command: RequestCaseSuspension,
                           uow: UnitOfWork) -> list[GridCase]:
        """A department asks the centre to stop the clock."""
        case = uow.load(GridCase, command.case_id)
        case.request_suspension(reason=command.reason,
                                expected_resume_at=command.expected_resume_at,
                                actor=uow.actor, at=uow.now)
        return [case]

    @handles(DecideCaseSuspension)
    def decide_suspension(self, command: DecideCaseSuspension,
                          uow: UnitOfWork) -> list[GridCase]:
        """The centre approves (the clock stops from now) or refuses the request."""
        case = uow.load(GridCase, command.case_id)
        if command.approve:
            case.approve_suspension(expected_resume_at=command.expected_resume_at,
                                    actor=uow.actor, at=uow.now)
        else:
            case.refuse_suspension(reason=command.reason, actor=uow.actor, at=uow.now)
        return [case]

    @handles(SuspendCase)
    def suspend(self, command: SuspendCase, uow: UnitOfWork) -> list[GridCase]:
        """The centre stops the clock of a case that needs long work."""
        case = uow.load(GridCase, command.case_id)
        case.suspend(reason=command.reason, actor=uow.actor, at=uow.now)
        return [case]

    @handles(ResumeCase)
    def resume(self, command: ResumeCase, uow: UnitOfWork) -> list[GridCase]:
        """The clock restarts: the deadline moves by the counted time spent suspended."""
        when = uow.now
        case = uow.load(GridCase, command.case_id)
        stage = case.stage
        if stage is None or stage.paused_since is None:
            case.require_status("resume", CaseStatus.SUSPENDED)
            raise AssertionError("a suspended case has a paused clock")
        limit = TimeLimit(1, stage.unit)
        calendar = self.catalogue.calendar
        remaining = limit.elapsed(stage.paused_since, stage.deadline, calendar)
        paused_now = limit.elapsed(stage.paused_since, when, calendar)
        if stage.unit is LimitUnit.HOURS:
            deadline = when + remaining
        else:
            deadline = calendar.add_working_time(when, remaining)
        case.resume(deadline=deadline, paused=stage.paused + paused_now, actor=uow.actor,
                    at=when)
        return [case]

    @handles(HandleCase)
    def handle_case(self, command: HandleCase, uow: UnitOfWork) -> list[GridCase]:
        """The department reports the result, with evidence."""
        case = uow.load(GridCase, command.case_id)
        case.handle(result=command.result, evidence=list(command.evidence), actor=uow.actor,
                    at=uow.now, **self._stage("handled", uow.now))
        return [case]

    @handles(VerifyCase)
    def verify(self, command: VerifyCase, uow: UnitOfWork) -> list[GridCase]:
        """Fixed: verified; not fixed: rework, on a new handling deadline."""
        when = uow.now
        case = uow.load(GridCase, command.case_id)
        cell_inspector = self.cell_inspector(case)
        if command.fixed:
            case.verify(note=command.note, photos=list(command.photos), actor=uow.actor,
                        at=when, cell_inspector=cell_inspector,
                        **self._stage("verified", when))
        else:
            deadline, unit = self._handling(case, when)
            case.order_rework(note=command.note, photos=list(command.photos),
                              deadline=deadline, limit_unit=unit, actor=uow.actor, at=when,
                              cell_inspector=cell_inspector)
        return [case]

    @handles(AssignCaseVerifier)
    def assign_verifier(self, command: AssignCaseVerifier,
                        uow: UnitOfWork) -> list[GridCase]:
        """The inspector named verifies the case, in place of the inspector of its cell."""
        case = uow.load(GridCase, command.case_id)
        inspector = command.inspector
        if not isinstance(inspector, str) or not self.locator.is_inspector(inspector):
            raise InvalidValue(f"unknown inspector {inspector!r}: not one of the city's "
                               "grid inspectors")
        case.assign_verifier(inspector=inspector, reason=command.reason, actor=uow.actor,
                             at=uow.now)
        return [case]

    @handles(CloseCase)
    def close_case(self, command: CloseCase, uow: UnitOfWork) -> list[GridCase]:
        """A verified case closes; it then counts in evaluation."""
        case = uow.load(GridCase, command.case_id)
        case.close(note=command.note, actor=uow.actor, at=uow.now)
        return [case]
