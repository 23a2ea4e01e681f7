"""The message catalogue as a Markdown page: `docs/ingest-messages.md` is this text, generated
from the schemas by `cityops ingest catalogue` (a unit test checks that they agree)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from cityops.ingest.catalogue import MessageCatalogue, MessageType
from cityops.ingest.deadletters import HEADER_PREFIX
from cityops.ingest.pipeline import DEAD_LETTER_CODES
from cityops.ingest.replay import LEDGER_TABLE
from cityops.ingest.topics import INPUT_STREAMS, IngestStream, Topics

INTRO = """\
# Ingest messages

Outside systems send CityOps what happens in the city as JSON messages on Kafka topics (or,
without Kafka, through the in-process queue with the same rules: `cityops demo` plays its
day's inspectors, call centre, sensors, trackers, crews and departments' systems that way).
This page is generated from the JSON Schemas in `ingest/schemas/` by `cityops ingest
catalogue`; do not edit it by hand.

## Delivery rules

- **Envelope.** Every message is a JSON object `{"schema", "message_id", "occurred_at",
  "actor", "payload"}` validated against the JSON Schema (Draft 2020-12) of its type and
  version; `schema` is `<type>/<version>`.
- **Message id.** Chosen by the sender, unique per fact; the same fact sent again carries the
  same id. Commands that record a receipt use it as their command id, saved in the same
  transaction as the events the message caused: a redelivered message changes nothing. The
  same id reused for a different message is refused (dead-lettered).
- **Key.** The Kafka key is the natural key of the aggregate the message is about (listed per
  type below), so that the messages of one aggregate stay in order on one partition.
  `cityops ingest produce` sets it from the message.
- **High-rate streams.** Readings and positions have no receipt: a reading not newer than the
  sensor's last threshold crossing is ignored, and each position fix is kept once in the
  resource track, keyed by resource and measured time. Only threshold crossings and
  positions worth it become events.
- **Delivery.** At least once from Kafka (offsets committed after the message is applied or
  dead-lettered) and applied idempotently: the effect is exactly once, across worker crashes
  and rebalances.
- **Dead letters.** A message that cannot be applied goes to the dead-letter topic with its
  original key and bytes as they arrived; headers say why. Transient failures (database
  unavailable, a concurrent write) are retried, never dead-lettered.
