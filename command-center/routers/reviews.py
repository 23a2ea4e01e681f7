"""After-action reviews: the report of an incident or a period (a whole drill) computed from
the events, as JSON, CSV and PDF, and the review's record: opened by a planner, with its
findings and improvement plan, followed up until a later drill shows each item fixed.

Whoever the sharing catalogue's `after-action-review` condition admits reads them (planners,
duty officers, leaders, admins, emergency management and the centre); planners (with the
centre's duty officers and admins) write them. The system is the one the request acts on:
the live city, or a drill's (whose reviews live in the drill's own store)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse, Response
from pydantic import Field

from cityops.command_center.dependencies import CommandId, CurrentActor, SystemDep
from cityops.command_center.models.reviews import (
    FollowedUpItemsPublic,
    IncidentReviewPublic,
    PeriodReviewPublic,
    ReviewPublic,
    ReviewsPublic,
)
from cityops.command_center.review_documents import ReviewTable, review_csv, review_pdf
from cityops.command_center.routers.pages import page
from cityops.command_center.schemas import Command
from cityops.command_center.scopes import incident_scope_where, scope_guard
from cityops.command_center.versions import SeenVersion
from cityops.domain.actors import Actor
from cityops.domain.commands import CommandContext
from cityops.domain.errors import InvalidValue, NotFound, NotPermitted
from cityops.domain.incidents.incident import FindingAspect
from cityops.domain.reviews.commands import (
    CompleteImprovement,
    ConcludeReview,
    DropImprovement,
    OpenReview,
    PlanImprovement,
    RecordReviewFinding,
    ReopenImprovement,
    ReviewCommand,
    VerifyImprovement,
    WithdrawReviewFinding,
    WriteReviewSummary,
)
from cityops.domain.reviews.report import ReviewReports
from cityops.domain.reviews.review import FindingKind, ItemStatus, Review, SubjectKind
from cityops.domain.sharing import Viewer
from cityops.domain.values import parse_instant
from cityops.exercises import measured_objectives
from cityops.projections.tables import utc_text

REVIEW_CONDITION = "after-action-review"
"""The sharing catalogue's condition that says who may read reviews."""
MAX_PERIOD_INCIDENTS = 500
"""The most incidents one period's report covers (narrow the period for more)."""
PDF = "application/pdf"
CSV = "text/csv; charset=utf-8"

router = APIRouter(prefix="/reviews", tags=["reviews"])
page_router = APIRouter(tags=["pages"])


def review_reader(system: SystemDep, actor: CurrentActor) -> Actor:
    """The logged-in user, if the sharing catalogue lets them read reviews (403 otherwise)."""
    condition = system.sharing.conditions.get(REVIEW_CONDITION)
    if condition is None or not condition.allows(Viewer.of(actor)):
        raise NotPermitted(f"{actor.role.value} {actor.user_id} may not read after-action "
                           "reviews (the sharing catalogue's after-action-review condition)")
    return actor


ReviewReader = Annotated[Actor, Depends(review_reader)]
IN_SCOPE = [scope_guard("incident_id", "incident",
                        lambda system, i: system.incidents.incident(i).summary())]


# --- the documents --------------------------------------------------------------------------


def reports_of(system: SystemDep) -> ReviewReports:
    """The reports of the system the request acts on (live, or a drill's)."""
    return ReviewReports(system.incidents, system.incidents.events.get, system.resources,
                         system.resources.events.get, system.response_norms)


def _review_doc(system: SystemDep, review: Review | None) -> dict[str, Any] | None:
    return review.summary(system.clock()) if review is not None else None


def _shared_timeline(system: SystemDep, report: dict[str, Any], actor: Actor) -> None:
    """The timeline's facts as the user may see them (casualty figures, say, as the
    incidents' sharing says)."""
    for entry in report["timeline"]:
        stream = "incidents" if entry["stream"] == "incident" else "resources"
        entry["facts"] = system.sharing.document(stream, entry["facts"], Viewer.of(actor))


