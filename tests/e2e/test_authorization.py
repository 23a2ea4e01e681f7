"""Who may call what: every endpoint of the app has a decision (public, any logged-in user,
or a command whose roles the permission table names), every non-public one answers 401
without a valid token, a leader changes nothing, and a department user sees and acts only
within their department's scope. Then the login flows (password change, disabling,
throttling, expiry) and the administrators' command line."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from typer.testing import CliRunner

from cityops.cli import app as cli_app
from cityops.command_center.auth import ACCOUNT_CACHE_SECONDS, Authenticator
from cityops.domain.accounts.application import Accounts
from cityops.domain.accounts.commands import DisableUser
from cityops.domain.actors import Actor, Role
from cityops.domain.commands import CommandContext
from cityops.domain.permissions import roles_for
from cityops.settings import Settings

PUBLIC = "public"
READ = "read"
"""Any logged-in user (a department user within their scope)."""
SELF = "self"
"""The logged-in user about themselves."""
OWN = "own"
"""Decided by the router itself: a department's own subscriptions, an inspector's own cells
and tasks, photos by their digest, bulk actions as their single actions."""

DECISIONS: dict[tuple[str, str], str] = {
    ("GET", "/health"): PUBLIC,
    ("GET", "/clock"): PUBLIC,
    ("GET", "/time-travel"): READ,
    ("GET", "/metrics"): PUBLIC,  # unless CITYOPS_METRICS_TOKEN is set (test_operations)
    # The pages are in the published document since issue 11 (their content type declared).
    ("GET", "/"): PUBLIC,
    ("GET", "/dashboard"): PUBLIC,
    ("GET", "/login"): PUBLIC,
    ("GET", "/field"): PUBLIC,
    ("POST", "/auth/login"): PUBLIC,
    ("GET", "/auth/me"): SELF,
    ("POST", "/auth/password"): SELF,
    ("GET", "/catalogue"): READ,
    # grid cases
    ("POST", "/grid-cases"): "grid-case.report",
    ("GET", "/grid-cases"): READ,
    ("GET", "/grid-cases/{case_id}"): READ,
    ("GET", "/grid-cases/{case_id}/history"): READ,
    ("POST", "/grid-cases/{case_id}/register"): "grid-case.register",
    ("POST", "/grid-cases/{case_id}/reject"): "grid-case.reject",
    ("POST", "/grid-cases/{case_id}/dispatch"): "grid-case.dispatch",
    ("POST", "/grid-cases/{case_id}/return"): "grid-case.return-to-centre",
    ("POST", "/grid-cases/{case_id}/extension-requests"): "grid-case.request-extension",
    ("POST", "/grid-cases/{case_id}/extension-decision"): "grid-case.decide-extension",
    ("POST", "/grid-cases/{case_id}/return-review"): "grid-case.review-return",
    ("POST", "/grid-cases/{case_id}/suspension-requests"): "grid-case.request-suspension",
    ("POST", "/grid-cases/{case_id}/suspension-decision"): "grid-case.decide-suspension",
    ("POST", "/grid-cases/{case_id}/suspend"): "grid-case.suspend",
    ("POST", "/grid-cases/{case_id}/resume"): "grid-case.resume",
    ("POST", "/grid-cases/{case_id}/handle"): "grid-case.handle",
    ("POST", "/grid-cases/{case_id}/verify"): "grid-case.verify",
    ("POST", "/grid-cases/{case_id}/assign-verifier"): "grid-case.assign-verifier",
    ("POST", "/grid-cases/{case_id}/close"): "grid-case.close",
    ("POST", "/grid-cases/bulk/{action}"): OWN,
    # incidents
    ("POST", "/incidents"): "incident.report",
    ("GET", "/incidents"): READ,
    ("GET", "/incidents/{incident_id}"): READ,
    ("GET", "/incidents/{incident_id}/history"): READ,
    ("POST", "/incidents/{incident_id}/verify"): "incident.verify",
    ("POST", "/incidents/{incident_id}/dismiss"): "incident.verify",
    ("POST", "/incidents/{incident_id}/respond"): "incident.respond",
    ("POST", "/incidents/{incident_id}/activate-plan"): "incident.activate-plan",
    ("POST", "/incidents/{incident_id}/level"): "incident.change-level",
    ("POST", "/incidents/{incident_id}/escalate"): "incident.change-level",
    ("POST", "/incidents/{incident_id}/de-escalate"): "incident.change-level",
    ("POST", "/incidents/{incident_id}/situation-reports"): "incident.add-situation-report",
    ("POST", "/incidents/{incident_id}/links"): "incident.link",
    ("POST", "/incidents/{incident_id}/unlink"): "incident.link",
    ("POST", "/incidents/{incident_id}/commander"): "incident.assign-commander",
    ("POST", "/incidents/{incident_id}/tasks"): "incident.assign-task",
    ("POST", "/incidents/{incident_id}/tasks/{task_id}/acknowledge"): "incident.task",
    ("POST", "/incidents/{incident_id}/tasks/{task_id}/complete"): "incident.task",
    ("POST", "/incidents/{incident_id}/tasks/{task_id}/cancel"): "incident.cancel-task",
    ("POST", "/incidents/{incident_id}/tasks/{task_id}/waive"): "incident.waive-task",
    ("POST", "/incidents/{incident_id}/resources"): "incident.assign-resource",
    ("POST", "/incidents/{incident_id}/resources/{resource_id}/release"):
        "incident.assign-resource",
    ("POST", "/incidents/{incident_id}/contain"): "incident.contain",
    ("POST", "/incidents/{incident_id}/flare-up"): "incident.contain",
    ("POST", "/incidents/{incident_id}/close"): "incident.close",
    ("POST", "/incidents/{incident_id}/review"): "incident.review",
    # warnings (a department user reads issued warnings only)
    ("POST", "/warnings"): "warning.draft",
    ("GET", "/warnings"): READ,
    ("GET", "/warnings/{warning_id}"): READ,
    ("GET", "/warnings/{warning_id}/history"): READ,
    ("GET", "/warnings/{warning_id}/notices"): READ,
    ("POST", "/warnings/{warning_id}/revise"): "warning.revise",
    ("POST", "/warnings/{warning_id}/approve"): "warning.approve",
    ("POST", "/warnings/{warning_id}/issue"): "warning.issue",
    ("POST", "/warnings/{warning_id}/update"): "warning.update",
    ("POST", "/warnings/{warning_id}/cancel"): "warning.cancel",
    # exercises: planners check scenarios (the gate's own row), evaluators rate
    ("POST", "/scenarios/validate"): OWN,
    ("GET", "/scenarios"): OWN,  # planners only (the players must not read them)
    ("GET", "/exercises"): READ,
    ("GET", "/exercises/{exercise_id}"): READ,
    ("POST", "/exercises/{exercise_id}/ratings"): "exercise.rate-objective",
    ("POST", "/exercises/{exercise_id}/end"): "exercise.end",
    ("POST", "/warnings/{warning_id}/discard"): "warning.discard",
    # the warnings' CAP alerts: public ones to everyone (aggregators poll them), each
    # warning's alerts to logged-in users as the sharing catalogue allows
    ("GET", "/cap/alerts.atom"): PUBLIC,
    ("GET", "/cap/alerts/{identifier}.xml"): PUBLIC,
    ("GET", "/cap/warnings/{warning_id}"): READ,
    ("GET", "/cap/warnings/{warning_id}/{sequence}.xml"): READ,
    # after-action reviews: read by whom the sharing catalogue's after-action-review
    # condition admits (the router decides: 403 for the others), written by planners
    ("GET", "/after-action-review"): PUBLIC,
    ("GET", "/reviews"): OWN,
    ("GET", "/reviews/improvements"): OWN,
    ("POST", "/reviews"): "review.open",
    ("GET", "/reviews/incidents/{incident_id}"): OWN,
    ("GET", "/reviews/incidents/{incident_id}/report.csv"): OWN,
    ("GET", "/reviews/incidents/{incident_id}/report.pdf"): OWN,
    ("GET", "/reviews/period"): OWN,
    ("GET", "/reviews/period/report.csv"): OWN,
    ("GET", "/reviews/period/report.pdf"): OWN,
    ("GET", "/reviews/{review_id}"): OWN,
    ("GET", "/reviews/{review_id}/report"): OWN,
    ("GET", "/reviews/{review_id}/report.csv"): OWN,
    ("GET", "/reviews/{review_id}/report.pdf"): OWN,
    ("POST", "/reviews/{review_id}/summary"): "review.write-summary",
    ("POST", "/reviews/{review_id}/findings"): "review.record-finding",
    ("POST", "/reviews/{review_id}/findings/{finding_id}/withdraw"): "review.withdraw-finding",
    ("POST", "/reviews/{review_id}/improvements"): "review.plan-improvement",
    ("POST", "/reviews/{review_id}/improvements/{item_id}/done"):
        "review.complete-improvement",
    ("POST", "/reviews/{review_id}/improvements/{item_id}/verify"):
        "review.verify-improvement",
    ("POST", "/reviews/{review_id}/improvements/{item_id}/reopen"):
        "review.reopen-improvement",
    ("POST", "/reviews/{review_id}/improvements/{item_id}/drop"): "review.drop-improvement",
    ("POST", "/reviews/{review_id}/conclude"): "review.conclude",
    # plans
    ("POST", "/plans"): "plan.define",
    ("GET", "/plans"): READ,
    ("GET", "/plans/applicable"): READ,
    ("GET", "/plans/{plan_id}"): READ,
    ("POST", "/plans/{plan_id}/revise"): "plan.revise",
    ("POST", "/plans/{plan_id}/retire"): "plan.retire",
    # resources
    ("POST", "/resources"): "resource.register",
    ("GET", "/resources"): READ,
    ("GET", "/resources/nearest"): READ,
    ("GET", "/resources/{resource_id}"): READ,
    ("POST", "/resources/{resource_id}/revise"): "resource.revise",
    ("POST", "/resources/{resource_id}/dispatch"): "resource.dispatch",
    ("POST", "/resources/{resource_id}/reassign"): "resource.reassign",
    ("POST", "/resources/{resource_id}/stand-down"): "resource.stand-down",
    ("POST", "/resources/{resource_id}/en-route"): "resource.report-en-route",
    ("POST", "/resources/{resource_id}/on-scene"): "resource.report-on-scene",
    ("POST", "/resources/{resource_id}/activate"): "resource.activate",
    ("POST", "/resources/{resource_id}/clear-scene"): "resource.clear-scene",
    ("POST", "/resources/{resource_id}/deactivate"): "resource.deactivate",
    ("POST", "/resources/{resource_id}/available"): "resource.report-available",
    ("POST", "/resources/{resource_id}/out-of-service"): "resource.take-out-of-service",
    ("POST", "/resources/{resource_id}/return-to-service"): "resource.return-to-service",
    ("POST", "/resources/{resource_id}/positions"): "resource.position",
    # hazard sources
    ("POST", "/hazard-sources"): "hazard.register",
    ("GET", "/hazard-sources"): READ,
    ("GET", "/hazard-sources/{source_id}"): READ,
    ("GET", "/hazard-sources/{source_id}/history"): READ,
    ("POST", "/hazard-sources/{source_id}/update"): "hazard.update",
    ("POST", "/hazard-sources/{source_id}/decommission"): "hazard.decommission",
    ("POST", "/hazard-sources/{source_id}/sensors"): "hazard.add-sensor",
    ("POST", "/hazard-sources/{source_id}/sensors/{sensor_id}/remove"): "hazard.remove-sensor",
    ("POST", "/hazard-sources/{source_id}/sensors/{sensor_id}/readings"): "hazard.reading",
    ("POST", "/hazard-sources/{source_id}/alarms/{alarm_id}/acknowledge"):
        "hazard.acknowledge-alarm",
    ("POST", "/hazard-sources/{source_id}/alarms/{alarm_id}/escalation"):
        "hazard.escalate-alarm",
    ("POST", "/hazard-sources/{source_id}/findings"): "hazard.record-finding",
    ("POST", "/hazard-sources/{source_id}/findings/{finding_id}/rectify"):
        "hazard.rectify-finding",
    # hotline tickets
    ("POST", "/hotline-tickets"): "ticket.receive",
    ("GET", "/hotline-tickets"): READ,
    ("GET", "/hotline-tickets/{ticket_id}"): READ,
    ("GET", "/hotline-tickets/{ticket_id}/history"): READ,
    ("POST", "/hotline-tickets/{ticket_id}/answer"): "ticket.answer",
    ("POST", "/hotline-tickets/{ticket_id}/assign"): "ticket.assign",
    ("POST", "/hotline-tickets/{ticket_id}/accept"): "ticket.accept",
    ("POST", "/hotline-tickets/{ticket_id}/return"): "ticket.return",
    ("POST", "/hotline-tickets/{ticket_id}/return-review"): "ticket.review-return",
    ("POST", "/hotline-tickets/{ticket_id}/reply"): "ticket.reply",
    ("POST", "/hotline-tickets/{ticket_id}/callback"): "ticket.callback",
    ("POST", "/hotline-tickets/{ticket_id}/merge"): "ticket.merge",
    ("POST", "/hotline-tickets/{ticket_id}/convert-to-case"): "ticket.convert-to-case",
    ("POST", "/hotline-tickets/{ticket_id}/escalate-to-incident"):
        "ticket.escalate-to-incident",
    ("POST", "/hotline-tickets/{ticket_id}/close"): "ticket.close",
    ("POST", "/hotline-tickets/bulk/{action}"): OWN,
    # maps, exports, statistics
    ("GET", "/spatial/layers"): READ,
    ("GET", "/spatial/{layer}/features"): READ,
    ("POST", "/spatial/{layer}/within"): READ,
    ("GET", "/spatial/{layer}/radius"): READ,
    ("GET", "/spatial/{layer}/nearest"): READ,
    ("GET", "/spatial/incidents/{incident_id}/hazard-sources"): READ,
    ("GET", "/spatial/hazard-sources/{source_id}/facilities"): READ,
    ("GET", "/ogc"): READ,
    ("GET", "/ogc/conformance"): READ,
    ("GET", "/ogc/collections"): READ,
    ("GET", "/ogc/collections/{collection_id}"): READ,
    ("GET", "/ogc/collections/{collection_id}/items"): READ,
    ("GET", "/ogc/collections/{collection_id}/items/{feature_id}"): READ,
    ("GET", "/ogc/api"): READ,
    ("GET", "/exports/{name}"): READ,
    ("GET", "/statistics/key-figures"): READ,
    ("GET", "/statistics/areas"): READ,
    ("GET", "/statistics/departments"): READ,
    ("GET", "/statistics/incidents"): READ,
    ("GET", "/statistics/response-times"): READ,
    ("GET", "/search"): READ,
    ("GET", "/search/places"): READ,
    ("GET", "/statistics/hotline"): READ,
    # subscriptions (a department's own; oversight roles read all)
    ("GET", "/subscriptions/catalogue"): READ,
    ("POST", "/subscriptions"): OWN,
    ("GET", "/subscriptions"): OWN,
    ("GET", "/subscriptions/{subscription_id}"): OWN,
    ("PUT", "/subscriptions/{subscription_id}"): OWN,
    ("DELETE", "/subscriptions/{subscription_id}"): OWN,
    ("POST", "/subscriptions/{subscription_id}/pause"): OWN,
    ("POST", "/subscriptions/{subscription_id}/resume"): OWN,
    ("GET", "/subscriptions/{subscription_id}/history"): OWN,
    ("GET", "/subscriptions/{subscription_id}/deliveries"): OWN,
    ("POST", "/subscriptions/{subscription_id}/deliveries/{delivery_id}/redeliver"): OWN,
    # drills: planners start and steer them; everyone sees the drills they take part in
    ("POST", "/drills"): "drill.start",
    ("POST", "/drills/{drill_id}/pause"): "drill.pause",
    ("POST", "/drills/{drill_id}/resume"): "drill.resume",
    ("POST", "/drills/{drill_id}/speed"): "drill.change-speed",
    ("POST", "/drills/{drill_id}/jump"): "drill.jump-forward",
    ("POST", "/drills/{drill_id}/participants"): "drill.invite",
    ("POST", "/drills/{drill_id}/finish"): "drill.finish",
    ("DELETE", "/drills/{drill_id}"): "drill.delete",
    ("GET", "/drills"): OWN,
    ("GET", "/drills/ready"): OWN,
    ("GET", "/drills/{drill_id}"): OWN,
    ("GET", "/drill-room"): PUBLIC,
    # field reporting
    ("POST", "/photos"): OWN,
    ("GET", "/photos/{sha256}"): OWN,
    ("GET", "/photos/{sha256}/info"): OWN,
    ("GET", "/field/me/cells"): OWN,
    ("GET", "/field/me/tasks"): OWN,
    # Open311 GeoReport v2: public reads; a POST needs an API key (its own rule)
    ("GET", "/open311/discovery.{format}"): PUBLIC,
    ("GET", "/open311/v2/services.{format}"): PUBLIC,
    ("GET", "/open311/v2/services/{service_code}.{format}"): PUBLIC,
    ("POST", "/open311/v2/requests.{format}"): PUBLIC,
    ("GET", "/open311/v2/requests.{format}"): PUBLIC,
    ("GET", "/open311/v2/tokens/{token}.{format}"): PUBLIC,
    ("GET", "/open311/v2/requests/{service_request_id}.{format}"): PUBLIC,
}
PUBLIC_PAGES = ("/", "/login", "/dashboard", "/field", "/drill-room")
ROLES: tuple[tuple[str, str | None], ...] = (
    ("inspector", None), ("hotline-operator", None), ("dispatcher", None),
    ("department-user", "water"), ("planner", None), ("admin", None), ("leader", None),
)


def _routes(api: Any) -> list[tuple[str, str]]:
    schema = api.client.app.openapi()
    return [(method.upper(), path) for path, operations in schema["paths"].items()
            for method in operations]


def _concrete(path: str) -> str:
    """A path template with every parameter filled (an id that exists nowhere)."""
    return re.sub(r"\{([^}]+)\}", lambda m: "json" if m.group(1) == "format"
                  else str(uuid4()), path)


def _call(api: Any, method: str, path: str, headers: dict[str, str]) -> Any:
    body = None if method in ("GET", "DELETE") else {}
    return api.client.request(method, _concrete(path), json=body, headers=headers)


def test_every_endpoint_has_an_authorisation_decision(api: Any) -> None:
    routes = _routes(api)
    undecided = sorted(set(routes) - set(DECISIONS))
    assert not undecided, f"endpoints without an authorisation decision: {undecided}"
    gone = sorted(set(DECISIONS) - set(routes))
    assert not gone, f"decisions about endpoints that do not exist: {gone}"
    for route, decision in DECISIONS.items():
        if decision not in (PUBLIC, READ, SELF, OWN):
            assert roles_for(decision) is not None, (route, decision)
            assert Role.LEADER not in (roles_for(decision) or ()), (route, "a leader only reads")


def test_every_endpoint_but_the_public_ones_needs_a_valid_token(api: Any) -> None:
    expired = Authenticator(api.system.accounts,
                            api.system.settings.token_secret(),
                            ttl_minutes=60, now=lambda: time.time() - 2 * 3600)
    api.user("dispatcher")
    good = api.token("dispatcher")
    other_key = Authenticator(api.system.accounts, "another-deployments-secret",
                              ttl_minutes=60).issue_token("dispatcher-1")
    bad_tokens = {
        "none": {},
        "not bearer": {"Authorization": f"Basic {good}"},
        "tampered": {"Authorization": f"Bearer {good[:-2]}xx"},
        "other secret": {"Authorization": f"Bearer {other_key}"},
        "expired": {"Authorization": f"Bearer {expired.issue_token('dispatcher-1')}"},
        "garbage": {"Authorization": "Bearer not.a.token.at.all"},
    }
    for method, path in _routes(api):
        decision = DECISIONS[(method, path)]
        for name, headers in bad_tokens.items():
            response = _call(api, method, path, headers)
            if decision == PUBLIC:
                assert response.status_code != 401, (method, path, name)
                continue
            assert response.status_code == 401, (method, path, name, response.text)
            assert response.headers["WWW-Authenticate"].startswith("Bearer"), (method, path)
            if name == "expired":
                assert "expired" in response.json()["detail"]
    for page in PUBLIC_PAGES:
        assert api.client.get(page).status_code == 200, page


def test_a_leader_reads_everything_and_changes_nothing(api: Any) -> None:
    for method, path in _routes(api):
        decision = DECISIONS[(method, path)]
        response = _call(api, method, path, api.headers("leader"))
        assert response.status_code != 401, (method, path)
        if method != "GET" and decision not in (PUBLIC, SELF):
            assert response.status_code >= 400, (method, path, response.text)
    for path in ("/grid-cases", "/incidents", "/hotline-tickets", "/resources",
                 "/hazard-sources", "/plans", "/statistics/key-figures", "/ogc/collections",
                 "/spatial/layers", "/catalogue"):
        api.get(path, role="leader")


def test_roles_outside_a_commands_table_are_refused(api: Any) -> None:
    """Each command refuses every role its table leaves out (403), checked with bodies
    that are otherwise valid, on ids that exist nowhere (so nothing can be recorded)."""
    case, incident, ticket = str(uuid4()), str(uuid4()), str(uuid4())
    samples = {
        f"/grid-cases/{case}/register": ({}, "grid-case.register"),
        f"/grid-cases/{case}/close": ({}, "grid-case.close"),
        f"/grid-cases/{case}/verify": ({"fixed": True}, "grid-case.verify"),
        f"/grid-cases/{case}/assign-verifier": ({"inspector": "insp-D01-01"},
                                                "grid-case.assign-verifier"),
        f"/incidents/{incident}/contain": ({}, "incident.contain"),
        f"/incidents/{incident}/review": ({"summary": "done"}, "incident.review"),
        f"/hotline-tickets/{ticket}/answer": ({"answer": "x"}, "ticket.answer"),
        f"/hotline-tickets/{ticket}/callback": ({"satisfaction": "satisfied"},
                                                "ticket.callback"),
    }
    for path, (body, command) in samples.items():
        for role, dept in ROLES:
            allowed = Role(role) in (roles_for(command) or ())
            response = api.client.post(path, json=body, headers=api.headers(role, dept))
            # Allowed: the id does not exist (404). Refused: 403 before anything is read.
            expected = 404 if allowed else 403
            assert response.status_code == expected, (path, role, response.text)


def test_a_leaders_empty_plan_is_refused_not_validated(api: Any) -> None:
    """Issue 9, item 11: a leader's `POST /plans {}` answered 422 with the fields a plan
    needs; a role that may not define plans learns nothing about their body."""
    response = api.client.post("/plans", json={}, headers=api.headers("leader"))
    assert response.status_code == 403, response.text
    assert response.json()["error"] == "not-permitted"
    assert "plan.define" in response.json()["detail"]


SUBSCRIBERS = frozenset({Role.ADMIN, Role.DEPARTMENT_USER})
PHOTOGRAPHERS = frozenset({Role.INSPECTOR, Role.DEPARTMENT_USER, Role.DISPATCHER, Role.ADMIN})
BULK_ACTIONS = {"/grid-cases/bulk/{action}": ("register", "grid-case.register"),
                "/hotline-tickets/bulk/{action}": ("assign", "ticket.assign")}


def _allowed_roles(method: str, path: str) -> frozenset[Role] | None:
    """Who may call a non-GET route at all (None: any logged-in user; the route decides)."""
    decision = DECISIONS[(method, path)]
    if roles_for(decision) is not None:
        return roles_for(decision)
    if path in BULK_ACTIONS:
        return roles_for(BULK_ACTIONS[path][1])
    if path.startswith("/subscriptions"):
        return SUBSCRIBERS
    if path == "/photos":
        return PHOTOGRAPHERS
    return None


def test_a_refused_role_learns_nothing_about_a_commands_body(api: Any) -> None:
    """Every non-GET route answers 403 to a role that may not use it before looking at the
    body: empty, invalid, malformed JSON or a bad If-Match alike (a leader's POST /plans {}
    used to answer 422 with the list of fields a plan needs)."""
    from cityops.command_center.command_gate import ungated_command_routes

    assert ungated_command_routes(api.client.app) == [], "command routes the gate misses"
    bodies: list[dict[str, Any]] = [
        {"json": {}}, {"json": {"level": "V", "nonsense": [1, 2]}},
        {"content": b"{not json", "headers": {"Content-Type": "application/json"}},
        {"json": {}, "headers": {"If-Match": "not-a-version"}}]
    checked = 0
    for method, path in _routes(api):
        if method == "GET" or DECISIONS[(method, path)] in (PUBLIC, SELF):
            continue
        allowed = _allowed_roles(method, path)
        if allowed is None:
            continue
        concrete = _concrete(path.replace("{action}", BULK_ACTIONS.get(path, ("",))[0]))
        for role, dept in ROLES:
            if Role(role) in allowed:
                continue
            for body in bodies:
                headers = {**api.headers(role, dept), **body.get("headers", {})}
                response = api.client.request(
                    method, concrete, json=body.get("json"), content=body.get("content"),
                    headers=headers, params={"unknown-parameter": "1"})
                assert response.status_code == 403, (method, path, role, body,
                                                     response.text)
                assert response.json()["error"] == "not-permitted"
                checked += 1
    assert checked > 500


def _world(api: Any) -> dict[str, str]:
    """Items of water and of sanitation: cases, tickets, resources, an incident with a
    task for fire."""
    def case(department: str, lon: float) -> str:
        report = {"category": "E0101", "description": f"bins for {department}",
                  "location": {"type": "Point", "coordinates": [lon, 32.05]}}
        case_id: str = api.post("/grid-cases", report, role="inspector", expect=201)["id"]
        api.post(f"/grid-cases/{case_id}/register")
        api.post(f"/grid-cases/{case_id}/dispatch", {"department": department})
        return case_id

    def ticket(department: str) -> str:
        ticket_id: str = api.post("/hotline-tickets", {
            "ticket_type": "complaint", "topic": "garbage", "description": "smell",
            "caller_name": "Zhang San", "caller_phone": "13812345678",
            "location": api.IN_TOWN}, role="hotline-operator", expect=201)["id"]
        api.post(f"/hotline-tickets/{ticket_id}/assign", {"department": department},
                 role="hotline-operator")
        return ticket_id

    def resource(department: str, kind: str, sign: str) -> str:
        resource_id: str = api.post("/resources", {
            "kind": kind, "name": sign, "call_sign": sign, "department": department,
            "home_base": api.IN_TOWN}, role="planner", expect=201)["id"]
        return resource_id

    incident = api.post("/incidents", {
        "category": "accident-disaster", "incident_type": "fire", "title": "Fire",
        "location": api.IN_TOWN}, role="inspector", expect=201)["id"]
    api.post(f"/incidents/{incident}/verify", {})
    api.post(f"/incidents/{incident}/respond", {"level": "IV"})
    api.post(f"/incidents/{incident}/tasks", {"department": "fire", "description": "Go",
                                              "allowance_minutes": 10})
    world = {"water_case": case("water", 118.80), "sanitation_case": case("sanitation", 118.81),
             "water_ticket": ticket("water"), "sanitation_ticket": ticket("sanitation"),
             "water_resource": resource("water", "rescue-team", "WATER 1"),
             "fire_resource": resource("fire", "fire-engine", "FIRE 1"),
             "fire_incident": incident}
    api.settle()
    return world


def test_a_department_user_sees_only_their_departments_scope(api: Any) -> None:
    world = _world(api)
    water = {"role": "department-user", "dept": "water"}

    def ids(body: Any) -> set[str]:
        items = body["data"] if "data" in body else body["features"]
        return {item["id"] for item in items}

    assert ids(api.get("/grid-cases", **water)) == {world["water_case"]}
    assert ids(api.get("/grid-cases", department="sanitation", **water)) == set()
    assert ids(api.get("/hotline-tickets", **water)) == {world["water_ticket"]}
    assert ids(api.get("/resources", **water)) == {world["water_resource"]}
    assert ids(api.get("/incidents", **water)) == set()
    assert ids(api.get("/incidents", role="department-user", dept="fire")) == {
        world["fire_incident"]}
    assert world["sanitation_case"] in ids(api.get("/grid-cases", role="leader"))

    for path in (f"/grid-cases/{world['sanitation_case']}",
                 f"/grid-cases/{world['sanitation_case']}/history",
                 f"/hotline-tickets/{world['sanitation_ticket']}",
                 f"/hotline-tickets/{world['sanitation_ticket']}/history",
                 f"/resources/{world['fire_resource']}",
                 f"/incidents/{world['fire_incident']}",
                 f"/incidents/{world['fire_incident']}/history",
                 f"/spatial/incidents/{world['fire_incident']}/hazard-sources"):
        missing = api.get(path, expect=404, **water)
        assert "does not exist" in missing["detail"], path
    # An id that exists nowhere answers exactly the same.
    assert api.get(f"/grid-cases/{uuid4()}", expect=404, **water)["detail"].endswith(
        "does not exist")
    api.post(f"/grid-cases/{world['sanitation_case']}/handle", {"result": "done"},
             expect=404, **water)
    api.post(f"/grid-cases/{world['water_case']}/handle", {"result": "done"}, **water)

    # Caller data is withheld from a department the catalogue does not entitle to it.
    assert "caller" not in api.get(f"/hotline-tickets/{world['water_ticket']}", **water)

    # Search follows the same scope as the lists.
    found = api.get("/search", q="bins", **water)
    assert ids(found["grid_cases"]) == {world["water_case"]}
    assert ids(api.get("/search", q="smell", **water)["hotline_tickets"]) == {
        world["water_ticket"]}
    assert ids(api.get("/search", q="fire", **water)["incidents"]) == set()
    assert ids(api.get("/search", q="fire", role="department-user", dept="fire")["incidents"]
               ) == {world["fire_incident"]}
    assert len(ids(api.get("/search", q="bins", role="leader")["grid_cases"])) == 2

    # The map, OGC API and exports follow the same scope.
    assert ids(api.get("/spatial/grid-cases/features", **water)) == {world["water_case"]}
    assert ids(api.get("/spatial/resources/features", **water)) == {world["water_resource"]}
    assert ids(api.get("/spatial/incidents/features", **water)) == set()
    assert ids(api.get("/spatial/hotline-tickets/features", **water)) == {
        world["water_ticket"]}
    assert ids(api.get("/ogc/collections/grid-cases/items", **water)) == {
        world["water_case"]}
    api.get(f"/ogc/collections/grid-cases/items/{world['sanitation_case']}", expect=404,
            **water)
    api.get(f"/ogc/collections/grid-cases/items/{world['water_case']}", **water)
    exported = api.client.get("/exports/grid-cases.geojson",
                              headers=api.headers("department-user", "water"))
    assert {f["properties"]["id"] if "id" in f["properties"] else f["id"]
            for f in exported.json()["features"]} <= {world["water_case"]}
    assert len(exported.json()["features"]) == 1
    nearest = api.get("/resources/nearest", kind="fire-engine", lon=118.8, lat=32.05, **water)
    assert nearest == []

    # Statistics: their own department's figures, not the city's.
    rows = api.get("/statistics/departments", **water)["data"]
    assert {row["department"] for row in rows} <= {"water"}
    assert api.get("/statistics/key-figures", expect=403, **water)["error"] == "not-permitted"
    api.get("/statistics/key-figures", role="leader")
    hotline = api.get("/statistics/hotline", **water)
    assert {d["department"] for d in hotline["departments"]} <= {"water"}


# --- logins ---------------------------------------------------------------------------------


def _login(api: Any, username: str, password: str, expect: int = 200) -> Any:
    response = api.client.post("/auth/login", json={"username": username,
                                                    "password": password})
    assert response.status_code == expect, response.text
    return response


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_login_me_password_change_and_disabling(api: Any) -> None:
    api.user("department-user", "water", "water-chen")
    answer = _login(api, "Water-Chen", api.PASSWORD).json()
    assert answer["token_type"] == "bearer"
    assert answer["user"] == {"username": "water-chen", "role": "department-user",
                              "department": "water", "display_name": "water-chen"}
    token = answer["access_token"]
    assert api.client.get("/auth/me", headers=_bearer(token)).json()["username"] == "water-chen"

    wrong = _login(api, "water-chen", "not-the-password-1", expect=401)
    unknown = _login(api, "nobody-at-all", "not-the-password-1", expect=401)
    assert wrong.json() == unknown.json() == {"error": "not-authenticated",
                                              "detail": "wrong username or password"}

    weak = api.client.post("/auth/password", headers=_bearer(token), json={
        "current_password": api.PASSWORD, "new_password": "short"})
    assert weak.status_code == 422 and "at least 10 characters" in weak.json()["detail"]
    changed = api.client.post("/auth/password", headers=_bearer(token), json={
        "current_password": api.PASSWORD, "new_password": "a-new-password-2"})
    assert changed.status_code == 200, changed.text
    stale = api.client.get("/auth/me", headers=_bearer(token))
    assert stale.status_code == 401 and "credentials" in stale.json()["detail"]
    fresh = changed.json()["access_token"]
    assert api.client.get("/auth/me", headers=_bearer(fresh)).status_code == 200
    _login(api, "water-chen", api.PASSWORD, expect=401)
    _login(api, "water-chen", "a-new-password-2")

    admin = Actor(user_id="root", role=Role.ADMIN)
    api.system.accounts.handle(
        DisableUser(username="water-chen", reason="left"),
        CommandContext(actor=admin))
    gone = api.client.get("/grid-cases", headers=_bearer(fresh))
    assert gone.status_code == 401 and "disabled" in gone.json()["detail"]
    assert "disabled" in _login(api, "water-chen", "a-new-password-2",
                                expect=401).json()["detail"]
    # Every action is attributed: the events name who acted, in what role.
    events = list(api.system.accounts.events.get(
        api.system.accounts.user("water-chen").id))
    assert [e.actor.user_id for e in events] == ["test-admin", "water-chen", "root"]


def test_a_token_signed_with_the_old_public_development_key_is_refused(api: Any) -> None:
    """Reproduction (issue 10, item 8): the default environment signed tokens with a
    constant published in the repository, so anyone could make an admin's token."""
    api.user("admin", None, "admin-wu")
    forged = Authenticator(api.system.accounts, "development-only-secret",
                           ttl_minutes=60).issue_token("admin-wu")
    answer = api.client.get("/auth/me", headers=_bearer(forged))
    assert answer.status_code == 401, answer.text


