"""`cityops ingest`: run an ingest worker, load a backlog file of messages, create the topics,
show what the workers did, and print the message catalogue."""

from __future__ import annotations

import json
import logging
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from cityops.domain.errors import InvalidValue
from cityops.ingest.catalogue import MessageCatalogue, Rejected
from cityops.ingest.settings import IngestSettings
from cityops.ingest.topics import Topics, create_topics, missing_topics
from cityops.settings import Settings, read_settings

log = logging.getLogger(__name__)

app = typer.Typer(
    name="ingest",
    help=(
        "Messages from outside systems: run a Kafka ingest worker, load a JSON-lines backlog, "
        "create the topics, show the counters. Settings come from CITYOPS_* variables "
        "(CITYOPS_KAFKA_BOOTSTRAP_SERVERS: unset = in-process, no broker)."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
topics_app = typer.Typer(help="The ingest topics on the broker.", no_args_is_help=True)
app.add_typer(topics_app, name="topics")

MAX_BAD_LINES_SHOWN = 50


def _fail(text: str, code: int = 2) -> typer.Exit:
    typer.secho(text, fg="red", err=True)
    return typer.Exit(code)


def _topic_list(text: str | None) -> list[str] | None:
    if not text:
        return None
    return [t.strip() for t in text.split(",") if t.strip()]


@app.command()
def run(
    group: Annotated[str | None, typer.Option(
        help="Consumer group (default CITYOPS_INGEST_GROUP_ID): workers of one group share "
             "the partitions")] = None,
    topics: Annotated[str | None, typer.Option(
        help="Comma-separated topics or stream names (default: every ingest input topic)")]
    = None,
    metrics_port: Annotated[int | None, typer.Option(
        min=1, max=65535, help="Serve /metrics and /health on this port (default "
        "CITYOPS_METRICS_PORT; unset: none)")] = None,
) -> None:
    """Run an ingest worker: consume the ingest topics from Kafka and apply every message
    once in effect. Stops cleanly on SIGTERM or Ctrl-C (committing what it applied)."""
    from cityops.bootstrap import build_operations, build_system, start_metrics_server
    from cityops.ingest.composition import build_kafka_worker
    from cityops.metrics import IngestCollector

    settings = read_settings()
    ingest_settings = settings.ingest
    if settings.kafka_bootstrap_servers is None:
        raise _fail("CITYOPS_KAFKA_BOOTSTRAP_SERVERS is not set: a worker needs a broker. "
                    "Without Kafka, load a file with `cityops ingest produce FILE --topic T`, "
                    "which applies it in-process.")
    names = Topics(ingest_settings.topic_namespace)
    try:
        chosen = names.resolve(_topic_list(topics) or []) or names.inputs
    except ValueError as error:
        raise _fail(str(error)) from None
    _require_topics(settings.kafka_bootstrap_servers, chosen)
    system = build_system(settings)
    operations = None
    try:
        worker = build_kafka_worker(system, ingest_settings, group_id=group, topics=chosen)
        counters = worker.pipeline.counters
        # This worker's own counts: its dead letters growing make its /health degraded.
        operations = build_operations(system, projections=False,
                                      dead_letters=lambda: counters.total().dead_lettered)
        operations.metrics.register(IngestCollector(counters))
        start_metrics_server(operations, settings, metrics_port)

        def stop(signum: int, _frame: object) -> None:
            log.info("signal %d: stopping after the message in hand", signum)
            worker.stop()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        worker.run()
    finally:
        if operations is not None:
            operations.close()
        system.close()


def _require_topics(bootstrap_servers: str, names: list[str]) -> None:
    missing = missing_topics(bootstrap_servers, names)
    if missing:
        raise _fail(f"the broker has no topic {', '.join(missing)}: create the ingest topics "
                    "with `cityops ingest topics create` (the broker does not create topics "
                    "by itself)")


@dataclass(frozen=True)
class _Line:
    number: int
    value: bytes
    key: str


def _read_backlog(path: Path, topic: str, key_field: str | None,
                  settings: IngestSettings) -> tuple[list[_Line], list[str]]:
    """The messages of a JSON-lines file, each validated as the worker would; the problems
    of the bad lines, by line number."""
    catalogue = MessageCatalogue.load()
    stream = Topics(settings.topic_namespace).stream_of(topic)
    good: list[_Line] = []
    bad: list[str] = []

    def lines() -> Iterator[tuple[int, bytes]]:
        with path.open("rb") as file:
            for number, raw in enumerate(file, start=1):
                if raw.strip():
                    yield number, raw.rstrip(b"\r\n")

    for number, raw in lines():
        try:
            message = catalogue.parse(raw, stream=stream,
                                      max_bytes=settings.max_message_bytes)
        except (Rejected, InvalidValue) as error:
            bad.append(f"line {number}: {error}")
            continue
        key = message.key if key_field is None else _dig(json.loads(raw), key_field)
        if key is None:
            bad.append(f"line {number}: no key: {key_field or message.type.key} is missing")
            continue
        good.append(_Line(number, raw, key))
    return good, bad


def _dig(document: Any, path: str) -> str | None:
    """The value at a dotted path of a message (`payload.call_sign`), as key text."""
    value = document
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return None if value is None or isinstance(value, dict | list) else str(value)


@app.command()
def produce(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True,
                                         help="JSON-lines file, one message per line")],
    topic: Annotated[str, typer.Option(help="Topic or stream name, e.g. resource-positions")],
    key_field: Annotated[str | None, typer.Option(
        help="Dotted path of the field to key by (default: the message type's natural key, "
             "e.g. payload.call_sign)")] = None,
    skip_invalid: Annotated[bool, typer.Option(
        help="Send the valid lines even if some are invalid (default: send nothing)")] = False,
) -> None:
    """Send a backlog file of messages to an ingest topic. Every line is validated first and
    bad lines are reported by number. Without Kafka the messages are applied in-process
    (the same validation, dedupe and dead letters as a worker)."""
    settings = read_settings()
    ingest_settings = settings.ingest
    names = Topics(ingest_settings.topic_namespace)
    try:
        [full_topic] = names.resolve([topic])
    except ValueError as error:
        raise _fail(str(error)) from None
    good, bad = _read_backlog(file, full_topic, key_field, ingest_settings)
    for problem in bad[:MAX_BAD_LINES_SHOWN]:
        typer.secho(problem, fg="yellow", err=True)
    if len(bad) > MAX_BAD_LINES_SHOWN:
        typer.secho(f"... and {len(bad) - MAX_BAD_LINES_SHOWN} more bad lines", fg="yellow",
                    err=True)
    if bad and not skip_invalid:
        raise _fail(f"{len(bad)} of {len(good) + len(bad)} lines are invalid: nothing sent "
                    "(fix them, or --skip-invalid to send the valid ones)", 1)
    if settings.kafka_bootstrap_servers is not None:
        _require_topics(settings.kafka_bootstrap_servers, [full_topic])
        _send(good, full_topic, settings.kafka_bootstrap_servers)
        typer.echo(f"sent {len(good)} messages to {full_topic}"
                   + (f" ({len(bad)} invalid lines skipped)" if bad else ""))
        return
    _apply_in_process(good, full_topic, settings)


