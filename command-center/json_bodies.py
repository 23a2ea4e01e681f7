"""JSON bodies written by orjson, byte for byte what the standard encoder writes.

A page of a thousand features is half a megabyte of JSON: the standard `json` encoder (as
Starlette's `JSONResponse` calls it) takes several times longer over it than orjson. For the
values JSON documents hold the two write the same bytes (strings unescaped but for control
characters, compact separators, the shortest float that reads back), except non-zero
floats below 1e-4, which `json` writes `1e-05` and orjson `0.00001` or `1e-5`. So a body in
which such a number may appear (`e-` after a digit, or `0.0000`, anywhere, strings
included) is written by the standard encoder instead, and so is one orjson refuses (an
integer beyond 64 bits, a key that is not a string, a datetime).

Only where the standard encoder fails (a 500) can orjson answer: it writes NaN as null and a
UUID as its text. The feature answers that use it are built from JSON documents, shapes and
distances, which hold neither.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson
from fastapi.responses import JSONResponse

from cityops.command_center.feature_requests import GEOJSON

_MAY_DIFFER = re.compile(rb"[0-9]e-|0\.0000")
"""Where orjson's bytes may differ from json's: a float below 1e-4 (exponent or long
decimal form); a false alarm only costs the standard encoder."""
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
    if _MAY_DIFFER.search(body) is not None:
        return standard_json_bytes(content)
    return body


class GeoJSONBody(JSONResponse):
    """A GeoJSON answer (application/geo+json) written by orjson (see `json_bytes`)."""

    media_type = GEOJSON

    def render(self, content: Any) -> bytes:
        """The body: the standard encoder's bytes."""
        return json_bytes(content)
