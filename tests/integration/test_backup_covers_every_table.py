"""Every table a site keeps beside its event stores is either in the disaster backup or
named as derived (rebuilt after a restore): a new table of durable state cannot be left out
of the backup unnoticed."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from cityops.bootstrap import build_system
from cityops.feeds.service import FEED_STORE_FILE, build_feed_service
from cityops.ingest.composition import build_embedded_ingest, ingest_store
from cityops.ingest.replay import ReplayLedger
from cityops.ingest.settings import IngestSettings
from cityops.settings import Settings
from cityops.site import BASE_STORE_FILE, DERIVED_TABLES, DURABLE_STORES, DURABLE_TABLES


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
