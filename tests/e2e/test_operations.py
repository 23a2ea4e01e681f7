"""Operations (issue 10): `/metrics` in the Prometheus text format whose values move when the
thing they count happens, `/health` with each check and its reason, request ids, the alert
rules of docs/alerts.yml over metrics that exist, and every metric documented."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import yaml
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from cityops.bootstrap import build_system
from cityops.command_center.app import create_app
from cityops.domain.commands import CommandContext
from cityops.domain.gridcases.commands import ReportCase
from cityops.health import FeedWatch, ProjectionWatch
from cityops.ingest.counters import IngestCounters
from cityops.metrics import FeedCollector, IngestCollector, ProcessMetrics, ProjectionCollector
from cityops.settings import Settings

REPO = Path(__file__).resolve().parents[2]
ALERTS = REPO / "docs" / "alerts.yml"
OPERATIONS_DOC = REPO / "docs" / "operations.md"


def scrape(client: TestClient, **headers: str) -> dict[str, Any]:
    """The samples of `/metrics`: (name, sorted label items) -> value."""
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict[str, Any], name: str, **labels: str) -> float:
    return float(samples.get((name, tuple(sorted(labels.items()))), 0.0))


def test_metrics_answer_the_prometheus_text_format_with_the_named_metrics(api: Any) -> None:
    samples = scrape(api.client)
    names = {name for name, _ in samples}
    for expected in ("cityops_projection_lag_events", "cityops_projection_lag_seconds",
                     "cityops_projection_failing_aggregates", "cityops_logins_total",
                     "cityops_websocket_clients", "cityops_websocket_resyncs_total",
                     "cityops_websocket_connections_total"):
        assert expected in names, expected
    # The request just made is in the histogram by its route template.
    assert value(scrape(api.client), "cityops_http_request_duration_seconds_count",
                 method="GET", route="/metrics", status="2xx") >= 1


def test_a_request_counts_in_the_latency_histogram_under_its_route_template(api: Any) -> None:
    before = scrape(api.client)
    missing = "00000000-0000-0000-0000-000000000001"
    api.get(f"/grid-cases/{missing}", expect=404)
    api.get(f"/grid-cases/{missing.replace('1', '2')}", expect=404)
    api.client.get("/no/such/page/at/all")
    api.client.request("BREW", "/grid-cases")
    after = scrape(api.client)
    key = {"method": "GET", "route": "/grid-cases/{case_id}", "status": "4xx"}
    assert value(after, "cityops_http_request_duration_seconds_count", **key) == value(
        before, "cityops_http_request_duration_seconds_count", **key) + 2
    assert value(after, "cityops_http_request_duration_seconds_bucket", le="+Inf",
                 **key) >= 2
    # Made-up paths and verbs do not make series of their own.
    labels = {dict(items).get("route") for name, items in after
              if name == "cityops_http_request_duration_seconds_count"}
    assert "unmatched" in labels
    assert not any(route and route.startswith("/no/") for route in labels)
    assert not any(dict(items).get("method") == "BREW" for name, items in after)
    assert value(after, "cityops_http_request_duration_seconds_count", method="other",
                 route="/grid-cases", status="4xx") == 1


def test_failed_and_throttled_logins_are_counted(api: Any) -> None:
    api.user("dispatcher", user="counted-user")
    before = scrape(api.client)
    for _ in range(5):
        bad = api.client.post("/auth/login", json={"username": "counted-user",
                                                   "password": "wrong"})
        assert bad.status_code == 401
    throttled = api.client.post("/auth/login", json={"username": "counted-user",
                                                     "password": api.PASSWORD})
    assert throttled.status_code == 429
    good = api.client.post("/auth/login", json={"username": api.user("dispatcher"),
                                                "password": api.PASSWORD})
    assert good.status_code == 200
    after = scrape(api.client)
    for outcome, grew in (("failed", 5), ("throttled", 1), ("succeeded", 1)):
        assert value(after, "cityops_logins_total", outcome=outcome) == value(
            before, "cityops_logins_total", outcome=outcome) + grew, outcome


def test_a_websocket_client_is_counted_while_connected(api: Any) -> None:
    assert value(scrape(api.client), "cityops_websocket_clients") == 0
    with api.client.websocket_connect("/ws") as socket:
        socket.send_json({"type": "hello", "token": api.token("dispatcher"),
                          "subscribe": {"layers": ["grid-cases"]}})
        while socket.receive_json()["type"] != "snapshot":
            pass
        during = scrape(api.client)
        assert value(during, "cityops_websocket_clients") == 1
        assert value(during, "cityops_websocket_connections_total") == 1
    assert value(scrape(api.client), "cityops_websocket_clients") == 0


def test_a_websocket_resync_is_counted(api: Any) -> None:
    before = value(scrape(api.client), "cityops_websocket_resyncs_total")
    with api.client.websocket_connect("/ws") as socket:
        # A position in a generation that never served: it cannot resume, it resyncs.
        socket.send_json({"type": "hello", "token": api.token("dispatcher"),
                          "subscribe": {"layers": ["grid-cases"]},
                          "resume": {"generation": 99, "position": 1}})
        kinds = []
        while not kinds or kinds[-1] != "snapshot":
            kinds.append(socket.receive_json()["type"])
        assert "resync" in kinds
    assert value(scrape(api.client), "cityops_websocket_resyncs_total") == before + 1


def test_projection_lag_shows_while_the_projections_are_stopped(tmp_path: Path,
                                                                demo_city: Any) -> None:
    system = build_system(Settings(data_dir=tmp_path, run_projections=False,
                                   health_projection_lag_events=0), city=demo_city)
    with TestClient(create_app(system)) as client:
        before = scrape(client)
        assert value(before, "cityops_projection_lag_events", projection="cityops-views",
                     stream="gridcases") == 0
        _report_case(system)
        behind = scrape(client)
        assert value(behind, "cityops_projection_lag_events", projection="cityops-views",
                     stream="gridcases") >= 1
        health = client.get("/health").json()
        assert health["status"] == "degraded"
        check = next(c for c in health["checks"] if c["name"] == "projection gridcases")
        assert check["status"] == "degraded" and "behind" in check["reason"]
        assert health["projection_lag"]["gridcases"] >= 1
        # The ticket follow-up, a tracked process over the case log, is behind it too.
        assert health["ticket_follow_up_lag"]["gridcases"] >= 1
        follow_up = next(c for c in health["checks"] if c["name"] == "ticket-follow-up gridcases")
        assert follow_up["status"] == "degraded"
        assert client.get("/health", params={"strict": "true"}).status_code == 503
        system.catch_up()
        assert value(scrape(client), "cityops_projection_lag_events",
                     projection="cityops-views", stream="gridcases") == 0
        caught_up = client.get("/health").json()
        assert caught_up["status"] == "ok", caught_up
        assert caught_up["ticket_follow_up_lag"] == {"gridcases": 0, "incidents": 0}
        assert client.get("/health", params={"strict": "true"}).status_code == 200


def test_every_request_has_an_id_echoed_in_the_answer(api: Any) -> None:
    mine = api.client.get("/health", headers={"X-Request-ID": "trace-42.a"})
    assert mine.headers["X-Request-ID"] == "trace-42.a"
    made_up = api.client.get("/health", headers={"X-Request-ID": "no spaces <script>"})
    assert re.fullmatch(r"[0-9a-f]{32}", made_up.headers["X-Request-ID"])
    assert api.client.get("/health").headers["X-Request-ID"] != made_up.headers["X-Request-ID"]


def test_the_metrics_token_keeps_scrapes_out_when_set(tmp_path: Path, demo_city: Any) -> None:
    system = build_system(Settings(data_dir=tmp_path, metrics_token="scrape-secret"),
                          city=demo_city)
    with TestClient(create_app(system)) as client:
        refused = client.get("/metrics")
        assert refused.status_code == 401
        assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code \
            == 401
        assert scrape(client, Authorization="Bearer scrape-secret")
        assert client.get("/health").status_code == 200  # health stays public


def _every_metric_name(api: Any) -> set[str]:
    """The metric names of every kind of process: the command centre's scrape, and the
    collectors of the projection, ingest and feed processes."""
    names = {family.name for family in text_string_to_metric_families(
        api.client.get("/metrics").text)}
    counters = IngestCounters()
    counters.count("cityops.ingest.grid-case-reports", "dead_lettered")
    metrics = ProcessMetrics()
    metrics.register(IngestCollector(counters))
    metrics.register(FeedCollector(FeedWatch(lambda: {("kafka", "grid-cases"): (3, 1)}),
                                   lambda: {"cityops-feeds-kafka": 1}, lambda: 5))
    metrics.register(ProjectionCollector(ProjectionWatch(lambda: []), lambda: 0))
    names |= {family.name for family in text_string_to_metric_families(
        metrics.exposition().decode())}
    return names


def _sample_names(family_names: set[str]) -> set[str]:
    """What PromQL can name: counters with `_total`, histograms' series."""
    found = set(family_names)
    for name in family_names:
        found |= {f"{name}_total", f"{name}_bucket", f"{name}_count", f"{name}_sum"}
    return found


