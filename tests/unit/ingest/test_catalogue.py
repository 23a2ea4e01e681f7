"""The message catalogue: every schema is a valid Draft 2020-12 schema with valid examples,
its enums agree with the domain, and bad input is refused with a reason that says what is
wrong (and is classified as the dead-letter code the operator will see)."""

from __future__ import annotations

import copy
import json
import random
from datetime import UTC, datetime
from typing import Any

import fastjsonschema
import pytest
from jsonschema import Draft202012Validator

from cityops.domain.actors import Role
from cityops.domain.catalogue import Urgency
from cityops.domain.errors import InvalidValue
from cityops.domain.gridcases.case import CaseSource
from cityops.domain.hotline.ticket import Channel, TicketType
from cityops.ingest.catalogue import (
    Malformed,
    MessageCatalogue,
    Oversized,
    SchemaViolation,
    UnknownSchema,
    WrongTopic,
    parse_timestamp,
)
from cityops.ingest.handlers import HANDLERS, STATUS_COMMANDS
from cityops.ingest.topics import INPUT_STREAMS, IngestStream

CATALOGUE = MessageCatalogue.load()
LIMIT = 256 * 1024


def example(schema: str) -> dict[str, Any]:
    return copy.deepcopy(CATALOGUE.types[schema].examples[0])


def parse(document: Any, stream: IngestStream, *, raw: bytes | None = None,
          max_bytes: int = LIMIT) -> Any:
    value = raw if raw is not None else json.dumps(document).encode()
    return CATALOGUE.parse(value, stream=stream, max_bytes=max_bytes)


def test_the_catalogue_has_one_handler_per_message_type_and_a_topic_for_each() -> None:
    assert set(CATALOGUE.types) == set(HANDLERS)
    assert {t.stream for t in CATALOGUE.types.values()} == set(INPUT_STREAMS)


@pytest.mark.parametrize("schema", sorted(CATALOGUE.types))
def test_each_schema_is_valid_and_its_example_parses(schema: str) -> None:
    message_type = CATALOGUE.types[schema]
    Draft202012Validator.check_schema(dict(message_type.document))
    assert message_type.examples, f"{schema} has no example for the docs"
    for document in message_type.examples:
        message = parse(document, message_type.stream)
        assert message.schema == schema
        assert message.message_id == document["message_id"]
        assert message.occurred_at == parse_timestamp(document["occurred_at"])
        assert message.occurred_at.tzinfo is UTC
        assert message.actor.user_id == document["actor"]["user_id"]
        assert message.key == message_type.key_of(document)
        assert message.key is not None


def _enum(schema: str, *path: str) -> set[str]:
    node: Any = CATALOGUE.types[schema].document["properties"]["payload"]["properties"]
    for part in path:
        node = node[part]
    return set(node["enum"])


def test_schema_enums_are_the_domain_values() -> None:
    assert set(CATALOGUE.envelope["$defs"]["actor"]["properties"]["role"]["enum"]) == {
        r.value for r in Role}
    assert _enum("hotline-ticket/1", "channel") == {c.value for c in Channel}
    assert _enum("hotline-ticket/1", "ticket_type") == {t.value for t in TicketType}
    assert _enum("grid-case-report/1", "urgency") == {u.value for u in Urgency}
    # Hotline cases come from tickets, not from this topic.
    assert _enum("grid-case-report/1", "source") == {s.value for s in CaseSource} - {"hotline"}
    assert _enum("resource-status/1", "status") == set(STATUS_COMMANDS)


def test_natural_keys_keep_one_aggregate_on_one_partition() -> None:
    position = example("resource-position/1")
    reading = example("hazard-reading/1")
    handled = example("grid-case-handled/1")
    report = example("grid-case-report/1")
    assert CATALOGUE.types["resource-position/1"].key_of(position) == "FIRE 12"
    assert CATALOGUE.types["hazard-reading/1"].key_of(reading) == reading["payload"]["source_id"]
    assert CATALOGUE.types["grid-case-handled/1"].key_of(handled) == handled["payload"]["case_id"]
    assert CATALOGUE.types["grid-case-report/1"].key_of(report) == report["message_id"]