def incident_review(system: SystemDep, incident_id: UUID, actor: Actor) -> dict[str, Any]:
    """The document of an incident's review: its report and, once opened, its record."""
    report = reports_of(system).incident_report(
        incident_id, now=system.clock(),
        objectives=measured_objectives(system, incident_id=incident_id)).as_dict()
    _shared_timeline(system, report, actor)
    try:
        review: Review | None = system.reviews.review_of_incident(incident_id)
    except NotFound:
        review = None
    return {"drill_id": system.reviews.drill_id, "review": _review_doc(system, review),
            "report": report}


def period_incidents(system: SystemDep, start: datetime | None, end: datetime | None,
                     actor: Actor) -> list[UUID]:
    """The incidents reported in [start, end) (every incident without a period: a drill's
    whole history), as the read model lists them."""
    system.wake_projections()
    where = list(incident_scope_where(system.read_models.store.dialect, actor))
    since: dict[str, str] | None = None
    if start is not None:
        since = {"reported_at": start.astimezone(UTC).isoformat()}
    if end is not None:
        where.append(("reported_at < %s", [utc_text(end)]))
    page_ = system.read_models.page(
        "rm_incidents", since=since,
        extra_where=where, order_by="reported_at ASC", limit=MAX_PERIOD_INCIDENTS + 1)
    if page_.total > MAX_PERIOD_INCIDENTS:
        raise InvalidValue(f"the period has {page_.total} incidents; a report covers at most "
                           f"{MAX_PERIOD_INCIDENTS}: narrow the period")
    return [UUID(doc["id"]) for doc in page_.items]


def period_review(system: SystemDep, start: datetime | None, end: datetime | None,
                  actor: Actor, review: Review | None = None) -> dict[str, Any]:
    ids = period_incidents(system, start, end, actor)
    report = reports_of(system).period_report(
        ids, start=start, end=end, now=system.clock(),
        objectives=measured_objectives(system)).as_dict()
    _shared_timeline(system, report, actor)
    return {"drill_id": system.reviews.drill_id, "review": _review_doc(system, review),
            "report": report}


def review_of(system: SystemDep, review_id: UUID, actor: Actor) -> dict[str, Any]:
    """The document of a review by its id: the report of its subject and its record."""
    review = system.reviews.review(review_id)
    subject = review.subject
    if subject.kind is SubjectKind.INCIDENT:
        assert subject.incident_id is not None
        return incident_review(system, subject.incident_id, actor)
    return period_review(system, subject.start, subject.end, actor, review)


def period_bounds(start: str | None, end: str | None) -> tuple[datetime | None, datetime | None]:
    """The period asked for: both bounds or neither (a drill's whole history)."""
    if (start is None) != (end is None):
        raise InvalidValue("give the period's start and end, or neither (every incident)")
    if start is None or end is None:
        return None, None
    first, last = parse_instant("start", start), parse_instant("end", end)
    if last <= first:
        raise InvalidValue(f"the period ends ({end}) before it starts ({start})")
    return first, last


def csv_answer(document: dict[str, Any], table: ReviewTable, name: str) -> Response:
    return Response(review_csv(document, table), media_type=CSV, headers={
        "Content-Disposition": f'attachment; filename="{name}-{table.value}.csv"'})


def pdf_answer(system: SystemDep, document: dict[str, Any], name: str) -> Response:
    data = review_pdf(document, zone=system.catalogue.calendar.timezone,
                      font=system.settings.report_font)
    return Response(data, media_type=PDF, headers={
        "Content-Disposition": f'attachment; filename="{name}.pdf"'})


TableQuery = Annotated[ReviewTable, Query(description="Which table of the review")]
StartQuery = Annotated[str | None, Query(description="Period start, RFC 3339 with a time "
                                         "zone (with `end`; neither: every incident)")]
EndQuery = Annotated[str | None, Query(description="Period end (excluded), RFC 3339")]
CSV_ANSWER: dict[int | str, dict[str, Any]] = {200: {
    "content": {"text/csv": {"schema": {"type": "string"}}},
    "description": "One table of the review as CSV"}}
PDF_ANSWER: dict[int | str, dict[str, Any]] = {200: {
    "content": {PDF: {"schema": {"type": "string", "format": "binary"}}},
    "description": "The review as a PDF report"}}


# --- reports ---------------------------------------------------------------------------------


@router.get("/incidents/{incident_id}", response_model=IncidentReviewPublic,
            dependencies=IN_SCOPE)
