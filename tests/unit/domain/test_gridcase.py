"""The grid case, step by step as in the domain brief: reported -> registered (or rejected) ->
dispatched -> handled -> verified -> closed, with rework, return to the centre, deadline
extension and suspension; then every illegal transition, every wrong role and every bad value.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

import pytest

from cityops.domain.actors import Actor, Role
from cityops.domain.errors import IllegalTransition, InvalidValue, NotFound, NotPermitted
from cityops.domain.gridcases.case import MAX_PHOTOS, CaseStatus
from cityops.domain.model import MAX_TEXT
from cityops.domain.supervision import Light, light

SHANGHAI = ZoneInfo("Asia/Shanghai")


def local(month: int, day: int, hour: int, minute: int = 0, year: int = 2026) -> datetime:
    """A time on the city's wall clock (the built-in calendar is Asia/Shanghai)."""
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI)


def at(summary: dict[str, Any], key: str) -> datetime | None:
    value = summary[key]
    return datetime.fromisoformat(value) if value is not None else None


# --- the main path ---------------------------------------------------------------------------


def test_a_case_goes_from_report_to_closing(workflow, clock, cast, places):
    app = workflow.app
    # An inspector on patrol on Tuesday 09:00 reports a missing water manhole cover, with a
    # photo; it is located to its grid cell and the centre has one working hour to register it.
    case_id = workflow.report(photos=["photo://before.jpg"])
    case = app.case(case_id)
    assert case.status is CaseStatus.REPORTED
    summary = case.summary()
    assert summary["grid_cell"] == "D01-S01-C13-01"
    assert summary["source"] == "inspector"
    assert summary["photos"] == ["photo://before.jpg"]
    assert summary["location"] == places.in_d01.to_geojson()
    assert at(summary, "stage_deadline") == local(3, 10, 10)
    assert app.light(case) is Light.GREEN

    # The duty officer registers it; the catalogue proposes the water company.
    clock.set(local(3, 10, 9, 10))
    workflow.register(case_id)
    case = app.case(case_id)
    assert case.status is CaseStatus.REGISTERED
    assert case.proposed_department == "water"

    # Dispatched at 09:20 with the normal limit of 8 working hours: 6h40 on Tuesday (lunch
    # excluded), 1h20 on Wednesday morning.
    clock.set(local(3, 10, 9, 20))
    workflow.dispatch(case_id)
    summary = app.case(case_id).summary()
    assert summary["status"] == "dispatched"
    assert summary["department"] == "water"
    assert at(summary, "handling_deadline") == local(3, 11, 9, 50)
    assert at(summary, "stage_deadline") == local(3, 11, 9, 50)

    # The water company reports the result with evidence on Wednesday 09:00: on time.
    clock.set(local(3, 11, 9))
    workflow.handle(case_id, evidence=["photo://after.jpg"])
    case = app.case(case_id)
    assert case.status is CaseStatus.HANDLED
    assert case.result == "new cover fitted"
    assert case.evidence == ["photo://after.jpg"]
    assert case.handled_on_time is True

    # The inspector confirms on site; the centre then closes the case.
    clock.set(local(3, 11, 10))
    workflow.verify(case_id, note="cover fitted and level")
    assert app.case(case_id).status is CaseStatus.VERIFIED
    assert app.case(case_id).stage.deadline == local(3, 11, 15, 30)
    clock.set(local(3, 11, 11))
    workflow.close_case(case_id)
    case = app.case(case_id)
    assert case.status is CaseStatus.CLOSED
    assert case.closed_at == local(3, 11, 11)
    assert not case.is_open
    assert case.summary()["stage_deadline"] is None
    assert app.light(case) is None

    assert [t.rsplit(".", 1)[-1] for t in workflow.stored_case_events()] == [
        "Reported", "Registered", "Dispatched", "Handled", "Verified", "Closed",
    ]


def test_every_event_records_who_did_it_in_what_role_and_when(workflow, clock, cast):
    case_id = workflow.to("closed")
    events = list(workflow.app.events.get(case_id))
    assert [e.actor for e in events] == [
        cast.inspector, cast.dispatcher, cast.dispatcher, cast.water, cast.inspector,
        cast.dispatcher,
    ]
    times = [e.timestamp for e in events]
    assert times == sorted(times)
    assert times[-1] == clock()


def test_the_centre_may_correct_category_and_urgency_when_registering(workflow, places):
    # Reported as a sewer cover in D04; it is exposed garbage, which in D04 goes to urban
    # management (a routing rule), and it is urgent.
    case_id = workflow.report(category="C0102", location=places.in_d04)
    workflow.register(case_id, category="E0101", urgency="urgent", note="it is garbage")
    case = workflow.case(case_id)
    assert case.category == "E0101"
    assert case.urgency.value == "urgent"
    assert case.proposed_department == "urban-management"
    assert "it is garbage" in case.notes


def test_the_dispatcher_may_override_the_proposed_department(workflow):
    case_id = workflow.to("registered")
    workflow.dispatch(case_id, department="roads", instructions="lift the kerb too")
    assert workflow.case(case_id).department == "roads"


def test_an_urgent_case_is_counted_in_clock_hours_through_the_evening(workflow, clock):
    # Dispatched on Friday 17:00 as urgent (2 clock hours): due at 19:00 the same evening.
    case_id = workflow.report(urgency="urgent")
    workflow.register(case_id)
    clock.set(local(3, 13, 17))
    workflow.dispatch(case_id)
    assert workflow.case(case_id).handling_deadline == local(3, 13, 19)


def test_a_case_handled_after_its_deadline_is_late(workflow, clock):
    case_id = workflow.to("dispatched")
    clock.set(local(3, 12, 9))  # Thursday: the deadline was Wednesday 09:50
    assert workflow.app.light(workflow.case(case_id)) is Light.RED
    workflow.handle(case_id)
    assert workflow.case(case_id).handled_on_time is False


