"""Documents read from PostgreSQL are decoded by the read store's one JSON decoder
(`cityops.storage.json_value`, orjson; issue 14), with the standard decoder's values."""

from __future__ import annotations

import json

import pytest
from psycopg.pq import Format

from cityops.storage import PostgresReadStore, json_value

pytestmark = pytest.mark.postgres


def test_the_read_store_decodes_json_and_jsonb_with_the_one_decoder(postgres_url: str) -> None:
    store = PostgresReadStore(postgres_url, None, 1)
    document = {"id": "case-1", "big": 123456789012345678901234567890, "text": "东城 ✓",
                "nested": {"points": [[118.78, 32.04]], "light": None, "ok": True}}
    try:
        with store.transaction() as txn:
            txn.execute("SELECT %s::jsonb, %s::json", (json.dumps(document),) * 2)
            row = txn.fetchone()
        assert row is not None and row[0] == document and row[1] == document
        with store._pool.connection() as connection:
            for name in ("json", "jsonb"):
                oid = connection.adapters.types[name].oid
                loader = connection.adapters.get_loader(oid, Format.TEXT)
                assert loader._loads is json_value, name  # type: ignore[attr-defined]
    finally:
        store.close()
