"""The sharing catalogue as the feeds' streams need it: which fields each stream's messages
can carry (the catalogue must classify every one), and the loader that validates the policy
against them.

The policy itself (sharing classes, conditions, viewers, applying it to messages and
documents) is `cityops.domain.sharing`: one policy for every read path, the feeds included.
The system loads it at start-up (`CitySystem.sharing`); see docs/sharing.md.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

from cityops.domain.sharing import (
    ACTOR_FIELD,
    CONDITIONAL_PREFIX,
    Condition,
    FieldSharing,
    SharingClass,
    SharingPolicy,
    Viewer,
)
from cityops.feeds.streams import STREAMS, Stream, all_fact_fields
from cityops.feeds.subject import CONTEXT_FIELDS

__all__ = ["ACTOR_FIELD", "CONDITIONAL_PREFIX", "Condition", "FieldSharing", "Recipient",
           "SharingCatalogue", "SharingClass", "load_sharing_policy", "required_fields",
           "stream_fields"]

Recipient = Viewer
"""Who a feed message is for (a department's topic or webhooks, or the city-wide topics)."""
SharingCatalogue = SharingPolicy
"""The feeds' name for the sharing policy."""


WARNING_FIELDS = {
    "alert": "a public warning's CAP alert",
    "restricted_alert": "a restricted warning's CAP alert (scope Restricted)",
    "draft": "a warning's document on screens: the content under preparation",
    "authors": "a warning's document on screens: who wrote its content",
    "approved_by": "a warning's document on screens: who approved the content to be sent",
    "approved_at": "a warning's document on screens: when the content to be sent was approved",
}
"""What the warnings stream carries: whole CAP documents, shared by the warning's scope (the
feeds), and the fields of a warning's document that screens show only where the catalogue
allows (its preparation)."""


def required_fields(stream: Stream) -> dict[str, str]:
    """Every field a stream's messages can carry, with where it comes from (for errors)."""
    if stream is Stream.WARNINGS:
        return dict(WARNING_FIELDS)
    spec = STREAMS[stream]
    required = {ACTOR_FIELD: "the envelope's actor"}
    for name in CONTEXT_FIELDS[spec.aggregate]:
        required[name] = "the message context"
    for name, carriers in all_fact_fields(spec).items():
        required[name] = ", ".join(carriers)
    return required


def stream_fields() -> dict[str, dict[str, str]]:
    """`required_fields` of every stream, by stream name, in the documented order."""
    return {stream.value: required_fields(stream) for stream in Stream}


def load_sharing_policy(path: Path | None = None, *,
                        departments: Collection[str]) -> SharingPolicy:
    """Load the sharing catalogue (`path`, or the built-in one) and validate it against the
    streams' fields and the `departments` a condition may name."""
    return SharingPolicy.load(path, departments=departments, fields=stream_fields())
