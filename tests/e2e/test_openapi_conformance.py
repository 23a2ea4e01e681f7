"""Every answer of every operation matches the published OpenAPI document (issue 10, item 3;
issue 11): its status is declared on the operation, its content type is one declared for
that status, and its body is valid against the schema declared for it (every route has a
response model, so success bodies are checked as well as refusals; a document admits no
field its schema does not declare).

Schemathesis generates requests (valid and invalid ones) for every operation from the app's
own document and sends them in-process, over the seeded city of tests/e2e/test_fuzz_api.py,
as a dispatcher and as a department user (who is refused more); bounded (a few examples per
operation) and derandomized. Generated requests mostly earn refusals, so a walk through the
whole API as its users (`test_every_operation_answers_as_its_document_says`) makes every
operation answer with a success at least once, every document kind among them, and checks
each answer against the published document (tests/e2e/published_schema.py, which also
checks every answer of every other e2e test).
"""

from __future__ import annotations

import io
import os
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from cityops.domain.accounts.commands import IssueApiKey
from cityops.domain.actors import Actor, Role
from cityops.domain.commands import CommandContext

from .conftest import TEST_HASHER, Api
from .published_schema import check_answer, route_template
from .test_fuzz_api import TOKENS, _fuzz, api_schema, city_app  # noqa: F401 (fixtures)

EXAMPLES = 4 * int(os.environ.get("CITYOPS_FUZZ_SCALE", "1"))


CHECKS = (not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance)


@pytest.mark.parametrize("role", ["dispatcher", "department-user"])
def test_every_answer_is_declared_in_the_document(api_schema: Any, city_app: Any,  # noqa: F811
                                                  role: str) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) > 100  # every operation of the document, not a few
    system = city_app.state.system

    def fuzzed(operation: Any) -> str | None:
        # The read models follow as in a serving process (this app runs no projections):
        # else, once the run passes a minute, `/health?strict=true` rightly answers 503.
        system.catch_up()
        return _fuzz(operation, TOKENS[role], CHECKS, EXAMPLES)

    failures = [failure for operation in operations
                if (failure := fuzzed(operation)) is not None]
    assert not failures, "\n\n".join(failures)


# --- every operation, answered for real (issue 11) -------------------------------------------

IN_TOWN = {"type": "Point", "coordinates": [118.80, 32.05]}
ADMIN = Actor(user_id="conformance-admin", role=Role.ADMIN)
NOT_ANSWERED_HERE: dict[tuple[str, str], str] = {}
"""Operations the walk below does not reach with a success, and why (none: every operation
of the document is answered and checked)."""


def _point(lon: float, lat: float) -> dict[str, Any]:
    return {"type": "Point", "coordinates": [lon, lat]}


def _in(days: float) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


