"""The ingest part of the composition root: builds the pipeline over the system (what
`IngestSources` names of a `CitySystem`) and the transport the settings ask for (a Kafka
worker, or the in-process queue without Kafka).

Ingest's own tables (the resource track, the counters, the stored dead letters) live in the
read models' base store, beside the generations registry: a read-model rebuild replaces
generations, and the track is not derived from events, so it must not be in one.
"""

from __future__ import annotations

from collections.abc import Sequence

from cityops.ingest.counters import CounterTable
from cityops.ingest.deadletters import DeadLetterSink, KafkaDeadLetters, StoredDeadLetters
from cityops.ingest.embedded import InProcessIngest
from cityops.ingest.handlers import IngestSources, IngestTarget
from cityops.ingest.kafka_worker import KafkaIngestWorker, worker_name
from cityops.ingest.pipeline import IngestPipeline, RetryPolicy
from cityops.ingest.settings import IngestSettings
from cityops.ingest.topics import Topics
from cityops.ingest.tracks import ResourceTracks
from cityops.storage import ReadStore


def ingest_store(system: IngestSources) -> ReadStore:
    """A connection to the store of ingest's own tables (the caller closes it)."""
    return system.generations.storage.base()


def build_pipeline(system: IngestSources, settings: IngestSettings, store: ReadStore,
                   dead_letters: DeadLetterSink, *, worker: str | None = None) -> IngestPipeline:
    """The pipeline over the system's applications, with the track table created in `store`
    (which the pipeline closes when its transport stops)."""
    tracks = ResourceTracks(store)
    tracks.create_table()
    pipeline = IngestPipeline(
        IngestTarget.of(system, tracks),
        dead_letters=dead_letters,
        topics=Topics(settings.topic_namespace),
        worker=worker or worker_name(),
        max_message_bytes=settings.max_message_bytes,
        seen_capacity=settings.seen_capacity,
        retry=RetryPolicy(budget_s=settings.retry_budget_s),
    )
    pipeline.on_close.append(store.close)
    return pipeline


def build_kafka_worker(system: IngestSources, settings: IngestSettings, *,
                       group_id: str | None = None,
                       topics: Sequence[str] | None = None) -> KafkaIngestWorker:
    """A Kafka ingest worker (topics: full names or stream names; default all inputs)."""
    bootstrap_servers = system.settings.kafka_bootstrap_servers
    if bootstrap_servers is None:
        raise ValueError("CITYOPS_KAFKA_BOOTSTRAP_SERVERS is not set: there is no broker to "
                         "consume from (without Kafka, ingest runs in-process)")
    names = Topics(settings.topic_namespace)
    chosen = names.resolve(list(topics)) if topics else names.inputs
    store = ingest_store(system)
    dead_letters = KafkaDeadLetters(bootstrap_servers, names.dead_letters)
    pipeline = build_pipeline(system, settings, store, dead_letters)
    return KafkaIngestWorker(
        pipeline,
        bootstrap_servers=bootstrap_servers,
        group_id=group_id or settings.group_id,
        topics=chosen,
        counter_table=CounterTable(store),
        max_poll_records=settings.poll_records,
        session_timeout_ms=settings.session_timeout_ms,
        stats_interval_s=settings.stats_interval_s,
    )


def build_embedded_ingest(system: IngestSources, settings: IngestSettings) -> InProcessIngest:
    """The in-process queue, with dead letters kept in the ingest store."""
    store = ingest_store(system)
    pipeline = build_pipeline(system, settings, store, StoredDeadLetters(store))
    return InProcessIngest(pipeline, capacity=settings.queue_capacity,
                           counter_table=CounterTable(store),
                           stats_interval_s=settings.stats_interval_s)
