"""`cityops history at <instant>`: the city as it stood at a past instant, layer by layer
(the same answer as the API's `as_of`, from the read models' row versions), and single items
with their histories up to it (the API's own item and history routes, asked of the city at
that instant)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import typer

ItemReader = Callable[[Any, UUID], dict[str, Any]]
HistoryReader = Callable[[Any, UUID], list[dict[str, Any]]]


def item_readers(actor: Any) -> dict[str, tuple[ItemReader, HistoryReader | None]]:
    """Per layer (the names of `cityops.projections.city_at.LAYERS`), the API's routes of
    one item and of its history (None: the API has none), read as `actor`."""
    from cityops.command_center.routers import (
        grid_cases,
        hazard_sources,
        hotline_tickets,
        incidents,
        plans,
        resources,
        warnings,
    )

    return {
        "grid-cases": (lambda s, i: grid_cases.get_case(i, s),
                       lambda s, i: grid_cases.case_history(i, s)),
        "incidents": (lambda s, i: incidents.get_incident(i, s),
                      lambda s, i: incidents.incident_history(i, s)),
        "plans": (lambda s, i: plans.get_plan(i, s), None),
        "hazard-sources": (lambda s, i: hazard_sources.get_hazard_source(i, s),
                           lambda s, i: hazard_sources.hazard_source_history(i, s)),
        "hotline-tickets": (lambda s, i: hotline_tickets.get_ticket(i, s, actor),
                            lambda s, i: hotline_tickets.ticket_history(i, s, actor)),
        "resources": (lambda s, i: resources.get_resource(i, s), None),
        "warnings": (lambda s, i: warnings.get_warning(i, s, actor),
                     lambda s, i: warnings.warning_history(i, s, actor)),
    }


def items_at(system: Any, instant: datetime, item_ids: list[UUID], actor: Any
             ) -> list[dict[str, Any]]:
    """Each item as it stood at `instant` (its layer, its document, its history up to
    then), read by the API's routes from the city at that instant; `item` None for an id
    that named nothing yet."""
    from cityops.command_center.time_travel import system_at
    from cityops.domain.errors import NotFound

    past = system_at(system, instant)
    readers = item_readers(actor)
    found = []
    for item_id in item_ids:
        answer: dict[str, Any] = {"id": str(item_id), "layer": None, "item": None,
                                  "history": None}
        for layer, (read_item, read_history) in readers.items():
            try:
                answer["item"] = read_item(past, item_id)
            except NotFound:
                continue
            answer["layer"] = layer
            if read_history is not None:
                answer["history"] = read_history(past, item_id)
            break
        found.append(answer)
    return found


def history_at_command(
    instant: Annotated[str, typer.Argument(
        help="ISO 8601 with a UTC offset, e.g. 2026-03-14T09:26:53+08:00")],
    layer: Annotated[list[str] | None, typer.Option(
        "--layer", help="Only these layers (repeatable): grid-cases, incidents, plans, "
        "hazard-sources, hotline-tickets, resources, warnings")] = None,
    newest: Annotated[int, typer.Option(help="Items listed per layer, newest first")] = 10,
    items: Annotated[list[str] | None, typer.Option(
        "--item", help="Also show this item (an id of any layer) as it stood, with its "
        "history up to INSTANT (repeatable)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the answer as JSON")] = False,
) -> None:
    """Print the city as it stood at INSTANT: each layer's items by state and the newest
    ones, and the key figures (supervision lights then); with --item, single items as they
    stood and their histories up to INSTANT. Exit code 2 for an instant that cannot be
    shown (malformed, no time zone, in the future, before the first event) or an item id
    that is not one."""
    from cityops.accounts_cli import cli_actor
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
    try:
        item_ids = [UUID(text) for text in items or ()]
    except ValueError:
        typer.secho(f"Error: --item takes an item's id (a UUID), not {items!r}", fg="red",
                    err=True)
        raise typer.Exit(2) from None
    system = build_system(load_settings(run_projections=False))
    try:
        try:
            moment = check_past_instant(system, parse_past_instant(instant))
        except InstantRefused as refused:
            typer.secho(f"Error: {refused}", fg="red", err=True)
            raise typer.Exit(2) from None
        system.catch_up()
        answer = city_at(system, moment, layer or tuple(LAYERS), newest=newest)
        if item_ids:
            answer["items"] = items_at(system, moment, item_ids, cli_actor())
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
    for shown in answer.get("items", ()):
        if shown["item"] is None:
            typer.echo(f"\n{shown['id']}: nothing by that id at this instant")
            continue
        doc = shown["item"]
        typer.echo(f"\n{shown['layer']} {shown['id']}: {doc.get('status', '')}, "
                   f"version {doc.get('version')}")
        for entry in shown["history"] or ():
            actor = (entry["actor"] or {}).get("user_id", "")
            typer.echo(f"  {entry['at']}  v{entry['version']:<3} {entry['event']:<24} {actor}")