class Walk:
    """Requests as the people who make them; every answer is checked against the published
    document (tests/e2e/published_schema.py) and its operation noted when it succeeded."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.app: Any = api.client.app
        self.succeeded: set[tuple[str, str]] = set()

    def call(self, method: str, path: str, body: Any = None, *, role: str | None = "dispatcher",
             dept: str | None = None, user: str | None = None, expect: int = 200,
             params: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        headers = {**self.api.headers(role, dept, user=user), **kwargs.pop("headers", {})}
        if body is not None:
            kwargs["json"] = body
        response = self.api.client.request(method, path, params=params, headers=headers,
                                           follow_redirects=False, **kwargs)
        assert response.status_code == expect, f"{method} {path}: {response.text[:500]}"
        problems = check_answer(self.app, method, path, response)
        assert not problems, problems
        template = route_template(self.app.openapi(), method, path)
        if template is not None and response.status_code < 400:
            self.succeeded.add((method, template))
        return response

    def post(self, path: str, body: Any = None, **options: Any) -> Any:
        options.setdefault("expect", 200)
        response = self.call("POST", path, {} if body is None else body, **options)
        return response.json() if "json" in response.headers.get("content-type", "") \
            else response

    def get(self, path: str, **options: Any) -> Any:
        response = self.call("GET", path, **options)
        return response.json() if "json" in response.headers.get("content-type", "") \
            else response


def _grid_cases(walk: Walk) -> str:
    api = walk.api
    inspector = api.inspector_at(IN_TOWN)
    report = {"category": "E0101", "description": "Garbage heap", "location": IN_TOWN}
    photo = walk.call("POST", "/photos", role="inspector", user=inspector, expect=201,
                      files={"file": ("p.png", _png(), "image/png")}).json()
    walk.get(f"/photos/{photo['sha256']}", role="inspector")
    walk.get(f"/photos/{photo['sha256']}/info", role="inspector")
    walk.call("POST", "/photos", role="inspector", user=inspector, expect=200,
              files={"file": ("p.png", _png(), "image/png")})
    case = walk.post("/grid-cases", {**report, "photos": [photo["photo"]]}, role="inspector",
                     user=inspector, expect=201)
    path = f"/grid-cases/{case['id']}"
    walk.post(f"{path}/register", {"note": "seen"})
    walk.post(f"{path}/dispatch", {"department": "urban-management"})
    walk.post(f"{path}/return", {"reason": "Not ours", "suggested_department": "sanitation"},
              role="department-user", dept="urban-management")
    walk.post(f"{path}/return-review", {"accept": True, "reason": "Sanitation's"})
    dept = {"role": "department-user", "dept": "sanitation"}
    walk.post(f"{path}/extension-requests", {"requested_deadline": _in(9),
                                             "reason": "Waiting for a truck"}, **dept)
    walk.post(f"{path}/extension-decision", {"approve": True})
    walk.post(f"{path}/suspension-requests", {"reason": "Needs a permit",
                                              "expected_resume_at": _in(3)}, **dept)
    walk.post(f"{path}/suspension-decision", {"approve": False, "reason": "Not needed"})
    walk.post(f"{path}/suspend", {"reason": "Needs a permit"})
    walk.post(f"{path}/resume", {})
    walk.post(f"{path}/handle", {"result": "Cleared", "evidence": ["doc-1"]}, **dept)
    walk.post(f"{path}/assign-verifier", {"inspector": inspector, "reason": "nearby"})
    api.settle()
    walk.get("/field", role="inspector", user=inspector)
    walk.get("/field/me/cells", role="inspector", user=inspector)
    walk.get("/field/me/tasks", role="inspector", user=inspector)
    walk.post(f"{path}/verify", {"fixed": True, "note": "Gone"}, role="inspector",
              user=inspector)
    walk.post(f"{path}/close", {"note": "done"})
    other = walk.post("/grid-cases", report, role="inspector", user=inspector, expect=201)
    walk.post(f"/grid-cases/{other['id']}/reject", {"reason": "not-reproducible"})
    bulk = walk.post("/grid-cases", report, role="inspector", user=inspector, expect=201)
    walk.post("/grid-cases/bulk/register", {"items": [{"id": bulk["id"]}]})
    walk.post("/grid-cases/bulk/dispatch",  # one done, one refused: answered 200
              {"items": [{"id": bulk["id"]}, {"id": other["id"]}]})
    api.settle()
    walk.get(path)
    walk.get(f"{path}/history")
    walk.get("/grid-cases", params={"open_only": "false", "limit": 5})
    walk.get("/grid-cases", role="department-user", dept="sanitation")
    return case["id"]


def _png() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.linear_gradient("L").resize((64, 48)).convert("RGB").save(out, "PNG")
    return out.getvalue()


def _plans_and_incidents(walk: Walk, case_id: str) -> tuple[str, str]:
    plan = walk.post("/plans", {
        "code": "conformance-fire", "name": "Warehouse fire", "category": "accident-disaster",
        "levels": [{"level": "IV", "tasks": [{"department": "water", "description":
                                              "Open the hydrants", "allowance_minutes": 30}],
                    "resources": [{"kind": "fire-engine", "count": 1}]},
                   {"level": "III", "tasks": [{"department": "health", "description":
                                               "Ambulances on standby",
                                               "allowance_minutes": 20}]}]},
        role="planner", expect=201)
    plan_path = f"/plans/{plan['id']}"
    walk.post(f"{plan_path}/revise", {"levels": [
        {"level": "IV", "tasks": [{"department": "water", "description": "Open the hydrants",
                                   "allowance_minutes": 45}],
         "resources": [{"kind": "fire-engine", "count": 1}]},
        {"level": "III", "tasks": [{"department": "health", "description":
                                    "Ambulances on standby", "allowance_minutes": 20}]}],
        "note": "more time"}, role="planner")
    walk.get(plan_path)
    walk.get("/plans/applicable", params={"category": "accident-disaster", "level": "IV"})
    incident = walk.post("/incidents", {
        "category": "accident-disaster", "incident_type": "fire", "title": "Warehouse fire",
        "location": IN_TOWN, "warning": "orange",
        "affected_area": {"type": "Polygon", "coordinates": [[
            [118.79, 32.04], [118.81, 32.04], [118.81, 32.06], [118.79, 32.04]]]}},
        expect=201)
    path = f"/incidents/{incident['id']}"
    walk.post(f"{path}/verify", {"note": "confirmed"})
    walk.post(f"{path}/respond", {"level": "IV", "plan_id": plan["id"]})
    walk.post(f"{path}/escalate", {"reason": "spreading"})
    walk.post(f"{path}/de-escalate", {"reason": "under control"})
    walk.post(f"{path}/level", {"level": "III", "reason": "spreading again"})
    spare = walk.post("/plans", {
        "code": "conformance-spare", "name": "Spare", "category": "accident-disaster",
        "levels": [{"level": "III", "tasks": [{"department": "police", "description":
                                               "Close the road", "allowance_minutes": 15}]}]},
        role="planner", expect=201)
    walk.post(f"{path}/activate-plan", {"plan_id": spare["id"]})
    walk.post(f"/plans/{spare['id']}/retire", {"reason": "merged"}, role="planner")
    walk.post(f"{path}/situation-reports", {"text": "Two injured", "casualties": {"injured": 2},
                                            "affected_area": {"type": "Polygon", "coordinates": [[
                                                [118.79, 32.04], [118.82, 32.04],
                                                [118.82, 32.07], [118.79, 32.04]]]}})
    walk.post(f"{path}/links", {"kind": "grid-case", "target_id": case_id})
    walk.post(f"{path}/unlink", {"kind": "grid-case", "target_id": case_id,
                                 "reason": "mistake"})
    walk.post(f"{path}/commander", {"commander": "chief-1", "reason": "on duty"})
    task = uuid4()
    walk.post(f"{path}/tasks", {"department": "water", "description": "Cool the tanks",
                                "allowance_minutes": 30, "task_id": str(task)})
    water = {"role": "department-user", "dept": "water"}
    walk.post(f"{path}/tasks/{task}/acknowledge", {}, **water)
    walk.post(f"{path}/tasks/{task}/complete", {"result": "Cooled"}, **water)
    tasks = walk.get(path)["tasks"]
    open_tasks = [t["id"] for t in tasks if t["status"] in ("assigned", "acknowledged")]
    walk.post(f"{path}/tasks/{open_tasks[0]}/cancel", {"reason": "not needed"})
    for task_id in open_tasks[1:]:
        walk.post(f"{path}/tasks/{task_id}/waive", {"reason": "done by others"})
    return incident["id"], plan["id"]


def _resources(walk: Walk, incident_id: str) -> None:
    engine = walk.post("/resources", {
        "kind": "fire-engine", "name": "Engine 71", "call_sign": "FIRE 71",
        "department": "fire", "home_base": _point(118.79, 32.04), "capacity": 6,
        "notes": "new pump"}, role="planner", expect=201)
    path = f"/resources/{engine['id']}"
    walk.post(f"{path}/revise", {"speciality": "high-rise"}, role="planner")
    walk.get("/resources/nearest", params={"kind": "fire-engine", "lon": 118.8, "lat": 32.05})
    walk.post(f"/incidents/{incident_id}/resources", {"resource_id": engine["id"]})
    walk.post(f"/incidents/{incident_id}/resources/{engine['id']}/release", {})
    walk.post(f"{path}/dispatch", {"incident_id": incident_id})
    now = datetime.now(UTC).isoformat()
    walk.post(f"{path}/en-route", {"position": _point(118.79, 32.04), "at": now},
              role="system")
    walk.post(f"{path}/positions", {"position": _point(118.795, 32.045), "at": now},
              role="system")
    walk.get("/resources/nearest", params={"kind": "fire-engine", "lon": 118.8, "lat": 32.05})
    walk.post(f"{path}/on-scene", {}, role="department-user", dept="fire")
    walk.post(f"{path}/clear-scene", {})
    walk.post(f"{path}/available", {})
    walk.post(f"{path}/out-of-service", {"reason": "pump repair"})
    walk.post(f"{path}/return-to-service", {})
    second = walk.post("/incidents", {
        "category": "accident-disaster", "incident_type": "fire", "title": "Second fire",
        "location": IN_TOWN}, expect=201)
    walk.post(f"/incidents/{second['id']}/verify", {})
    walk.post(f"{path}/dispatch", {"incident_id": incident_id})
    walk.post(f"{path}/reassign", {"incident_id": second["id"]})
    walk.post(f"{path}/stand-down", {})
    shelter = walk.post("/resources", {
        "kind": "shelter", "name": "North gym", "call_sign": "SHELTER 71",
        "department": "emergency-management", "home_base": _point(118.80, 32.06),
        "capacity": 400}, role="planner", expect=201)
    walk.post(f"/resources/{shelter['id']}/dispatch", {"incident_id": incident_id})
    walk.post(f"/resources/{shelter['id']}/activate", {})
    walk.post(f"/resources/{shelter['id']}/deactivate", {})
    walk.get(path)
    walk.get("/resources", params={"kind": "fire-engine"})
    walk.get("/resources", role="department-user", dept="fire")


def _hazards(walk: Walk) -> str:
    source = walk.post("/hazard-sources", {
        "hazard_type": "lpg-depot", "name": "Riverside LPG depot", "owner_name": "Riverside",
        "owner_contact": "+86 25 8888 0000", "grade": 2, "location": IN_TOWN},
        role="planner", expect=201)
    path = f"/hazard-sources/{source['id']}"
    walk.post(f"{path}/update", {"grade": 1, "reason": "bigger tanks"}, role="planner")
    walk.post(f"{path}/sensors", {"sensor_id": "gas-1", "kind": "gas-concentration",
                                  "unit": "%LEL", "direction": "high", "warning": 20,
                                  "alarm": 50, "label": "Tank A"}, role="planner")
    raised = walk.post(f"{path}/sensors/gas-1/readings", {"value": 70}, role="system")
    alarm_id = raised["alarm"]["alarm_id"]
    walk.post(f"{path}/alarms/{alarm_id}/acknowledge", {"note": "calling site"})
    walk.post(f"{path}/alarms/{alarm_id}/escalation", {
        "category": "accident-disaster", "incident_type": "gas-leak", "title": "Gas leak",
        "level": "IV"})
    found = walk.post(f"{path}/findings", {"description": "Corroded valve", "severity": "major",
                                           "rectification_deadline": _in(10)},
                      role="inspector", expect=201)
    finding_id = found["findings"][0]["finding_id"]
    walk.post(f"{path}/findings/{finding_id}/rectify", {"evidence": ["photo-1.jpg"]},
              role="department-user", dept="emergency-management")
    walk.get(path)
    walk.get(path, role="department-user", dept="water")  # the owner's contact withheld
    walk.get(f"{path}/history")
    walk.api.settle()
    walk.get("/hazard-sources")
    walk.get(f"/spatial/hazard-sources/{source['id']}/facilities")
    walk.post(f"{path}/sensors/gas-1/remove", {"reason": "replaced"}, role="planner")
    other = walk.post("/hazard-sources", {
        "hazard_type": "lpg-depot", "name": "Old depot", "owner_name": "Old Co.",
        "owner_contact": "+86 25 0000 0000", "grade": 3, "location": _point(118.81, 32.05)},
        role="planner", expect=201)
    walk.post(f"/hazard-sources/{other['id']}/decommission", {"reason": "closed"},
              role="planner")
    return source["id"]


def _hotline(walk: Walk, incident_id: str) -> None:
    operator = {"role": "hotline-operator"}
    call = {"channel": "phone", "ticket_type": "complaint", "topic": "garbage",
            "description": "Bins not emptied", "caller_name": "Zhang San",
            "caller_phone": "13812345678", "location": IN_TOWN}
    ticket = walk.post("/hotline-tickets", call, expect=201, **operator)
    path = f"/hotline-tickets/{ticket['id']}"
    walk.post(f"{path}/assign", {"department": "water"}, **operator)
    walk.post(f"{path}/return", {"reason": "not water", "suggested_department": "sanitation"},
              role="department-user", dept="water")
    walk.post(f"{path}/return-review", {"accept": True}, **operator)
    sanitation = {"role": "department-user", "dept": "sanitation"}
    walk.post(f"{path}/accept", {}, **sanitation)
    walk.post(f"{path}/reply", {"reply": "Collected"}, **sanitation)
    walk.post(f"{path}/callback", {"satisfaction": "satisfied"}, **operator)
    duplicate = walk.post("/hotline-tickets", {**call, "caller_name": "Li Si"}, expect=201,
                          **operator)
    walk.post(f"/hotline-tickets/{duplicate['id']}/merge", {"primary_id": ticket["id"]},
              **operator)
    walk.post(f"{path}/close", {"note": "done"}, **operator)
    walk.get(path, **operator)
    walk.get(path, role="department-user", dept="sanitation")  # the caller withheld
    walk.get(f"{path}/history", **operator)
    answered = walk.post("/hotline-tickets", {**call, "ticket_type": "consultation",
                                              "topic": "consultation-policy",
                                              "location": None}, expect=201, **operator)
    walk.post(f"/hotline-tickets/{answered['id']}/answer", {"answer": "On Mondays"}, **operator)
    to_case = walk.post("/hotline-tickets", call, expect=201, **operator)
    walk.post(f"/hotline-tickets/{to_case['id']}/convert-to-case", {}, **operator)
    to_incident = walk.post("/hotline-tickets", call, expect=201, **operator)
    walk.post(f"/hotline-tickets/{to_incident['id']}/escalate-to-incident",
              {"incident_id": incident_id}, **operator)
    bulk = walk.post("/hotline-tickets", call, expect=201, **operator)
    walk.post("/hotline-tickets/bulk/assign", {"items": [{"id": bulk["id"]}],
                                               "department": "water"}, **operator)
    walk.api.settle()
    walk.get("/hotline-tickets", **operator)
    walk.get("/hotline-tickets", role="department-user", dept="water")


def _warnings(walk: Walk, incident_id: str) -> None:
    """The warning desk: a warning from the walk's incident drafted, revised, approved by a
    second dispatcher, issued, updated (a first update discarded) and cancelled; its CAP
    alerts, written by the feed process's alert log, served to users and to the public."""
    wording = {
        "texts": [{"language": "zh-CN", "headline": "燃气泄漏 请远离",
                   "description": "液化气站泄漏", "instruction": "关闭门窗 远离该区域"},
                  {"language": "en-US", "headline": "Gas leak: keep away",
                   "description": "Gas leak at the depot",
                   "instruction": "Close windows and stay away"}],
        "expires": (walk.api.system.clock() + timedelta(hours=6)).isoformat(),
        "contact": "City hotline 12345"}
    circle = {"circles": [{"centre": IN_TOWN, "radius_km": 1.0}]}
    warning = walk.post("/warnings", {"origin": "incident", "incident_id": incident_id,
                                      "area": circle, **wording}, expect=201)
    path = f"/warnings/{warning['id']}"
    walk.post(f"{path}/revise", {**wording, "reason": "the hotline's number"})
    second = {"user": "dispatcher-2"}
    walk.post(f"{path}/approve", {"note": "checked"}, **second)
    walk.post(f"{path}/issue", {})
    walk.post(f"{path}/update", {**wording, "reason": "spreading"})
    walk.post(f"{path}/discard", {"reason": "not spreading after all"})
    lon, lat = IN_TOWN["coordinates"]
    wider = {"type": "Polygon", "coordinates": [[
        [lon - 0.01, lat - 0.01], [lon + 0.01, lat - 0.01], [lon + 0.01, lat + 0.01],
        [lon - 0.01, lat + 0.01], [lon - 0.01, lat - 0.01]]]}
    walk.post(f"{path}/update", {**wording, "reason": "spreading",
                                 "area": {"polygons": [wider]}})
    walk.post(f"{path}/approve", {}, **second)
    walk.post(f"{path}/issue", {}, **second)
    walk.api.settle()
    walk.get("/warnings", params={"status": "issued"})
    walk.get("/warnings", role="department-user", dept="water")
    walk.get(path)
    walk.get(f"{path}/notices")
    walk.get(f"{path}/history")
    walk.post(f"{path}/cancel", {"reason": "leak stopped"})
    cap_alerts = walk.app.state.feeds.cap_alerts
    while cap_alerts.follow_round():
        pass
    alerts = walk.get(f"/cap/warnings/{warning['id']}")
    assert [a["msg_type"] for a in alerts["data"]] == ["Alert", "Update", "Cancel"]
    walk.get(f"/cap/warnings/{warning['id']}/3.xml")
    walk.get(f"/cap/alerts/{alerts['data'][0]['identifier']}.xml", role=None)
    walk.get("/cap/alerts.atom", role=None)


