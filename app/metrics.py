"""Prometheus metrics of one CityOps process, in a registry of its own.

Each process exposes what it measures (docs/operations.md): the command centre at `/metrics`,
the projection, ingest and feed processes on a port of their own (`--metrics-port`,
`CITYOPS_METRICS_PORT`), which also answers `/health`. Nothing is registered in the client
library's global registry: a registry belongs to one process's composition (tests build
many in one interpreter), and the components keep plain counts that collectors read when
Prometheus scrapes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from cityops.health import FeedWatch, ProjectionWatch

if TYPE_CHECKING:
    from cityops.ingest.counters import IngestCounters

log = logging.getLogger(__name__)

PREFIX = "cityops"


class ProcessMetrics:
    """The registry of one process and what it takes to expose it."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()

    def register(self, collector: Collector) -> None:
        self.registry.register(collector)

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)


def _gauge(name: str, documentation: str, labels: Iterable[str] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"{PREFIX}_{name}", documentation, labels=list(labels))


def _counter(name: str, documentation: str, labels: Iterable[str] = ()) -> CounterMetricFamily:
    return CounterMetricFamily(f"{PREFIX}_{name}", documentation, labels=list(labels))


class ProjectionCollector(Collector):
    """Lag and failing aggregates of the projections (read from the stores at scrape time),
    and the follower thread's failed rounds where this process follows."""

    def __init__(self, watch: ProjectionWatch,
                 thread_failures: Callable[[], int | None] = lambda: None) -> None:
        self.watch = watch
        self.thread_failures = thread_failures

    def collect(self) -> Iterator[Metric]:
        events = _gauge("projection_lag_events", "Notifications of the event store not yet "
                        "projected (head - tracked position).", ["projection", "stream"])
        seconds = _gauge("projection_lag_seconds", "How long the tracked position has "
                         "stood still while behind the head (0 when caught up).",
                         ["projection", "stream"])
        failing = _gauge("projection_failing_aggregates", "Aggregates a projection has set "
                         "aside because their events could not be projected.",
                         ["projection", "stream"])
        try:
            lags = self.watch.lags()
            marks = self.watch.failing()
        except Exception as error:  # a scrape must still answer with the rest
            log.warning("metrics: cannot read the projections' positions: %s", error)
        else:
            for (projection, stream), lag in sorted(lags.items()):
                events.add_metric([projection, stream], lag.events)
                seconds.add_metric([projection, stream], lag.seconds)
                count = sum(1 for m in marks
                            if m.application == stream and m.projection == projection)
                failing.add_metric([projection, stream], count)
            yield from (events, seconds, failing)
        failures = self.thread_failures()
        if failures is not None:
            rounds = _counter("projection_round_failures", "Projection rounds that failed "
                              "(retried) in this process.")
            rounds.add_metric([], failures)
            yield rounds


class IngestCollector(Collector):
    """What this process's ingest pipeline did with the messages, per topic."""

    def __init__(self, counters: IngestCounters) -> None:
        self.counters = counters

    def collect(self) -> Iterator[Metric]:
        consumed = _counter("ingest_consumed_messages", "Messages delivered to ingest.",
                            ["topic"])
        outcomes = _counter("ingest_messages", "Messages ingest finished with, by outcome "
                            "(applied, duplicate, dead-lettered).", ["topic", "outcome"])
        dead = _counter("ingest_dead_letters", "Messages set aside as dead letters.")
        total_dead = 0
        for topic, counts in sorted(self.counters.snapshot().items()):
            consumed.add_metric([topic], counts.consumed)
            outcomes.add_metric([topic, "applied"], counts.applied)
            outcomes.add_metric([topic, "duplicate"], counts.duplicate)
            outcomes.add_metric([topic, "dead-lettered"], counts.dead_lettered)
            total_dead += counts.dead_lettered
        dead.add_metric([], total_dead)
        yield from (consumed, outcomes, dead)


