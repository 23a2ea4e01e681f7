"""A throwaway PostGIS database on the dev cluster (`dev/postgres start`) for one benchmark
run: created from template1 (which has PostGIS) and dropped afterwards, whatever happens."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

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
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
