"""The published OpenAPI document describes the error answers the app gives (issue 10,
item 3): every refusal, of every kind, is declared on its operation with the schema of the
body it comes with, and every 4xx body of the app carries `error`.

Each kind is produced by a real request and its body validated (jsonschema) against the
schema the document declares for that status on that operation; schemathesis then checks
every operation's answers against the document (tests/e2e/test_openapi_conformance.py).
"""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import pytest
from jsonschema import Draft202012Validator

from .conftest import Api

REPORT = {"category": "E0101", "description": "Garbage", "location": Api.IN_TOWN}


@pytest.fixture(scope="module")
def document(module_api: Api) -> dict[str, Any]:
    response = module_api.client.get("/openapi.json")
    assert response.status_code == 200
    published: dict[str, Any] = response.json()
    return published


def assert_documented(document: dict[str, Any], method: str, template: str,
                      response: Any) -> dict[str, Any]:
    """The answer's status is declared on the operation, with its content type, and the
    body is valid against the declared schema; the body."""
    operation = document["paths"][template][method.lower()]
    declared = operation["responses"].get(str(response.status_code))
    assert declared is not None, (
        f"{method} {template} answered {response.status_code}, which its document does not "
        f"declare (it declares {sorted(operation['responses'])}): {response.text}")
    media_type = response.headers["content-type"].split(";")[0].strip()
    assert media_type in declared["content"], (media_type, declared)
    body: dict[str, Any] = response.json()
    schema = {**declared["content"][media_type]["schema"],
              "components": document["components"]}
    errors = [e.message for e in Draft202012Validator(schema).iter_errors(body)]
    assert not errors, (body, errors)
    return body


def test_the_document_declares_the_apps_error_body_not_fastapis(
        document: dict[str, Any]) -> None:
    """FastAPI's default 422 body (`HTTPValidationError`) is nowhere; ErrorPublic is."""
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas
    assert set(schemas["ErrorPublic"]["required"]) == {"error", "detail"}
    assert {"problems", "seen_version", "current_version", "open_tasks"} <= set(
        schemas["ErrorPublic"]["properties"])
    assert "HTTPValidationError" not in str(document)


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method.upper(), path, operation)
            for path, operations in document["paths"].items()
            for method, operation in operations.items()]


def test_every_operation_declares_the_errors_of_its_kind(document: dict[str, Any]) -> None:
    operations = _operations(document)
    assert len(operations) > 100
    error_body = {"$ref": "#/components/schemas/ErrorPublic"}
    for method, path, operation in operations:
        responses = operation["responses"]
        where = f"{method} {path}"
        if path.startswith("/open311/"):
            assert {"400", "404"} <= set(responses) and "422" not in responses, where
            assert responses["400"]["content"]["application/json"]["schema"]["items"] == {
                "$ref": "#/components/schemas/GeoReportError"}, where
            continue
        if path.startswith("/ogc"):
            assert "422" not in responses, where
            for status in ("400", "404"):
                assert responses[status]["content"]["application/json"]["schema"] == {
                    "$ref": "#/components/schemas/OgcException"}, where
        elif path not in ("/", "/dashboard", "/login", "/field"):
            assert responses["422"]["content"]["application/json"]["schema"] == \
                error_body, where
        if operation.get("security"):
            for status in ("401", "403"):
                assert responses[status]["content"]["application/json"]["schema"] == \
                    error_body, where
        if "{" in path and not path.startswith("/ogc"):
            assert responses["404"]["content"]["application/json"]["schema"] == \
                error_body, where
    commands = [(m, p, o) for m, p, o in operations
                if m == "POST" and p.startswith(("/grid-cases/", "/incidents/"))]
    assert commands
    for method, path, operation in commands:
        assert "409" in operation["responses"], f"{method} {path}"
    for path in ("/auth/login", "/auth/password"):
        assert "429" in document["paths"][path]["post"]["responses"], path


def test_not_logged_in_401(module_api: Api, document: dict[str, Any]) -> None:
    response = module_api.client.get("/incidents")
    assert response.status_code == 401
    assert assert_documented(document, "GET", "/incidents", response)["error"] == \
        "not-authenticated"


def test_role_refused_at_the_gate_403(module_api: Api, document: dict[str, Any]) -> None:
    response = module_api.client.post("/plans", json={}, headers=module_api.headers("leader"))
    assert response.status_code == 403
    assert assert_documented(document, "POST", "/plans", response)["error"] == "not-permitted"


def test_unknown_document_404(module_api: Api, document: dict[str, Any]) -> None:
    response = module_api.client.get(f"/incidents/{uuid4()}", headers=module_api.headers())
    assert response.status_code == 404
    assert assert_documented(document, "GET", "/incidents/{incident_id}", response)[
        "error"] == "not-found"


def test_stale_version_409(module_api: Api, document: dict[str, Any]) -> None:
    case = module_api.post("/grid-cases", REPORT, role="inspector", expect=201)
    path = f"/grid-cases/{case['id']}"
    module_api.post(f"{path}/register")
    response = module_api.client.post(f"{path}/reject", json={"reason": "not-reproducible"},
                                      headers={**module_api.headers(), "If-Match": '"1"'})
    assert response.status_code == 409
    body = assert_documented(document, "POST", "/grid-cases/{case_id}/reject", response)
    current = module_api.get(path)["version"]
    assert (body["error"], body["seen_version"], body["current_version"]) == (
        "stale-version", 1, current)