def test_times_need_an_offset_and_are_kept_in_utc() -> None:
    assert parse_timestamp("2026-05-04T09:12:30+08:00") == datetime(2026, 5, 4, 1, 12, 30,
                                                                   tzinfo=UTC)
    assert parse_timestamp("2026-05-04t01:12:30.5z") == datetime(2026, 5, 4, 1, 12, 30, 500000,
                                                                tzinfo=UTC)
    document = example("grid-case-report/1")
    document["occurred_at"] = "2026-05-04T09:12:30"
    with pytest.raises(SchemaViolation, match=r"occurred_at: .* does not match"):
        parse(document, IngestStream.GRID_CASE_REPORTS)
    document["occurred_at"] = "2026-02-30T09:12:30Z"
    with pytest.raises(SchemaViolation, match="occurred_at: '2026-02-30T09:12:30Z' is not a "
                                              "'date-time'"):
        parse(document, IngestStream.GRID_CASE_REPORTS)


@pytest.mark.parametrize(("raw", "problem"), [
    (b"", "not valid JSON"),
    (b"{\"schema\": ", "not valid JSON"),
    (b"\xff\xfe\x00", "not UTF-8"),
    (b"[1, 2]", "must be a JSON object, got list"),
    (b"\"text\"", "must be a JSON object, got str"),
    (b"[" * 100_000, "not valid JSON"),
])
def test_bytes_that_are_not_a_json_object_are_malformed(raw: bytes, problem: str) -> None:
    with pytest.raises(Malformed, match=problem):
        parse(None, IngestStream.GRID_CASE_REPORTS, raw=raw)


def test_a_tombstone_is_malformed() -> None:
    with pytest.raises(Malformed, match="no value"):
        CATALOGUE.parse(None, stream=IngestStream.GRID_CASE_REPORTS, max_bytes=LIMIT)


def test_an_oversized_message_is_refused_unread() -> None:
    document = example("grid-case-report/1")
    document["payload"]["description"] = "x" * 3000
    raw = json.dumps(document).encode()
    with pytest.raises(Oversized, match=f"{len(raw):,} bytes; the limit is 2,048"):
        parse(None, IngestStream.GRID_CASE_REPORTS, raw=raw, max_bytes=2048)
    # The same bytes under the default limit are a valid message.
    assert parse(None, IngestStream.GRID_CASE_REPORTS, raw=raw).payload["description"]


@pytest.mark.parametrize(("schema", "problem"), [
    (None, 'no "schema" field'),
    (7, 'must be a string "<type>/<version>"'),
    ("grid-case-report/9", "unknown version '9' of message type 'grid-case-report'; known "
                           "versions: 1"),
    ("parking-ticket/1", "unknown message type 'parking-ticket/1'; known types: "
                         "grid-case-handled, grid-case-report"),
])
def test_an_unknown_type_or_version_is_named(schema: Any, problem: str) -> None:
    document = example("grid-case-report/1")
    if schema is None:
        del document["schema"]
    else:
        document["schema"] = schema
    with pytest.raises(UnknownSchema) as raised:
        parse(document, IngestStream.GRID_CASE_REPORTS)
    assert problem in str(raised.value)


@pytest.mark.parametrize(("change", "problem"), [
    (lambda d: d["payload"].pop("category"), "payload: 'category' is a required property"),
    (lambda d: d.pop("actor"), "(message): 'actor' is a required property"),
    (lambda d: d.update(extra=1), "Additional properties are not allowed ('extra'"),
    (lambda d: d["payload"].update(categroy="E0101"), "'categroy' was unexpected"),
    (lambda d: d["payload"]["location"].update(coordinates=[32.06, 118.79]),
     "payload.location.coordinates[1]: 118.79 is greater than the maximum of 90"),
    (lambda d: d["payload"].update(urgency="asap"),
     "payload.urgency: 'asap' is not one of ['normal', 'urgent']"),
    (lambda d: d.update(message_id="has space"), "message_id: 'has space' does not match"),
    (lambda d: d["actor"].update(role="mayor"), "actor.role: 'mayor' is not one of"),
    (lambda d: d["payload"].update(description=""), "payload.description: '' should be non-empty"),
])
def test_schema_violations_say_where_and_what(change: Any, problem: str) -> None:
    document = example("grid-case-report/1")
    change(document)
    with pytest.raises(SchemaViolation) as raised:
        parse(document, IngestStream.GRID_CASE_REPORTS)
    assert str(raised.value).startswith("grid-case-report/1: ")
    assert problem in str(raised.value)


