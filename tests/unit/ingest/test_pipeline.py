"""The pipeline's own rules, whatever the transport: transient failures are retried and never
dead-lettered, a failure that lasts hands the message back (`ApplyStalled`) instead of losing
it, an unexpected error is set aside with its class rather than stopping the worker, and the
memory of message ids is bounded and tells repeats from id reuse."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from eventsourcing.persistence import OperationalError as StoreOperationalError
from kafka.errors import KafkaTimeoutError

from cityops.domain.errors import (
    CommandIdReused,
    ConcurrencyConflict,
    IllegalTransition,
    InvalidValue,
    NotFound,
    NotPermitted,
)
from cityops.domain.gridcases.application import GridCases
from cityops.ingest import messages
from cityops.ingest.catalogue import MessageCatalogue, Oversized, SchemaViolation
from cityops.ingest.counters import IngestCounters
from cityops.ingest.deadletters import DeadLetter, StoredDeadLetters
from cityops.ingest.handlers import HANDLERS, Effect, Handler, IngestTarget
from cityops.ingest.pipeline import (
    ApplyStalled,
    Delivery,
    IngestPipeline,
    Outcome,
    RetryPolicy,
    SeenMessages,
    dead_letter_code,
    is_transient,
)
from cityops.ingest.topics import IngestStream, Topics
from cityops.ingest.tracks import ResourceTracks

TOPICS = Topics("cityops.unit")
REPORTS = TOPICS.name(IngestStream.GRID_CASE_REPORTS)


def a_report(city_point: Any, **changes: Any) -> dict[str, Any]:
    from cityops.domain.actors import Actor, Role

    return messages.grid_case_report(category="E0101", description="garbage",
                                     location=city_point,
                                     actor=Actor("insp-D01-01", Role.INSPECTOR), **changes)


class FlakyStore:
    """A handler in front of the real one whose store fails `failures` times first, the
    way a database restarting or a concurrent writer does."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    def __call__(self, message: Any, target: IngestTarget) -> Effect:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return HANDLERS[message.schema](message, target)


def pipeline_with(target: IngestTarget, dead_letters: StoredDeadLetters, handler: Handler,
                  budget_s: float = 2.0) -> IngestPipeline:
    handlers = dict(HANDLERS)
    handlers["grid-case-report/1"] = handler
    return IngestPipeline(target, dead_letters=dead_letters, topics=TOPICS, worker="unit",
                          handlers=handlers,
                          retry=RetryPolicy(first_delay_s=0.001, max_delay_s=0.005,
                                            budget_s=budget_s))


@pytest.mark.parametrize("error", [
    ConcurrencyConflict("grid case", "c-1", "report"),
    StoreOperationalError("server closed the connection unexpectedly"),
    psycopg.OperationalError("connection refused"),
    sqlite3.OperationalError("database is locked"),
])
def test_transient_failures_are_retried_then_applied(
        target: IngestTarget, dead_letters: StoredDeadLetters, city_point: Any,
        error: Exception) -> None:
    flaky = FlakyStore(3, error)
    pipeline = pipeline_with(target, dead_letters, flaky)
    value = messages.encode(a_report(city_point))
    outcome = pipeline.process(Delivery(REPORTS, value, partition=0, offset=1))
    assert outcome is Outcome.APPLIED
    assert flaky.calls == 4
    assert dead_letters.count() == 0


def test_a_lasting_failure_hands_the_message_back_without_dead_lettering(
        target: IngestTarget, dead_letters: StoredDeadLetters, city_point: Any) -> None:
    flaky = FlakyStore(10_000, psycopg.OperationalError("the database system is starting up"))
    pipeline = pipeline_with(target, dead_letters, flaky, budget_s=0.05)
    message = a_report(city_point)
    with pytest.raises(ApplyStalled, match=r"still failing after .* attempts"):
        pipeline.process(Delivery(REPORTS, messages.encode(message), partition=0, offset=1))
    assert dead_letters.count() == 0
    assert pipeline.counters.total().as_dict() == {"consumed": 1, "applied": 0,
                                                   "duplicate": 0, "dead_lettered": 0}
    # Delivered again once the database is back: applied, once.
    flaky.failures = flaky.calls
    assert pipeline.process(Delivery(REPORTS, messages.encode(message), partition=0,
                                     offset=1)) is Outcome.APPLIED


