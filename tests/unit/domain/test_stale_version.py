"""A person acts on the version of a case they saw: when it has moved on since, their command
is refused with a `StaleVersion` that says what they missed, and nothing is recorded; their
own change, a repeat of it, and everything they did not claim to have seen are not refused.
"""

from __future__ import annotations

import re
import threading
from contextvars import copy_context
from typing import Any
from uuid import uuid4

import pytest

from cityops.domain.actors import Actor, Role
from cityops.domain.application import MAX_LISTED_CHANGES, expected_versions
from cityops.domain.errors import ConcurrencyConflict, InvalidValue, NotFound, StaleVersion
from cityops.domain.gridcases.case import CaseStatus

SECOND_DISPATCHER = Actor("duty-qian", Role.DISPATCHER)


def test_a_command_on_the_version_seen_goes_through(workflow: Any) -> None:
    case_id = workflow.report()
    with expected_versions({case_id: 1}):
        workflow.register(case_id)
    assert workflow.case(case_id).status is CaseStatus.REGISTERED


def test_the_second_of_two_dispatchers_is_told_what_changed_since_they_opened_it(
        workflow: Any, clock: Any) -> None:
    case_id = workflow.report()
    seen = workflow.case(case_id).version  # both dispatchers open the reported case
    clock.advance(minutes=4)
    with expected_versions({case_id: seen}):
        workflow.register(case_id)  # the first one registers it
    stored = workflow.stored_case_events()
    clock.advance(minutes=1)
    with expected_versions({case_id: seen}), pytest.raises(StaleVersion) as refused:
        workflow.reject(case_id, actor=SECOND_DISPATCHER)
    assert str(refused.value) == (
        f"grid case {case_id} changed since you opened it: version 1 -> 2 (Registered by "
        "duty-zhao at 2026-03-10 01:04:00 UTC); reload it and try again")
    assert (refused.value.seen, refused.value.current) == (1, 2)
    assert isinstance(refused.value, ConcurrencyConflict)
    assert workflow.stored_case_events() == stored
    assert workflow.case(case_id).status is CaseStatus.REGISTERED


def test_a_long_list_of_missed_changes_is_cut_short_and_counted(workflow: Any,
                                                                clock: Any) -> None:
    case_id = workflow.to("suspended")
    for _ in range(2):
        clock.advance(minutes=5)
        workflow.resume(case_id)
        clock.advance(minutes=5)
        workflow.suspend(case_id)
    current = workflow.version(case_id)
    assert current == 8
    with expected_versions({case_id: 1}), pytest.raises(StaleVersion) as refused:
        workflow.resume(case_id)
    assert refused.value.changes[:3] == (
        "Registered by duty-zhao at 2026-03-10 01:10:00 UTC",
        "Dispatched by duty-zhao at 2026-03-10 01:20:00 UTC",
        "Suspended by duty-zhao at 2026-03-10 01:30:00 UTC",
    )
    assert len(refused.value.changes) == MAX_LISTED_CHANGES
    assert refused.value.unlisted == current - 1 - MAX_LISTED_CHANGES == 2
    assert ", and 2 more); reload it and try again" in str(refused.value)
    assert workflow.version(case_id) == current


def test_a_version_the_case_never_reached_is_refused_too(workflow: Any) -> None:
    case_id = workflow.to("registered")
    with expected_versions({case_id: 5}), pytest.raises(StaleVersion) as refused:
        workflow.dispatch(case_id)
    assert str(refused.value) == (
        f"grid case {case_id} is at version 2, not at version 5 that you say you saw; "
        "reload it and try again")
    assert workflow.case(case_id).status is CaseStatus.REGISTERED


def test_the_users_own_change_fulfils_the_expectation(workflow: Any, clock: Any) -> None:
    case_id = workflow.report()
    with expected_versions({case_id: 1}):
        workflow.register(case_id)
        # Reading the result (the API answers with it) is not refused as stale...
        assert workflow.case(case_id).version == 2
        clock.advance(minutes=1)
        # ...nor is a follow-up on what the user now sees.
        workflow.dispatch(case_id)
    assert workflow.case(case_id).status is CaseStatus.DISPATCHED


