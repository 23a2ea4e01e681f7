"""`cityops drills`: a planner starts, steers and deletes drills from the command line.

Drills run inside the command centre's server process (each on its own stores, clock and
replay thread), so these commands talk to that server's API (`/drills`) as the planner who
logs in, exactly as the planners' page does: `--url` (default the configured host and port),
`--user` and the password from `CITYOPS_PASSWORD` or asked for. Refusals are printed as
the API says them (what is wrong), with exit status 2.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Annotated, Any

import typer

from cityops.exercises_cli import read_scenario_file

app = typer.Typer(help="Drills: real history replayed in isolation (docs/drills.md).",
                  no_args_is_help=True)

Url = Annotated[str | None, typer.Option(help="The command centre, e.g. http://127.0.0.1:8000 "
                                         "(default: CITYOPS_HOST and CITYOPS_PORT)")]
User = Annotated[str, typer.Option(help="The planner who acts (password: CITYOPS_PASSWORD, "
                                   "or asked for)")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")]


class Client:
    """The drill API of one server, as one logged-in planner."""

    def __init__(self, url: str | None, user: str) -> None:
        if url is None:
            from cityops.cli import load_settings

            settings = load_settings()
            url = f"http://{settings.host}:{settings.port}"
        self.url = url.rstrip("/")
        password = os.environ.get("CITYOPS_PASSWORD") or getpass.getpass(f"{user}'s password: ")
        answer = self.call("POST", "/auth/login", {"username": user, "password": password},
                           token=None)
        self.token = str(answer["access_token"])

    def call(self, method: str, path: str, body: dict[str, Any] | None = None, *,
             token: str | bool | None = True) -> Any:
        headers = {"Content-Type": "application/json"}
        if token is True:
            headers["Authorization"] = f"Bearer {self.token}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, headers=headers,
                                         method=method)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            try:
                detail = json.loads(error.read()).get("detail", error.reason)
            except ValueError:
                detail = error.reason
            typer.secho(f"{method} {path}: {error.code} {detail}", fg="red", err=True)
            raise typer.Exit(2) from None
        except urllib.error.URLError as error:
            typer.secho(f"cannot reach the command centre at {self.url}: {error.reason}",
                        fg="red", err=True)
            raise typer.Exit(2) from None


def _show(drills: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        json.dump(drills, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    for d in drills:
        typer.echo(f"{d['id']}  {d['status']:<8} {d['speed']:>5}  {d['window_from']} .. "
                   f"{d['window_to']}  drill time {d['drill_time']}  replayed "
                   f"{d['events_replayed']}  skipped {d['events_skipped']}  {d['name']}")


@app.command("list")
def list_drills(url: Url = None, user: User = "planner", as_json: JsonOption = False) -> None:
    """The drills, with their state and progress."""
    _show(Client(url, user).call("GET", "/drills")["data"], as_json)


@app.command()
def start(
    window_from: Annotated[str, typer.Option("--from", help="Start of the window (RFC 3339, "
                                             "with a time zone)")],
    window_to: Annotated[str, typer.Option("--to", help="End of the window (not in the "
                                           "future)")],
    speed: Annotated[str, typer.Option(help="1 to 100 (drill seconds per real second) or "
                                       "max")] = "10",
    title: Annotated[str, typer.Option(help="What the drill is called")] = "Drill",
    scenario: Annotated[str | None, typer.Option(help="An exercise scenario: a shipped "
                                                 "one's name (or, with --scenario-file, "
                                                 "the name of your own)")] = None,
    scenario_file: Annotated[Path | None, typer.Option(
        help="Your own scenario file (YAML), checked against the city before the drill "
             "starts")] = None,
    participant: Annotated[list[str] | None, typer.Option(help="A user invited (repeat)")] = None,
    url: Url = None, user: User = "planner", as_json: JsonOption = False,
) -> None:
    """Start a drill replaying the city's history from --from to --to."""
    body: dict[str, Any] = {"title": title, "window_from": window_from,
                            "window_to": window_to, "speed": speed, "scenario": scenario,
                            "participants": participant or []}
    if scenario_file is not None:
        body["scenario_text"] = read_scenario_file(scenario_file)
        body["scenario"] = scenario or scenario_file.stem
    _show([Client(url, user).call("POST", "/drills", body)], as_json)


def _on(drill_id: str, action: str, body: dict[str, Any] | None, url: str | None, user: str,
        as_json: bool, method: str = "POST") -> None:
    path = f"/drills/{drill_id}" + (f"/{action}" if action else "")
    _show([Client(url, user).call(method, path, body)], as_json)


DrillId = Annotated[str, typer.Argument(help="The drill's id")]


@app.command()
def pause(drill_id: DrillId, url: Url = None, user: User = "planner",
          as_json: JsonOption = False) -> None:
    """Pause a drill (its clock and replay stand still)."""
    _on(drill_id, "pause", None, url, user, as_json)


@app.command()
def resume(drill_id: DrillId, url: Url = None, user: User = "planner",
           as_json: JsonOption = False) -> None:
    """Resume a paused drill."""
    _on(drill_id, "resume", None, url, user, as_json)


@app.command()
def speed(drill_id: DrillId, value: Annotated[str, typer.Argument(help="1..100 or max")],
          url: Url = None, user: User = "planner", as_json: JsonOption = False) -> None:
    """Change a drill's speed."""
    _on(drill_id, "speed", {"speed": value}, url, user, as_json)


@app.command()
def jump(drill_id: DrillId, to: Annotated[str, typer.Argument(help="The drill time to jump "
                                                              "to (RFC 3339)")],
         url: Url = None, user: User = "planner", as_json: JsonOption = False) -> None:
    """Jump a drill forward (the history up to then is replayed at once)."""
    _on(drill_id, "jump", {"to": to}, url, user, as_json)


@app.command()
def invite(drill_id: DrillId, users: Annotated[list[str], typer.Argument(help="Users")],
           url: Url = None, user: User = "planner", as_json: JsonOption = False) -> None:
    """Invite participants (they switch into the drill on the dashboard or field page)."""
    _on(drill_id, "participants", {"users": users}, url, user, as_json)


@app.command()
def finish(drill_id: DrillId, url: Url = None, user: User = "planner",
           as_json: JsonOption = False) -> None:
    """Finish a drill (it stays for review until deleted)."""
    _on(drill_id, "finish", None, url, user, as_json)


@app.command()
def delete(drill_id: DrillId, url: Url = None, user: User = "planner",
           as_json: JsonOption = False) -> None:
    """Delete a drill: it stops and its stores are removed entirely."""
    _on(drill_id, "", None, url, user, as_json, method="DELETE")