def test_stopping_interrupts_a_retry(target: IngestTarget, dead_letters: StoredDeadLetters,
                                     city_point: Any) -> None:
    pipeline = pipeline_with(target, dead_letters,
                             FlakyStore(10_000, ConcurrencyConflict("grid case", "c", "report")),
                             budget_s=60)
    pipeline.stop()
    with pytest.raises(ApplyStalled):
        pipeline.process(Delivery(REPORTS, messages.encode(a_report(city_point))))


def test_an_unexpected_error_is_dead_lettered_with_its_class_and_the_worker_goes_on(
        target: IngestTarget, dead_letters: StoredDeadLetters, city_point: Any) -> None:
    def broken(message: Any, target: IngestTarget) -> Effect:
        raise KeyError("photos")

    pipeline = pipeline_with(target, dead_letters, broken)
    value = messages.encode(a_report(city_point))
    assert pipeline.process(Delivery(REPORTS, value, b"k", 2, 41)) is Outcome.DEAD_LETTERED
    [letter] = dead_letters.recent()
    assert (letter.code, letter.error_class, letter.value, letter.key) == (
        "unexpected-error", "KeyError", value, b"k")
    assert (letter.source_topic, letter.partition, letter.offset) == (REPORTS, 2, 41)


def test_errors_map_to_dead_letter_codes_in_one_place() -> None:
    assert dead_letter_code(InvalidValue("x")) == "invalid-value"
    assert dead_letter_code(IllegalTransition("case", 1, "closed", "handle")) == (
        "illegal-transition")
    assert dead_letter_code(NotFound("case", 1)) == "not-found"
    assert dead_letter_code(NotPermitted("no")) == "not-permitted"
    assert dead_letter_code(CommandIdReused("m", "a", "b")) == "message-id-reused"
    assert dead_letter_code(Oversized("big")) == "oversized"
    assert dead_letter_code(SchemaViolation("bad")) == "schema-violation"
    assert dead_letter_code(ValueError("?")) == "unexpected-error"
    assert is_transient(ConcurrencyConflict("case", 1, "x"))
    assert is_transient(KafkaTimeoutError())
    assert is_transient(psycopg.OperationalError())
    assert not is_transient(InvalidValue("x"))
    assert not is_transient(NotFound("case", 1))


def test_a_dead_letter_survives_the_trip_through_kafka_headers() -> None:
    letter = DeadLetter(source_topic="t", partition=1, offset=7, key=b"FIRE 12",
                        value=b"\xff", code="malformed", reason="not UTF-8 ✗",
                        error_class="Malformed", dead_lettered_at=datetime.now(UTC),
                        worker="w", message_id=None, schema=None)
    back = DeadLetter.from_record(letter.key, letter.value, letter.headers())
    assert back == letter
    assert back.letter_id == "t:1:7"


def test_the_memory_of_message_ids_is_bounded_and_knows_a_reused_id(
        city_point: Any) -> None:
    catalogue = MessageCatalogue.load()
    stream = IngestStream.GRID_CASE_REPORTS

    def parsed(document: dict[str, Any]) -> Any:
        return catalogue.parse(messages.encode(document), stream=stream, max_bytes=10_000)

    seen = SeenMessages(capacity=2)
    first, second, third = (parsed(a_report(city_point)) for _ in range(3))
    reuse = parsed(a_report(city_point, message_id=first.message_id, urgency="urgent"))
    seen.remember(first)
    assert seen.repeats(first)
    assert not seen.repeats(reuse)
    seen.remember(second)
    seen.remember(third)
    assert len(seen) == 2
    assert not seen.repeats(first)
    assert seen.repeats(third)
    assert not SeenMessages(capacity=0).repeats(first)


def test_counters_add_up_per_topic_and_in_total() -> None:
    counters = IngestCounters()
    for what in ("consumed", "consumed", "applied", "dead_lettered"):
        counters.count("a", what)
    counters.count("b", "consumed")
    counters.count("b", "duplicate")
    stats = counters.stats()
    assert stats["a"] == {"consumed": 2, "applied": 1, "duplicate": 0, "dead_lettered": 1}
    assert stats["total"] == {"consumed": 3, "applied": 1, "duplicate": 1, "dead_lettered": 1}
    with pytest.raises(ValueError, match="unknown counter"):
        counters.count("a", "lost")


