"""Commands from outside carry a client-supplied id: a repeated command changes nothing and
answers the same; an id reused for something else is refused; and two people changing the
same case at the same time cannot both win (the loser gets a clear conflict to retry).
"""

from __future__ import annotations

import threading
from datetime import timedelta
from uuid import UUID, uuid4

import pytest

from cityops.domain.application import MAX_COMMAND_ID_LENGTH, CommandReceipt
from cityops.domain.errors import (
    CommandIdReused,
    ConcurrencyConflict,
    IllegalTransition,
    InvalidValue,
    NotFound,
)
from cityops.domain.gridcase import CaseStatus, GridCase

# Each command in a state where it is legal (the same table as the lifecycle tests).
LEGAL_IN = {
    "register": "reported", "reject": "reported", "dispatch": "registered",
    "return_to_centre": "dispatched", "request_extension": "dispatched",
    "approve_extension": "extension-requested", "refuse_extension": "extension-requested",
    "suspend": "dispatched", "resume": "suspended", "handle": "dispatched",
    "verify": "handled", "order_rework": "handled", "close_case": "verified",
}


def notifications(app) -> list[str]:
    """Topics of everything the application stored, receipts included."""
    return [n.topic for n in app.recorder.select_notifications(start=None, limit=100_000)]


def receipts(app) -> int:
    return sum("CommandReceipt" in topic for topic in notifications(app))


# --- idempotency --------------------------------------------------------------------------


def test_a_repeated_report_lands_on_the_same_case_once(workflow, clock):
    first = workflow.report(command_id="tablet-7:report:0001")
    clock.advance(minutes=3)  # the tablet retries after a lost answer
    again = workflow.report(command_id="tablet-7:report:0001")
    assert again == first
    assert workflow.stored_case_events() == [f"{GridCase.__module__}:GridCase.Reported"]
    assert receipts(workflow.app) == 1


@pytest.mark.parametrize("command", sorted(LEGAL_IN))
def test_a_repeated_command_is_done_once_and_answered_the_same(workflow, clock, command):
    case_id = workflow.to(LEGAL_IN[command])
    version = workflow.version(case_id)
    stored = len(notifications(workflow.app))
    clock.advance(minutes=1)
    first = getattr(workflow, command)(case_id, command_id="cmd-0001")
    summary = workflow.case(case_id).summary()
    clock.advance(minutes=1)  # when it is repeated does not matter, what it asks does
    second = getattr(workflow, command)(case_id, command_id="cmd-0001")
    assert first == second == case_id
    assert workflow.version(case_id) == version + 1
    assert workflow.case(case_id).summary() == summary
    # One event for the case, one receipt: nothing more.
    assert len(notifications(workflow.app)) == stored + 2


def test_a_command_id_reused_with_other_arguments_is_refused(workflow):
    case_id = workflow.to("registered")
    workflow.dispatch(case_id, department="water", command_id="desk-3:42")
    stored = notifications(workflow.app)
    with pytest.raises(CommandIdReused) as error:
        workflow.dispatch(case_id, department="roads", command_id="desk-3:42")
    assert str(error.value) == (
        "command id 'desk-3:42' was already used for grid-case.dispatch with other arguments; "
        "it cannot be reused for this grid-case.dispatch"
    )
    assert error.value.command_id == "desk-3:42"
    assert notifications(workflow.app) == stored
    assert workflow.case(case_id).department == "water"


def test_a_command_id_reused_for_another_command_is_refused(workflow):
    case_id = workflow.report(command_id="desk-3:43")
    with pytest.raises(CommandIdReused) as error:
        workflow.register(case_id, command_id="desk-3:43")
    assert str(error.value) == (
        "command id 'desk-3:43' was already used for grid-case.report; it cannot be reused "
        "for this grid-case.register"
    )
    assert workflow.case(case_id).status is CaseStatus.REPORTED


