"""`cityops feeds`: run the feed process, see how far behind it is, and manage departments'
subscriptions as an administrator."""

from __future__ import annotations

import getpass
import json
import logging
import secrets
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Annotated, Any
from uuid import UUID

import typer

from cityops.domain.actors import Actor, Role
from cityops.domain.commands import CommandContext
from cityops.domain.errors import DomainError, InvalidValue
from cityops.domain.geometry import Area
from cityops.feeds.commands import Subscribe, Unsubscribe
from cityops.feeds.streams import Trigger, stream_named
from cityops.feeds.subscription import AreaFilter, Delivery, DeliveryKind, SubscriptionFilter

app = typer.Typer(
    help="Department feeds: domain events to Kafka topics and webhooks, by subscription, "
    "respecting each field's sharing class. Settings: CITYOPS_* and CITYOPS_FEEDS_*.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
subscriptions_app = typer.Typer(help="Departments' subscriptions (for administrators).",
                                no_args_is_help=True)
app.add_typer(subscriptions_app, name="subscriptions")

GENERATED_SECRET_BYTES = 32


@contextmanager
def feed_service() -> Iterator[Any]:
    """The feeds over the city system, closed on the way out (`system_and_feeds`)."""
    with system_and_feeds() as (_, service):
        yield service


@contextmanager
def system_and_feeds() -> Iterator[tuple[Any, Any]]:
    """The city system and its feeds, closed on the way out; domain and catalogue errors
    become one red line and exit status 1."""
    from cityops.bootstrap import build_system
    from cityops.cli import load_settings
    from cityops.feeds.service import build_feed_service

    settings = load_settings()
    feed_settings = settings.feeds
    try:
        system = build_system(settings)
    except DomainError as error:
        typer.secho(str(error), fg="red", err=True)
        raise typer.Exit(1) from None
    try:
        service = build_feed_service(system, feed_settings)
    except DomainError as error:
        system.close()
        typer.secho(str(error), fg="red", err=True)
        raise typer.Exit(1) from None
    try:
        yield system, service
    except DomainError as error:
        typer.secho(str(error), fg="red", err=True)
        raise typer.Exit(1) from None
    finally:
        service.close()
        system.close()


@app.command()
def run(
    metrics_port: Annotated[int | None, typer.Option(
        min=1, max=65535, help="Serve /metrics and /health on this port (default "
        "CITYOPS_METRICS_PORT; unset: none)")] = None,
) -> None:
    """Run the feed process: the Kafka publisher (when CITYOPS_KAFKA_BOOTSTRAP_SERVERS is
    set) and webhook delivery, until SIGTERM or Ctrl-C."""
    from cityops.bootstrap import build_operations, start_metrics_server
    from cityops.metrics import FeedCollector

    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        logging.getLogger(__name__).info("signal %s: stopping the feeds", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with system_and_feeds() as (system, service):
        operations = build_operations(system, projections=False,
                                      feed_positions=service.published_positions)
        try:
            service.start()
            feeds = operations.health.feeds
            assert feeds is not None

            def published() -> int | None:
                return service.kafka.published if service.kafka is not None else None

            def cap_alerts() -> tuple[int, int] | None:
                log = service.cap_alerts
                return (log.written, log.refused) if log.warnings is not None else None

            operations.metrics.register(FeedCollector(feeds, service.loop_failures,
                                                      published, cap_alerts))
            start_metrics_server(operations, system.settings, metrics_port)
            kafka = (f"Kafka at {service.bootstrap}, topics {service.topics.prefix}.*"
                     if service.bootstrap else "no Kafka (embedded): webhooks only")
            typer.secho(f"CityOps feeds running: {kafka}", fg="green")
            stop.wait()
            service.stop()
        finally:
            operations.close()


@app.command()
def status(as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False) -> None:
    """Positions and lag of each stream (Kafka feed and webhook outbox) and the webhook
    deliveries by state."""
    with feed_service() as service:
        report = service.status()
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    kafka = report["kafka"]
    if kafka is None:
        typer.echo("Kafka: not configured (embedded: webhooks only)")
    elif kafka["error"]:
        typer.secho(f"Kafka: positions unreadable: {kafka['error']}", fg="red")
    else:
        typer.echo(f"Kafka: {kafka['bootstrap']}, topics {kafka['topic_prefix']}.*")
    typer.echo(f"{'stream':<12} {'head':>8} {'kafka':>8} {'lag':>6} {'webhooks':>9} {'lag':>6}")
    for stream, entry in report["streams"].items():
        kafka_position = entry.get("kafka_position", "-")
        kafka_lag = entry.get("kafka_lag", "-")
        typer.echo(f"{stream:<12} {entry['head']:>8} {kafka_position:>8} {kafka_lag:>6} "
                   f"{entry['webhook_position']:>9} {entry['webhook_lag']:>6}")
    counts = ", ".join(f"{state} {n}" for state, n in report["webhook_deliveries"].items())
    typer.echo(f"webhook deliveries: {counts}")


def admin(user: str | None) -> Actor:
    """The administrator acting from the command line (accountable by name)."""
    return Actor(user_id=user or getpass.getuser(), role=Role.ADMIN)


AsUser = Annotated[str | None, typer.Option("--as-user",
                                            help="Administrator's user id (default: login)")]


@subscriptions_app.command("list")
def list_subscriptions(
    department: Annotated[str | None, typer.Option(help="Only this department's")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """List subscriptions (all departments, or one)."""
    with feed_service() as service:
        found = [s.summary() for s in service.subscriptions.all(department)]
    if as_json:
        typer.echo(json.dumps(found, indent=2))
        return
    if not found:
        typer.echo("no subscriptions")
    for item in found:
        delivery = item["delivery"]
        where = delivery["url"] if delivery["kind"] == "webhook" else "kafka"
        typer.echo(f"{item['id']}  {item['department']:<22} {item['status']:<9} "
                   f"{item['filter']['stream']:<11} {','.join(item['triggers']):<22} "
                   f"{where}  {item['name']}")


def parse_area(grid_prefix: str | None, bbox: str | None,
               polygon: Path | None) -> AreaFilter | None:
    """The area options as an area filter (at most one may be given)."""
    if grid_prefix is None and bbox is None and polygon is None:
        return None
    box = None
    if bbox is not None:
        try:
            box = tuple(float(v) for v in bbox.split(","))
        except ValueError:
            raise InvalidValue("--bbox is four numbers: min_lon,min_lat,max_lon,max_lat") from None
    area = None
    if polygon is not None:
        try:
            area = Area.from_geojson(json.loads(polygon.read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError) as error:
            raise InvalidValue(f"--polygon {polygon}: {error}") from None
    return AreaFilter(grid_prefix=grid_prefix, bbox=box, polygon=area)  # type: ignore[arg-type]


@subscriptions_app.command("add")
def add_subscription(
    department: Annotated[str, typer.Option(help="Department code, e.g. water")],
    name: Annotated[str, typer.Option(help="What the subscription is for")],
    stream: Annotated[str, typer.Option(help="grid-cases, incidents, hazards, hotline or "
                                        "resources")],
    category: Annotated[list[str] | None, typer.Option(
        help="Category codes (repeat); default all")] = None,
    level: Annotated[list[str] | None, typer.Option(
        help="Incident levels I-IV (repeat); default all")] = None,
    trigger: Annotated[list[str] | None, typer.Option(
        help="created, updated, closed (repeat); default all three")] = None,
    grid_prefix: Annotated[str | None, typer.Option(help="Grid code prefix, e.g. D01-S02")] = None,
    bbox: Annotated[str | None, typer.Option(help="min_lon,min_lat,max_lon,max_lat")] = None,
    polygon: Annotated[Path | None, typer.Option(help="File with a GeoJSON polygon")] = None,
    own_department: Annotated[bool, typer.Option(
        help="Only what is dispatched or assigned to the department")] = False,
    webhook: Annotated[str | None, typer.Option(help="Webhook URL (default: the "
                                                "department's Kafka topic)")] = None,
    secret: Annotated[str | None, typer.Option(help="Webhook signing secret (default: "
                                               "generated and printed once)")] = None,
    as_user: AsUser = None,
) -> None:
    """Subscribe a department to a stream."""
    with feed_service() as service:
        if webhook is None:
            if secret is not None:
                raise InvalidValue("--secret is for webhooks (give --webhook)")
            delivery = Delivery(kind=DeliveryKind.KAFKA)
        else:
            secret = secret or secrets.token_urlsafe(GENERATED_SECRET_BYTES)
            delivery = Delivery(kind=DeliveryKind.WEBHOOK, url=webhook, secret=secret)
        subscription_filter = SubscriptionFilter(
            stream=stream_named(stream), categories=frozenset(category or []),
            area=parse_area(grid_prefix, bbox, polygon), levels=frozenset(level or []),
            own_department=own_department)
        subscription_id = service.subscriptions.subscribe(Subscribe(
            department=department, subscription_name=name, filter=subscription_filter,
            triggers=tuple(trigger or [t.value for t in Trigger]), delivery=delivery,
        ), CommandContext(actor=admin(as_user))).subject
        typer.echo(str(subscription_id))
        if webhook is not None:
            typer.secho(f"webhook secret (shown once): {secret}", fg="yellow", err=True)


@subscriptions_app.command("remove")
def remove_subscription(
    subscription_id: Annotated[UUID, typer.Argument(help="The subscription's id")],
    reason: Annotated[str, typer.Option(help="Why it ends")],
    as_user: AsUser = None,
) -> None:
    """End a subscription (it stays on record with its history)."""
    with feed_service() as service:
        service.subscriptions.handle(Unsubscribe(subscription_id=subscription_id, reason=reason),
                                     CommandContext(actor=admin(as_user)))
        typer.echo(f"removed {subscription_id}")


if __name__ == "__main__":
    from cityops.logs import configure_logging_or_exit

    configure_logging_or_exit()
    app()
