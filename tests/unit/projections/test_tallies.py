"""Tallies kept with the rows (projections/tallies.py), on the embedded store: the figures
they give equal those counted from every row, whatever the writes, at the instants where
the figures turn."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cityops.projections.hotline import ticket_table
from cityops.projections.returns import ticket_return_table
from cityops.projections.statistics import TICKET_TALLY, CityStatistics
from cityops.projections.tables import utc_text
from cityops.storage import SqliteReadStore

START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
COLUMNS = ("id", "status", "department", "is_open", "reply_deadline", "replied_at",
           "replied_on_time", "satisfaction", "doc")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteReadStore]:
    store = SqliteReadStore(tmp_path / "tallies.sqlite")
    with store.transaction() as txn:
        for statement in [*ticket_table().ddl("sqlite"), *ticket_return_table().ddl("sqlite")]:
            txn.execute(statement)
    yield store
    store.close()


def write(store: SqliteReadStore, rows: list[tuple[Any, ...]]) -> None:
    """Rows written as the projection writes them: the tally counts them before and after."""
    with store.transaction() as txn:
        change = TICKET_TALLY.before_write(txn, [row[0] for row in rows])
        txn.executemany(
            f"INSERT INTO rm_tickets ({', '.join(COLUMNS)}) "
            f"VALUES ({', '.join(['%s'] * len(COLUMNS))}) ON CONFLICT (id) DO UPDATE SET "
            + ", ".join(f"{c} = excluded.{c}" for c in COLUMNS[1:]), rows)
        change.after_write(txn)


def ticket(rng: random.Random, number: int) -> tuple[Any, ...]:
    status = rng.choice(["assigned", "assigned", "replied", "closed", "merged"])
    is_open = status in ("assigned", "replied")
    replied = status in ("replied", "closed") or (status == "merged" and rng.random() < 0.3)
    # Deadlines on whole seconds and with microseconds, some in one hour.
    deadline = START + timedelta(minutes=rng.randrange(0, 180),
                                 microseconds=rng.choice([0, 0, 250_000]))
    return (f"t{number}", status, rng.choice(["parks", "water", None]), is_open,
            utc_text(deadline), utc_text(deadline - timedelta(minutes=5)) if replied else None,
            rng.choice([True, False]) if replied else None,
            rng.choice(["satisfied", "dissatisfied", None]) if replied else None, "{}")


def test_the_hotline_figures_of_the_tally_are_those_counted_from_the_rows(
        store: SqliteReadStore) -> None:
    rng = random.Random(14)
    for _ in range(30):
        write(store, [ticket(rng, rng.randrange(40)) for _ in range(rng.randrange(1, 6))])
    with store.transaction() as txn:
        txn.execute("SELECT reply_deadline FROM rm_tickets")
        deadlines = [datetime.fromisoformat(row[0]) for row in txn.fetchall()]
    moments = [START - timedelta(hours=1), START + timedelta(hours=4)]
    for deadline in rng.sample(deadlines, 10):
        moments += [deadline - timedelta(microseconds=1), deadline,
                    deadline + timedelta(microseconds=1)]
    tallied, counted = CityStatistics(store), CityStatistics(store, tallied=False)
    for now in moments:
        assert tallied.hotline_departments(now) == counted.hotline_departments(now), now


def test_a_department_with_merged_tickets_only_has_no_hotline_figures(
        store: SqliteReadStore) -> None:
    """Merged duplicates are not counted: a department whose only ticket was merged is not
    in the figures (the tally listed it, with zeros; found in review)."""
    deadline = utc_text(START)
    write(store, [("t1", "merged", "parks", False, deadline, None, None, None, "{}"),
                  ("t2", "assigned", "water", True, deadline, None, None, None, "{}")])
    now = START + timedelta(hours=1)
    figures = CityStatistics(store).hotline_departments(now)
    assert figures == CityStatistics(store, tallied=False).hotline_departments(now)
    assert set(figures) == {"water"}
    assert figures["water"].overdue_unreplied == 1


def test_a_tally_sums_figures_of_its_groups_in_the_database(store: SqliteReadStore) -> None:
    """Issue 14: a question gets a row per key it asks about (`Tally.summed`), not a group
    per open case and cell; the sums equal those of the groups read one by one, the rows
    of now's hour included."""
    rng = random.Random(5)
    for _ in range(20):
        write(store, [ticket(rng, rng.randrange(40)) for _ in range(rng.randrange(1, 6))])
    figures = ("rows", "CASE WHEN is_open = 'yes' AND reply_deadline = -1 THEN rows ELSE 0 END")
    overdue_seen = 0
    for now in (START + timedelta(minutes=30), START + timedelta(hours=2, minutes=5),
                START + timedelta(hours=4)):
        with store.transaction() as txn:
            groups = TICKET_TALLY.read(txn, utc_text(now))
            by_department = TICKET_TALLY.summed(txn, utc_text(now), figures, ("department",))
            in_all = TICKET_TALLY.summed(txn, utc_text(now), figures)
        expected: dict[tuple[str, ...], list[int]] = {}
        for group in groups:
            sums = expected.setdefault((group.values["department"],), [0, 0])
            sums[0] += group.rows
            overdue = group.values["is_open"] == "yes" and group.when["reply_deadline"] == -1
            sums[1] += group.rows if overdue else 0
        assert by_department == expected
        assert in_all == {(): [sum(s[0] for s in expected.values()),
                               sum(s[1] for s in expected.values())]}
        overdue_seen += sum(s[1] for s in expected.values())
    assert overdue_seen
    with store.transaction() as txn, pytest.raises(ValueError, match="no group grid_cell"):
        TICKET_TALLY.summed(txn, utc_text(START), ["rows"], ("grid_cell",))