def test_a_reused_report_id_with_another_description_is_refused(workflow):
    workflow.report(command_id="r-1")
    with pytest.raises(CommandIdReused):
        workflow.report(command_id="r-1", description="a different problem")
    assert len(workflow.stored_case_events()) == 1


def test_a_refused_command_leaves_no_receipt_so_its_id_can_be_retried(workflow):
    case_id = workflow.report()
    with pytest.raises(IllegalTransition):
        workflow.dispatch(case_id, department="water", command_id="d-1")
    assert receipts(workflow.app) == 0
    workflow.register(case_id)
    workflow.dispatch(case_id, department="water", command_id="d-1")
    assert workflow.case(case_id).status is CaseStatus.DISPATCHED


def test_commands_without_an_id_are_not_deduplicated(workflow, clock):
    first = workflow.report()
    second = workflow.report()
    assert first != second
    assert receipts(workflow.app) == 0


@pytest.mark.parametrize("command_id", ["", "   ", "x" * (MAX_COMMAND_ID_LENGTH + 1)])
def test_a_bad_command_id_is_refused(workflow, command_id):
    case_id = workflow.report()
    with pytest.raises(InvalidValue, match="command id"):
        workflow.register(case_id, command_id=command_id)
    assert workflow.version(case_id) == 1


def test_the_longest_command_id_is_accepted(workflow):
    case_id = workflow.report(command_id="x" * MAX_COMMAND_ID_LENGTH)
    assert workflow.case(case_id).status is CaseStatus.REPORTED


def test_a_receipt_says_what_was_done_by_whom(workflow, cast):
    case_id = workflow.report(command_id="r-2")
    receipt = workflow.app.repository.get(CommandReceipt.create_id("r-2"))
    assert receipt.command == "grid-case.report"
    assert receipt.aggregate_id == case_id
    assert receipt.actor == cast.inspector
    # A receipt is not a grid case.
    with pytest.raises(NotFound, match="grid case"):
        workflow.app.case(receipt.id)


def test_a_command_that_decides_nothing_is_a_programming_error(workflow, cast):
    with pytest.raises(AssertionError, match="decided nothing"):
        workflow.app.run_command("grid-case.register", actor=cast.dispatcher, command_id=None,
                                 args={}, decide=list)


# --- optimistic concurrency ---------------------------------------------------------------


def test_two_dispatchers_change_the_same_case_and_the_second_must_retry(workflow, cast, clock):
    app = workflow.app
    case_id = workflow.to("registered")
    # Both duty officers open the case at the same time.
    mine = app.repository.get(case_id)
    theirs = app.repository.get(case_id)
    clock.advance(minutes=1)
    deadline = app.catalogue.case_category("C0101").time_limit(mine.urgency).deadline(
        clock(), app.catalogue.calendar)
    mine.dispatch(department="water", deadline=deadline, limit_unit=mine.stage.unit,
                  instructions="", actor=cast.dispatcher, at=clock())
    theirs.dispatch(department="roads", deadline=deadline, limit_unit=theirs.stage.unit,
                    instructions="", actor=cast.admin, at=clock())
    app.save(mine)

    with pytest.raises(ConcurrencyConflict) as error:
        app.run_command("grid-case.dispatch", actor=cast.admin, command_id="admin:1",
                        args={"case_id": case_id, "department": "roads"},
                        decide=lambda: [theirs])
    assert str(error.value) == (
        f"cannot grid-case.dispatch grid case {case_id}: it was changed by someone else at "
        "the same time; reload it and try again"
    )
    assert error.value.kind == "grid case"
    assert error.value.aggregate_id == case_id
    # The first one's dispatch stands, nothing of the second was stored (not even its
    # receipt), and a retry on the reloaded case is judged on the current state.
    case = app.case(case_id)
    assert case.department == "water"
    assert case.version == mine.version
    assert receipts(app) == 0
    with pytest.raises(IllegalTransition, match="it is dispatched"):
        workflow.dispatch(case_id, department="roads", actor=cast.admin, command_id="admin:1")


