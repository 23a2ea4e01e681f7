"""Answers checked against the published OpenAPI document (issue 11): the status is
declared on the operation, the content type is one declared for that status, and a JSON
body is valid against the schema declared for it (`additionalProperties: false` on every
document: a field the document does not describe fails). Instants must be RFC 3339 with
their offset and ids UUIDs where the document says so.

`answer_problems` checks one answer; `every_answer_checked` (an autouse fixture of every
e2e test) checks every answer the tests' clients receive, so that every request any e2e
test makes is also a conformance check of the document."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from datetime import datetime
from functools import cache
from typing import Any

import pytest
from fastapi import FastAPI
from jsonschema import Draft202012Validator, FormatChecker
from starlette.testclient import TestClient

FORMATS = FormatChecker(formats=("uuid",))


@FORMATS.checks("date-time", raises=ValueError)
def _rfc3339(value: object) -> bool:
    if not isinstance(value, str) or "T" not in value:
        return False
    return datetime.fromisoformat(value).tzinfo is not None


@cache
def _template_pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", template)
    return re.compile("".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts))


def route_template(document: Mapping[str, Any], method: str, path: str) -> str | None:
    """The path template of the documented operation that answers `method path`: the first
    that matches in the document's order, which is the order the router tries its routes
    in (`/grid-cases/bulk/{action}` before `/grid-cases/{case_id}/register`); None for
    what the document does not list (a static file, the WebSocket, the docs)."""
    for template, operations in document["paths"].items():
        if method.lower() in operations and _template_pattern(template).fullmatch(path):
            return template
    return None


def answer_problems(document: Mapping[str, Any], method: str, template: str, status: int,
                    content_type: str | None, body: bytes,
                    validators: dict[tuple[str, ...], Draft202012Validator] | None = None) \
        -> list[str]:
    """What is wrong with one answer by the published document (nothing: []);
    `validators` keeps the validators built for the document's schemas."""
    where = f"{method} {template} answered {status}"
    operation = document["paths"].get(template, {}).get(method.lower())
    if operation is None:
        return [f"{where}, an operation the document does not list"]
    declared = operation["responses"].get(str(status))
    if declared is None:
        return [f"{where}, which its document does not declare (it declares "
                f"{sorted(operation['responses'])}): {body[:300]!r}"]
    content = declared.get("content")
    if not content:
        return [] if not body else [f"{where} with a body the document does not declare"]
    media = (content_type or "").split(";")[0].strip()
    by_media = {declared_type.split(";")[0].strip(): declared_type for declared_type in content}
    if media not in by_media:
        return [f"{where} as {media!r}, not one of {sorted(content)}"]
    schema = content[by_media[media]].get("schema")
    if schema is None:
        return [f"{where}: the document gives no schema for {media}"]
    if not (media.endswith("json") or "+json" in media):
        return []
    data = json.loads(body)
    key = (method, template, str(status), media)
    validator = (validators or {}).get(key)
    if validator is None:
        validator = Draft202012Validator({**schema, "components": document["components"]},
                                         format_checker=FORMATS)
        if validators is not None:
            validators[key] = validator
    return [f"{where}: {'/'.join(map(str, e.absolute_path)) or '(body)'}: {e.message}"
            for e in validator.iter_errors(data)][:10]


def check_answer(app: FastAPI, method: str, path: str, response: Any) -> list[str]:
    """The problems of one answer of `app` to `method path` (by its published document)."""
    document = app.openapi()
    template = route_template(document, method, path)
    if template is None:
        return []
    if not hasattr(app.state, "answer_validators"):
        app.state.answer_validators = {}
    return answer_problems(document, method, template, response.status_code,
                           response.headers.get("content-type"), response.content,
                           app.state.answer_validators)


_request = TestClient.request


def _checked_request(self: TestClient, method: str, url: Any, *args: Any,
                     **kwargs: Any) -> Any:
    response = _request(self, method, url, *args, **kwargs)
    if isinstance(self.app, FastAPI):
        problems = check_answer(self.app, method.upper(), response.request.url.path, response)
        if problems:
            raise AssertionError("an answer the published OpenAPI document does not "
                                 "describe:\n  " + "\n  ".join(problems))
    return response


@pytest.fixture(autouse=True, scope="session")
def every_answer_checked() -> Iterator[None]:
    """Every answer of every e2e test is checked against the published document."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(TestClient, "request", _checked_request)
        yield
