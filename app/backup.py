"""The city's disaster backup: one archive of a site's durable state, restored onto a fresh
site (SQLite or PostgreSQL, whichever the archive came from), read models rebuilt, and the
result checked against the archive.

The archive is a gzipped tar: `manifest.json` first (format version, creation time from the
injected clock, the source's back end, every event store's head and counts, every part's
SHA-256, size and rows, and a digest of the source's read models), then the parts:
`events/<store>.jsonl` (every event in notification order, its id kept), `chain/<store>.jsonl`
(the hash-chain links), `tracking/<store>.jsonl` (a process recorder's tracking records, read
in the same snapshot as its events), `tables/<table>.jsonl` (the durable tables, rows in a canonical
order) and `photos/<sha256>` (each field photo's bytes). The parts are written the same way
whatever the back end, so an archive of an embedded site restores into PostgreSQL.

Nothing is half-done: an archive is written to a temporary file and renamed when complete;
a restore checks the whole archive before it writes anything, builds an embedded site in a
temporary folder moved into place at the end, and writes a PostgreSQL site's data in one
transaction.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import re
import sqlite3
import tarfile
import tempfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.persistence import InfrastructureFactory
from eventsourcing.utils import Environment
from psycopg.sql import SQL, Identifier

from cityops.event_chain import SQLITE_CHAIN_TABLE, SQLITE_EVENTS_TABLE, postgres_chain_table
from cityops.feeds.service import FEED_STORE_FILE
from cityops.settings import Settings
from cityops.site import (
    BASE_STORE_FILE,
    DURABLE_STORES,
    DURABLE_TABLES,
    SQLITE_TRACKING_TABLE,
    DurableTable,
    Place,
    SiteSnapshot,
    canonical_value,
    open_snapshot,
    postgres_tracking_table,
)
from cityops.storage import PostgresReadStore, ReadStore, SqliteReadStore

log = logging.getLogger(__name__)

FORMAT = "cityops-backup"
FORMAT_VERSION = 2
"""2: each event store's tracking records (`tracking/<store>.jsonl`). Version 1 archives are
still read; they restore with empty tracking (the restore warns)."""
READABLE_VERSIONS = (1, 2)
MANIFEST = "manifest.json"
PHOTO_TABLE = "field_photos"
PHOTO_DATA_COLUMN = "data"
PROJECTION = "cityops-views"
SHA256_HEX = re.compile(r"[0-9a-f]{64}")
INSERT_BATCH = 1000


class BackupError(Exception):
    """A backup, restore or check that cannot be done (the message says why)."""


# --- digests of what a site holds --------------------------------------------------------


def event_line(row: tuple[int, UUID, int, str, bytes]) -> bytes:
    nid, oid, version, topic, state = row
    return _line([nid, str(oid), version, topic, base64.b64encode(state).decode()])


def link_line(row: tuple[UUID, int, bytes]) -> bytes:
    oid, version, link = row
    return _line([str(oid), version, link.hex()])


def tracking_line(row: tuple[str, int]) -> bytes:
    name, notification_id = row
    return _line([name, notification_id])


def _line(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def table_lines(columns: list[str], rows: Iterable[tuple[Any, ...]]) -> list[bytes]:
    """A table's rows as canonical lines, in a canonical order (the same on both back
    ends)."""
    return sorted(_line([canonical_value(v) for v in row]) for row in rows)


def read_model_digest(columns: list[str], rows: Iterable[tuple[Any, ...]]) -> tuple[int, str]:
    """Rows and SHA-256 of a read-model table, comparable across back ends (the JSON
    document parsed; PostGIS columns left out, they are generated from the others)."""
    doc = columns.index("doc") if "doc" in columns else -1
    lines = []
    for row in rows:
        values = list(row)
        if doc >= 0 and isinstance(values[doc], str):
            values[doc] = json.loads(values[doc])
        lines.append(_line([canonical_value(v) for v in values]))
    lines.sort()
    digest = hashlib.sha256()
    for line in lines:
        digest.update(line)
    return len(lines), digest.hexdigest()


def read_models_of(snapshot: SiteSnapshot, tables: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The digest of each read-model table of the site's active generation."""
    found: dict[str, dict[str, Any]] = {}
    for table in tables:
        rows = snapshot.read_model(table)
        if rows is not None:
            count, digest = read_model_digest(*rows)
            found[table] = {"rows": count, "sha256": digest}
    return found


