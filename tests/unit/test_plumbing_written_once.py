"""Infrastructure written once (issue 11, trip-over 6): each piece of plumbing that two
packages need lives in one place, and the others import it. Each test here failed while the
piece was written twice."""

from __future__ import annotations

import pytest

from cityops.domain.incidents.incident import Incident, IncidentStatus
from cityops.projections import emergency


def test_open_incident_statuses_come_from_the_domain() -> None:
    """The read model's `is_open` is the aggregate's own rule, not a copy of its statuses."""
    assert not hasattr(emergency, "OPEN_INCIDENT_STATUSES")
    column = next(c for c in emergency.incident_table().columns if c.name == "is_open")
    for status in IncidentStatus:
        incident = object.__new__(Incident)
        incident.status = status
        assert column.extract(incident) is incident.is_open, status


def test_the_history_and_the_feeds_write_an_events_facts_with_one_encoder() -> None:
    """The API's `/{id}/history` and the feeds' messages wrote facts with two encoders that
    disagreed: a set's order, a value object (text in the history, an object in the feeds).
    One encoder now writes both."""
    from dataclasses import dataclass
    from datetime import UTC, datetime
    from uuid import uuid4

    from cityops.command_center.history import event_body
    from cityops.domain.actors import Actor, Role
    from cityops.domain.event_facts import to_json
    from cityops.domain.geometry import GeoPoint
    from cityops.feeds import events as feed_events

    @dataclass(frozen=True)
    class Window:
        start: int
        end: int

    class Event:  # what the library's events look like to the encoders
        def __init__(self, **facts: object) -> None:
            self.originator_id = uuid4()
            self.originator_version = 3
            self.timestamp = datetime(2026, 3, 10, 1, 0, tzinfo=UTC)
            self.originator_topic = "cityops.domain.gridcase:GridCase.Dispatched"
            self.actor = Actor("duty-zhao", Role.DISPATCHER)
            vars(self).update(facts)

    event = Event(departments=frozenset({"water", "roads", "gas"}), window=Window(1, 2),
                  point=GeoPoint(118.8, 32.05))
    facts = {"departments": ["gas", "roads", "water"], "window": {"start": 1, "end": 2},
             "point": {"type": "Point", "coordinates": [118.8, 32.05]}}
    assert event_body(event)["facts"] == facts
    assert feed_events.to_json is to_json
    assert to_json(feed_events.event_facts(event)) == facts


def test_one_settings_tree_read_and_reported_one_way(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Three settings classes were read apart, by three formatters of errors (each with its
    own prefix written by hand): one tree now, `CITYOPS_<SECTION>_<FIELD>`, read and
    reported by `read_settings`, naming every bad variable at once."""
    from cityops.feeds.settings import FeedSettings
    from cityops.ingest.settings import IngestSettings
    from cityops.logs import LogSettings
    from cityops.settings import Settings, env_names, read_settings

    monkeypatch.setenv("CITYOPS_INGEST_GROUP_ID", "")
    monkeypatch.setenv("CITYOPS_FEEDS_BATCH_SIZE", "0")
    monkeypatch.setenv("CITYOPS_PORT", "0")
    with pytest.raises(SystemExit) as stopped:
        read_settings()
    assert stopped.value.code == 2
    reported = capsys.readouterr().err
    for name in ("CITYOPS_INGEST_GROUP_ID", "CITYOPS_FEEDS_BATCH_SIZE", "CITYOPS_PORT"):
        assert f"{name}: " in reported, reported

    monkeypatch.delenv("CITYOPS_INGEST_GROUP_ID")
    monkeypatch.delenv("CITYOPS_FEEDS_BATCH_SIZE")
    monkeypatch.delenv("CITYOPS_PORT")
    monkeypatch.setenv("CITYOPS_INGEST_TOPIC_NAMESPACE", "drill.ingest")
    monkeypatch.setenv("CITYOPS_FEEDS_TOPIC_PREFIX", "drill.feed")
    monkeypatch.setenv("CITYOPS_LOG_LEVEL", "debug")
    settings = read_settings()
    assert isinstance(settings, Settings)
    assert isinstance(settings.ingest, IngestSettings)
    assert settings.ingest.topic_namespace == "drill.ingest"
    assert isinstance(settings.feeds, FeedSettings)
    assert settings.feeds.topic_prefix == "drill.feed"
    assert isinstance(settings.log, LogSettings)
    assert settings.log.level == "debug"
    # The variables' names did not change.
    assert {"CITYOPS_INGEST_GROUP_ID", "CITYOPS_FEEDS_TOPIC_PREFIX", "CITYOPS_LOG_FORMAT",
            "CITYOPS_KAFKA_BOOTSTRAP_SERVERS", "CITYOPS_DATABASE_URL"} <= env_names()
    assert "CITYOPS_INGEST_KAFKA_BOOTSTRAP_SERVERS" not in env_names()  # one broker setting