def test_repeated_failed_logins_from_one_address_are_paused(api: Any) -> None:
    """Behaviour changed on purpose (issue 10, item 7): failures pause the address they
    come from (tests/e2e/test_login_abuse.py), never the user everywhere."""
    api.user("dispatcher", None, "duty-zhao")
    for _ in range(5):
        _login(api, "duty-zhao", "guess-number-1", expect=401)
    throttled = _login(api, "duty-zhao", api.PASSWORD, expect=429)
    assert "too many failed logins" in throttled.json()["detail"]
    assert int(throttled.headers["Retry-After"]) > 0
    api.user("dispatcher", None, "duty-qian")
    _login(api, "duty-qian", api.PASSWORD)  # another username is not affected


def test_a_change_made_by_another_process_is_seen_within_seconds(api: Any,
                                                                 tmp_path: Path) -> None:
    """The account cache: a user disabled elsewhere (the admin CLI, another API worker)
    stops working once the cached account is older than ACCOUNT_CACHE_SECONDS."""
    api.user("inspector", None, "insp-li")
    moment = [0.0]
    auth = Authenticator(api.system.accounts, "s3cret-for-this-test", ttl_minutes=60,
                         monotonic=lambda: moment[0])
    token = auth.issue_token("insp-li")
    assert auth.actor_for_token(token).user_id == "insp-li"
    elsewhere = Accounts(api.system.settings.event_store_env(Accounts.name),
                         catalogue=api.system.catalogue)
    try:
        elsewhere.handle(
            DisableUser(username="insp-li", reason="lost phone"),
            CommandContext(actor=Actor(user_id="root", role=Role.ADMIN)))
    finally:
        elsewhere.close()
    assert auth.actor_for_token(token).user_id == "insp-li"  # still cached
    moment[0] += ACCOUNT_CACHE_SECONDS + 0.1
    with pytest.raises(Exception, match="disabled"):
        auth.actor_for_token(token)


