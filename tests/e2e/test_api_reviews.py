"""After-action reviews over HTTP, on the warehouse fire of tests/review_script.py: the
review's JSON (typed), its CSV tables and its PDF report (opened with a PDF library: it
holds the timeline, Chinese names included), the planners' findings and improvement plan,
who may read and write them, and bad input answered 422/404 saying what is wrong."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pypdf import PdfReader

from cityops.bootstrap import build_system
from cityops.command_center.app import create_app
from cityops.settings import Settings
from tests.e2e.conftest import TEST_HASHER, Api
from tests.review_script import TITLE, ManualClock, WarehouseFire, play_warehouse_fire

MIN = 60.0


@pytest.fixture
def fire(tmp_path: Path, demo_city: Any) -> Iterator[tuple[Api, WarehouseFire]]:
    clock = ManualClock()
    system = build_system(Settings(data_dir=tmp_path), clock=clock, city=demo_city)
    system.accounts.hasher = TEST_HASHER
    played = play_warehouse_fire(system, clock)
    with TestClient(create_app(system)) as client:
        yield Api(client, system), played


def download(api: Api, path: str, role: str = "planner", **params: Any) -> Any:
    response = api.client.get(path, params=params, headers=api.headers(role))
    assert response.status_code == 200, response.text
    return response


def test_an_incidents_review_answers_its_report_as_json(fire: Any) -> None:
    api, played = fire
    doc = api.get(f"/reviews/incidents/{played.incident_id}", role="planner")
    assert (doc["drill_id"], doc["review"]) == (None, None)
    report = doc["report"]
    assert (report["title"], report["level"], report["status"]) == (TITLE, "II", "closed")
    assert [(m["milestone"], m["after_report_s"], m["target_s"], m["verdict"])
            for m in report["milestones"]] == [
        ("verified", 4 * MIN, 5 * MIN, "met"), ("dispatched", 7 * MIN, 6 * MIN, "missed"),
        ("on_scene", 16 * MIN, 12 * MIN, "missed"), ("contained", 60 * MIN, 120 * MIN, "met"),
        ("closed", 120 * MIN, 720 * MIN, "met")]
    assert [(r["call_sign"], r["response_s"]) for r in report["resources"]] == [
        ("ENGINE 1", 16 * MIN), ("ENGINE 2", 18 * MIN)]
    assert [(t["department"], t["verdict"], t["late_by_s"])
            for t in report["late_or_never"]] == [("police", "late", 10 * MIN),
                                                   ("health", "never", 45 * MIN)]
    assert len(report["timeline"]) == 24
    assert report["timeline"][0]["actor"] == "hot-wu"
    assert report["timeline"][0]["role"] == "hotline-operator"
    # A leader reads it too; the same incident's review answers the same figures.
    assert api.get(f"/reviews/incidents/{played.incident_id}", role="leader")["report"][
        "milestones"] == report["milestones"]


def test_findings_and_improvements_are_written_and_followed_up_over_http(fire: Any) -> None:
    api, played = fire
    review = api.post("/reviews", {"title": "Warehouse fire review",
                                   "incident_id": str(played.incident_id)},
                      role="planner", expect=201)
    path = f"/reviews/{review['id']}"
    review = api.post(f"{path}/findings", {
        "text": "警戒线晚了 10 分钟: the cordon came late", "aspect": "coordination",
        "department": "police"}, role="planner")
    finding = review["findings"][0]
    assert (finding["kind"], finding["recorded_by"]) == ("area-for-improvement", "planner-1")
    review = api.post(f"{path}/improvements", {
        "action": "Pre-assign a cordon team", "department": "police", "assignee": "Qian",
        "due": "2026-04-10T00:00:00Z", "finding_id": finding["id"]}, role="planner")
    item = review["improvements"][0]
    assert (item["status"], item["overdue"], review["open_improvements"]) == ("open", False, 1)
    review = api.post(f"{path}/improvements/{item['id']}/done", {"note": "named"},
                      role="planner")
    assert review["improvements"][0]["status"] == "done"
    review = api.post(f"{path}/improvements/{item['id']}/verify", {
        "drill_id": "d-2026-05", "drill_review_id": "5d6e7f80-1a2b-4c3d-8e9f-0a1b2c3d4e5f",
        "note": "cordon in 8 min"}, role="planner")
    assert review["improvements"][0]["verified_in_drill"] == "d-2026-05"
    # The incident's review now carries the record; the list has it.
    doc = api.get(f"/reviews/incidents/{played.incident_id}", role="dispatcher")
    assert doc["review"]["id"] == review["id"]
    assert api.get(f"{path}/report", role="leader")["review"]["id"] == review["id"]
    assert [r["id"] for r in api.get("/reviews", role="leader")["data"]] == [review["id"]]
    # The follow-up across reviews: by state, department, overdue.
    verified = api.get("/reviews/improvements", role="leader", status="verified")
    assert [(i["action"], i["review_id"], i["review_title"]) for i in verified["data"]] == [
        ("Pre-assign a cordon team", review["id"], "Warehouse fire review")]
    assert api.get("/reviews/improvements", role="planner", status="open")["count"] == 0
    assert api.get("/reviews/improvements", role="planner", department="fire")["count"] == 0
    assert api.get("/reviews/improvements", role="planner", overdue="true")["count"] == 0
    refused = api.get("/reviews/improvements", role="planner", status="late", expect=422)
    assert refused["problems"][0]["field"] == "query.status.0"
    assert "'open', 'done', 'verified' or 'dropped'" in refused["detail"]


def test_the_csv_tables_hold_the_reports_rows(fire: Any) -> None:
    api, played = fire
    base = f"/reviews/incidents/{played.incident_id}/report.csv"
    response = download(api, base, table="tasks")
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [(r["department"], r["verdict"], r["late_by_s"]) for r in rows] == [
        ("fire", "on-time", ""), ("police", "late", "600.0"), ("health", "never", "2700.0")]
    timeline = list(csv.DictReader(io.StringIO(download(api, base).text)))
    assert len(timeline) == 24 and timeline[0]["actor"] == "hot-wu"
    assert TITLE in timeline[0]["what"]
    resources = list(csv.DictReader(io.StringIO(download(api, base, table="resources").text)))
    assert [(r["call_sign"], r["queue_s"], r["turnout_s"], r["travel_s"]) for r in resources] \
        == [("ENGINE 1", "420.0", "60.0", "480.0"), ("ENGINE 2", "480.0", "60.0", "540.0")]


def test_the_pdf_report_opens_and_holds_the_timeline_and_the_plan(fire: Any) -> None:
    api, played = fire
    review = api.post("/reviews", {"title": "Warehouse fire review",
                                   "incident_id": str(played.incident_id)},
                      role="planner", expect=201)
    api.post(f"/reviews/{review['id']}/improvements", {
        "action": "Pre-assign a cordon team", "department": "police",
        "due": "2026-04-10T00:00:00Z"}, role="planner")
    for path in (f"/reviews/incidents/{played.incident_id}/report.pdf",
                 f"/reviews/{review['id']}/report.pdf"):
        response = download(api, path)
        assert response.headers["content-type"] == "application/pdf"
        pdf = PdfReader(io.BytesIO(response.content))
        text = "\n".join(page.extract_text() for page in pdf.pages)
        assert "After-action review" in text
        assert "仓库火灾" in text, "the Chinese title must render (an embedded CJK font)"
        # The timeline: who did what, in the city's time (Asia/Shanghai: UTC+8).
        assert "hot-wu (hotline-operator)" in text
        assert "2026-03-10 09:04:00" in text and "verified as accident-disaster/fire" in text
        assert "ENGINE 1 (fire-engine, fire) on scene" in text
        assert "Cordon off the street" in text and "Pre-assign a cordon team" in text
        fonts = {str(f["/BaseFont"]) for page in pdf.pages
                 for f in page["/Resources"]["/Font"].values()}
        assert any("WenQuanYi" in f or "Micro" in f or "Hei" in f for f in fonts), fonts


def test_a_period_review_covers_the_incidents_reported_in_it(fire: Any) -> None:
    api, played = fire
    api.settle()
    doc = api.get("/reviews/period", role="planner", start="2026-03-10T00:00:00Z",
                  end="2026-03-11T00:00:00Z")
    report = doc["report"]
    assert [i["incident_id"] for i in report["incidents"]] == [str(played.incident_id)]
    on_scene = next(m for m in report["milestones"] if m["milestone"] == "on_scene")
    assert (on_scene["count"], on_scene["p50_s"], on_scene["missed"]) == (1, 16 * MIN, 1)
    empty = api.get("/reviews/period", role="planner", start="2026-03-11T00:00:00Z",
                    end="2026-03-12T00:00:00Z")["report"]
    assert empty["incidents"] == [] and empty["timeline"] == []
    assert api.get("/reviews/period", role="planner")["report"]["incidents"] == \
        report["incidents"]
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(
        download(api, "/reviews/period/report.pdf").content)).pages)
    assert "仓库火灾" in text and "hot-wu (hotline-operator)" in text
    rows = list(csv.DictReader(io.StringIO(
        download(api, "/reviews/period/report.csv", table="incidents").text)))
    assert [r["title"] for r in rows] == [TITLE]


def test_who_may_read_and_write_reviews(fire: Any) -> None:
    api, played = fire
    incident = f"/reviews/incidents/{played.incident_id}"
    for role, dept in (("planner", None), ("dispatcher", None), ("leader", None),
                       ("admin", None), ("department-user", "emergency-management")):
        api.get("/reviews/period", role=role, dept=dept)
    # Not shared with them (the sharing catalogue's after-action-review condition).
    for role, dept in (("inspector", None), ("hotline-operator", None),
                       ("department-user", "water")):
        body = api.get("/reviews/period", role=role, dept=dept, expect=403)
        assert body["error"] == "not-permitted" and "after-action" in body["detail"]
    assert api.get(incident, role="inspector", expect=403)["error"] == "not-permitted"
    # A department user outside the incident's scope does not learn it exists.
    api.get(incident, role="department-user", dept="water", expect=404)
    # Only planners (and the centre) write: a leader reads only.
    body = api.post("/reviews", {"title": "x", "incident_id": str(played.incident_id)},
                    role="leader", expect=403)
    assert "review.open" in body["detail"]
    api.post("/reviews", {"title": "x", "incident_id": str(played.incident_id)},
             role="department-user", dept="fire", expect=403)
    api.get("/reviews", role=None, expect=401)


def test_bad_input_is_refused_saying_what_is_wrong(fire: Any) -> None:
    api, played = fire
    unknown = "0b8f5c1e-6a5e-4c39-9d0e-7f3a8b1c2d4e"
    body = api.get(f"/reviews/incidents/{unknown}", role="planner", expect=404)
    assert body == {"error": "not-found", "detail": f"incident {unknown} does not exist"}
    assert "review" in api.get(f"/reviews/{unknown}", role="planner", expect=404)["detail"]
    assert api.get("/reviews/period", role="planner", start="2026-03-10T00:00:00",
                   end="2026-03-11T00:00:00Z", expect=422)["detail"] == (
        "start '2026-03-10T00:00:00' has no time zone: add Z or an offset")
    assert "not an RFC 3339" in api.get("/reviews/period", role="planner", start="yesterday",
                                        end="2026-03-11T00:00:00Z", expect=422)["detail"]
    assert "start and end, or neither" in api.get(
        "/reviews/period", role="planner", start="2026-03-10T00:00:00Z", expect=422)["detail"]
    assert "ends" in api.get("/reviews/period", role="planner", start="2026-03-11T00:00:00Z",
                             end="2026-03-10T00:00:00Z", expect=422)["detail"]
    bad_table = api.get(f"/reviews/incidents/{played.incident_id}/report.csv",
                        role="planner", table="everything", expect=422)
    assert "table" in str(bad_table)
    assert api.get(f"/reviews/incidents/{played.incident_id}", role="planner",
                   colour="red", expect=422)["error"]
    review = api.post("/reviews", {"title": "Warehouse fire review",
                                   "incident_id": str(played.incident_id)},
                      role="planner", expect=201)
    path = f"/reviews/{review['id']}"
    assert "already opened" in api.post("/reviews", {
        "title": "again", "incident_id": str(played.incident_id)}, role="planner",
        expect=409)["detail"]
    assert api.post("/reviews", {"title": "nothing", "incident_id": unknown},
                    role="planner", expect=404)["error"] == "not-found"
    assert "give no period" in api.post("/reviews", {
        "title": "both", "incident_id": str(played.incident_id),
        "start": "2026-03-10T00:00:00Z", "end": "2026-03-11T00:00:00Z"},
        role="planner", expect=422)["detail"]
    assert "needs its start and its end" in api.post(
        "/reviews", {"title": "half", "start": "2026-03-10T00:00:00Z"}, role="planner",
        expect=422)["detail"]
    assert "unknown department 'nowhere'" in api.post(f"{path}/improvements", {
        "action": "x", "department": "nowhere", "due": "2026-04-10T00:00:00Z"},
        role="planner", expect=422)["detail"]
    assert "due after it is planned" in api.post(f"{path}/improvements", {
        "action": "x", "department": "police", "due": "2026-03-01T00:00:00Z"},
        role="planner", expect=422)["detail"]
    assert api.post(f"{path}/findings", {"text": "x", "aspect": "luck"}, role="planner",
                    expect=422)["error"] == "invalid-request"
    missing = api.post(f"{path}/improvements/{unknown}/done", {}, role="planner",
                       expect=404)
    assert missing["detail"] == f"improvement item {unknown} does not exist"
    assert "no summary" in api.post(f"{path}/conclude", {}, role="planner",
                                    expect=409)["detail"]