def test_illegal_transition_409(module_api: Api, document: dict[str, Any]) -> None:
    case = module_api.post("/grid-cases", REPORT, role="inspector", expect=201)
    response = module_api.client.post(f"/grid-cases/{case['id']}/dispatch", json={},
                                      headers=module_api.headers())
    assert response.status_code == 409
    assert assert_documented(document, "POST", "/grid-cases/{case_id}/dispatch",
                             response)["error"] == "illegal-transition"


def test_invalid_body_422_lists_its_problems(module_api: Api,
                                             document: dict[str, Any]) -> None:
    response = module_api.client.post("/incidents", json={}, headers=module_api.headers())
    assert response.status_code == 422
    body = assert_documented(document, "POST", "/incidents", response)
    assert body["error"] == "invalid-request" and body["problems"]


def test_unknown_query_parameter_422(module_api: Api, document: dict[str, Any]) -> None:
    response = module_api.client.get("/incidents", params={"q": "fire"},
                                     headers=module_api.headers())
    assert response.status_code == 422
    assert assert_documented(document, "GET", "/incidents", response)["error"] == \
        "invalid-request"


@pytest.mark.parametrize(("method", "template", "path", "headers", "params"), [
    ("POST", "/grid-cases/{case_id}/register", "/grid-cases/{case}/register",
     {"If-Match": "version four"}, {}),
    ("POST", "/grid-cases", "/grid-cases", {"Idempotency-Key": "k" * 201}, {}),
    ("GET", "/resources", "/resources", {},
     {"bbox": "1,2,3"}),
], ids=["malformed-if-match", "long-idempotency-key", "malformed-bbox"])
def test_a_422_raised_by_a_check_carries_error(
        module_api: Api, document: dict[str, Any], method: str, template: str, path: str,
        headers: dict[str, str], params: dict[str, str]) -> None:
    """These answered FastAPI's `{"detail": "..."}` alone, without `error`."""
    case = module_api.post("/grid-cases", REPORT, role="inspector", expect=201)
    response = module_api.client.request(
        method, path.format(case=case["id"]), params=params,
        json=REPORT if method == "POST" else None,
        headers={**module_api.headers("dispatcher"), **headers})
    assert response.status_code == 422, response.text
    body = assert_documented(document, method, template, response)
    assert body["error"] == "invalid-request" and body["detail"]


def test_unknown_route_404_carries_error(module_api: Api) -> None:
    response = module_api.client.get("/no-such-thing", headers=module_api.headers())
    assert response.status_code == 404
    assert response.json() == {"error": "not-found", "detail": "Not Found"}


def test_ogc_400_and_404_in_ogc_form(module_api: Api, document: dict[str, Any]) -> None:
    bad = module_api.client.get("/ogc/collections/incidents/items",
                                params={"bbox": "1,2"}, headers=module_api.headers())
    assert bad.status_code == 400
    assert assert_documented(document, "GET", "/ogc/collections/{collection_id}/items",
                             bad)["code"] == "InvalidParameterValue"
    unknown = module_api.client.get("/ogc/collections", params={"colour": "red"},
                                    headers=module_api.headers())
    assert unknown.status_code == 400
    assert_documented(document, "GET", "/ogc/collections", unknown)
    missing = module_api.client.get("/ogc/collections/no-such-layer",
                                    headers=module_api.headers())
    assert missing.status_code == 404
    assert assert_documented(document, "GET", "/ogc/collections/{collection_id}",
                             missing)["code"] == "NotFound"


def test_open311_errors_in_georeport_form(module_api: Api, document: dict[str, Any]) -> None:
    unknown = module_api.client.get("/open311/v2/requests.json", params={"colour": "red"})
    assert unknown.status_code == 400
    body = assert_documented(document, "GET", "/open311/v2/requests.{format}", unknown)
    assert body[0]["code"] == 400
    missing = module_api.client.get(f"/open311/v2/requests/{uuid4()}.json")
    assert missing.status_code == 404
    assert_documented(document, "GET", "/open311/v2/requests/{service_request_id}.{format}",
                      missing)
    no_key = module_api.client.post("/open311/v2/requests.json", data={"service_code": "x"})
    assert no_key.status_code == 403
    assert_documented(document, "POST", "/open311/v2/requests.{format}", no_key)


def test_wrong_password_401_and_throttled_login_429(
        module_api: Api, document: dict[str, Any]) -> None:
    name = module_api.user("dispatcher", None, "openapi-throttled")
    for _ in range(5):
        wrong = module_api.client.post("/auth/login",
                                       json={"username": name, "password": "guess-1234"})
        assert wrong.status_code == 401
    assert assert_documented(document, "POST", "/auth/login", wrong)["error"] == \
        "not-authenticated"
    throttled = module_api.client.post("/auth/login",
                                       json={"username": name, "password": Api.PASSWORD})
    assert throttled.status_code == 429
    assert assert_documented(document, "POST", "/auth/login", throttled)["error"] == \
        "too-many-failed-logins"