def _exercises(walk: Walk) -> None:
    """A planner checks a scenario file (a broken one refused by line) and an exercise
    planned in this system is read and rated by an evaluator, then ended."""
    from cityops.domain.actors import Actor, Role
    from cityops.domain.commands import CommandContext
    from cityops.domain.exercises.commands import PlanExercise
    from cityops.exercises import shipped_scenarios

    text = shipped_scenarios()["typhoon.yaml"]
    planner = {"role": "planner"}
    walk.get("/scenarios", **planner)
    walk.get("/scenarios", expect=403, role="dispatcher")
    walk.post("/scenarios/validate", {"scenario": text}, **planner)
    walk.post("/scenarios/validate", {"scenario": text.replace("E0503", "E9999")},
              expect=422, **planner)
    exercise_id = walk.api.system.commands.handle(
        PlanExercise(scenario_text=text),
        CommandContext(actor=Actor("planner-1", Role.PLANNER))).subject
    walk.get("/exercises", **planner)
    walk.get(f"/exercises/{exercise_id}", **planner)
    walk.post(f"/exercises/{exercise_id}/ratings",
              {"objective_id": "verify-typhoon", "rating": "U",
               "observations": "Nobody verified the report"}, **planner)
    walk.post(f"/exercises/{exercise_id}/end", {"note": "hot wash"}, **planner)