def test_a_pipeline_refuses_to_start_without_a_handler_for_every_type(
        target: IngestTarget, dead_letters: StoredDeadLetters) -> None:
    handlers = {k: v for k, v in HANDLERS.items() if k != "hazard-reading/1"}
    with pytest.raises(ValueError, match=r"no handler for message types .*hazard-reading/1"):
        IngestPipeline(target, dead_letters=dead_letters, topics=TOPICS, worker="w",
                       handlers=handlers)


def test_stored_dead_letters_keep_one_letter_per_source_message(
        dead_letters: StoredDeadLetters) -> None:
    def letter(offset: int | None) -> DeadLetter:
        return DeadLetter(source_topic="t", partition=0 if offset is not None else None,
                          offset=offset, key=None, value=b"x", code="malformed", reason="r",
                          error_class="Malformed", dead_lettered_at=datetime.now(UTC),
                          worker="w")

    dead_letters.send(letter(5))
    dead_letters.send(letter(5))  # set aside again after a crash before the offset commit
    dead_letters.send(letter(None))
    dead_letters.send(letter(None))  # no position: two distinct letters
    assert dead_letters.count() == 3


class FlakyTracks(ResourceTracks):
    """The real track table, whose database refuses the first `failures` writes."""

    def __init__(self, store: Any, failures: int) -> None:
        super().__init__(store)
        self.failures = failures

    def record_many(self, points: Any) -> Any:
        if self.failures > 0:
            self.failures -= 1
            raise psycopg.OperationalError("could not connect to server")
        return super().record_many(points)


def engine_and_fixes(target: IngestTarget, where: Any, count: int) -> list[bytes]:
    from cityops.domain.actors import Actor, Role

    start = datetime.now(UTC) - timedelta(minutes=30)
    target.resources.register_resource(kind="fire-engine", name="Engine 8", call_sign="FIRE 8",
                                       department="fire", home_base=where,
                                       actor=Actor("planner", Role.PLANNER),
                                       at=start - timedelta(hours=1))
    return [messages.encode(messages.resource_position(
        call_sign="FIRE 8", position=where, measured_at=start + timedelta(seconds=i),
        actor=Actor("tracker", Role.SYSTEM))) for i in range(count)]


POSITIONS = TOPICS.name(IngestStream.RESOURCE_POSITIONS)


def test_a_batch_writes_its_fixes_together_and_a_fix_sent_twice_counts_once(
        target: IngestTarget, pipeline: IngestPipeline, city_point: Any) -> None:
    fixes = engine_and_fixes(target, city_point, 3)
    report = messages.encode(a_report(city_point))
    batch = [Delivery(POSITIONS, fixes[0], offset=1), Delivery(REPORTS, report, offset=2),
             Delivery(POSITIONS, fixes[1], offset=3), Delivery(POSITIONS, fixes[1], offset=4),
             Delivery(REPORTS, b"{oops", offset=5), Delivery(POSITIONS, fixes[2], offset=6)]
    done = pipeline.process_batch(batch)
    assert done.stalled is None
    assert done.outcomes == [Outcome.APPLIED, Outcome.APPLIED, Outcome.APPLIED,
                             Outcome.DUPLICATE, Outcome.DEAD_LETTERED, Outcome.APPLIED]
    assert len(target.tracks.movement()) == 3
    assert pipeline.counters.stats()[POSITIONS] == {"consumed": 4, "applied": 3,
                                                    "duplicate": 1, "dead_lettered": 0}


