"""Closing the SQLite read store while another thread works in it (the CI run of stop 18 died
of a segmentation fault: the app's shutdown closed the connection on which a reader of the
live change log was running a statement)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from cityops.storage import SqliteReadStore


def test_closing_waits_for_a_transaction_another_thread_has_open(tmp_path: Path) -> None:
    store = SqliteReadStore(tmp_path / "readmodels.sqlite")
    with store.transaction() as txn:
        txn.execute("CREATE TABLE things (x INTEGER)")
    inside, release = threading.Event(), threading.Event()
    read: list[Any] = []

    def reader() -> None:
        with store.transaction() as txn:
            inside.set()
            release.wait(10)
            txn.execute("SELECT count(*) FROM things")
            read.append(txn.fetchone())

    reading = threading.Thread(target=reader)
    reading.start()
    assert inside.wait(10)
    closing = threading.Thread(target=store.close)
    closing.start()
    closing.join(0.5)
    assert closing.is_alive(), "closed under a transaction another thread has open"
    release.set()
    reading.join(10)
    closing.join(10)
    assert not closing.is_alive()
    assert read == [(0,)]
    # A transaction begun after the close opens a connection again.
    with store.transaction() as txn:
        txn.execute("SELECT count(*) FROM things")
        assert txn.fetchone() == (0,)
    store.close()


def test_a_thread_closing_inside_its_own_transaction_does_not_wait_for_itself(
        tmp_path: Path) -> None:
    store = SqliteReadStore(tmp_path / "readmodels.sqlite")
    closed = threading.Event()

    def close_inside() -> None:
        try:
            with store.transaction() as txn:
                txn.execute("SELECT 1")
                store.close()
                closed.set()
        except Exception:  # its own connection is gone: the COMMIT may fail, never hang
            closed.set()

    worker = threading.Thread(target=close_inside)
    worker.start()
    worker.join(10)
    assert closed.is_set() and not worker.is_alive()
