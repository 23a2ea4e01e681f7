"""One row per return of a case or ticket, with the centre's review of it, read from the
aggregate's own list of returns and written through a real SQLite read store in batches of
any size (a restart between any two events): the rows, and the figures per department
counted from them, must be the same."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from cityops.domain.commands import CommandContext
from cityops.domain.gridcases.commands import ReturnCaseToCentre, ReviewCaseReturn
from cityops.projections.returns import (
    CASE_RETURNS_TABLE,
    RETURN_COLUMNS,
    ReturnFigures,
    case_return_table,
    return_figures,
)
from cityops.storage import SqliteReadStore


def project(cases: Any, case_ids: list[UUID], path: Path,
            batch_every: int | None) -> tuple[list[tuple[Any, ...]], dict[str, ReturnFigures]]:
    table = case_return_table()
    store = SqliteReadStore(path)
    with store.transaction() as txn:
        for statement in table.ddl("sqlite"):
            txn.execute(statement)
    events = sorted((e for i in case_ids for e in cases.app.repository.event_store.get(i)),
                    key=lambda e: e.timestamp)
    aggregates: dict[UUID, Any] = {}
    size = batch_every or len(events)
    for start in range(0, len(events), size):
        batch = table.batch()
        for event in events[start:start + size]:
            aggregates[event.originator_id] = event.mutate(aggregates.get(event.originator_id))
            batch.add(event, aggregates[event.originator_id])
        with store.transaction() as txn:
            batch.write(txn)
    with store.transaction() as txn:
        txn.execute(f"SELECT {', '.join(RETURN_COLUMNS)} FROM {CASE_RETURNS_TABLE} "
                    "ORDER BY returned_at")
        rows = txn.fetchall()
        figures = return_figures(txn, CASE_RETURNS_TABLE)
    store.close()
    return rows, figures


@pytest.mark.parametrize("batch_every", [None, 1, 2, 5])
def test_each_return_is_counted_against_the_department_that_made_it(
        cases: Any, tmp_path: Path, batch_every: int | None) -> None:
    water, dispatcher = cases.department("water"), cases.dispatcher
    disputed = cases.dispatched("water")
    agreed = cases.dispatched("water")
    waiting = cases.dispatched("roads")
    for case_id in (disputed, agreed):
        cases.clock.advance(minutes=10)
        cases.app.handle(
            ReturnCaseToCentre(case_id=case_id, reason="not ours"),
            CommandContext(actor=water))
    cases.clock.advance(minutes=10)
    cases.app.handle(
        ReviewCaseReturn(case_id=disputed, accept=False, reason="yours"),
        CommandContext(actor=dispatcher))
    cases.app.handle(
        ReviewCaseReturn(case_id=agreed, accept=True, department="sanitation"),
        CommandContext(actor=dispatcher))
    cases.clock.advance(minutes=10)
    cases.app.handle(
        ReturnCaseToCentre(case_id=disputed, reason="still not ours"),
        CommandContext(actor=water))
    cases.app.handle(
        ReturnCaseToCentre(case_id=waiting, reason="not ours"),
        CommandContext(actor=cases.department("roads")))

    rows, figures = project(cases, [disputed, agreed, waiting], tmp_path / "rm.sqlite",
                            batch_every)
    assert [(r[0], r[1], r[2], r[4]) for r in rows] == [
        (str(disputed), 1, "water", "rejected"),
        (str(agreed), 1, "water", "accepted"),
        (str(disputed), 2, "water", "awaiting-review"),
        (str(waiting), 1, "roads", "awaiting-review"),
    ]
    assert figures == {
        "water": ReturnFigures(returns_made=3, returns_awaiting_review=1, returns_accepted=1,
                               returns_rejected=1),
        "roads": ReturnFigures(returns_made=1, returns_awaiting_review=1),
    }
    assert figures["water"].returns_reviewed == 2
    assert figures["water"].dispute_rate == 0.5
    assert figures["roads"].dispute_rate is None
