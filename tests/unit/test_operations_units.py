"""The pieces of operations without I/O: JSON log lines, the lag and growth watches, the
health report's checks (failing aggregates included) and the metrics port of the
processes without a web app."""

from __future__ import annotations

import io
import json
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

import pytest

from cityops.health import (
    FeedWatch,
    GrowthWatch,
    HealthLimits,
    LagWatch,
    ProcessHealth,
    ProjectionWatch,
)
from cityops.logs import REQUEST_ID, LogFormat, LogSettings, configure_logging
from cityops.metrics import MetricsServer, ProcessMetrics, ProjectionCollector


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def restore_logging() -> Any:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def test_json_logs_are_one_object_per_line_with_the_expected_keys(restore_logging: Any) -> None:
    out = io.StringIO()
    configure_logging(LogSettings(format=LogFormat.JSON), stream=out)
    log = logging.getLogger("cityops.test")
    log.info("first %s", "line", extra={"route": "/grid-cases/{case_id}", "status": 404})
    token = REQUEST_ID.set("req-1")
    try:
        log.warning("inside a request\nwith two lines")
    finally:
        REQUEST_ID.reset(token)
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("it failed")
    log.debug("not at INFO")
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    entries = [json.loads(line) for line in lines]
    for entry in entries:
        assert {"time", "level", "logger", "message"} <= set(entry)
        assert entry["logger"] == "cityops.test"
        assert entry["time"].endswith("+00:00")
    assert entries[0]["message"] == "first line"
    assert entries[0]["route"] == "/grid-cases/{case_id}" and entries[0]["status"] == 404
    assert "request_id" not in entries[0]
    assert entries[1]["request_id"] == "req-1" and entries[1]["level"] == "WARNING"
    assert entries[2]["level"] == "ERROR"
    assert "ValueError: boom" in entries[2]["exception"]


def test_text_logs_stay_readable_by_default(restore_logging: Any) -> None:
    out = io.StringIO()
    configure_logging(LogSettings(), stream=out)
    logging.getLogger("cityops.test").info("hello")
    line = out.getvalue().strip()
    assert line.endswith("INFO cityops.test: hello")
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)


