"""Commands from outside carry a client-supplied id: a repeated command changes nothing and
answers the same; an id reused for something else is refused; and two people changing the
same case at the same time cannot both win (the loser gets a clear conflict to retry).
"""

from __future__ import annotations

import threading
from datetime import timedelta
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import OperationalError

from cityops.domain.application import (
    MAX_COMMAND_ID_LENGTH,
    CommandBatch,
    CommandOutcome,
    CommandReceipt,
    StagingOverlap,
)
from cityops.domain.commands import CommandContext
from cityops.domain.errors import (
    CommandIdReused,
    ConcurrencyConflict,
    IllegalTransition,
    InvalidValue,
    NotFound,
)
from cityops.domain.gridcases.application import GridCases
from cityops.domain.gridcases.case import CaseStatus, GridCase
from cityops.domain.gridcases.commands import DispatchCase, RegisterCase, ReportCase, SuspendCase

# Each command in a state where it is legal (the same table as the lifecycle tests).
LEGAL_IN = {
    "register": "reported", "reject": "reported", "dispatch": "registered",
    "return_to_centre": "dispatched", "request_extension": "dispatched",
    "approve_extension": "extension-requested", "refuse_extension": "extension-requested",
    "suspend": "dispatched", "resume": "suspended", "handle": "dispatched",
    "verify": "handled", "order_rework": "handled", "close_case": "verified",
    "request_suspension": "dispatched", "approve_suspension": "suspension-requested",
    "refuse_suspension": "suspension-requested", "reject_return": "returned",
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


def test_a_command_that_decides_nothing_is_a_programming_error(workflow, cast, monkeypatch):
    case_id = workflow.report()
    monkeypatch.setattr(workflow.app, "register", lambda command, uow: [])
    with pytest.raises(AssertionError, match="decided nothing"):
        workflow.app.handle(RegisterCase(case_id=case_id), CommandContext(actor=cast.dispatcher))


# --- optimistic concurrency ---------------------------------------------------------------


def test_two_dispatchers_change_the_same_case_and_the_second_must_retry(workflow, cast, clock,
                                                                       monkeypatch):
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

    # The second decided on the case as they had it open: saving it conflicts.
    monkeypatch.setattr(app, "dispatch", lambda command, uow: [theirs])
    with pytest.raises(ConcurrencyConflict) as error:
        app.handle(DispatchCase(case_id=case_id, department="roads"),
                   CommandContext(actor=cast.admin, command_id="admin:1"))
    monkeypatch.undo()
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

    def decide_while_the_twin_wins(command, uow) -> list[GridCase]:
        stale = app.case(case_id)
        # The same command, sent twice by a client, is saved by another worker meanwhile
        # (with the real handler).
        del app.dispatch
        workflow.dispatch(case_id, department="water", command_id="twin-1")
        deadline = stale.stage.deadline + timedelta(hours=8)
        stale.dispatch(department="water", deadline=deadline, limit_unit=stale.stage.unit,
                       instructions="", actor=cast.dispatcher, at=stale.modified_on)
        return [stale]

    app.dispatch = decide_while_the_twin_wins
    answer = app.handle(DispatchCase(case_id=case_id, department="water"),
                        CommandContext(actor=cast.dispatcher, command_id="twin-1"))
    assert answer == CommandOutcome("grid-case.dispatch", case_id, repeated=True)
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
        case_id = servers[0].handle(
            ReportCase(source="inspector", category="C0101", description="cover missing",
                       location=places.in_d01),
            CommandContext(actor=cast.inspector)).subject
        servers[1].handle(RegisterCase(case_id=case_id), CommandContext(actor=cast.dispatcher))

        both_have_read = threading.Barrier(2, timeout=10)
        for server in servers:
            load = server.load_for

            def load_then_wait(cls, aggregate_id: UUID, batch, load=load) -> GridCase:
                case = load(cls, aggregate_id, batch)
                both_have_read.wait()
                return case

            server.load_for = load_then_wait  # type: ignore[method-assign]

        outcomes: dict[str, object] = {}

        def dispatch(name: str, server, department: str) -> None:
            try:
                server.handle(
                    DispatchCase(case_id=case_id, department=department),
                    CommandContext(actor=cast.dispatcher, command_id=f"{name}:1"))
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


def test_a_stale_write_without_command_id_is_a_conflict_too(workflow, cast, monkeypatch):
    app = workflow.app
    case_id = workflow.to("dispatched")
    stale = app.repository.get(case_id)
    workflow.handle(case_id)
    stale.suspend(reason="road closure", actor=cast.dispatcher, at=stale.modified_on)
    monkeypatch.setattr(app, "suspend", lambda command, uow: [stale])
    with pytest.raises(ConcurrencyConflict):
        app.handle(SuspendCase(case_id=case_id, reason="road closure"),
                   CommandContext(actor=cast.dispatcher))
    assert app.case(case_id).status is CaseStatus.HANDLED


def test_an_unknown_case_is_not_found_and_nothing_is_stored(workflow):
    before = notifications(workflow.app)
    with pytest.raises(NotFound):
        workflow.dispatch(uuid4(), department="water", command_id="d-404")
    assert notifications(workflow.app) == before


# --- receipts are read only when something goes wrong --------------------------------------


def test_an_id_reused_for_a_command_that_is_now_refused_is_reported_as_reused(workflow):
    case_id = workflow.to("registered")
    workflow.dispatch(case_id, department="water", command_id="desk-9:1")
    # Registering again is illegal now (the case is dispatched): the receipt says why the id
    # cannot be used, not the case's state.
    with pytest.raises(CommandIdReused, match=r"already used for grid-case\.dispatch"):
        workflow.register(case_id, command_id="desk-9:1")


def test_a_report_onto_a_case_id_already_taken_says_it_was_already_reported(workflow):
    taken = uuid4()
    workflow.report(case_id=taken, command_id="ticket-to-case:1")
    stored = notifications(workflow.app)
    for command_id in ("ticket-to-case:2", None):
        with pytest.raises(IllegalTransition, match="it was already reported"):
            workflow.report(case_id=taken, command_id=command_id)
    assert notifications(workflow.app) == stored


def test_a_caller_learns_from_the_command_itself_whether_it_was_a_repeat(workflow, cast,
                                                                         places):
    report = ReportCase(category="C0101", description="cover missing", location=places.in_d01)
    context = CommandContext(actor=cast.inspector, command_id="tablet-1:7")
    first = workflow.app.handle(report, context)
    again = workflow.app.handle(report, context)
    assert first == CommandOutcome("grid-case.report", first.subject, repeated=False)
    assert again == CommandOutcome("grid-case.report", first.subject, repeated=True)


# --- batches: many independent commands, one save -------------------------------------------


class CountingGridCases(GridCases):
    """The grid-case application whose store refuses the first `failures` saves (as a
    database restarting does), counting the events of each save that went through."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.failures = 0
        self.saves: list[int] = []

    def _record(self, processing_event):
        # Where a save reaches the store: after the aggregates' pending events are taken.
        if self.failures > 0:
            self.failures -= 1
            raise OperationalError("server closed the connection unexpectedly")
        recordings = super()._record(processing_event)
        self.saves.append(len(recordings))
        return recordings


@pytest.fixture
def counted(workflow, catalogue, locator, open_reports, clock, cast):
    """A `Workflow` over a `CountingGridCases`."""
    app = CountingGridCases({"PERSISTENCE_MODULE": "eventsourcing.popo"}, catalogue=catalogue,
                            locator=locator, open_reports=open_reports, clock=clock)
    yield type(workflow)(app, clock, cast)
    app.close()


def test_a_batch_decides_each_command_at_once_and_saves_them_in_one_go(counted):
    batch: CommandBatch[str] = CommandBatch()
    ids = [batch.stage(f"message-{i}",
                       lambda i=i: counted.report(command_id=f"batch:{i}", batch=batch))
           for i in range(3)]
    assert notifications(counted.app) == []  # decided, not saved yet
    assert len(batch) == 3 and "message-1" in batch
    assert batch.commit() == []
    assert counted.app.saves == [6]  # three cases and three receipts, in one save
    assert [counted.case(i).status for i in ids] == [CaseStatus.REPORTED] * 3
    assert len(batch) == 0


def test_a_refused_command_in_a_batch_is_refused_alone(counted):
    batch: CommandBatch[str] = CommandBatch()
    good = batch.stage("good", lambda: counted.report(batch=batch, command_id="r-good"))
    with pytest.raises(NotFound):
        batch.stage("ghost", lambda: counted.dispatch(uuid4(), department="water",
                                                      command_id="d-ghost", batch=batch))
    assert "ghost" not in batch
    assert batch.commit() == []
    assert counted.case(good).status is CaseStatus.REPORTED
    assert receipts(counted.app) == 1


def test_a_command_on_what_the_batch_holds_unsaved_builds_on_it_in_the_same_save(
        counted, clock):
    case_id = counted.report()
    batch: CommandBatch[str] = CommandBatch()
    batch.stage("register", lambda: counted.register(case_id, command_id="reg-1", batch=batch))
    clock.advance(minutes=5)
    # Dispatching needs the registered case, which is not saved yet: it is decided on the
    # state the batch holds (as it would be after that was saved), not on the saved one.
    batch.stage("dispatch", lambda: counted.dispatch(case_id, department="water",
                                                     command_id="dis-1", batch=batch))
    # The same command id again would read a receipt the batch holds: sent back untouched.
    with pytest.raises(StagingOverlap):
        batch.stage("register again",
                    lambda: counted.register(case_id, command_id="reg-1", batch=batch))
    assert len(batch) == 2
    assert batch.commit() == []
    assert counted.case(case_id).status is CaseStatus.DISPATCHED
    assert counted.app.saves == [1, 4]  # both commands and both receipts in one save
    assert counted.register(case_id, command_id="reg-1") == case_id  # a repeat now


def test_units_built_on_each_other_are_all_sent_back_when_their_save_conflicts(
        counted, clock):
    case_id = counted.report()
    batch: CommandBatch[str] = CommandBatch()
    batch.stage("register", lambda: counted.register(case_id, command_id="reg-2", batch=batch))
    batch.stage("dispatch", lambda: counted.dispatch(case_id, department="water",
                                                     command_id="dis-2", batch=batch))
    # Another process registers the case meanwhile: the batch's save conflicts, and both
    # units (the second built on the first's unsaved state) are sent back, nothing saved.
    counted.register(case_id, command_id="elsewhere")
    assert batch.commit() == ["register", "dispatch"]
    assert receipts(counted.app) == 1  # the other process's only


def test_a_unit_of_a_batch_runs_one_command(counted):
    batch: CommandBatch[str] = CommandBatch()
    with pytest.raises(StagingOverlap, match="runs one command"):
        batch.stage("two", lambda: (counted.report(batch=batch), counted.report(batch=batch)))
    assert len(batch) == 0
    assert batch.commit() == []
    assert notifications(counted.app) == []


def test_a_conflicting_batch_saves_nothing_and_its_commands_get_their_own_answers(counted):
    earlier = counted.report(command_id="r-1")
    batch: CommandBatch[str] = CommandBatch()
    batch.stage("new", lambda: counted.report(command_id="r-2", description="a new one",
                                              batch=batch))
    # A redelivered report: decided again (nothing is looked up first), so its case and
    # receipt conflict on save, and the batch's save with them.
    batch.stage("repeat", lambda: counted.report(batch=batch, command_id="r-1"))
    assert batch.commit() == ["new", "repeat"]
    assert receipts(counted.app) == 1
    # Run again one by one, as the batch's owner does: each gets its exact answer.
    new = counted.report(command_id="r-2", description="a new one")
    assert counted.report(command_id="r-1") == earlier
    assert counted.case(new).description == "a new one"
    assert receipts(counted.app) == 2
    assert counted.app.saves == [2, 2]


def test_a_batch_commit_that_fails_for_a_while_saves_everything_when_called_again(counted):
    batch: CommandBatch[str] = CommandBatch()
    ids = [batch.stage(f"m{i}", lambda i=i: counted.report(batch=batch, command_id=f"flaky:{i}"))
           for i in range(2)]
    counted.app.failures = 1
    with pytest.raises(OperationalError):
        batch.commit()
    assert notifications(counted.app) == []
    assert batch.commit() == []
    assert counted.app.saves == [4]
    assert [counted.case(i).status for i in ids] == [CaseStatus.REPORTED] * 2


def test_what_a_handler_defers_to_the_save_waits_for_the_batch_commit(counted, monkeypatch):
    told: list[str] = []
    report = counted.app.report

    def report_and_tell(command, uow):
        uow.after_saved(lambda: told.append(command.description))
        return report(command, uow)

    monkeypatch.setattr(counted.app, "report", report_and_tell)
    batch: CommandBatch[str] = CommandBatch()
    batch.stage("m", lambda: counted.report(description="staged", command_id="t-1",
                                            batch=batch))
    assert told == []
    assert batch.commit() == []
    assert told == ["staged"]
    counted.report(description="alone", command_id="t-2")  # no batch: told once saved
    assert told == ["staged", "alone"]