# --- the administrators' command line -------------------------------------------------------


def test_the_cli_manages_users_departments_and_api_keys(api: Any, tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"CITYOPS_DATA_DIR": str(tmp_path / "cli")}

    def run(*args: str, stdin: str | None = None, code: int = 0) -> str:
        result = runner.invoke(cli_app, list(args), input=stdin, env=env)
        assert result.exit_code == code, result.output
        return result.output

    run("users", "add", "duty-zhao", "--role", "dispatcher", "--display-name", "Zhao",
        "--password-stdin", stdin="duty-password-1\n")
    assert "at least 10 characters" in run("users", "add", "li", "--role", "leader",
                                           "--password-stdin", stdin="short\n", code=2)
    assert "needs a department" in run("users", "add", "li", "--role", "department-user",
                                       "--password-stdin", stdin="leader-password-1\n",
                                       code=2)
    assert "unknown role 'mayor'" in run("users", "add", "li", "--role", "mayor",
                                         "--password-stdin", stdin="leader-password-1\n",
                                         code=2)
    assert "--password-stdin" in run("users", "add", "li", "--role", "leader", code=2)
    run("departments", "add", "parks-east", "Parks East Office")
    run("users", "add", "li", "--role", "department-user", "--department", "parks-east",
        "--password-stdin", stdin="parks-password-1\n")
    listed = run("users", "list")
    assert "duty-zhao" in listed and "parks-east" in listed
    assert "still has enabled users: li" in run("departments", "retire", "parks-east",
                                                "--reason", "merged", code=2)
    run("users", "set-department", "li", "landscaping")
    run("departments", "rename", "parks-east", "Parks (East)")
    run("departments", "retire", "parks-east", "--reason", "merged")
    assert "retired" in run("departments", "list")
    run("users", "set-role", "li", "planner")
    run("users", "disable", "li", "--reason", "moved away")
    run("users", "enable", "li")
    run("users", "reset-password", "li", "--password-stdin", stdin="another-password-2\n")
    assert "does not exist" in run("users", "disable", "ghost", "--reason", "x", code=2)

    key = run("api-keys", "issue", "FixMyStreet").strip().splitlines()[-1]
    key_id = key.split(".")[0]
    assert key_id in run("api-keys", "list") and key not in run("api-keys", "list")
    run("api-keys", "revoke", key_id, "--reason", "leaked")
    assert "revoked" in run("api-keys", "list")

    # What the CLI recorded is what the server signs people in with.
    from cityops.bootstrap import build_system

    system = build_system(Settings(data_dir=tmp_path / "cli"))
    try:
        assert system.accounts.authenticate("duty-zhao", "duty-password-1") is not None
        assert system.accounts.authenticate("li", "another-password-2") is not None
        assert system.accounts.api_client_for_key(key) is None
        events = list(system.accounts.events.get(system.accounts.user("li").id))
        assert all(e.actor.user_id.startswith("cli:") for e in events)
    finally:
        system.close()


def test_every_bulk_action_is_gated_as_a_command_of_the_permission_table() -> None:
    """A bulk action whose name is not its command's would pass the gate unchecked."""
    from cityops.command_center.command_gate import BULK_ACTION_COMMANDS
    from cityops.command_center.routers.bulk import GridCaseBulkAction, TicketBulkAction

    for prefix, actions in (("grid-case", GridCaseBulkAction), ("ticket", TicketBulkAction)):
        for action in actions:
            named = f"{prefix}.{action.value}"
            assert roles_for(BULK_ACTION_COMMANDS.get(named, named)) is not None, named
