"""The live hub of a serving process is woken by the change log's NOTIFY when a follower of
another process writes it, and after its LISTEN connection is dropped it reconnects by the
same rule as the followers' wake-up (issue 11: the hub had a LISTEN loop of its own that
retried every second for ever, with no liveness check; now one `PostgresListener`).

The hub polls every 30 s here: a change seen within a few seconds was woken."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from cityops.bootstrap import build_system
from cityops.command_center.live import LiveHub
from cityops.domain.actors import Actor, Role
from cityops.domain.commands import CommandContext
from cityops.domain.geometry import GeoPoint
from cityops.domain.gridcases.commands import ReportCase
from cityops.settings import Settings
from cityops.storage import PostgresListener

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]

POLL_S = 30.0
WOKEN_WITHIN_S = 5.0
INSPECTOR = Actor("insp-live-listen", Role.INSPECTOR)


async def eventually(check: Any, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if check():
            return True
        await asyncio.sleep(0.02)
    return bool(check())


async def test_the_hub_is_woken_by_notify_and_reconnects_like_the_followers(
        fresh_database: str, tmp_path: Path, demo_city: Any,
        caplog: pytest.LogCaptureFixture) -> None:
    def settings(name: str, *, follows: bool) -> Settings:
        return Settings(data_dir=tmp_path / name, database_url=fresh_database,
                        database_pool_size=2, run_projections=follows)

    following = build_system(settings("projections", follows=True), city=demo_city)
    serving = build_system(settings("api", follows=False), city=demo_city)
    hub = LiveHub(serving, poll_interval_s=POLL_S)
    try:
        following.start_projections()
        await hub.start()
        listener = hub.listener
        assert isinstance(listener, PostgresListener)
        assert await asyncio.to_thread(listener.listening.wait, 10)
        await asyncio.sleep(0.5)  # the first wake (on connecting) has been served

        def report(description: str) -> None:
            following.grid_cases.handle(ReportCase(
                source="inspector", category="E0101", description=description,
                location=GeoPoint(118.80, 32.05)), CommandContext(actor=INSPECTOR))

        start = hub.head
        report("Woken by NOTIFY")
        assert await eventually(lambda: hub.head > start, WOKEN_WITHIN_S), \
            "the hub did not see a change written by another process"

        caplog.set_level(logging.INFO, logger="cityops.storage")
        dropped = listener.backend_pid
        assert dropped is not None
        with psycopg.connect(fresh_database, autocommit=True) as admin:
            assert admin.execute("SELECT pg_terminate_backend(%s)",
                                 (dropped,)).fetchone() == (True,)
        assert await eventually(lambda: listener.connections == 2
                                and listener.listening.is_set(), WOKEN_WITHIN_S + 5)
        assert listener.backend_pid not in (None, dropped)
        messages = [r.getMessage() for r in caplog.records]
        assert any("live push: lost the LISTEN connection" in m for m in messages), messages
        assert any("live push: listening again" in m for m in messages), messages

        await asyncio.sleep(0.5)
        start = hub.head
        report("Woken after reconnecting")
        assert await eventually(lambda: hub.head > start, WOKEN_WITHIN_S), \
            "the hub was not woken after its listener reconnected"
    finally:
        await hub.stop()
        assert hub.listener is None
        serving.close()
        following.close()
