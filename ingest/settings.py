"""The ingest's own settings, read from `CITYOPS_` environment variables like the rest.

Kept apart from `cityops.settings.Settings` for now; `kafka_bootstrap_servers` is read by both
(the same variable) and the `ingest_*` fields can move there as they are.
"""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_NAMESPACE = "cityops.ingest"
DEFAULT_MAX_MESSAGE_BYTES = 256 * 1024


class IngestSettings(BaseSettings):
    """How ingest reaches Kafka, names its topics, and how patient it is with failures."""

    model_config = SettingsConfigDict(env_prefix="CITYOPS_", extra="ignore", frozen=True)

    kafka_bootstrap_servers: str | None = Field(
        default=None, description="host:port[,host:port]; unset = the in-process queue."
    )
    ingest_group_id: str = Field(
        default="cityops-ingest", min_length=1,
        description="Consumer group of the ingest workers: they share the partitions.",
    )
    ingest_topic_namespace: str = Field(
        default=DEFAULT_NAMESPACE,
        description="Prefix of every ingest topic (a drill or a test uses its own).",
    )
    ingest_topic_partitions: int = Field(default=3, ge=1, le=1000)
    ingest_replication_factor: int = Field(default=1, ge=1, le=10)
    ingest_max_message_bytes: int = Field(
        default=DEFAULT_MAX_MESSAGE_BYTES, ge=1024, le=16 * 1024 * 1024,
        description="A bigger message is dead-lettered unread.",
    )
    ingest_poll_records: int = Field(default=500, ge=1, le=10_000)
    ingest_session_timeout_ms: int = Field(
        default=10_000, ge=6_000, le=300_000,
        description="How soon the group notices a dead worker and hands its partitions on.",
    )
    ingest_retry_budget_s: float = Field(
        default=30.0, gt=0, le=600,
        description="How long one message is retried on transient errors before the worker "
                    "goes back to the broker and tries it again.",
    )
    ingest_stats_interval_s: float = Field(default=10.0, gt=0, le=3600)
    ingest_seen_capacity: int = Field(
        default=100_000, ge=0, le=10_000_000,
        description="Message ids remembered in memory to skip repeats early (0 = none).",
    )
    ingest_queue_capacity: int = Field(default=10_000, ge=1, le=1_000_000)

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _blank_is_unset(cls, value: str | None) -> str | None:
        return value or None

    @field_validator("ingest_topic_namespace")
    @classmethod
    def _topic_safe(cls, value: str) -> str:
        # Kafka topic names allow letters, digits, '.', '_' and '-' (249 chars at most).
        if not value or not all(c.isalnum() or c in "._-" for c in value) or len(value) > 200:
            raise ValueError("topic namespace must be letters, digits, '.', '_' or '-'")
        return value
