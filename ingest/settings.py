"""The ingest's section of the settings (`Settings.ingest`), read from `CITYOPS_INGEST_*`
environment variables. The broker is the whole system's `CITYOPS_KAFKA_BOOTSTRAP_SERVERS`
(`Settings.kafka_bootstrap_servers`): without it, ingest runs in-process.
"""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_NAMESPACE = "cityops.ingest"
DEFAULT_MAX_MESSAGE_BYTES = 256 * 1024


class IngestSettings(BaseSettings):
    """How ingest names its topics, consumes them, and how patient it is with failures."""

    model_config = SettingsConfigDict(env_prefix="CITYOPS_INGEST_", extra="ignore",
                                      frozen=True)

    group_id: str = Field(
        default="cityops-ingest", min_length=1,
        description="Consumer group of the ingest workers: they share the partitions.",
    )
    topic_namespace: str = Field(
        default=DEFAULT_NAMESPACE,
        description="Prefix of every ingest topic (a drill or a test uses its own).",
    )
    topic_partitions: int = Field(default=3, ge=1, le=1000)
    replication_factor: int = Field(default=1, ge=1, le=10)
    max_message_bytes: int = Field(
        default=DEFAULT_MAX_MESSAGE_BYTES, ge=1024, le=16 * 1024 * 1024,
        description="A bigger message is dead-lettered unread.",
    )
    poll_records: int = Field(default=500, ge=1, le=10_000)
    session_timeout_ms: int = Field(
        default=10_000, ge=6_000, le=300_000,
        description="How soon the group notices a dead worker and hands its partitions on.",
    )
    retry_budget_s: float = Field(
        default=30.0, gt=0, le=600,
        description="How long one message is retried on transient errors before the worker "
                    "goes back to the broker and tries it again.",
    )
    stats_interval_s: float = Field(default=10.0, gt=0, le=3600)
    seen_capacity: int = Field(
        default=100_000, ge=0, le=10_000_000,
        description="Message ids remembered in memory to skip repeats early (0 = none).",
    )
    queue_capacity: int = Field(default=10_000, ge=1, le=1_000_000)

    @field_validator("topic_namespace")
    @classmethod
    def _topic_safe(cls, value: str) -> str:
        # Kafka topic names allow letters, digits, '.', '_' and '-' (249 chars at most).
        if not value or not all(c.isalnum() or c in "._-" for c in value) or len(value) > 200:
            raise ValueError("topic namespace must be letters, digits, '.', '_' or '-'")
        return value