def test_a_hotline_report_keeps_its_ticket(workflow, cast):
    ticket = uuid4()
    case_id = workflow.report(source="hotline", actor=cast.hotline, ticket_id=ticket)
    assert workflow.case(case_id).summary()["ticket_id"] == str(ticket)
    assert workflow.case(case_id).reporter == cast.hotline


# --- rejection ----------------------------------------------------------------------------


@pytest.mark.parametrize("reason", ["not-city-management", "not-reproducible"])
def test_the_centre_rejects_a_report(workflow, clock, reason):
    case_id = workflow.report()
    clock.advance(minutes=5)
    workflow.reject(case_id, reason=reason, note="checked on camera")
    case = workflow.case(case_id)
    assert case.status is CaseStatus.REJECTED
    assert case.summary()["rejection_reason"] == reason
    assert case.duplicate_of is None
    assert case.closed_at == clock()
    assert workflow.app.light(case) is None


def test_a_duplicate_is_merged_into_the_open_case_it_repeats(workflow, open_reports, places):
    first = workflow.to("dispatched")
    open_reports.add_case(workflow.case(first))
    # A second report of the same cover, a few metres away: proposed as a duplicate...
    second = workflow.report(location=places.in_d01)
    assert workflow.case(second).possible_duplicates == [first]
    # ...and the centre merges it into the first.
    workflow.reject(second, reason="duplicate", duplicate_of=first)
    summary = workflow.case(second).summary()
    assert summary["status"] == "rejected"
    assert summary["rejection_reason"] == "duplicate"
    assert summary["duplicate_of"] == str(first)


def test_a_duplicate_must_name_the_case_it_duplicates(workflow):
    case_id = workflow.report()
    with pytest.raises(InvalidValue, match="must name the case it duplicates"):
        workflow.reject(case_id, reason="duplicate")
    assert workflow.case(case_id).status is CaseStatus.REPORTED


def test_a_case_cannot_duplicate_itself(workflow):
    case_id = workflow.report()
    with pytest.raises(InvalidValue, match="itself"):
        workflow.reject(case_id, reason="duplicate", duplicate_of=case_id)


def test_a_duplicate_cannot_be_merged_into_a_rejected_case(workflow):
    rejected = workflow.to("rejected")
    case_id = workflow.report()
    with pytest.raises(InvalidValue, match="was rejected"):
        workflow.reject(case_id, reason="duplicate", duplicate_of=rejected)
    assert workflow.version(case_id) == 1


def test_a_duplicate_of_an_unknown_case_is_not_found(workflow):
    case_id = workflow.report()
    missing = uuid4()
    with pytest.raises(NotFound, match=str(missing)):
        workflow.reject(case_id, reason="duplicate", duplicate_of=missing)


# --- rework ---------------------------------------------------------------------------------


def test_a_case_not_fixed_goes_back_to_its_department_as_rework(workflow, clock):
    case_id = workflow.to("handled")
    # Thursday 14:00 the inspector finds the cover still rocking: rework, with a fresh
    # 8 working hours (3.5 today, 4.5 on Friday).
    clock.set(local(3, 12, 14))
    workflow.order_rework(case_id, photos=["photo://still-rocking.jpg"])
    case = workflow.case(case_id)
    assert case.status is CaseStatus.DISPATCHED
    assert case.department == "water"
    assert case.rework_count == 1
    assert case.result is None
    assert case.handling_deadline == local(3, 13, 14, 30)
    assert "the cover still rocks" in case.notes

    # Handled again, verified this time, closed; the rework stays counted.
    clock.set(local(3, 13, 9))
    workflow.handle(case_id, result="cover replaced and bedded in mortar")
    workflow.verify(case_id)
    workflow.close_case(case_id)
    assert workflow.case(case_id).status is CaseStatus.CLOSED
    assert workflow.case(case_id).rework_count == 1


def test_rework_needs_a_note_saying_what_is_not_fixed(workflow):
    case_id = workflow.to("handled")
    with pytest.raises(InvalidValue, match="note must not be empty"):
        workflow.order_rework(case_id, note="  ")


def test_rework_can_happen_again(workflow, clock):
    case_id = workflow.to("handled")
    for expected in (1, 2):
        clock.advance(hours=1)
        workflow.order_rework(case_id)
        clock.advance(hours=1)
        workflow.handle(case_id)
        assert workflow.case(case_id).rework_count == expected


# --- return to the centre -------------------------------------------------------------------


def test_a_department_returns_a_case_and_the_centre_dispatches_it_elsewhere(workflow, cast):
    case_id = workflow.to("dispatched")
    workflow.return_to_centre(case_id, reason="sewer covers are sanitation's",
                              suggested_department="sanitation")
    case = workflow.case(case_id)
    assert case.status is CaseStatus.RETURNED
    assert case.department is None
    assert case.handling_deadline is None
    assert case.returned_by == "water"
    assert case.return_count == 1
    assert case.proposed_department == "sanitation"
    assert case.stage is not None  # the centre's own re-dispatch stage runs

    # The same department is refused...
    with pytest.raises(IllegalTransition, match="water already returned it"):
        workflow.dispatch(case_id, department="water")
    # ...another one (here the suggested one, by default) is accepted.
    workflow.dispatch(case_id)
    case = workflow.case(case_id)
    assert case.department == "sanitation"
    assert case.dispatch_count == 2
    # The new department handles it; the water company no longer may.
    with pytest.raises(NotPermitted):
        workflow.handle(case_id, actor=cast.water)
    workflow.handle(case_id, actor=cast.sanitation)
    assert workflow.case(case_id).status is CaseStatus.HANDLED