def projected_table_names(settings: Settings) -> list[str]:
    """The read-model tables a site projects from its events."""
    from cityops.bootstrap import read_model_tables
    from cityops.domain.catalogue import Catalogue

    catalogue = Catalogue.load(settings.catalogue_dir)
    return [t.table for group in read_model_tables(catalogue).values() for t in group]


# --- writing an archive ------------------------------------------------------------------


class _Part:
    """One part being written: its bytes hashed and its lines counted as they go."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file = path.open("wb")
        self._digest = hashlib.sha256()
        self.rows = 0
        self.size = 0

    def write(self, line: bytes) -> None:
        self._file.write(line)
        self._digest.update(line)
        self.rows += 1
        self.size += len(line)

    def close(self) -> dict[str, Any]:
        self._file.close()
        return {"sha256": self._digest.hexdigest(), "bytes": self.size, "rows": self.rows}


@dataclass(frozen=True)
class BackupResult:
    """What a backup wrote."""

    path: Path
    manifest: dict[str, Any]


def create_backup(settings: Settings, destination: Path, *,
                  clock: Callable[[], datetime]) -> BackupResult:
    """Write an archive of the site's durable state, as of one moment, to `destination`
    (written beside it under a temporary name, renamed when complete)."""
    if destination.exists() and destination.is_dir():
        raise BackupError(f"{destination} is a folder; give the archive's file name")
    destination.parent.mkdir(parents=True, exist_ok=True)
    read_model_names = projected_table_names(settings)
    with tempfile.TemporaryDirectory(prefix=".cityops-backup-",
                                     dir=destination.parent) as work:
        staging = Path(work)
        snapshot = open_snapshot(settings)
        try:
            manifest = _write_parts(snapshot, staging, read_model_names)
        finally:
            snapshot.close()
        manifest["created_at"] = clock().isoformat()
        partial = destination.with_name(destination.name + ".partial")
        with tarfile.open(partial, "w:gz") as archive:
            body = json.dumps(manifest, indent=2, sort_keys=True).encode()
            _add_bytes(archive, MANIFEST, body)
            for member in manifest["parts"]:
                archive.add(staging / member, arcname=member, recursive=False)
        with partial.open("rb") as written:
            os.fsync(written.fileno())
        partial.replace(destination)
    return BackupResult(destination, manifest)


def _add_bytes(archive: tarfile.TarFile, name: str, body: bytes) -> None:
    import io

    info = tarfile.TarInfo(name)
    info.size = len(body)
    info.mode = 0o600
    archive.addfile(info, io.BytesIO(body))


def _write_parts(snapshot: SiteSnapshot, staging: Path,
                 read_model_names: list[str]) -> dict[str, Any]:
    parts: dict[str, dict[str, Any]] = {}
    stores: dict[str, dict[str, Any]] = {}
    for store in snapshot.stores():
        head = snapshot.head(store)
        events = _Part(staging / "events" / f"{store}.jsonl")
        for row in snapshot.events(store, upto=head):
            events.write(event_line(row))
        parts[f"events/{store}.jsonl"] = events.close()
        links = _Part(staging / "chain" / f"{store}.jsonl")
        for link in snapshot.links(store):
            links.write(link_line(link))
        parts[f"chain/{store}.jsonl"] = links.close()
        stores[store] = {"head": head, "events": events.rows, "links": links.rows}
        tracked = snapshot.tracking(store)
        if tracked is not None:
            # Read in the events' own snapshot: the positions of the events archived.
            tracking = _Part(staging / "tracking" / f"{store}.jsonl")
            for record in tracked:
                tracking.write(tracking_line(record))
            parts[f"tracking/{store}.jsonl"] = tracking.close()
            stores[store]["tracking"] = tracking.rows
    tables: dict[str, dict[str, Any]] = {}
    photos = 0
    for table in DURABLE_TABLES:
        found = snapshot.table(table)
        if found is None:
            continue
        columns, rows = found
        kept: Iterable[tuple[Any, ...]] = rows
        if table.name == PHOTO_TABLE:
            kept, photos = _photos_apart(columns, rows, staging, parts)
            columns = [c for c in columns if c != PHOTO_DATA_COLUMN]
        part = _Part(staging / "tables" / f"{table.name}.jsonl")
        for line in table_lines(columns, kept):
            part.write(line)
        parts[f"tables/{table.name}.jsonl"] = part.close()
        tables[table.name] = {"place": table.place.value, "columns": columns,
                              "rows": part.rows}
    positions = snapshot.read_model_positions(PROJECTION)
    behind = {store: stores[store]["head"] - positions.get(store, 0)
              for store in positions if store in stores}
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "source": {"backend": snapshot.backend, "location": snapshot.location},
        "stores": stores,
        "tables": tables,
        "photos": photos,
        "read_models": {
            "positions": positions,
            "complete": bool(positions) and all(v == 0 for v in behind.values()),
            "behind": behind,
            "tables": read_models_of(snapshot, read_model_names),
        },
        "parts": parts,
    }


def _photos_apart(columns: list[str], rows: Iterator[tuple[Any, ...]], staging: Path,
                  parts: dict[str, dict[str, Any]]) -> tuple[list[tuple[Any, ...]], int]:
    """Each photo's bytes to its own part `photos/<sha256>`; the rows without them."""
    data = columns.index(PHOTO_DATA_COLUMN)
    key = columns.index("sha256")
    kept = []
    for row in rows:
        body = bytes(row[data])
        name = f"photos/{row[key]}"
        path = staging / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
        parts[name] = {"sha256": hashlib.sha256(body).hexdigest(), "bytes": len(body),
                       "rows": 0}
        kept.append(tuple(v for i, v in enumerate(row) if i != data))
    return kept, len(kept)


