"""`cityops projections`: rebuild the read models without downtime, show how far each
projection is behind its event store, and run the projection process."""

from __future__ import annotations

import json
import logging
import signal
import threading
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from cityops.projections.generations import (
    REBUILD_BATCH_SIZE,
    GenerationError,
    GenerationState,
    rebuild,
)

if TYPE_CHECKING:
    from cityops.bootstrap import CitySystem

log = logging.getLogger(__name__)

app = typer.Typer(
    help="Read models: rebuild them from the event stores without downtime, see how far "
    "each projection is behind, and run the projection process.",
    no_args_is_help=True,
)
console = Console()


class EventRateColumn(ProgressColumn):
    """Events per second, measured by the progress bar over its recent updates."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} events/s" if speed else "- events/s", style="cyan")


def _system(**overrides: Any) -> CitySystem:
    # Imported here: `cityops.cli` adds this sub-app, so it cannot be imported at the top.
    from cityops.bootstrap import build_system
    from cityops.cli import load_settings

    return build_system(load_settings(**overrides))


@app.command("rebuild")
def rebuild_command(
    drop_old: Annotated[bool, typer.Option(
        "--drop-old", help="Drop the replaced generation right after the switch (once readers "
        "have noticed it) instead of after the grace period")] = False,
    restart: Annotated[bool, typer.Option(
        "--restart", help="Drop an unfinished generation an interrupted rebuild left and "
        "start from zero (by default the rebuild resumes it)")] = False,
    batch_size: Annotated[int, typer.Option(
        min=1, max=100_000, help="Notifications per transaction")] = REBUILD_BATCH_SIZE,
) -> None:
    """Replay every event store into a new generation of the read models while the current
    one keeps serving, then switch reads over atomically."""
    system = _system(run_projections=False)
    generations = system.generations
    if generations.rebuilt_on_start is not None:
        # Started on read models of older table definitions: starting rebuilt them.
        result = generations.rebuilt_on_start
        system.close()
        console.print(
            f"Generation {result.generation} serves reads now (was {result.retired}, built "
            f"with other table definitions): {result.events:,} events in "
            f"{result.seconds:.1f} s ({result.events_per_second:,.0f} events/s).")
        return
    try:
        expired = generations.drop_expired()
        if expired:
            console.print(f"Dropped generations past their grace period: {expired}")
        serving = generations.active().number
        with Progress(
            TextColumn("[bold]generation {task.fields[generation]}"),
            BarColumn(),
            MofNCompleteColumn(),
            EventRateColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        ) as progress:
            generation = generations.begin_rebuild(restart=restart)
            task = progress.add_task("rebuild", total=None, generation=generation.number)

            def report(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            result = rebuild(generations, generation=generation, drop_old=drop_old,
                             batch_size=batch_size, progress=report)
    except GenerationError as error:
        console.print(f"[red]Cannot rebuild: {error}")
        raise typer.Exit(1) from None
    finally:
        system.close()
    console.print(
        f"Generation {result.generation} serves reads now (was {serving}): "
        f"{result.events:,} events in {result.seconds:.1f} s "
        f"({result.events_per_second:,.0f} events/s).")
    if result.dropped is not None:
        console.print(f"Generation {result.dropped} dropped.")
    elif result.retired is not None:
        minutes = generations.grace_period / timedelta(minutes=1)
        console.print(f"Generation {result.retired} is retired; it is dropped after "
                      f"{minutes:g} minutes (or run `cityops projections drop "
                      f"{result.retired}`).")


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """Each generation of the read models, and for each projection its position, the head
    of its event store and the lag between them; and the aggregates the active generation's
    projections have set aside (they could not be projected)."""
    system = _system(run_projections=False)
    try:
        generations = system.generations
        failing = [mark.as_dict() for follower in system.followers
                   for mark in follower.failing()]
        report: list[dict[str, Any]] = []
        for record in generations.registry.records():
            if record.state is GenerationState.DROPPED:
                continue
            report.append({
                "generation": record.number,
                "state": record.state.value,
                "location": generations.storage.location(record.number),
                "current_schema": record.schema_digest == generations.digest,
                "created_at": record.created_at.isoformat(),
                "activated_at": record.activated_at.isoformat() if record.activated_at
                else None,
                "retired_at": record.retired_at.isoformat() if record.retired_at else None,
                "projections": [
                    {"application": p.application, "position": p.position, "head": p.head,
                     "lag": p.lag}
                    for p in generations.progress_of(record.number)
                ],
            })
    finally:
        system.close()
    if as_json:
        typer.echo(json.dumps({"projection": generations.projection, "generations": report,
                               "failing_aggregates": failing}, indent=2))
        return
    for generation in report:
        title = (f"Generation {generation['generation']} — {generation['state']} "
                 f"({generation['location']})")
        if generation["state"] == GenerationState.RETIRED.value:
            title += ", not followed any more"
        if not generation["current_schema"]:
            title += " [yellow]built by other code: rebuild[/yellow]"
        table = Table(title=title, title_justify="left")
        for column in ("projection", "position", "head", "lag"):
            table.add_column(column, justify="left" if column == "projection" else "right")
        for row in generation["projections"]:
            lag = row["lag"]
            shown = f"{lag:,}"
            if lag and generation["state"] != GenerationState.RETIRED.value:
                shown = f"[red]{shown}[/red]"
            table.add_row(row["application"], f"{row['position']:,}", f"{row['head']:,}",
                          shown)
        console.print(table)
    if failing:
        table = Table(title="[red]Aggregates set aside[/red] (retried at start, on a new "
                      "event, and periodically)", title_justify="left")
        for column in ("stream", "aggregate", "since", "attempts", "error"):
            table.add_column(column)
        for mark in failing:
            table.add_row(mark["stream"], mark["aggregate_id"], mark["first_failed_at"],
                          str(mark["attempts"]), mark["error"])
        console.print(table)


@app.command()
def drop(generation: Annotated[int, typer.Argument(help="The generation to drop")]) -> None:
    """Drop a retired generation now (never the one serving reads)."""
    system = _system(run_projections=False)
    try:
        system.generations.drop(generation)
    except GenerationError as error:
        console.print(f"[red]Cannot drop: {error}")
        raise typer.Exit(1) from None
    finally:
        system.close()
    console.print(f"Generation {generation} dropped.")


@app.command()
def run(
    report_every: Annotated[float, typer.Option(
        min=1.0, help="Seconds between lag reports in the log")] = 60.0,
    metrics_port: Annotated[int | None, typer.Option(
        min=1, max=65535, help="Serve /metrics and /health on this port (default "
        "CITYOPS_METRICS_PORT; unset: none)")] = None,
) -> None:
    """The projection process: follow every event store into the read models (switching to a
    new generation when a rebuild does) and push supervision light changes, until stopped."""
    from cityops.bootstrap import build_operations, start_metrics_server

    system = _system(run_projections=True)
    operations = build_operations(system)
    stopping = threading.Event()

    def stop(signum: int, _: Any) -> None:
        log.info("signal %d: stopping the projection process", signum)
        stopping.set()

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        from cityops.bootstrap import freeze_long_lived_objects

        freeze_long_lived_objects()
        system.start_projections()
        start_metrics_server(operations, system.settings, metrics_port)
        console.print(f"Following {len(system.followers)} event stores into read-model "
                      f"generation {system.generations.active().number}; Ctrl-C stops.")
        while not stopping.wait(report_every):
            lag = {f.application_name: f.head() - f.position() for f in system.followers}
            log.info("generation %d, lag %s; processes' lag %s",
                     system.generations.active().number, lag,
                     {process.name: process.lag() for process in system.processes})
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        operations.close()
        system.close()
