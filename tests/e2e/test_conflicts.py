"""Conflicts, not silent overwrites: two dispatchers open the same case, the first acts, and
the second, acting on the version they saw, is told what changed since (409) instead of
overwriting it. Documents carry their version as `ETag`; commands send it back as
`If-Match`."""

from __future__ import annotations

import inspect
import re
from typing import Any
from uuid import UUID

import pytest

from cityops.command_center.routers import grid_cases
from cityops.domain.hotline.ticket import case_id_for_ticket

REPORT = {"category": "E0101", "description": "Garbage heap next to the bus stop",
          "location": {"type": "Point", "coordinates": [118.80, 32.05]}}
CALL = {"channel": "phone", "ticket_type": "complaint", "topic": "garbage",
        "description": "Bins not emptied for three days",
        "location": {"type": "Point", "coordinates": [118.80, 32.05]}}
WHEN = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"


def reported_case(api: Any) -> str:
    case_id: str = api.post("/grid-cases", REPORT, role="inspector",
                            user=api.inspector_at(REPORT["location"]), expect=201)["id"]
    return case_id


def command(api: Any, path: str, body: dict[str, Any], *, if_match: str | None,
            user: str = "dispatcher-1", role: str = "dispatcher", dept: str | None = None,
            key: str | None = None) -> Any:
    """A command as the dashboard sends it: as `user`, with the version the user saw."""
    headers = api.headers(role, dept, key, user)
    if if_match is not None:
        headers["If-Match"] = if_match
    return api.client.post(path, json=body, headers=headers)


def opened(api: Any, path: str, user: str) -> tuple[dict[str, Any], str]:
    """What `user` sees when opening a document: the body and its ETag."""
    response = api.client.get(path, headers=api.headers("dispatcher", None, None, user))
    assert response.status_code == 200, response.text
    return response.json(), response.headers["etag"]


def test_the_second_of_two_dispatchers_gets_a_conflict_not_an_overwrite(api: Any) -> None:
    # The check runs in the sync endpoint's worker thread: this test means something only
    # while the route is a plain function (FastAPI runs it in a thread pool).
    assert not inspect.iscoroutinefunction(grid_cases.register_case)
    path = f"/grid-cases/{reported_case(api)}"
    first, first_tag = opened(api, path, "dispatcher-1")
    _, second_tag = opened(api, path, "dispatcher-2")
    assert first_tag == second_tag == '"1"' and first["version"] == 1

    registered = command(api, f"{path}/register", {"urgency": "urgent"}, if_match=first_tag)
    assert registered.status_code == 200, registered.text
    assert registered.json()["status"] == "registered"
    assert registered.headers["etag"] == '"2"'

    refused = command(api, f"{path}/reject", {"reason": "not-reproducible"},
                      if_match=second_tag, user="dispatcher-2")
    assert refused.status_code == 409, refused.text
    body = refused.json()
    assert (body["error"], body["seen_version"], body["current_version"]) == (
        "stale-version", 1, 2)
    assert re.fullmatch(
        rf"grid case {first['id']} changed since you opened it: version 1 -> 2 \(Registered "
        rf"by dispatcher-1 at {WHEN}\); reload it and try again", body["detail"]), body
    assert [e["event"] for e in api.history(path)] == ["Reported", "Registered"]

    # Reloaded, the second dispatcher acts on what is there now.
    _, current = opened(api, path, "dispatcher-2")
    dispatched = command(api, f"{path}/dispatch", {}, if_match=current, user="dispatcher-2")
    assert dispatched.status_code == 200, dispatched.text
    assert dispatched.json()["status"] == "dispatched"


def test_every_change_missed_is_named_with_who_and_when(api: Any) -> None:
    path = f"/grid-cases/{reported_case(api)}"
    _, seen = opened(api, path, "dispatcher-2")
    api.post(f"{path}/register", {})
    api.post(f"{path}/dispatch", {}, user="dispatcher-3")
    refused = command(api, f"{path}/suspend", {"reason": "permit"}, if_match=seen,
                      user="dispatcher-2")
    assert refused.status_code == 409
    assert re.search(rf"version 1 -> 3 \(Registered by dispatcher-1 at {WHEN}, Dispatched "
                     rf"by dispatcher-3 at {WHEN}\)", refused.json()["detail"])


def test_a_retried_command_answers_as_the_first_time_not_as_a_conflict(api: Any) -> None:
    """The network lost the answer; the dashboard sends the same request again."""
    path = f"/grid-cases/{reported_case(api)}"
    first = command(api, f"{path}/register", {}, if_match='"1"', key="desk-1:reg")
    again = command(api, f"{path}/register", {}, if_match='"1"', key="desk-1:reg")
    assert (first.status_code, again.status_code) == (200, 200), again.text
    assert again.json() == first.json()
    assert [e["event"] for e in api.history(path)] == ["Reported", "Registered"]