def test_several_violations_are_all_reported_up_to_a_limit() -> None:
    document = example("resource-position/1")
    document["payload"] = {"call_sign": "", "position": {"type": "Line"}, "speed_mps": -1,
                           "heading_deg": 360, "colour": "red", "fuel": 3}
    with pytest.raises(SchemaViolation) as raised:
        parse(document, IngestStream.RESOURCE_POSITIONS)
    text = str(raised.value)
    assert text.count(";") == 4
    assert "more)" in text


def test_a_message_on_the_wrong_topic_is_refused() -> None:
    with pytest.raises(WrongTopic, match="grid-case-report/1 is carried by the "
                                         "grid-case-reports topic, not hazard-readings"):
        parse(example("grid-case-report/1"), IngestStream.HAZARD_READINGS)
    with pytest.raises(WrongTopic, match="not an ingest input topic"):
        parse(example("grid-case-report/1"), None)  # type: ignore[arg-type]


def test_an_actor_the_domain_refuses_is_an_invalid_value() -> None:
    document = example("grid-case-handled/1")
    del document["actor"]["department"]
    with pytest.raises(InvalidValue, match="actor: a department user must belong to a "
                                           "department"):
        parse(document, IngestStream.DEPARTMENT_REPORTS)


def test_the_digest_tells_a_repeat_from_another_message_with_the_same_id() -> None:
    first = parse(example("hazard-reading/1"), IngestStream.HAZARD_READINGS)
    again = example("hazard-reading/1")
    again["occurred_at"] = "2026-05-04T02:00:00+00:00"  # same instant, other spelling
    again["actor"]["user_id"] = "iot-gateway-8"  # who sent it is not what it asks
    other = example("hazard-reading/1")
    other["payload"]["value"] = 99.0
    assert parse(again, IngestStream.HAZARD_READINGS).digest == first.digest
    assert parse(other, IngestStream.HAZARD_READINGS).digest != first.digest


def test_the_compiled_validator_never_accepts_what_the_reference_refuses() -> None:
    """The fast path (fastjsonschema) only lets a message through without the reference
    validator if the reference would accept it too: checked on every example mutated in
    every field, a few thousand messages."""
    catalogue = MessageCatalogue.load()
    rng = random.Random(3)
    values: list[object] = [None, True, 0, -1, 1.5, "", "x", " a", "a\n", [], {}, [1, 2],
                            [1, 2, 3, 4], {"a": 1}, "2026-02-30T10:00:00Z",
                            "2026-05-04T09:12:30", "Point", -200, 91, "A" * 5000]

    def paths(node: object, prefix: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        found: list[tuple[object, ...]] = []
        items = (node.items() if isinstance(node, dict)
                 else enumerate(node) if isinstance(node, list) else [])
        for key, child in items:
            found += [(*prefix, key), *paths(child, (*prefix, key))]
        return found

    refused = 0
    for message_type in catalogue.types.values():
        for example in message_type.examples:
            assert not list(message_type.validator.iter_errors(example))
            message_type.accepts(example)
            for _ in range(300):
                message = copy.deepcopy(example)
                *parents, last = rng.choice(paths(example))
                node: Any = message
                for key in parents:
                    node = node[key]
                if isinstance(node, dict) and rng.random() < 0.2:
                    del node[last]
                else:
                    node[last] = rng.choice(values)
                reference_accepts = not list(message_type.validator.iter_errors(message))
                refused += not reference_accepts
                try:
                    message_type.accepts(message)
                except fastjsonschema.JsonSchemaException:
                    continue
                assert reference_accepts, (message_type.schema, message)
    assert refused > 1000