def _send(lines: list[_Line], topic: str, bootstrap_servers: str) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap_servers, acks="all", linger_ms=20,
                             client_id="cityops-ingest-produce")
    try:
        futures = [producer.send(topic, key=line.key.encode("utf-8"), value=line.value)
                   for line in lines]
        producer.flush()
        for line, future in zip(lines, futures, strict=True):
            try:
                future.get(timeout=30)
            except Exception as error:
                raise _fail(f"line {line.number} was not accepted by the broker: {error}",
                            1) from None
    finally:
        producer.close()


def _apply_in_process(lines: list[_Line], topic: str, settings: Settings) -> None:
    from cityops.bootstrap import build_system
    from cityops.ingest.composition import build_embedded_ingest

    system = build_system(settings)
    try:
        ingest = build_embedded_ingest(system, settings.ingest).start()
        for line in lines:
            ingest.submit(topic, line.value, key=line.key)
        ingest.stop(timeout=3600)
        outcomes = ", ".join(f"{k.value} {v}" for k, v in ingest.outcomes.items())
        typer.echo(f"applied in-process from {topic}: {outcomes}")
    finally:
        system.close()


@topics_app.command("create")
def topics_create(
    partitions: Annotated[int | None, typer.Option(
        min=1, help="Partitions per topic (default CITYOPS_INGEST_TOPIC_PARTITIONS, 3)")] = None,
    replication_factor: Annotated[int | None, typer.Option(min=1)] = None,
) -> None:
    """Create the ingest topics and the dead-letter topic (the broker does not create
    topics by itself); existing ones are left as they are."""
    settings = read_settings()
    if settings.kafka_bootstrap_servers is None:
        raise _fail("CITYOPS_KAFKA_BOOTSTRAP_SERVERS is not set")
    created = create_topics(
        settings.kafka_bootstrap_servers, Topics(settings.ingest.topic_namespace),
        partitions=partitions or settings.ingest.topic_partitions,
        replication_factor=replication_factor or settings.ingest.replication_factor,
    )
    for name, new in created.items():
        typer.echo(f"{name}: {'created' if new else 'exists'}")


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
    group: Annotated[str | None, typer.Option(help="Consumer group for the lag")] = None,
) -> None:
    """What the ingest workers did (consumed, applied, duplicate, dead-lettered per topic,
    all workers added up), and with Kafka how far the group is behind."""
    from cityops.bootstrap import build_system
    from cityops.ingest.composition import ingest_store
    from cityops.ingest.counters import CounterTable
    from cityops.ingest.deadletters import StoredDeadLetters
    from cityops.ingest.kafka_worker import group_lag

    settings = read_settings()
    ingest_settings = settings.ingest
    system = build_system(settings)
    store = ingest_store(system)
    try:
        table = CounterTable(store)
        report: dict[str, Any] = {
            "counts": {t: c.as_dict() for t, c in table.by_topic().items()},
            "workers": [{"worker": w, "updated_at": at} for w, at in table.workers()],
        }
        if settings.kafka_bootstrap_servers is None:
            report["stored_dead_letters"] = StoredDeadLetters(store).count()
        else:
            report["group"] = group or ingest_settings.group_id
            report["lag"] = group_lag(
                settings.kafka_bootstrap_servers, report["group"],
                Topics(ingest_settings.topic_namespace).inputs)
    finally:
        store.close()
        system.close()
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    typer.echo(f"{'topic':<44} {'consumed':>9} {'applied':>9} {'duplicate':>9} "
               f"{'dead-lettered':>13}")
    for topic, counts in report["counts"].items():
        typer.echo(f"{topic:<44} {counts['consumed']:>9} {counts['applied']:>9} "
                   f"{counts['duplicate']:>9} {counts['dead_lettered']:>13}")
    if not report["counts"]:
        typer.echo("(no worker has reported yet)")
    for worker in report["workers"][:10]:
        typer.echo(f"worker {worker['worker']} last reported {worker['updated_at']}")
    if "lag" in report:
        for topic, behind in report["lag"].items():
            typer.echo(f"group {report['group']} is {behind} messages behind on {topic}")
    else:
        typer.echo(f"dead letters kept in the read store: {report['stored_dead_letters']}")