def test_the_alert_rules_parse_and_name_only_exported_metrics(api: Any) -> None:
    rules = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    exported = _sample_names(_every_metric_name(api))
    alerts = [rule for group in rules["groups"] for rule in group["rules"]]
    assert len(alerts) >= 7
    for rule in alerts:
        assert rule["alert"] and rule["expr"] and rule["annotations"]["summary"], rule
        assert rule["labels"]["severity"] in ("warning", "critical"), rule
        named = set(re.findall(r"\bcityops_[a-z_]+\b", str(rule["expr"])))
        assert named, f"{rule['alert']} names no CityOps metric"
        assert named <= exported, f"{rule['alert']}: {sorted(named - exported)} not exported"


def test_every_metric_is_documented(api: Any) -> None:
    documented = OPERATIONS_DOC.read_text(encoding="utf-8")
    for name in sorted(_every_metric_name(api)):
        assert f"`{name}" in documented, f"{name} is missing from docs/operations.md"


def test_serve_logs_one_json_object_per_line_with_request_ids(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    env = {**os.environ, "CITYOPS_DATA_DIR": str(tmp_path / "data"),
           "CITYOPS_LOG_FORMAT": "json"}
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "cityops.cli", "serve", "--port", str(port)],
            env=env, stdout=subprocess.DEVNULL, stderr=log)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 90
            while True:
                try:
                    if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert process.poll() is None and time.monotonic() < deadline, \
                    log_path.read_text()
                time.sleep(0.2)
            answer = httpx.get(f"{base}/grid-cases", headers={"X-Request-ID": "json-log-1"})
            assert answer.status_code == 401
        finally:
            process.terminate()
            process.wait(timeout=30)
    lines = [line for line in log_path.read_text().splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    for entry in entries:
        assert {"time", "level", "logger", "message"} <= set(entry), entry
    request = next(e for e in entries if e.get("request_id") == "json-log-1")
    assert request["logger"] == "cityops.http"
    assert (request["method"], request["route"], request["status"]) == (
        "GET", "/grid-cases", 401)
    assert any(e["logger"].startswith("uvicorn") for e in entries)  # the server's own too


def _report_case(system: Any) -> None:
    from cityops.domain.actors import Actor, Role
    from cityops.domain.geometry import GeoPoint

    system.grid_cases.handle(
        ReportCase(source="inspector", category="E0502", description="Lag test: a broken lamp",
                   location=GeoPoint(118.80, 32.05)),
        CommandContext(actor=Actor("insp-lag", Role.INSPECTOR)))