# --- reading and checking an archive ------------------------------------------------------


@dataclass
class CheckedArchive:
    """An archive whose every part was checked against its manifest, unpacked in `folder`."""

    manifest: dict[str, Any]
    folder: Path

    def part(self, name: str) -> Path:
        return self.folder / name

    def lines(self, name: str) -> Iterator[Any]:
        with self.part(name).open("rb") as part:
            for line in part:
                yield json.loads(line)


def check_archive(path: Path, folder: Path) -> CheckedArchive:
    """Unpack and check an archive: readable, this format and version, every part listed
    and present, each with its SHA-256, size and rows; photos named by their own SHA-256.
    Raises `BackupError` saying what is wrong."""
    if not path.is_file():
        raise BackupError(f"{path}: no such archive file")
    try:
        with tarfile.open(path, "r:gz") as archive:
            manifest: dict[str, Any] | None = None
            seen: set[str] = set()
            for member in archive:
                if manifest is None:
                    manifest = _read_manifest(archive, member, path)
                    continue
                _unpack_part(archive, member, manifest, folder, path)
                seen.add(member.name)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as error:
        raise BackupError(f"{path} is not a readable CityOps backup (corrupt or truncated: "
                          f"{error})") from None
    if manifest is None:
        raise BackupError(f"{path} is empty: no manifest")
    missing = sorted(set(manifest["parts"]) - seen)
    if missing:
        raise BackupError(f"{path} is incomplete: {len(missing)} part(s) listed in the "
                          f"manifest are missing, first {missing[0]}")
    return CheckedArchive(manifest, folder)


def _read_manifest(archive: tarfile.TarFile, member: tarfile.TarInfo,
                   path: Path) -> dict[str, Any]:
    if member.name != MANIFEST or not member.isfile():
        raise BackupError(f"{path} is not a CityOps backup: it does not start with "
                          f"{MANIFEST}")
    stream = archive.extractfile(member)
    assert stream is not None
    try:
        manifest = json.loads(stream.read(16 * 1024 * 1024))
    except (ValueError, UnicodeDecodeError) as error:
        raise BackupError(f"{path}: the manifest is not valid JSON ({error})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{path} is not a CityOps backup (manifest format "
                          f"{manifest.get('format') if isinstance(manifest, dict) else None!r})")
    if manifest.get("version") not in READABLE_VERSIONS:
        raise BackupError(f"{path} is a backup of format version {manifest.get('version')!r}; "
                          f"this CityOps reads versions "
                          f"{', '.join(str(v) for v in READABLE_VERSIONS)}")
    for key in ("stores", "tables", "parts", "read_models"):
        if not isinstance(manifest.get(key), dict):
            raise BackupError(f"{path}: the manifest has no valid {key!r}")
    unknown = set(manifest["stores"]) - set(DURABLE_STORES)
    if unknown:
        raise BackupError(f"{path}: the manifest names unknown event stores {sorted(unknown)}")
    known_tables = {t.name for t in DURABLE_TABLES}
    unknown = set(manifest["tables"]) - known_tables
    if unknown:
        raise BackupError(f"{path}: the manifest names unknown tables {sorted(unknown)}")
    for name in manifest["parts"]:
        if not _part_name_ok(name, manifest):
            raise BackupError(f"{path}: the manifest lists a part with a bad name {name!r}")
    for store, figures in manifest["stores"].items():
        if "tracking" in figures and f"tracking/{store}.jsonl" not in manifest["parts"]:
            raise BackupError(f"{path}: the manifest lists tracking records of {store} "
                              "without their part")
    return manifest