def get_incident_review(incident_id: UUID, system: SystemDep,
                        actor: ReviewReader) -> dict[str, Any]:
    """An incident's after-action review: its report computed from the events (timeline,
    response times against the norms, per resource and department, tasks late or never,
    resources used, objectives) and, once opened, the review's findings and improvements."""
    return incident_review(system, incident_id, actor)


@router.get("/incidents/{incident_id}/report.csv", response_class=Response,
            responses=CSV_ANSWER, dependencies=IN_SCOPE)
def incident_review_csv(incident_id: UUID, system: SystemDep, actor: ReviewReader,
                        table: TableQuery = ReviewTable.TIMELINE) -> Response:
    """One table of an incident's review as CSV."""
    return csv_answer(incident_review(system, incident_id, actor), table,
                      f"review-incident-{incident_id}")


@router.get("/incidents/{incident_id}/report.pdf", response_class=Response,
            responses=PDF_ANSWER, dependencies=IN_SCOPE)
def incident_review_pdf(incident_id: UUID, system: SystemDep,
                        actor: ReviewReader) -> Response:
    """An incident's review as a PDF report (the same content as its JSON)."""
    return pdf_answer(system, incident_review(system, incident_id, actor),
                      f"review-incident-{incident_id}")


@router.get("/period", response_model=PeriodReviewPublic)
def get_period_review(system: SystemDep, actor: ReviewReader, start: StartQuery = None,
                      end: EndQuery = None) -> dict[str, Any]:
    """The after-action report of the incidents reported in a period (without one: every
    incident, as for a whole drill)."""
    first, last = period_bounds(start, end)
    return period_review(system, first, last, actor)


@router.get("/period/report.csv", response_class=Response, responses=CSV_ANSWER)
def period_review_csv(system: SystemDep, actor: ReviewReader, start: StartQuery = None,
                      end: EndQuery = None,
                      table: TableQuery = ReviewTable.TIMELINE) -> Response:
    """One table of a period's report as CSV."""
    first, last = period_bounds(start, end)
    return csv_answer(period_review(system, first, last, actor), table, "review-period")


@router.get("/period/report.pdf", response_class=Response, responses=PDF_ANSWER)
def period_review_pdf(system: SystemDep, actor: ReviewReader, start: StartQuery = None,
                      end: EndQuery = None) -> Response:
    """A period's report as a PDF."""
    first, last = period_bounds(start, end)
    return pdf_answer(system, period_review(system, first, last, actor), "review-period")


# --- the reviews' records ----------------------------------------------------------------------


class ReviewOpening(Command):
    title: str = Field(min_length=1, max_length=200)
    incident_id: UUID | None = Field(default=None, description="The incident reviewed")
    start: datetime | None = Field(default=None, description="Or the period's start")
    end: datetime | None = Field(default=None, description="And its end (excluded)")


class SummaryText(Command):
    summary: str = Field(min_length=1, max_length=4000)


class FindingIn(Command):
    text: str = Field(min_length=1, max_length=4000)
    aspect: FindingAspect
    kind: FindingKind = FindingKind.AREA_FOR_IMPROVEMENT
    department: str | None = None


class Reason(Command):
    reason: str = Field(min_length=1, max_length=4000)


class ImprovementIn(Command):
    action: str = Field(min_length=1, max_length=4000, description="What is to be done")
    department: str = Field(description="Which department does it")
    assignee: str = Field(default="", max_length=100, description="Who, by name")
    due: datetime = Field(description="By when (with a time zone)")
    finding_id: UUID | None = Field(default=None, description="The finding it answers")


class Note(Command):
    note: str = Field(default="", max_length=4000)


class Reopening(Command):
    reason: str = Field(min_length=1, max_length=4000)
    drill_id: str | None = Field(default=None, description="The drill that showed it not "
                                 "fixed")
    drill_review_id: UUID | None = None


class Verification(Command):
    drill_id: str = Field(min_length=1, max_length=100,
                          description="The later drill that showed it fixed")
    drill_review_id: UUID = Field(description="That drill's review")
    note: str = Field(default="", max_length=4000)


def _run(system: SystemDep, command: ReviewCommand | OpenReview, actor: Actor,
         command_id: str | None, seen: Mapping[UUID, int] | None = None) -> dict[str, Any]:
    outcome = system.commands.handle(command, CommandContext(
        actor=actor, command_id=command_id, seen_versions=seen or {}))
    return system.reviews.review(outcome.subject).summary(system.clock())


