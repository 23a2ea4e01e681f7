"""The grid-case application: every command of the city-management workflow, in one place."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4, uuid5

from cityops.domain.actors import Actor
from cityops.domain.application import COMMAND_NAMESPACE, CityApplication, Clock, system_clock
from cityops.domain.catalogue import Catalogue, LimitUnit, TimeLimit, Urgency
from cityops.domain.duplicates import DuplicatePolicy, OpenReportFinder, propose_duplicates
from cityops.domain.errors import InvalidValue
from cityops.domain.geometry import GeoPoint
from cityops.domain.gridcases.case import CaseSource, CaseStatus, GridCase, RejectionReason
from cityops.domain.ports import CityGrid
from cityops.domain.supervision import Light, light
from cityops.domain.values import checked_deadline, parse_enum


class GridCases(CityApplication):
    """Reports, registers, dispatches and supervises city-management cases."""

    name = "gridcases"

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


    # --- commands -----------------------------------------------------------------------

    def report(
        self,
        *,
        source: CaseSource | str,
        category: str,
        description: str,
        location: GeoPoint,
        actor: Actor,
        urgency: Urgency | str = Urgency.NORMAL,
        photos: list[str] | None = None,
        ticket_id: UUID | None = None,
        case_id: UUID | None = None,
        at: datetime | None = None,
        command_id: str | None = None,
    ) -> UUID:
        """Report a case: it is located to its grid cell and checked for duplicates.

        `case_id` is for cases another stream derives deterministically (a hotline ticket
        that becomes a case); otherwise the id comes from the command id, or is new."""
        source = parse_enum(CaseSource, source, "case source")
        urgency = parse_enum(Urgency, urgency, "urgency", "urgencies")
        self.catalogue.case_category(category)
        when = self.now(at)
        # A derived id makes a repeated report (same command id) land on the same case.
        if case_id is None:
            case_id = (uuid5(COMMAND_NAMESPACE, f"grid-case:{command_id}") if command_id
                       else uuid4())
        new_id = case_id

        def decide() -> list[GridCase]:
            cell = self.locator.locate_cell(location)
            if cell is None:
                raise InvalidValue(
                    f"location {location.lon}, {location.lat} is outside the city"
                )
            policy = self.duplicate_policy
            candidates = self.open_reports.open_reports_near(
                location, policy.radius_m, when - policy.window
            )
            duplicates = propose_duplicates(category=category, location=location, at=when,
                                            candidates=candidates, policy=policy)
            # No look-up of `new_id` first: the new case's first event conflicts on save if
            # the id is taken, and only then is the conflict explained (below).
            return [GridCase.report(
                case_id=new_id, source=source, category=category, urgency=urgency,
                description=description, location=location, grid_cell=cell,
                photos=list(photos or []), possible_duplicates=duplicates, ticket_id=ticket_id,
                actor=actor, at=when, cell_inspector=self.locator.inspector_of(cell),
                **self._stage("reported", when),
            )]

        def already_reported() -> None:
            if self.exists(new_id):
                self.case(new_id).refuse("report", "it was already reported")

        return self.command("grid-case.report", actor, command_id, {
            "source": source, "category": category, "description": description,
            "location": [location.lon, location.lat], "urgency": urgency,
            "photos": photos or [], "ticket_id": ticket_id,
        }, decide, explain_conflict=already_reported)

    def register(self, case_id: UUID, *, actor: Actor, category: str | None = None,
                 urgency: Urgency | str | None = None, note: str = "",
                 at: datetime | None = None, command_id: str | None = None) -> UUID:
        """The centre accepts a reported case (it may correct category and urgency)."""
        when = self.now(at)

        def decide() -> list[GridCase]:
            case = self.case(case_id)
            final_category = category or case.category
            self.catalogue.case_category(final_category)
            final_urgency = (parse_enum(Urgency, urgency, "urgency", "urgencies")
                             if urgency is not None else case.urgency)
            proposed = self.catalogue.route(final_category, case.grid_cell)
            case.register(category=final_category, urgency=final_urgency,
                          proposed_department=proposed, note=note, actor=actor, at=when,
                          **self._stage("registered", when))
            return [case]

        return self.command("grid-case.register", actor, command_id, {
            "case_id": case_id, "category": category, "urgency": urgency, "note": note,
        }, decide)

    def reject(self, case_id: UUID, *, reason: RejectionReason | str, actor: Actor,
               duplicate_of: UUID | None = None, note: str = "", at: datetime | None = None,
               command_id: str | None = None) -> UUID:
        """The centre refuses a report: a duplicate (merged into another case), not a
        city-management matter, or not reproducible."""
        when = self.now(at)
        reason = parse_enum(RejectionReason, reason, "rejection reason")

        def decide() -> list[GridCase]:
            case = self.case(case_id)
            if duplicate_of is not None:
                original = self.case(duplicate_of)
                if not original.is_open and original.status is not CaseStatus.CLOSED:
                    raise InvalidValue(f"case {duplicate_of} was rejected: merge into another")
            case.reject(reason=reason, duplicate_of=duplicate_of, note=note, actor=actor, at=when)
            return [case]

        return self.command("grid-case.reject", actor, command_id, {
            "case_id": case_id, "reason": reason, "duplicate_of": duplicate_of, "note": note,
        }, decide)

    def dispatch(self, case_id: UUID, *, actor: Actor, department: str | None = None,
                 instructions: str = "", at: datetime | None = None,
                 command_id: str | None = None) -> UUID:
        """Send the case to one department (the proposed one unless the dispatcher overrides)
        with a deadline from the category catalogue, counted on the business calendar."""
        when = self.now(at)

        def decide() -> list[GridCase]:
            case = self.case(case_id)
            self._dispatch(case, department=department, instructions=instructions,
                           actor=actor, at=when)
            return [case]

        return self.command("grid-case.dispatch", actor, command_id, {
            "case_id": case_id, "department": department, "instructions": instructions,
        }, decide)

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

    def review_return(self, case_id: UUID, *, accept: bool, actor: Actor,
                      department: str | None = None, instructions: str = "", reason: str = "",
                      at: datetime | None = None, command_id: str | None = None) -> UUID:
        """The centre reviews a department's return. Accept: the case is dispatched to
        another department (`department`, default the proposed one) with a new deadline.
        Reject (`reason` required): back to the returning department on the clock it had."""
        when = self.now(at)

        def decide() -> list[GridCase]:
            case = self.case(case_id)
            if accept:
                case.require_status("accept the return of", CaseStatus.RETURNED)
                self._dispatch(case, department=department, instructions=instructions,
                               actor=actor, at=when, review_note=reason)
            else:
                if department is not None:
                    raise InvalidValue("a rejected return goes back to the department that "
                                       "returned it: give no department")
                case.reject_return(reason=reason, actor=actor, at=when)
            return [case]

        return self.command("grid-case.review-return", actor, command_id, {
            "case_id": case_id, "accept": accept, "department": department,
            "instructions": instructions, "reason": reason,
        }, decide)

    def return_to_centre(self, case_id: UUID, *, reason: str, actor: Actor,
                         suggested_department: str | None = None, at: datetime | None = None,
                         command_id: str | None = None) -> UUID:
        """A department sends the case back as not its responsibility."""
        when = self.now(at)
        if suggested_department is not None:
            self.catalogue.department(suggested_department)

        def decide() -> list[GridCase]:
            case = self.case(case_id)
            case.return_to_centre(reason=reason, suggested_department=suggested_department,
                                  actor=actor, at=when, **self._stage("returned", when))
            return [case]

        return self.command("grid-case.return-to-centre", actor, command_id, {
            "case_id": case_id, "reason": reason, "suggested_department": suggested_department,
        }, decide)

    def request_extension(self, case_id: UUID, *, requested_deadline: datetime, reason: str,
                          actor: Actor, at: datetime | None = None,
                          command_id: str | None = None) -> UUID:
        """A department asks for more time."""
        when = self.now(at)
        checked_deadline("requested deadline", requested_deadline, when)

        def decide() -> list[GridCase]:
            case = self.case(case_id)
            case.request_extension(requested_deadline=requested_deadline, reason=reason,
                                   actor=actor, at=when)
            return [case]

        return self.command("grid-case.request-extension", actor, command_id, {
            "case_id": case_id, "requested_deadline": requested_deadline, "reason": reason,
        }, decide)

    def decide_extension(self, case_id: UUID, *, approve: bool, actor: Actor,
                         deadline: datetime | None = None, reason: str = "",
                         at: datetime | None = None, command_id: str | None = None) -> UUID:
        """The centre approves (optionally with another deadline) or refuses an extension."""
        when = self.now(at)
        if deadline is not None:
            checked_deadline("deadline", deadline, when)

        def decide() -> list[GridCase]:
            case = self.case(case_id)
            if approve:
                case.approve_extension(deadline=deadline, actor=actor, at=when)
            else:
                case.refuse_extension(reason=reason, actor=actor, at=when)
            return [case]

        return self.command("grid-case.decide-extension", actor, command_id, {
            "case_id": case_id, "approve": approve, "deadline": deadline, "reason": reason,
        }, decide)

    def request_suspension(self, case_id: UUID, *, reason: str, actor: Actor,
                           expected_resume_at: datetime | None = None,
                           at: datetime | None = None, command_id: str | None = None) -> UUID:
        """A department asks the centre to stop the clock of a case that needs long work."""
        when = self.now(at)
        if expected_resume_at is not None and expected_resume_at.tzinfo is None:
            raise InvalidValue("expected resume time has no time zone")

        def decide() -> list[GridCase]:
            case = self.case(case_id)
            case.request_suspension(reason=reason, expected_resume_at=expected_resume_at,
                                    actor=actor, at=when)
            return [case]

        return self.command("grid-case.request-suspension", actor, command_id, {
            "case_id": case_id, "reason": reason, "expected_resume_at": expected_resume_at,
        }, decide)

    def decide_suspension(self, case_id: UUID, *, approve: bool, actor: Actor,
                          expected_resume_at: datetime | None = None, reason: str = "",
                          at: datetime | None = None, command_id: str | None = None) -> UUID:
        """The centre approves (the clock stops from now) or refuses a suspension request."""
        when = self.now(at)
        if expected_resume_at is not None and expected_resume_at.tzinfo is None:
            raise InvalidValue("expected resume time has no time zone")

        def decide() -> list[GridCase]:
            case = self.case(case_id)
            if approve:
                case.approve_suspension(expected_resume_at=expected_resume_at, actor=actor,
                                        at=when)
            else:
                case.refuse_suspension(reason=reason, actor=actor, at=when)
            return [case]

        return self.command("grid-case.decide-suspension", actor, command_id, {
            "case_id": case_id, "approve": approve, "expected_resume_at": expected_resume_at,
            "reason": reason,
        }, decide)

    def suspend(self, case_id: UUID, *, reason: str, actor: Actor, at: datetime | None = None,
                command_id: str | None = None) -> UUID:
        """The centre stops the clock of a case that needs long work (a department asks with
        `request_suspension`)."""
        when = self.now(at)

        def decide() -> list[GridCase]:
            case = self.case(case_id)
            case.suspend(reason=reason, actor=actor, at=when)
            return [case]

        return self.command("grid-case.suspend", actor, command_id,
                             {"case_id": case_id, "reason": reason}, decide)

    def resume(self, case_id: UUID, *, actor: Actor, at: datetime | None = None,
               command_id: str | None = None) -> UUID:
        """Restart the clock: the deadline moves by the counted time spent suspended."""
        when = self.now(at)

        def decide() -> list[GridCase]:
            case = self.case(case_id)
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
            case.resume(deadline=deadline, paused=stage.paused + paused_now, actor=actor, at=when)
            return [case]

        return self.command("grid-case.resume", actor, command_id, {"case_id": case_id}, decide)

    def handle(self, case_id: UUID, *, result: str, actor: Actor,
               evidence: list[str] | None = None, at: datetime | None = None,
               command_id: str | None = None) -> UUID:
        """The department reports the result, with evidence."""
        when = self.now(at)

        def decide() -> list[GridCase]:
            case = self.case(case_id)
            case.handle(result=result, evidence=list(evidence or []), actor=actor, at=when,
                        **self._stage("handled", when))
            return [case]

        return self.command("grid-case.handle", actor, command_id, {
            "case_id": case_id, "result": result, "evidence": evidence or [],
        }, decide)

    def verify(self, case_id: UUID, *, fixed: bool, actor: Actor, note: str = "",
               photos: list[str] | None = None, at: datetime | None = None,
               command_id: str | None = None) -> UUID:
        """An inspector checks on site: fixed -> verified; not fixed -> rework."""
        when = self.now(at)

        def decide() -> list[GridCase]:
            case = self.case(case_id)
            cell_inspector = self.cell_inspector(case)
            if fixed:
                case.verify(note=note, photos=list(photos or []), actor=actor, at=when,
                            cell_inspector=cell_inspector, **self._stage("verified", when))
            else:
                deadline, unit = self._handling(case, when)
                case.order_rework(note=note, photos=list(photos or []), deadline=deadline,
                                  limit_unit=unit, actor=actor, at=when,
                                  cell_inspector=cell_inspector)
            return [case]

        return self.command("grid-case.verify", actor, command_id, {
            "case_id": case_id, "fixed": fixed, "note": note, "photos": photos or [],
        }, decide)

    def assign_verifier(self, case_id: UUID, *, inspector: str, actor: Actor, reason: str = "",
                        at: datetime | None = None, command_id: str | None = None) -> UUID:
        """The centre names the inspector who verifies the case on site, in place of the
        inspector of its cell."""
        when = self.now(at)

        def decide() -> list[GridCase]:
            case = self.case(case_id)
            if not isinstance(inspector, str) or not self.locator.is_inspector(inspector):
                raise InvalidValue(f"unknown inspector {inspector!r}: not one of the city's "
                                   "grid inspectors")
            case.assign_verifier(inspector=inspector, reason=reason, actor=actor, at=when)
            return [case]

        return self.command("grid-case.assign-verifier", actor, command_id, {
            "case_id": case_id, "inspector": inspector, "reason": reason,
        }, decide)

    def close_case(self, case_id: UUID, *, actor: Actor, note: str = "", at: datetime | None = None,
              command_id: str | None = None) -> UUID:
        """Close a verified case; it then counts in evaluation."""
        when = self.now(at)

        def decide() -> list[GridCase]:
            case = self.case(case_id)
            case.close(note=note, actor=actor, at=when)
            return [case]

        return self.command("grid-case.close", actor, command_id,
                             {"case_id": case_id, "note": note}, decide)
