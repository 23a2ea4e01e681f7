"""Fuzzing of the messages Kafka delivers into ingest (issue 10, item 2): whatever arrives on
an ingest topic, bytes that are not JSON, JSON that is no message, or a valid message of each
type with one of its values replaced by something nasty (edge date-times, 1e300, 2^64, NaN,
huge text, nested objects, nothing at all), is either applied or dead-lettered with its reason.
Never an exception out of the pipeline (that would stop a worker), and never the catch-all
`unexpected-error` (input the schema let through that the code could not take)."""

from __future__ import annotations

import itertools
import json
import os
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cityops.domain.actors import Actor, Role
from cityops.domain.commands import CommandContext
from cityops.domain.geometry import GeoPoint
from cityops.domain.gridcases.commands import DispatchCase, RegisterCase, ReportCase
from cityops.domain.hazards.commands import AddSensor, RegisterHazardSource
from cityops.domain.hotline.commands import ReceiveTicket
from cityops.domain.resources.commands import RegisterResource
from cityops.ingest import messages
from cityops.ingest.deadletters import StoredDeadLetters
from cityops.ingest.handlers import IngestTarget
from cityops.ingest.pipeline import Delivery, IngestPipeline, Outcome
from cityops.ingest.topics import IngestStream

INSPECTOR = Actor("inspector-liu", Role.INSPECTOR)
OPERATOR = Actor("operator-zhao", Role.HOTLINE_OPERATOR)
DISPATCHER = Actor("dispatcher-wang", Role.DISPATCHER)
PLANNER = Actor("planner-li", Role.PLANNER)
SYSTEM = Actor("iot-gateway", Role.SYSTEM)
SCALE = int(os.environ.get("CITYOPS_FUZZ_SCALE", "1"))
"""More examples locally: CITYOPS_FUZZ_SCALE=20 runs twenty times as many."""
FUZZ = settings(max_examples=150 * SCALE, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])

EDGE_TEXTS = ["0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59-23:59", "9999-12-31T23:59:59Z",
              "1969-12-31T23:59:59Z", "2199-12-31T23:59:59Z", "2026-02-30T00:00:00Z",
              "2026-01-01T00:00:00", "", " ", "NaN", "Infinity", "\u0000", "é" * 300,
              "x" * 70_000, "00000000-0000-0000-0000-000000000000", "../../etc/passwd"]
EDGE_NUMBERS: list[Any] = [1e300, -1e300, 1.7976931348623157e308, 5e-324, 2**63, 2**64,
                           -(2**63) - 1, 10**400, 0, -1, -0.0, True, False, None,
                           float("nan"), float("inf"), float("-inf")]
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                 max_size=4),
    max_leaves=12,
)
NASTY = st.one_of(st.sampled_from(EDGE_TEXTS), st.sampled_from(EDGE_NUMBERS), JSON)


def nasty_like(original: Any) -> st.SearchStrategy[Any]:
    """Values of the original's own type first (they pass the schema more often and reach
    the domain), anything at all otherwise."""
    if isinstance(original, str):
        same: st.SearchStrategy[Any] = st.one_of(st.sampled_from(EDGE_TEXTS),
                                                  st.text(max_size=40))
    elif isinstance(original, int | float) and not isinstance(original, bool):
        same = st.one_of(st.sampled_from(EDGE_NUMBERS), st.floats(), st.integers())
    else:
        same = JSON
    return st.one_of(same, same, NASTY)
_ids = itertools.count(1)


def recently(minutes: float = 5) -> datetime:
    return datetime.now(UTC) - timedelta(minutes=minutes)