def test_a_return_without_suggestion_keeps_the_proposal_so_the_centre_must_choose(workflow):
    case_id = workflow.to("dispatched")
    workflow.return_to_centre(case_id, suggested_department=None)
    # The proposal is still the water company, which returned it: the dispatcher must name
    # another department.
    with pytest.raises(IllegalTransition, match="already returned it"):
        workflow.dispatch(case_id)
    workflow.dispatch(case_id, department="roads")
    assert workflow.case(case_id).department == "roads"


def test_a_department_cannot_suggest_itself(workflow):
    case_id = workflow.to("dispatched")
    with pytest.raises(InvalidValue, match="suggested department is the one returning"):
        workflow.return_to_centre(case_id, suggested_department="water")


def test_a_return_needs_a_reason(workflow):
    case_id = workflow.to("dispatched")
    with pytest.raises(InvalidValue, match="reason must not be empty"):
        workflow.return_to_centre(case_id, reason="")


# --- review of returns (issue 9, item 4) ---------------------------------------------------


def events_of(workflow, case_id: UUID) -> list[str]:
    return [type(e).__name__ for e in workflow.app.events.get(case_id)]


def test_the_centre_rejects_a_return_and_the_case_goes_back_on_the_clock_it_had(
        workflow, clock):
    """Issue 9, item 4: a department returned a case as "not ours" and the centre could not
    overrule it (dispatch to that department: "already returned it")."""
    app = workflow.app
    case_id = workflow.report()
    workflow.register(case_id)
    workflow.dispatch(case_id)  # Tuesday 09:00, due Wednesday 09:30
    dispatched = workflow.case(case_id)
    assert dispatched.handling_deadline == local(3, 11, 9, 30)
    clock.set(local(3, 10, 11))
    workflow.return_to_centre(case_id, reason="the cover belongs to the sewer network")
    assert workflow.case(case_id).summary()["returns"][0]["outcome"] == "awaiting-review"
    clock.set(local(3, 10, 15))
    workflow.reject_return(case_id, reason="the asset register names the water company")

    case = workflow.case(case_id)
    assert (case.status, case.department) == (CaseStatus.DISPATCHED, "water")
    # No free time: the deadline and the clock are those of the dispatch, which never stopped.
    assert case.handling_deadline == local(3, 11, 9, 30)
    assert case.stage == dispatched.stage
    assert case.dispatch_count == 1 and case.return_count == 1
    for now in (local(3, 10, 15), local(3, 11, 8), local(3, 11, 9, 31)):
        assert app.light(case, now) is light(dispatched.stage, now, app.catalogue.calendar,
                                             app.catalogue.yellow_fraction)
    [record] = case.summary()["returns"]
    assert (record["department"], record["outcome"], record["reviewed_by"],
            record["review_note"]) == ("water", "rejected", "duty-zhao",
                                       "the asset register names the water company")
    assert events_of(workflow, case_id)[-2:] == ["ReturnedToCentre", "ReturnRejected"]
    # It is the water company's case again, judged by its old deadline.
    clock.set(local(3, 11, 10))
    workflow.handle(case_id)
    assert workflow.case(case_id).handled_on_time is False


def test_a_return_rejected_after_its_deadline_is_overdue_at_once(workflow, clock):
    case_id = workflow.to("returned")
    clock.set(local(3, 12, 9))  # the deadline passed while the case sat with the centre
    workflow.reject_return(case_id)
    case = workflow.case(case_id)
    assert case.status is CaseStatus.DISPATCHED
    assert workflow.app.light(case) is Light.RED


def test_an_accepted_return_dispatches_the_case_to_another_department(workflow, clock):
    case_id = workflow.to("returned")  # the water company suggested sanitation
    clock.advance(minutes=30)
    workflow.accept_return(case_id, instructions="the sewer cover at the crossing")
    case = workflow.case(case_id)
    assert (case.status, case.department, case.dispatch_count) == (
        CaseStatus.DISPATCHED, "sanitation", 2)
    assert case.handling_deadline is not None and case.handling_deadline > clock()
    [record] = case.summary()["returns"]
    assert (record["outcome"], record["review_note"]) == (
        "accepted", "the asset register names sanitation")
    assert events_of(workflow, case_id)[-2:] == ["ReturnAccepted", "Dispatched"]


def test_dispatching_a_returned_case_elsewhere_accepts_the_return(workflow):
    case_id = workflow.to("returned")
    workflow.dispatch(case_id, department="roads")
    [record] = workflow.case(case_id).summary()["returns"]
    assert (record["outcome"], record["reviewed_by"]) == ("accepted", "duty-zhao")


def test_a_review_is_the_centre_s_and_says_why(workflow, cast):
    case_id = workflow.to("returned")
    version = workflow.version(case_id)
    with pytest.raises(InvalidValue, match="reason must not be empty"):
        workflow.reject_return(case_id, reason="")
    with pytest.raises(InvalidValue, match="give no department"):
        workflow.reject_return(case_id, department="roads")
    with pytest.raises(IllegalTransition, match="reject the return with a reason"):
        workflow.accept_return(case_id, department="water")
    for role in (Role.DEPARTMENT_USER, Role.INSPECTOR, Role.LEADER):
        with pytest.raises(NotPermitted):
            workflow.reject_return(case_id, actor=cast.with_role(role))
    assert workflow.version(case_id) == version


def test_every_return_and_every_dispute_is_kept(workflow, clock):
    case_id = workflow.to("dispatched")
    for _ in range(2):
        clock.advance(minutes=20)
        workflow.return_to_centre(case_id)
        clock.advance(minutes=20)
        workflow.reject_return(case_id)
    case = workflow.case(case_id)
    assert (case.status, case.department, case.return_count, case.dispatch_count) == (
        CaseStatus.DISPATCHED, "water", 2, 1)
    assert [(r["ordinal"], r["outcome"]) for r in case.summary()["returns"]] == [
        (1, "rejected"), (2, "rejected")]


