"""Settings of the feeds (Kafka topics, publishing, webhook delivery), read from
`CITYOPS_FEEDS_` environment variables beside the main `CITYOPS_` settings.

Whether Kafka is used at all is the main settings' `CITYOPS_KAFKA_BOOTSTRAP_SERVERS`: without
it the Kafka publisher is not started and webhooks are still delivered.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Self

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

TOPIC_PART = re.compile(r"^[A-Za-z0-9._-]+$")


def _is_network(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return True
MAX_TOPIC_LENGTH = 249


class FeedSettings(BaseSettings):
    """How the feed process publishes and delivers."""

    model_config = SettingsConfigDict(env_prefix="CITYOPS_FEEDS_", extra="ignore", frozen=True)

    topic_prefix: str = Field(
        default="cityops.feed",
        description="Topics are <prefix>.<stream>, <prefix>.department.<code> and the "
        "publisher's own <prefix>.publisher-positions (a drill uses another prefix).",
    )
    transactional_id: str = Field(
        default="cityops-feeds",
        description="Kafka transactional id of the publisher: one running publisher per id "
        "(a second one fences the first).",
    )
    topic_partitions: int = Field(default=3, ge=1, le=1000)
    topic_replication_factor: int = Field(
        default=-1, ge=-1, le=10, description="-1: the broker's default.replication.factor")
    batch_size: int = Field(default=200, ge=1, le=10_000,
                            description="Notifications per stream per Kafka transaction")
    poll_interval_s: float = Field(default=0.5, gt=0, le=60)
    kafka_timeout_s: float = Field(default=30.0, gt=0, le=600)
    restart_delay_s: float = Field(default=2.0, ge=0, le=600,
                                   description="Pause before restarting a failed publisher")
    webhook_workers: int = Field(default=4, ge=1, le=64,
                                 description="Webhook requests in flight at once (at most one "
                                 "per subscription)")
    webhook_timeout_s: float = Field(default=10.0, gt=0, le=120)
    webhook_max_attempts: int = Field(default=8, ge=1, le=50)
    webhook_backoff_base_s: float = Field(default=2.0, gt=0, le=3600,
                                          description="Delay before the first retry")
    webhook_backoff_max_s: float = Field(default=600.0, gt=0, le=86_400)
    webhook_replay_window_s: int = Field(
        default=300, ge=30, le=3600,
        description="How old a signed request may be before receivers refuse it (documented "
        "to receivers; also the tolerance of `verify_signature`)")
    webhook_require_https: bool = Field(default=False,
                                        description="Refuse plain http:// webhook URLs")
    webhook_allowed_destinations: list[str] = Field(
        default_factory=list,
        description="Webhook destinations allowed besides public addresses: CIDR ranges "
        "(10.20.0.0/16, 127.0.0.1/32, fd12::/64) or host names (erp.city.internal) of the "
        "city's internal systems. Loopback, private, link-local, metadata, CGNAT, multicast "
        "and other non-public addresses are refused otherwise. From the environment as a "
        'JSON list: CITYOPS_FEEDS_WEBHOOK_ALLOWED_DESTINATIONS=\'["10.20.0.0/16"]\'')

    cap_signing_key_file: Path | None = Field(
        default=None,
        description="PEM private key (RSA or EC, unencrypted) the centre signs its CAP "
        "alerts with (XML-DSig, enveloped); unset: alerts go out unsigned. Needs "
        "cap_signing_cert_file too (docs/cap.md).")
    cap_signing_cert_file: Path | None = Field(
        default=None,
        description="PEM X.509 certificate of the CAP signing key, carried in each "
        "signature for receivers to verify against the one the centre gave them.")

    @model_validator(mode="after")
    def _cap_signing(self) -> Self:
        if (self.cap_signing_key_file is None) != (self.cap_signing_cert_file is None):
            raise ValueError("cap_signing_key_file and cap_signing_cert_file go together: "
                             "set both or neither")
        return self

    @field_validator("webhook_allowed_destinations")
    @classmethod
    def _destinations(cls, values: list[str]) -> list[str]:
        for value in values:
            text = value.strip()
            host_like = not any(c.isspace() or c in "/:" for c in text)
            if not text or not (host_like or _is_network(text)):
                raise ValueError(f"allowed webhook destination {value!r} is neither an "
                                 "address range (CIDR) nor a host name")
        return [v.strip() for v in values]

    @field_validator("topic_prefix")
    @classmethod
    def _topic_prefix(cls, value: str) -> str:
        if not TOPIC_PART.match(value) or len(value) > MAX_TOPIC_LENGTH - 60:
            raise ValueError("topic prefix must be letters, digits, '.', '_' or '-' (at most "
                             f"{MAX_TOPIC_LENGTH - 60} characters)")
        return value

    @field_validator("transactional_id")
    @classmethod
    def _transactional_id(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("transactional id must not be empty")
        return value

    @model_validator(mode="after")
    def _backoff(self) -> Self:
        if self.webhook_backoff_max_s < self.webhook_backoff_base_s:
            raise ValueError("webhook_backoff_max_s must be at least webhook_backoff_base_s")
        return self
