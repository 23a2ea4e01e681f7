"""Topic names per namespace, and the message catalogue in the docs, which must be exactly
what the schemas say."""

from __future__ import annotations

from pathlib import Path

import pytest

from cityops.ingest.reference import render_markdown
from cityops.ingest.settings import IngestSettings
from cityops.ingest.topics import (
    DEAD_LETTERS,
    GRID_CASE_REPORTS,
    INPUT_STREAMS,
    IngestStream,
    Topics,
)
from cityops.settings import Settings

REPO = Path(__file__).resolve().parents[3]


def test_topic_names_live_under_a_namespace() -> None:
    assert GRID_CASE_REPORTS == "cityops.ingest.grid-case-reports"
    assert DEAD_LETTERS == Topics().dead_letters == "cityops.ingest.dead-letters"
    drill = Topics("drill-7")
    assert drill.name(IngestStream.HAZARD_READINGS) == "drill-7.hazard-readings"
    assert drill.stream_of("drill-7.hazard-readings") is IngestStream.HAZARD_READINGS
    assert drill.stream_of("cityops.ingest.hazard-readings") is None
    assert drill.stream_of("drill-7.dead-letters") is None
    assert drill.stream_of("drill-7.parking") is None
    assert len(drill.inputs) == len(INPUT_STREAMS) == 6
    assert drill.all == [*drill.inputs, "drill-7.dead-letters"]


def test_topics_are_resolved_from_stream_names_or_refused() -> None:
    topics = Topics()
    assert topics.resolve(["hazard-readings", "cityops.ingest.resource-positions"]) == [
        "cityops.ingest.hazard-readings", "cityops.ingest.resource-positions"]
    with pytest.raises(ValueError, match="unknown ingest topic 'parking'; streams are "
                                         "grid-case-reports, hotline-tickets"):
        topics.resolve(["parking"])
    with pytest.raises(ValueError, match="dead-letter topic is not an input"):
        topics.resolve(["dead-letters"])


def test_settings_read_the_environment_and_refuse_bad_names(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITYOPS_KAFKA_BOOTSTRAP_SERVERS", "")
    monkeypatch.setenv("CITYOPS_INGEST_MAX_MESSAGE_BYTES", "65536")
    settings = Settings()  # the ingest's section is read with the rest, by the same names
    assert settings.kafka_bootstrap_servers is None
    assert settings.ingest.max_message_bytes == 65536
    assert settings.ingest.topic_partitions == 3
    assert IngestSettings().max_message_bytes == 65536  # or on its own
    with pytest.raises(ValueError, match="topic namespace must be letters"):
        IngestSettings(topic_namespace="city ops")


def test_the_docs_show_the_catalogue_generated_from_the_schemas() -> None:
    docs = (REPO / "docs" / "ingest-messages.md").read_text(encoding="utf-8")
    assert docs == render_markdown(), (
        "docs/ingest-messages.md is out of date: run "
        "`cityops ingest catalogue --output docs/ingest-messages.md`")


def test_the_catalogue_page_shows_every_type_with_its_topic_key_and_example() -> None:
    page = render_markdown()
    for heading in ("## Grid-case report — `grid-case-report/1`",
                    "## Resource position fix — `resource-position/1`",
                    "## Hotline ticket replied — `hotline-ticket-replied/1`"):
        assert heading in page
    assert "- Key: `payload.call_sign`" in page
    assert "| `cityops.dead-letter.source-offset` | its offset |" in page
    assert page.count("```json") == 8