# --- deadline extension ---------------------------------------------------------------------


def test_an_approved_extension_moves_the_deadline(workflow, clock):
    case_id = workflow.to("dispatched")
    old = workflow.case(case_id).handling_deadline
    wanted = local(3, 13, 17)
    workflow.request_extension(case_id, requested_deadline=wanted, reason="cover on order")
    pending = workflow.case(case_id).summary()["pending_extension"]
    assert pending["requested_deadline"] == wanted.isoformat()
    assert pending["reason"] == "cover on order"
    assert pending["requested_by"] == "water-chen"

    # Wednesday 09:00, most of the limit is used: yellow. The extension turns it green.
    clock.set(local(3, 11, 9))
    assert workflow.app.light(workflow.case(case_id)) is Light.YELLOW
    workflow.approve_extension(case_id)
    case = workflow.case(case_id)
    assert case.handling_deadline == wanted > old
    assert case.stage.deadline == wanted
    assert case.extension_count == 1
    assert case.pending_extension is None
    assert workflow.app.light(case) is Light.GREEN


def test_the_centre_may_grant_another_later_deadline(workflow):
    case_id = workflow.to("extension-requested")
    granted = workflow.case(case_id).handling_deadline + timedelta(days=1)
    workflow.approve_extension(case_id, deadline=granted)
    assert workflow.case(case_id).handling_deadline == granted


def test_a_refused_extension_leaves_the_deadline(workflow):
    case_id = workflow.to("extension-requested")
    old = workflow.case(case_id).handling_deadline
    workflow.refuse_extension(case_id, reason="a temporary cover will do")
    case = workflow.case(case_id)
    assert case.handling_deadline == old
    assert case.pending_extension is None
    assert case.extension_count == 0
    # The department may ask again once the first request is decided.
    workflow.request_extension(case_id)
    assert workflow.case(case_id).pending_extension is not None


def test_a_pending_request_blocks_a_second_one(workflow):
    case_id = workflow.to("extension-requested")
    version = workflow.version(case_id)
    with pytest.raises(IllegalTransition, match="an extension request is pending"):
        workflow.request_extension(case_id)
    assert workflow.version(case_id) == version


def test_an_extension_must_ask_for_a_later_deadline(workflow):
    case_id = workflow.to("dispatched")
    deadline = workflow.case(case_id).handling_deadline
    with pytest.raises(InvalidValue, match="is not after the current deadline"):
        workflow.request_extension(case_id, requested_deadline=deadline)


def test_a_granted_deadline_must_be_later_than_the_current_one(workflow):
    case_id = workflow.to("extension-requested")
    deadline = workflow.case(case_id).handling_deadline
    with pytest.raises(InvalidValue, match="must be after the current deadline"):
        workflow.approve_extension(case_id, deadline=deadline - timedelta(hours=1))


def test_there_is_nothing_to_decide_without_a_request(workflow):
    case_id = workflow.to("dispatched")
    with pytest.raises(IllegalTransition, match="no extension was requested"):
        workflow.approve_extension(case_id)
    with pytest.raises(IllegalTransition, match="no extension was requested"):
        workflow.refuse_extension(case_id)


def test_a_pending_request_lapses_when_the_case_is_handled(workflow, clock):
    case_id = workflow.to("extension-requested")
    workflow.handle(case_id)
    assert workflow.case(case_id).pending_extension is None
    # After rework the department may ask for more time again.
    clock.advance(hours=1)
    workflow.order_rework(case_id)
    workflow.request_extension(case_id)
    assert workflow.case(case_id).pending_extension is not None


# --- suspension -----------------------------------------------------------------------------


def test_a_suspended_case_keeps_its_light_and_its_deadline_moves_on_resumption(workflow, clock):
    app = workflow.app
    # Dispatched Tuesday 09:00 (normal: 8 working hours), due Wednesday 09:30.
    case_id = workflow.report()
    workflow.register(case_id)
    workflow.dispatch(case_id)
    assert workflow.case(case_id).handling_deadline == local(3, 11, 9, 30)

    # Suspended on Tuesday 14:00, 3.5 of 8 hours used: green, and it stays green although
    # the original deadline passes.
    clock.set(local(3, 10, 14))
    workflow.suspend(case_id, reason="the road must be closed first")
    case = workflow.case(case_id)
    assert case.status is CaseStatus.SUSPENDED
    assert case.suspension_reason == "the road must be closed first"
    for now in (local(3, 10, 14), local(3, 11, 12), local(3, 12, 9, 59)):
        assert app.light(case, now) is Light.GREEN

    # Resumed on Thursday 10:00 after 12.5 counted working hours (3.5 + 7.5 + 1.5): the 4.5
    # hours that were left run from now, so the deadline is Thursday 16:00.
    clock.set(local(3, 12, 10))
    workflow.resume(case_id)
    case = workflow.case(case_id)
    assert case.status is CaseStatus.DISPATCHED
    assert case.suspension_reason is None
    assert case.handling_deadline == local(3, 12, 16)
    calendar = app.catalogue.calendar
    moved = calendar.working_time_between(local(3, 11, 9, 30), case.handling_deadline)
    suspended = calendar.working_time_between(local(3, 10, 14), local(3, 12, 10))
    assert moved == suspended == timedelta(hours=12, minutes=30)
    assert case.stage.paused == suspended

    # The light runs again from where it stood: yellow at 6.4 hours used (Thursday 14:24),
    # red after 16:00.
    assert app.light(case, local(3, 12, 14, 23)) is Light.GREEN
    assert app.light(case, local(3, 12, 14, 24)) is Light.YELLOW
    assert app.light(case, local(3, 12, 16)) is Light.YELLOW
    assert app.light(case, local(3, 12, 16, 1)) is Light.RED


