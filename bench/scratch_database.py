"""A throwaway PostGIS database on the dev cluster (`dev/postgres start`) for one benchmark
run: created from template1 (which has PostGIS) and dropped afterwards, whatever happens."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

REPO_ROOT = Path(__file__).resolve().parents[1]


def server_url() -> str:
    """The server named by CITYOPS_TEST_POSTGRES_URL (a cluster already running), else the
    dev cluster's URL, starting it if it is not running."""
    if os.environ.get("CITYOPS_TEST_POSTGRES_URL"):
        return os.environ["CITYOPS_TEST_POSTGRES_URL"]
    subprocess.run([str(REPO_ROOT / "dev" / "postgres"), "start"], check=True,
                   capture_output=True)
    done = subprocess.run([str(REPO_ROOT / "dev" / "postgres"), "url"], check=True,
                          capture_output=True, text=True)
    return done.stdout.strip()


@contextmanager
def scratch_database(label: str) -> Iterator[str]:
    """The URL of a new database, dropped when the block ends."""
    server = server_url()
    name = f"cityops_bench_{label}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(server)._replace(path=f"/{name}"))
    finally:
        drop_database(server, name)


def drop_database(server: str, name: str, *, attempts: int = 30) -> None:
    """Drop a benchmark database. Not `WITH (FORCE)`: the benchmark role is no superuser and
    may not end an autovacuum worker in it, which makes FORCE refuse the drop. The role's own
    connections are ended (waiting for each), then a plain DROP, which cancels autovacuum
    itself; retried while something reconnects."""
    for attempt in range(attempts):
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity WHERE "
                "datname = %s AND usename = current_user AND pid <> pg_backend_pid()", (name,))
            try:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
                return
            except psycopg.errors.ObjectInUse:
                if attempt == attempts - 1:
                    raise
        time.sleep(1)
