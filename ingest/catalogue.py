"""The message catalogue: the versioned JSON Schemas shipped in `schemas/`, and the one place
where raw bytes become a validated `Message` or a `Rejected` saying exactly what is wrong.

Each message schema (`<type>.v<version>.json`, JSON Schema Draft 2020-12) refers to
`envelope.json` for what every message shares, and says in `x-cityops` which topic carries it
and which field is its Kafka key. The same schemas render the catalogue in the docs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any

import fastjsonschema
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError

from cityops.domain.actors import Actor
from cityops.domain.errors import InvalidValue
from cityops.domain.values import checked_instant
from cityops.ingest.topics import IngestStream

MAX_PROBLEMS_SHOWN = 5


class Rejected(Exception):
    """A message that cannot be applied as it stands; `code` names the kind of problem."""

    code = "rejected"


class Oversized(Rejected):
    """The message is bigger than the configured maximum: it is not even parsed."""

    code = "oversized"


class Malformed(Rejected):
    """The bytes are not a UTF-8 JSON object."""

    code = "malformed"


class UnknownSchema(Rejected):
    """The message names a type or version the catalogue does not have."""

    code = "unknown-schema"


class SchemaViolation(Rejected):
    """The message does not match its JSON Schema."""

    code = "schema-violation"


class WrongTopic(Rejected):
    """The message arrived on a topic that does not carry its type (or on no ingest topic)."""

    code = "wrong-topic"


def parse_timestamp(text: str) -> datetime:
    """An RFC 3339 date-time with an offset (`Z`, `z` or `+hh:mm`) as an aware datetime."""
    moment = datetime.fromisoformat(text.upper())
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset")
    return moment


def _is_date_time(value: object) -> bool:
    # The schema's pattern checks the shape; this catches impossible dates (Feb 30).
    if isinstance(value, str):
        parse_timestamp(value)
    return True


def _format_checker() -> FormatChecker:
    checker = FormatChecker(formats=())
    checker.checks("date-time", raises=ValueError)(_is_date_time)
    return checker


@dataclass(frozen=True)
class MessageType:
    """One version of one message type, as its schema file describes it."""

    schema: str
    """`<type>/<version>`, e.g. `grid-case-report/1`."""
    type: str
    version: int
    title: str
    description: str
    stream: IngestStream
    key: str
    """Where the Kafka key comes from: `message_id` or `payload.<field>`."""
    key_description: str
    command: str
    receipt: bool
    """Whether the command records a receipt under the message id (exactly-once by id)."""
    document: Mapping[str, Any]
    validator: Draft202012Validator
    """The reference validator: it decides, and lists every problem of a message."""
    accepts: Callable[[Any], object]
    """The same schema compiled to Python code (fastjsonschema): it raises on a message the
    reference would refuse, about twenty times faster; only then is the reference asked."""

    @property
    def examples(self) -> list[dict[str, Any]]:
        return list(self.document.get("examples", []))

    def key_of(self, message: Mapping[str, Any]) -> str | None:
        """The natural key of a message of this type (None if the field is missing)."""
        value: Any = message
        for part in self.key.split("."):
            if not isinstance(value, Mapping) or part not in value:
                return None
            value = value[part]
        return None if value is None else str(value)


@dataclass(frozen=True)
class Message:
    """A validated message: envelope facts, the actor, and the payload as sent."""

    type: MessageType
    message_id: str
    occurred_at: datetime
    actor: Actor
    payload: Mapping[str, Any]
    digest: str
    """Digest of what the message asks (type and payload): the same id with another digest
    is another message reusing the id, not a repeat."""

    @property
    def schema(self) -> str:
        return self.type.schema

    @property
    def key(self) -> str | None:
        return self.type.key_of({"message_id": self.message_id, "payload": self.payload})


def _inlined(node: Any, base: Mapping[str, Any], documents: Mapping[str, Mapping[str, Any]],
             ) -> Any:
    """`node` with every `$ref` replaced by what it points to (a `$ref` beside other keywords
    becomes an `allOf` of both, as Draft 2020-12 reads it). jsonschema validates such a
    schema in about half the time, and per-message validation is on the hot path."""
    if isinstance(node, list):
        return [_inlined(item, base, documents) for item in node]
    if not isinstance(node, Mapping):
        return node
    if "$ref" not in node:
        return {k: _inlined(v, base, documents) for k, v in node.items()
                if k not in ("$id", "$schema", "examples", "x-cityops")}
    target, _, pointer = str(node["$ref"]).partition("#")
    document = documents[target] if target else base
    resolved: Any = document
    for part in (p for p in pointer.split("/") if p):
        resolved = resolved[part]
    resolved = _inlined(resolved, document, documents)
    rest = {k: v for k, v in node.items() if k != "$ref"}
    if not rest:
        return resolved
    return {"allOf": [resolved, _inlined(rest, base, documents)]}


def _as_draft7(node: Any) -> Any:
    """An inlined Draft 2020-12 schema in the Draft 7 words fastjsonschema compiles: the
    tuple form of `items` instead of `prefixItems`, and nothing that only annotates."""
    if isinstance(node, list):
        return [_as_draft7(item) for item in node]
    if not isinstance(node, Mapping):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("properties", "patternProperties", "$defs", "definitions"):
            # Names of properties, not keywords: keep them all.
            out[key] = {name: _as_draft7(sub) for name, sub in value.items()}
            continue
        if key in ("description", "title", "default", "$comment"):
            # `default` is dropped on purpose: fastjsonschema would write it into the
            # message it validates.
            continue
        if key == "prefixItems":
            if "items" in node:
                raise ValueError("prefixItems beside items has no Draft 7 form")
            out["items"] = _as_draft7(value)
            continue
        out[key] = _as_draft7(value)
    return out


def _compiled(schema: Mapping[str, Any]) -> Callable[[Any], object]:
    compiled: Callable[[Any], object] = fastjsonschema.compile(
        {"$schema": "http://json-schema.org/draft-07/schema#", **_as_draft7(schema)},
        formats={"date-time": _is_valid_date_time}, use_default=False)
    return compiled


def _is_valid_date_time(value: object) -> bool:
    try:
        return _is_date_time(value)
    except ValueError:
        return False


def _problem(error: ValidationError) -> str:
    where = error.json_path.removeprefix("$") or "(message)"
    where = where.removeprefix(".")
    return f"{where}: {error.message}"


class MessageCatalogue:
    """Every message type and version ingest knows, with validators built once."""

    def __init__(self, documents: Iterable[Mapping[str, Any]]) -> None:
        documents = list(documents)
        by_name = {str(doc["$id"]).rsplit("/", 1)[1]: doc for doc in documents}
        checker = _format_checker()
        self.types: dict[str, MessageType] = {}
        self.envelope: Mapping[str, Any] = {}
        for doc in documents:
            meta = doc.get("x-cityops")
            if meta is None:
                # The envelope: what every message shares, not a message type of its own.
                self.envelope = doc
                continue
            Draft202012Validator.check_schema(doc)
            schema = doc["properties"]["schema"]["const"]
            inlined = _inlined(doc, doc, by_name)
            type_name, _, version = schema.partition("/")
            self.types[schema] = MessageType(
                schema=schema, type=type_name, version=int(version), title=doc["title"],
                description=doc["description"], stream=IngestStream(meta["topic"]),
                key=meta["key"], key_description=meta["key_description"],
                command=meta["command"], receipt=bool(meta["receipt"]), document=doc,
                validator=Draft202012Validator(inlined, format_checker=checker),
                accepts=_compiled(inlined),
            )

    @classmethod
    def load(cls) -> MessageCatalogue:
        """The catalogue shipped with the package (built once per process)."""
        return _shipped_catalogue()

    def versions(self, type_name: str) -> list[int]:
        return sorted(t.version for t in self.types.values() if t.type == type_name)

    def of_stream(self, stream: IngestStream) -> list[MessageType]:
        return [t for t in self.types.values() if t.stream is stream]

    def message_type(self, schema: object) -> MessageType:
        """The type a message's `schema` field names, or `UnknownSchema` saying why not."""
        if schema is None:
            raise UnknownSchema('the message has no "schema" field naming its type/version')
        if not isinstance(schema, str):
            raise UnknownSchema(f'"schema" must be a string "<type>/<version>", got {schema!r}')
        found = self.types.get(schema)
        if found is not None:
            return found
        type_name, _, version = schema.partition("/")
        known = self.versions(type_name)
        if known:
            raise UnknownSchema(
                f"unknown version {version!r} of message type {type_name!r}; known versions: "
                f"{', '.join(str(v) for v in known)}"
            )
        names = sorted({t.type for t in self.types.values()})
        raise UnknownSchema(f"unknown message type {schema!r}; known types: {', '.join(names)}")

    def decode(self, value: bytes | None, *, max_bytes: int) -> dict[str, Any]:
        """The JSON object in `value`, or `Oversized` / `Malformed`."""
        if value is None:
            raise Malformed("the message has no value (a tombstone)")
        if len(value) > max_bytes:
            raise Oversized(f"the message is {len(value):,} bytes; the limit is {max_bytes:,}")
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError as error:
            raise Malformed(f"the message is not UTF-8 text: {error}") from None
        try:
            document = json.loads(text)
        except json.JSONDecodeError as error:
            raise Malformed(f"the message is not valid JSON: {error}") from None
        except RecursionError:
            raise Malformed("the message is not valid JSON: nested too deeply") from None
        if not isinstance(document, dict):
            raise Malformed(f"the message must be a JSON object, got {type(document).__name__}")
        return document

    def validate(self, document: Mapping[str, Any]) -> MessageType:
        """The message's type, after checking the whole message against its schema."""
        message_type = self.message_type(document.get("schema"))
        try:
            message_type.accepts(document)
        except fastjsonschema.JsonSchemaException:
            pass  # the reference validator says what is wrong (or overrules it)
        else:
            return message_type
        errors = sorted(message_type.validator.iter_errors(document),
                        key=lambda e: (list(e.absolute_path), e.message))
        if errors:
            shown = "; ".join(_problem(e) for e in errors[:MAX_PROBLEMS_SHOWN])
            more = len(errors) - MAX_PROBLEMS_SHOWN
            suffix = f" (and {more} more)" if more > 0 else ""
            raise SchemaViolation(f"{message_type.schema}: {shown}{suffix}")
        return message_type

    def parse(self, value: bytes | None, *, stream: IngestStream | None,
              max_bytes: int) -> Message:
        """Bytes from `stream` as a validated `Message`; anything wrong raises `Rejected`
        (or the domain's `InvalidValue` for an actor it refuses)."""
        document = self.decode(value, max_bytes=max_bytes)
        message_type = self.validate(document)
        if stream is None:
            raise WrongTopic(f"{message_type.schema} arrived on a topic that is not an "
                             "ingest input topic")
        if message_type.stream is not stream:
            raise WrongTopic(f"{message_type.schema} is carried by the "
                             f"{message_type.stream.value} topic, not {stream.value}")
        actor = document["actor"]
        try:
            who = Actor(user_id=actor["user_id"], role=actor["role"],
                        department=actor.get("department"))
        except InvalidValue as error:
            raise InvalidValue(f"actor: {error}") from None
        payload = document["payload"]
        digest = hashlib.sha256(json.dumps(
            {"schema": message_type.schema, "payload": payload}, sort_keys=True,
            separators=(",", ":"),
        ).encode()).hexdigest()
        return Message(
            type=message_type, message_id=document["message_id"],
            # In the domain's range before it is converted (year 1 at +23:59 is year 0 in UTC).
            occurred_at=checked_instant("occurred_at", parse_timestamp(
                document["occurred_at"])).astimezone(UTC),
            actor=who, payload=payload, digest=digest,
        )


@cache
def _shipped_catalogue() -> MessageCatalogue:
    folder = resources.files("cityops.ingest") / "schemas"
    documents = [json.loads(entry.read_text(encoding="utf-8"))
                 for entry in sorted(folder.iterdir(), key=lambda e: e.name)
                 if entry.name.endswith(".json")]
    return MessageCatalogue(documents)