def test_an_urgent_case_is_suspended_in_clock_time(workflow, clock):
    case_id = workflow.report(urgency="urgent")
    workflow.register(case_id)
    workflow.dispatch(case_id)  # Tuesday 09:00, due 11:00
    clock.set(local(3, 10, 10))
    workflow.suspend(case_id)
    clock.set(local(3, 10, 22))  # 12 clock hours later, at night
    workflow.resume(case_id)
    case = workflow.case(case_id)
    assert case.handling_deadline == local(3, 10, 23)
    assert case.stage.paused == timedelta(hours=12)
    assert workflow.app.light(case, local(3, 10, 22, 30)) is Light.GREEN
    assert workflow.app.light(case, local(3, 10, 22, 48)) is Light.YELLOW


def test_an_extension_granted_while_suspended_counts_on_resumption(workflow, clock):
    case_id = workflow.to("dispatched")
    requested = local(3, 13, 17)
    workflow.request_extension(case_id, requested_deadline=requested)
    workflow.suspend(case_id)
    workflow.approve_extension(case_id)
    assert workflow.case(case_id).status is CaseStatus.SUSPENDED
    workflow.resume(case_id)  # at once: nothing counted as suspended
    assert workflow.case(case_id).handling_deadline == requested


def test_a_department_cannot_suspend_its_own_case(workflow, cast):
    """Issue 9, item 3: a department user suspended its own case and so stopped the
    supervision clock without anyone's approval."""
    case_id = workflow.to("dispatched")
    version = workflow.version(case_id)
    with pytest.raises(NotPermitted, match=r"grid-case\.request-suspension"):
        workflow.suspend(case_id, actor=cast.water)
    case = workflow.case(case_id)
    assert case.status is CaseStatus.DISPATCHED
    assert case.stage.paused_since is None
    assert workflow.version(case_id) == version


def test_a_suspension_asked_by_the_department_stops_the_clock_from_the_approval(
        workflow, clock, cast):
    app = workflow.app
    case_id = workflow.report()
    workflow.register(case_id)
    workflow.dispatch(case_id)  # Tuesday 09:00, due Wednesday 09:30
    clock.set(local(3, 10, 10))
    workflow.request_suspension(case_id, expected_resume_at=local(3, 13, 9))
    case = workflow.case(case_id)
    # Asking stops nothing: the clock runs until the centre approves.
    assert case.status is CaseStatus.DISPATCHED
    assert case.pending_suspension.requested_by == "water-chen"
    assert app.light(case, local(3, 11, 10)) is Light.RED

    clock.set(local(3, 10, 14))
    workflow.approve_suspension(case_id)
    case = workflow.case(case_id)
    assert case.status is CaseStatus.SUSPENDED
    assert case.pending_suspension is None
    assert case.suspension_reason == "the road must be closed first"
    assert case.stage.paused_since == local(3, 10, 14)
    assert case.expected_resume_at == local(3, 13, 9)
    for now in (local(3, 10, 14), local(3, 11, 12), local(3, 12, 9, 59)):
        assert app.light(case, now) is Light.GREEN
    assert events_of(workflow, case_id)[-2:] == ["SuspensionRequested", "SuspensionApproved"]

    # The department resumes when its long work may start: that only runs the clock again
    # (the 4.5 hours left from the approval run from Thursday 10:00).
    clock.set(local(3, 12, 10))
    workflow.resume(case_id, actor=cast.water)
    case = workflow.case(case_id)
    assert case.status is CaseStatus.DISPATCHED
    assert case.handling_deadline == local(3, 12, 16)
    assert case.expected_resume_at is None


def test_the_centre_may_set_another_expected_resume_time(workflow, clock):
    case_id = workflow.to("suspension-requested")
    workflow.approve_suspension(case_id, expected_resume_at=local(3, 20, 9))
    assert workflow.case(case_id).summary()["expected_resume_at"] == local(3, 20, 9).isoformat()


def test_a_refused_suspension_leaves_the_clock_running(workflow, clock):
    case_id = workflow.to("suspension-requested")
    before = workflow.case(case_id)
    clock.advance(minutes=30)
    workflow.refuse_suspension(case_id, reason="work around the traffic instead")
    case = workflow.case(case_id)
    assert (case.status, case.pending_suspension) == (CaseStatus.DISPATCHED, None)
    assert case.stage == before.stage
    workflow.request_suspension(case_id, reason="the road closure is now granted")
    assert workflow.case(case_id).pending_suspension is not None


def test_a_suspension_request_is_checked(workflow, clock, cast):
    case_id = workflow.to("dispatched")
    with pytest.raises(IllegalTransition, match="no suspension was requested"):
        workflow.approve_suspension(case_id)
    with pytest.raises(InvalidValue, match="not in the future"):
        workflow.request_suspension(case_id, expected_resume_at=clock() - timedelta(hours=1))
    with pytest.raises(InvalidValue, match="reason must not be empty"):
        workflow.request_suspension(case_id, reason="")
    workflow.request_suspension(case_id)
    with pytest.raises(IllegalTransition, match="a suspension request is pending"):
        workflow.request_suspension(case_id)
    with pytest.raises(InvalidValue, match="not in the future"):
        workflow.approve_suspension(case_id, expected_resume_at=clock())
    with pytest.raises(NotPermitted):
        workflow.approve_suspension(case_id, actor=cast.water)


@pytest.mark.parametrize("then", ["handle", "return_to_centre"])
def test_a_pending_suspension_request_lapses_when_the_case_moves_on(workflow, clock, then):
    case_id = workflow.to("suspension-requested")
    getattr(workflow, then)(case_id)
    assert workflow.case(case_id).pending_suspension is None


