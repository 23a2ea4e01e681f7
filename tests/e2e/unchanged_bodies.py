"""The response models change nothing on the wire (issue 11): every answer a route gives
through its response model must be the very body FastAPI wrote without one (the route's
return value through `jsonable_encoder`), key for key and value for value, 5 staying 5
and a missing key staying missing. Checked on every answer of every e2e test: a model that
drops, adds, renames or converts a field fails the test that hit it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import fastapi.routing
import pytest
from fastapi.encoders import jsonable_encoder

_serialize = fastapi.routing.serialize_response

SHAPED_BY_THEIR_MODELS = frozenset({
    "GET /statistics/response-times",  # `reported_at` as pydantic writes a datetime (Z)
    "GET /clock",
    "GET /health",
})
"""Routes whose bodies were their response models' before issue 11 (not the plain return
value's): unchanged, as they were, and not compared here."""


def _canonical(data: Any) -> str:
    return json.dumps(data, sort_keys=True, ensure_ascii=False)


async def _serialize_unchanged(**kwargs: Any) -> Any:
    answered = await _serialize(**kwargs)
    where = (kwargs.get("endpoint_ctx") or {}).get("path")
    if kwargs.get("field") is None or where in SHAPED_BY_THEIR_MODELS:
        return answered
    untyped = jsonable_encoder(kwargs["response_content"])
    typed = json.loads(answered) if isinstance(answered, bytes | str) else answered
    if _canonical(typed) != _canonical(untyped):
        raise AssertionError(
            "a response model changed the body on the wire:\n"
            f"  without the model: {_canonical(untyped)[:3000]}\n"
            f"  with the model:    {_canonical(typed)[:3000]}")
    return answered


@pytest.fixture(autouse=True, scope="session")
def bodies_unchanged_by_models() -> Iterator[None]:
    """Every e2e test checks that the response models leave the bodies as they were."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fastapi.routing, "serialize_response", _serialize_unchanged)
        yield
