"""Hotline tickets: one number takes the call, the right department answers it in time, the
caller is called back; calls about one matter are merged; city-management matters and
emergencies are handed over to grid cases and incidents."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from cityops.domain.actors import Actor, Role
from cityops.domain.catalogue import Catalogue
from cityops.domain.duplicates import OpenReport
from cityops.domain.errors import (
    CommandIdReused,
    IllegalTransition,
    InvalidValue,
    NotFound,
    NotPermitted,
)
from cityops.domain.geometry import GeoPoint
from cityops.domain.hotline.application import HotlineTickets, propose_department
from cityops.domain.hotline.ticket import (
    PERSONAL_DATA,
    Channel,
    HotlineTicket,
    ReplyTimeliness,
    Satisfaction,
    TicketStatus,
    case_id_for_ticket,
    check_phone,
    incident_id_for_ticket,
)

POPO = {"PERSISTENCE_MODULE": "eventsourcing.popo"}
START = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)  # Monday 09:00 in Asia/Shanghai
CATALOGUE = Catalogue.load()

OPERATOR = Actor("op-1", Role.HOTLINE_OPERATOR)
SANITATION = Actor("san-1", Role.DEPARTMENT_USER, "sanitation")
URBAN = Actor("urb-1", Role.DEPARTMENT_USER, "urban-management")
WATER = Actor("wat-1", Role.DEPARTMENT_USER, "water")
INSPECTOR = Actor("insp-1", Role.INSPECTOR)
COORDINATOR = Actor("coordinator", Role.SYSTEM)

IN_D04 = GeoPoint(121.60, 31.20)
IN_D01 = GeoPoint(121.40, 31.20)
OUTSIDE = GeoPoint(100.0, 10.0)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime = START) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


class FakeLocator:
    """East of 121.5 is district D04, west of it D01; far away is outside the city."""

    def locate_cell(self, point: GeoPoint) -> str | None:
        if not (121.0 <= point.lon <= 122.0 and 30.5 <= point.lat <= 32.0):
            return None
        return "D04-S01-C01-001" if point.lon >= 121.5 else "D01-S02-C03-004"


class FakeOpenTickets:
    """The read model of open tickets, as a list."""

    def __init__(self) -> None:
        self.reports: list[OpenReport] = []

    def open_reports_near(self, point: GeoPoint, radius_m: float,
                          since: datetime) -> Sequence[OpenReport]:
        return [r for r in self.reports
                if r.reported_at >= since and r.location.distance_m(point) <= radius_m * 2]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def open_tickets() -> FakeOpenTickets:
    return FakeOpenTickets()


@pytest.fixture
def app(clock: Clock, open_tickets: FakeOpenTickets) -> HotlineTickets:
    return HotlineTickets(POPO, catalogue=CATALOGUE, locator=FakeLocator(),
                          open_tickets=open_tickets, clock=clock)


def receive(app: HotlineTickets, **overrides: Any) -> UUID:
    facts: dict[str, Any] = {
        "channel": "phone", "ticket_type": "complaint", "topic": "garbage",
        "description": "Garbage bins overflowing for three days", "actor": OPERATOR,
        "caller_name": "Zhang Wei", "caller_phone": "+86 138 0013 8000", "location": IN_D01,
    }
    facts.update(overrides)
    return app.receive(**facts)


def events_stored(app: HotlineTickets) -> int:
    return int(app.recorder.max_notification_id() or 0)


def local(day: int, hour: int, minute: int = 0) -> datetime:
    """A time in March 2026, Asia/Shanghai (UTC+8), as UTC."""
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC) - timedelta(hours=8)


# --- scenarios -------------------------------------------------------------------------------


def test_a_consultation_answered_at_first_contact(app: HotlineTickets) -> None:
    ticket_id = receive(app, ticket_type="consultation", topic="consultation-policy",
                        location=None, caller_name=None, caller_phone=None)
    app.answer_at_first_contact(ticket_id, answer="Explained the parking permit rules",
                                actor=OPERATOR)
    ticket = app.ticket(ticket_id)
    assert ticket.status is TicketStatus.CLOSED
    assert ticket.answer == "Explained the parking permit rules"
    assert ticket.closed_at == START
    assert app.timeliness(ticket) is None


def test_a_complaint_from_call_to_callback(app: HotlineTickets, clock: Clock) -> None:
    # A citizen calls about garbage; the ticket is located and a department proposed.
    ticket_id = receive(app)
    ticket = app.ticket(ticket_id)
    assert ticket.status is TicketStatus.RECEIVED
    assert ticket.grid_cell == "D01-S02-C03-004"
    assert ticket.proposed_department == "sanitation"
    assert ticket.possible_duplicates == []

    # The operator assigns it to the proposed department; the reply is due in 2 working days.
    clock.advance(minutes=10)
    app.assign(ticket_id, actor=OPERATOR)
    ticket = app.ticket(ticket_id)
    assert ticket.status is TicketStatus.ASSIGNED
    assert ticket.department == "sanitation"
    assert ticket.reply_deadline == local(4, 9, 10)
    assert app.timeliness(ticket) is ReplyTimeliness.ON_TIME

    # Sanitation accepts it and replies the next day, in time.
    app.accept(ticket_id, actor=SANITATION)
    clock.advance(days=1)
    app.reply(ticket_id, reply="Bins emptied; collection moved to daily", actor=SANITATION)
    ticket = app.ticket(ticket_id)
    assert ticket.status is TicketStatus.REPLIED
    assert ticket.replied_on_time is True
    assert app.timeliness(ticket) is None

    # The centre calls the caller back: satisfied; then the ticket is closed.
    app.call_back(ticket_id, satisfaction="satisfied", actor=OPERATOR)
    assert app.ticket(ticket_id).status is TicketStatus.CALLED_BACK
    app.close_ticket(ticket_id, actor=OPERATOR)
    ticket = app.ticket(ticket_id)
    assert ticket.status is TicketStatus.CLOSED
    assert ticket.satisfaction is Satisfaction.SATISFIED
    assert [type(e).__name__ for e in app.events.get(ticket_id)] == [
        "Received", "Assigned", "Accepted", "Replied", "CalledBack", "Closed",
    ]
    assert app.repository.get(ticket_id).summary() == ticket.summary()


def test_routing_follows_the_area_rules_of_the_case_category(app: HotlineTickets) -> None:
    # In district D04 garbage (grid-case category E0101) belongs to urban management.
    ticket_id = receive(app, location=IN_D04)
    assert app.ticket(ticket_id).proposed_department == "urban-management"
    # Outside the city the call is still taken, routed by its topic alone.
    outside = receive(app, location=OUTSIDE)
    assert app.ticket(outside).grid_cell is None
    assert app.ticket(outside).proposed_department == "sanitation"
    # A topic that is not a city-management matter goes to the topic's department.
    topic = CATALOGUE.hotline_topic("food-safety")
    assert propose_department(CATALOGUE, topic, "D04-S01") == "market-supervision"


def test_the_operator_can_override_the_proposed_department(app: HotlineTickets) -> None:
    ticket_id = receive(app)
    app.assign(ticket_id, department="urban-management", actor=OPERATOR)
    assert app.ticket(ticket_id).department == "urban-management"
    other = receive(app)
    with pytest.raises(InvalidValue, match="unknown department"):
        app.assign(other, department="ministry-of-magic", actor=OPERATOR)


def test_a_returned_ticket_is_routed_again_to_another_department(
        app: HotlineTickets, clock: Clock) -> None:
    ticket_id = receive(app)
    app.assign(ticket_id, actor=OPERATOR)
    clock.advance(hours=1)
    app.return_to_centre(ticket_id, reason="the bins belong to a private estate",
                         suggested_department="housing", actor=SANITATION)
    ticket = app.ticket(ticket_id)
    assert ticket.status is TicketStatus.RETURNED
    assert (ticket.department, ticket.returned_by) == (None, "sanitation")
    assert ticket.proposed_department == "housing"
    assert app.timeliness(ticket) is None

    with pytest.raises(IllegalTransition, match="already returned it"):
        app.assign(ticket_id, department="sanitation", actor=OPERATOR)
    app.assign(ticket_id, actor=OPERATOR)
    ticket = app.ticket(ticket_id)
    assert (ticket.status, ticket.department) == (TicketStatus.ASSIGNED, "housing")
    assert ticket.assignment_count == 2
    assert ticket.reply_deadline == local(4, 10, 0)


def test_the_centre_can_overrule_a_return_it_rejects_with_a_reason(
        app: HotlineTickets, clock: Clock) -> None:
    """Issue 9, item 4: after a department returned a ticket as "not ours", the centre could
    only route it elsewhere (assign to the same department: 409 "already returned it")."""
    ticket_id = receive(app)
    app.assign(ticket_id, actor=OPERATOR)  # Monday 09:00, reply due Wednesday 09:00
    clock.advance(hours=3)
    app.return_to_centre(ticket_id, reason="the bins belong to a private estate",
                         actor=SANITATION)
    clock.advance(hours=2)
    app.review_return(ticket_id, accept=False, actor=OPERATOR,
                      reason="public bins on the public road: sanitation's")
    ticket = app.ticket(ticket_id)
    assert (ticket.status, ticket.department) == (TicketStatus.ASSIGNED, "sanitation")
    # The return gave the department no time: the reply is due when it was due before.
    assert ticket.reply_deadline == local(4, 9, 0)
    assert ticket.assigned_at == START
    assert ticket.assignment_count == 1
    returned = ticket.summary()["returns"]
    assert [(r["department"], r["outcome"], r["review_note"], r["reviewed_by"])
            for r in returned] == [("sanitation", "rejected",
                                    "public bins on the public road: sanitation's", "op-1")]
    # It is the department's again: it accepts and replies, late or not by the old deadline.
    app.accept(ticket_id, actor=SANITATION)
    clock.now = local(4, 10, 0)
    app.reply(ticket_id, reply="Collected", actor=SANITATION)
    assert app.ticket(ticket_id).replied_on_time is False


def test_an_accepted_return_routes_the_ticket_to_another_department(
        app: HotlineTickets, clock: Clock) -> None:
    ticket_id = receive(app)
    app.assign(ticket_id, actor=OPERATOR)
    app.return_to_centre(ticket_id, reason="private estate", suggested_department="housing",
                         actor=SANITATION)
    clock.advance(hours=1)
    app.review_return(ticket_id, accept=True, reason="the estate's own bins", actor=OPERATOR)
    ticket = app.ticket(ticket_id)
    assert (ticket.status, ticket.department) == (TicketStatus.ASSIGNED, "housing")
    assert ticket.summary()["returns"][0]["outcome"] == "accepted"
    assert [e.__class__.__name__ for e in app.events.get(ticket_id)][-2:] == [
        "ReturnAccepted", "Assigned"]
    # Routing a returned ticket elsewhere (the existing path) accepts the return too.
    other = receive(app)
    app.assign(other, actor=OPERATOR)
    app.return_to_centre(other, reason="private estate", actor=SANITATION)
    app.assign(other, department="housing", actor=OPERATOR)
    assert app.ticket(other).summary()["returns"][0]["outcome"] == "accepted"


def test_a_return_awaits_review_and_the_review_is_checked(app: HotlineTickets) -> None:
    ticket_id = receive(app)
    app.assign(ticket_id, actor=OPERATOR)
    app.return_to_centre(ticket_id, reason="private estate", actor=SANITATION)
    assert app.ticket(ticket_id).summary()["returns"][0]["outcome"] == "awaiting-review"
    with pytest.raises(InvalidValue, match="reason must not be empty"):
        app.review_return(ticket_id, accept=False, actor=OPERATOR, reason=" ")
    with pytest.raises(InvalidValue, match="give no department"):
        app.review_return(ticket_id, accept=False, actor=OPERATOR, reason="yours",
                          department="housing")
    with pytest.raises(IllegalTransition, match="reject the return with a reason"):
        app.review_return(ticket_id, accept=True, actor=OPERATOR)  # proposal: sanitation
    with pytest.raises(NotPermitted):
        app.review_return(ticket_id, accept=False, actor=SANITATION, reason="ours after all")
    # Only a returned ticket has a return to review.
    assigned = receive(app)
    app.assign(assigned, actor=OPERATOR)
    with pytest.raises(IllegalTransition, match="cannot reject the return of"):
        app.review_return(assigned, accept=False, actor=OPERATOR, reason="x")
    with pytest.raises(IllegalTransition, match="cannot accept the return of"):
        app.review_return(assigned, accept=True, actor=OPERATOR, department="housing")


def test_a_department_cannot_suggest_itself(app: HotlineTickets) -> None:
    ticket_id = receive(app)
    app.assign(ticket_id, actor=OPERATOR)
    with pytest.raises(InvalidValue, match="suggested department"):
        app.return_to_centre(ticket_id, reason="x", suggested_department="sanitation",
                             actor=SANITATION)


def test_a_dissatisfied_caller_reopens_the_ticket(app: HotlineTickets, clock: Clock) -> None:
    ticket_id = receive(app)
    app.assign(ticket_id, actor=OPERATOR)
    app.accept(ticket_id, actor=SANITATION)
    app.reply(ticket_id, reply="Will be collected", actor=SANITATION)
    clock.advance(days=2)
    app.call_back(ticket_id, satisfaction="dissatisfied", note="still overflowing",
                  actor=OPERATOR)
    ticket = app.ticket(ticket_id)
    assert ticket.status is TicketStatus.ASSIGNED
    assert ticket.department == "sanitation"
    assert ticket.reopen_count == 1
    assert ticket.reply is None
    assert ticket.reply_deadline == local(6, 9, 0)  # Wednesday 09:00 + 2 working days

    app.accept(ticket_id, actor=SANITATION)
    app.reply(ticket_id, reply="Collected, extra bin installed", actor=SANITATION)
    app.call_back(ticket_id, satisfaction="basically-satisfied", actor=OPERATOR)
    app.close_ticket(ticket_id, actor=OPERATOR)
    ticket = app.ticket(ticket_id)
    assert (ticket.status, ticket.callbacks, ticket.reopen_count) == (
        TicketStatus.CLOSED, 2, 1)
    assert app.repository.get(ticket_id).summary() == ticket.summary()


def test_the_reply_deadline_light_changes_as_time_passes(
        app: HotlineTickets, clock: Clock) -> None:
    ticket_id = receive(app)
    assert app.timeliness(app.ticket(ticket_id)) is None
    app.assign(ticket_id, actor=OPERATOR)  # due Wednesday 09:00 (2 working days)
    ticket = app.ticket(ticket_id)
    assert app.timeliness(ticket, local(2, 17, 0)) is ReplyTimeliness.ON_TIME
    assert app.timeliness(ticket, local(3, 16, 0)) is ReplyTimeliness.DUE_SOON
    assert app.timeliness(ticket, local(4, 9, 1)) is ReplyTimeliness.OVERDUE
    # A late reply is recorded as late.
    app.accept(ticket_id, actor=SANITATION)
    clock.now = local(4, 10, 0)
    app.reply(ticket_id, reply="done", actor=SANITATION)
    assert app.ticket(ticket_id).replied_on_time is False


# --- duplicates and merging ------------------------------------------------------------------


def test_possible_duplicates_are_proposed_never_merged(
        app: HotlineTickets, open_tickets: FakeOpenTickets, clock: Clock) -> None:
    first = receive(app)
    near = GeoPoint(IN_D01.lon + 0.0002, IN_D01.lat)  # about 19 m away
    open_tickets.reports = [
        OpenReport(id=first, category="garbage", location=IN_D01, reported_at=START),
        OpenReport(id=uuid4(), category="noise", location=IN_D01, reported_at=START),
        OpenReport(id=uuid4(), category="garbage", location=IN_D01,
                   reported_at=START - timedelta(days=3)),
    ]
    clock.advance(minutes=20)
    second = receive(app, location=near, caller_name="Li Na", caller_phone="021-5555 0102")
    ticket = app.ticket(second)
    assert ticket.possible_duplicates == [first]
    assert ticket.status is TicketStatus.RECEIVED
    assert app.ticket(first).extra_calls == []
    anonymous = receive(app, location=None)
    assert app.ticket(anonymous).possible_duplicates == []


def test_calls_about_one_matter_are_merged_into_one_ticket(
        app: HotlineTickets, clock: Clock) -> None:
    primary = receive(app)
    app.assign(primary, actor=OPERATOR)
    clock.advance(minutes=5)
    second = receive(app, channel="mobile-app", caller_name="Li Na", caller_phone="13900139000")
    clock.advance(minutes=5)
    third = receive(app, channel="web", caller_name=None, caller_phone=None)
    # The third call was first merged into the second one, then the second into the first:
    # the first ticket ends up with both extra calls.
    app.merge_into(third, second, actor=OPERATOR)
    stored = events_stored(app)
    app.merge_into(second, primary, actor=OPERATOR, note="same bins")
    assert events_stored(app) == stored + 2  # both tickets, one transaction

    merged = app.ticket(second)
    assert merged.status is TicketStatus.MERGED
    assert merged.merged_into == primary
    kept = app.ticket(primary)
    assert kept.status is TicketStatus.ASSIGNED
    assert [(c.ticket_id, c.caller_name, c.channel) for c in kept.extra_calls] == [
        (second, "Li Na", Channel.MOBILE_APP), (third, None, Channel.WEB),
    ]
    assert kept.extra_calls[0].received_at == START + timedelta(minutes=5)
    assert app.repository.get(primary).summary() == kept.summary()


def test_merging_is_refused_into_itself_or_a_finished_ticket(app: HotlineTickets) -> None:
    closed = receive(app, topic="consultation-policy")
    app.answer_at_first_contact(closed, answer="answered", actor=OPERATOR)
    merged = receive(app)
    target = receive(app)
    app.merge_into(merged, target, actor=OPERATOR)
    ticket_id = receive(app)
    version = app.ticket(ticket_id).version
    with pytest.raises(InvalidValue, match="itself"):
        app.merge_into(ticket_id, ticket_id, actor=OPERATOR)
    with pytest.raises(IllegalTransition, match=f"hotline ticket {closed}: it is closed"):
        app.merge_into(ticket_id, closed, actor=OPERATOR)
    with pytest.raises(IllegalTransition, match="it is merged"):
        app.merge_into(ticket_id, merged, actor=OPERATOR)
    with pytest.raises(IllegalTransition, match="it is merged"):
        app.merge_into(merged, ticket_id, actor=OPERATOR)
    with pytest.raises(NotFound):
        app.merge_into(ticket_id, uuid4(), actor=OPERATOR)
    assert app.ticket(ticket_id).version == version
    assert app.ticket(closed).version == 2


# --- one number takes it, one network handles it ---------------------------------------------


def test_a_city_management_matter_becomes_a_grid_case(app: HotlineTickets) -> None:
    ticket_id = receive(app, topic="street-lighting", description="Street lamp out")
    case_id = app.convert_to_case(ticket_id, actor=COORDINATOR)
    assert case_id == case_id_for_ticket(ticket_id)
    ticket = app.ticket(ticket_id)
    assert (ticket.status, ticket.case_id) == (TicketStatus.TRANSFERRED, case_id)
    # A coordinator retrying the conversion changes nothing.
    version = ticket.version
    assert app.convert_to_case(ticket_id, actor=COORDINATOR) == case_id
    assert app.ticket(ticket_id).version == version
    with pytest.raises(IllegalTransition, match=f"already became grid case {case_id}"):
        app.convert_to_case(ticket_id, case_id=uuid4(), actor=COORDINATOR)

    # The ticket follows the case: no callback and no closing before the case is finished
    # (test_ticket_follow_up.py follows it to the reply and the callback).
    with pytest.raises(IllegalTransition, match=f"grid case {case_id} is not finished yet"):
        app.call_back(ticket_id, satisfaction="satisfied", actor=OPERATOR)
    with pytest.raises(IllegalTransition, match=f"grid case {case_id} is not finished yet"):
        app.close_ticket(ticket_id, actor=OPERATOR)
    assert app.ticket(ticket_id).version == version


def test_an_emergency_becomes_or_joins_an_incident(app: HotlineTickets) -> None:
    ticket_id = receive(app, topic="gas-smell", ticket_type="request-for-help",
                        description="Strong smell of gas in the stairwell")
    app.assign(ticket_id, actor=OPERATOR)
    incident_id = app.escalate_to_incident(ticket_id, actor=OPERATOR)
    assert incident_id == incident_id_for_ticket(ticket_id)
    ticket = app.ticket(ticket_id)
    assert (ticket.status, ticket.incident_id) == (TicketStatus.TRANSFERRED, incident_id)
    assert app.timeliness(ticket) is None
    # A second caller's ticket joins the same, existing incident.
    other = receive(app, topic="gas-smell", description="gas smell again")
    assert app.escalate_to_incident(other, incident_id=incident_id,
                                    actor=OPERATOR) == incident_id
    with pytest.raises(IllegalTransition, match="already joined incident"):
        app.escalate_to_incident(other, incident_id=uuid4(), actor=OPERATOR)
    # A transferred ticket can also become a case; it then waits for both.
    case_id = app.convert_to_case(ticket_id, actor=OPERATOR)
    with pytest.raises(IllegalTransition,
                       match=f"grid case {case_id} and incident {incident_id} are not finished"):
        app.close_ticket(ticket_id, actor=OPERATOR)


# --- callers and personal data ---------------------------------------------------------------


def test_an_anonymous_tip_cannot_be_called_back_and_closes_after_the_reply(
        app: HotlineTickets) -> None:
    ticket_id = receive(app, ticket_type="report", caller_name=None, caller_phone=None)
    app.assign(ticket_id, actor=OPERATOR)
    app.accept(ticket_id, actor=SANITATION)
    app.reply(ticket_id, reply="Fined the restaurant", actor=SANITATION)
    with pytest.raises(IllegalTransition, match="no phone number"):
        app.call_back(ticket_id, satisfaction="satisfied", actor=OPERATOR)
    app.close_ticket(ticket_id, actor=OPERATOR)
    assert app.ticket(ticket_id).status is TicketStatus.CLOSED


def test_a_caller_with_a_phone_number_must_be_called_back_before_closing(
        app: HotlineTickets) -> None:
    ticket_id = receive(app)
    app.assign(ticket_id, actor=OPERATOR)
    app.accept(ticket_id, actor=SANITATION)
    app.reply(ticket_id, reply="done", actor=SANITATION)
    with pytest.raises(IllegalTransition, match="it is replied"):
        app.close_ticket(ticket_id, actor=OPERATOR)


@pytest.mark.parametrize("phone", ["110", "+86 138 0013 8000", "021-5555 0102", "(021) 5555.0102",
                                   "13900139000"])
def test_phone_numbers_are_checked_loosely(phone: str) -> None:
    assert check_phone(phone) == phone
    assert check_phone("  ") is None
    assert check_phone(None) is None


@pytest.mark.parametrize("phone", ["12", "call me", "+86 138 0013 8000 ext 5", "++8613800",
                                   "1" * 21, "-123456"])
def test_what_is_not_a_phone_number_is_refused(app: HotlineTickets, phone: str) -> None:
    with pytest.raises(InvalidValue, match="not a phone number"):
        receive(app, caller_phone=phone)
    assert events_stored(app) == 0


def test_personal_data_is_named_for_the_sharing_rules(app: HotlineTickets) -> None:
    summary = app.ticket(receive(app)).summary()
    assert set(summary) >= PERSONAL_DATA
    assert summary["caller"] == {"name": "Zhang Wei", "phone": "+86 138 0013 8000"}


@pytest.mark.parametrize(("changes", "message"), [
    ({"channel": "fax"}, "unknown channel"),
    ({"ticket_type": "threat"}, "unknown ticket type"),
    ({"topic": "ufo"}, "unknown hotline topic"),
    ({"description": "   "}, "description"),
    ({"caller_name": "x" * 101}, "caller name"),
    ({"at": datetime(2026, 3, 2, 9, 0)}, "time zone"),
])
def test_bad_calls_are_refused(app: HotlineTickets, changes: dict[str, Any],
                               message: str) -> None:
    with pytest.raises(InvalidValue, match=message):
        receive(app, **changes)
    assert events_stored(app) == 0


def test_a_bad_satisfaction_is_refused(app: HotlineTickets) -> None:
    with pytest.raises(InvalidValue, match="unknown satisfaction"):
        app.call_back(receive(app), satisfaction="delighted", actor=OPERATOR)


# --- illegal transitions ---------------------------------------------------------------------

Command = Callable[[HotlineTickets, UUID, UUID], object]
DUTY = Actor("duty-1", Role.DISPATCHER)  # may issue every ticket command

COMMANDS: dict[str, Command] = {
    "answer": lambda app, t, p: app.answer_at_first_contact(t, answer="a", actor=DUTY),
    "assign": lambda app, t, p: app.assign(t, actor=DUTY),
    "accept": lambda app, t, p: app.accept(t, actor=DUTY),
    "return": lambda app, t, p: app.return_to_centre(t, reason="r", actor=DUTY,
                                                     suggested_department="housing"),
    "reply": lambda app, t, p: app.reply(t, reply="r", actor=DUTY),
    "call back": lambda app, t, p: app.call_back(t, satisfaction="satisfied", actor=DUTY),
    "merge": lambda app, t, p: app.merge_into(t, p, actor=DUTY),
    "convert": lambda app, t, p: app.convert_to_case(t, case_id=uuid4(), actor=DUTY),
    "escalate": lambda app, t, p: app.escalate_to_incident(t, incident_id=uuid4(), actor=DUTY),
    "close": lambda app, t, p: app.close_ticket(t, actor=DUTY),
    "accept return": lambda app, t, p: app.review_return(t, accept=True, actor=DUTY),
    "reject return": lambda app, t, p: app.review_return(t, accept=False, reason="yours",
                                                         actor=DUTY),
}

# How to bring a new ticket into each state.
PATHS: dict[TicketStatus, list[str]] = {
    TicketStatus.RECEIVED: [],
    TicketStatus.ASSIGNED: ["assign"],
    TicketStatus.ACCEPTED: ["assign", "accept"],
    TicketStatus.RETURNED: ["assign", "return"],
    TicketStatus.REPLIED: ["assign", "accept", "reply"],
    TicketStatus.CALLED_BACK: ["assign", "accept", "reply", "call back"],
    TicketStatus.TRANSFERRED: ["convert", "escalate"],
    TicketStatus.CLOSED: ["assign", "accept", "reply", "call back", "close"],
    TicketStatus.MERGED: ["merge"],
}

ALLOWED: dict[TicketStatus, set[str]] = {
    TicketStatus.RECEIVED: {"answer", "assign", "merge", "convert", "escalate"},
    TicketStatus.ASSIGNED: {"accept", "return", "merge", "convert", "escalate"},
    TicketStatus.ACCEPTED: {"reply", "convert", "escalate"},
    TicketStatus.RETURNED: {"assign", "merge", "convert", "escalate", "accept return",
                            "reject return"},
    TicketStatus.REPLIED: {"call back"},
    TicketStatus.CALLED_BACK: {"close"},
    # It waits for its case and incident (test_ticket_follow_up.py).
    TicketStatus.TRANSFERRED: set(),
    TicketStatus.CLOSED: set(),
    TicketStatus.MERGED: set(),
}


def ticket_in(app: HotlineTickets, status: TicketStatus) -> tuple[UUID, UUID]:
    """A ticket in `status`, and an open ticket it could be merged into."""
    primary = receive(app)
    ticket_id = receive(app)
    for step in PATHS[status]:
        COMMANDS[step](app, ticket_id, primary)
    assert app.ticket(ticket_id).status is status
    return ticket_id, primary


@pytest.mark.parametrize(("status", "command"), [
    (status, command) for status in TicketStatus for command in COMMANDS
    if command not in ALLOWED[status]
])
def test_illegal_transitions_are_refused_and_record_nothing(
        app: HotlineTickets, status: TicketStatus, command: str) -> None:
    ticket_id, primary = ticket_in(app, status)
    versions = app.ticket(ticket_id).version, app.ticket(primary).version
    with pytest.raises(IllegalTransition) as refused:
        COMMANDS[command](app, ticket_id, primary)
    assert refused.value.kind == "hotline ticket"
    assert refused.value.aggregate_id == ticket_id
    assert refused.value.state.startswith(status.value)
    assert (app.ticket(ticket_id).version, app.ticket(primary).version) == versions


@pytest.mark.parametrize(("status", "command"), [
    (status, command) for status in TicketStatus for command in sorted(ALLOWED[status])
])
def test_allowed_transitions_are_recorded(app: HotlineTickets, status: TicketStatus,
                                          command: str) -> None:
    ticket_id, primary = ticket_in(app, status)
    version = app.ticket(ticket_id).version
    COMMANDS[command](app, ticket_id, primary)
    assert app.ticket(ticket_id).version > version


@pytest.mark.parametrize("status", [TicketStatus.CLOSED, TicketStatus.MERGED])
def test_nothing_is_merged_into_a_finished_ticket(app: HotlineTickets,
                                                  status: TicketStatus) -> None:
    finished, _ = ticket_in(app, status)
    ticket_id = receive(app)
    with pytest.raises(IllegalTransition) as refused:
        app.merge_into(ticket_id, finished, actor=DUTY)
    assert refused.value.aggregate_id == finished
    assert app.ticket(ticket_id).version == 1


def test_a_department_acts_only_on_its_own_tickets(app: HotlineTickets) -> None:
    ticket_id = receive(app)
    app.assign(ticket_id, actor=OPERATOR)
    with pytest.raises(IllegalTransition, match="assigned to sanitation, not water"):
        app.accept(ticket_id, actor=WATER)
    app.accept(ticket_id, actor=SANITATION)
    with pytest.raises(IllegalTransition, match="assigned to sanitation, not water"):
        app.reply(ticket_id, reply="r", actor=WATER)


# --- idempotency and permissions -------------------------------------------------------------


def test_a_repeated_call_is_received_once(app: HotlineTickets) -> None:
    first = receive(app, command_id="call-123")
    stored = events_stored(app)
    assert receive(app, command_id="call-123") == first
    assert events_stored(app) == stored
    with pytest.raises(CommandIdReused):
        receive(app, description="something else", command_id="call-123")


def test_a_repeated_assignment_is_recorded_once(app: HotlineTickets) -> None:
    ticket_id = receive(app)
    app.assign(ticket_id, actor=OPERATOR, command_id="assign-1")
    version = app.ticket(ticket_id).version
    app.assign(ticket_id, actor=OPERATOR, command_id="assign-1")
    assert app.ticket(ticket_id).version == version
    with pytest.raises(CommandIdReused):
        app.assign(ticket_id, department="water", actor=OPERATOR, command_id="assign-1")


def test_a_repeated_merge_is_recorded_once(app: HotlineTickets) -> None:
    primary, other = receive(app), receive(app)
    app.merge_into(other, primary, actor=OPERATOR, command_id="merge-1")
    stored = events_stored(app)
    app.merge_into(other, primary, actor=OPERATOR, command_id="merge-1")
    assert events_stored(app) == stored


@pytest.mark.parametrize(("actor", "command"), [
    (INSPECTOR, lambda app, t: receive(app, actor=INSPECTOR)),
    (SANITATION, lambda app, t: app.assign(t, actor=SANITATION)),
    (OPERATOR, lambda app, t: app.accept(t, actor=OPERATOR)),
    (OPERATOR, lambda app, t: app.reply(t, reply="r", actor=OPERATOR)),
    (SANITATION, lambda app, t: app.call_back(t, satisfaction="satisfied", actor=SANITATION)),
    (SANITATION, lambda app, t: app.convert_to_case(t, actor=SANITATION)),
    (SANITATION, lambda app, t: app.merge_into(t, uuid4(), actor=SANITATION)),
    (INSPECTOR, lambda app, t: app.close_ticket(t, actor=INSPECTOR)),
    (SANITATION, lambda app, t: app.review_return(t, accept=False, reason="r",
                                                  actor=SANITATION)),
    (INSPECTOR, lambda app, t: app.review_return(t, accept=True, actor=INSPECTOR)),
])
def test_commands_need_a_permitted_role(app: HotlineTickets, actor: Actor,
                                        command: Callable[[HotlineTickets, UUID], object]
                                        ) -> None:
    ticket_id = receive(app)
    app.assign(ticket_id, actor=OPERATOR)
    stored = events_stored(app)
    with pytest.raises(NotPermitted):
        command(app, ticket_id)
    assert events_stored(app) == stored


def test_an_unknown_ticket_is_not_found(app: HotlineTickets) -> None:
    with pytest.raises(NotFound, match="hotline ticket"):
        app.assign(uuid4(), actor=OPERATOR)


def test_a_ticket_is_not_another_kind_of_aggregate(app: HotlineTickets) -> None:
    ticket = app.ticket(receive(app))
    assert isinstance(ticket, HotlineTicket)
    assert ticket.KIND == "hotline ticket"