@router.get("", response_model=ReviewsPublic)
def list_reviews(system: SystemDep, _: ReviewReader) -> dict[str, Any]:
    """Every review of this system (live, or the drill's), newest first."""
    now = system.clock()
    reviews = [r.summary(now) for r in system.reviews.reviews()]
    return {"data": reviews, "count": len(reviews)}


@router.get("/improvements", response_model=FollowedUpItemsPublic)
def list_improvements(
    system: SystemDep, _: ReviewReader,
    status: Annotated[list[ItemStatus] | None, Query(description="Any of these states")]
    = None,
    department: Annotated[str | None, Query(description="Of this department")] = None,
    overdue: Annotated[bool | None, Query(description="Only those open past their due "
                                          "time (true) or not (false)")] = None,
) -> dict[str, Any]:
    """The improvement plan's follow-up: every item of every review of this system, by due
    time, with the review it belongs to."""
    now = system.clock()
    items = []
    for review in system.reviews.reviews():
        for item in review.summary(now)["improvements"]:
            if status and item["status"] not in status:
                continue
            if department is not None and item["department"] != department:
                continue
            if overdue is not None and item["overdue"] is not overdue:
                continue
            items.append({**item, "review_id": str(review.id), "review_title": review.title,
                          "drill_id": review.drill_id})
    items.sort(key=lambda i: (i["due"], i["id"]))
    return {"data": items, "count": len(items)}


@router.post("", response_model=ReviewPublic, status_code=201)
def open_review(body: ReviewOpening, system: SystemDep, actor: CurrentActor,
                command_id: CommandId) -> dict[str, Any]:
    """Open the review of an incident (one per incident) or of a period."""
    return _run(system, OpenReview(title=body.title, incident_id=body.incident_id,
                                   start=body.start, end=body.end), actor, command_id)


@router.get("/{review_id}", response_model=ReviewPublic)
def get_review(review_id: UUID, system: SystemDep, _: ReviewReader) -> dict[str, Any]:
    """A review's record: findings and improvement plan, with the follow-up of each item."""
    return system.reviews.review(review_id).summary(system.clock())


@router.get("/{review_id}/report", response_model=IncidentReviewPublic | PeriodReviewPublic)
def get_review_report(review_id: UUID, system: SystemDep,
                      actor: ReviewReader) -> dict[str, Any]:
    """A review with the report of its subject (an incident's or a period's)."""
    return review_of(system, review_id, actor)


@router.get("/{review_id}/report.csv", response_class=Response, responses=CSV_ANSWER)
def review_report_csv(review_id: UUID, system: SystemDep, actor: ReviewReader,
                      table: TableQuery = ReviewTable.TIMELINE) -> Response:
    """One table of a review (its findings, improvements, or its report's) as CSV."""
    return csv_answer(review_of(system, review_id, actor), table, f"review-{review_id}")


@router.get("/{review_id}/report.pdf", response_class=Response, responses=PDF_ANSWER)
def review_report_pdf(review_id: UUID, system: SystemDep, actor: ReviewReader) -> Response:
    """A review as a PDF report: its findings, improvement plan and figures."""
    return pdf_answer(system, review_of(system, review_id, actor), f"review-{review_id}")


@router.post("/{review_id}/summary", response_model=ReviewPublic)
def write_summary(review_id: UUID, body: SummaryText, system: SystemDep, actor: CurrentActor,
                  command_id: CommandId, seen: SeenVersion) -> dict[str, Any]:
    """Write (or rewrite) the review's summary."""
    return _run(system, WriteReviewSummary(review_id=review_id, summary=body.summary),
                actor, command_id, seen)


@router.post("/{review_id}/findings", response_model=ReviewPublic)
def record_finding(review_id: UUID, body: FindingIn, system: SystemDep, actor: CurrentActor,
                   command_id: CommandId, seen: SeenVersion) -> dict[str, Any]:
    """Record a strength or an area for improvement."""
    return _run(system, RecordReviewFinding(
        review_id=review_id, text=body.text, aspect=body.aspect, kind=body.kind,
        department=body.department), actor, command_id, seen)