def _part_name_ok(name: str, manifest: dict[str, Any]) -> bool:
    folder, _, rest = name.partition("/")
    if folder in ("events", "chain"):
        return rest.removesuffix(".jsonl") in manifest["stores"] and rest.endswith(".jsonl")
    if folder == "tracking":
        store = manifest["stores"].get(rest.removesuffix(".jsonl"))
        return isinstance(store, dict) and "tracking" in store and rest.endswith(".jsonl")
    if folder == "tables":
        return rest.removesuffix(".jsonl") in manifest["tables"] and rest.endswith(".jsonl")
    return folder == "photos" and SHA256_HEX.fullmatch(rest) is not None


def _unpack_part(archive: tarfile.TarFile, member: tarfile.TarInfo, manifest: dict[str, Any],
                 folder: Path, path: Path) -> None:
    expected = manifest["parts"].get(member.name)
    if expected is None or not member.isfile():
        raise BackupError(f"{path}: unexpected member {member.name!r} (not in the manifest)")
    stream = archive.extractfile(member)
    assert stream is not None
    # The name was checked against the manifest's own (safe) names: no path escapes.
    target = folder / member.name
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = rows = 0
    with target.open("wb") as out:
        while chunk := stream.read(1024 * 1024):
            digest.update(chunk)
            size += len(chunk)
            rows += chunk.count(b"\n")
            out.write(chunk)
    if digest.hexdigest() != expected.get("sha256") or size != expected.get("bytes"):
        raise BackupError(f"{path}: part {member.name} does not match its checksum in the "
                          "manifest (the archive was changed or damaged)")
    if member.name.startswith("photos/"):
        if digest.hexdigest() != member.name.removeprefix("photos/"):
            raise BackupError(f"{path}: photo {member.name} does not have the SHA-256 it is "
                              "named by")
    elif rows != expected.get("rows"):
        raise BackupError(f"{path}: part {member.name} has {rows} rows, the manifest says "
                          f"{expected.get('rows')}")


# --- comparing a site with an archive ------------------------------------------------------


@dataclass
class Comparison:
    """What comparing a site with an archive found."""

    checked: list[str] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def equal(self) -> bool:
        return not self.differences


def compare_site(snapshot: SiteSnapshot, archive: CheckedArchive, *,
                 read_model_names: list[str]) -> Comparison:
    """Whether the site holds what the archive holds: each event store's events up to the
    archived head and its links (byte for byte, in the archive's canonical form), every
    durable table and photo, each store's hash chain intact, and (when the source's read
    models were complete) the read models rebuilt equal."""
    manifest, result = archive.manifest, Comparison()
    present = set(snapshot.stores())
    for store, expected in manifest["stores"].items():
        if store not in present:
            result.differences.append(f"event store {store} is missing")
            continue
        digest = hashlib.sha256()
        count = 0
        for row in snapshot.events(store, upto=expected["head"]):
            digest.update(event_line(row))
            count += 1
        part = manifest["parts"][f"events/{store}.jsonl"]
        if digest.hexdigest() != part["sha256"]:
            result.differences.append(
                f"event store {store}: its {count} events up to notification "
                f"{expected['head']} differ from the archive's {expected['events']}")
        verdict = snapshot.verdict(store)
        if not verdict.intact:
            first = verdict.broken[0]
            result.differences.append(
                f"event store {store}: hash chain broken in {len(verdict.broken)} stream(s), "
                f"first {first.stream} version {first.version} ({first.breach.value})")
        extra = snapshot.head(store) - expected["head"]
        if extra > 0:
            result.notes.append(f"event store {store} has events recorded after the backup "
                                f"(head {snapshot.head(store)}, archived {expected['head']})")
        # The links are a function of the events: equal events with an intact chain
        # have the archive's links.
        result.checked.append(f"event store {store}: {expected['events']} events, "
                              f"{expected['links']} links")
        if "tracking" in expected:
            _compare_tracking(snapshot, archive, store, result)
    if int(manifest["version"]) < 2:
        result.notes.append(OLD_ARCHIVE_TRACKING)
    by_name = {t.name: t for t in DURABLE_TABLES}
    for name, expected in manifest["tables"].items():
        table = by_name[name]
        found = snapshot.table(table)
        if found is None:
            result.differences.append(f"table {name} is missing")
            continue
        columns, rows = found
        lines = _table_lines_with_photos(table, columns, rows)
        archived = manifest["parts"][f"tables/{name}.jsonl"]["sha256"]
        if hashlib.sha256(b"".join(lines)).hexdigest() != archived:
            result.differences.append(f"table {name}: {len(lines)} rows differ from the "
                                      f"archive's {expected['rows']}")
        result.checked.append(f"table {name}: {expected['rows']} rows")
    read_models = manifest["read_models"]
    archived_heads = {s: v["head"] for s, v in manifest["stores"].items()}
    site_positions = snapshot.read_model_positions(PROJECTION)
    moved_on = {s: p for s, p in site_positions.items()
                if s in archived_heads and p != archived_heads[s]}
    if read_models.get("complete") and moved_on:
        result.notes.append("the site's read models are at other positions than the "
                            f"archived heads ({moved_on}): not compared")
    elif read_models.get("complete"):
        mine = read_models_of(snapshot, read_model_names)
        for table, expected in read_models["tables"].items():
            if mine.get(table) != expected:
                got = mine.get(table, {}).get("rows", "no")
                result.differences.append(
                    f"read model {table}: {got} rows differ from the source's "
                    f"{expected['rows']} (digest)")
        result.checked.append(f"read models: {len(read_models['tables'])} tables equal to "
                              "the source's")
    else:
        result.notes.append("the source's read models were behind its events at backup "
                            f"time ({read_models.get('behind')}): not compared; they are "
                            "rebuilt from the events")
    return result


