"""The city's disaster backup, on SQLite and on PostgreSQL and across them: an archive of a
running site (events, hash chains, accounts, photos, dead letters) restored onto a fresh
site where people sign in with their passwords, photos come back byte for byte, every read
model is rebuilt equal to the source's and `cityops backup verify` finds the site equal to
the archive. Bad archives and non-empty targets are refused with a clear error, leaving
nothing half-written."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from cityops.backup import (
    BackupError,
    create_backup,
    projected_table_names,
    read_models_of,
    restore_backup,
    site_contents,
)
from cityops.bootstrap import CitySystem, build_system
from cityops.cli import app as cityops_cli
from cityops.domain.accounts.commands import AddUser
from cityops.domain.actors import Actor, Role
from cityops.domain.commands import CommandContext
from cityops.domain.geometry import GeoPoint
from cityops.domain.gridcases.commands import DispatchCase, HandleCase, RegisterCase, ReportCase
from cityops.domain.hotline.commands import ReceiveTicket
from cityops.ingest.composition import ingest_store
from cityops.ingest.deadletters import DeadLetter, StoredDeadLetters
from cityops.settings import Settings
from cityops.simulator import build_demo
from cityops.site import open_snapshot

INSPECTOR = Actor("insp-1", Role.INSPECTOR)
DISPATCHER = Actor("disp-1", Role.DISPATCHER)
ADMIN = Actor("admin-1", Role.ADMIN)
PASSWORD = "restore-me-2026!"
NOON = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def clock() -> datetime:
    return NOON


SiteMaker = Callable[[str], Settings]


@pytest.fixture
def make_site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SiteMaker]:
    """Settings of a new, empty site on a back end ('sqlite' or 'postgres')."""
    made: list[str] = []
    sites = iter(range(1000))

    def make(backend: str) -> Settings:
        if backend == "sqlite":
            return Settings(data_dir=tmp_path / f"site-{next(sites)}")
        databases = request.getfixturevalue("test_databases")
        url = databases.create("backup")
        made.append(url)
        return Settings(database_url=url)

    yield make
    if made:
        databases = request.getfixturevalue("test_databases")
        for url in made:
            databases.drop(url)


def cli_env(settings: Settings) -> dict[str, str]:
    if settings.database_url is None:
        return {"CITYOPS_DATA_DIR": str(settings.data_dir), "CITYOPS_DATABASE_URL": ""}
    return {"CITYOPS_DATABASE_URL": settings.database_url}


def where(system: CitySystem, index: int) -> GeoPoint:
    centre = system.city.map.cells.geometry.iloc[index].representative_point()
    return GeoPoint(lon=centre.x, lat=centre.y)


def photo_bytes(seed: int) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + hashlib.sha256(str(seed).encode()).digest() * 40


def populate(system: CitySystem) -> dict[str, Any]:
    """Cases with photos, an account, a dead letter: what a site holds beyond events."""
    system.accounts.handle(
        AddUser(username="alice", role=Role.DISPATCHER, password=PASSWORD),
        CommandContext(actor=ADMIN))
    photos = []
    for index in range(3):
        data = photo_bytes(index)
        digest = hashlib.sha256(data).hexdigest()
        system.photos.save(sha256=digest, data=data, content_type="image/png", width=4,
                           height=4, uploaded_by="insp-1", uploaded_role="inspector", at=NOON)
        photos.append(digest)
        case_id = system.grid_cases.handle(
            ReportCase(source="inspector", category="E0101", description=f"garbage heap {index}",
                       location=where(system, 40 + index), photos=[f"photo:{digest}"]),
            CommandContext(actor=INSPECTOR)).subject
        system.grid_cases.handle(RegisterCase(case_id=case_id), CommandContext(actor=DISPATCHER))
        if index != 1:
            system.grid_cases.handle(
                DispatchCase(case_id=case_id),
                CommandContext(actor=DISPATCHER))
    store = ingest_store(system)
    try:
        StoredDeadLetters(store).send(DeadLetter(
            source_topic="cityops.field-reports", partition=0, offset=7, key=b"k",
            value=b"\x00not json", code="malformed", reason="not JSON",
            error_class="ValueError", dead_lettered_at=NOON, worker="w1"))
    finally:
        store.close()
    system.catch_up()
    return {"photos": photos}


def read_models(settings: Settings) -> dict[str, Any]:
    snapshot = open_snapshot(settings)
    try:
        return read_models_of(snapshot, projected_table_names(settings))
    finally:
        snapshot.close()


@pytest.mark.parametrize(("source", "target"), [
    ("sqlite", "sqlite"),
    pytest.param("postgres", "postgres", marks=pytest.mark.postgres),
    pytest.param("sqlite", "postgres", marks=pytest.mark.postgres),
    pytest.param("postgres", "sqlite", marks=pytest.mark.postgres),
])
def test_a_restored_site_holds_the_events_accounts_photos_and_equal_read_models(
        make_site: SiteMaker, tmp_path: Path, source: str, target: str) -> None:
    source_settings = make_site(source)
    system = build_system(source_settings)
    try:
        kept = populate(system)
        case_count = system.read_models.page("rm_grid_cases", limit=50).total
    finally:
        system.close()
    archive = tmp_path / "city.tar.gz"
    result = CliRunner().invoke(cityops_cli, ["backup", "create", str(archive)],
                                env=cli_env(source_settings))
    assert result.exit_code == 0, result.output
    assert "event store gridcases: 11 events" in result.output

    target_settings = make_site(target)
    restored = CliRunner().invoke(cityops_cli, ["backup", "restore", str(archive)],
                                  env=cli_env(target_settings))
    assert restored.exit_code == 0, restored.output
    assert "equal" in restored.output
    assert read_models(target_settings) == read_models(source_settings)

    system = build_system(target_settings)
    try:
        # A user signs in on the restored site with the password they had.
        assert system.accounts.authenticate("alice", PASSWORD) is not None
        assert system.accounts.authenticate("alice", "wrong-password-1") is None
        for digest in kept["photos"]:
            stored = system.photos.get(digest)
            assert stored is not None
            assert hashlib.sha256(stored.data).hexdigest() == digest
        assert system.read_models.page("rm_grid_cases", limit=50).total == case_count
        store = ingest_store(system)
        try:
            letters = StoredDeadLetters(store)
            with store.transaction() as txn:
                txn.execute("SELECT letter_id, message_value FROM ingest_dead_letters")
                assert [(r[0], bytes(r[1])) for r in txn.fetchall()] == [
                    ("cityops.field-reports:0:7", b"\x00not json")]
            del letters
        finally:
            store.close()
        # The restored site goes on: new events follow the restored ones.
        case_id = system.grid_cases.handle(
            ReportCase(source="inspector", category="E0101", description="after the restore",
                       location=where(system, 99)),
            CommandContext(actor=INSPECTOR)).subject
        system.catch_up()
        # Reported and marked outside the inspector's cells (insp-1 has no cells here).
        assert system.grid_cases.case(case_id).version == 2
        assert system.read_models.page("rm_grid_cases", limit=50).total == case_count + 1
    finally:
        system.close()
    verified = CliRunner().invoke(cityops_cli, ["backup", "verify", str(archive)],
                                  env=cli_env(target_settings))
    assert verified.exit_code == 0, verified.output
    assert "recorded after the backup" in verified.output


@pytest.mark.parametrize("backend", ["sqlite",
                                     pytest.param("postgres", marks=pytest.mark.postgres)])
def test_verify_finds_a_site_that_no_longer_holds_what_the_archive_holds(
        make_site: SiteMaker, tmp_path: Path, backend: str) -> None:
    settings = make_site(backend)
    system = build_system(settings)
    try:
        populate(system)
    finally:
        system.close()
    archive = tmp_path / "city.tar.gz"
    create_backup(settings, archive, clock=clock)
    same = CliRunner().invoke(cityops_cli, ["backup", "verify", str(archive)],
                              env=cli_env(settings))
    assert same.exit_code == 0, same.output
    # History rewritten after the backup, chain recomputed or not: the archive shows it.
    if backend == "sqlite":
        import sqlite3

        connection = sqlite3.connect(settings.data_dir / "gridcases.sqlite")
        connection.execute("UPDATE stored_events SET topic = topic || 'x' "
                           "WHERE rowid = (SELECT MAX(rowid) FROM stored_events)")
        connection.commit()
        connection.close()
    else:
        assert settings.database_url is not None
        with psycopg.connect(settings.database_url) as connection:
            connection.execute("UPDATE gridcases_events SET topic = topic || 'x' WHERE "
                               "notification_id = (SELECT MAX(notification_id) "
                               "FROM gridcases_events)")
    changed = CliRunner().invoke(cityops_cli, ["backup", "verify", str(archive)],
                                 env=cli_env(settings))
    assert changed.exit_code == 1
    assert "DIFFERS: event store gridcases" in changed.output


@pytest.mark.parametrize("backend", ["sqlite",
                                     pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_backup_taken_while_the_city_records_is_consistent(
        make_site: SiteMaker, tmp_path: Path, backend: str) -> None:
    settings = make_site(backend)
    system = build_system(settings)
    stop = threading.Event()
    recorded: list[int] = []

    def keep_reporting() -> None:
        index = 0
        while not stop.is_set():
            point = where(system, index % 500)
            # The cell's own inspector: two events per round (a report outside one's cells
            # records a third).
            inspector = Actor(system.city.map.locate(point).inspector_id, Role.INSPECTOR)
            case_id = system.grid_cases.handle(
                ReportCase(source="inspector", category="E0101", description="during the backup",
                           location=point),
                CommandContext(actor=inspector)).subject
            system.grid_cases.handle(
                RegisterCase(case_id=case_id),
                CommandContext(actor=DISPATCHER))
            index += 1
            recorded.append(index)

    writer = threading.Thread(target=keep_reporting)
    writer.start()
    try:
        while len(recorded) < 5:
            stop.wait(0.01)
        result = create_backup(settings, tmp_path / "live.tar.gz", clock=clock)
    finally:
        stop.set()
        writer.join()
        system.close()
    archived = result.manifest["stores"]["gridcases"]
    assert 0 < archived["events"] < 2 * len(recorded) + 1
    assert archived["events"] == archived["links"]
    restored = restore_backup(tmp_path / "live.tar.gz", make_site("sqlite"), clock=clock)
    assert restored.comparison.equal, restored.comparison.differences


def rewrite_archive(source: Path, destination: Path,
                    change: Callable[[str, bytes], bytes],
                    keep: Callable[[str], bool] = lambda _: True) -> None:
    """A copy of an archive with some members' bytes changed (the manifest kept as is
    unless `change` changes it), and only the members `keep` keeps."""
    with tarfile.open(source, "r:gz") as original, tarfile.open(destination, "w:gz") as copy:
        for member in original:
            if not keep(member.name):
                continue
            stream = original.extractfile(member)
            assert stream is not None
            body = change(member.name, stream.read())
            info = tarfile.TarInfo(member.name)
            info.size = len(body)
            copy.addfile(info, io.BytesIO(body))


@pytest.fixture(scope="module")
def good_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("archive")
    settings = Settings(data_dir=folder / "site")
    system = build_system(settings)
    try:
        populate(system)
    finally:
        system.close()
    return create_backup(settings, folder / "good.tar.gz", clock=clock).path


def bump_version(name: str, body: bytes) -> bytes:
    if name != "manifest.json":
        return body
    manifest = json.loads(body)
    manifest["version"] = 3
    return json.dumps(manifest).encode()


def edit_a_photo(name: str, body: bytes) -> bytes:
    return body[:-1] + bytes([body[-1] ^ 1]) if name.startswith("photos/") else body


def edit_an_event(name: str, body: bytes) -> bytes:
    if name != "events/gridcases.jsonl":
        return body
    edited = body.replace(b"Registered", b"Registerad", 1)
    assert edited != body
    return edited


def drop_links(name: str, body: bytes) -> bytes:
    return b"" if name.startswith("chain/") else body


BAD_ARCHIVES: dict[str, tuple[Callable[[Path, Path], None], str]] = {
    "truncated": (lambda good, bad: bad.write_bytes(good.read_bytes()[:len(good.read_bytes())
                                                                       // 2]),
                  "corrupt or truncated"),
    "corrupt": (lambda good, bad: bad.write_bytes(
        good.read_bytes()[:200] + bytes(b ^ 0x5A for b in good.read_bytes()[200:400])
        + good.read_bytes()[400:]), "corrupt or truncated"),
    "not an archive": (lambda good, bad: bad.write_text("hello"), "corrupt or truncated"),
    "not a backup": (lambda good, bad: bad.write_bytes(gzip.compress(b"x" * 1024)),
                     "corrupt or truncated"),
    "wrong version": (lambda good, bad: rewrite_archive(good, bad, bump_version),
                      "format version 3; this CityOps reads versions 1, 2"),
    "edited photo": (lambda good, bad: rewrite_archive(good, bad, edit_a_photo),
                     "does not match its checksum"),
    "edited event": (lambda good, bad: rewrite_archive(good, bad, edit_an_event),
                     "does not match its checksum"),
    "links dropped": (lambda good, bad: rewrite_archive(good, bad, drop_links),
                      "does not match its checksum"),
}


@pytest.mark.parametrize("damage", sorted(BAD_ARCHIVES))
def test_a_bad_archive_is_refused_and_nothing_is_written(
        good_archive: Path, tmp_path: Path, damage: str) -> None:
    make, message = BAD_ARCHIVES[damage]
    bad = tmp_path / "bad.tar.gz"
    make(good_archive, bad)
    target = Settings(data_dir=tmp_path / "restored")
    result = CliRunner().invoke(cityops_cli, ["backup", "restore", str(bad)],
                                env=cli_env(target))
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output
    assert not target.data_dir.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.tar.gz"]
    checked = CliRunner().invoke(cityops_cli, ["backup", "verify", "--archive-only",
                                               str(bad)], env=cli_env(target))
    assert checked.exit_code == 1 and message in checked.output


@pytest.mark.postgres
def test_a_bad_archive_leaves_a_postgres_site_empty(
        good_archive: Path, tmp_path: Path, make_site: SiteMaker) -> None:
    bad = tmp_path / "bad.tar.gz"
    rewrite_archive(good_archive, bad, edit_an_event)
    target = make_site("postgres")
    with pytest.raises(BackupError, match="does not match its checksum"):
        restore_backup(bad, target, clock=clock)
    assert site_contents(target) == []


def test_a_site_that_holds_data_is_not_restored_over(
        good_archive: Path, tmp_path: Path) -> None:
    target = Settings(data_dir=tmp_path / "busy")
    build_system(target).close()
    before = sorted(p.name for p in target.data_dir.glob("*.sqlite"))
    refused = CliRunner().invoke(cityops_cli, ["backup", "restore", str(good_archive)],
                                 env=cli_env(target))
    assert refused.exit_code == 1
    assert "is not empty" in refused.output and "--force" in refused.output
    assert sorted(p.name for p in target.data_dir.glob("*.sqlite")) == before
    # With --force the old folder is moved aside, never deleted.
    forced = CliRunner().invoke(cityops_cli, ["backup", "restore", "--force",
                                              str(good_archive)], env=cli_env(target))
    assert forced.exit_code == 0, forced.output
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("busy.before-restore-")]
    assert len(aside) == 1 and sorted(p.name for p in aside[0].glob("*.sqlite")) == before


@pytest.mark.postgres
def test_postgres_history_is_never_restored_over(good_archive: Path,
                                                 make_site: SiteMaker) -> None:
    target = make_site("postgres")
    build_system(target).close()  # the departments are seeded: it holds history
    refused = CliRunner().invoke(cityops_cli, ["backup", "restore", "--force",
                                               str(good_archive)], env=cli_env(target))
    assert refused.exit_code == 1
    assert "never deletes recorded history" in refused.output
    assert "accounts_events" in refused.output


def test_the_demo_day_is_restored_with_equal_read_models(tmp_path: Path) -> None:
    source = Settings(data_dir=tmp_path / "demo")
    system, demo = build_demo(source, seed=7, speed=0.0, today=date(2026, 11, 24))
    try:
        demo.run_until(demo.start + timedelta(hours=6))
        system.catch_up()
        assert demo.failures == []
    finally:
        system.close()
    archive = create_backup(source, tmp_path / "demo.tar.gz", clock=clock)
    assert archive.manifest["read_models"]["complete"] is True
    assert sum(s["events"] for s in archive.manifest["stores"].values()) > 500
    target = Settings(data_dir=tmp_path / "restored")
    result = restore_backup(archive.path, target, clock=clock)
    assert result.comparison.equal, result.comparison.differences
    source_models, restored_models = read_models(source), read_models(target)
    assert restored_models == source_models
    assert restored_models["rm_grid_cases"]["rows"] > 50


HOTLINE_OPERATOR = Actor("op-1", Role.HOTLINE_OPERATOR)
ROADS = Actor("roads-1", Role.DEPARTMENT_USER, "roads")


def ticket_with_handled_case(system: CitySystem) -> Any:
    """A call that became a grid case the department reports handled: the ticket stays
    open, and the follow-up records the progress on it (tracked in the hotline store)."""
    ticket_id = system.hotline.handle(
        ReceiveTicket(channel="phone", ticket_type="complaint", topic="street-lighting",
                      description="The street lamp is out", caller_phone="13800138000",
                      location=where(system, 60)),
        CommandContext(actor=HOTLINE_OPERATOR)).subject
    case_id = system.operations.ticket_to_case(ticket_id, actor=HOTLINE_OPERATOR)
    system.grid_cases.handle(RegisterCase(case_id=case_id), CommandContext(actor=DISPATCHER))
    system.grid_cases.handle(
        DispatchCase(case_id=case_id, department="roads"),
        CommandContext(actor=DISPATCHER))
    system.grid_cases.handle(
        HandleCase(case_id=case_id, result="lamp replaced"),
        CommandContext(actor=ROADS))
    system.catch_up()
    return ticket_id


def ticket_event_names(system: CitySystem, ticket_id: Any) -> list[str]:
    return [type(e).__name__ for e in system.hotline.events.get(ticket_id)]


@pytest.mark.parametrize(("source", "target"), [
    ("sqlite", "sqlite"),
    pytest.param("postgres", "postgres", marks=pytest.mark.postgres),
    pytest.param("sqlite", "postgres", marks=pytest.mark.postgres),
    pytest.param("postgres", "sqlite", marks=pytest.mark.postgres),
])
def test_a_restored_follow_up_does_not_record_a_tickets_progress_twice(
        make_site: SiteMaker, tmp_path: Path, source: str, target: str) -> None:
    source_settings = make_site(source)
    system = build_system(source_settings)
    try:
        ticket_id = ticket_with_handled_case(system)
        before = ticket_event_names(system, ticket_id)
        assert before.count("LinkedWorkProgressed") == 1
        positions = {name: system.ticket_follow_up.position(name)
                     for name in system.ticket_follow_up.upstreams}
        assert positions["gridcases"] > 0
    finally:
        system.close()
    archive = create_backup(source_settings, tmp_path / "city.tar.gz", clock=clock)

    target_settings = make_site(target)
    restored = restore_backup(archive.path, target_settings, clock=clock)
    system = build_system(target_settings)
    try:
        system.ticket_follow_up.catch_up()
        system.catch_up()
        # The follow-up resumes where the source's was: nothing is recorded twice.
        assert ticket_event_names(system, ticket_id) == before
        assert {name: system.ticket_follow_up.position(name)
                for name in system.ticket_follow_up.upstreams} == positions
    finally:
        system.close()
    assert restored.comparison.equal, restored.comparison.differences
    assert restored.warnings == []
    assert archive.manifest["version"] == 2
    assert "tracking/hotline.jsonl" in archive.manifest["parts"]
    assert archive.manifest["stores"]["hotline"]["tracking"] >= sum(
        1 for p in positions.values() if p)
    verified = CliRunner().invoke(cityops_cli, ["backup", "verify", str(archive.path)],
                                  env=cli_env(target_settings))
    assert verified.exit_code == 0, verified.output
    assert "tracking" in verified.output


def as_version_1(name: str, body: bytes) -> bytes:
    """An archive as CityOps wrote it before tracking records were archived (its tracking
    parts left out)."""
    if name != "manifest.json":
        return body
    manifest = json.loads(body)
    manifest["version"] = 1
    manifest["parts"] = {k: v for k, v in manifest["parts"].items()
                         if not k.startswith("tracking/")}
    for figures in manifest["stores"].values():
        figures.pop("tracking", None)
    return json.dumps(manifest).encode()


def test_an_archive_of_format_1_restores_with_empty_tracking_and_warns(
        tmp_path: Path) -> None:
    source = Settings(data_dir=tmp_path / "source")
    system = build_system(source)
    try:
        ticket_with_handled_case(system)
    finally:
        system.close()
    archive = create_backup(source, tmp_path / "city.tar.gz", clock=clock).path
    old = tmp_path / "old.tar.gz"
    rewrite_archive(archive, old, as_version_1,
                    keep=lambda name: not name.startswith("tracking/"))
    target = Settings(data_dir=tmp_path / "restored")
    result = CliRunner().invoke(cityops_cli, ["backup", "restore", str(old)],
                                env=cli_env(target))
    assert result.exit_code == 0, result.output
    assert "WARNING" in result.output and "format version 1" in result.output
    assert "tracking" in result.output
    system = build_system(target)
    try:
        assert system.ticket_follow_up.position("gridcases") == 0
    finally:
        system.close()


@pytest.mark.parametrize("backend", ["sqlite",
                                     pytest.param("postgres", marks=pytest.mark.postgres)])
def test_verify_finds_tracking_behind_the_archive(
        make_site: SiteMaker, tmp_path: Path, backend: str) -> None:
    settings = make_site(backend)
    system = build_system(settings)
    try:
        ticket_with_handled_case(system)
    finally:
        system.close()
    archive = create_backup(settings, tmp_path / "city.tar.gz", clock=clock).path
    if backend == "sqlite":
        import sqlite3

        connection = sqlite3.connect(settings.data_dir / "hotline.sqlite")
        connection.execute("DELETE FROM tracking WHERE application_name = 'gridcases'")
        connection.commit()
        connection.close()
    else:
        assert settings.database_url is not None
        with psycopg.connect(settings.database_url) as connection:
            connection.execute("DELETE FROM hotline_tracking "
                               "WHERE application_name = 'gridcases'")
    changed = CliRunner().invoke(cityops_cli, ["backup", "verify", str(archive)],
                                 env=cli_env(settings))
    assert changed.exit_code == 1, changed.output
    assert "DIFFERS: event store hotline: tracking behind" in changed.output