def test_a_bad_log_format_is_a_clear_error(monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    from cityops.logs import configure_logging_or_exit

    monkeypatch.setenv("CITYOPS_LOG_FORMAT", "xml")
    with pytest.raises(SystemExit) as stopped:
        configure_logging_or_exit()
    assert stopped.value.code == 2
    assert "CITYOPS_LOG_FORMAT" in capsys.readouterr().err


def test_lag_seconds_count_while_the_position_stands_still_behind() -> None:
    clock = Clock()
    watch = LagWatch(clock)
    assert watch.observe(("p", "s"), head=10, position=10).seconds == 0
    behind = watch.observe(("p", "s"), head=12, position=10)
    assert (behind.events, behind.seconds) == (2, 0)
    clock.now += 45
    assert watch.observe(("p", "s"), head=15, position=10).seconds == 45
    clock.now += 5
    moved = watch.observe(("p", "s"), head=15, position=14)
    assert (moved.events, moved.seconds) == (1, 0)  # it moved: standing still starts again
    clock.now += 10
    assert watch.observe(("p", "s"), head=15, position=15).seconds == 0


def test_growth_is_measured_within_the_window() -> None:
    clock = Clock()
    growth = GrowthWatch(300, clock)
    assert growth.observe(4) == 0  # the first sample is the baseline
    clock.now += 30
    assert growth.observe(6) == 2
    clock.now += 200
    assert growth.observe(6) == 2
    clock.now += 400
    assert growth.observe(6) == 0  # nothing new in the last 300 s
    clock.now += 10
    assert growth.observe(1) == 0  # counters reset: a new baseline


@dataclass(frozen=True)
class Mark:
    """What projection isolation reports for a set-aside aggregate."""

    projection: str
    application: str
    aggregate_id: str
    error: str

    def as_dict(self) -> dict[str, Any]:
        return {"projection": self.projection, "stream": self.application,
                "aggregate_id": self.aggregate_id, "error": self.error}


class StubFollower:
    projection = "cityops-views"

    def __init__(self, name: str, head: int, position: int,
                 failing: list[Mark] | None = None) -> None:
        self.application_name = name
        self._head, self._position = head, position
        if failing is not None:
            self.failing = lambda: failing

    def head(self) -> int:
        return self._head

    def position(self) -> int:
        return self._position


def test_health_names_every_check_and_why() -> None:
    clock = Clock()
    mark = Mark("cityops-views", "incidents", "4f0c", "ValueError: bad level")
    followers: list[Any] = [StubFollower("gridcases", 5, 5),
                            StubFollower("incidents", 9, 9, [mark])]
    dead = [3]
    feeds = {("webhook", "grid-cases"): (5, 5)}
    health = ProcessHealth(HealthLimits(projection_lag_s=60),
                           projections=ProjectionWatch(lambda: followers, clock),
                           dead_letters=lambda: dead[0],
                           feeds=FeedWatch(lambda: feeds, clock), monotonic=clock)
    report = health.report()
    assert report["status"] == "degraded"
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["projection gridcases"] == {"name": "projection gridcases", "status": "ok",
                                              "reason": "caught up"}
    assert checks["failing aggregates"]["status"] == "degraded"
    assert "incidents 4f0c" in checks["failing aggregates"]["reason"]
    assert report["failing_aggregates"] == [mark.as_dict()]
    assert checks["ingest dead letters"]["status"] == "ok"
    assert checks["feed webhook grid-cases"]["status"] == "ok"

    followers[1] = StubFollower("incidents", 9, 9, [])
    followers[0] = StubFollower("gridcases", 7, 5)
    assert health.report()["status"] == "ok"  # behind, but not for long
    clock.now += 61
    dead[0] = 4
    feeds[("webhook", "grid-cases")] = (7, 5)
    report = health.report()
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["projection gridcases"]["status"] == "degraded"
    assert "stuck longer than 60 s" in checks["projection gridcases"]["reason"]
    assert checks["ingest dead letters"]["status"] == "degraded"
    assert checks["ingest dead letters"]["reason"].startswith("1 new")
    assert checks["feed webhook grid-cases"]["status"] == "ok"  # first seen behind now
    assert report["projection_lag"] == {"gridcases": 2, "incidents": 0}


def test_a_check_that_cannot_read_its_data_is_degraded_not_an_error() -> None:
    def broken() -> int:
        raise ConnectionError("database unreachable")

    report = ProcessHealth(HealthLimits(), dead_letters=broken).report()
    assert report["status"] == "degraded"
    assert "database unreachable" in report["checks"][0]["reason"]


def test_failing_aggregates_are_a_gauge_per_stream() -> None:
    marks = [Mark("cityops-views", "incidents", "a", "e"),
             Mark("cityops-views", "incidents", "b", "e")]
    followers: list[Any] = [StubFollower("incidents", 3, 3, marks),
                            StubFollower("gridcases", 3, 3)]
    metrics = ProcessMetrics()
    metrics.register(ProjectionCollector(ProjectionWatch(lambda: followers)))
    text = metrics.exposition().decode()
    assert ('cityops_projection_failing_aggregates{projection="cityops-views",'
            'stream="incidents"} 2.0') in text
    assert ('cityops_projection_failing_aggregates{projection="cityops-views",'
            'stream="gridcases"} 0.0') in text


def test_a_process_without_a_web_app_serves_metrics_and_health_on_its_port() -> None:
    metrics = ProcessMetrics()
    followers: list[Any] = [StubFollower("gridcases", 8, 5)]
    watch = ProjectionWatch(lambda: followers)
    metrics.register(ProjectionCollector(watch, lambda: 2))
    health = ProcessHealth(HealthLimits(projection_lag_events=1), projections=watch)
    server = MetricsServer(metrics, health.report, host="127.0.0.1", port=0,
                           may_scrape=lambda h: h == "Bearer t").start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{base}/metrics", timeout=5)
        assert refused.value.code == 401
        request = urllib.request.Request(f"{base}/metrics", headers={"Authorization": "Bearer t"})
        with urllib.request.urlopen(request, timeout=5) as answer:
            assert answer.headers["Content-Type"].startswith("text/plain")
            text = answer.read().decode()
        assert 'cityops_projection_lag_events{projection="cityops-views",stream="gridcases"} ' \
               '3.0' in text
        assert "cityops_projection_round_failures_total 2.0" in text
        with urllib.request.urlopen(f"{base}/health", timeout=5) as answer:
            body = json.loads(answer.read())
        assert body["status"] == "degraded"
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"{base}/other", timeout=5)
        assert missing.value.code == 404
    finally:
        server.stop()
