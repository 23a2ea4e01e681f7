"""The drill screens in Chromium: a planner starts a drill from the drill room (the window's
progress shown from the server), a dispatcher invited to it switches the dashboard into the
drill and every screen says DRILL, as does the field page of an invited inspector; the
dashboard in the live city shows no banner."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

Server = Any
Screens = Any


def test_a_planner_starts_a_drill_and_a_participant_works_in_it_marked_drill(
        server: Server, screens: Screens, screenshots: Path) -> None:
    case = server.report_case("dumping before the drill")
    room = screens.login("planner-p", "/drill-room")
    now = datetime.now(UTC)
    room.testid("start-from").fill((now - timedelta(hours=1)).isoformat())
    room.testid("start-to").fill(now.isoformat())
    room.testid("start-speed").select_option("max")
    room.testid("start-participants").fill(f"disp-a, {server.inspector}")
    room.testid("start-submit").click()
    expect(room.testid("start-outcome")).to_contain_text("Started")
    row = room.page.locator("[data-testid=drill-row]").first
    expect(row.get_by_test_id("drill-state")).to_contain_text("window replayed")
    drill_id = row.get_attribute("data-drill")
    assert int(row.get_by_test_id("drill-replayed").inner_text()) >= 1
    room.page.screenshot(path=str(screenshots / "drill-room.png"), full_page=True)

    # The dispatcher's dashboard: live first (no banner), then switched into the drill.
    desk = screens.login("disp-a")
    expect(desk.testid("drill-banner")).to_have_count(0)
    desk.testid("drill-select").select_option(drill_id)
    desk.page.locator("body[data-ready=true]").wait_for()
    expect(desk.testid("drill-banner")).to_contain_text("DRILL")
    expect(desk.testid("drill-banner")).to_contain_text("not live data")
    desk.page.locator("[data-testid=live-status][data-state=live]").wait_for()
    # What the dashboard asks goes to the drill: the drill's answers say so.
    with desk.page.expect_response(lambda r: f"/grid-cases/{case['id']}" in r.url) as answer:
        desk.page.evaluate(
            "async (id) => { const m = await import('/static/common/api.js');"
            " return m.request('GET', `/grid-cases/${id}`); }", case["id"])
    assert answer.value.headers.get("x-cityops-drill") == drill_id
    desk.page.screenshot(path=str(screenshots / "dashboard-in-drill.png"))

    # Pausing from the drill room shows on the room's screen.
    room.page.locator(f"[data-drill='{drill_id}'] [data-testid=drill-pause]").click()
    expect(room.page.locator(f"[data-drill='{drill_id}'] [data-testid=drill-state]")
           ).to_contain_text("paused")

    # The inspector's field page, switched into the drill, says DRILL too, and its calls go
    # to the drill.
    field = screens.login(server.inspector, "/field")
    expect(field.testid("drill-banner")).to_have_count(0)
    field.testid("drill-select").select_option(drill_id)
    expect(field.testid("drill-banner")).to_contain_text("DRILL")
    expect(field.testid("drill-banner")).to_contain_text("not live data")
    with field.page.expect_response(lambda r: "/grid-cases" in r.url) as answer:
        field.page.evaluate(
            "async () => { const m = await import('/static/common/api.js');"
            " return m.request('GET', '/grid-cases'); }")
    assert answer.value.headers.get("x-cityops-drill") == drill_id
    field.page.screenshot(path=str(screenshots / "field-in-drill.png"))

def test_a_drill_with_a_scenario_shows_its_objectives_live_and_evaluators_rate_them(
        server: Server, screens: Screens, screenshots: Path) -> None:
    room = screens.login("planner-p", "/drill-room")
    now = datetime.now(UTC)
    room.testid("start-from").fill((now - timedelta(hours=1)).isoformat())
    room.testid("start-to").fill(now.isoformat())
    room.testid("start-speed").select_option("max")
    room.testid("start-scenario").select_option("chemical-leak")
    room.testid("start-submit").click()
    expect(room.testid("start-outcome")).to_contain_text("Started")
    objectives = room.page.locator("[data-testid=drill-objectives]").first
    expect(objectives.locator("[data-testid=objective]")).to_have_count(5)
    first_engine = objectives.locator("[data-objective=first-engine]")
    expect(first_engine.get_by_test_id("objective-status")).to_have_text(
        re.compile("met|missed|pending"))
    expect(first_engine.get_by_test_id("objective-rating")).to_have_text("not rated")

    first_engine.get_by_test_id("objective-rate").click()
    dialog = room.testid("rate-dialog")
    expect(dialog.get_by_test_id("rate-objective")).not_to_be_empty()
    dialog.get_by_test_id("rate-rating").select_option("M")
    dialog.get_by_test_id("rate-observations").fill("No engine reached the plant in time")
    dialog.get_by_test_id("rate-submit").click()
    expect(first_engine.get_by_test_id("objective-rating")).to_contain_text(
        "M (performed with major challenges) by planner-p: No engine reached the plant")
    room.page.screenshot(path=str(screenshots / "drill-room-objectives.png"), full_page=True)


def test_a_planner_starts_a_drill_with_their_own_scenario_file(
        server: Server, screens: Screens, screenshots: Path, tmp_path: Path) -> None:
    from cityops.exercises import shipped_scenarios

    own = shipped_scenarios()["chemical-leak.yaml"]
    broken = tmp_path / "broken-leak.yaml"
    broken.write_text(own.replace("category: C0106", "category: E9999"), "utf-8")
    mine = tmp_path / "our-leak.yaml"
    mine.write_text(own, "utf-8")
    room = screens.login("planner-p", "/drill-room")
    now = datetime.now(UTC)
    room.testid("start-from").fill((now - timedelta(hours=1)).isoformat())
    room.testid("start-to").fill(now.isoformat())
    room.testid("start-speed").select_option("max")
    room.testid("start-scenario-file").set_input_files(str(broken))
    room.testid("start-submit").click()
    expect(room.testid("start-outcome")).to_contain_text("line ")
    expect(room.testid("start-outcome")).to_contain_text("E9999")
    room.testid("start-scenario-file").set_input_files(str(mine))
    room.testid("start-submit").click()
    expect(room.testid("start-outcome")).to_contain_text("Started")
    # Other tests of this module may have started drills on the same server.
    objectives = room.page.locator("[data-testid=drill-objectives]",
                                   has_text="Scenario our-leak")
    expect(objectives.locator("[data-testid=objective]")).to_have_count(5)
    room.page.screenshot(path=str(screenshots / "drill-room-own-scenario.png"), full_page=True)
