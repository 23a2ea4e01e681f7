"""The grid case: the standard digital city-management workflow, from report to closing.

reported -> registered (or rejected) -> dispatched -> handled -> verified -> closed, with
rework (verification failed -> dispatched again), return to the centre, deadline extension
and suspension as side paths. Each stage has a deadline; the supervision light is computed
from it (see `supervision`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from uuid import UUID

from cityops.domain.actors import Actor, Role
from cityops.domain.catalogue import LimitUnit, Urgency
from cityops.domain.errors import InvalidValue, NotPermitted
from cityops.domain.geometry import GeoPoint
from cityops.domain.model import CityAggregate, checked_text, iso_or_none
from cityops.domain.returns import ReturnOutcome, ReturnRecord, returns_as_dicts, review_latest
from cityops.domain.supervision import StageClock
from cityops.domain.values import checked_deadline


class CaseStatus(StrEnum):
    REPORTED = "reported"
    REGISTERED = "registered"
    REJECTED = "rejected"
    DISPATCHED = "dispatched"
    RETURNED = "returned"
    """The department sent it back as not its responsibility; the centre re-dispatches."""
    SUSPENDED = "suspended"
    HANDLED = "handled"
    VERIFIED = "verified"
    CLOSED = "closed"


class CaseSource(StrEnum):
    INSPECTOR = "inspector"
    HOTLINE = "hotline"
    SENSOR = "sensor"
    CAMERA = "camera"


class RejectionReason(StrEnum):
    DUPLICATE = "duplicate"
    NOT_CITY_MANAGEMENT = "not-city-management"
    NOT_REPRODUCIBLE = "not-reproducible"


OPEN_STATUSES = frozenset(
    {
        CaseStatus.REPORTED,
        CaseStatus.REGISTERED,
        CaseStatus.DISPATCHED,
        CaseStatus.RETURNED,
        CaseStatus.SUSPENDED,
        CaseStatus.HANDLED,
        CaseStatus.VERIFIED,
    }
)
MAX_PHOTOS = 12
VERIFIER_ASSIGNABLE = (CaseStatus.REGISTERED, CaseStatus.DISPATCHED, CaseStatus.RETURNED,
                       CaseStatus.SUSPENDED, CaseStatus.HANDLED)
"""While a verification is still to come, the centre may say who does it."""




@dataclass(frozen=True)
class ExtensionRequest:
    """The department's request for a later handling deadline, until the centre decides."""

    requested_deadline: datetime
    reason: str
    requested_at: datetime
    requested_by: str

    def summary(self) -> dict[str, Any]:
        return {"requested_deadline": self.requested_deadline.isoformat(),
                "reason": self.reason, "requested_at": self.requested_at.isoformat(),
                "requested_by": self.requested_by}


@dataclass(frozen=True)
class SuspensionRequest:
    """The department's request to stop the case's clock, until the centre decides."""

    reason: str
    expected_resume_at: datetime | None
    requested_at: datetime
    requested_by: str

    def summary(self) -> dict[str, Any]:
        return {"reason": self.reason, "expected_resume_at": iso_or_none(self.expected_resume_at),
                "requested_at": self.requested_at.isoformat(),
                "requested_by": self.requested_by}


def _photos(photos: list[str]) -> list[str]:
    if len(photos) > MAX_PHOTOS:
        raise InvalidValue(f"at most {MAX_PHOTOS} photos per step")
    return [checked_text("photo reference", p) for p in photos]


