"""Every table a site keeps beside its event stores, and every table inside an event store
(events, chain, a process recorder's tracking), is either in the disaster backup or named as
derived (rebuilt after a restore): a new table of durable state cannot be left out of the
backup unnoticed."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import psycopg
import pytest

from cityops.bootstrap import build_system
from cityops.feeds.service import FEED_STORE_FILE, build_feed_service
from cityops.ingest.composition import build_embedded_ingest, ingest_store
from cityops.ingest.replay import ReplayLedger
from cityops.ingest.settings import IngestSettings
from cityops.settings import Settings
from cityops.site import (
    BASE_STORE_FILE,
    DERIVED_STORE_TABLES,
    DERIVED_TABLES,
    DURABLE_STORES,
    DURABLE_TABLES,
    STORE_TABLES,
    open_snapshot,
    postgres_store_tables,
    sqlite_store_tables,
)


def tables_of(path: Path) -> set[str]:
    connection = sqlite3.connect(path)
    try:
        return {str(r[0]) for r in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        connection.close()


def test_every_table_beside_the_event_stores_is_backed_up_or_derived(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "site")
    system = build_system(settings)
    try:
        # Everything a site runs creates its tables: ingest, the replay ledger, the feeds.
        ingest = build_embedded_ingest(system, IngestSettings())
        ingest.start()
        ingest.stop()
        store = ingest_store(system)
        ReplayLedger(store)
        store.close()
        feeds = build_feed_service(system)
        feeds.close()
    finally:
        system.close()
    kept = {t.name for t in DURABLE_TABLES} | set(DERIVED_TABLES)
    for file in (BASE_STORE_FILE, FEED_STORE_FILE):
        unclassified = tables_of(settings.data_dir / file) - kept
        assert unclassified == set(), f"{file}: neither backed up nor derived"
    stores = {p.stem for p in settings.data_dir.glob("*.sqlite")
              if p.name not in (BASE_STORE_FILE, FEED_STORE_FILE)
              and not p.name.startswith("readmodels-g")}
    assert stores == set(DURABLE_STORES)



def build_every_table(settings: Settings) -> None:
    """Run what a site runs, so that every table of every event store is created, the
    ticket follow-up's tracking included."""
    system = build_system(settings)
    try:
        system.catch_up()
    finally:
        system.close()


def covered(names: dict[str, str]) -> dict[str, str]:
    """Each table's part in the backup or reason for being derived (unknown: left out)."""
    return {table: key for table, key in names.items()
            if key in STORE_TABLES or key in DERIVED_STORE_TABLES}


def test_every_table_inside_an_embedded_event_store_is_backed_up_or_derived(
        tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "site")
    build_every_table(settings)
    kept = covered(sqlite_store_tables())
    for store in DURABLE_STORES:
        found = {t for t in tables_of(settings.data_dir / f"{store}.sqlite")
                 if not t.startswith("sqlite_")}
        assert found - set(kept) == set(), f"{store}.sqlite: neither backed up nor derived"
    # The hotline is a process recorder: its tracking is there, and the backup reads it.
    assert "tracking" in tables_of(settings.data_dir / "hotline.sqlite")
    snapshot = open_snapshot(settings)
    try:
        backed_up = {s for s in snapshot.stores() if snapshot.tracking(s) is not None}
    finally:
        snapshot.close()
    assert backed_up == {s for s in DURABLE_STORES
                         if "tracking" in tables_of(settings.data_dir / f"{s}.sqlite")}


@pytest.mark.postgres
def test_every_table_of_a_postgres_event_store_is_backed_up_or_derived(
        test_databases: Any) -> None:
    url = test_databases.create("coverage")
    try:
        settings = Settings(database_url=url)
        build_every_table(settings)
        with psycopg.connect(url) as connection:
            tables = {str(r[0]) for r in connection.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = "
                "'public'").fetchall()}
        kept = {t.name for t in DURABLE_TABLES} | set(DERIVED_TABLES)
        for store in DURABLE_STORES:
            mine = {t for t in tables if t.startswith(f"{store}_")} - kept
            allowed = set(covered(postgres_store_tables(store)))
            assert mine - allowed == set(), f"{store}: neither backed up nor derived"
        assert "hotline_tracking" in tables
        snapshot = open_snapshot(settings)
        try:
            assert snapshot.tracking("hotline") is not None
        finally:
            snapshot.close()
    finally:
        test_databases.drop(url)