class FeedCollector(Collector):
    """How far each feed publisher is behind each stream, and its loops' failures."""

    def __init__(self, watch: FeedWatch,
                 loop_failures: Callable[[], dict[str, int]] = dict,
                 published: Callable[[], int | None] = lambda: None,
                 cap_alerts: Callable[[], tuple[int, int] | None] = lambda: None) -> None:
        self.watch = watch
        self.loop_failures = loop_failures
        self.published = published
        self.cap_alerts = cap_alerts
        """(written, refused) CAP alerts of the warnings in this process, if it writes any."""

    def collect(self) -> Iterator[Metric]:
        events = _gauge("feed_lag_events", "Notifications of a stream not yet published by "
                        "a feed (kafka, webhook).", ["feed", "stream"])
        seconds = _gauge("feed_lag_seconds", "How long a feed's position has stood still "
                         "while behind the stream's head.", ["feed", "stream"])
        try:
            lags = self.watch.lags()
        except Exception as error:
            log.warning("metrics: cannot read the feeds' positions: %s", error)
        else:
            for (feed, stream), lag in sorted(lags.items()):
                events.add_metric([feed, stream], lag.events)
                seconds.add_metric([feed, stream], lag.seconds)
            yield from (events, seconds)
        failures = self.loop_failures()
        if failures:
            loops = _counter("feed_loop_failures", "Failed (and restarted) rounds of the "
                             "feed loops in this process.", ["loop"])
            for name, count in sorted(failures.items()):
                loops.add_metric([name], count)
            yield loops
        published = self.published()
        if published is not None:
            sent = _counter("feed_kafka_published_messages", "Messages this process "
                            "committed to the Kafka feed topics.")
            sent.add_metric([], published)
            yield sent
        cap_alerts = self.cap_alerts()
        if cap_alerts is not None:
            written, refused = cap_alerts
            ok = _counter("cap_alerts_written", "CAP alerts of the warnings this process "
                          "wrote (checked, ready to publish).")
            ok.add_metric([], written)
            bad = _counter("cap_alerts_refused", "Warning messages whose CAP document failed "
                           "the OASIS schema or the standard's rules: not published.")
            bad.add_metric([], refused)
            yield from (ok, bad)


class CountsCollector(Collector):
    """Exposes plain counts a component keeps (a dict of label value -> count) as one
    counter family, and optionally a gauge: the components need not know Prometheus."""

    def __init__(self, name: str, documentation: str, label: str | None,
                 counts: Callable[[], dict[str, int]], *, gauge: bool = False) -> None:
        self.name = name
        self.documentation = documentation
        self.label = label
        self.counts = counts
        self.gauge = gauge

    def collect(self) -> Iterator[Metric]:
        labels = [self.label] if self.label else []
        family: GaugeMetricFamily | CounterMetricFamily = (
            _gauge(self.name, self.documentation, labels) if self.gauge
            else _counter(self.name, self.documentation, labels))
        for value, count in sorted(self.counts().items()):
            family.add_metric([value] if self.label else [], count)
        yield family


class MetricsServer:
    """Serves `/metrics` and `/health` for a process without a web app of its own (the
    projection, ingest and feed processes), in a background thread."""

    def __init__(self, metrics: ProcessMetrics, health: Callable[[], dict[str, Any]],
                 *, host: str, port: int,
                 may_scrape: Callable[[str | None], bool] = lambda _: True) -> None:
        self.metrics = metrics
        self.health = health
        self.may_scrape = may_scrape
        handler = _handler(self)
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="cityops-metrics", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> MetricsServer:
        self._thread.start()
        log.info("metrics on http://%s:%d/metrics (and /health)",
                 self._server.server_address[0], self.port)
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def _handler(server: MetricsServer) -> type[BaseHTTPRequestHandler]:
    import json

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            try:
                if path == "/metrics" and not server.may_scrape(
                        self.headers.get("Authorization")):
                    self._answer(401, "text/plain; charset=utf-8",
                                 b"metrics need the metrics token (Authorization: Bearer)\n")
                elif path == "/metrics":
                    self._answer(200, server.metrics.content_type,
                                 server.metrics.exposition())
                elif path == "/health":
                    body = server.health()
                    self._answer(200, "application/json", json.dumps(body).encode())
                else:
                    self._answer(404, "text/plain; charset=utf-8",
                                 b"not found: this port serves /metrics and /health\n")
            except Exception:
                log.exception("metrics: %s failed", path)
                self._answer(500, "text/plain; charset=utf-8", b"internal error\n")

        def _answer(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            """Scrapes are not worth a log line each."""

    return Handler