@router.post("/{review_id}/findings/{finding_id}/withdraw", response_model=ReviewPublic)
def withdraw_finding(review_id: UUID, finding_id: UUID, body: Reason, system: SystemDep,
                     actor: CurrentActor, command_id: CommandId,
                     seen: SeenVersion) -> dict[str, Any]:
    """Withdraw a finding made in error (it stays on record, marked withdrawn)."""
    return _run(system, WithdrawReviewFinding(review_id=review_id, finding_id=finding_id,
                                              reason=body.reason), actor, command_id, seen)


@router.post("/{review_id}/improvements", response_model=ReviewPublic)
def plan_improvement(review_id: UUID, body: ImprovementIn, system: SystemDep,
                     actor: CurrentActor, command_id: CommandId,
                     seen: SeenVersion) -> dict[str, Any]:
    """Add an item to the improvement plan: what, which department (and who), by when."""
    return _run(system, PlanImprovement(
        review_id=review_id, action=body.action, department=body.department,
        assignee=body.assignee, due=body.due, finding_id=body.finding_id), actor,
        command_id, seen)


@router.post("/{review_id}/improvements/{item_id}/done", response_model=ReviewPublic)
def complete_improvement(review_id: UUID, item_id: UUID, body: Note, system: SystemDep,
                         actor: CurrentActor, command_id: CommandId,
                         seen: SeenVersion) -> dict[str, Any]:
    """The item is done (a later drill is to show it fixed)."""
    return _run(system, CompleteImprovement(review_id=review_id, item_id=item_id,
                                            note=body.note), actor, command_id, seen)


@router.post("/{review_id}/improvements/{item_id}/verify", response_model=ReviewPublic)
def verify_improvement(review_id: UUID, item_id: UUID, body: Verification,
                       system: SystemDep, actor: CurrentActor, command_id: CommandId,
                       seen: SeenVersion) -> dict[str, Any]:
    """A later drill's review showed the item fixed."""
    return _run(system, VerifyImprovement(
        review_id=review_id, item_id=item_id, drill_id=body.drill_id,
        drill_review_id=body.drill_review_id, note=body.note), actor, command_id, seen)


@router.post("/{review_id}/improvements/{item_id}/reopen", response_model=ReviewPublic)
def reopen_improvement(review_id: UUID, item_id: UUID, body: Reopening, system: SystemDep,
                       actor: CurrentActor, command_id: CommandId,
                       seen: SeenVersion) -> dict[str, Any]:
    """Not fixed after all (a later drill showed it): the item is open again."""
    return _run(system, ReopenImprovement(
        review_id=review_id, item_id=item_id, reason=body.reason, drill_id=body.drill_id,
        drill_review_id=body.drill_review_id), actor, command_id, seen)


@router.post("/{review_id}/improvements/{item_id}/drop", response_model=ReviewPublic)
def drop_improvement(review_id: UUID, item_id: UUID, body: Reason, system: SystemDep,
                     actor: CurrentActor, command_id: CommandId,
                     seen: SeenVersion) -> dict[str, Any]:
    """Drop an item made in error or overtaken (it stays on record with the reason)."""
    return _run(system, DropImprovement(review_id=review_id, item_id=item_id,
                                        reason=body.reason), actor, command_id, seen)


@router.post("/{review_id}/conclude", response_model=ReviewPublic)
def conclude_review(review_id: UUID, system: SystemDep, actor: CurrentActor,
                    command_id: CommandId, seen: SeenVersion) -> dict[str, Any]:
    """Make the report final (needs its summary and a finding); items are still followed
    up."""
    return _run(system, ConcludeReview(review_id=review_id), actor, command_id, seen)


# --- the page ----------------------------------------------------------------------------------


@page_router.get("/after-action-review", response_class=HTMLResponse)
def review_page(
    system: SystemDep,
    incident: Annotated[UUID | None, Query(description="The incident reviewed")] = None,
    review: Annotated[UUID | None, Query(description="Or a review, by its id")] = None,
    start: StartQuery = None,
    end: EndQuery = None,
) -> HTMLResponse:
    """The after-action review page: charts, timeline, findings and improvement plan of an
    incident, a review or a period (the page asks the API for them with the user's token)."""
    return page("review.html", system.settings.tile_url)