def _close_incident(walk: Walk, incident_id: str) -> None:
    path = f"/incidents/{incident_id}"
    walk.post(f"{path}/contain", {"note": "contained"})
    walk.post(f"{path}/flare-up", {"reason": "wind"})
    walk.post(f"{path}/contain", {"note": "contained again"})
    walk.post(f"{path}/close", {"note": "out"})
    walk.post(f"{path}/review", {"summary": "Went well", "findings": [
        {"aspect": "coordination", "text": "Radio gaps", "recommendation": "New radios"}]},
        role="planner")
    walk.get(path)
    walk.get(path, role="department-user", dept="water")  # the review withheld
    walk.get(f"{path}/history")
    dismissed = walk.post("/incidents", {
        "category": "accident-disaster", "incident_type": "fire", "title": "False alarm",
        "location": IN_TOWN}, expect=201)
    walk.post(f"/incidents/{dismissed['id']}/dismiss", {"reason": "burning leaves"})
    walk.api.settle()
    walk.get("/incidents", params={"level": ["III", "IV"]})
    walk.get("/plans")


def _reviews(walk: Walk, incident_id: str) -> None:
    """The after-action review of the closed incident and of a period: report, record,
    follow-up, files."""
    walk.get(f"/reviews/incidents/{incident_id}", role="planner")
    walk.get(f"/reviews/incidents/{incident_id}/report.csv", params={"table": "tasks"})
    walk.get(f"/reviews/incidents/{incident_id}/report.pdf", role="leader")
    review = walk.post("/reviews", {"title": "The review", "incident_id": incident_id},
                       role="planner", expect=201)
    path = f"/reviews/{review['id']}"
    review = walk.post(f"{path}/findings", {"text": "Radio gaps", "aspect": "coordination"},
                       role="planner")
    finding = review["findings"][0]["id"]
    walk.post(f"{path}/findings", {"text": "Quick engines", "aspect": "response-time",
                                   "kind": "strength", "department": "fire"}, role="planner")
    walk.post(f"{path}/findings/{finding}/withdraw", {"reason": "a duplicate"},
              role="planner")
    items = [walk.post(f"{path}/improvements", {
        "action": action, "department": "fire", "due": _in(30)}, role="planner")[
        "improvements"][-1]["id"] for action in ("New radios", "Radio drill", "Old plan")]
    walk.post(f"{path}/summary", {"summary": "Went well"}, role="planner")
    walk.post(f"{path}/conclude", role="planner")
    for item in items[:2]:
        walk.post(f"{path}/improvements/{item}/done", {"note": "done"}, role="planner")
    walk.post(f"{path}/improvements/{items[0]}/verify", {
        "drill_id": "d-1", "drill_review_id": str(uuid4())}, role="planner")
    walk.post(f"{path}/improvements/{items[1]}/reopen", {"reason": "not fixed"},
              role="planner")
    walk.post(f"{path}/improvements/{items[2]}/drop", {"reason": "overtaken"},
              role="planner")
    walk.get("/reviews", role="leader")
    walk.get("/reviews/improvements", params={"status": ["open", "done"]})
    walk.get(path)
    walk.get(f"{path}/report")
    walk.get(f"{path}/report.csv", params={"table": "improvements"})
    walk.get(f"{path}/report.pdf")
    walk.api.settle()
    walk.get("/reviews/period", params={"start": _in(-1), "end": _in(1)})
    walk.get("/reviews/period/report.csv", params={"table": "incidents"})
    walk.get("/reviews/period/report.pdf", role="planner")
    walk.call("GET", "/after-action-review", role=None, params={"incident": incident_id})


