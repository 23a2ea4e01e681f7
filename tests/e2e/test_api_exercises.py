"""Scenarios and exercises over HTTP: a planner checks a scenario file (422 `invalid-scenario`
listing every problem by line, nothing started), reads an exercise with each objective
measured live beside its ratings, and evaluators rate objectives (P / S / M / U with
observations); the players in the centre may neither check nor rate."""

from __future__ import annotations

from typing import Any

from cityops.domain.actors import Actor, Role
from cityops.domain.commands import CommandContext
from cityops.domain.exercises.commands import PlanExercise
from cityops.exercises import shipped_scenarios

from .conftest import Api

PLANNER = Actor("planner-sun", Role.PLANNER)


def test_a_valid_scenario_is_checked_and_described(api: Api) -> None:
    text = shipped_scenarios()["chemical-leak.yaml"]
    body = api.post("/scenarios/validate", {"scenario": text}, role="planner")
    assert (body["valid"], body["title"], body["version"], body["start"]) == (
        True, "Chlorine leak at the Jinhe Fine Chemicals Plant", 1, "empty")
    assert [i["id"] for i in body["injects"]] == [
        "gas-warning", "gas-alarm", "neighbour-call", "leak-report", "engine-breakdown",
        "dry-hydrant"]
    assert body["injects"][3]["actor"] == {"user_id": "jinhe-safety",
                                           "role": "department-user",
                                           "department": "emergency-management"}
    assert [(o["id"], o["within_s"]) for o in body["objectives"]] == [
        ("verify-leak", 600.0), ("activate-plan", 900.0), ("first-engine", 720.0),
        ("hazmat-team", 1200.0), ("tasks-acknowledged", 1800.0)]
    assert body["duration_s"] == 5400.0
    assert api.system.exercises.exercise_ids() == []  # checking starts nothing


def test_an_invalid_scenario_is_a_422_listing_every_problem_by_line(api: Api) -> None:
    text = shipped_scenarios()["typhoon.yaml"]
    broken = (text.replace("category: E0503", "category: E9999")
              .replace("at: 40m", "at: 20m")
              .replace("kind: tasks-acknowledged", "kind: telepathy")
              .replace("place: Southbank District", "place: [121.47, 31.23]"))
    lines = broken.splitlines()
    body = api.post("/scenarios/validate", {"scenario": broken}, role="planner", expect=422)
    assert body["error"] == "invalid-scenario"
    found = [(p["line"], p["message"].split(" (")[0]) for p in body["problems"]]
    assert [line for line, _ in found] == [
        lines.index("    kind: telepathy") + 1,
        lines.index("    category: E9999") + 1,
        lines.index("    place: [121.47, 31.23]") + 1,
        lines.index("    at: 20m") + 1,
    ]
    assert found[1][1] == "unknown grid-case category 'E9999'"
    assert found[2][1] == "inject 'typhoon-landfall''s place [121.47, 31.23] is outside the city"
    assert all(p["field"] == f"line {p['line']}" for p in body["problems"])
    assert body["detail"].startswith("the scenario is refused (4 problems): line ")
    bad_yaml = api.post("/scenarios/validate", {"scenario": "version: 1\ntitle: [x\n"},
                        role="planner", expect=422)
    assert bad_yaml["problems"][0]["line"] == 3


def test_only_planners_check_scenarios_and_the_body_is_checked(api: Api) -> None:
    text = shipped_scenarios()["typhoon.yaml"]
    refused = api.post("/scenarios/validate", {"scenario": text}, role="dispatcher",
                       expect=403)
    assert refused["error"] == "not-permitted"
    api.post("/scenarios/validate", {"scenario": text}, role=None, expect=401)
    missing = api.post("/scenarios/validate", {}, role="planner", expect=422)
    assert missing["error"] == "invalid-request"
    api.post("/scenarios/validate", {"scenario": text, "speed": 3}, role="planner",
             expect=422)


def plan(api: Api) -> str:
    outcome = api.system.commands.handle(
        PlanExercise(scenario_text=shipped_scenarios()["chemical-leak.yaml"],
                     drill_id="drill-1"), CommandContext(actor=PLANNER))
    return str(outcome.subject)


