"""The live change log, written by a real follower (in-memory event store, SQLite read
store): one row per aggregate per batch in the batch's own transaction, positions in commit
order, the filter values before and after, light changes written once whoever tells them,
and retention that keeps every resumable position resumable."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cityops.domain.catalogue import Catalogue
from cityops.domain.commands import CommandContext
from cityops.domain.geometry import GeoPoint
from cityops.domain.gridcases.commands import ReturnCaseToCentre
from cityops.projections.follower import Follower
from cityops.projections.live_changes import (
    ROWS_PER_INSERT,
    LiveChangeLog,
    light_change_writer,
)
from cityops.projections.supervision_clock import SupervisionClock
from cityops.projections.views import grid_case_table
from cityops.storage import SqliteReadStore


class Log:
    """A follower of an in-memory grid-case application writing rows and change log."""

    def __init__(self, cases: Any, catalogue: Catalogue, path: Path) -> None:
        self.cases = cases
        self.store = SqliteReadStore(path)
        self.follower = Follower("test-views", cases.app, [grid_case_table(catalogue)],
                                 self.store)
        self.follower.create_tables()
        self.log = LiveChangeLog(retention=timedelta(minutes=60))
        self.log.create(self.store)
        self.follower.live = self.log

    def rows(self) -> list[Any]:
        return LiveChangeLog.read(self.store, 0)

    def read_model_doc(self, case_id: Any) -> dict[str, Any]:
        with self.store.transaction() as txn:
            txn.execute("SELECT doc FROM rm_grid_cases WHERE id = %s", (str(case_id),))
            row = txn.fetchone()
        assert row is not None
        doc: dict[str, Any] = json.loads(row[0])
        return doc


@pytest.fixture
def logged(cases: Any, catalogue: Catalogue, tmp_path: Path) -> Iterator[Log]:
    log = Log(cases, catalogue, tmp_path / "rm.sqlite")
    yield log
    log.store.close()


def test_one_row_per_aggregate_per_batch_with_the_batchs_events(logged: Log) -> None:
    first = logged.cases.dispatched("water")  # reported, registered, dispatched
    second = logged.cases.report()
    logged.follower.catch_up()
    rows = logged.rows()
    assert [(r.item_id, r.events) for r in rows] == [
        (str(first), ["Reported", "Registered", "Dispatched"]), (str(second), ["Reported"])]
    assert [r.seq for r in rows] == [1, 2]
    doc = logged.read_model_doc(first)
    assert rows[0].doc == {**doc, "light": "green"}
    assert rows[0].values.department == "water" and rows[0].values.light == "green"
    assert rows[0].values.category == "C0101"
    assert rows[0].geometry == {"type": "Point", "coordinates": [doc["location"][
        "coordinates"][0], doc["location"]["coordinates"][1]]}
    assert rows[0].previous is None  # new to the read models

    logged.cases.app.handle(
        ReturnCaseToCentre(case_id=first, reason="not ours"),
        CommandContext(actor=logged.cases.department("water")))
    logged.follower.catch_up()
    returned = logged.rows()[-1]
    assert returned.seq == 3 and returned.events == ["ReturnedToCentre"]
    assert returned.previous is not None and returned.previous.department == "water"


def test_a_batch_of_many_aggregates_writes_a_row_each_in_order(logged: Log) -> None:
    """More rows than one INSERT takes (ROWS_PER_INSERT): every one, numbered in order."""
    reported = [logged.cases.report(location=GeoPoint(121.4005 + 0.0007 * k, 31.2005))
                for k in range(2 * ROWS_PER_INSERT + 5)]
    assert logged.follower.process_batch() == len(reported)  # one batch
    rows = logged.rows()
    assert [r.item_id for r in rows] == [str(case) for case in reported]
    assert [r.seq for r in rows] == list(range(1, len(reported) + 1))
    assert all(r.events == ["Reported"] for r in rows)


def test_a_failed_batch_leaves_no_change_row(logged: Log) -> None:
    logged.cases.report()
    # The batch fails after its rows and change rows are written: at its position.
    with logged.store.transaction() as txn:
        txn.execute("CREATE TRIGGER refuse_position BEFORE UPDATE ON projection_positions "
                    "BEGIN SELECT RAISE(ABORT, 'position refused'); END")
    with pytest.raises(Exception, match="position refused"):
        logged.follower.process_batch()
    assert logged.rows() == []
    with logged.store.transaction() as txn:
        txn.execute("SELECT count(*) FROM rm_grid_cases")
        assert txn.fetchone() == (0,)
        txn.execute("DROP TRIGGER refuse_position")
    logged.follower.reset()
    logged.follower.catch_up()
    assert len(logged.rows()) == 1


def test_a_follower_that_is_not_live_writes_no_change_rows(logged: Log) -> None:
    logged.follower.live = None  # as a rebuild's follower
    logged.cases.report()
    logged.follower.catch_up()
    assert logged.rows() == []


def test_a_light_change_is_written_once_whichever_process_tells_it(
        logged: Log, catalogue: Catalogue) -> None:
    case_id = logged.cases.dispatched("water")
    logged.follower.catch_up()
    # Two processes following the same read models, each with its clock and its writer.
    clocks = []
    for _ in range(2):
        listeners: list[Any] = []
        listeners.append(light_change_writer(LiveChangeLog(), lambda: logged.store))
        clock = SupervisionClock(lambda: logged.store, logged.cases.clock, listeners,
                                 projection="test-views")
        clock.rescan()
        clocks.append(clock)
    with logged.store.transaction() as txn:
        txn.execute("SELECT yellow_at FROM rm_grid_cases WHERE id = %s", (str(case_id),))
        row = txn.fetchone()
    assert row is not None
    logged.cases.clock.now = datetime.fromisoformat(row[0])
    for clock in clocks:
        assert [c.light for c in clock.check()] == ["yellow"]
    lights = [r for r in logged.rows() if r.events == ["LightChanged"]]
    assert len(lights) == 1
    [light] = lights
    assert light.item_id == str(case_id) and light.values.light == "yellow"
    assert light.doc is not None and light.doc["light"] == "yellow"
    assert light.previous is not None and light.previous.light == "green"


def test_retention_prunes_a_prefix_and_positions_stay_resumable(logged: Log) -> None:
    for _ in range(5):
        logged.cases.report()
        logged.follower.catch_up()
    assert [r.seq for r in logged.rows()] == [1, 2, 3, 4, 5]
    old = (datetime.now(UTC) - timedelta(hours=2)).isoformat()
    with logged.store.transaction() as txn:
        txn.execute("UPDATE live_changes SET recorded_at = %s WHERE seq <= 3", (old,))
        logged.log.prune(txn)
    # Rows older than the retention go, but the newest of them stays as the boundary.
    assert [r.seq for r in logged.rows()] == [3, 4, 5]
    bounds = LiveChangeLog.bounds(logged.store)
    assert bounds == (3, 5)
    assert [p for p in range(7) if LiveChangeLog.resumable(bounds, p)] == [2, 3, 4, 5]
    assert LiveChangeLog.resumable((0, 0), 0)
    assert not LiveChangeLog.resumable((0, 0), 1)


def test_the_log_is_pruned_in_the_followers_normal_work(logged: Log) -> None:
    for _ in range(2):
        logged.cases.report()
        logged.follower.catch_up()
    old = (datetime.now(UTC) - timedelta(hours=2)).isoformat()
    with logged.store.transaction() as txn:
        txn.execute("UPDATE live_changes SET recorded_at = %s", (old,))
    logged.log._pruned_at = float("-inf")  # the last prune was long ago
    logged.cases.report()
    logged.follower.catch_up()
    assert [r.seq for r in logged.rows()] == [2, 3]