def _city(target: IngestTarget, point: GeoPoint) -> list[tuple[IngestStream, dict[str, Any]]]:
    """Aggregates for messages to refer to, and one valid message of every type."""
    source_id = target.hazards.handle(
        RegisterHazardSource(hazard_type="chemical-storage", source_name="Tank farm 3",
            owner_name="Jinling Chemicals", owner_contact="+86 25 0000 0000", grade=2,
            location=point),
        CommandContext(actor=PLANNER, at=recently(120))).subject
    target.hazards.handle(
        AddSensor(source_id=source_id, sensor_id="tank3-gas", kind="gas-concentration",
            unit="%LEL", direction="high", warning=20, alarm=40),
        CommandContext(actor=PLANNER, at=recently(110)))
    target.resources.handle(
        RegisterResource(kind="fire-engine", resource_name="Engine 7", call_sign="E7",
            department="fire", home_base=point),
        CommandContext(actor=PLANNER, at=recently(100)))
    case_id = target.grid_cases.handle(
        ReportCase(source="inspector", category="E0101", description="garbage", location=point),
        CommandContext(actor=INSPECTOR, at=recently(90))).subject
    target.grid_cases.handle(RegisterCase(case_id=case_id), CommandContext(actor=DISPATCHER))
    target.grid_cases.handle(DispatchCase(case_id=case_id), CommandContext(actor=DISPATCHER))
    department = target.grid_cases.case(case_id).department
    assert department is not None
    crew = Actor(f"{department}-system", Role.DEPARTMENT_USER, department)
    ticket_id: UUID = target.hotline.handle(
        ReceiveTicket(channel="phone", ticket_type="complaint", topic="noise",
                      description="drilling", caller_name="Zhang San", caller_phone="13812345678",
                      location=point),
        CommandContext(actor=OPERATOR)).subject
    return [
        (IngestStream.GRID_CASE_REPORTS, messages.grid_case_report(
            category="E0101", description="Exposed garbage", location=point,
            actor=INSPECTOR, photos=["s3://p/1.jpg"], occurred_at=recently(3))),
        (IngestStream.HOTLINE_TICKETS, messages.hotline_ticket(
            channel="phone", ticket_type="complaint", topic="noise", description="drilling",
            actor=OPERATOR, caller_name="Li Si", caller_phone="13900000000",
            location=point)),
        (IngestStream.HAZARD_READINGS, messages.hazard_reading(
            source_id=source_id, sensor_id="tank3-gas", value=55.0,
            measured_at=recently(1), actor=SYSTEM)),
        (IngestStream.RESOURCE_POSITIONS, messages.resource_position(
            call_sign="E7", position=point, measured_at=recently(1), actor=SYSTEM,
            speed_mps=12.5, heading_deg=90.0)),
        (IngestStream.RESOURCE_STATUS, messages.resource_status(
            call_sign="E7", status="out-of-service", actor=SYSTEM, position=point)),
        (IngestStream.DEPARTMENT_REPORTS, messages.grid_case_handled(
            case_id=case_id, result="cleared", actor=crew, evidence=["s3://p/2.jpg"])),
        (IngestStream.DEPARTMENT_REPORTS, messages.grid_case_returned(
            case_id=case_id, reason="not ours", actor=crew)),
        (IngestStream.DEPARTMENT_REPORTS, messages.hotline_ticket_replied(
            ticket_id=ticket_id, reply="we will look", actor=crew)),
    ]


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON document (keys of objects, indexes of arrays)."""
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


def _replaced(document: Any, path: tuple[Any, ...], value: Any, *, drop: bool) -> Any:
    copy = json.loads(json.dumps(document))
    parent = copy
    for step in path[:-1]:
        parent = parent[step]
    if drop and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return copy


class Feed:
    """Delivers values to the pipeline as the Kafka worker does, and checks each outcome."""

    def __init__(self, pipeline: IngestPipeline, dead_letters: StoredDeadLetters) -> None:
        self.pipeline = pipeline
        self.dead_letters = dead_letters
        self.offsets = itertools.count(1)
        self.outcomes: list[Outcome] = []

    def deliver(self, stream: IngestStream, value: bytes | None,
                key: bytes | None = None) -> Outcome:
        before = self.dead_letters.count()
        outcome = self.pipeline.process(Delivery(
            topic=self.pipeline.topics.name(stream), value=value, key=key, partition=0,
            offset=next(self.offsets)))
        assert outcome in (Outcome.APPLIED, Outcome.DUPLICATE, Outcome.DEAD_LETTERED)
        if outcome is Outcome.DEAD_LETTERED:
            assert self.dead_letters.count() == before + 1
            letter = self.dead_letters.recent(1)[0]
            assert letter.code != "unexpected-error", (
                f"{letter.error_class}: {letter.reason} for {value!r:.300}")
            assert letter.reason.strip()
        self.outcomes.append(outcome)
        return outcome


def _encode(message: Any) -> bytes:
    # json.dumps writes NaN and Infinity (not JSON, but what a careless sender sends).
    return json.dumps(message).encode("utf-8", errors="surrogatepass")


def test_mutated_messages_are_applied_or_dead_lettered_with_a_reason(
        target: IngestTarget, pipeline: IngestPipeline, dead_letters: StoredDeadLetters,
        city_point: GeoPoint) -> None:
    valid = _city(target, city_point)
    feed = Feed(pipeline, dead_letters)

    @FUZZ
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        stream, message = data.draw(st.sampled_from(valid), label="message type")
        message = {**message, "message_id": f"fuzz-{next(_ids)}"}
        path = data.draw(st.sampled_from(_paths(message)), label="where")
        original: Any = message
        for step in path:
            original = original[step]
        nasty = data.draw(nasty_like(original), label="value")
        drop = data.draw(st.booleans(), label="drop the key instead")
        feed.deliver(stream, _encode(_replaced(message, path, nasty, drop=drop)))

    run()
    # The valid ones still go through (the fuzzing did not only meet closed doors).
    for stream, message in valid:
        feed.deliver(stream, _encode({**message, "message_id": f"valid-{next(_ids)}"}))
    assert Outcome.APPLIED in feed.outcomes


def test_anything_on_an_ingest_topic_is_dead_lettered_rather_than_raised(
        pipeline: IngestPipeline, dead_letters: StoredDeadLetters) -> None:
    feed = Feed(pipeline, dead_letters)

    @FUZZ
    @given(stream=st.sampled_from(list(IngestStream)),
           value=st.one_of(st.none(), st.binary(max_size=200),
                           JSON.map(_encode),
                           st.dictionaries(st.sampled_from(["schema", "message_id",
                                                            "occurred_at", "actor",
                                                            "payload", "extra"]),
                                           NASTY, max_size=6).map(_encode)),
           key=st.one_of(st.none(), st.binary(max_size=40)))
    def run(stream: IngestStream, value: bytes | None, key: bytes | None) -> None:
        feed.deliver(stream, value, key)

    run()
    assert set(feed.outcomes) == {Outcome.DEAD_LETTERED}
