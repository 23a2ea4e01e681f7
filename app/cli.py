"""The `cityops` command: run the demo, serve the command centre, and operate the system."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated

import typer

from cityops.settings import SECRET_KEY_FILE, Settings, read_settings

app = typer.Typer(
    help=(
        "CityOps: event-sourced city operations and emergency command.\n\n"
        "Start with `cityops demo` (embedded: no server to install), then open the printed "
        "address. Settings come from CITYOPS_* environment variables; see README.md."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment and options; a bad value is a clear error, not a trace
    (`read_settings`)."""
    return read_settings(Settings, **overrides)


def _run_web(settings: Settings, system: object, drill_room: object = None) -> None:
    import uvicorn

    from cityops.bootstrap import freeze_long_lived_objects
    from cityops.command_center.app import create_app

    web = create_app(system, drill_room=drill_room)  # type: ignore[arg-type]
    freeze_long_lived_objects()
    typer.secho(f"CityOps command centre on http://{settings.host}:{settings.port}/ "
                f"(API docs at /docs)", fg="green")
    if settings.secret_key is None:
        typer.secho(f"Login tokens are signed with this install's own key "
                    f"({settings.data_dir / SECRET_KEY_FILE}); server processes on other "
                    "machines need CITYOPS_SECRET_KEY, the same in each.", fg="yellow")
    # permessage-deflate refused: browsers always offer it, and accepted it costs a
    # compression of every pushed message once per client (docs/websocket.md).
    # Logging is configured by `main` (text or JSON): uvicorn's records go to the same
    # handler, and its access log is replaced by the app's, which has request ids.
    uvicorn.run(web, host=settings.host, port=settings.port, log_level="info",
                log_config=None, access_log=False, ws_per_message_deflate=False)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on")] = None,
) -> None:
    """Run the command centre on the configured stores (SQLite, or PostgreSQL if
    CITYOPS_DATABASE_URL is set)."""
    from cityops.bootstrap import build_system

    settings = load_settings(host=host, port=port)
    system = build_system(settings)
    _run_web(settings, system)


@app.command()
def demo(
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8000,
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    seed: Annotated[int, typer.Option(help="Seed of the simulated day (same seed, same day)")] = 7,
    speed: Annotated[float, typer.Option(min=1.0, max=3600.0,
                                         help="Simulated seconds per real second")] = 60.0,
    data_dir: Annotated[Path, typer.Option(help="Folder for the demo's event stores "
                                           "(wiped at start)")] = Path("cityops-data/demo"),
) -> None:
    """Run the embedded demo: the demo city, a simulated day of city activity (reports,
    hotline calls, sensor alarms, an escalating incident, moving resources) and the command
    centre at http://127.0.0.1:8000/."""
    from cityops.simulator import run_demo

    if data_dir.exists():
        shutil.rmtree(data_dir)
    settings = load_settings(host=host, port=port, data_dir=data_dir, database_url=None)
    run_demo(settings, seed=seed, speed=speed, serve=_run_web)


def _add_sub_commands() -> None:
    """The operators' command groups, each owned by the package it operates."""
    from cityops.accounts_cli import api_keys_app, departments_app, users_app
    from cityops.backup_cli import backup_app, history_app
    from cityops.drills_cli import app as drills_app
    from cityops.exercises_cli import app as scenarios_app
    from cityops.feeds.cli import app as feeds_app
    from cityops.ingest.cli import app as ingest_app
    from cityops.projections.cli import app as projections_app

    app.add_typer(ingest_app, name="ingest")
    app.add_typer(projections_app, name="projections")
    app.add_typer(feeds_app, name="feeds")
    app.add_typer(users_app, name="users")
    app.add_typer(departments_app, name="departments")
    app.add_typer(api_keys_app, name="api-keys")
    app.add_typer(backup_app, name="backup")
    app.add_typer(history_app, name="history")
    app.add_typer(scenarios_app, name="scenarios")
    from cityops.time_travel_cli import history_at_command

    history_app.command("at")(history_at_command)  # the city at a past instant
    app.add_typer(drills_app, name="drills")


_add_sub_commands()


def main() -> None:
    from cityops.logs import configure_logging_or_exit

    configure_logging_or_exit()
    app()


if __name__ == "__main__":
    main()
