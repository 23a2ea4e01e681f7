"""Several server processes on one PostgreSQL database, as production runs them: one follows
the event stores, the other (CITYOPS_RUN_PROJECTIONS=false) only serves; a WebSocket client
on each sees every change, whichever process the command went to."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from cityops.bootstrap import build_system
from cityops.command_center.auth import Authenticator
from cityops.domain.accounts.commands import AddUser
from cityops.domain.commands import CommandContext
from cityops.settings import Settings

from .conftest import ADMIN, TEST_HASHER, free_port, open_session

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


@contextmanager
def serving(database_url: str, tmp_path: Path, *envs: dict[str, str]) -> Iterator[list[str]]:
    """`cityops serve` processes (one per environment), all started at the same instant
    (as a deployment starts them: their start-ups take turns on the database); yields their
    base URLs once every one answers."""
    processes: list[subprocess.Popen[bytes]] = []
    started: list[tuple[subprocess.Popen[bytes], int, Path]] = []
    bases = []
    try:
        for extra in envs:
            port = free_port()
            log_path = tmp_path / f"serve-{port}.log"
            env = {**os.environ, "CITYOPS_DATABASE_URL": database_url,
                   "CITYOPS_DATA_DIR": str(tmp_path / "unused"),
                   "CITYOPS_DATABASE_POOL_SIZE": "2", **extra}
            with log_path.open("w") as log:
                process = subprocess.Popen(
                    [sys.executable, "-m", "cityops.cli", "serve", "--port", str(port)],
                    env=env, stdout=log, stderr=subprocess.STDOUT)
            processes.append(process)
            started.append((process, port, log_path))
        for process, port, log_path in started:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("cityops serve did not start:\n" + log_path.read_text())
                time.sleep(0.1)
            bases.append(base)
        yield bases
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=20)


async def test_a_client_on_each_of_two_server_processes_sees_every_change(
        fresh_database: str, tmp_path: Path, demo_city: Any) -> None:
    settings = Settings(database_url=fresh_database, data_dir=tmp_path / "unused",
                        run_projections=False, database_pool_size=2)
    system = build_system(settings, city=demo_city)
    system.accounts.hasher = TEST_HASHER
    system.accounts.handle(
        AddUser(username="disp-pg", role="dispatcher", password="live-password-1"),
        CommandContext(actor=ADMIN))
    # The inspector who patrols where the reports are made (elsewhere they are marked).
    system.accounts.handle(
        AddUser(username="insp-D03-07", role="inspector", password="live-password-1"),
        CommandContext(actor=ADMIN))
    auth = Authenticator(system.accounts, settings.token_secret(),
                         ttl_minutes=60)
    dispatcher, inspector = auth.issue_token("disp-pg"), auth.issue_token("insp-D03-07")
    try:
        with serving(fresh_database, tmp_path, {},
                     {"CITYOPS_RUN_PROJECTIONS": "false"}) as (following, only_serving):
            clients = [await open_session(base.replace("http", "ws") + "/ws", dispatcher,
                                          layers=["grid-cases"])
                       for base in (following, only_serving)]
            for client in clients:
                await client.next_of("snapshot")
            reported = []
            async with httpx.AsyncClient(timeout=10) as http:
                for number, base in enumerate((only_serving, following, only_serving)):
                    answer = await http.post(
                        f"{base}/grid-cases",
                        json={"category": "E0101", "description": f"report {number}",
                              "location": {"type": "Point", "coordinates": [118.80, 32.05]}},
                        headers={"Authorization": f"Bearer {inspector}",
                                 "Idempotency-Key": f"live-pg-{number}"})
                    assert answer.status_code == 201, answer.text
                    reported.append(answer.json()["id"])
            for client in clients:
                last = await client.until(
                    lambda m: m["type"] == "change" and m["id"] == reported[-1], 20)
                assert last["events"] == ["Reported"]
                ids = [c["id"] for c in client.changes()]
                assert sorted(ids) == sorted(reported) and len(set(ids)) == 3
                seen = [c["position"] for c in client.changes()]
                assert seen == sorted(seen)
            # Both processes push the same positions: there is one log.
            assert [c["position"] for c in clients[0].changes()] == \
                [c["position"] for c in clients[1].changes()]
            for client in clients:
                await client.close()
    finally:
        system.close()


def test_concurrent_writers_never_let_a_tailer_skip_a_late_committing_row(
        fresh_database: str) -> None:
    """Writers that hold their transaction open a moment after drawing their numbers: a
    tailer reading `seq > last` must still see every row (the table lock makes numbers
    commit in order)."""
    import random
    import threading

    from cityops.projections.live_changes import FilterValues, LiveChangeLog
    from cityops.storage import PostgresReadStore

    store = PostgresReadStore(fresh_database, "live_race", pool_size=4)
    log = LiveChangeLog(channel="cityops_live_race")
    log.create(store)
    writing = threading.Event()
    writing.set()

    def write(name: str) -> None:
        for number in range(60):
            with store.transaction() as txn:
                log.insert(txn, [log.row("presence", f"{name}-{number}", ["Viewing"], "t", "t",
                                         None, FilterValues(), None, None)], "postgres")
                time.sleep(random.uniform(0, 0.004))

    seen: set[int] = set()

    def tail() -> None:
        last = 0
        while writing.is_set():
            for row in LiveChangeLog.read(store, last):
                seen.add(row.seq)
                last = max(last, row.seq)

    writers = [threading.Thread(target=write, args=(name,)) for name in ("a", "b", "c")]
    tailer = threading.Thread(target=tail)
    tailer.start()
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    time.sleep(0.2)
    writing.clear()
    tailer.join()
    everything = {row.seq for row in LiveChangeLog.read(store, 0, limit=1000)}
    store.close()
    assert len(everything) == 180
    assert everything - seen == set()