def test_a_suspension_needs_a_reason(workflow):
    case_id = workflow.to("dispatched")
    with pytest.raises(InvalidValue, match="reason must not be empty"):
        workflow.suspend(case_id, reason=" ")


# --- department scope -----------------------------------------------------------------------

SCOPED = ["handle", "return_to_centre", "request_suspension", "request_extension"]


@pytest.mark.parametrize("command", SCOPED)
def test_a_department_acts_only_on_its_own_cases(workflow, cast, command):
    case_id = workflow.to("dispatched")  # dispatched to water
    version = workflow.version(case_id)
    with pytest.raises(NotPermitted, match="dispatched to water") as error:
        getattr(workflow, command)(case_id, actor=cast.sanitation)
    assert "san-liu" in str(error.value)
    assert workflow.version(case_id) == version
    # Its own department, and the centre, may.
    getattr(workflow, command)(case_id, actor=cast.water)


def test_another_department_cannot_resume_a_case(workflow, cast):
    case_id = workflow.to("suspended")
    with pytest.raises(NotPermitted, match="dispatched to water"):
        workflow.resume(case_id, actor=cast.sanitation)
    workflow.resume(case_id, actor=cast.dispatcher)


# --- illegal transitions: every state x every command -------------------------------------

# command -> what the error says was attempted
ATTEMPTS: dict[str, str] = {
    "register": "register",
    "reject": "reject",
    "dispatch": "dispatch",
    "return_to_centre": "return to the centre",
    "request_extension": "request a deadline extension for",
    "approve_extension": "approve a deadline extension for",
    "refuse_extension": "refuse a deadline extension for",
    "suspend": "suspend",
    "request_suspension": "request a suspension of",
    "approve_suspension": "approve a suspension of",
    "refuse_suspension": "refuse a suspension of",
    "resume": "resume",
    "accept_return": "accept the return of",
    "reject_return": "reject the return of",
    "handle": "report the handling of",
    "verify": "verify",
    "order_rework": "order rework of",
    "close_case": "close",
}
STATES = ["reported", "registered", "rejected", "dispatched", "extension-requested",
          "returned", "suspended", "suspension-requested", "handled", "verified", "closed"]
LEGAL = {
    ("reported", "register"), ("reported", "reject"),
    ("registered", "dispatch"), ("returned", "dispatch"),
    ("dispatched", "return_to_centre"), ("dispatched", "request_extension"),
    ("dispatched", "suspend"), ("dispatched", "handle"),
    ("extension-requested", "approve_extension"), ("extension-requested", "refuse_extension"),
    ("extension-requested", "return_to_centre"), ("extension-requested", "suspend"),
    ("extension-requested", "handle"),
    ("returned", "accept_return"), ("returned", "reject_return"),
    ("dispatched", "request_suspension"), ("extension-requested", "request_suspension"),
    ("suspension-requested", "approve_suspension"), ("suspension-requested", "refuse_suspension"),
    ("suspension-requested", "return_to_centre"), ("suspension-requested", "suspend"),
    ("suspension-requested", "handle"), ("suspension-requested", "request_extension"),
    ("suspended", "resume"),
    ("handled", "verify"), ("handled", "order_rework"),
    ("verified", "close_case"),
}
ILLEGAL = [(s, c) for s in STATES for c in ATTEMPTS if (s, c) not in LEGAL]


def test_the_state_list_matches_the_paths(workflow):
    assert set(STATES) == set(workflow.PATHS)


@pytest.mark.parametrize(("state", "command"), ILLEGAL)
def test_an_illegal_transition_is_refused_and_records_nothing(workflow, clock, state, command):
    case_id = workflow.to(state)
    before = workflow.case(case_id).summary()
    events = len(workflow.stored_case_events())
    clock.advance(minutes=10)
    with pytest.raises(IllegalTransition) as error:
        getattr(workflow, command)(case_id)
    status = before["status"]
    message = str(error.value)
    assert f"cannot {ATTEMPTS[command]} grid case {case_id}: it is {status}" in message
    assert error.value.kind == "grid case"
    assert error.value.aggregate_id == case_id
    assert error.value.attempted == ATTEMPTS[command]
    assert error.value.state.startswith(status)
    assert workflow.version(case_id) == before["version"]
    assert workflow.case(case_id).summary() == before
    assert len(workflow.stored_case_events()) == events


# Dispatching a returned case accepts the return first: two events.
EVENTS_RECORDED = {("returned", "dispatch"): 2, ("returned", "accept_return"): 2}


@pytest.mark.parametrize(("state", "command"), sorted(LEGAL))
def test_a_legal_transition_records_one_event(workflow, clock, state, command):
    case_id = workflow.to(state)
    version = workflow.version(case_id)
    clock.advance(minutes=10)
    getattr(workflow, command)(case_id)
    assert workflow.version(case_id) == version + EVENTS_RECORDED.get((state, command), 1)


# --- permissions: every wrong role for every command ----------------------------------------