OLD_ARCHIVE_TRACKING = (
    "the archive is of format version 1, which holds no tracking records: the event stores' "
    "tracking (the ticket follow-up's positions in the grid-case and incident logs) is "
    "empty, so the follow-up follows those logs again from the start and can record a "
    "ticket's linked-work progress a second time")


def _tracked_positions(rows: Iterable[Any]) -> dict[str, int]:
    """The position per followed application (the highest, whatever the rows kept)."""
    found: dict[str, int] = {}
    for name, notification_id in rows:
        found[str(name)] = max(found.get(str(name), 0), int(notification_id))
    return found


def _compare_tracking(snapshot: SiteSnapshot, archive: CheckedArchive, store: str,
                      result: Comparison) -> None:
    """A store's tracking records equal to the archive's (or moved on after it)."""
    expected = archive.manifest["stores"][store]["tracking"]
    rows = snapshot.tracking(store)
    if rows is None:
        result.differences.append(f"event store {store}: its tracking table is missing")
        return
    kept = list(rows)
    digest = hashlib.sha256(b"".join(tracking_line(r) for r in kept)).hexdigest()
    if digest != archive.manifest["parts"][f"tracking/{store}.jsonl"]["sha256"]:
        mine = _tracked_positions(kept)
        archived = _tracked_positions(archive.lines(f"tracking/{store}.jsonl"))
        behind = {name: (mine.get(name), position) for name, position in archived.items()
                  if mine.get(name, 0) < position}
        if behind:
            result.differences.append(
                f"event store {store}: tracking behind the archive's (site, archive) "
                f"{behind}")
        else:
            result.notes.append(f"event store {store}: tracking moved on after the backup "
                                f"({mine}, archived {archived})")
    result.checked.append(f"event store {store}: {expected} tracking records")


def _table_lines_with_photos(table: DurableTable, columns: list[str],
                             rows: Iterator[tuple[Any, ...]]) -> list[bytes]:
    """A table's lines as the archive has them (a photo's bytes checked against its sha256
    instead of being compared again)."""
    if table.name != PHOTO_TABLE:
        return table_lines(columns, rows)
    data = columns.index(PHOTO_DATA_COLUMN)
    key = columns.index("sha256")
    kept = []
    for row in rows:
        if hashlib.sha256(bytes(row[data])).hexdigest() != row[key]:
            kept.append(tuple([*row[:data], "<bytes differ from their sha256>"]))
            continue
        kept.append(tuple(v for i, v in enumerate(row) if i != data))
    return table_lines([c for c in columns if c != PHOTO_DATA_COLUMN], kept)


# --- restoring ----------------------------------------------------------------------------


@dataclass
class RestoreResult:
    """What a restore did and what the check after it found."""

    location: str
    events: dict[str, int]
    tables: dict[str, int]
    photos: int
    comparison: Comparison
    moved_aside: Path | None = None
    tracking: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    """What the restore could not bring back (an old archive without tracking records)."""