dead_letters_app = typer.Typer(
    help="Dead letters: show the latest (no sub-command), or replay them once the cause is "
         "fixed.")
app.add_typer(dead_letters_app, name="dead-letters")


def _all_dead_letters(settings: Settings) -> list[Any]:
    """Every dead letter: from the dead-letter topic with Kafka, else from the ingest store."""
    from cityops.ingest.deadletters import read_dead_letter_topic

    if settings.kafka_bootstrap_servers is not None:
        topic = Topics(settings.ingest.topic_namespace).dead_letters
        try:
            return read_dead_letter_topic(settings.kafka_bootstrap_servers, topic)
        except (ValueError, TimeoutError) as error:
            raise _fail(str(error)) from None
    from cityops.bootstrap import build_system
    from cityops.ingest.composition import ingest_store
    from cityops.ingest.deadletters import StoredDeadLetters

    system = build_system(settings)
    store = ingest_store(system)
    try:
        return StoredDeadLetters(store).recent(limit=2**62)
    finally:
        store.close()
        system.close()


@dead_letters_app.callback(invoke_without_command=True)
def dead_letters(
    context: typer.Context,
    limit: Annotated[int, typer.Option(min=1, help="How many, newest last")] = 20,
) -> None:
    """Show the latest dead letters: what was set aside, from where, and why."""
    if context.invoked_subcommand is not None:
        return
    letters = sorted(_all_dead_letters(read_settings()),
                     key=lambda d: d.dead_lettered_at)[-limit:]
    for letter in letters:
        where = f"{letter.source_topic}[{letter.partition}]@{letter.offset}"
        size = "no value" if letter.value is None else f"{len(letter.value)} bytes"
        typer.echo(f"{letter.dead_lettered_at.isoformat()} {where} {letter.code} "
                   f"({letter.error_class}, {size}): {letter.reason}")
    if not letters:
        typer.echo("no dead letters")


