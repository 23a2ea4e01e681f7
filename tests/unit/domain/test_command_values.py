"""Commands are values: each is a frozen dataclass of its context's commands file, checked
when it is built, with one handler, a place in the permission table, and the fingerprint its
receipts have always had (a client's retry across the upgrade is still a repeat)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest

from cityops.domain.accounts.application import Accounts
from cityops.domain.accounts.commands import AddUser
from cityops.domain.application import CityApplication, CommandReceipt
from cityops.domain.commands import (
    COMMAND_CLASSES,
    EVERY_COMMAND,
    Command,
    CommandContext,
    CommandHandlers,
    fingerprint,
)
from cityops.domain.drills.application import Drills
from cityops.domain.errors import InvalidValue, NotPermitted
from cityops.domain.exercises.application import Exercises
from cityops.domain.geometry import GeoPoint
from cityops.domain.gridcases.application import GridCases
from cityops.domain.gridcases.commands import (
    DispatchCase,
    HandleCase,
    RegisterCase,
    RejectCase,
    ReportCase,
    RequestCaseSuspension,
    ReviewCaseReturn,
)
from cityops.domain.hazards.application import HazardSources
from cityops.domain.hotline.application import HotlineTickets
from cityops.domain.hotline.commands import CallBackCaller, MergeTicket, ReceiveTicket
from cityops.domain.incidents.application import Incidents
from cityops.domain.permissions import COMMAND_ROLES, check_permitted
from cityops.domain.resources.application import Resources
from cityops.domain.reviews.application import Reviews
from cityops.domain.warnings.application import Warnings
from cityops.feeds.subscriptions import Subscriptions

APPLICATIONS: list[type[CityApplication]] = [GridCases, HotlineTickets, Incidents,
                                             HazardSources, Resources, Accounts, Subscriptions,
                                             Warnings, Reviews, Exercises, Drills]
CASE = UUID("0b8f5c1e-6a5e-4c39-9d0e-7f3a8b1c2d4e")
OTHER = UUID("5d6e7f80-1a2b-4c3d-8e9f-0a1b2c3d4e5f")
POINT = GeoPoint(121.4105, 31.2105)


def test_every_command_class_has_exactly_one_handler_and_a_place_in_the_permission_table(
) -> None:
    handled: dict[type[Command], str] = {}
    for application in APPLICATIONS:
        for command in application.handled_commands():
            assert command not in handled, (command.name, handled.get(command))
            handled[command] = application.__name__
    assert set(EVERY_COMMAND) == set(handled), "a command without a handler"
    assert set(COMMAND_CLASSES.values()) <= set(handled)
    for command in handled:
        assert command in COMMAND_ROLES, f"{command.name} is in no row of the role table"


def test_the_one_entry_point_hands_each_command_to_the_application_that_owns_it(
        workflow: Any, cast: Any) -> None:
    handlers = CommandHandlers([workflow.app])
    case_id = workflow.report()
    outcome = handlers.handle(RegisterCase(case_id=case_id),
                              CommandContext(actor=cast.dispatcher))
    assert (outcome.subject, outcome.repeated) == (case_id, False)
    assert workflow.case(case_id).status.value == "registered"
    assert RegisterCase in handlers and ReportCase in handlers


def test_a_command_value_is_frozen_and_checked_when_it_is_built() -> None:
    command = DispatchCase(case_id=CASE, department="water")
    with pytest.raises(dataclasses.FrozenInstanceError):
        command.department = "roads"  # type: ignore[misc]
    with pytest.raises(InvalidValue, match="unknown rejection reason 'sideways'"):
        RejectCase(case_id=CASE, reason="sideways")  # type: ignore[arg-type]
    with pytest.raises(InvalidValue, match="expected resume time has no time zone"):
        RequestCaseSuspension(case_id=CASE, reason="permit",
                              expected_resume_at=datetime(2026, 3, 10, 9))
    with pytest.raises(InvalidValue, match="give no department"):
        ReviewCaseReturn(case_id=CASE, accept=False, department="roads", reason="yours")
    with pytest.raises(TypeError):
        DispatchCase(CASE)  # type: ignore[misc]  # fields are named


def test_permissions_are_keyed_by_the_command_class(cast: Any) -> None:
    check_permitted(DispatchCase, cast.dispatcher)
    with pytest.raises(NotPermitted, match=r"department-user water-chen may not "
                                           r"grid-case\.dispatch; allowed roles: admin, "
                                           r"dispatcher"):
        check_permitted(DispatchCase, cast.water)


# What the receipts of these commands recorded before commands were values (the arguments
# each application method restated by hand): the values must digest to the same.
BEFORE_VALUES = [
    (ReportCase(source="inspector", category="C0101", description="cover missing",
                location=POINT, photos=("photo:ab",)),
     "grid-case.report",
     {"source": "inspector", "category": "C0101", "description": "cover missing",
      "location": [POINT.lon, POINT.lat], "urgency": "normal", "photos": ["photo:ab"],
      "ticket_id": None}),
    (RegisterCase(case_id=CASE, urgency="urgent"), "grid-case.register",
     {"case_id": CASE, "category": None, "urgency": "urgent", "note": ""}),
    (DispatchCase(case_id=CASE, department="water"), "grid-case.dispatch",
     {"case_id": CASE, "department": "water", "instructions": ""}),
    (HandleCase(case_id=CASE, result="fixed", evidence=["photo:cd"]), "grid-case.handle",
     {"case_id": CASE, "result": "fixed", "evidence": ["photo:cd"]}),
    (ReceiveTicket(channel="phone", ticket_type="complaint", topic="garbage",
                   description="bins full", caller_phone="13800138000", location=POINT),
     "ticket.receive",
     {"channel": "phone", "ticket_type": "complaint", "topic": "garbage",
      "description": "bins full", "caller_name": None, "caller_phone": "13800138000",
      "location": [POINT.lon, POINT.lat]}),
    (MergeTicket(ticket_id=CASE, primary_id=OTHER, note="same call"), "ticket.merge",
     {"ticket_id": CASE, "primary_id": OTHER, "note": "same call"}),
    (CallBackCaller(ticket_id=CASE, satisfaction="satisfied"), "ticket.callback",
     {"ticket_id": CASE, "satisfaction": "satisfied", "note": ""}),
    (AddUser(username="Li", role="dispatcher", password="a-long-pass-1"), "account.add-user",
     {"username": "li", "role": "dispatcher", "department": None}),
    (RequestCaseSuspension(case_id=CASE, reason="permit",
                           expected_resume_at=datetime(2026, 3, 10, 9, tzinfo=UTC)),
     "grid-case.request-suspension",
     {"case_id": CASE, "reason": "permit",
      "expected_resume_at": datetime(2026, 3, 10, 9, tzinfo=UTC)}),
]


@pytest.mark.parametrize(("command", "name", "before"), BEFORE_VALUES,
                         ids=[b[1] for b in BEFORE_VALUES])
def test_a_command_digests_as_its_receipts_did_before_commands_were_values(
        command: Command, name: str, before: dict[str, Any]) -> None:
    assert command.name == name
    assert command.fingerprint() == fingerprint(name, before)


def test_a_retry_of_a_command_receipted_before_the_upgrade_is_a_repeat(workflow: Any,
                                                                        cast: Any) -> None:
    """A phone's outbox sends a dispatch again after the upgrade: its receipt, written by the
    old code, answers it."""
    case_id = workflow.to("registered")
    workflow.dispatch(case_id, department="water")
    old = CommandReceipt(command_id="outbox-1", command="grid-case.dispatch",
                         fingerprint=fingerprint("grid-case.dispatch", {
                             "case_id": case_id, "department": "water", "instructions": ""}),
                         aggregate_id=case_id, actor=cast.dispatcher)
    workflow.app.save(old)
    again = workflow.app.handle(DispatchCase(case_id=case_id, department="water"),
                                CommandContext(actor=cast.dispatcher, command_id="outbox-1"))
    assert (again.subject, again.repeated) == (case_id, True)


def test_a_context_needs_an_actor_and_expects_nothing_unless_told(cast: Any) -> None:
    with pytest.raises(InvalidValue, match="actor"):
        CommandContext(actor="dispatcher")  # type: ignore[arg-type]
    context = CommandContext(actor=cast.dispatcher)
    assert (context.command_id, context.at, dict(context.seen_versions), context.batch) == (
        None, None, {}, None)
