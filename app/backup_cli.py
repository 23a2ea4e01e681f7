"""`cityops backup` (create, verify, restore the disaster backup) and `cityops history`
(verify that no stored event was edited, deleted or inserted)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from cityops.backup import (
    BackupError,
    compare_site,
    create_backup,
    describe,
    open_archive,
    projected_table_names,
    restore_backup,
)
from cityops.domain.application import system_clock
from cityops.site import open_snapshot

backup_app = typer.Typer(
    help="The disaster backup: one archive of every event store, the accounts, the photos "
    "and the other durable tables; restored onto a fresh site with its read models rebuilt. "
    "See docs/backup-restore.md.",
    no_args_is_help=True,
)
history_app = typer.Typer(
    help="Tamper evidence: check every event store's hash chains.",
    no_args_is_help=True,
)


def _settings() -> object:
    from cityops.cli import load_settings

    return load_settings()


def _fail(error: BackupError) -> typer.Exit:
    typer.secho(f"Error: {error}", fg="red", err=True)
    return typer.Exit(1)


@backup_app.command("create")
def create_command(
    archive: Annotated[Path, typer.Argument(help="The archive file to write (.tar.gz)")],
) -> None:
    """Write a consistent archive of the site while it runs."""
    from cityops.settings import Settings

    settings = _settings()
    assert isinstance(settings, Settings)
    try:
        result = create_backup(settings, archive, clock=system_clock)
    except BackupError as error:
        raise _fail(error) from None
    manifest = result.manifest
    typer.echo(f"Backup written to {result.path} at {manifest['created_at']}:")
    for store, figures in manifest["stores"].items():
        typer.echo(f"  event store {store}: {figures['events']} events (head "
                   f"{figures['head']})")
        if "tracking" in figures:
            typer.echo(f"  event store {store}: {figures['tracking']} tracking records")
    for table, figures in manifest["tables"].items():
        typer.echo(f"  table {table}: {figures['rows']} rows")
    typer.echo(f"  photos: {manifest['photos']}")
    if not manifest["read_models"]["complete"]:
        typer.echo("  (read models were behind the events: a restore rebuilds them anyway)")


@backup_app.command("verify")
def verify_command(
    archive: Annotated[Path, typer.Argument(help="The archive to check")],
    archive_only: Annotated[bool, typer.Option(
        "--archive-only", help="Only check the archive itself (checksums, format), not the "
        "site")] = False,
) -> None:
    """Check an archive, and that the configured site holds what it holds: the events up to
    the archived heads, unchanged; every durable table and photo; intact hash chains; read
    models equal to the source's. Exit code 1 on any difference."""
    from cityops.settings import Settings

    settings = _settings()
    assert isinstance(settings, Settings)
    try:
        with open_archive(archive) as checked:
            typer.echo(f"Archive {archive}: format version {checked.manifest['version']}, "
                       f"created {checked.manifest.get('created_at')}, every part matches "
                       "its checksum.")
            if archive_only:
                return
            snapshot = open_snapshot(settings)
            try:
                comparison = compare_site(snapshot, checked,
                                          read_model_names=projected_table_names(settings))
            finally:
                snapshot.close()
    except BackupError as error:
        raise _fail(error) from None
    for line in comparison.checked:
        typer.echo(f"  checked {line}")
    for note in comparison.notes:
        typer.echo(f"  note: {note}")
    if not comparison.equal:
        for difference in comparison.differences:
            typer.secho(f"  DIFFERS: {difference}", fg="red")
        raise typer.Exit(1)
    typer.secho("The site holds everything the archive holds.", fg="green")


@backup_app.command("restore")
def restore_command(
    archive: Annotated[Path, typer.Argument(help="The archive to restore")],
    force: Annotated[bool, typer.Option(
        "--force", help="Embedded only: move a non-empty data folder aside "
        "(<folder>.before-restore-<time>) instead of refusing")] = False,
) -> None:
    """Restore an archive onto a fresh site (the configured data folder or PostgreSQL
    database, either back end), rebuild every read model, and check the result against
    the archive."""
    from cityops.settings import Settings

    settings = _settings()
    assert isinstance(settings, Settings)
    try:
        result = restore_backup(archive, settings, force=force, clock=system_clock,
                                progress=lambda step: typer.echo(f"... {step}"))
    except BackupError as error:
        raise _fail(error) from None
    for line in describe(result):
        typer.echo(line)
    for warning in result.warnings:
        typer.secho(f"  WARNING: {warning}", fg="yellow")
    for note in result.comparison.notes:
        typer.echo(f"  note: {note}")
    if not result.comparison.equal:
        for difference in result.comparison.differences:
            typer.secho(f"  DIFFERS: {difference}", fg="red")
        raise typer.Exit(1)
    typer.secho("Restored site checked against the archive: equal.", fg="green")


@history_app.command("verify")
def history_verify_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print the findings as JSON")] = False,
) -> None:
    """Recompute every stream's hash chain and report the first broken link of each stream
    (an edited, deleted or inserted event). Exit code 1 if any is broken."""
    from cityops.settings import Settings

    settings = _settings()
    assert isinstance(settings, Settings)
    snapshot = open_snapshot(settings)
    try:
        verdicts = [snapshot.verdict(store) for store in snapshot.stores()]
    finally:
        snapshot.close()
    broken = [b for v in verdicts for b in v.broken]
    if as_json:
        typer.echo(json.dumps({"intact": not broken,
                               "stores": [v.as_dict() for v in verdicts]}, indent=2))
    else:
        for verdict in verdicts:
            state = "intact" if verdict.intact else f"{len(verdict.broken)} stream(s) broken"
            typer.echo(f"{verdict.store}: {verdict.events} events in {verdict.streams} "
                       f"streams, {state}")
        for link in broken:
            typer.secho(f"  BROKEN {link.store} stream {link.stream} version {link.version}: "
                        f"{link.breach.value}: {link.detail}", fg="red")
    if broken:
        raise typer.Exit(1)
