"""The warning desk's rules, step by step as the issue tells them: a warning drafted (from an
incident, a hazard alarm or from scratch), approved by a second person, issued, updated and
cancelled; each bad input refused with nothing recorded; expiry shown against the clock; a
drill's warnings are exercises.

The city's map is a small box city (`BoxGeography`): a real implementation over shapely
boxes, no I/O. `tests/unit/maps/test_warning_areas.py` checks the demo city's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
import shapely

from cityops.domain.actors import Actor, Role
from cityops.domain.catalogue import Catalogue
from cityops.domain.commands import CommandContext
from cityops.domain.errors import IllegalTransition, InvalidValue, NotPermitted
from cityops.domain.geometry import Area, GeoPoint
from cityops.domain.hazards.commands import AddSensor, RecordReading, RegisterHazardSource
from cityops.domain.incidents.application import Incidents
from cityops.domain.incidents.commands import ReportIncident
from cityops.domain.incidents.incident import IncidentSource
from cityops.domain.warnings.application import Warnings
from cityops.domain.warnings.commands import (
    ApproveWarning,
    CancelWarning,
    DiscardWarningDraft,
    DraftWarning,
    DraftWarningUpdate,
    DrawnArea,
    IssueWarning,
    ReviseWarningDraft,
)
from cityops.domain.warnings.content import (
    AdminAreaRef,
    AdminLevel,
    AlertStatus,
    LevelKind,
    MessageType,
    OriginKind,
    Scope,
    WarningCircle,
    WarningText,
)
from cityops.domain.warnings.warning import SecondPersonRequired, WarningStatus, WarningStep

POPO = {"PERSISTENCE_MODULE": "eventsourcing.popo"}
START = datetime(2026, 3, 10, 1, 0, tzinfo=UTC)
DRAFTER = Actor("duty-zhao", Role.DISPATCHER)
APPROVER = Actor("duty-li", Role.DISPATCHER)
LEADER = Actor("leader-wang", Role.LEADER)
WATER = Actor("water-chen", Role.DEPARTMENT_USER, "water")

CITY = shapely.box(118.75, 32.0, 118.85, 32.1)
"""A box city of two districts (west, east) split at 118.80."""
DISTRICTS = {"D01": ("West", shapely.box(118.75, 32.0, 118.80, 32.1)),
             "D02": ("East", shapely.box(118.80, 32.0, 118.85, 32.1))}


class FixedClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **parts: float) -> datetime:
        self.now += timedelta(**parts)
        return self.now


class BoxGeography:
    """The warning desk's map of the box city; a circle is its centre's square of the same
    radius (close enough for which district it touches)."""

    @staticmethod
    def _shape(polygons: Sequence[Area], circles: Sequence[WarningCircle]) -> shapely.Geometry:
        parts = [p.shape for p in polygons]
        parts += [shapely.Point(c.centre.lon, c.centre.lat).buffer(c.radius_km / 100)
                  for c in circles]
        return shapely.union_all(parts)

    def check_in_city(self, polygons: Sequence[Area], circles: Sequence[WarningCircle]) -> None:
        if not self._shape(polygons, circles).intersection(CITY).area > 0:
            raise InvalidValue("the warning's area lies outside the city")

    def admin_areas(self, polygons: Sequence[Area],
                    circles: Sequence[WarningCircle]) -> tuple[AdminAreaRef, ...]:
        shape = self._shape(polygons, circles)
        return tuple(AdminAreaRef(level=AdminLevel.DISTRICT, code=code, name=name)
                     for code, (name, box) in DISTRICTS.items()
                     if shape.intersection(box).area > 0)


def texts(headline: str = "Gas leak: keep away") -> tuple[WarningText, ...]:
    return (WarningText(language="zh-CN", headline="燃气泄漏：请远离",  # noqa: RUF001
                        description="液化气站发生泄漏。",
                        instruction="关闭门窗，远离该区域。"),  # noqa: RUF001
            WarningText(language="en-US", headline=headline,
                        description="A gas leak at the LPG depot.",
                        instruction="Close windows, stay away from the area."))


WEST_SQUARE = Area(wkt=shapely.box(118.76, 32.04, 118.78, 32.06).wkt)
ACROSS = Area(wkt=shapely.box(118.79, 32.04, 118.81, 32.06).wkt)
FAR_AWAY = Area(wkt=shapely.box(120.0, 31.0, 120.1, 31.1).wkt)


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return Catalogue.load()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(START)


@pytest.fixture
def incidents(catalogue: Catalogue, clock: FixedClock) -> Incidents:
    return Incidents(POPO, catalogue=catalogue, clock=clock)


@pytest.fixture
def desk(catalogue: Catalogue, clock: FixedClock, incidents: Incidents) -> Warnings:
    return Warnings(POPO, catalogue=catalogue, geography=BoxGeography(), clock=clock,
                    incident_of=incidents.incident)


def scratch(**changes: object) -> DraftWarning:
    command = DraftWarning(texts=texts(), expires=START + timedelta(hours=6),
                           contact="City hotline 12345", level="orange",
                           category="accident-disaster", event_type="gas-leak",
                           area=DrawnArea(polygons=(WEST_SQUARE,)))
    return replace(command, **changes) if changes else command


def issued(desk: Warnings, **changes: object) -> UUID:
    warning_id = desk.handle(scratch(**changes), CommandContext(actor=DRAFTER)).subject
    desk.handle(ApproveWarning(warning_id=warning_id), CommandContext(actor=APPROVER))
    desk.handle(IssueWarning(warning_id=warning_id), CommandContext(actor=DRAFTER))
    return warning_id


def test_a_public_warning_from_draft_to_cancellation(desk: Warnings, clock: FixedClock) -> None:
    warning_id = desk.handle(scratch(), CommandContext(actor=DRAFTER)).subject
    warning = desk.warning(warning_id)
    assert warning.status is WarningStatus.DRAFTED
    assert warning.draft is not None
    assert warning.draft.area.admin_areas == (
        AdminAreaRef(level=AdminLevel.DISTRICT, code="D01", name="West"),)
    assert warning.draft.area.description == "West"
    assert warning.draft.level.kind is LevelKind.COLOUR and warning.draft.level.rank == 2

    clock.advance(minutes=2)
    desk.handle(ApproveWarning(warning_id=warning_id, note="checked"),
                CommandContext(actor=APPROVER))
    assert desk.warning(warning_id).status is WarningStatus.APPROVED

    clock.advance(minutes=1)
    desk.handle(IssueWarning(warning_id=warning_id), CommandContext(actor=DRAFTER))
    warning = desk.warning(warning_id)
    assert warning.status is WarningStatus.ISSUED
    [alert] = warning.notices
    assert alert.msg_type is MessageType.ALERT and alert.sequence == 1
    assert alert.sent == clock.now and alert.references == ()
    assert alert.status is AlertStatus.ACTUAL and alert.scope is Scope.PUBLIC
    assert alert.issued_by == "duty-zhao" and alert.approved_by == "duty-li"
    assert alert.identifier == f"cityops-warning.{warning_id}.1"

    clock.advance(minutes=30)
    wider = DrawnArea(polygons=(ACROSS, WEST_SQUARE), description="West and East")
    desk.handle(DraftWarningUpdate(warning_id=warning_id, texts=texts("Leak spreading"),
                                   expires=START + timedelta(hours=8), contact="12345",
                                   area=wider, reason="leak spreading east"),
                                       CommandContext(actor=DRAFTER))
    warning = desk.warning(warning_id)
    assert warning.status is WarningStatus.UPDATE_DRAFTED
    # The issued content stays in force while the update is prepared.
    assert warning.content == alert.content
    desk.handle(ApproveWarning(warning_id=warning_id), CommandContext(actor=APPROVER))
    desk.handle(IssueWarning(warning_id=warning_id), CommandContext(actor=APPROVER))
    warning = desk.warning(warning_id)
    update = warning.notices[-1]
    assert update.msg_type is MessageType.UPDATE and update.sequence == 2
    assert update.references == (alert.reference,)
    assert [a.code for a in update.content.area.admin_areas] == ["D01", "D02"]
    assert update.content.onset == alert.content.onset
    assert update.content.origin == alert.content.origin

    clock.advance(minutes=90)
    desk.handle(CancelWarning(warning_id=warning_id, reason="leak stopped"),
                CommandContext(actor=DRAFTER))
    warning = desk.warning(warning_id)
    cancel = warning.notices[-1]
    assert warning.status is WarningStatus.CANCELLED
    assert cancel.msg_type is MessageType.CANCEL and cancel.sequence == 3
    assert cancel.references == (alert.reference, update.reference)
    assert cancel.note == "leak stopped" and cancel.content == update.content
    steps = [(s["step"], s["by"]) for s in warning.summary()["steps"]]
    assert steps == [("drafted", "duty-zhao"), ("approved", "duty-li"), ("issued", "duty-zhao"),
                     ("update drafted", "duty-zhao"), ("approved", "duty-li"),
                     ("updated", "duty-li"), ("cancelled", "duty-zhao")]


def test_the_drafter_cannot_approve_a_public_warning(desk: Warnings) -> None:
    warning_id = desk.handle(scratch(), CommandContext(actor=DRAFTER)).subject
    version = desk.warning(warning_id).version
    with pytest.raises(SecondPersonRequired, match="second person"):
        desk.handle(ApproveWarning(warning_id=warning_id), CommandContext(actor=DRAFTER))
    assert isinstance(SecondPersonRequired("x"), NotPermitted)
    assert desk.warning(warning_id).version == version
    with pytest.raises(IllegalTransition):
        desk.handle(IssueWarning(warning_id=warning_id), CommandContext(actor=DRAFTER))
    assert desk.warning(warning_id).notices == []


def test_whoever_revised_a_public_draft_cannot_approve_it_either(desk: Warnings) -> None:
    warning_id = desk.handle(scratch(), CommandContext(actor=DRAFTER)).subject
    desk.handle(ReviseWarningDraft(warning_id=warning_id, texts=texts("Gas leak: stay in"),
                                   expires=START + timedelta(hours=6), contact="12345",
                                   level="red"), CommandContext(actor=APPROVER))
    with pytest.raises(SecondPersonRequired):
        desk.handle(ApproveWarning(warning_id=warning_id), CommandContext(actor=APPROVER))
    third = Actor("duty-sun", Role.DISPATCHER)
    desk.handle(ApproveWarning(warning_id=warning_id), CommandContext(actor=third))
    assert desk.warning(warning_id).status is WarningStatus.APPROVED


def test_a_revision_withdraws_an_approval(desk: Warnings) -> None:
    warning_id = desk.handle(scratch(), CommandContext(actor=DRAFTER)).subject
    desk.handle(ApproveWarning(warning_id=warning_id), CommandContext(actor=APPROVER))
    desk.handle(ReviseWarningDraft(warning_id=warning_id, texts=texts(),
                                   expires=START + timedelta(hours=3), contact="12345"),
                                       CommandContext(actor=DRAFTER))
    warning = desk.warning(warning_id)
    assert warning.status is WarningStatus.DRAFTED and warning.approved_by is None
    with pytest.raises(IllegalTransition, match="drafted"):
        desk.handle(IssueWarning(warning_id=warning_id), CommandContext(actor=DRAFTER))


def test_an_update_of_a_public_warning_needs_a_second_person_too(desk: Warnings) -> None:
    warning_id = issued(desk)
    desk.handle(DraftWarningUpdate(warning_id=warning_id, texts=texts(), contact="12345",
                                   expires=START + timedelta(hours=9), reason="longer"),
                                       CommandContext(actor=APPROVER))
    with pytest.raises(SecondPersonRequired):
        desk.handle(ApproveWarning(warning_id=warning_id), CommandContext(actor=APPROVER))


def test_a_restricted_warning_may_be_approved_by_its_drafter(desk: Warnings) -> None:
    warning_id = desk.handle(scratch(scope=Scope.RESTRICTED,
                                     restriction="Emergency services of the city only"),
                                         CommandContext(actor=DRAFTER)).subject
    desk.handle(ApproveWarning(warning_id=warning_id), CommandContext(actor=DRAFTER))
    desk.handle(IssueWarning(warning_id=warning_id), CommandContext(actor=DRAFTER))
    [notice] = desk.notices(warning_id)
    assert notice.scope is Scope.RESTRICTED
    assert notice.content.restriction == "Emergency services of the city only"


@pytest.mark.parametrize("actor", [LEADER, WATER, Actor("hotline-1", Role.HOTLINE_OPERATOR)])
def test_only_the_centre_drafts_warnings(desk: Warnings, actor: Actor) -> None:
    with pytest.raises(NotPermitted, match=r"warning.draft"):
        desk.handle(scratch(), CommandContext(actor=actor))


def test_only_the_centre_approves_and_issues(desk: Warnings) -> None:
    warning_id = desk.handle(scratch(), CommandContext(actor=DRAFTER)).subject
    with pytest.raises(NotPermitted, match=r"warning.approve"):
        desk.handle(ApproveWarning(warning_id=warning_id), CommandContext(actor=LEADER))
    desk.handle(ApproveWarning(warning_id=warning_id), CommandContext(actor=APPROVER))
    with pytest.raises(NotPermitted, match=r"warning.issue"):
        desk.handle(IssueWarning(warning_id=warning_id), CommandContext(actor=WATER))


# --- bad input: a clear refusal, nothing recorded ----------------------------------------------


def test_a_warning_without_an_area_is_refused() -> None:
    with pytest.raises(InvalidValue, match="needs an area"):
        DrawnArea()
    with pytest.raises(InvalidValue, match="from scratch needs an area"):
        scratch(area=None)


def test_a_warning_from_an_incident_without_an_affected_area_needs_one_drawn(
        desk: Warnings, incidents: Incidents) -> None:
    incident_id = incidents.handle(ReportIncident(
        category="accident-disaster", incident_type="gas-leak", title="Gas leak",
        location=GeoPoint(118.77, 32.05), source=IncidentSource.HOTLINE),
        CommandContext(actor=DRAFTER)).subject
    with pytest.raises(InvalidValue, match="no affected area"):
        desk.handle(DraftWarning(origin=OriginKind.INCIDENT, incident_id=incident_id,
                                 texts=texts(), expires=START + timedelta(hours=2),
                                 contact="12345"), CommandContext(actor=DRAFTER))


def test_an_area_outside_the_city_is_refused(desk: Warnings) -> None:
    with pytest.raises(InvalidValue, match="outside the city"):
        desk.handle(scratch(area=DrawnArea(polygons=(FAR_AWAY,))), CommandContext(actor=DRAFTER))
    far_circle = WarningCircle(centre=GeoPoint(121.0, 31.0), radius_km=2)
    with pytest.raises(InvalidValue, match="outside the city"):
        desk.handle(scratch(area=DrawnArea(circles=(far_circle,))), CommandContext(actor=DRAFTER))
    assert desk.recorder.max_notification_id() in (None, 0)


def test_an_expiry_before_onset_is_refused() -> None:
    with pytest.raises(InvalidValue, match="is not after onset"):
        scratch(onset=START + timedelta(hours=2), expires=START + timedelta(hours=1))


def test_an_expiry_before_the_default_onset_is_refused(desk: Warnings) -> None:
    with pytest.raises(InvalidValue, match="is not after onset"):
        desk.handle(scratch(expires=START - timedelta(minutes=1)), CommandContext(actor=DRAFTER))


def test_an_update_of_a_cancelled_warning_is_refused(desk: Warnings) -> None:
    warning_id = issued(desk)
    desk.handle(CancelWarning(warning_id=warning_id, reason="all clear"),
                CommandContext(actor=DRAFTER))
    version = desk.warning(warning_id).version
    with pytest.raises(IllegalTransition, match=r"cannot update warning .* it is cancelled"):
        desk.handle(DraftWarningUpdate(warning_id=warning_id, texts=texts(), contact="12345",
                                       expires=START + timedelta(hours=9), reason="again"),
                                           CommandContext(actor=DRAFTER))
    with pytest.raises(IllegalTransition, match="cancelled"):
        desk.handle(CancelWarning(warning_id=warning_id, reason="twice"),
                    CommandContext(actor=DRAFTER))
    assert desk.warning(warning_id).version == version


def test_a_circle_radius_in_metres_by_mistake_is_refused() -> None:
    with pytest.raises(InvalidValue, match="circle radius"):
        WarningCircle(centre=GeoPoint(118.77, 32.05), radius_km=500)
    with pytest.raises(InvalidValue, match="more than 0 km"):
        WarningCircle(centre=GeoPoint(118.77, 32.05), radius_km=0)


def test_a_warning_is_written_in_both_languages(desk: Warnings) -> None:
    with pytest.raises(InvalidValue, match="the text in en-US is missing"):
        desk.handle(scratch(texts=texts()[:1]), CommandContext(actor=DRAFTER))
    with pytest.raises(InvalidValue, match="unknown warning language 'fr'"):
        WarningText(language="fr", headline="h", description="d", instruction="i")


def test_an_unknown_level_is_refused(desk: Warnings) -> None:
    with pytest.raises(InvalidValue, match="unknown warning level 'purple'"):
        desk.handle(scratch(level="purple"), CommandContext(actor=DRAFTER))


def test_a_polygon_with_a_hole_is_refused() -> None:
    holed = shapely.box(118.76, 32.04, 118.78, 32.06).difference(
        shapely.box(118.765, 32.045, 118.77, 32.05))
    with pytest.raises(InvalidValue, match="holes"):
        DrawnArea(polygons=(Area(wkt=holed.wkt),))


# --- from an incident, expiry, drills --------------------------------------------------------


def test_a_warning_from_an_incident_takes_its_affected_area_type_and_warning_colour(
        desk: Warnings, incidents: Incidents) -> None:
    incident_id = incidents.handle(ReportIncident(
        category="accident-disaster", incident_type="gas-leak", title="Gas leak at the depot",
        location=GeoPoint(118.79, 32.05), affected_area=ACROSS, warning="yellow",
        source=IncidentSource.HOTLINE), CommandContext(actor=DRAFTER)).subject
    warning_id = desk.handle(DraftWarning(origin=OriginKind.INCIDENT, incident_id=incident_id,
                                          texts=texts(), expires=START + timedelta(hours=2),
                                          contact="12345"), CommandContext(actor=DRAFTER)).subject
    draft = desk.warning(warning_id).draft
    assert draft is not None
    assert (draft.category, draft.event_type, draft.level.code) == (
        "accident-disaster", "gas-leak", "yellow")
    assert draft.area.polygons == (ACROSS,)
    assert [a.code for a in draft.area.admin_areas] == ["D01", "D02"]
    assert draft.origin.incident_id == incident_id
    assert draft.origin.title == "Gas leak at the depot"


def test_an_issued_warning_past_its_expiry_is_shown_expired_and_can_no_longer_change(
        desk: Warnings, clock: FixedClock) -> None:
    warning_id = issued(desk, expires=START + timedelta(hours=1))
    warning = desk.warning(warning_id)
    assert warning.status_at(clock.now) is WarningStatus.ISSUED
    clock.advance(hours=1)
    warning = desk.warning(warning_id)
    assert warning.status_at(clock.now) is WarningStatus.EXPIRED
    assert warning.summary(clock.now)["status"] == "expired"
    with pytest.raises(IllegalTransition, match=r"expiry .* has passed"):
        desk.handle(CancelWarning(warning_id=warning_id, reason="late"),
                    CommandContext(actor=DRAFTER))
    with pytest.raises(IllegalTransition, match=r"expiry .* has passed"):
        desk.handle(DraftWarningUpdate(warning_id=warning_id, texts=texts(), contact="1",
                                       expires=START + timedelta(hours=5), reason="more"),
                                           CommandContext(actor=DRAFTER))


def test_an_approved_draft_past_its_expiry_is_not_issued(desk: Warnings,
                                                         clock: FixedClock) -> None:
    warning_id = desk.handle(scratch(expires=START + timedelta(minutes=30)),
                             CommandContext(actor=DRAFTER)).subject
    desk.handle(ApproveWarning(warning_id=warning_id), CommandContext(actor=APPROVER))
    clock.advance(minutes=31)
    with pytest.raises(IllegalTransition, match="has passed"):
        desk.handle(IssueWarning(warning_id=warning_id), CommandContext(actor=DRAFTER))
    assert desk.warning(warning_id).notices == []


def test_a_draft_can_be_discarded_and_an_update_dropped(desk: Warnings) -> None:
    draft_id = desk.handle(scratch(), CommandContext(actor=DRAFTER)).subject
    desk.handle(DiscardWarningDraft(warning_id=draft_id, reason="duplicate"),
                CommandContext(actor=APPROVER))
    assert desk.warning(draft_id).status is WarningStatus.DISCARDED
    warning_id = issued(desk)
    desk.handle(DraftWarningUpdate(warning_id=warning_id, texts=texts(), contact="12345",
                                   expires=START + timedelta(hours=9), reason="longer"),
                                       CommandContext(actor=DRAFTER))
    desk.handle(DiscardWarningDraft(warning_id=warning_id, reason="not needed"),
                CommandContext(actor=DRAFTER))
    warning = desk.warning(warning_id)
    assert warning.status is WarningStatus.ISSUED and len(warning.notices) == 1


def test_a_drill_desk_issues_exercises_only(catalogue: Catalogue, clock: FixedClock) -> None:
    drill = Warnings(POPO, catalogue=catalogue, geography=BoxGeography(), clock=clock,
                     drill_id="drill-2026-03")
    warning_id = issued(drill)
    [notice] = drill.notices(warning_id)
    assert notice.status is AlertStatus.EXERCISE and notice.is_exercise
    assert notice.drill_id == "drill-2026-03"
    assert drill.warning(warning_id).summary()["alert_status"] == "exercise"


def test_a_repeated_command_id_drafts_once(desk: Warnings) -> None:
    first = desk.handle(scratch(),
                        CommandContext(actor=DRAFTER, command_id="by:duty-zhao:k1")).subject
    again = desk.handle(scratch(),
                        CommandContext(actor=DRAFTER, command_id="by:duty-zhao:k1")).subject
    assert first == again
    assert desk.warning(first).version == 1


def test_a_warning_from_a_hazard_alarm_covers_the_sources_impact_circle(
        catalogue: Catalogue, clock: FixedClock) -> None:
    from cityops.domain.hazards.application import HazardSources
    from cityops.domain.hazards.catalogue import HazardCatalogue
    from cityops.domain.hazards.source import open_alarms

    hazards = HazardSources(POPO, catalogue=HazardCatalogue.load(), clock=clock)
    planner = Actor("planner-sun", Role.PLANNER)
    depot = GeoPoint(118.79, 32.05)
    source_id = hazards.handle(RegisterHazardSource(
        hazard_type="lpg-depot", source_name="Riverside LPG depot", owner_name="Riverside",
        owner_contact="025-1", grade=2, location=depot, impact_radius_m=1200),
        CommandContext(actor=planner)).subject
    hazards.handle(AddSensor(source_id=source_id, sensor_id="gas-1", kind="gas-concentration",
                             unit="%LEL", direction="high", warning=20, alarm=50),
                   CommandContext(actor=planner))
    hazards.handle(RecordReading(source_id=source_id, sensor_id="gas-1", value=60.0,
                                 measured_at=clock.advance(minutes=1)),
                   CommandContext(actor=Actor("gateway", Role.SYSTEM)))
    [alarm] = open_alarms(hazards.source(source_id))
    desk = Warnings(POPO, catalogue=catalogue, geography=BoxGeography(), clock=clock,
                    hazard_source_of=hazards.source)
    command = DraftWarning(origin=OriginKind.HAZARD_ALARM, hazard_source_id=source_id,
                           alarm_id=alarm.alarm_id, category="accident-disaster",
                           event_type="gas-leak", level="red", texts=texts(),
                           expires=clock.now + timedelta(hours=2), contact="12345")
    draft = desk.warning(desk.handle(command, CommandContext(actor=DRAFTER)).subject).draft
    assert draft is not None
    assert draft.area.circles == (WarningCircle(centre=depot, radius_km=1.2),)
    assert draft.area.polygons == ()
    assert draft.origin.alarm_id == alarm.alarm_id
    assert draft.origin.title == "Riverside LPG depot"
    with pytest.raises(InvalidValue, match="has no alarm"):
        desk.handle(replace(command, alarm_id=source_id), CommandContext(actor=DRAFTER))


def test_a_notice_references_exactly_what_it_replaces_and_an_exercise_belongs_to_a_drill(
        desk: Warnings) -> None:
    warning_id = issued(desk)
    [alert] = desk.notices(warning_id)
    with pytest.raises(InvalidValue, match="a first alert replaces nothing"):
        replace(alert, references=(alert.reference,))
    with pytest.raises(InvalidValue, match="references what it replaces"):
        replace(alert, msg_type=MessageType.CANCEL)
    with pytest.raises(InvalidValue, match="exercise notice belongs to a drill"):
        replace(alert, status=AlertStatus.EXERCISE)
    with pytest.raises(InvalidValue, match="exercise notice belongs to a drill"):
        replace(alert, drill_id="drill-1")


def test_the_warning_declares_its_state_once_and_keeps_its_steps_as_typed_values(
        desk: Warnings, clock: FixedClock) -> None:
    """Issue 11's standard on the warning: the state is made in `__init__` from the
    `Drafted` facts (no attribute appears first in an event's apply), the workflow's steps
    are `WarningStep` values, and the summary writes them as before."""
    warning_id = issued(desk)
    clock.advance(minutes=3)
    desk.handle(CancelWarning(warning_id=warning_id, reason="leak stopped"),
                CommandContext(actor=DRAFTER))
    warning = desk.warning(warning_id)
    assert all(isinstance(step, WarningStep) for step in warning.steps)
    assert [(s.step, s.by, s.role) for s in warning.steps] == [
        ("drafted", "duty-zhao", "dispatcher"), ("approved", "duty-li", "dispatcher"),
        ("issued", "duty-zhao", "dispatcher"), ("cancelled", "duty-zhao", "dispatcher")]
    assert warning.steps[-1].note == "leak stopped" and warning.steps[-1].at == clock.now
    assert warning.summary()["steps"][-1] == {
        "step": "cancelled", "by": "duty-zhao", "role": "dispatcher",
        "at": clock.now.isoformat(), "note": "leak stopped"}
    # Everything the warning keeps exists from its first event on.
    first = desk.repository.get(warning_id, version=1)
    assert set(vars(first)) >= {"status", "alert_status", "drill_id", "draft", "authors",
                                "drafted_by", "drafted_at", "approved_by", "approved_at",
                                "notices", "cancelled_at", "cancelled_by", "cancel_reason",
                                "discarded_at", "steps"}
    assert vars(first).keys() == vars(warning).keys()