def _maps(walk: Walk, incident_id: str) -> None:
    walk.get("/spatial/layers")
    walk.get("/spatial/incidents/features", params={"limit": 5})
    walk.post("/spatial/incidents/within", {"geometry": {"type": "Polygon", "coordinates": [[
        [118.7, 32.0], [118.9, 32.0], [118.9, 32.1], [118.7, 32.0]]]}})
    walk.get("/spatial/resources/radius", params={"point": "118.80,32.05", "radius_m": 5000})
    walk.get("/spatial/resources/nearest", params={"point": "118.80,32.05", "n": 3})
    walk.get(f"/spatial/incidents/{incident_id}/hazard-sources", params={"radius_m": 3000})
    walk.get("/ogc")
    walk.get("/ogc/conformance")
    walk.get("/ogc/collections")
    walk.get("/ogc/collections/incidents")
    features = walk.get("/ogc/collections/incidents/items", params={"limit": 1})
    walk.get(f"/ogc/collections/incidents/items/{features['features'][0]['id']}")
    walk.get("/ogc/api")
    for name in ("incidents.geojson", "incidents.csv", "incidents.gpkg"):
        walk.get(f"/exports/{name}")
    walk.get("/search", params={"q": "fire"})
    walk.get("/search/places", params={"q": "road"})