R = Role
# The domain brief's people: the centre decides, departments handle their own cases,
# inspectors verify, leaders only read.
REFUSED: dict[str, set[Role]] = {
    "register": {R.INSPECTOR, R.HOTLINE_OPERATOR, R.DEPARTMENT_USER, R.PLANNER, R.LEADER,
                 R.SYSTEM},
    "reject": {R.INSPECTOR, R.HOTLINE_OPERATOR, R.DEPARTMENT_USER, R.PLANNER, R.LEADER,
               R.SYSTEM},
    "dispatch": {R.INSPECTOR, R.HOTLINE_OPERATOR, R.DEPARTMENT_USER, R.PLANNER, R.LEADER,
                 R.SYSTEM},
    "return_to_centre": {R.INSPECTOR, R.HOTLINE_OPERATOR, R.PLANNER, R.LEADER, R.SYSTEM},
    "request_extension": {R.INSPECTOR, R.HOTLINE_OPERATOR, R.PLANNER, R.LEADER, R.SYSTEM},
    "approve_extension": {R.INSPECTOR, R.HOTLINE_OPERATOR, R.DEPARTMENT_USER, R.PLANNER,
                          R.LEADER, R.SYSTEM},
    "refuse_extension": {R.INSPECTOR, R.HOTLINE_OPERATOR, R.DEPARTMENT_USER, R.PLANNER,
                         R.LEADER, R.SYSTEM},
    # Suspension stops the clock: only the centre suspends or approves a department's request.
    "suspend": {R.INSPECTOR, R.HOTLINE_OPERATOR, R.DEPARTMENT_USER, R.PLANNER, R.LEADER,
                R.SYSTEM},
    "request_suspension": {R.INSPECTOR, R.HOTLINE_OPERATOR, R.PLANNER, R.LEADER, R.SYSTEM},
    "approve_suspension": {R.INSPECTOR, R.HOTLINE_OPERATOR, R.DEPARTMENT_USER, R.PLANNER,
                           R.LEADER, R.SYSTEM},
    "refuse_suspension": {R.INSPECTOR, R.HOTLINE_OPERATOR, R.DEPARTMENT_USER, R.PLANNER,
                          R.LEADER, R.SYSTEM},
    "resume": {R.INSPECTOR, R.HOTLINE_OPERATOR, R.PLANNER, R.LEADER, R.SYSTEM},
    "accept_return": {R.INSPECTOR, R.HOTLINE_OPERATOR, R.DEPARTMENT_USER, R.PLANNER, R.LEADER,
                      R.SYSTEM},
    "reject_return": {R.INSPECTOR, R.HOTLINE_OPERATOR, R.DEPARTMENT_USER, R.PLANNER, R.LEADER,
                      R.SYSTEM},
    "handle": {R.INSPECTOR, R.HOTLINE_OPERATOR, R.PLANNER, R.LEADER, R.SYSTEM},
    "verify": {R.HOTLINE_OPERATOR, R.DEPARTMENT_USER, R.PLANNER, R.LEADER, R.SYSTEM},
    "order_rework": {R.HOTLINE_OPERATOR, R.DEPARTMENT_USER, R.PLANNER, R.LEADER, R.SYSTEM},
    "close_case": {R.INSPECTOR, R.HOTLINE_OPERATOR, R.DEPARTMENT_USER, R.PLANNER, R.LEADER,
                   R.SYSTEM},
}
# The state in which each command is legal, so the role is the only thing wrong.
LEGAL_IN = {
    "register": "reported", "reject": "reported", "dispatch": "registered",
    "return_to_centre": "dispatched", "request_extension": "dispatched",
    "approve_extension": "extension-requested", "refuse_extension": "extension-requested",
    "suspend": "dispatched", "resume": "suspended", "handle": "dispatched",
    "verify": "handled", "order_rework": "handled", "close_case": "verified",
    "request_suspension": "dispatched", "approve_suspension": "suspension-requested",
    "refuse_suspension": "suspension-requested", "accept_return": "returned",
    "reject_return": "returned",
}
WRONG_ROLES = [(c, r) for c, roles in REFUSED.items() for r in sorted(roles)]


@pytest.mark.parametrize(("command", "role"), WRONG_ROLES)
def test_a_wrong_role_is_not_permitted(workflow, cast, command, role):
    case_id = workflow.to(LEGAL_IN[command])
    version = workflow.version(case_id)
    actor = cast.with_role(role)
    with pytest.raises(NotPermitted) as error:
        getattr(workflow, command)(case_id, actor=actor)
    assert f"{role.value} {actor.user_id} may not grid-case." in str(error.value)
    assert workflow.version(case_id) == version


@pytest.mark.parametrize("role", [R.PLANNER, R.LEADER, R.DEPARTMENT_USER])
def test_only_the_field_hotline_sensors_and_centre_report(workflow, cast, role):
    with pytest.raises(NotPermitted, match=r"may not grid-case\.report"):
        workflow.report(actor=cast.with_role(role))
    assert workflow.stored_case_events() == []


@pytest.mark.parametrize("role", [R.INSPECTOR, R.HOTLINE_OPERATOR, R.DISPATCHER, R.SYSTEM,
                                  R.ADMIN])
def test_the_field_hotline_sensors_and_centre_report(workflow, cast, role):
    case_id = workflow.report(actor=cast.with_role(role))
    assert workflow.case(case_id).reporter.role is role


# --- bad values ---------------------------------------------------------------------------

TOO_LONG = "x" * (MAX_TEXT + 1)
TOO_MANY = [f"photo://{i}.jpg" for i in range(MAX_PHOTOS + 1)]

BAD_REPORTS: list[tuple[dict[str, Any], str]] = [
    ({"category": "C9999"}, "unknown grid-case category 'C9999'"),
    ({"urgency": "asap"}, "unknown urgency 'asap'; urgencies are urgent, normal"),
    ({"source": "pigeon"}, "unknown case source 'pigeon'; case sources are "),
    ({"description": ""}, "description must not be empty"),
    ({"description": "   "}, "description must not be empty"),
    ({"description": TOO_LONG}, f"description is longer than {MAX_TEXT} characters"),
    ({"photos": TOO_MANY}, f"at most {MAX_PHOTOS} photos"),
    ({"photos": [""]}, "photo reference must not be empty"),
]


@pytest.mark.parametrize(("change", "problem"), BAD_REPORTS)
def test_a_bad_report_is_refused(workflow, change, problem):
    with pytest.raises(InvalidValue) as error:
        workflow.report(**change)
    assert problem in str(error.value)
    assert workflow.stored_case_events() == []


