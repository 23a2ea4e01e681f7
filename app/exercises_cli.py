"""`cityops scenarios ...`: check scenario files (every problem by line) and play one in an
isolated embedded system of its own (its own data folder, its own simulated clock), never in
live data (docs/scenarios.md)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from eventsourcing.persistence import ConnectionPoolClosedError

from cityops.domain.actors import Actor, Role
from cityops.domain.exercises.scenario import Scenario, ScenarioInvalid

if TYPE_CHECKING:
    from cityops.bootstrap import CitySystem
    from cityops.exercises import ExerciseDriver, InjectResult
    from cityops.settings import Settings

app = typer.Typer(help="Exercise scenarios (master scenario events lists): check and play.",
                  no_args_is_help=True)

CLI_PLANNER = Actor("cityops-cli", Role.PLANNER)
"""Who plans an exercise played from the command line."""


def _parser(settings: Settings) -> Callable[[str], Scenario]:
    from cityops.bootstrap import load_city, scenario_parser
    from cityops.domain.catalogue import Catalogue
    from cityops.domain.hazards.catalogue import HazardCatalogue

    catalogue = Catalogue.load(settings.catalogue_dir)
    city = load_city(settings, catalogue, HazardCatalogue.load(settings.catalogue_dir))
    return scenario_parser(city, catalogue)


def read_scenario_file(path: Path) -> str:
    """A scenario file's text (a clear error and exit when it cannot be read as UTF-8)."""
    try:
        return path.read_bytes().decode("utf-8")
    except OSError as error:
        typer.secho(f"{path}: cannot read: {error.strerror}", fg="red", err=True)
        raise typer.Exit(2) from None
    except UnicodeDecodeError:
        typer.secho(f"{path}:1: the file is not UTF-8 text", fg="red", err=True)
        raise typer.Exit(1) from None


def _report_problems(path: Path, error: ScenarioInvalid) -> None:
    for problem in error.problems:
        typer.secho(f"{path}:{problem.line}: {problem.message}", fg="red", err=True)
    count = len(error.problems)
    typer.secho(f"{path}: refused, {count} problem{'' if count == 1 else 's'}", fg="red",
                err=True)


@app.command()
def validate(
    files: Annotated[list[Path], typer.Argument(help="Scenario files (YAML)")],
) -> None:
    """Check scenario files against the city and the catalogues: every problem is printed
    as FILE:LINE: message, and the exit status is 1 if any file is refused."""
    from cityops.cli import load_settings

    parse = _parser(load_settings())
    refused = False
    for path in files:
        try:
            scenario = parse(read_scenario_file(path))
        except ScenarioInvalid as error:
            _report_problems(path, error)
            refused = True
            continue
        typer.secho(f"{path}: valid: {scenario.title!r}, {len(scenario.injects)} injects, "
                    f"{len(scenario.objectives)} objectives, {scenario.duration} long",
                    fg="green")
    if refused:
        raise typer.Exit(1)


def _describe(result: InjectResult, at: timedelta) -> str:
    mark = "applied" if result.outcome.value == "applied" else "REFUSED"
    detail = f": {result.detail}" if result.detail else ""
    return f"+{at} inject {result.inject_id} {mark}{detail}"


def _print_objectives(driver: ExerciseDriver) -> None:
    for result in driver.objectives():
        colour = {"met": "green", "missed": "red"}.get(result.status.value, "yellow")
        typer.secho(f"  {result.objective_id:<24} {result.status.value:<8} {result.detail}",
                    fg=colour)


def play(system: CitySystem, driver: ExerciseDriver, *, speed: float,
         stop: threading.Event | None = None,
         echo: Callable[[str], object] = typer.echo) -> None:
    """Play the exercise to its end: at `speed` times real time (0: as fast as possible,
    jumping the simulated clock from inject to inject), then end it."""
    from cityops.simulator import SimulatedClock

    clock = system.clock
    stop = stop or threading.Event()
    while not stop.is_set():
        for result in driver.tick():
            echo(_describe(result, driver.elapsed()))
        upcoming = driver.next_inject_at()
        target = upcoming if upcoming is not None else driver.ends_at()
        now = clock()
        if now >= driver.ends_at() and upcoming is None:
            break
        if speed == 0 and isinstance(clock, SimulatedClock):
            clock.advance_to(target)
            continue
        stop.wait(max(0.05, min(1.0, (target - now).total_seconds() / max(speed, 1.0))))
    if not stop.is_set():
        driver.end("the scenario's duration is over")