def test_a_hotline_ticket_is_protected_the_same_way(api: Any) -> None:
    ticket = api.post("/hotline-tickets", CALL, role="hotline-operator", expect=201)
    path = f"/hotline-tickets/{ticket['id']}"
    response = api.client.get(path, headers=api.headers("hotline-operator"))
    assert response.headers["etag"] == f'"{ticket["version"]}"'
    api.post(f"{path}/assign", {}, role="hotline-operator", user="operator-2")
    refused = command(api, f"{path}/assign", {"department": "sanitation"},
                      if_match=response.headers["etag"], role="hotline-operator")
    assert refused.status_code == 409
    assert "hotline ticket" in refused.json()["detail"]
    assert "Assigned by operator-2" in refused.json()["detail"]


def test_a_version_ahead_of_the_document_is_a_conflict_too(api: Any) -> None:
    path = f"/grid-cases/{reported_case(api)}"
    refused = command(api, f"{path}/register", {}, if_match="7")
    assert refused.status_code == 409
    assert "is at version 1, not at version 7 that you say you saw" in refused.json()["detail"]


@pytest.mark.parametrize("tag", ['"1"', "1", " 1 ", "*"])
def test_the_etag_as_sent_a_bare_number_or_any_are_accepted(api: Any, tag: str) -> None:
    path = f"/grid-cases/{reported_case(api)}"
    assert command(api, f"{path}/register", {}, if_match=tag).status_code == 200


@pytest.mark.parametrize("tag", ['W/"1"', "one", '"1", "2"', "0", '"-1"', ""])
def test_a_malformed_if_match_is_refused_and_nothing_happens(api: Any, tag: str) -> None:
    path = f"/grid-cases/{reported_case(api)}"
    refused = command(api, f"{path}/register", {}, if_match=tag)
    assert refused.status_code == 422, refused.text
    assert "If-Match" in refused.json()["detail"]
    assert api.get(path)["status"] == "reported"


@pytest.mark.parametrize("path", ["/grid-cases", "/grid-cases/bulk/register"])
def test_if_match_on_a_request_for_no_single_document_is_refused(api: Any, path: str) -> None:
    # Each as a role that may issue it (a role that may not is refused before: 403).
    role = "inspector" if path == "/grid-cases" else "dispatcher"
    refused = command(api, path, REPORT, if_match='"1"', role=role)
    assert refused.status_code == 422, refused.text
    assert refused.json()["detail"].startswith(
        f"If-Match applies to a command on one document named by its id in the path, and "
        f"{path} names none")


def test_only_single_documents_carry_an_etag(api: Any) -> None:
    path = f"/grid-cases/{reported_case(api)}"
    api.settle()
    headers = api.headers("dispatcher")
    assert api.client.get(path, headers=headers).headers["etag"] == '"1"'
    assert "etag" not in api.client.get("/grid-cases", headers=headers).headers
    assert "etag" not in api.client.get(f"{path}/history", headers=headers).headers


def test_the_api_description_tells_clients_of_if_match(api: Any) -> None:
    schema = api.client.get("/openapi.json").json()
    register = schema["paths"]["/grid-cases/{case_id}/register"]["post"]
    header = next(p for p in register["parameters"] if p["name"] == "If-Match")
    assert (header["in"], header["required"]) == ("header", False)
    assert "409" in register["responses"]
    assert "If-Match" in schema["info"]["description"]
    for path, method in [("/grid-cases", "post"), ("/grid-cases/{case_id}", "get"),
                         ("/grid-cases/bulk/{action}", "post")]:
        names = [p["name"] for p in schema["paths"][path][method].get("parameters", [])]
        assert "If-Match" not in names, path


def test_a_command_of_several_steps_starts_none_on_a_stale_view(api: Any) -> None:
    """Turning a ticket into a grid case reports the case first: with the ticket moved on
    since the operator saw it, not even that first step is done."""
    operator = {"role": "hotline-operator"}
    ticket = api.post("/hotline-tickets", CALL, expect=201, **operator)
    path = f"/hotline-tickets/{ticket['id']}"
    api.post(f"{path}/assign", {}, user="operator-2", **operator)
    refused = command(api, f"{path}/convert-to-case", {}, if_match=f'"{ticket["version"]}"',
                      **operator)
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"] == "stale-version"
    api.get(f"/grid-cases/{case_id_for_ticket(UUID(ticket['id']))}", expect=404)


def test_an_access_check_before_the_command_is_not_mistaken_for_it(api: Any) -> None:
    """A department user's request is first checked against their scope (which reads the
    ticket): an out-of-scope ticket stays absent (404), whatever version they claim, and
    nothing of its history is told."""
    operator = {"role": "hotline-operator"}
    ticket = api.post("/hotline-tickets", CALL, expect=201, **operator)
    path = f"/hotline-tickets/{ticket['id']}"
    api.post(f"{path}/assign", {"department": "water"}, **operator)
    refused = command(api, f"{path}/accept", {}, if_match='"1"', role="department-user",
                      dept="sanitation", user="sanitation-1")
    assert refused.status_code == 404, refused.text
    assert "Assigned" not in refused.text
