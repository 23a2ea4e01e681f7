"""`cityops history at <instant>`: the city as it stood at a past instant, layer by layer
(the same answer as the API's `as_of`, from the read models' row versions)."""

from __future__ import annotations

import json
from typing import Annotated

import typer


def history_at_command(
    instant: Annotated[str, typer.Argument(
        help="ISO 8601 with a UTC offset, e.g. 2026-03-14T09:26:53+08:00")],
    layer: Annotated[list[str] | None, typer.Option(
        "--layer", help="Only these layers (repeatable): grid-cases, incidents, plans, "
        "hazard-sources, hotline-tickets, resources, warnings")] = None,
    newest: Annotated[int, typer.Option(help="Items listed per layer, newest first")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print the answer as JSON")] = False,
) -> None:
    """Print the city as it stood at INSTANT: each layer's items by state and the newest
    ones, and the key figures (supervision lights then). Exit code 2 for an instant that
    cannot be shown (malformed, no time zone, in the future, before the first event)."""
    from cityops.bootstrap import build_system
    from cityops.cli import load_settings
    from cityops.projections.as_of import (
        InstantRefused,
        check_past_instant,
        parse_past_instant,
    )
    from cityops.projections.city_at import LAYERS, city_at

    unknown = [name for name in layer or () if name not in LAYERS]
    if unknown:
        typer.secho(f"Error: no layer {', '.join(unknown)}; the layers: {', '.join(LAYERS)}",
                    fg="red", err=True)
        raise typer.Exit(2)
    system = build_system(load_settings(run_projections=False))
    try:
        try:
            moment = check_past_instant(system, parse_past_instant(instant))
        except InstantRefused as refused:
            typer.secho(f"Error: {refused}", fg="red", err=True)
            raise typer.Exit(2) from None
        system.catch_up()
        answer = city_at(system, moment, layer or tuple(LAYERS), newest=newest)
    finally:
        system.close()
    if as_json:
        typer.echo(json.dumps(answer, indent=2, default=str))
        return
    zone = system.catalogue.calendar.timezone
    typer.secho(f"The city as it stood at {moment.astimezone(zone).isoformat()} "
                f"({zone}) - the past, not now", bold=True)
    for name, found in answer["layers"].items():
        states = ", ".join(f"{state} {count}" for state, count in found["by_status"].items())
        typer.echo(f"\n{name}: {found['total']}" + (f" ({states})" if states else ""))
        for item in found["newest"]:
            label = (item.get("category") or item.get("kind") or item.get("code")
                     or item.get("topic") or item.get("hazard_type") or "")
            typer.echo(f"  {item['id']}  {item.get('status', ''):<12} {label}")
    lights = answer["key_figures"]["open_cases_by_light"]
    typer.echo(f"\nopen cases by light: green {lights['green']}, yellow {lights['yellow']}, "
               f"red {lights['red']}")