def test_a_report_outside_the_city_is_refused(workflow, places):
    with pytest.raises(InvalidValue, match="outside the city"):
        workflow.report(location=places.outside)
    assert workflow.stored_case_events() == []


def test_a_report_may_carry_the_maximum(workflow):
    case_id = workflow.report(description="x" * MAX_TEXT, photos=TOO_MANY[:MAX_PHOTOS])
    assert len(workflow.case(case_id).photos) == MAX_PHOTOS


BadCommand = tuple[str, str, dict[str, Any], str]
BAD_COMMANDS: list[BadCommand] = [
    ("reported", "register", {"category": "E9999"}, "unknown grid-case category 'E9999'"),
    ("reported", "register", {"urgency": "whenever"}, "unknown urgency 'whenever'"),
    ("reported", "register", {"note": TOO_LONG}, "note is longer than"),
    ("reported", "reject", {"reason": "boring"}, "unknown rejection reason 'boring'"),
    ("registered", "dispatch", {"department": "ministry-of-magic"},
     "unknown department 'ministry-of-magic'"),
    ("registered", "dispatch", {"instructions": TOO_LONG}, "instructions is longer than"),
    ("dispatched", "return_to_centre", {"suggested_department": "nobody"},
     "unknown department 'nobody'"),
    ("dispatched", "request_extension", {"reason": ""}, "reason must not be empty"),
    ("extension-requested", "refuse_extension", {"reason": ""}, "reason must not be empty"),
    ("dispatched", "handle", {"result": ""}, "result must not be empty"),
    ("dispatched", "handle", {"result": TOO_LONG}, "result is longer than"),
    ("dispatched", "handle", {"evidence": TOO_MANY}, f"at most {MAX_PHOTOS} photos"),
    ("handled", "verify", {"photos": TOO_MANY}, f"at most {MAX_PHOTOS} photos"),
    ("handled", "order_rework", {"photos": TOO_MANY}, f"at most {MAX_PHOTOS} photos"),
    ("verified", "close_case", {"note": TOO_LONG}, "note is longer than"),
]


@pytest.mark.parametrize(("state", "command", "change", "problem"), BAD_COMMANDS)
def test_a_command_with_a_bad_value_is_refused(workflow, state, command, change, problem):
    case_id = workflow.to(state)
    version = workflow.version(case_id)
    with pytest.raises(InvalidValue) as error:
        getattr(workflow, command)(case_id, **change)
    assert problem in str(error.value)
    assert workflow.version(case_id) == version




@pytest.mark.parametrize("command", sorted(LEGAL_IN))
def test_a_time_without_time_zone_is_refused(workflow, clock, command):
    case_id = workflow.to(LEGAL_IN[command])
    version = workflow.version(case_id)
    with pytest.raises(InvalidValue, match="has no time zone"):
        getattr(workflow, command)(case_id, at=clock().replace(tzinfo=None))
    assert workflow.version(case_id) == version


@pytest.mark.parametrize("command", sorted(LEGAL_IN))
def test_a_time_in_the_future_is_refused(workflow, clock, command):
    case_id = workflow.to(LEGAL_IN[command])
    version = workflow.version(case_id)
    with pytest.raises(InvalidValue, match="is in the future"):
        getattr(workflow, command)(case_id, at=clock() + timedelta(minutes=6))
    assert workflow.version(case_id) == version


@pytest.mark.parametrize("command", sorted(LEGAL_IN))
def test_a_time_before_the_cases_last_event_is_refused(workflow, clock, command):
    case_id = workflow.to(LEGAL_IN[command])
    last = workflow.case(case_id).modified_on
    version = workflow.version(case_id)
    with pytest.raises(InvalidValue, match="precedes its last recorded event"):
        getattr(workflow, command)(case_id, at=last - timedelta(seconds=1))
    assert workflow.version(case_id) == version


def test_a_report_in_the_future_or_without_time_zone_is_refused(workflow, clock):
    with pytest.raises(InvalidValue, match="is in the future"):
        workflow.report(at=clock() + timedelta(hours=1))
    with pytest.raises(InvalidValue, match="has no time zone"):
        workflow.report(at=clock().replace(tzinfo=None))
    assert workflow.stored_case_events() == []


def test_a_little_clock_skew_is_tolerated_and_times_are_kept_in_utc(workflow, clock):
    case_id = workflow.report(at=(clock() + timedelta(minutes=4)).astimezone(SHANGHAI))
    reported_at = workflow.case(case_id).reported_at
    assert reported_at == clock() + timedelta(minutes=4)
    assert reported_at.utcoffset() == timedelta(0)


def test_a_time_at_the_last_event_is_accepted(workflow):
    case_id = workflow.report()
    workflow.register(case_id, at=workflow.case(case_id).modified_on)
    assert workflow.case(case_id).status is CaseStatus.REGISTERED


@pytest.mark.parametrize("field", ["requested_deadline", "deadline"])
def test_a_deadline_without_time_zone_is_refused(workflow, field):
    case_id = workflow.to("extension-requested")
    naive = workflow.case(case_id).handling_deadline.replace(tzinfo=None) + timedelta(days=9)
    command: Callable[..., UUID] = (
        workflow.request_extension if field == "requested_deadline"
        else workflow.approve_extension
    )
    with pytest.raises(InvalidValue, match="deadline has no time zone"):
        command(case_id, **{field: naive})


def test_an_unknown_case_is_not_found(workflow):
    missing = uuid4()
    with pytest.raises(NotFound, match=f"grid case {missing} does not exist"):
        workflow.register(missing)


def test_a_department_user_needs_a_department():
    with pytest.raises(InvalidValue, match="must belong to a department"):
        Actor("water-chen", Role.DEPARTMENT_USER)
    with pytest.raises(InvalidValue, match="unknown role"):
        Actor("someone", "mayor")  # type: ignore[arg-type]