def site_contents(settings: Settings) -> list[str]:
    """What already holds data at the site `settings` point at (empty: a fresh site)."""
    if settings.database_url is None:
        if not settings.data_dir.exists():
            return []
        return sorted(p.name for p in settings.data_dir.iterdir())
    schema = settings.database_schema or "public"
    found = []
    with psycopg.connect(settings.database_url) as connection:
        names = [f"{s}_events" for s in DURABLE_STORES] + [t.name for t in DURABLE_TABLES]
        for table in names:
            row = connection.execute("SELECT to_regclass(%s)",
                                     (f'"{schema}"."{table}"',)).fetchone()
            if row is None or row[0] is None:
                continue
            count = connection.execute(SQL("SELECT count(*) FROM {}.{}").format(
                Identifier(schema), Identifier(table))).fetchone()
            if count is not None and count[0]:
                found.append(f"{table} ({count[0]} rows)")
    return found


def restore_backup(archive_path: Path, settings: Settings, *, force: bool = False,
                   clock: Callable[[], datetime],
                   progress: Callable[[str], None] = lambda _: None) -> RestoreResult:
    """Restore an archive onto the fresh site `settings` point at, rebuild its read models
    and compare it with the archive. A site that holds data is refused; embedded, `force`
    moves the data folder aside first (nothing is deleted). PostgreSQL history is never
    overwritten: restore into an empty database or schema."""
    contents = site_contents(settings)
    if contents and (settings.database_url is not None or not force):
        where = (f"data folder {settings.data_dir}" if settings.database_url is None
                 else f"PostgreSQL schema {settings.database_schema or 'public'}")
        hint = ("restore onto a fresh site, or use --force to move the folder's contents "
                "aside" if settings.database_url is None else
                "restore into an empty database (createdb) or another "
                "CITYOPS_DATABASE_SCHEMA: CityOps never deletes recorded history")
        raise BackupError(f"the {where} is not empty ({', '.join(contents[:5])}"
                          f"{', ...' if len(contents) > 5 else ''}): {hint}")
    with ExitStack() as stack:
        if settings.database_url is None:
            settings.data_dir.parent.mkdir(parents=True, exist_ok=True)
            work_parent = settings.data_dir.parent
        else:
            work_parent = Path(tempfile.gettempdir())
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(
            prefix=".cityops-restore-", dir=work_parent)))
        progress("checking the archive")
        archive = check_archive(archive_path, work / "archive")
        if settings.database_url is None:
            target = settings.model_copy(update={"data_dir": work / "site"})
            _restore_embedded(archive, target, progress)
        else:
            target = settings
            _restore_postgres(archive, target, progress)
        progress("rebuilding the read models")
        _rebuild_read_models(target, clock)
        progress("comparing the restored site with the archive")
        snapshot = open_snapshot(target)
        try:
            comparison = compare_site(snapshot, archive,
                                      read_model_names=projected_table_names(target))
        finally:
            snapshot.close()
        moved = None
        if settings.database_url is None:
            moved = _move_into_place(work / "site", settings.data_dir, clock)
        manifest = archive.manifest
        warnings = [] if int(manifest["version"]) >= 2 else [OLD_ARCHIVE_TRACKING]
        for warning in warnings:
            log.warning("restore of %s: %s", archive_path, warning)
        return RestoreResult(
            location=(f"data folder {settings.data_dir}" if settings.database_url is None
                      else f"PostgreSQL schema {settings.database_schema or 'public'}"),
            events={s: v["events"] for s, v in manifest["stores"].items()},
            tables={t: v["rows"] for t, v in manifest["tables"].items()},
            photos=int(manifest.get("photos", 0)), comparison=comparison,
            moved_aside=moved, warnings=warnings,
            tracking={s: v["tracking"] for s, v in manifest["stores"].items()
                      if "tracking" in v})
    raise AssertionError("unreachable")


def _move_into_place(built: Path, data_dir: Path, clock: Callable[[], datetime]) -> Path | None:
    moved = None
    if data_dir.exists():
        if any(data_dir.iterdir()):
            moved = data_dir.with_name(
                f"{data_dir.name}.before-restore-{clock():%Y%m%dT%H%M%S}")
            data_dir.rename(moved)
        else:
            data_dir.rmdir()
    built.rename(data_dir)
    return moved