def test_a_track_write_that_keeps_failing_hands_back_everything_from_the_first_fix(
        target: IngestTarget, dead_letters: StoredDeadLetters, store: Any,
        city_point: Any) -> None:
    flaky = FlakyTracks(store, failures=1_000)
    stuck = IngestPipeline(
        IngestTarget(grid_cases=target.grid_cases, hotline=target.hotline,
                     hazards=target.hazards, resources=target.resources,
                     city_map=target.city_map, tracks=flaky),
        dead_letters=dead_letters, topics=TOPICS, worker="unit",
        retry=RetryPolicy(first_delay_s=0.001, max_delay_s=0.002, budget_s=0.02))
    fixes = engine_and_fixes(target, city_point, 2)
    first_report = messages.encode(a_report(city_point))
    second_report = messages.encode(a_report(city_point))
    batch = [Delivery(REPORTS, first_report, offset=1), Delivery(POSITIONS, fixes[0], offset=2),
             Delivery(REPORTS, second_report, offset=3), Delivery(POSITIONS, fixes[1], offset=4)]
    done = stuck.process_batch(batch)
    assert done.outcomes == [Outcome.APPLIED]
    assert done.stalled is not None
    assert "write 2 track fixes: still failing" in str(done.stalled)
    assert target.tracks.movement() == []
    assert stuck.counters.total().applied == 1

    # The database is back: the transport delivers the rest again; each applies once.
    flaky.failures = 0
    again = stuck.process_batch(batch[done.done:])
    assert again.stalled is None
    assert again.outcomes == [Outcome.APPLIED, Outcome.DUPLICATE, Outcome.APPLIED]
    assert len(target.tracks.movement()) == 2
    assert dead_letters.count() == 0


# --- the messages of a batch are saved together, each keeping its own answer ------------------


def stored_topics(application: Any) -> list[str]:
    return [n.topic.rsplit(":", 1)[1]
            for n in application.recorder.select_notifications(start=None, limit=10_000)]


def deliveries(*values: bytes, topic: str = REPORTS) -> list[Delivery]:
    return [Delivery(topic, value, partition=0, offset=n) for n, value in enumerate(values)]


def test_a_batch_holding_a_redelivered_message_applies_the_others_and_counts_it_once(
        target: IngestTarget, pipeline: IngestPipeline, dead_letters: StoredDeadLetters,
        city_point: Any) -> None:
    first, second, third = (messages.encode(a_report(city_point)) for _ in range(3))
    assert pipeline.process(Delivery(REPORTS, second, partition=0, offset=1)) is Outcome.APPLIED
    # A restarted worker (no memory of message ids) gets it again, between two new ones:
    # the batch's save conflicts on its receipt, and each is applied again on its own.
    restarted = IngestPipeline(target, dead_letters=dead_letters, topics=TOPICS,
                               worker="restarted")
    done = restarted.process_batch(deliveries(first, second, third))
    assert done.stalled is None
    assert done.outcomes == [Outcome.APPLIED, Outcome.DUPLICATE, Outcome.APPLIED]
    topics = stored_topics(target.grid_cases)
    assert (topics.count("GridCase.Reported"), topics.count("CommandReceipt.Recorded")) == (3, 3)
    assert restarted.counters.total().as_dict() == {"consumed": 3, "applied": 2,
                                                    "duplicate": 1, "dead_lettered": 0}


def test_the_same_message_twice_in_one_batch_is_applied_once(
        target: IngestTarget, pipeline: IngestPipeline, city_point: Any) -> None:
    report = messages.encode(a_report(city_point))
    done = pipeline.process_batch(deliveries(report, report))
    assert done.outcomes == [Outcome.APPLIED, Outcome.DUPLICATE]
    assert stored_topics(target.grid_cases) == ["GridCase.Reported", "CommandReceipt.Recorded"]


def test_a_refused_message_in_a_batch_is_dead_lettered_alone(
        target: IngestTarget, pipeline: IngestPipeline, dead_letters: StoredDeadLetters,
        city_point: Any) -> None:
    from cityops.domain.actors import Actor, Role
    from cityops.domain.geometry import GeoPoint

    ghost = messages.encode(messages.resource_status(call_sign="GHOST 9", status="en-route",
                                                     actor=Actor("crew", Role.SYSTEM)))
    paris = messages.encode(messages.grid_case_report(
        category="E0101", description="far away", location=GeoPoint(lon=2.35, lat=48.85),
        actor=Actor("insp-D01-01", Role.INSPECTOR)))
    good = [messages.encode(a_report(city_point)) for _ in range(2)]
    batch = [Delivery(REPORTS, good[0], offset=1),
             Delivery(TOPICS.name(IngestStream.RESOURCE_STATUS), ghost, offset=2),
             Delivery(REPORTS, paris, offset=3), Delivery(REPORTS, good[1], offset=4)]
    done = pipeline.process_batch(batch)
    assert done.outcomes == [Outcome.APPLIED, Outcome.DEAD_LETTERED, Outcome.DEAD_LETTERED,
                             Outcome.APPLIED]
    assert stored_topics(target.grid_cases).count("GridCase.Reported") == 2
    assert sorted(letter.code for letter in dead_letters.recent()) == ["invalid-value",
                                                                       "not-found"]