@app.command()
def run(
    file: Annotated[Path, typer.Argument(help="Scenario file (YAML)")],
    speed: Annotated[float, typer.Option(min=0.0, max=3600.0,
                                         help="Simulated seconds per real second (0: as "
                                              "fast as possible)")] = 0.0,
    data_dir: Annotated[Path, typer.Option(help="Folder of the exercise's own event stores "
                                           "(must be empty or absent)")]
    = Path("cityops-data/exercise"),
    serve: Annotated[bool, typer.Option(help="Serve the command centre over the exercise "
                                        "(participants act, evaluators rate)")] = False,
    port: Annotated[int, typer.Option(help="Port to listen on (with --serve)")] = 8000,
) -> None:
    """Play a scenario in an isolated embedded system of its own (empty city, simulated
    clock): its injects go in through ingest and the commands, the objectives are measured
    from its events and printed; with --serve, the command centre serves it meanwhile."""
    from cityops.bootstrap import build_system
    from cityops.cli import _run_web, load_settings
    from cityops.demo_users import create_demo_users, demo_logins_text
    from cityops.domain.clock import system_clock
    from cityops.exercises import ExerciseDriver, ExerciseIngest, prepare_city_registers
    from cityops.simulator import SimulatedClock

    text = read_scenario_file(file)
    if data_dir.exists() and any(data_dir.iterdir()):
        typer.secho(f"{data_dir} is not empty: an exercise gets a folder of its own (never "
                    "live data); choose another --data-dir", fg="red", err=True)
        raise typer.Exit(2)
    if serve and speed == 0:
        speed = 1.0  # people act in it: not faster than they can
    settings = load_settings(port=port, data_dir=data_dir, database_url=None,
                             run_projections=serve)
    try:
        scenario = _parser(settings)(text)
    except ScenarioInvalid as error:
        _report_problems(file, error)
        raise typer.Exit(1) from None
    if scenario.start.kind.value != "empty":
        typer.secho(f"{file}: this scenario plays on top of a replayed window of history: "
                    "start a drill with it (the drill room replays the window); `run` plays "
                    "scenarios that start from an empty city", fg="red", err=True)
        raise typer.Exit(2)
    # The clock stands still while the city is set up (registers, logins), then runs.
    clock = SimulatedClock(system_clock(), 0.0)
    system = build_system(settings, clock=clock)
    ingest = ExerciseIngest.open(system)
    try:
        prepare_city_registers(system)
        if serve:
            create_demo_users(system.accounts)
        # The exercise starts after the city's registers (a sensor reads nothing at the very
        # instant it is installed).
        clock.restart(clock() + timedelta(minutes=1), speed)
        driver = ExerciseDriver.start(system, text, actor=CLI_PLANNER, ingest=ingest)
        typer.secho(f"exercise {driver.exercise_id}: {driver.scenario.title} "
                    f"({len(driver.scenario.injects)} injects, "
                    f"{driver.scenario.duration} long)", fg="green")
        if not serve:
            play(system, driver, speed=speed)
            typer.echo("objectives at the end:")
            _print_objectives(driver)
            return
        print(demo_logins_text(), flush=True)
        stop = threading.Event()

        def play_while_served() -> None:
            try:
                play(system, driver, speed=speed, stop=stop)
            except ConnectionPoolClosedError:
                # The command centre shut down and closed the exercise's stores first.
                stop.set()

        player = threading.Thread(target=play_while_served, name="cityops-exercise",
                                  daemon=True)
        system.start_projections()
        player.start()
        try:
            _run_web(settings, system)
        finally:
            stop.set()
            player.join(timeout=5)
    finally:
        ingest.close()
        system.close()
