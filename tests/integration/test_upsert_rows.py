"""`upsert_rows`, the one write of the read models' rows: the same rows in the table whichever
way they travel (on PostgreSQL one JSON parameter for a few rows, COPY through a temporary
table for many, issue 14), on both back ends, with the values a document and its columns
hold."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from cityops.storage import (
    COPY_FROM_ROWS,
    PostgresReadStore,
    ReadStore,
    SqliteReadStore,
    json_text,
    row_document,
    upsert_rows,
)

NAMES = ("id", "version", "score", "is_open", "note", "doc")
AWKWARD_TEXT = 'tab\there, new\nline, back\\slash, quote " \', 鼓楼区, \\N, emoji \U0001f692'


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ReadStore]:
    if request.param == "sqlite":
        sqlite = SqliteReadStore(tmp_path / "rows.db")
        yield sqlite
        sqlite.close()
        return
    url: str = request.getfixturevalue("postgres_url")
    schema = f"upsert_{uuid.uuid4().hex[:10]}"
    postgres = PostgresReadStore(url, schema, 2)
    try:
        yield postgres
    finally:
        postgres.close()
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def create_table(store: ReadStore) -> None:
    doc_type = "JSONB" if store.dialect == "postgres" else "TEXT"
    with store.transaction() as txn:
        txn.execute(f"CREATE TABLE rows_written (id TEXT PRIMARY KEY, version INTEGER, "
                    f"score DOUBLE PRECISION, is_open BOOLEAN, note TEXT, "
                    f"doc {doc_type} NOT NULL)")


def row(number: int, version: int) -> list[Any]:
    doc = {"number": number, "version": version, "text": AWKWARD_TEXT,
           "nested": {"list": [1, 2.5, None, True]}, "small": 1e-05}
    return [f"item-{number}", version, number / 7 if number % 5 else None, number % 2 == 0,
            AWKWARD_TEXT if number % 3 else None, json_text(doc)]


def read_back(store: ReadStore) -> dict[str, tuple[Any, ...]]:
    with store.transaction() as txn:
        txn.execute(f"SELECT {', '.join(NAMES)} FROM rows_written")
        found = txn.fetchall()
    return {r[0]: (r[1], r[2], bool(r[3]) if r[3] is not None else None, r[4],
                   row_document(r[5])) for r in found}


def expected(rows: list[list[Any]]) -> dict[str, tuple[Any, ...]]:
    return {r[0]: (r[1], r[2], r[3], r[4], json.loads(r[5])) for r in rows}


@pytest.mark.parametrize("count", [1, COPY_FROM_ROWS - 1, COPY_FROM_ROWS, 3 * COPY_FROM_ROWS])
def test_rows_written_and_replaced_as_given(store: ReadStore, count: int) -> None:
    create_table(store)
    first = [row(n, 1) for n in range(count)]
    with store.transaction() as txn:
        upsert_rows(txn, "rows_written", NAMES, first, key=("id",))
    assert read_back(store) == expected(first)
    # Half of them again, changed, and as many new ones: replaced and added, in one
    # transaction that writes the table twice.
    changed = [row(n, 2) for n in range(count // 2, count + count // 2 + 1)]
    with store.transaction() as txn:
        upsert_rows(txn, "rows_written", NAMES, changed[:len(changed) // 2], key=("id",))
        upsert_rows(txn, "rows_written", NAMES, changed[len(changed) // 2:], key=("id",))
    assert read_back(store) == expected(first) | expected(changed)


def test_a_failed_write_leaves_nothing_behind(store: ReadStore) -> None:
    create_table(store)
    good = [row(n, 1) for n in range(COPY_FROM_ROWS)]
    bad = [*good, ["item-last", 1, None, None, None, None]]  # a document cannot be null
    with pytest.raises(Exception, match=r"(?i)null"), store.transaction() as txn:
        upsert_rows(txn, "rows_written", NAMES, bad, key=("id",))
    assert read_back(store) == {}
    with store.transaction() as txn:  # and the same write goes through afterwards
        upsert_rows(txn, "rows_written", NAMES, good, key=("id",))
    assert read_back(store) == expected(good)
