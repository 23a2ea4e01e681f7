"""Proves that the integration fixtures hand out a working PostGIS and a working Kafka broker."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from kafka import KafkaConsumer, KafkaProducer


@pytest.mark.postgres
def test_postgis_measures_geodesic_distance_in_metres(postgres_url: str) -> None:
    # Two points on the same parallel in central Beijing, 0.01 degree of longitude apart:
    # 0.01 * 111,320 m * cos(39.909 degrees) is about 854 m on the ellipsoid.
    with psycopg.connect(postgres_url) as conn:
        row = conn.execute(
            """
            SELECT ST_Distance(
                ST_SetSRID(ST_MakePoint(116.397, 39.909), 4326)::geography,
                ST_SetSRID(ST_MakePoint(116.407, 39.909), 4326)::geography
            )
            """
        ).fetchone()
    assert row is not None
    assert 850.0 < row[0] < 860.0


@pytest.mark.postgres
def test_fresh_database_is_isolated_and_has_postgis(postgres_url: str, fresh_database: str) -> None:
    assert fresh_database != postgres_url
    with psycopg.connect(fresh_database) as conn:
        conn.execute("CREATE TABLE probe (id int PRIMARY KEY, geom geometry(Point, 4326))")
        conn.execute("INSERT INTO probe VALUES (1, ST_SetSRID(ST_MakePoint(116.4, 39.9), 4326))")
    with psycopg.connect(postgres_url) as conn:
        found = conn.execute("SELECT to_regclass('public.probe')").fetchone()
    assert found == (None,)


@pytest.mark.kafka
def test_kafka_delivers_a_produced_message_to_a_consumer(
    kafka_bootstrap: str, fresh_topic: str
) -> None:
    payload = f"case reported {uuid.uuid4()}".encode()
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    try:
        sent = producer.send(fresh_topic, key=b"grid-case", value=payload).get(timeout=30)
    finally:
        producer.close()

    consumer = KafkaConsumer(
        fresh_topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=f"cityops-test-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=30_000,
    )
    try:
        received = next(iter(consumer))
    finally:
        consumer.close()
    assert (received.partition, received.offset) == (sent.partition, sent.offset)
    assert received.key == b"grid-case"
    assert received.value == payload
