"""Fixtures that give integration tests a real PostgreSQL/PostGIS server and Kafka broker.

`dev/test` starts both services and exports CITYOPS_TEST_POSTGRES_URL and
CITYOPS_TEST_KAFKA_BOOTSTRAP. When a test is run by hand without them, the fixtures start
the local services themselves through `dev/postgres start` and `dev/kafka start`. A service
that cannot be had fails the test with the reason: nothing is skipped silently.

Isolation: every test session works in its own freshly created database (`postgres_url`),
and a test that needs a database of its own asks for `fresh_database`; Kafka tests use
uniquely named topics (`fresh_topic`). Databases are created from template1, which
`dev/postgres` has given PostGIS.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from psycopg import sql

REPO_ROOT = Path(__file__).resolve().parents[2]

# The first `dev/kafka start` on a new machine fetches the broker's jars from Maven Central.
SERVICE_START_TIMEOUT_S = 600
KAFKA_TIMEOUT_MS = 30_000


def _run_dev_script(script: str, *args: str) -> str:
    """Runs `dev/<script> <args>` and returns its output, failing the test if it fails."""
    command = [str(REPO_ROOT / "dev" / script), *args]
    shown = f"dev/{script} {' '.join(args)}"
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=SERVICE_START_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        pytest.fail(f"`{shown}` could not be run: {error}", pytrace=False)
    if done.returncode != 0:
        pytest.fail(
            f"`{shown}` exited with {done.returncode}:\n{done.stderr}{done.stdout}",
            pytrace=False,
        )
    return done.stdout.strip()


def _with_database(url: str, dbname: str) -> str:
    """The same server URL pointing at another database."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{dbname}"))


DROP_ATTEMPTS = 5
"""How many times a test database's drop ends its connections and tries again."""


class TestDatabases:
    """Creates uniquely named PostGIS databases on one server and drops them again."""

    __test__ = False  # not a test class, despite its name

    def __init__(self, server_url: str) -> None:
        self._server_url = server_url

    def create(self, label: str) -> str:
        """Creates an empty database with PostGIS and returns its URL."""
        name = f"cityops_test_{label}_{uuid.uuid4().hex[:12]}"
        url = _with_database(self._server_url, name)
        try:
            with psycopg.connect(self._server_url, autocommit=True) as admin:
                admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except psycopg.Error as error:
            pytest.fail(f"cannot create test database {name}: {error}", pytrace=False)
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                # A no-op when the template has PostGIS; fails clearly when it has not and
                # the role may not create it (PostGIS is not a trusted extension).
                conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        except psycopg.Error as error:
            self.drop(url)
            pytest.fail(f"test database {name} has no PostGIS: {error}", pytrace=False)
        return url

    def drop(self, url: str) -> None:
        """Drops a database made by `create`, closing connections that pools left open.

        Not `WITH (FORCE)`: a role that is not a superuser may not terminate an autovacuum
        worker that happens to be vacuuming the database, and FORCE then refuses the drop.
        The test role's own connections are ended first (waiting for each to go); a plain
        DROP DATABASE cancels autovacuum itself and waits for it.
        """
        name = urlsplit(url).path.lstrip("/")
        with psycopg.connect(self._server_url, autocommit=True) as admin:
            for attempt in range(DROP_ATTEMPTS):
                admin.execute(
                    "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity"
                    " WHERE datname = %s AND usename = current_user"
                    " AND pid <> pg_backend_pid()",
                    (name,),
                )
                try:
                    admin.execute(
                        sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
                    return
                except psycopg.errors.ObjectInUse:
                    # A pool reconnected between the two statements (a closing system's
                    # thread): end its connection again.
                    if attempt == DROP_ATTEMPTS - 1:
                        raise


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    """URL of the `cityops` database on the test server (from dev/test, else started here)."""
    url = os.environ.get("CITYOPS_TEST_POSTGRES_URL")
    if not url:
        _run_dev_script("postgres", "start")
        url = _run_dev_script("postgres", "url")
    try:
        with psycopg.connect(url, connect_timeout=10) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as error:
        pytest.fail(f"PostgreSQL at {url} does not answer: {error}", pytrace=False)
    return url


@pytest.fixture(scope="session")
def test_databases(postgres_server_url: str) -> TestDatabases:
    """Maker of uniquely named databases on the test server."""
    return TestDatabases(postgres_server_url)


@pytest.fixture(scope="session")
def postgres_url(test_databases: TestDatabases) -> Iterator[str]:
    """URL of a PostGIS database made for this test session and dropped after it."""
    url = test_databases.create("session")
    yield url
    test_databases.drop(url)


@pytest.fixture
def fresh_database(test_databases: TestDatabases) -> Iterator[str]:
    """URL of a PostGIS database made for one test and dropped after it."""
    url = test_databases.create("test")
    yield url
    test_databases.drop(url)


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """Bootstrap servers of the test broker (from dev/test, else started here)."""
    bootstrap = os.environ.get("CITYOPS_TEST_KAFKA_BOOTSTRAP")
    if not bootstrap:
        _run_dev_script("kafka", "start")
        bootstrap = _run_dev_script("kafka", "bootstrap")
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=KAFKA_TIMEOUT_MS)
        try:
            admin.list_topics()
        finally:
            admin.close()
    except Exception as error:  # kafka-python raises several unrelated error classes here
        pytest.fail(f"Kafka at {bootstrap} does not answer: {error!r}", pytrace=False)
    return bootstrap


@pytest.fixture(scope="session")
def kafka_admin(kafka_bootstrap: str) -> Iterator[KafkaAdminClient]:
    """An admin client of the test broker; the broker does not create topics by itself."""
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap, request_timeout_ms=KAFKA_TIMEOUT_MS)
    yield admin
    admin.close()


@pytest.fixture
def kafka_topic_factory(kafka_admin: KafkaAdminClient) -> Iterator[Callable[..., str]]:
    """Creates uniquely named topics for one test and deletes them after it."""
    created: list[str] = []

    def create(label: str = "topic", partitions: int = 3) -> str:
        name = f"cityops-test-{label}-{uuid.uuid4().hex[:12]}"
        kafka_admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1)],
            timeout_ms=KAFKA_TIMEOUT_MS,
            wait_for_metadata=True,
        )
        created.append(name)
        return name

    yield create
    if created:
        kafka_admin.delete_topics(created, timeout_ms=KAFKA_TIMEOUT_MS, raise_errors=False)


@pytest.fixture
def fresh_topic(kafka_topic_factory: Callable[..., str]) -> str:
    """Name of a new three-partition topic, deleted after the test."""
    return kafka_topic_factory()