def test_readings_of_one_source_in_one_batch_are_judged_in_order(
        target: IngestTarget, pipeline: IngestPipeline, city_point: Any) -> None:
    from cityops.domain.actors import Actor, Role
    from cityops.domain.hazards.source import AlarmLevel

    planner, gateway = Actor("planner", Role.PLANNER), Actor("gateway", Role.SYSTEM)
    start = datetime.now(UTC) - timedelta(hours=1)
    tank = target.hazards.register(hazard_type="chemical-storage", name="Tank 1",
                                   owner_name="Co", owner_contact="+86 25 0000 0000", grade=2,
                                   location=city_point, actor=planner, at=start)
    target.hazards.add_sensor(tank, sensor_id="gas", kind="gas-concentration", unit="%LEL",
                              direction="high", warning=20, alarm=40, actor=planner, at=start)
    # 3.0 right after 45.0 clears the alarm only if judged on the state 45.0 left.
    values = [5.0, 45.0, 3.0, 25.0, 26.0]
    readings = [messages.encode(messages.hazard_reading(
        source_id=tank, sensor_id="gas", value=v, measured_at=start + timedelta(minutes=n + 1),
        actor=gateway)) for n, v in enumerate(values)]
    # Each crossing is judged on the state the one before left, saved or not yet.
    done = pipeline.process_batch(
        deliveries(*readings, topic=TOPICS.name(IngestStream.HAZARD_READINGS)))
    assert done.outcomes == [Outcome.APPLIED] * 5
    assert [t for t in stored_topics(target.hazards) if t.startswith("HazardSource.Alarm")] == [
        "HazardSource.AlarmRaised", "HazardSource.AlarmCleared", "HazardSource.AlarmRaised"]
    assert target.hazards.source(tank).levels["gas"] is AlarmLevel.WARNING


class FlakyGridCases(GridCases):
    """The real grid-case application, whose event store refuses the first `failures`
    saves."""

    failures = 0

    def _record(self, processing_event: Any) -> Any:
        # Where a save reaches the store: after the aggregates' pending events are taken.
        if self.failures > 0:
            self.failures -= 1
            raise StoreOperationalError("could not connect to server")
        return super()._record(processing_event)


def test_a_batch_save_that_keeps_failing_hands_back_everything_from_its_first_command(
        target: IngestTarget, dead_letters: StoredDeadLetters, city_point: Any) -> None:
    cases = target.grid_cases
    flaky = FlakyGridCases({"PERSISTENCE_MODULE": "eventsourcing.popo"},
                           catalogue=cases.catalogue, locator=cases.locator,
                           open_reports=cases.open_reports)
    flaky.failures = 1_000
    stuck = IngestPipeline(
        IngestTarget(grid_cases=flaky, hotline=target.hotline, hazards=target.hazards,
                     resources=target.resources, city_map=target.city_map,
                     tracks=target.tracks),
        dead_letters=dead_letters, topics=TOPICS, worker="unit",
        retry=RetryPolicy(first_delay_s=0.001, max_delay_s=0.002, budget_s=0.02))
    reports = [messages.encode(a_report(city_point)) for _ in range(2)]
    batch = deliveries(b"{oops", *reports)
    done = stuck.process_batch(batch)
    assert done.outcomes == [Outcome.DEAD_LETTERED]
    assert done.stalled is not None
    assert "save 2 staged commands: still failing" in str(done.stalled)
    assert stored_topics(flaky) == []

    # The database is back: the transport delivers the rest again; each applies once.
    flaky.failures = 0
    again = stuck.process_batch(batch[done.done:])
    assert again.stalled is None
    assert again.outcomes == [Outcome.APPLIED, Outcome.APPLIED]
    assert stored_topics(flaky).count("GridCase.Reported") == 2
