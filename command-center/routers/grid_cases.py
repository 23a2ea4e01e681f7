"""Grid cases: report, register, reject, dispatch, review of returns, extensions, suspension
requests and decisions, handling, verification (by the inspector of the case's cell or the one
the centre assigns) and closing; list and get from the read model."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query
from pydantic import Field

from cityops.command_center.dependencies import (
    BBoxDep,
    CommandId,
    CurrentActor,
    PagingDep,
    SystemDep,
    page_body,
)
from cityops.command_center.history import event_history
from cityops.command_center.models.common import HistoryEntryPublic
from cityops.command_center.models.grid_cases import (
    GridCasePublic,
    GridCasesPublic,
)
from cityops.command_center.routers.photos import require_uploaded
from cityops.command_center.schemas import Command, PointIn
from cityops.command_center.scopes import OutOfScope, scope_guard, scoped_filters
from cityops.command_center.sharing import shared_route
from cityops.command_center.time_travel import ReadSystem
from cityops.command_center.versions import SeenVersion
from cityops.domain.catalogue import Urgency
from cityops.domain.commands import Command as DomainCommand
from cityops.domain.commands import CommandContext, CommandOutcome
from cityops.domain.gridcases.case import CaseSource, CaseStatus, GridCase, RejectionReason
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
from cityops.domain.supervision import Light
from cityops.projections.views import case_light

router = APIRouter(
    prefix="/grid-cases", tags=["grid cases"], route_class=shared_route("grid-cases"),
    dependencies=[scope_guard("case_id", "grid case",
                              lambda system, i: system.grid_cases.case(i).summary())],
)


class GridCaseReport(Command):
    source: CaseSource = CaseSource.INSPECTOR
    category: str = Field(description="Category code from the catalogue, e.g. E0101")
    description: str = Field(min_length=1, max_length=4000)
    location: PointIn
    urgency: Urgency = Urgency.NORMAL
    photos: list[str] = Field(default_factory=list, max_length=12)
    at: datetime | None = Field(default=None, description="When it was seen (default: now)")


class GridCaseRegister(Command):
    category: str | None = None
    urgency: Urgency | None = None
    note: str = ""


class GridCaseReject(Command):
    reason: RejectionReason
    duplicate_of: UUID | None = None
    note: str = ""


class GridCaseDispatch(Command):
    department: str | None = Field(default=None, description="Default: the proposed department")
    instructions: str = ""


class GridCaseReturn(Command):
    reason: str = Field(min_length=1)
    suggested_department: str | None = None


class ExtensionRequest(Command):
    requested_deadline: datetime
    reason: str = Field(min_length=1)


class ExtensionDecision(Command):
    approve: bool
    deadline: datetime | None = None
    reason: str = ""


class Suspension(Command):
    reason: str = Field(min_length=1)


class SuspensionRequest(Command):
    reason: str = Field(min_length=1)
    expected_resume_at: datetime | None = Field(
        default=None, description="When the department expects to resume (with its UTC offset)")


class SuspensionDecision(Command):
    approve: bool
    expected_resume_at: datetime | None = Field(
        default=None, description="On approval: another expected resume time than the one "
                                  "asked for")
    reason: str = Field(default="", description="Why it is refused (required to refuse)")


class ReturnReview(Command):
    accept: bool = Field(description="true: the return is right, dispatch the case to another "
                                     "department; false: send it back to the one that "
                                     "returned it")
    department: str | None = Field(
        default=None, description="On acceptance: the department to dispatch to (default: "
                                  "the proposed one)")
    instructions: str = ""
    reason: str = Field(default="", description="The reviewer's reason (required to reject)")


class Handling(Command):
    result: str = Field(min_length=1)
    evidence: list[str] = Field(default_factory=list, max_length=12)


class Verification(Command):
    fixed: bool
    note: str = ""
    photos: list[str] = Field(default_factory=list, max_length=12)


class Note(Command):
    note: str = ""


class VerifierAssignment(Command):
    inspector: str = Field(min_length=1, max_length=100,
                           description="The grid inspector (their inspector id) who verifies "
                                       "the case, in place of the inspector of its cell")
    reason: str = Field(default="", max_length=4000)


def _state(system: SystemDep, case_id: UUID, outcome: CommandOutcome | None = None
           ) -> dict[str, Any]:
    """The case as the write side knows it now (read-your-writes for the caller): as the
    command of `outcome` saved it, if it did (not read back from the event store: that
    read was a third of a report's time), else loaded."""
    system.wake_projections()
    saved = outcome.subject_as(GridCase) if outcome is not None else None
    case = saved if saved is not None else system.grid_cases.case(case_id)
    body = case.summary()
    light = system.grid_cases.light(case)
    body["light"] = light.value if light else None
    return body


@router.post("", response_model=GridCasePublic, status_code=201)
def report_case(body: GridCaseReport, system: SystemDep, actor: CurrentActor,
                command_id: CommandId) -> dict[str, Any]:
    """Report a new case from the field, the hotline, a sensor or a camera; its photos are
    `photo:<sha256>` references of photos uploaded with POST /photos."""
    require_uploaded(system.photos, body.photos)
    report = ReportCase(source=body.source, category=body.category,
                        description=body.description, location=body.location.to_point(),
                        urgency=body.urgency, photos=tuple(body.photos))
    outcome = system.commands.handle(
        report, CommandContext(actor=actor, command_id=command_id, at=body.at))
    return _state(system, outcome.subject, outcome)


@router.get("", response_model=GridCasesPublic)
def list_cases(
    system: ReadSystem,
    actor: CurrentActor,
    paging: PagingDep,
    bbox: BBoxDep,
    status: Annotated[list[CaseStatus] | None, Query(description="Any of these states")] = None,
    category: str | None = None,
    department: str | None = None,
    area: Annotated[str | None, Query(description="Grid code prefix: district, street, "
                                      "community or cell")] = None,
    light: Light | None = None,
    open_only: bool = False,
) -> dict[str, Any]:
    """List cases with filters, newest first; each shows its supervision light now."""
    filters: dict[str, Any] = {}
    if status:
        filters["status"] = [s.value for s in status]
    if category:
        filters["category"] = category
    if department:
        filters["department"] = department
    if open_only:
        filters["is_open"] = True
    try:
        filters = scoped_filters("rm_grid_cases", filters, actor)
    except OutOfScope:
        return page_body([], 0, paging)
    extra = []
    now = system.grid_cases.clock()
    if light is not None:
        extra.append(system.read_models.grid_case_lights(light, now))
    page = system.read_models.page(
        "rm_grid_cases", filters=filters, prefixes={"grid_cell": area} if area else None,
        bbox=bbox, extra_where=extra, limit=paging.limit, offset=paging.offset,
    )
    items = [_with_light(doc, now) for doc in page.items]
    return page_body(items, page.total, paging)


def _with_light(doc: dict[str, Any], now: datetime) -> dict[str, Any]:
    current = case_light(doc, now)
    return {**doc, "light": current.value if current else None}


@router.get("/{case_id}", response_model=GridCasePublic)
def get_case(case_id: UUID, system: ReadSystem) -> dict[str, Any]:
    """One case, as recorded now, with its supervision light."""
    return _state(system, case_id)


@router.get("/{case_id}/history", response_model=list[HistoryEntryPublic])
def case_history(case_id: UUID, system: ReadSystem) -> list[dict[str, Any]]:
    """Every event of the case: what happened, who did it, in what role, and when."""
    system.grid_cases.case(case_id)
    return event_history(system.grid_cases.events.get(case_id))


def _issue(system: SystemDep, command: DomainCommand, actor: CurrentActor,
           command_id: CommandId, seen: SeenVersion) -> dict[str, Any]:
    """Run a command on one case, as its user saw it (`If-Match`), and answer the case."""
    outcome = system.commands.handle(
        command, CommandContext(actor=actor, command_id=command_id, seen_versions=seen))
    return _state(system, outcome.subject, outcome)


@router.post("/{case_id}/register", response_model=GridCasePublic)
def register_case(case_id: UUID, body: GridCaseRegister, system: SystemDep, actor: CurrentActor,
                  command_id: CommandId, seen: SeenVersion) -> dict[str, Any]:
    """Accept a reported case (optionally correcting category and urgency)."""
    command = RegisterCase(case_id=case_id, category=body.category, urgency=body.urgency,
                           note=body.note)
    return _issue(system, command, actor, command_id, seen)


@router.post("/{case_id}/reject", response_model=GridCasePublic)
def reject_case(case_id: UUID, body: GridCaseReject, system: SystemDep, actor: CurrentActor,
                command_id: CommandId, seen: SeenVersion) -> dict[str, Any]:
    """Reject a report: duplicate (merged into another case), not ours, not reproducible."""
    command = RejectCase(case_id=case_id, reason=body.reason, duplicate_of=body.duplicate_of,
                         note=body.note)
    return _issue(system, command, actor, command_id, seen)


@router.post("/{case_id}/dispatch", response_model=GridCasePublic)
def dispatch_case(case_id: UUID, body: GridCaseDispatch, system: SystemDep,
                  actor: CurrentActor, command_id: CommandId,
                  seen: SeenVersion) -> dict[str, Any]:
    """Dispatch to a department with a deadline from the catalogue."""
    command = DispatchCase(case_id=case_id, department=body.department,
                           instructions=body.instructions)
    return _issue(system, command, actor, command_id, seen)


@router.post("/{case_id}/return", response_model=GridCasePublic)
def return_case(case_id: UUID, body: GridCaseReturn, system: SystemDep, actor: CurrentActor,
                command_id: CommandId, seen: SeenVersion) -> dict[str, Any]:
    """A department sends the case back to the centre as not its responsibility."""
    command = ReturnCaseToCentre(case_id=case_id, reason=body.reason,
                                 suggested_department=body.suggested_department)
    return _issue(system, command, actor, command_id, seen)


@router.post("/{case_id}/extension-requests", response_model=GridCasePublic)
def request_extension(case_id: UUID, body: ExtensionRequest, system: SystemDep,
                      actor: CurrentActor, command_id: CommandId,
                      seen: SeenVersion) -> dict[str, Any]:
    """A department asks for a later deadline."""
    command = RequestCaseExtension(case_id=case_id, requested_deadline=body.requested_deadline,
                                   reason=body.reason)
    return _issue(system, command, actor, command_id, seen)


@router.post("/{case_id}/extension-decision", response_model=GridCasePublic)
def decide_extension(case_id: UUID, body: ExtensionDecision, system: SystemDep,
                     actor: CurrentActor, command_id: CommandId,
                     seen: SeenVersion) -> dict[str, Any]:
    """The centre approves or refuses the pending extension request."""
    command = DecideCaseExtension(case_id=case_id, approve=body.approve,
                                  deadline=body.deadline, reason=body.reason)
    return _issue(system, command, actor, command_id, seen)


@router.post("/{case_id}/return-review", response_model=GridCasePublic)
def review_return(case_id: UUID, body: ReturnReview, system: SystemDep, actor: CurrentActor,
                  command_id: CommandId, seen: SeenVersion) -> dict[str, Any]:
    """The centre reviews a department's return: accept (dispatched to another department)
    or reject with a reason (back to the same department, on the deadline it had)."""
    command = ReviewCaseReturn(case_id=case_id, accept=body.accept, department=body.department,
                               instructions=body.instructions, reason=body.reason)
    return _issue(system, command, actor, command_id, seen)


@router.post("/{case_id}/suspension-requests", response_model=GridCasePublic)
def request_suspension(case_id: UUID, body: SuspensionRequest, system: SystemDep,
                       actor: CurrentActor, command_id: CommandId,
                       seen: SeenVersion) -> dict[str, Any]:
    """A department asks the centre to suspend a case that needs long work (its clock runs
    until the centre approves)."""
    command = RequestCaseSuspension(case_id=case_id, reason=body.reason,
                                    expected_resume_at=body.expected_resume_at)
    return _issue(system, command, actor, command_id, seen)


@router.post("/{case_id}/suspension-decision", response_model=GridCasePublic)
def decide_suspension(case_id: UUID, body: SuspensionDecision, system: SystemDep,
                      actor: CurrentActor, command_id: CommandId,
                      seen: SeenVersion) -> dict[str, Any]:
    """The centre approves (the clock stops from now) or refuses the pending suspension
    request."""
    command = DecideCaseSuspension(case_id=case_id, approve=body.approve,
                                   expected_resume_at=body.expected_resume_at,
                                   reason=body.reason)
    return _issue(system, command, actor, command_id, seen)


@router.post("/{case_id}/suspend", response_model=GridCasePublic)
def suspend_case(case_id: UUID, body: Suspension, system: SystemDep, actor: CurrentActor,
                 command_id: CommandId, seen: SeenVersion) -> dict[str, Any]:
    """The centre suspends a case that needs long work: its deadline clock stops (a
    department asks with POST /grid-cases/{id}/suspension-requests)."""
    return _issue(system, SuspendCase(case_id=case_id, reason=body.reason), actor, command_id,
                  seen)


@router.post("/{case_id}/resume", response_model=GridCasePublic)
def resume_case(case_id: UUID, system: SystemDep, actor: CurrentActor,
                command_id: CommandId, seen: SeenVersion) -> dict[str, Any]:
    """Resume a suspended case (the centre, or its department when it can work again): its
    deadline moves by the time spent suspended."""
    return _issue(system, ResumeCase(case_id=case_id), actor, command_id, seen)


@router.post("/{case_id}/handle", response_model=GridCasePublic)
def handle_case(case_id: UUID, body: Handling, system: SystemDep, actor: CurrentActor,
                command_id: CommandId, seen: SeenVersion) -> dict[str, Any]:
    """The department reports the result with evidence (a `photo:<sha256>` reference must
    name an uploaded photo)."""
    require_uploaded(system.photos, body.evidence, what="evidence", only_photo_scheme=True)
    command = HandleCase(case_id=case_id, result=body.result, evidence=tuple(body.evidence))
    return _issue(system, command, actor, command_id, seen)


@router.post("/{case_id}/verify", response_model=GridCasePublic)
def verify_case(case_id: UUID, body: Verification, system: SystemDep, actor: CurrentActor,
                command_id: CommandId, seen: SeenVersion) -> dict[str, Any]:
    """An inspector checks on site: fixed, or back to the department as rework; photos are
    `photo:<sha256>` references of photos uploaded with POST /photos."""
    require_uploaded(system.photos, body.photos)
    command = VerifyCase(case_id=case_id, fixed=body.fixed, note=body.note,
                         photos=tuple(body.photos))
    return _issue(system, command, actor, command_id, seen)


@router.post("/{case_id}/assign-verifier", response_model=GridCasePublic)
def assign_verifier(case_id: UUID, body: VerifierAssignment, system: SystemDep,
                    actor: CurrentActor, command_id: CommandId,
                    seen: SeenVersion) -> dict[str, Any]:
    """The centre names the inspector who verifies the case on site (by default the
    inspector of its cell; another inspector's verification is refused)."""
    command = AssignCaseVerifier(case_id=case_id, inspector=body.inspector,
                                 reason=body.reason)
    return _issue(system, command, actor, command_id, seen)


@router.post("/{case_id}/close", response_model=GridCasePublic)
def close_case(case_id: UUID, body: Note, system: SystemDep, actor: CurrentActor,
               command_id: CommandId, seen: SeenVersion) -> dict[str, Any]:
    """Close a verified case."""
    return _issue(system, CloseCase(case_id=case_id, note=body.note), actor, command_id, seen)