def _create_event_stores(archive: CheckedArchive, settings: Settings) -> None:
    """Create every event store (with its chain table, and its tracking table when the
    archive holds its tracking records) through the recorders themselves."""
    for store in DURABLE_STORES:
        factory = InfrastructureFactory.construct(
            Environment(store, settings.event_store_env(store)))
        try:
            factory.application_recorder()
            if "tracking" in archive.manifest["stores"].get(store, {}):
                factory.process_recorder()
        finally:
            factory.close()


def _create_tables(settings: Settings) -> None:
    """Create every durable table through the module that owns it."""
    stores: dict[Place, ReadStore] = {}
    try:
        for table in DURABLE_TABLES:
            if table.place not in stores:
                stores[table.place] = _open_place(settings, table.place)
            table.create(stores[table.place])
    finally:
        for store in stores.values():
            store.close()


def _open_place(settings: Settings, place: Place) -> ReadStore:
    if settings.database_url is None:
        name = BASE_STORE_FILE if place is Place.BASE else FEED_STORE_FILE
        return SqliteReadStore(settings.data_dir / name)
    return PostgresReadStore(settings.database_url, settings.database_schema, 1)


def _event_params(archive: CheckedArchive, store: str) -> Iterator[tuple[int, UUID, int, str,
                                                                          bytes]]:
    for nid, oid, version, topic, state in archive.lines(f"events/{store}.jsonl"):
        yield int(nid), UUID(oid), int(version), str(topic), base64.b64decode(state)


def _link_params(archive: CheckedArchive, store: str) -> Iterator[tuple[UUID, int, bytes]]:
    for oid, version, link in archive.lines(f"chain/{store}.jsonl"):
        yield UUID(oid), int(version), bytes.fromhex(link)


def _tracking_params(archive: CheckedArchive, store: str) -> list[tuple[str, int]]:
    if "tracking" not in archive.manifest["stores"][store]:
        return []
    return [(str(name), int(nid)) for name, nid in archive.lines(f"tracking/{store}.jsonl")]


def _table_params(archive: CheckedArchive, name: str) -> Iterator[list[Any]]:
    columns = archive.manifest["tables"][name]["columns"]
    for values in archive.lines(f"tables/{name}.jsonl"):
        row = [base64.b64decode(v["b64"]) if isinstance(v, dict) else v for v in values]
        if name == PHOTO_TABLE:
            row.append(archive.part(f"photos/{row[columns.index('sha256')]}").read_bytes())
        yield row


def _table_columns(archive: CheckedArchive, name: str) -> list[str]:
    columns = list(archive.manifest["tables"][name]["columns"])
    return [*columns, PHOTO_DATA_COLUMN] if name == PHOTO_TABLE else columns


def _batches(rows: Iterable[Any]) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= INSERT_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _restore_embedded(archive: CheckedArchive, target: Settings,
                      progress: Callable[[str], None]) -> None:
    target.data_dir.mkdir(parents=True)
    _create_event_stores(archive, target)
    for store in archive.manifest["stores"]:
        progress(f"restoring event store {store}")
        with _SqliteWrite(target.data_dir / f"{store}.sqlite") as connection:
            for batch in _batches(_event_params(archive, store)):
                connection.executemany(
                    f"INSERT INTO {SQLITE_EVENTS_TABLE} (rowid, originator_id, "
                    "originator_version, topic, state) VALUES (?, ?, ?, ?, ?)",
                    [(n, o.hex, v, t, s) for n, o, v, t, s in batch])
            for batch in _batches(_link_params(archive, store)):
                connection.executemany(
                    f"INSERT INTO {SQLITE_CHAIN_TABLE} VALUES (?, ?, ?)",
                    [(o.hex, v, link) for o, v, link in batch])
            tracking = _tracking_params(archive, store)
            if tracking:
                # The archived records replace what creating the table wrote (the library's
                # migration marker, archived too).
                connection.executemany(
                    f"DELETE FROM {SQLITE_TRACKING_TABLE} WHERE application_name = ?",
                    sorted({(name,) for name, _ in tracking}))
                connection.executemany(
                    f"INSERT INTO {SQLITE_TRACKING_TABLE} (application_name, "
                    "notification_id) VALUES (?, ?)", tracking)
    _create_tables(target)
    for place in Place:
        names = [n for n, t in archive.manifest["tables"].items() if t["place"] == place.value]
        if not names:
            continue
        file = BASE_STORE_FILE if place is Place.BASE else FEED_STORE_FILE
        with _SqliteWrite(target.data_dir / file) as connection:
            for name in names:
                progress(f"restoring table {name}")
                columns = _table_columns(archive, name)
                for batch in _batches(_table_params(archive, name)):
                    connection.executemany(
                        f"INSERT INTO {name} ({', '.join(columns)}) "
                        f"VALUES ({', '.join('?' * len(columns))})", batch)