def test_a_retried_command_answers_as_its_first_run_did(workflow: Any, clock: Any) -> None:
    """The client lost the answer and sends the same request again (same id, same version
    seen): the receipt answers, not a conflict with the client's own change."""
    case_id = workflow.report()
    with expected_versions({case_id: 1}):
        first = workflow.register(case_id, command_id="desk-1:register")
    clock.advance(minutes=1)
    with expected_versions({case_id: 1}):
        again = workflow.register(case_id, command_id="desk-1:register")
        assert workflow.case(case_id).version == 2
    assert again == first == case_id


def test_only_the_aggregates_named_are_checked(workflow: Any) -> None:
    original = workflow.to("registered")
    duplicate = workflow.report()
    # The dispatcher saw the duplicate at version 1 and says nothing of the original, which
    # moved on (version 2): merging into it is not refused.
    with expected_versions({duplicate: 1}):
        workflow.reject(duplicate, reason="duplicate", duplicate_of=original)
    assert workflow.case(duplicate).status is CaseStatus.REJECTED


def test_only_commands_are_refused_reads_see_the_case_as_it_is(workflow: Any) -> None:
    """A check of who may act, made before the command, reads the case: it must neither be
    refused nor tell what changed (the command itself is then refused)."""
    case_id = workflow.to("registered")
    with expected_versions({case_id: 1}):
        assert workflow.case(case_id).version == 2
        with pytest.raises(StaleVersion):
            workflow.dispatch(case_id)


def test_a_command_of_several_steps_checks_its_subject_before_the_first(
        workflow: Any) -> None:
    case_id = workflow.to("registered")
    case = workflow.case(case_id)
    with expected_versions({case_id: 2}):
        workflow.app.require_seen_version(case)
    with expected_versions({case_id: 1}), pytest.raises(StaleVersion, match="version 1 -> 2"):
        workflow.app.require_seen_version(case)
    workflow.app.require_seen_version(case)  # nothing expected: nothing to refuse


def test_past_versions_can_still_be_read(workflow: Any) -> None:
    case_id = workflow.to("registered")
    with expected_versions({case_id: 2}):
        assert workflow.app.load(type(workflow.case(case_id)), case_id, version=1).version == 1


def test_an_unknown_aggregate_is_not_found_rather_than_stale(workflow: Any) -> None:
    missing = uuid4()
    with expected_versions({missing: 3}), pytest.raises(NotFound):
        workflow.register(missing)


def test_the_block_ends_the_expectation(workflow: Any) -> None:
    case_id = workflow.to("registered")
    with expected_versions({case_id: 1}), pytest.raises(StaleVersion):
        workflow.dispatch(case_id)
    workflow.dispatch(case_id)
    assert workflow.case(case_id).status is CaseStatus.DISPATCHED


@pytest.mark.parametrize("version", [0, -3, True, "2", 2.0, None])
def test_a_version_that_is_not_a_version_is_refused(workflow: Any, version: Any) -> None:
    case_id = workflow.report()
    message = f"the version seen of {case_id} must be a whole number from 1, not {version!r}"
    with pytest.raises(InvalidValue, match=re.escape(message)), \
            expected_versions({case_id: version}):
        pass


def test_the_expectation_follows_the_code_into_a_thread_that_copies_the_context(
        workflow: Any) -> None:
    """As a web framework runs a synchronous handler: in a worker thread, with a copy of the
    request's context."""
    case_id = workflow.to("registered")
    outcome: list[BaseException | None] = []

    def handler() -> None:
        try:
            workflow.dispatch(case_id)
            outcome.append(None)
        except StaleVersion as error:
            outcome.append(error)

    with expected_versions({case_id: 1}):
        context = copy_context()
    worker = threading.Thread(target=context.run, args=(handler,))
    worker.start()
    worker.join(timeout=10)
    assert isinstance(outcome[0], StaleVersion)
    assert workflow.case(case_id).status is CaseStatus.REGISTERED
