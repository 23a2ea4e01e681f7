"""`cityops feeds`: an administrator adds, lists and removes subscriptions from the command
line, and reads the feeds' status (embedded stores, no Kafka)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cityops.feeds.cli import app


@pytest.fixture
def runner(tmp_path: Path) -> CliRunner:
    return CliRunner(env={"CITYOPS_DATA_DIR": str(tmp_path / "cli"),
                          # Empty counts as unset: the embedded default.
                          "CITYOPS_DATABASE_URL": "", "CITYOPS_KAFKA_BOOTSTRAP_SERVERS": ""})


def test_an_admin_adds_lists_and_removes_subscriptions(runner: CliRunner,
                                                       tmp_path: Path) -> None:
    kafka = runner.invoke(app, ["subscriptions", "add", "--department", "water",
                                "--name", "manhole covers", "--stream", "grid-cases",
                                "--category", "C0101", "--category", "C0102",
                                "--grid-prefix", "D01", "--trigger", "created",
                                "--trigger", "closed", "--as-user", "root-wu"])
    assert kafka.exit_code == 0, kafka.output
    kafka_id = kafka.stdout.strip()
    polygon = tmp_path / "district.geojson"
    polygon.write_text(json.dumps({"type": "Polygon", "coordinates": [[
        [118.75, 32.02], [118.80, 32.02], [118.80, 32.06], [118.75, 32.02]]]}))
    hook = runner.invoke(app, ["subscriptions", "add", "--department", "police",
                               "--name", "calls", "--stream", "hotline", "--polygon",
                               str(polygon), "--webhook", "https://police.example/hook"])
    assert hook.exit_code == 0, hook.output
    assert "webhook secret (shown once): " in hook.stderr

    listed = runner.invoke(app, ["subscriptions", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    found = {s["id"]: s for s in json.loads(listed.stdout)}
    assert found[kafka_id]["filter"]["categories"] == ["C0101", "C0102"]
    assert found[kafka_id]["triggers"] == ["created", "closed"]
    assert found[kafka_id]["subscribed_by"] == "root-wu"
    police = next(s for s in found.values() if s["department"] == "police")
    assert police["filter"]["area"]["polygon"]["type"] == "Polygon"
    assert police["delivery"]["url"] == "https://police.example/hook"
    assert police["triggers"] == ["created", "updated", "closed"]

    removed = runner.invoke(app, ["subscriptions", "remove", kafka_id, "--reason",
                                  "replaced by the API"])
    assert removed.exit_code == 0, removed.output
    text = runner.invoke(app, ["subscriptions", "list", "--department", "water"])
    assert kafka_id in text.stdout and "cancelled" in text.stdout
    assert "police" not in text.stdout


def test_the_status_shows_positions_lag_and_deliveries(runner: CliRunner) -> None:
    shown = runner.invoke(app, ["status"])
    assert shown.exit_code == 0, shown.output
    assert "Kafka: not configured (embedded: webhooks only)" in shown.stdout
    assert "grid-cases" in shown.stdout and "webhook deliveries: pending 0" in shown.stdout
    as_json = json.loads(runner.invoke(app, ["status", "--json"]).stdout)
    assert as_json["kafka"] is None
    assert as_json["streams"]["hotline"] == {"head": 0, "webhook_position": 0,
                                             "webhook_lag": 0}


def test_bad_input_and_bad_settings_are_clear_errors(runner: CliRunner) -> None:
    unknown = runner.invoke(app, ["subscriptions", "add", "--department", "water",
                                  "--name", "x", "--stream", "weather"])
    assert unknown.exit_code == 1
    assert "unknown stream 'weather'; streams are grid-cases" in unknown.stderr
    secretless = runner.invoke(app, ["subscriptions", "add", "--department", "water",
                                     "--name", "x", "--stream", "hotline", "--secret",
                                     "0123456789abcdef"])
    assert secretless.exit_code == 1 and "--secret is for webhooks" in secretless.stderr
    bad_box = runner.invoke(app, ["subscriptions", "add", "--department", "water",
                                  "--name", "x", "--stream", "hotline", "--bbox", "1,2,x,4"])
    assert bad_box.exit_code == 1 and "--bbox is four numbers" in bad_box.stderr
    bad_settings = runner.invoke(app, ["status"], env={"CITYOPS_FEEDS_BATCH_SIZE": "0"})
    assert bad_settings.exit_code == 2
    assert "CITYOPS_FEEDS_BATCH_SIZE" in bad_settings.stderr
