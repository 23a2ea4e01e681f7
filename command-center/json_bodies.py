"""JSON bodies written by orjson, byte for byte what the standard encoder writes.

A page of a thousand features is half a megabyte of JSON: the standard `json` encoder (as
Starlette's `JSONResponse` calls it) takes several times longer over it than orjson. For the
values JSON documents hold the two write the same bytes (strings unescaped but for control
characters, compact separators, the shortest float that reads back), except non-zero
floats below 1e-4, which `json` writes `1e-05` and orjson `0.00001` or `1e-5`. So a body in
which such a number may appear (a value starting `0.0000` or with `e-` in it; strings may
hold the same text) is written by the standard encoder instead, and so is one orjson
refuses (an integer beyond 64 bits, a key that is not a string, a datetime).

Only where the standard encoder fails (a 500) can orjson answer: it writes NaN as null and a
UUID as its text. The feature answers that use it are built from JSON documents, shapes and
distances, which hold neither.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from fastapi.responses import JSONResponse

from cityops.command_center.feature_requests import GEOJSON

_NUMBER_TEXT = frozenset(b"0123456789.")
_BEFORE_A_VALUE = frozenset(b":,[")


def may_differ(body: bytes) -> bool:
    """Whether orjson's `body` may hold a float the standard encoder writes otherwise: one
    below 1e-4 (with `e-`, or starting `0.0000`), which, a value in compact JSON, starts
    the text or follows a colon, a comma or a bracket. A false alarm (such text inside a
    string) only costs the standard encoder. "e-" after any digit, anywhere, was one in
    most documents with a UUID (`…71e-4a…`): nearly every page of features went to the
    standard encoder; a regular expression for the exact rule took as long as orjson."""
    for marker in (b"e-", b"0.0000"):
        at = body.find(marker)
        while at != -1:
            start = at
            while start and body[start - 1] in _NUMBER_TEXT:
                start -= 1
            if start and body[start - 1] == ord("-"):
                start -= 1
            if not start or body[start - 1] in _BEFORE_A_VALUE:
                return True
            at = body.find(marker, at + 1)
    return False


_REFUSE = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
"""Values the standard encoder refuses, refused by orjson too (not written its own way)."""


def standard_json_bytes(content: Any) -> bytes:
    """`content` exactly as Starlette's `JSONResponse` writes it."""
    return json.dumps(content, ensure_ascii=False, allow_nan=False, indent=None,
                      separators=(",", ":")).encode("utf-8")


def json_bytes(content: Any) -> bytes:
    """`content` as Starlette's `JSONResponse` writes it, by orjson where that gives the
    same bytes."""
    try:
        body = orjson.dumps(content, option=_REFUSE)
    except (TypeError, orjson.JSONEncodeError):
        return standard_json_bytes(content)
    if may_differ(body):
        return standard_json_bytes(content)
    return body


class GeoJSONBody(JSONResponse):
    """A GeoJSON answer (application/geo+json) written by orjson (see `json_bytes`)."""

    media_type = GEOJSON

    def render(self, content: Any) -> bytes:
        """The body: the standard encoder's bytes."""
        return json_bytes(content)
