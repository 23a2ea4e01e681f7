"""Reads of the read models on PostgreSQL run outside a transaction block (issue 14): no
BEGIN and COMMIT round trips around a question; each statement sees what was committed when
it began, as it did in the READ COMMITTED transaction it replaces."""

from __future__ import annotations

from typing import Any

import pytest

from cityops.storage import PostgresReadStore

pytestmark = pytest.mark.postgres


def second_statement_alone(txn: Any) -> bool:
    """Whether a later statement is a transaction of its own (`now()` is when the transaction
    began), not part of a transaction block begun before it."""
    txn.execute("SELECT pg_sleep(0.01)")
    txn.execute("SELECT now() = statement_timestamp()")
    row = txn.fetchone()
    return bool(row[0])


def test_a_reading_runs_each_statement_on_its_own(postgres_url: str) -> None:
    store = PostgresReadStore(postgres_url, None, 1)
    try:
        with store.transaction() as txn:
            assert not second_statement_alone(txn)
        with store.reading() as txn:
            assert second_statement_alone(txn)
    finally:
        store.close()


def test_the_pool_gets_its_connection_back_as_it_lent_it(postgres_url: str) -> None:
    """A reading, also one that failed, gives the pool its connection back as the pool
    lends it (not in autocommit): a writer's statements stay one transaction."""
    store = PostgresReadStore(postgres_url, None, 1)  # one connection: the same one
    try:
        with store.reading() as txn:
            txn.execute("SELECT 1")
        with store._pool.connection() as connection:
            assert connection.autocommit is False
        with pytest.raises(Exception, match="reading_nowhere"), store.reading() as txn:
            txn.execute("SELECT * FROM reading_nowhere")
        with store._pool.connection() as connection:
            assert connection.autocommit is False
        with store.transaction() as txn:
            assert not second_statement_alone(txn)
    finally:
        store.close()
