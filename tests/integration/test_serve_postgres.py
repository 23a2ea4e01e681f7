"""`cityops serve` as production runs it: a separate process on PostgreSQL, reached over
HTTP; a second process sees what the first recorded (read model built by its follower)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

PASSWORD = "serve-password-1"


def add_user(database_url: str, tmp_path: Path, username: str, role: str) -> None:
    """`cityops users add` on the database, as an administrator would."""
    env = {**os.environ, "CITYOPS_DATABASE_URL": database_url,
           "CITYOPS_DATA_DIR": str(tmp_path / "unused")}
    added = subprocess.run(
        [sys.executable, "-m", "cityops.cli", "users", "add", username, "--role", role,
         "--password-stdin"], input=f"{PASSWORD}\n", env=env, capture_output=True,
        text=True, timeout=120, check=False)
    assert added.returncode == 0, added.stderr


def login(base: str, username: str) -> dict[str, str]:
    """The headers of `username`, logged in on the server at `base`."""
    answer = httpx.post(f"{base}/auth/login", json={"username": username,
                                                    "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def serve(database_url: str, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "CITYOPS_DATABASE_URL": database_url,
           "CITYOPS_DATA_DIR": str(tmp_path / "unused"), "CITYOPS_DATABASE_POOL_SIZE": "2"}
    log = (tmp_path / f"serve-{port}.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "cityops.cli", "serve", "--port", str(port)],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail("cityops serve did not start:\n"
                            + (tmp_path / f"serve-{port}.log").read_text())
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


@pytest.mark.postgres
def test_two_server_processes_on_postgres_share_the_city(
    fresh_database: str, tmp_path: Path, demo_city: object
) -> None:
    cell = demo_city.map.cells.geometry.iloc[100].representative_point()  # type: ignore[attr-defined]
    report = {"category": "E0101", "description": "Overflowing bins at the market",
              "location": {"type": "Point", "coordinates": [cell.x, cell.y]}}
    add_user(fresh_database, tmp_path, "insp-D01-01", "inspector")
    add_user(fresh_database, tmp_path, "disp-1", "dispatcher")
    with serve(fresh_database, tmp_path) as first, serve(fresh_database, tmp_path) as second:
        # A token from one server process is good on the other (same secret key).
        inspector = login(first, "insp-D01-01")
        dispatcher = login(first, "disp-1")
        created = httpx.post(f"{first}/grid-cases", json=report,
                             headers={**inspector, "Idempotency-Key": "serve-test-1"})
        assert created.status_code == 201, created.text
        case_id = created.json()["id"]
        registered = httpx.post(f"{second}/grid-cases/{case_id}/register", json={},
                                headers=dispatcher)
        assert registered.status_code == 200, registered.text
        assert registered.json()["status"] == "registered"
        repeated = httpx.post(f"{second}/grid-cases", json=report,
                              headers={**inspector, "Idempotency-Key": "serve-test-1"})
        assert repeated.json()["id"] == case_id
        deadline = time.monotonic() + 20
        while True:
            listed = httpx.get(f"{first}/grid-cases", params={"status": "registered"},
                               headers=dispatcher).json()
            if listed["count"] == 1 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert [c["id"] for c in listed["data"]] == [case_id]
        health = httpx.get(f"{second}/health").json()
        assert health["projection_lag"]["gridcases"] == 0
