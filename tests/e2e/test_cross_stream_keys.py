"""Every command route takes an `Idempotency-Key` (issue 11, trip-over 3: the release,
conversion and escalation routes took none although the README says every command does), and
a command across two streams answers its caller with both sides recorded (the process that
records the second side has run for it) and, repeated with its key, records nothing more."""

from __future__ import annotations

from typing import Any

KEYLESS = {
    ("POST", "/auth/login"): "no one is logged in yet; a login is not a command",
    ("POST", "/auth/password"): "the current password is checked; the same change again "
    "is refused by it",
    ("POST", "/resources/{resource_id}/positions"): "a repeated fix is not after the last one "
    "and changes nothing",
    ("POST", "/hazard-sources/{source_id}/sensors/{sensor_id}/readings"): "a repeated "
    "reading is out of order and changes nothing",
    ("POST", "/spatial/{layer}/within"): "a query with a polygon body, not a command",
    ("POST", "/scenarios/validate"): "checks a scenario file and records nothing",
    ("POST", "/subscriptions/{subscription_id}/deliveries/{delivery_id}/redeliver"): "sets a "
    "delivery pending again; doing it twice is doing it once",
    ("POST", "/photos"): "stored once by the photo's sha256",
    ("POST", "/open311/v2/requests.{format}"): "Open311 reads its own key, per API key "
    "(docs/open311.md)",
}
"""The writing routes without the header, each with the reason it needs none."""

ENGINE = {"kind": "fire-engine", "name": "Engine 7", "call_sign": "FIRE 7",
          "department": "fire",
          "home_base": {"type": "Point", "coordinates": [118.79, 32.04]}}
FIRE = {"category": "accident-disaster", "incident_type": "fire",
        "title": "Warehouse fire", "location": {"type": "Point", "coordinates": [118.78, 32.06]}}


def test_every_command_route_takes_an_idempotency_key(api: Any) -> None:
    spec = api.client.get("/openapi.json").json()
    keyless = set()
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if method not in ("post", "put", "patch", "delete"):
                continue
            headers = {p["name"].lower() for p in operation.get("parameters", [])
                       if p["in"] == "header"}
            if "idempotency-key" not in headers:
                keyless.add((method.upper(), path))
    assert keyless == set(KEYLESS)


def responding_fire(api: Any) -> str:
    incident = api.post("/incidents", FIRE, role="inspector", expect=201)
    api.post(f"/incidents/{incident['id']}/verify", {})
    incident_id: str = incident["id"]
    return incident_id


def test_a_release_repeated_with_its_key_records_nothing_more(api: Any) -> None:
    incident_id = responding_fire(api)
    engine = api.post("/resources", ENGINE, role="planner", expect=201)["id"]
    path = f"/incidents/{incident_id}"
    assigned = api.post(f"{path}/resources", {"resource_id": engine}, key="send-7")
    # The incident's side is in the answer: the process took its step for the caller.
    assert [a["resource_id"] for a in assigned["resources"]] == [engine]
    released = api.post(f"{path}/resources/{engine}/release", key="release-7")
    assert released["resources"][0]["released_at"] is not None
    assert released["resources"][0]["release_reason"] == "stood down"
    resource = api.get(f"/resources/{engine}")
    assert resource["status"] == "available"

    again = api.post(f"{path}/resources/{engine}/release", key="release-7")
    assert again["version"] == released["version"]
    assert api.get(f"/resources/{engine}")["version"] == resource["version"]
    # The same key for another command is refused.
    reused = api.post(f"{path}/resources", {"resource_id": engine}, key="release-7",
                      expect=409)
    assert reused["error"] == "command-id-reused"


def test_a_conversion_answers_with_its_case_and_repeats_nothing(api: Any) -> None:
    ticket = api.post("/hotline-tickets", {
        "channel": "phone", "ticket_type": "complaint", "topic": "street-lighting",
        "description": "Street lamp is out", "caller_phone": "13800138000",
        "location": {"type": "Point", "coordinates": [118.80, 32.05]},
    }, role="hotline-operator", expect=201)
    path = f"/hotline-tickets/{ticket['id']}"
    converted = api.post(f"{path}/convert-to-case", {}, role="hotline-operator",
                         key="convert-1")
    case = api.get(f"/grid-cases/{converted['case_id']}")
    assert (case["source"], case["ticket_id"]) == ("hotline", ticket["id"])
    again = api.post(f"{path}/convert-to-case", {}, role="hotline-operator", key="convert-1")
    assert (again["case_id"], again["version"]) == (converted["case_id"], converted["version"])
    assert api.get(f"/grid-cases/{converted['case_id']}")["version"] == case["version"]


def test_an_escalation_into_a_closed_incident_is_refused_before_anything_is_recorded(
        api: Any) -> None:
    ticket = api.post("/hotline-tickets", {
        "channel": "phone", "ticket_type": "complaint", "topic": "street-lighting",
        "description": "Smoke from the warehouse", "caller_phone": "13800138000",
        "location": {"type": "Point", "coordinates": [118.80, 32.05]},
    }, role="hotline-operator", expect=201)
    incident_id = api.post("/incidents", FIRE, role="inspector", expect=201)["id"]
    api.post(f"/incidents/{incident_id}/dismiss", {"reason": "a false alarm"})
    refused = api.post(f"/hotline-tickets/{ticket['id']}/escalate-to-incident",
                       {"incident_id": incident_id}, role="hotline-operator", expect=409)
    assert refused["error"] == "illegal-transition"
    assert api.get(f"/hotline-tickets/{ticket['id']}", role="hotline-operator")[
        "version"] == ticket["version"]