"""


def _type_of(node: Mapping[str, Any], defs: Mapping[str, Any]) -> str:
    ref = node.get("$ref")
    if isinstance(ref, str) and "#/$defs/" in ref:
        name = ref.rsplit("/", 1)[1]
        described = {"point": "GeoJSON Point [lon, lat] (WGS84)", "uuid": "UUID",
                     "code": "catalogue code", "call_sign": "call sign",
                     "text": "text", "uri_list": "list of URLs"}.get(name)
        if described:
            return described
        return _type_of(defs[name], defs)
    if "enum" in node:
        return " \\| ".join(f"`{v}`" for v in node["enum"])
    if "const" in node:
        return f"`{node['const']}`"
    kind = node.get("type", "any")
    if kind == "object":
        inner = ", ".join(node.get("properties", {}))
        return f"object ({inner})" if inner else "object"
    limits = []
    for key, sign in (("minimum", "≥"), ("maximum", "≤"), ("exclusiveMaximum", "<")):
        if key in node:
            limits.append(f"{sign} {node[key]}")
    text = kind if isinstance(kind, str) else " or ".join(kind)
    return f"{text} ({', '.join(limits)})" if limits else text


def _payload_table(message_type: MessageType, defs: Mapping[str, Any]) -> list[str]:
    payload = message_type.document["properties"]["payload"]
    required = set(payload.get("required", []))
    lines = ["| field | type | required | notes |", "|---|---|---|---|"]
    for name, node in payload["properties"].items():
        notes = node.get("description", "")
        if "default" in node:
            notes = f"{notes} Default `{node['default']}`.".strip()
        lines.append(f"| `{name}` | {_type_of(node, defs)} | "
                     f"{'yes' if name in required else 'no'} | {notes} |")
    return lines


def render_markdown(catalogue: MessageCatalogue | None = None,
                    topics: Topics | None = None) -> str:
    """The whole catalogue page."""
    catalogue = catalogue or MessageCatalogue.load()
    topics = topics or Topics()
    envelope = catalogue.envelope
    defs = envelope["$defs"]
    out = [INTRO]
    out += ["## Topics", "", "| topic | from | message types |", "|---|---|---|"]
    for stream in INPUT_STREAMS:
        doc = _stream_doc(stream)
        types = ", ".join(f"`{t.schema}`" for t in catalogue.of_stream(stream))
        out.append(f"| `{topics.name(stream)}` | {doc} | {types} |")
    out.append(f"| `{topics.dead_letters}` | ingest workers | dead letters (below) |")
    out += ["", "Partitions: 3 by default (`cityops ingest topics create --partitions N`).", ""]

    out += ["## Envelope", "", "| field | type | notes |", "|---|---|---|"]
    for name, node in envelope["properties"].items():
        target = node
        if "$ref" in node:
            target = defs[node["$ref"].rsplit("/", 1)[1]]
        notes = target.get("description", node.get("description", ""))
        out.append(f"| `{name}` | {_type_of(node, defs)} | {notes} |")
    actor = defs["actor"]["properties"]
    out += ["", "`actor`: `user_id` (text), `role` (" + _type_of(actor["role"], defs) +
            "), `department` (required for department users).", ""]

    for stream in INPUT_STREAMS:
        for message_type in sorted(catalogue.of_stream(stream), key=lambda t: t.schema):
            out += [f"## {message_type.title} — `{message_type.schema}`", "",
                    message_type.description, "",
                    f"- Topic: `{topics.name(message_type.stream)}`",
                    f"- Key: `{message_type.key}` — {message_type.key_description}",
                    f"- Applied by: `{message_type.command}`",
                    "- Repeats: " + ("a receipt under the message id makes a repeat change "
                                     "nothing" if message_type.receipt else
                                     "harmless by the domain's ordering rule (no receipt)"),
                    f"- Schema: `ingest/schemas/{message_type.type}.v{message_type.version}"
                    ".json`", "", "Payload:", ""]
            out += _payload_table(message_type, defs)
            for example in message_type.examples:
                out += ["", "Example:", "", "```json", json.dumps(example, indent=2,
                                                               ensure_ascii=False), "```"]
            out.append("")

    out += ["## Dead letters", "",
            f"On `{topics.dead_letters}`: the key and value are the original message's, "
            "byte for byte; these headers say what happened:", "",
            "| header | meaning |", "|---|---|"]
    for name, meaning in (
        ("reason", "what is wrong, in words"),
        ("code", "kind of problem (below)"),
        ("error-class", "the error class that refused it"),
        ("source-topic", "where the message came from"),
        ("source-partition", "its partition"),
        ("source-offset", "its offset"),
        ("at", "when it was dead-lettered (RFC 3339)"),
        ("worker", "which ingest worker set it aside"),
        ("message-id", "its message id, when it could be read"),
        ("schema", "its type/version, when it could be read"),
        ("value-dropped", "only if the value was too large even for this topic (8 MiB): "
                          "its size; the value is then empty"),
    ):
        out.append(f"| `{HEADER_PREFIX}{name}` | {meaning} |")
    codes = ["oversized", "malformed", "unknown-schema", "schema-violation", "wrong-topic",
             *DEAD_LETTER_CODES.values(), "unexpected-error"]
    out += ["", "Codes: " + ", ".join(f"`{c}`" for c in codes) + ".", "",
            "Without Kafka, dead letters are kept in the `ingest_dead_letters` table of the "
            "read store.", "",
            "`cityops ingest dead-letters` shows the latest (`--limit N`): from the "
            "dead-letter topic with Kafka, from that table without.", "",
            "`cityops ingest dead-letters replay` submits them again once their cause is "
            "fixed (a category added to the catalogue, a resource registered), with their "
            "original bytes, through the same pipeline. `--topic` (source topics or stream "
            "names, comma-separated), `--reason` (a code such as `not-found`, or text the "
            "reason contains) and `--since` (a time with its offset, or a UTC date) choose "
            "which; `--dry-run` lists them and changes nothing. The message id stays the "
            "command id, so a message applied in the meantime changes nothing. A ledger in "
            f"the ingest store (`{LEDGER_TABLE}`) records what each replay came to: "
            "`applied` or `duplicate` (finished: not replayed again), `failed-again` with the "
            "new reason, or `not-replayed` (a transient failure lasted); both are tried again "
            "by a later replay, and the command exits 1 if there were any.", ""]
    return "\n".join(out)


def _stream_doc(stream: IngestStream) -> str:
    return {
        IngestStream.GRID_CASE_REPORTS: "inspectors' mobile app",
        IngestStream.HOTLINE_TICKETS: "call-centre system",
        IngestStream.HAZARD_READINGS: "IoT gateway",
        IngestStream.RESOURCE_POSITIONS: "vehicle trackers",
        IngestStream.RESOURCE_STATUS: "crews' terminals",
        IngestStream.DEPARTMENT_REPORTS: "departments' systems",
    }.get(stream, "")