class GridCase(CityAggregate):
    """A city-management case reported in a unit grid cell and handled by one department."""

    KIND = "grid case"

    class Reported(CityAggregate.Created):
        """`GridCase.__init__` makes the case's state from these facts (the library
        passes a created event's fields to `__init__` by name)."""

        actor: Actor
        source: str
        category: str
        urgency: str
        description: str
        location: GeoPoint
        grid_cell: str | None
        photos: list[str]
        stage_deadline: datetime
        stage_unit: str
        possible_duplicates: list[UUID]
        ticket_id: UUID | None

    class Registered(CityAggregate.Event):
        category: str
        urgency: str
        proposed_department: str
        stage_deadline: datetime
        stage_unit: str
        note: str

        def apply(self, case: GridCase) -> None:
            case.status = CaseStatus.REGISTERED
            case.category = self.category
            case.urgency = Urgency(self.urgency)
            case.proposed_department = self.proposed_department
            if self.note:
                case.notes.append(self.note)
            case.start_stage(self.timestamp, self.stage_deadline, self.stage_unit)

    class Rejected(CityAggregate.Event):
        reason: str
        duplicate_of: UUID | None
        note: str

        def apply(self, case: GridCase) -> None:
            case.status = CaseStatus.REJECTED
            case.rejection_reason = RejectionReason(self.reason)
            case.duplicate_of = self.duplicate_of
            if self.note:
                case.notes.append(self.note)
            case.closed_at = self.timestamp
            case.stage = None

    class Dispatched(CityAggregate.Event):
        department: str
        deadline: datetime
        limit_unit: str
        instructions: str

        def apply(self, case: GridCase) -> None:
            case.status = CaseStatus.DISPATCHED
            case.department = self.department
            case.handling_deadline = self.deadline
            case.dispatched_at = self.timestamp
            case.dispatch_count += 1
            case.start_stage(self.timestamp, self.deadline, self.limit_unit)

    class ReturnedToCentre(CityAggregate.Event):
        reason: str
        suggested_department: str | None
        stage_deadline: datetime
        stage_unit: str

        def apply(self, case: GridCase) -> None:
            assert case.department is not None
            case.returns.append(ReturnRecord(
                ordinal=len(case.returns) + 1, department=case.department,
                returned_at=self.timestamp, returned_by=self.actor.user_id,
                reason=self.reason, suggested_department=self.suggested_department,
                clock=case.stage,
            ))
            case.status = CaseStatus.RETURNED
            case.return_count += 1
            case.returned_by = case.department
            case.return_reason = self.reason
            case.proposed_department = self.suggested_department or case.proposed_department
            case.department = None
            case.handling_deadline = None
            case.pending_extension = None
            case.pending_suspension = None
            case.start_stage(self.timestamp, self.stage_deadline, self.stage_unit)

    class ReturnAccepted(CityAggregate.Event):
        """The centre agreed the case is not the returning department's: it is dispatched
        to another department (the `Dispatched` event saved with this one)."""

        note: str

        def apply(self, case: GridCase) -> None:
            review_latest(case.returns, ReturnOutcome.ACCEPTED, at=self.timestamp,
                          by=self.actor.user_id, note=self.note)

    class ReturnRejected(CityAggregate.Event):
        """The centre disagreed: the case goes back to the department that returned it, with
        the reviewer's reason, on the clock it had (the return gave it no time)."""

        reason: str
        deadline: datetime
        """The handling deadline in force again: the one the department had when it
        returned the case."""

        def apply(self, case: GridCase) -> None:
            record = case.returns[-1]
            assert record.clock is not None
            review_latest(case.returns, ReturnOutcome.REJECTED, at=self.timestamp,
                          by=self.actor.user_id, note=self.reason)
            case.status = CaseStatus.DISPATCHED
            case.department = record.department
            case.handling_deadline = self.deadline
            case.stage = replace(record.clock, deadline=self.deadline)

    class ExtensionRequested(CityAggregate.Event):
        requested_deadline: datetime
        reason: str

        def apply(self, case: GridCase) -> None:
            case.pending_extension = ExtensionRequest(
                requested_deadline=self.requested_deadline, reason=self.reason,
                requested_at=self.timestamp, requested_by=self.actor.user_id,
            )

    class ExtensionApproved(CityAggregate.Event):
        deadline: datetime

        def apply(self, case: GridCase) -> None:
            case.pending_extension = None
            case.extension_count += 1
            case.handling_deadline = self.deadline
            assert case.stage is not None
            case.stage = StageClock(
                started_at=case.stage.started_at,
                deadline=self.deadline,
                unit=case.stage.unit,
                paused=case.stage.paused,
                paused_since=case.stage.paused_since,
            )

    class ExtensionRefused(CityAggregate.Event):
        reason: str

        def apply(self, case: GridCase) -> None:
            case.pending_extension = None

    class Suspended(CityAggregate.Event):
        """The centre suspended the case on its own authority: the clock stands still."""

        reason: str

        def apply(self, case: GridCase) -> None:
            case.pause(self.timestamp, self.reason, expected_resume_at=None)

    class SuspensionRequested(CityAggregate.Event):
        """The department asks the centre to stop the clock of a case that needs long work
        (the clock runs on until the centre approves)."""

        reason: str
        expected_resume_at: datetime | None

        def apply(self, case: GridCase) -> None:
            case.pending_suspension = SuspensionRequest(
                reason=self.reason, expected_resume_at=self.expected_resume_at,
                requested_at=self.timestamp, requested_by=self.actor.user_id,
            )

    class SuspensionApproved(CityAggregate.Event):
        """The centre approved the department's request: the clock stands still from now."""

        reason: str
        expected_resume_at: datetime | None
        requested_by: str

        def apply(self, case: GridCase) -> None:
            case.pause(self.timestamp, self.reason, expected_resume_at=self.expected_resume_at)

    class SuspensionRefused(CityAggregate.Event):
        reason: str

        def apply(self, case: GridCase) -> None:
            case.pending_suspension = None

    class Resumed(CityAggregate.Event):
        deadline: datetime
        paused: timedelta
        """Total counted time spent suspended in this stage, after this resumption."""

        def apply(self, case: GridCase) -> None:
            case.status = CaseStatus.DISPATCHED
            case.suspension_reason = None
            case.expected_resume_at = None
            case.handling_deadline = self.deadline
            assert case.stage is not None
            case.stage = StageClock(
                started_at=case.stage.started_at,
                deadline=self.deadline,
                unit=case.stage.unit,
                paused=self.paused,
                paused_since=None,
            )

    class Handled(CityAggregate.Event):
        result: str
        evidence: list[str]
        stage_deadline: datetime
        stage_unit: str

        def apply(self, case: GridCase) -> None:
            case.status = CaseStatus.HANDLED
            # A request for more time (or for a pause) lapses once the work is reported done.
            case.pending_extension = None
            case.pending_suspension = None
            case.result = self.result
            case.evidence = list(self.evidence)
            case.handled_at = self.timestamp
            case.handled_on_time = (
                case.handling_deadline is None or self.timestamp <= case.handling_deadline
            )
            case.start_stage(self.timestamp, self.stage_deadline, self.stage_unit)

    class Verified(CityAggregate.Event):
        note: str
        photos: list[str]
        stage_deadline: datetime
        stage_unit: str

        def apply(self, case: GridCase) -> None:
            case.status = CaseStatus.VERIFIED
            case.verified_at = self.timestamp
            case.verified_by = self.actor.user_id
            if self.note:
                case.notes.append(self.note)
            case.start_stage(self.timestamp, self.stage_deadline, self.stage_unit)

    class ReworkOrdered(CityAggregate.Event):
        """Verification found the problem not fixed: back to the same department."""

        note: str
        photos: list[str]
        deadline: datetime
        limit_unit: str

        def apply(self, case: GridCase) -> None:
            case.status = CaseStatus.DISPATCHED
            case.rework_count += 1
            case.handling_deadline = self.deadline
            case.result = None
            if self.note:
                case.notes.append(self.note)
            case.start_stage(self.timestamp, self.deadline, self.limit_unit)

    class ReportedOutsideAssignedCells(CityAggregate.Event):
        """An inspector reported the case outside the cells assigned to them: accepted, and
        marked (the inspector of its cell is the one who patrols there)."""

        cell_inspector: str | None

        def apply(self, case: GridCase) -> None:
            case.outside_assigned_cells = True
            case.cell_inspector_at_report = self.cell_inspector

    class VerifierAssigned(CityAggregate.Event):
        """The centre assigned the inspector who verifies the case on site, in place of the
        inspector of its cell (on leave, say, or a second opinion)."""

        inspector: str
        reason: str

        def apply(self, case: GridCase) -> None:
            case.assigned_verifier = self.inspector
            if self.reason:
                case.notes.append(self.reason)

    class Closed(CityAggregate.Event):
        note: str

        def apply(self, case: GridCase) -> None:
            case.status = CaseStatus.CLOSED
            case.closed_at = self.timestamp
            if self.note:
                case.notes.append(self.note)
            case.stage = None

    # --- state helpers -----------------------------------------------------------------

    def __init__(self, *, source: str, category: str, urgency: str, description: str,
                 location: GeoPoint, grid_cell: str | None, photos: list[str],
                 stage_deadline: datetime, stage_unit: str, possible_duplicates: list[UUID],
                 ticket_id: UUID | None, actor: Actor, timestamp: datetime) -> None:
        """The case as reported (from the `Reported` event's facts): every attribute it
        keeps is declared here, once, with its type; the events change them."""
        self.status: CaseStatus = CaseStatus.REPORTED
        self.source = CaseSource(source)
        self.category = category
        self.urgency = Urgency(urgency)
        self.description = description
        self.location = location
        self.grid_cell = grid_cell
        self.photos = list(photos)
        self.reported_at = timestamp
        self.reporter = actor
        self.possible_duplicates = list(possible_duplicates)
        self.ticket_id = ticket_id
        self.department: str | None = None
        self.proposed_department: str | None = None
        self.duplicate_of: UUID | None = None
        self.rejection_reason: RejectionReason | None = None
        self.handling_deadline: datetime | None = None
        self.dispatched_at: datetime | None = None
        self.handled_at: datetime | None = None
        self.closed_at: datetime | None = None
        self.dispatch_count = 0
        self.rework_count = 0
        self.return_count = 0
        self.extension_count = 0
        self.pending_extension: ExtensionRequest | None = None
        self.result: str | None = None
        self.evidence: list[str] = []
        self.suspension_reason: str | None = None
        self.returned_by: str | None = None
        self.return_reason: str | None = None
        self.handled_on_time: bool | None = None
        self.verified_at: datetime | None = None
        self.verified_by: str | None = None
        self.notes: list[str] = []
        self.returns: list[ReturnRecord] = []
        self.pending_suspension: SuspensionRequest | None = None
        self.expected_resume_at: datetime | None = None
        self.outside_assigned_cells = False
        self.cell_inspector_at_report: str | None = None
        self.assigned_verifier: str | None = None
        self.stage: StageClock | None = StageClock(started_at=timestamp, deadline=stage_deadline,
                                                   unit=LimitUnit(stage_unit))
        """The clock of the current stage (None once closed or rejected)."""

    def start_stage(self, at: datetime, deadline: datetime, unit: str) -> None:
        self.stage = StageClock(started_at=at, deadline=deadline, unit=LimitUnit(unit))

    def pause(self, at: datetime, reason: str, *, expected_resume_at: datetime | None) -> None:
        """Suspend: the stage clock stands still from `at` (a pending request is settled)."""
        self.status = CaseStatus.SUSPENDED
        self.suspension_reason = reason
        self.pending_suspension = None
        self.expected_resume_at = expected_resume_at
        assert self.stage is not None
        self.stage = replace(self.stage, paused_since=at)

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    def check_verifier(self, attempted: str, actor: Actor, cell_inspector: str | None) -> None:
        """An inspector verifies only the cases that are theirs to verify: those the centre
        assigned to them, else those in their cells (`cell_inspector` is the inspector of
        the case's cell now). The centre's own roles may still verify (by camera, say)."""
        if actor.role is not Role.INSPECTOR:
            return
        verifier = self.assigned_verifier or cell_inspector
        if actor.user_id == verifier:
            return
        if self.assigned_verifier is not None:
            whose = f"the centre assigned {self.assigned_verifier} to verify it"
        elif cell_inspector is not None:
            whose = f"it is in cell {self.grid_cell}, patrolled by {cell_inspector}"
        else:
            whose = f"its cell {self.grid_cell} has no inspector"
        raise NotPermitted(
            f"inspector {actor.user_id} may not {attempted} {self.KIND} {self.id}: {whose}; "
            "the centre can assign another inspector to verify it")

    def _check_department_scope(self, attempted: str, actor: Actor) -> None:
        """A department user acts only on cases dispatched to their own department."""
        if actor.role is Role.DEPARTMENT_USER and actor.department != self.department:
            raise NotPermitted(
                f"department user {actor.user_id} of {actor.department} may not {attempted} "
                f"{self.KIND} {self.id}: it is dispatched to {self.department}"
            )

    # --- commands ------------------------------------------------------------------------

    @classmethod
    def report(
        cls,
        *,
        case_id: UUID,
        source: CaseSource,
        category: str,
        urgency: Urgency,
        description: str,
        location: GeoPoint,
        grid_cell: str | None,
        photos: list[str],
        stage_deadline: datetime,
        stage_unit: LimitUnit,
        possible_duplicates: list[UUID],
        ticket_id: UUID | None,
        actor: Actor,
        at: datetime,
        cell_inspector: str | None = None,
    ) -> GridCase:
        """A case reported from the field, the hotline, a sensor or a camera; an inspector's
        report outside their cells (`cell_inspector` patrols the case's cell) is marked."""
        case = cls._create(
            cls.Reported,
            id=case_id,
            timestamp=at,
            actor=actor,
            source=CaseSource(source).value,
            category=category,
            urgency=Urgency(urgency).value,
            description=checked_text("description", description),
            location=location,
            grid_cell=grid_cell,
            photos=_photos(photos),
            stage_deadline=stage_deadline,
            stage_unit=LimitUnit(stage_unit).value,
            possible_duplicates=list(possible_duplicates),
            ticket_id=ticket_id,
        )
        if actor.role is Role.INSPECTOR and actor.user_id != cell_inspector:
            case.record(cls.ReportedOutsideAssignedCells, actor=actor, at=at,
                        cell_inspector=cell_inspector)
        return case

    def register(self, *, category: str, urgency: Urgency, proposed_department: str,
                 stage_deadline: datetime, stage_unit: LimitUnit, note: str, actor: Actor,
                 at: datetime) -> None:
        self.require_status("register", CaseStatus.REPORTED)
        self.record(self.Registered, actor=actor, at=at, category=category,
                    urgency=Urgency(urgency).value, proposed_department=proposed_department,
                    stage_deadline=stage_deadline, stage_unit=LimitUnit(stage_unit).value,
                    note=checked_text("note", note, required=False))

    def reject(self, *, reason: RejectionReason, duplicate_of: UUID | None, note: str,
               actor: Actor, at: datetime) -> None:
        self.require_status("reject", CaseStatus.REPORTED)
        reason = RejectionReason(reason)
        if reason is RejectionReason.DUPLICATE and duplicate_of is None:
            raise InvalidValue("a case rejected as a duplicate must name the case it duplicates")
        if duplicate_of == self.id:
            raise InvalidValue("a case cannot be a duplicate of itself")
        self.record(self.Rejected, actor=actor, at=at, reason=reason.value,
                    duplicate_of=duplicate_of if reason is RejectionReason.DUPLICATE else None,
                    note=checked_text("note", note, required=False))

    def dispatch(self, *, department: str, deadline: datetime, limit_unit: LimitUnit,
                 instructions: str, actor: Actor, at: datetime, review_note: str = "") -> None:
        """Send the case to a department. Dispatching a returned case to another department
        accepts the return (recorded first, with the reviewer's `review_note`)."""
        self.require_status("dispatch", CaseStatus.REGISTERED, CaseStatus.RETURNED)
        if self.status is CaseStatus.RETURNED:
            if department == self.returned_by:
                self.refuse("dispatch", f"{department} already returned it as not its "
                            "responsibility: to send it back, reject the return with a reason")
            self.record(self.ReturnAccepted, actor=actor, at=at,
                        note=checked_text("note", review_note, required=False))
        self.record(self.Dispatched, actor=actor, at=at, department=department,
                    deadline=deadline, limit_unit=LimitUnit(limit_unit).value,
                    instructions=checked_text("instructions", instructions, required=False))

    def return_to_centre(self, *, reason: str, suggested_department: str | None,
                         stage_deadline: datetime, stage_unit: LimitUnit, actor: Actor,
                         at: datetime) -> None:
        self.require_status("return to the centre", CaseStatus.DISPATCHED)
        self._check_department_scope("return to the centre", actor)
        if suggested_department == self.department:
            raise InvalidValue("the suggested department is the one returning the case")
        self.record(self.ReturnedToCentre, actor=actor, at=at,
                    reason=checked_text("reason", reason),
                    suggested_department=suggested_department,
                    stage_deadline=stage_deadline, stage_unit=LimitUnit(stage_unit).value)

    def reject_return(self, *, reason: str, actor: Actor, at: datetime) -> None:
        """The centre rejects the department's return: the case is dispatched to it again,
        with the deadline it had when it returned it (the time in between counts)."""
        self.require_status("reject the return of", CaseStatus.RETURNED)
        clock = self.returns[-1].clock if self.returns else None
        if clock is None:
            self.refuse("reject the return of", "no department's clock was running when it "
                        "was returned")
        self.record(self.ReturnRejected, actor=actor, at=at,
                    reason=checked_text("reason", reason), deadline=clock.deadline)

    def request_extension(self, *, requested_deadline: datetime, reason: str, actor: Actor,
                          at: datetime) -> None:
        self.require_status("request a deadline extension for", CaseStatus.DISPATCHED)
        self._check_department_scope("request a deadline extension for", actor)
        if self.pending_extension is not None:
            self.refuse("request a deadline extension for", "an extension request is pending")
        assert self.handling_deadline is not None
        if requested_deadline <= self.handling_deadline:
            raise InvalidValue(
                f"requested deadline {requested_deadline.isoformat()} is not after the current "
                f"deadline {self.handling_deadline.isoformat()}"
            )
        self.record(self.ExtensionRequested, actor=actor, at=at,
                    requested_deadline=requested_deadline, reason=checked_text("reason", reason))

    def approve_extension(self, *, deadline: datetime | None, actor: Actor, at: datetime) -> None:
        """The centre grants the extension (the requested deadline, or another later one)."""
        self.require_status("approve a deadline extension for", CaseStatus.DISPATCHED,
                            CaseStatus.SUSPENDED)
        if self.pending_extension is None:
            self.refuse("approve a deadline extension for", "no extension was requested")
        granted = checked_deadline(
            "deadline", deadline or self.pending_extension.requested_deadline, at)
        assert self.handling_deadline is not None
        if granted <= self.handling_deadline:
            raise InvalidValue("an extended deadline must be after the current deadline")
        self.record(self.ExtensionApproved, actor=actor, at=at, deadline=granted)

    def refuse_extension(self, *, reason: str, actor: Actor, at: datetime) -> None:
        self.require_status("refuse a deadline extension for", CaseStatus.DISPATCHED,
                            CaseStatus.SUSPENDED)
        if self.pending_extension is None:
            self.refuse("refuse a deadline extension for", "no extension was requested")
        self.record(self.ExtensionRefused, actor=actor, at=at,
                    reason=checked_text("reason", reason))

    def request_suspension(self, *, reason: str, expected_resume_at: datetime | None,
                           actor: Actor, at: datetime) -> None:
        """The department asks for the clock to stop; it runs on until the centre approves."""
        self.require_status("request a suspension of", CaseStatus.DISPATCHED)
        self._check_department_scope("request a suspension of", actor)
        if self.pending_suspension is not None:
            self.refuse("request a suspension of", "a suspension request is pending")
        if expected_resume_at is not None and expected_resume_at <= at:
            raise InvalidValue(f"expected resume time {expected_resume_at.isoformat()} is not "
                               "in the future")
        self.record(self.SuspensionRequested, actor=actor, at=at,
                    reason=checked_text("reason", reason), expected_resume_at=expected_resume_at)

    def approve_suspension(self, *, expected_resume_at: datetime | None, actor: Actor,
                           at: datetime) -> None:
        """The centre approves the pending request (with the expected resume time asked
        for, or another one): the clock stands still from now."""
        self.require_status("approve a suspension of", CaseStatus.DISPATCHED)
        if self.pending_suspension is None:
            self.refuse("approve a suspension of", "no suspension was requested")
        expected = expected_resume_at or self.pending_suspension.expected_resume_at
        if expected is not None and expected <= at:
            raise InvalidValue(f"expected resume time {expected.isoformat()} is not in the "
                               "future")
        self.record(self.SuspensionApproved, actor=actor, at=at,
                    reason=self.pending_suspension.reason, expected_resume_at=expected,
                    requested_by=self.pending_suspension.requested_by)

    def refuse_suspension(self, *, reason: str, actor: Actor, at: datetime) -> None:
        self.require_status("refuse a suspension of", CaseStatus.DISPATCHED)
        if self.pending_suspension is None:
            self.refuse("refuse a suspension of", "no suspension was requested")
        self.record(self.SuspensionRefused, actor=actor, at=at,
                    reason=checked_text("reason", reason))

    def suspend(self, *, reason: str, actor: Actor, at: datetime) -> None:
        """The centre suspends the case itself (a department asks: `request_suspension`)."""
        self.require_status("suspend", CaseStatus.DISPATCHED)
        self._check_department_scope("suspend", actor)
        self.record(self.Suspended, actor=actor, at=at, reason=checked_text("reason", reason))

    def resume(self, *, deadline: datetime, paused: timedelta, actor: Actor, at: datetime) -> None:
        """Start the clock again. The centre, or the department itself: resuming only ends
        the pause, it can never give a department time."""
        self.require_status("resume", CaseStatus.SUSPENDED)
        self._check_department_scope("resume", actor)
        self.record(self.Resumed, actor=actor, at=at, deadline=deadline, paused=paused)

    def handle(self, *, result: str, evidence: list[str], stage_deadline: datetime,
               stage_unit: LimitUnit, actor: Actor, at: datetime) -> None:
        self.require_status("report the handling of", CaseStatus.DISPATCHED)
        self._check_department_scope("report the handling of", actor)
        self.record(self.Handled, actor=actor, at=at, result=checked_text("result", result),
                    evidence=_photos(evidence), stage_deadline=stage_deadline,
                    stage_unit=LimitUnit(stage_unit).value)

    def verify(self, *, note: str, photos: list[str], stage_deadline: datetime,
               stage_unit: LimitUnit, actor: Actor, at: datetime,
               cell_inspector: str | None) -> None:
        """An inspector confirms on site that the problem is fixed (the case's own inspector,
        see `check_verifier`)."""
        self.require_status("verify", CaseStatus.HANDLED)
        self.check_verifier("verify", actor, cell_inspector)
        self.record(self.Verified, actor=actor, at=at,
                    note=checked_text("note", note, required=False),
                    photos=_photos(photos), stage_deadline=stage_deadline,
                    stage_unit=LimitUnit(stage_unit).value)

    def order_rework(self, *, note: str, photos: list[str], deadline: datetime,
                     limit_unit: LimitUnit, actor: Actor, at: datetime,
                     cell_inspector: str | None) -> None:
        """An inspector finds the problem not fixed: the case goes back to its department."""
        self.require_status("order rework of", CaseStatus.HANDLED)
        self.check_verifier("order rework of", actor, cell_inspector)
        self.record(self.ReworkOrdered, actor=actor, at=at, note=checked_text("note", note),
                    photos=_photos(photos), deadline=deadline,
                    limit_unit=LimitUnit(limit_unit).value)

    def assign_verifier(self, *, inspector: str, reason: str, actor: Actor,
                        at: datetime) -> None:
        """The centre names the inspector who verifies the case, in place of the inspector
        of its cell."""
        attempted = f"assign {inspector} to verify"
        self.require_status(attempted, *VERIFIER_ASSIGNABLE)
        if inspector == self.assigned_verifier:
            self.refuse(attempted, f"{inspector} is already assigned to verify it")
        self.record(self.VerifierAssigned, actor=actor, at=at, inspector=inspector,
                    reason=checked_text("reason", reason, required=False))

    def close(self, *, note: str, actor: Actor, at: datetime) -> None:
        self.require_status("close", CaseStatus.VERIFIED)
        self.record(self.Closed, actor=actor, at=at,
                    note=checked_text("note", note, required=False))

    def summary(self) -> dict[str, Any]:
        """The case's current state as plain data (for API responses and tests)."""
        return {
            "id": str(self.id),
            "version": self.version,
            "status": self.status.value,
            "source": self.source.value,
            "category": self.category,
            "urgency": self.urgency.value,
            "description": self.description,
            "location": self.location.to_geojson(),
            "grid_cell": self.grid_cell,
            "department": self.department,
            "proposed_department": self.proposed_department,
            "handling_deadline": iso_or_none(self.handling_deadline),
            "stage_deadline": iso_or_none(self.stage.deadline) if self.stage else None,
            "reported_at": self.reported_at.isoformat(),
            "closed_at": iso_or_none(self.closed_at),
            "rework_count": self.rework_count,
            "return_count": self.return_count,
            "extension_count": self.extension_count,
            "pending_extension": (self.pending_extension.summary()
                                  if self.pending_extension is not None else None),
            "possible_duplicates": [str(i) for i in self.possible_duplicates],
            "duplicate_of": str(self.duplicate_of) if self.duplicate_of else None,
            "rejection_reason": self.rejection_reason.value if self.rejection_reason else None,
            "result": self.result,
            "photos": self.photos,
            "evidence": self.evidence,
            "ticket_id": str(self.ticket_id) if self.ticket_id else None,
            "returned_by": self.returned_by,
            "return_reason": self.return_reason,
            "returns": returns_as_dicts(self.returns,
                                        item_is_returned=self.status is CaseStatus.RETURNED),
            "suspension_reason": self.suspension_reason,
            "suspended_since": iso_or_none(self.stage.paused_since) if self.stage else None,
            "expected_resume_at": iso_or_none(self.expected_resume_at),
            "pending_suspension": (self.pending_suspension.summary()
                                   if self.pending_suspension is not None else None),
            "outside_assigned_cells": self.outside_assigned_cells,
            "assigned_verifier": self.assigned_verifier,
        }

