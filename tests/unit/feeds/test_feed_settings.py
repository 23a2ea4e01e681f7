"""The feed settings refuse values that cannot work, with the setting's name."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from cityops.feeds.settings import FeedSettings


def test_defaults_name_the_documented_topics() -> None:
    settings = FeedSettings()
    assert settings.topic_prefix == "cityops.feed"
    assert settings.transactional_id == "cityops-feeds"


@pytest.mark.parametrize(("values", "message"), [
    ({"topic_prefix": "city ops"}, "topic prefix must be letters"),
    ({"transactional_id": " "}, "transactional id must not be empty"),
    ({"webhook_backoff_base_s": 10.0, "webhook_backoff_max_s": 5.0},
     "at least webhook_backoff_base_s"),
    ({"batch_size": 0}, "greater than or equal to 1"),
    ({"cap_signing_key_file": "/etc/cityops/cap.key"}, "set both or neither"),
    ({"cap_signing_cert_file": "/etc/cityops/cap.crt"}, "set both or neither"),
])
def test_bad_feed_settings_are_refused(values: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        FeedSettings(**values)  # type: ignore[arg-type]


def test_feed_settings_come_from_cityops_feeds_variables(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITYOPS_FEEDS_TOPIC_PREFIX", "drill-7.feed")
    monkeypatch.setenv("CITYOPS_FEEDS_WEBHOOK_MAX_ATTEMPTS", "3")
    settings = FeedSettings()
    assert settings.topic_prefix == "drill-7.feed" and settings.webhook_max_attempts == 3