def _statistics_and_system(walk: Walk) -> None:
    for path in ("key-figures", "areas", "departments", "incidents", "hotline",
                 "response-times"):
        walk.get(f"/statistics/{path}", role="leader")
    walk.get("/catalogue")
    walk.get("/clock", role=None)
    span = walk.get("/time-travel")
    walk.get("/grid-cases", params={"as_of": span["now"], "limit": 5})
    walk.get("/statistics/key-figures", params={"as_of": span["now"]}, role="leader")
    # The drill room: a planner starts a drill of the last hour and steers it to its end.
    now = datetime.now(UTC)
    window = {"window_from": (now - timedelta(hours=1)).isoformat(),
              "window_to": now.isoformat()}
    drill = walk.post("/drills", {"title": "Conformance drill", **window, "speed": 1},
                      role="planner", expect=201)
    path = f"/drills/{drill['id']}"
    walk.get("/drills", role="planner")
    walk.get("/drills/ready", role="planner")
    walk.get(path, role="planner")
    walk.post(f"{path}/pause", role="planner")
    walk.post(f"{path}/speed", {"speed": 20}, role="planner")
    walk.post(f"{path}/resume", role="planner")
    walk.post(f"{path}/participants", {"users": ["dispatcher"]}, role="planner")
    walk.post(f"{path}/jump", {"to": window["window_to"]}, role="planner")
    walk.post(f"{path}/finish", role="planner")
    walk.call("DELETE", path, role="planner")
    walk.get("/drill-room", role=None)
    walk.get("/health", role=None)
    walk.get("/metrics", role=None)
    walk.call("GET", "/", role=None, expect=307)
    walk.get("/dashboard", role=None)
    walk.get("/login", role=None)
    user = walk.api.user("inspector", user="conformance-pw")
    walk.post("/auth/login", {"username": user, "password": Api.PASSWORD}, role=None)
    walk.get("/auth/me", role="inspector", user=user)
    walk.post("/auth/password", {"current_password": Api.PASSWORD,
                                 "new_password": "another-password-2"},
              role="inspector", user=user)