def test_two_copies_of_one_command_racing_are_done_once(workflow, cast):
    app = workflow.app
    case_id = workflow.to("registered")
    args = {"case_id": case_id, "department": "water", "instructions": ""}

    def decide_while_the_twin_wins() -> list[GridCase]:
        stale = app.case(case_id)
        # The same command, sent twice by a client, is saved by another worker meanwhile.
        workflow.dispatch(case_id, department="water", command_id="twin-1")
        deadline = stale.stage.deadline + timedelta(hours=8)
        stale.dispatch(department="water", deadline=deadline, limit_unit=stale.stage.unit,
                       instructions="", actor=cast.dispatcher, at=stale.modified_on)
        return [stale]

    answer = app.run_command("grid-case.dispatch", actor=cast.dispatcher, command_id="twin-1",
                             args=args, decide=decide_while_the_twin_wins)
    assert answer == case_id
    topics = [t.rsplit(".", 1)[-1] for t in workflow.stored_case_events()]
    assert topics == ["Reported", "Registered", "Dispatched"]
    assert receipts(app) == 1


def test_two_dispatchers_on_two_servers_sharing_one_database(tmp_path, make_gridcases, clock,
                                                             cast, places):
    """Two application instances on one SQLite file, two threads: both read the registered
    case before either writes, both dispatch it; exactly one wins, the other gets a conflict."""
    env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite",
           "SQLITE_DBNAME": str(tmp_path / "gridcases.db"), "SQLITE_LOCK_TIMEOUT": "10"}
    servers = [make_gridcases(clock, env=env), make_gridcases(clock, env=env)]
    try:
        case_id = servers[0].report(source="inspector", category="C0101",
                                    description="cover missing",
                                    location=places.in_d01, actor=cast.inspector)
        servers[1].register(case_id, actor=cast.dispatcher)

        both_have_read = threading.Barrier(2, timeout=10)
        for server in servers:
            load = server.case

            def case_then_wait(aggregate_id: UUID, load=load) -> GridCase:
                case = load(aggregate_id)
                both_have_read.wait()
                return case

            server.case = case_then_wait  # type: ignore[method-assign]

        outcomes: dict[str, object] = {}

        def dispatch(name: str, server, department: str) -> None:
            try:
                server.dispatch(case_id, actor=cast.dispatcher, department=department,
                                command_id=f"{name}:1")
                outcomes[name] = "dispatched"
            except Exception as error:  # the test looks at what happened
                outcomes[name] = error

        threads = [threading.Thread(target=dispatch, args=("east", servers[0], "water")),
                   threading.Thread(target=dispatch, args=("west", servers[1], "roads"))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)

        results = sorted(outcomes.values(), key=lambda o: o != "dispatched")
        assert results[0] == "dispatched"
        assert isinstance(results[1], ConcurrencyConflict), results[1]
        assert "changed by someone else at the same time" in str(results[1])
        winner = "water" if outcomes["east"] == "dispatched" else "roads"
        fresh = make_gridcases(clock, env=env)
        assert fresh.case(case_id).department == winner
        assert fresh.case(case_id).version == 3
        fresh.close()
    finally:
        for server in servers:
            server.close()


def test_a_stale_write_without_command_id_is_a_conflict_too(workflow, cast):
    app = workflow.app
    case_id = workflow.to("dispatched")
    stale = app.repository.get(case_id)
    workflow.handle(case_id)
    stale.suspend(reason="road closure", actor=cast.water, at=stale.modified_on)
    with pytest.raises(ConcurrencyConflict):
        app.run_command("grid-case.suspend", actor=cast.water, command_id=None,
                        args={"case_id": case_id}, decide=lambda: [stale])
    assert app.case(case_id).status is CaseStatus.HANDLED


def test_an_unknown_case_is_not_found_and_nothing_is_stored(workflow):
    before = notifications(workflow.app)
    with pytest.raises(NotFound):
        workflow.dispatch(uuid4(), department="water", command_id="d-404")
    assert notifications(workflow.app) == before