@dead_letters_app.command("replay")
def replay_dead_letters(
    topic: Annotated[str | None, typer.Option(
        help="Only letters from these source topics (comma-separated names or stream names)")]
    = None,
    reason: Annotated[str | None, typer.Option(
        help="Only letters with this code (e.g. not-found) or whose reason contains this text")]
    = None,
    since: Annotated[datetime | None, typer.Option(
        formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d %H:%M:%S%z", "%Y-%m-%d"],
        help="Only letters set aside at or after this time (ISO, with offset; a date is UTC)")]
    = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="List what would be replayed; change nothing")] = False,
) -> None:
    """Submit dead letters again, once their cause is fixed, through the same pipeline (the
    message id stays the command id: what was applied meanwhile changes nothing). A ledger
    records each outcome: applied ones are not replayed again, ones that fail again are, with
    their new reason shown. Exits 1 if any failed again or could not be replayed."""
    from cityops.bootstrap import build_system
    from cityops.ingest.composition import build_pipeline, ingest_store
    from cityops.ingest.replay import ReplayLedger, ReplayOutcome, matching, replay

    settings = read_settings()
    ingest_settings = settings.ingest
    names = Topics(ingest_settings.topic_namespace)
    try:
        topics = names.resolve(_topic_list(topic) or []) or None
    except ValueError as error:
        raise _fail(str(error)) from None
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    letters = _all_dead_letters(settings)
    try:
        chosen = matching(letters, topics=topics, reason=reason, since=since)
    except ValueError as error:
        raise _fail(str(error)) from None
    system = build_system(settings)
    store = ingest_store(system)
    try:
        ledger = ReplayLedger(store)
        finished = ledger.finished()
        todo = [letter for letter in chosen if letter.letter_id not in finished]
        skipped = len(chosen) - len(todo)
        if dry_run:
            for letter in todo:
                typer.echo(f"would replay {_where(letter)} {letter.code}: {letter.reason}")
            typer.echo(f"{len(todo)} to replay, {skipped} already replayed (dry run: nothing "
                       "changed)")
            return
        results = replay(todo, ledger, lambda sink: build_pipeline(
            system, ingest_settings, ingest_store(system), sink, worker="dead-letter-replay"))
    finally:
        store.close()
        system.close()
    for result in results:
        line = f"{_where(result.letter)} {result.letter.code} -> {result.outcome.value}"
        if result.outcome is not ReplayOutcome.APPLIED and result.reason:
            line += f" ({result.code}: {result.reason})"
        typer.echo(line)
    counts = {o: sum(1 for r in results if r.outcome is o) for o in ReplayOutcome}
    typer.echo(", ".join(f"{o.value} {n}" for o, n in counts.items())
               + f"; {skipped} already replayed before")
    if counts[ReplayOutcome.FAILED_AGAIN] or counts[ReplayOutcome.NOT_REPLAYED]:
        raise typer.Exit(1)


def _where(letter: Any) -> str:
    return f"{letter.source_topic}[{letter.partition}]@{letter.offset}"


@app.command()
def catalogue(
    output: Annotated[Path | None, typer.Option(help="Write to this file instead of stdout")]
    = None,
) -> None:
    """Print the message catalogue (Markdown, generated from the JSON Schemas); it is
    docs/ingest-messages.md."""
    from cityops.ingest.reference import render_markdown

    text = render_markdown()
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")


def main() -> None:
    from cityops.logs import configure_logging_or_exit

    configure_logging_or_exit()
    app()
