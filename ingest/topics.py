"""The ingest topics, one per kind of outside source, and the dead-letter topic.

Topic names are `<namespace>.<stream>`; the default namespace is `cityops.ingest`, so the
inspectors' reports arrive on `cityops.ingest.grid-case-reports`. A drill or a test uses a
namespace of its own. The broker does not create topics by itself: `create_topics` does.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum

from cityops.ingest.settings import DEFAULT_NAMESPACE

log = logging.getLogger(__name__)

DEAD_LETTER_MAX_BYTES = 8 * 1024 * 1024


class IngestStream(StrEnum):
    """What arrives on each ingest topic (the topic name's last part)."""

    GRID_CASE_REPORTS = "grid-case-reports"
    """Inspectors' mobile app: new city-management cases from the field."""
    HOTLINE_TICKETS = "hotline-tickets"
    """The call-centre system: calls and messages taken on the service hotline."""
    HAZARD_READINGS = "hazard-readings"
    """The IoT gateway: sensor readings of hazard sources."""
    RESOURCE_POSITIONS = "resource-positions"
    """Vehicle trackers: position fixes of mobile emergency resources."""
    RESOURCE_STATUS = "resource-status"
    """Crews' terminals: en route, on scene, returning, available."""
    DEPARTMENT_REPORTS = "department-reports"
    """Departments' systems: a case handled or returned, a hotline ticket answered."""
    DEAD_LETTERS = "dead-letters"
    """What could not be applied: the original bytes with the reason in headers."""


INPUT_STREAMS = tuple(s for s in IngestStream if s is not IngestStream.DEAD_LETTERS)

GRID_CASE_REPORTS = f"{DEFAULT_NAMESPACE}.{IngestStream.GRID_CASE_REPORTS}"
HOTLINE_TICKETS = f"{DEFAULT_NAMESPACE}.{IngestStream.HOTLINE_TICKETS}"
HAZARD_READINGS = f"{DEFAULT_NAMESPACE}.{IngestStream.HAZARD_READINGS}"
RESOURCE_POSITIONS = f"{DEFAULT_NAMESPACE}.{IngestStream.RESOURCE_POSITIONS}"
RESOURCE_STATUS = f"{DEFAULT_NAMESPACE}.{IngestStream.RESOURCE_STATUS}"
DEPARTMENT_REPORTS = f"{DEFAULT_NAMESPACE}.{IngestStream.DEPARTMENT_REPORTS}"
DEAD_LETTERS = f"{DEFAULT_NAMESPACE}.{IngestStream.DEAD_LETTERS}"


@dataclass(frozen=True)
class Topics:
    """The topic names of one namespace, and the stream a topic name belongs to."""

    namespace: str = DEFAULT_NAMESPACE

    def name(self, stream: IngestStream | str) -> str:
        return f"{self.namespace}.{IngestStream(stream).value}"

    @property
    def dead_letters(self) -> str:
        return self.name(IngestStream.DEAD_LETTERS)

    @property
    def inputs(self) -> list[str]:
        """Every topic a worker consumes by default."""
        return [self.name(s) for s in INPUT_STREAMS]

    @property
    def all(self) -> list[str]:
        return [self.name(s) for s in IngestStream]

    def stream_of(self, topic: str) -> IngestStream | None:
        """The input stream a topic carries, or None for a topic that is not ours."""
        prefix = f"{self.namespace}."
        if not topic.startswith(prefix):
            return None
        try:
            stream = IngestStream(topic[len(prefix):])
        except ValueError:
            return None
        return stream if stream is not IngestStream.DEAD_LETTERS else None

    def resolve(self, names: list[str]) -> list[str]:
        """Topic names from full names or stream names (`hazard-readings`); an unknown one
        is an error naming the known streams."""
        resolved = []
        for name in names:
            if self.stream_of(name) is not None:
                resolved.append(name)
                continue
            try:
                stream = IngestStream(name)
            except ValueError:
                known = ", ".join(s.value for s in INPUT_STREAMS)
                raise ValueError(f"unknown ingest topic {name!r}; streams are {known} "
                                 f"(topics {self.namespace}.<stream>)") from None
            if stream is IngestStream.DEAD_LETTERS:
                raise ValueError("the dead-letter topic is not an input")
            resolved.append(self.name(stream))
        return resolved


def create_topics(bootstrap_servers: str, topics: Topics, *, partitions: int = 3,
                  replication_factor: int = 1, timeout_ms: int = 30_000) -> dict[str, bool]:
    """Create every ingest topic of `topics` that does not exist yet (the broker has
    auto-creation off); returns each topic name with whether it was created now."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=timeout_ms,
                             client_id="cityops-ingest-admin")
    try:
        existing = set(admin.list_topics())
        created: dict[str, bool] = {}
        for name in topics.all:
            if name in existing:
                created[name] = False
                continue
            # The dead-letter topic takes bigger records than the inputs: a message the
            # broker accepted must still fit once the reason is added in headers.
            configs = ({"max.message.bytes": str(DEAD_LETTER_MAX_BYTES)}
                       if name == topics.dead_letters else {})
            try:
                admin.create_topics(
                    [NewTopic(name, num_partitions=partitions,
                              replication_factor=replication_factor, topic_configs=configs)],
                    timeout_ms=timeout_ms,
                )
                created[name] = True
            except TopicAlreadyExistsError:
                # Another worker or operator created it meanwhile: that is what we wanted.
                created[name] = False
        log.info("ingest topics: %s", ", ".join(
            f"{n} ({'created' if c else 'exists'})" for n, c in created.items()))
        return created
    finally:
        admin.close()


def missing_topics(bootstrap_servers: str, names: list[str], *,
                   timeout_ms: int = 30_000) -> list[str]:
    """The topics of `names` that the broker does not have (it does not create them)."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=timeout_ms,
                             client_id="cityops-ingest-admin")
    try:
        present = set(admin.list_topics())
    finally:
        admin.close()
    return [name for name in names if name not in present]


def delete_topics(bootstrap_servers: str, topics: Topics, *, timeout_ms: int = 30_000) -> None:
    """Delete the topics of a namespace (a finished drill or test)."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=timeout_ms,
                             client_id="cityops-ingest-admin")
    try:
        present = [n for n in topics.all if n in set(admin.list_topics())]
        if present:
            admin.delete_topics(present, timeout_ms=timeout_ms)
    finally:
        admin.close()
