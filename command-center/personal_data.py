"""Caller personal data (name, phone number) is shared on condition: the command centre shows
it only to the roles that need it to talk to the caller, and masks it for everyone else.

This is the one place that decides it, for tickets' summaries, lists and histories alike.
"""

from __future__ import annotations

from typing import Any

from cityops.domain.actors import Actor, Role

ENTITLED_ROLES = frozenset({Role.HOTLINE_OPERATOR, Role.DISPATCHER, Role.ADMIN})
"""Roles that see caller personal data in clear (the first cut; a sharing catalogue later)."""

NAME_KEYS = frozenset({"caller_name"})
PHONE_KEYS = frozenset({"caller_phone"})
CALLER_KEY = "caller"
"""`HotlineTicket.summary()` nests the caller as {"name": ..., "phone": ...} under this key;
events and merged calls carry `caller_name` and `caller_phone` side by side."""

PHONE_KEPT_HEAD = 3
PHONE_KEPT_TAIL = 4
SHORT_PHONE_KEPT_TAIL = 2


def protect_caller_data(data: Any, actor: Actor) -> Any:
    """`data` (a ticket summary, a read-model document or an event body) as `actor` may see
    it: unchanged for an entitled role, otherwise with every caller name and phone number
    masked ("Zh***", "138****5678"). Returns a new structure; `data` is not changed."""
    if actor.role in ENTITLED_ROLES:
        return data
    return _masked(data)


def _masked(data: Any) -> Any:
    if isinstance(data, list):
        return [_masked(item) for item in data]
    if not isinstance(data, dict):
        return data
    masked: dict[str, Any] = {}
    for key, value in data.items():
        if key in NAME_KEYS:
            masked[key] = _mask_name(value)
        elif key in PHONE_KEYS:
            masked[key] = _mask_phone(value)
        elif key == CALLER_KEY and isinstance(value, dict):
            masked[key] = {**_masked(value), "name": _mask_name(value.get("name")),
                           "phone": _mask_phone(value.get("phone"))}
        else:
            masked[key] = _masked(value)
    return masked


def _mask_name(name: Any) -> Any:
    """Keep at most the first two characters (one of a two-character name): "Zh***"."""
    if not isinstance(name, str) or not name:
        return name
    kept = min(2, len(name) // 2)
    return f"{name[:kept]}***"


def _mask_phone(phone: Any) -> Any:
    """Hide the middle digits, keeping the layout: "138****5678", "+86 138 **** 5678".
    A short number keeps only its last two digits."""
    if not isinstance(phone, str) or not phone:
        return phone
    digits = sum(c.isdigit() for c in phone)
    if digits >= PHONE_KEPT_HEAD + PHONE_KEPT_TAIL + 1:
        head, tail = PHONE_KEPT_HEAD, PHONE_KEPT_TAIL
    else:
        head, tail = 0, SHORT_PHONE_KEPT_TAIL
    seen = 0
    out = []
    for char in phone:
        if char.isdigit():
            seen += 1
            hidden = head < seen <= digits - tail
            out.append("*" if hidden else char)
        else:
            out.append(char)
    return "".join(out)