def test_an_exercise_shows_each_objective_measured_now_beside_its_ratings(api: Api) -> None:
    exercise_id = plan(api)
    body = api.get(f"/exercises/{exercise_id}", role="planner")
    assert (body["title"], body["status"], body["drill_id"]) == (
        "Chlorine leak at the Jinhe Fine Chemicals Plant", "running", "drill-1")
    assert [(o["id"], o["measure"]["status"], o["ratings"]) for o in body["objectives"]] == [
        ("verify-leak", "pending", []), ("activate-plan", "pending", []),
        ("first-engine", "pending", []), ("hazmat-team", "pending", []),
        ("tasks-acknowledged", "pending", [])]
    assert [i["delivery"] for i in body["injects"]] == [None] * 6
    listed = api.get("/exercises", role="leader")
    assert listed["count"] == 1 and listed["data"][0]["id"] == exercise_id


def test_evaluators_rate_objectives_and_players_may_not(api: Api) -> None:
    exercise_id = plan(api)
    rating: dict[str, Any] = {"objective_id": "first-engine", "rating": "S",
                              "observations": "Second engine sent after the breakdown"}
    body = api.post(f"/exercises/{exercise_id}/ratings", rating, role="planner",
                    user="evaluator-qian")
    [rated] = body["objectives"][2]["ratings"]
    assert (rated["rating"], rated["meaning"], rated["evaluator"]) == (
        "S", "performed with some challenges", "evaluator-qian")
    refused = api.post(f"/exercises/{exercise_id}/ratings", rating, role="dispatcher",
                       expect=403)
    assert refused["error"] == "not-permitted"
    unknown = api.post(f"/exercises/{exercise_id}/ratings",
                       {**rating, "objective_id": "speed"}, role="planner", expect=422)
    assert "has no objective 'speed'" in unknown["detail"]
    api.post(f"/exercises/{exercise_id}/ratings", {**rating, "rating": "A"}, role="planner",
             expect=422)
    api.post(f"/exercises/{exercise_id}/ratings", {**rating, "observations": ""},
             role="planner", expect=422)
    api.get("/exercises/6f1c9d2e-0000-4000-8000-000000000000", role="planner", expect=404)
    history = [e for e in api.system.exercises.events.get(api.system.exercises.exercise_ids()[0])]
    assert [type(e).__name__ for e in history] == ["Planned", "ObjectiveRated"]
    ended = api.post(f"/exercises/{exercise_id}/end", {"note": "hot wash"}, role="planner")
    assert ended["status"] == "ended" and ended["ended_at"] is not None


def test_the_review_of_the_exercise_shows_its_objectives_with_their_ratings(api: Api) -> None:
    """A drill's after-action review reads the objectives of the exercise played in it,
    measured from its events, each with the evaluators' latest rating."""
    exercise_id = plan(api)
    api.post(f"/exercises/{exercise_id}/ratings",
             {"objective_id": "first-engine", "rating": "M",
              "observations": "No engine reached the plant"}, role="planner")
    report = api.get("/reviews/period", role="planner")["report"]
    shown = {o["name"]: o for o in report["objectives"]}
    assert len(shown) == 5
    engine = next(o for name, o in shown.items() if "engine" in name.lower())
    assert (engine["target"], engine["verdict"], engine["measured"]) == (
        "12 min 00 s", "pending", None)
    assert engine["rating"] == "M: performed with major challenges"
    assert engine["observations"] == "No engine reached the plant"
    assert [o["rating"] for o in shown.values()].count(None) == 4


def test_planners_list_the_scenarios_a_drill_may_be_started_with(api: Api) -> None:
    listed = api.get("/scenarios", role="planner")
    assert [(s["name"], s["valid"]) for s in listed] == [("chemical-leak", True),
                                                         ("typhoon", True)]
    leak = listed[0]
    assert leak["title"] == "Chlorine leak at the Jinhe Fine Chemicals Plant"
    assert len(leak["objectives"]) == 5 and len(leak["injects"]) == 6
    # The players must not read their exercise's master scenario events list.
    refused = api.get("/scenarios", role="dispatcher", expect=403)
    assert refused["error"] == "not-permitted"
    api.get("/scenarios", role=None, expect=401)
