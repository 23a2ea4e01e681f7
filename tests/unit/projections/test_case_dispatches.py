"""One row per dispatch of a grid case to a department, read from the case's state after
each event: what each department was sent and what it did with it. The rows are written
through a real SQLite read store, as the follower writes them: all events in one batch, or
one batch per event (a restart between any two events) — the rows must be the same."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from cityops.domain.commands import CommandContext
from cityops.domain.errors import InvalidValue
from cityops.domain.gridcases.commands import (
    CloseCase,
    DispatchCase,
    HandleCase,
    RegisterCase,
    ReturnCaseToCentre,
    ReviewCaseReturn,
    VerifyCase,
)
from cityops.projections.statistics import CaseDispatchTable, dispatch_row
from cityops.storage import SqliteReadStore

COLUMNS = ("case_id", "ordinal", "department", "grid_cell", "category", "stage",
           "dispatched_at", "deadline", "handled_at", "on_time", "handling_us",
           "reworks_at_dispatch", "reworks")


def project(cases: Any, case_id: UUID, path: Path, *,
            batch_every: int | None) -> list[dict[str, Any]]:
    """The dispatch rows of a case, written in batches of `batch_every` events (None: one
    batch), the way the follower evolves the aggregate and writes."""
    table = CaseDispatchTable()
    store = SqliteReadStore(path)
    with store.transaction() as txn:
        for statement in table.ddl("sqlite"):
            txn.execute(statement)
    events = list(cases.app.repository.event_store.get(case_id))
    aggregate: Any = None
    size = batch_every or len(events)
    for start in range(0, len(events), size):
        batch = table.batch()
        for event in events[start:start + size]:
            aggregate = event.mutate(aggregate)
            batch.add(event, aggregate)
        with store.transaction() as txn:
            batch.write(txn)
    with store.transaction() as txn:
        txn.execute(f"SELECT {', '.join(COLUMNS)} FROM rm_case_dispatches "
                    "ORDER BY case_id, ordinal")
        rows = [dict(zip(COLUMNS, row, strict=True)) for row in txn.fetchall()]
    store.close()
    return rows


def reworks(row: dict[str, Any]) -> int:
    return int(row["reworks"]) - int(row["reworks_at_dispatch"])


def test_a_case_not_yet_dispatched_has_no_dispatch_row(cases: Any) -> None:
    case_id = cases.report()
    cases.app.handle(RegisterCase(case_id=case_id), CommandContext(actor=cases.dispatcher))
    assert dispatch_row(cases.app.case(case_id)) is None


@pytest.mark.parametrize("batch_every", [None, 1, 2])
def test_a_case_handled_in_time_and_closed(cases: Any, tmp_path: Path,
                                           batch_every: int | None) -> None:
    case_id = cases.dispatched("water")
    cases.clock.advance(minutes=50)
    cases.app.handle(
        HandleCase(case_id=case_id, result="new cover"),
        CommandContext(actor=cases.department("water")))
    cases.clock.advance(minutes=30)
    cases.app.handle(VerifyCase(case_id=case_id, fixed=True), CommandContext(actor=cases.inspector))
    cases.app.handle(CloseCase(case_id=case_id), CommandContext(actor=cases.dispatcher))
    [row] = project(cases, case_id, tmp_path / "rm.sqlite", batch_every=batch_every)
    assert row["department"] == "water"
    assert row["stage"] == "closed"
    assert row["on_time"] == 1
    assert row["handling_us"] == 50 * 60 * 1_000_000
    assert row["grid_cell"] == cases.app.case(case_id).grid_cell
    assert reworks(row) == 0


@pytest.mark.parametrize("batch_every", [None, 1, 3])
def test_a_returned_dispatch_stays_with_the_department_that_returned_it(
    cases: Any, tmp_path: Path, batch_every: int | None
) -> None:
    case_id = cases.dispatched("water")
    cases.clock.advance(minutes=10)
    cases.app.handle(
        ReturnCaseToCentre(case_id=case_id, reason="the sewer network's cover",
                           suggested_department="sanitation"),
        CommandContext(actor=cases.department("water")))
    cases.app.handle(
        DispatchCase(case_id=case_id, department="sanitation"),
        CommandContext(actor=cases.dispatcher))
    cases.clock.advance(hours=3)  # past the two-hour limit
    cases.app.handle(
        HandleCase(case_id=case_id, result="cover replaced"),
        CommandContext(actor=cases.department("sanitation")))
    first, second = project(cases, case_id, tmp_path / "rm.sqlite", batch_every=batch_every)
    assert (first["ordinal"], first["department"], first["stage"]) == (1, "water", "returned")
    assert first["handled_at"] is None and first["on_time"] is None
    assert (second["ordinal"], second["department"], second["stage"]) == (
        2, "sanitation", "handled")
    assert second["on_time"] == 0
    assert second["handling_us"] == 3 * 3600 * 1_000_000


@pytest.mark.parametrize("batch_every", [None, 1, 4])
def test_reworks_count_in_the_dispatch_they_happened_in(
    cases: Any, tmp_path: Path, batch_every: int | None
) -> None:
    water, sanitation = cases.department("water"), cases.department("sanitation")
    case_id = cases.dispatched("water")
    cases.app.handle(
        HandleCase(case_id=case_id, result="cover placed"),
        CommandContext(actor=water))
    cases.app.handle(
        VerifyCase(case_id=case_id, fixed=False, note="the cover still rocks"),
        CommandContext(actor=cases.inspector))
    cases.app.handle(
        ReturnCaseToCentre(case_id=case_id, reason="it is a sewer cover",
                           suggested_department="sanitation"),
        CommandContext(actor=water))
    cases.app.handle(
        DispatchCase(case_id=case_id, department="sanitation"),
        CommandContext(actor=cases.dispatcher))
    cases.app.handle(
        HandleCase(case_id=case_id, result="cover fixed"),
        CommandContext(actor=sanitation))
    cases.app.handle(
        VerifyCase(case_id=case_id, fixed=False, note="wrong size"),
        CommandContext(actor=cases.inspector))
    first, second = project(cases, case_id, tmp_path / "rm.sqlite", batch_every=batch_every)
    assert (first["department"], first["stage"], reworks(first)) == ("water", "returned", 1)
    assert (second["department"], second["stage"], reworks(second)) == (
        "sanitation", "with-department", 1)
    # Back with the department after a rework: not handled until it reports again.
    assert second["handled_at"] is None and second["on_time"] is None


def test_a_dispatched_case_in_an_impossible_state_is_refused(cases: Any) -> None:
    case = cases.app.case(cases.dispatched("water"))
    case.department = None  # a state no event sequence can produce
    with pytest.raises(InvalidValue, match="no department"):
        dispatch_row(case)


@pytest.mark.parametrize("batch_every", [None, 1, 2])
def test_a_rejected_return_puts_the_dispatch_back_with_its_old_deadline(
    cases: Any, tmp_path: Path, batch_every: int | None
) -> None:
    case_id = cases.dispatched("water")  # urgent: two clock hours
    deadline = cases.app.case(case_id).handling_deadline
    cases.clock.advance(minutes=30)
    cases.app.handle(
        ReturnCaseToCentre(case_id=case_id, reason="not ours"),
        CommandContext(actor=cases.department("water")))
    cases.clock.advance(hours=1)
    cases.app.handle(
        ReviewCaseReturn(case_id=case_id, accept=False, reason="the cover is the water company's"),
        CommandContext(actor=cases.dispatcher))
    cases.clock.advance(hours=1)  # 2.5 hours after the dispatch: late
    cases.app.handle(
        HandleCase(case_id=case_id, result="cover replaced"),
        CommandContext(actor=cases.department("water")))
    [row] = project(cases, case_id, tmp_path / "rm.sqlite", batch_every=batch_every)
    assert (row["ordinal"], row["department"], row["stage"]) == (1, "water", "handled")
    assert row["deadline"] == deadline.isoformat()
    assert row["on_time"] == 0
    assert row["handling_us"] == int(2.5 * 3600 * 1_000_000)