class _SqliteWrite:
    """One SQLite file written in one transaction."""

    def __init__(self, path: Path) -> None:
        self.connection = sqlite3.connect(path, timeout=30, isolation_level=None)

    def __enter__(self) -> sqlite3.Connection:
        self.connection.execute("BEGIN IMMEDIATE")
        return self.connection

    def __exit__(self, kind: object, *_: object) -> None:
        try:
            self.connection.execute("ROLLBACK" if kind is not None else "COMMIT")
        finally:
            self.connection.close()


def _restore_postgres(archive: CheckedArchive, target: Settings,
                      progress: Callable[[str], None]) -> None:
    assert target.database_url is not None
    _create_event_stores(archive, target)
    _create_tables(target)
    schema = Identifier(target.database_schema or "public")
    with psycopg.connect(target.database_url) as connection, connection.transaction():
        # Everything in one transaction: a failure leaves the database as it was.
        for store in archive.manifest["stores"]:
            progress(f"restoring event store {store}")
            events = Identifier(f"{store}_events")
            chain = Identifier(postgres_chain_table(f"{store}_events"))
            with connection.cursor() as cursor:
                for batch in _batches(_event_params(archive, store)):
                    cursor.executemany(SQL(
                        "INSERT INTO {}.{} (notification_id, originator_id, originator_version, "
                        "topic, state) VALUES (%s, %s, %s, %s, %s)").format(schema, events),
                        batch)
                for batch in _batches(_link_params(archive, store)):
                    cursor.executemany(SQL("INSERT INTO {}.{} (originator_id, "
                                           "originator_version, link) VALUES (%s, %s, %s)"
                                           ).format(schema, chain), batch)
                tracking = _tracking_params(archive, store)
                if tracking:
                    table = Identifier(postgres_tracking_table(store))
                    cursor.executemany(SQL("DELETE FROM {}.{} WHERE application_name = %s"
                                           ).format(schema, table),
                                       sorted({(name,) for name, _ in tracking}))
                    cursor.executemany(SQL("INSERT INTO {}.{} (application_name, "
                                           "notification_id) VALUES (%s, %s)").format(
                                               schema, table), tracking)
                # New events continue after the restored ones.
                cursor.execute(SQL(
                    "SELECT setval(pg_get_serial_sequence(%s, 'notification_id'), "
                    "GREATEST((SELECT MAX(notification_id) FROM {}.{}), 1))").format(
                        schema, events),
                    (f'"{target.database_schema or "public"}"."{store}_events"',))
        for name in archive.manifest["tables"]:
            progress(f"restoring table {name}")
            columns = _table_columns(archive, name)
            statement = SQL("INSERT INTO {}.{} ({}) VALUES ({})").format(
                schema, Identifier(name), SQL(", ").join(Identifier(c) for c in columns),
                SQL(", ").join(SQL("%s") for _ in columns))
            with connection.cursor() as cursor:
                for batch in _batches(_table_params(archive, name)):
                    cursor.executemany(statement, batch)


def _rebuild_read_models(target: Settings, clock: Callable[[], datetime]) -> None:
    """Open the restored site (generation 1 of its read models, empty) and project every
    event store into it. Only the read models: the processes across streams (the ticket
    follow-up) record new events, which is the running site's work, from the restored
    tracking."""
    from cityops.bootstrap import build_system

    system = build_system(target.model_copy(update={"run_projections": False}), clock=clock)
    try:
        for follower in system.followers:
            follower.catch_up()
    finally:
        system.close()


def describe(result: RestoreResult) -> Iterator[str]:
    """A restore's report, line by line."""
    yield f"Restored onto {result.location}:"
    for store, count in result.events.items():
        yield f"  event store {store}: {count} events"
        if store in result.tracking:
            yield f"  event store {store}: {result.tracking[store]} tracking records"
    for table, count in result.tables.items():
        yield f"  table {table}: {count} rows"
    yield f"  photos: {result.photos}"
    if result.moved_aside is not None:
        yield f"The data folder's previous contents were moved to {result.moved_aside}"


@contextmanager
def open_archive(path: Path) -> Iterator[CheckedArchive]:
    """Check an archive into a temporary folder (a context for the CLI's verify)."""
    with tempfile.TemporaryDirectory(prefix=".cityops-verify-") as folder:
        yield check_archive(path, Path(folder))