def _subscriptions(walk: Walk) -> None:
    water = {"role": "department-user", "dept": "water"}
    walk.get("/subscriptions/catalogue", **water)
    made = walk.post("/subscriptions", {
        "name": "Fires", "filter": {"stream": "incidents", "categories": ["accident-disaster"],
                                    "area": {"bbox": [118.7, 32.0, 118.9, 32.1]}},
        "delivery": {"kind": "webhook", "url": "https://water.example.org/hook"}},
        expect=201, **water)
    path = f"/subscriptions/{made['id']}"
    walk.call("PUT", path, {"name": "All fires", "filter": {"stream": "incidents"},
                            "triggers": ["created", "closed"], "delivery": {"kind": "kafka"},
                            "note": "kafka now"}, **water)
    walk.post(f"{path}/pause", {"reason": "maintenance"}, **water)
    walk.post(f"{path}/resume", {"note": "back"}, **water)
    walk.get(path, **water)
    walk.get(f"{path}/history", **water)
    delivery_id = _dead_letter(walk, made["id"])
    walk.get(f"{path}/deliveries", **water)
    walk.post(f"{path}/deliveries/{delivery_id}/redeliver", {}, **water)
    walk.get("/subscriptions", **water)
    walk.call("DELETE", path, params={"reason": "no longer needed"}, **water)


