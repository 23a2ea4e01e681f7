"""Building ingest messages from Python: what a sending system does, for the simulator, drills,
the benchmark and tests. Each builder returns the JSON document of one message of the
catalogue; `encode` and `key_of` give its bytes and its Kafka key.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from cityops.domain.actors import Actor
from cityops.domain.clock import system_clock
from cityops.domain.geometry import GeoPoint
from cityops.ingest.catalogue import MessageCatalogue


def envelope(schema: str, payload: Mapping[str, Any], *, actor: Actor,
             occurred_at: datetime | None = None, message_id: str | None = None) -> dict[str, Any]:
    """A message of type `schema` around `payload` (new message id, now, unless given)."""
    # A sending system's own clock; the simulator and drills always give their time.
    moment = occurred_at or system_clock()
    if moment.tzinfo is None:
        raise ValueError("occurred_at needs a time zone")
    return {
        "schema": schema,
        "message_id": message_id or str(uuid4()),
        "occurred_at": moment.isoformat(),
        "actor": {k: v for k, v in actor.as_dict().items() if v is not None},
        "payload": dict(payload),
    }


def _point(point: GeoPoint) -> dict[str, Any]:
    return point.to_geojson()


def _without_none(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def grid_case_report(*, category: str, description: str, location: GeoPoint, actor: Actor,
                     urgency: str = "normal", source: str = "inspector",
                     photos: Sequence[str] = (), **envelope_args: Any) -> dict[str, Any]:
    return envelope("grid-case-report/1", _without_none({
        "category": category, "description": description, "location": _point(location),
        "urgency": urgency, "source": source, "photos": list(photos) or None,
    }), actor=actor, **envelope_args)


def hotline_ticket(*, channel: str, ticket_type: str, topic: str, description: str,
                   actor: Actor, caller_name: str | None = None,
                   caller_phone: str | None = None, location: GeoPoint | None = None,
                   **envelope_args: Any) -> dict[str, Any]:
    caller = _without_none({"name": caller_name, "phone": caller_phone})
    return envelope("hotline-ticket/1", _without_none({
        "channel": channel, "ticket_type": ticket_type, "topic": topic,
        "description": description, "caller": caller or None,
        "location": _point(location) if location else None,
    }), actor=actor, **envelope_args)


def hazard_reading(*, source_id: UUID, sensor_id: str, value: float, measured_at: datetime,
                   actor: Actor, **envelope_args: Any) -> dict[str, Any]:
    return envelope("hazard-reading/1", {
        "source_id": str(source_id), "sensor_id": sensor_id, "value": value,
    }, actor=actor, occurred_at=measured_at, **envelope_args)


def resource_position(*, call_sign: str, position: GeoPoint, measured_at: datetime,
                      actor: Actor, speed_mps: float | None = None,
                      heading_deg: float | None = None, **envelope_args: Any) -> dict[str, Any]:
    return envelope("resource-position/1", _without_none({
        "call_sign": call_sign, "position": _point(position), "speed_mps": speed_mps,
        "heading_deg": heading_deg,
    }), actor=actor, occurred_at=measured_at, **envelope_args)


def resource_status(*, call_sign: str, status: str, actor: Actor,
                    position: GeoPoint | None = None, **envelope_args: Any) -> dict[str, Any]:
    return envelope("resource-status/1", _without_none({
        "call_sign": call_sign, "status": status,
        "position": _point(position) if position else None,
    }), actor=actor, **envelope_args)


def grid_case_handled(*, case_id: UUID, result: str, actor: Actor,
                      evidence: Sequence[str] = (), **envelope_args: Any) -> dict[str, Any]:
    return envelope("grid-case-handled/1", _without_none({
        "case_id": str(case_id), "result": result, "evidence": list(evidence) or None,
    }), actor=actor, **envelope_args)


def grid_case_returned(*, case_id: UUID, reason: str, actor: Actor,
                       suggested_department: str | None = None,
                       **envelope_args: Any) -> dict[str, Any]:
    return envelope("grid-case-returned/1", _without_none({
        "case_id": str(case_id), "reason": reason,
        "suggested_department": suggested_department,
    }), actor=actor, **envelope_args)


def hotline_ticket_replied(*, ticket_id: UUID, reply: str, actor: Actor,
                           **envelope_args: Any) -> dict[str, Any]:
    return envelope("hotline-ticket-replied/1", {"ticket_id": str(ticket_id), "reply": reply},
                    actor=actor, **envelope_args)


def encode(message: Mapping[str, Any]) -> bytes:
    """The bytes of a message as it goes on the wire."""
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def key_of(message: Mapping[str, Any], catalogue: MessageCatalogue | None = None) -> str:
    """The Kafka key of a message: its aggregate's natural key, as its type defines it."""
    found = (catalogue or MessageCatalogue.load()).message_type(message.get("schema"))
    key = found.key_of(message)
    if key is None:
        raise ValueError(f"{found.schema} message has no {found.key}")
    return key