def _dead_letter(walk: Walk, subscription_id: str) -> str:
    """A webhook delivery that ran out of attempts (the outbox's own rows, as the delivery
    loop leaves them), to be listed and redelivered."""
    delivery_id = str(uuid4())
    feeds = walk.app.state.feeds
    with feeds.delivery_log.store.transaction() as txn:
        txn.execute(
            "INSERT INTO feed_webhook_deliveries (delivery_id, subscription_id, department, "
            "event_id, event_type, stream, aggregate_id, position, body, state, attempts, "
            "retry_from, next_attempt_at, lease_until, created_at, finished_at, last_status, "
            "last_error) VALUES (%s, %s, 'water', %s, 'Reported', 'incidents', %s, 1, '{}', "
            "'dead-lettered', 1, 0, 0, NULL, 1.5, 2.5, 500, 'server error')",
            (delivery_id, subscription_id, str(uuid4()), str(uuid4())))
        txn.execute(
            "INSERT INTO feed_webhook_attempts (delivery_id, attempt, url, started_at, "
            "duration_ms, status_code, error, outcome) VALUES (%s, 1, "
            "'https://water.example.org/hook', 2.0, 12.5, 500, NULL, 'failed')",
            (delivery_id,))
    return delivery_id


def _open311(walk: Walk) -> None:
    issued = IssueApiKey.new("Conformance app")
    walk.api.system.accounts.handle(issued, CommandContext(actor=ADMIN))
    key = issued.key
    for fmt in ("json", "xml"):
        walk.get(f"/open311/discovery.{fmt}", role=None)
        walk.get(f"/open311/v2/services.{fmt}", role=None)
        walk.get(f"/open311/v2/services/C0105.{fmt}", role=None)
        fields = {"api_key": key, "service_code": "C0105", "lat": "32.05", "long": "118.80",
                  "description": f"The lamp at the corner is out ({fmt})"}
        posted = walk.call("POST", f"/open311/v2/requests.{fmt}", role=None, expect=201,
                           data=fields)
        walk.call("POST", f"/open311/v2/requests.{fmt}", role=None, expect=200, data=fields)
        if fmt == "json":
            answer = posted.json()[0]
            walk.api.settle()
            walk.get(f"/open311/v2/tokens/{answer['token']}.json", role=None)
            walk.get(f"/open311/v2/requests/{answer['service_request_id']}.json", role=None)
            walk.get("/open311/v2/requests.json", role=None)
            walk.get("/open311/v2/requests.xml", role=None)


def test_every_operation_answers_as_its_document_says(module_api: Api) -> None:
    """A walk through the whole API as its users: every operation of the published document
    answers at least once with a success, and every answer (successes, and the refusals on
    the way) is valid against the document: status declared, content type declared, body
    valid against the schema (which admits no undeclared field). An operation the walk does
    not reach fails the test, so a new route needs its place here."""
    module_api.system.accounts.hasher = TEST_HASHER
    walk = Walk(module_api)
    case_id = _grid_cases(walk)
    incident_id, _ = _plans_and_incidents(walk, case_id)
    _resources(walk, incident_id)
    _hazards(walk)
    _hotline(walk, incident_id)
    _warnings(walk, incident_id)
    _exercises(walk)
    _maps(walk, incident_id)
    _close_incident(walk, incident_id)
    _reviews(walk, incident_id)
    _subscriptions(walk)
    _open311(walk)
    _statistics_and_system(walk)
    document = module_api.client.get("/openapi.json").json()
    operations = {(method.upper(), path) for path, methods in document["paths"].items()
                  for method in methods}
    missing = operations - walk.succeeded - set(NOT_ANSWERED_HERE)
    assert not missing, f"operations no request of the walk answered: {sorted(missing)}"
