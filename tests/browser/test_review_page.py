"""The after-action review page in a real browser: a dispatcher opens it from the incident's
detail on the dashboard, sees the response measured from the events (charts, milestones,
tasks, the timeline with who did what), opens the review, records a finding and an
improvement, and downloads the PDF report; a leader reads the same page without the forms.
Screenshots of both."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

Server = Any
Screens = Any

FIRE = (118.806, 32.052)


def _chart_drawn(screen: Any, testid: str) -> bool:
    drawn: bool = screen.page.evaluate(
        "(id) => { const c = document.querySelector(`[data-testid=${id}]`);"
        " return !!(window.Chart && Chart.getChart(c)) && c.width > 0; }", testid)
    return drawn


def test_a_dispatcher_reviews_an_incident_from_the_dashboard_and_a_leader_reads_it(
        server: Server, screens: Screens, screenshots: Path) -> None:
    incident = server.post("disp-a", "/incidents", {
        "category": "accident-disaster", "incident_type": "fire",
        "title": "仓库火灾 Warehouse fire (browser test)", "source": "hotline",
        "location": {"type": "Point", "coordinates": list(FIRE)},
    })
    path = f"/incidents/{incident['id']}"
    server.post("disp-a", f"{path}/verify", {"level": "III"})
    server.post("disp-a", f"{path}/respond", {"level": "III"})
    server.post("disp-a", f"{path}/tasks", {
        "department": "urban-management", "description": "Clear the access road",
        "allowance_minutes": 30})

    dispatcher = screens.login("disp-a")
    dispatcher.testid("tab-incidents").click()
    dispatcher.page.locator(f"[data-testid=incident-card][data-id='{incident['id']}']").click()
    link = dispatcher.testid("review-link")
    expect(link).to_be_visible()
    link.click()
    dispatcher.page.wait_for_url(f"**/after-action-review?incident={incident['id']}")
    expect(dispatcher.testid("review-title")).to_contain_text("仓库火灾 Warehouse fire")
    expect(dispatcher.testid("review-status")).to_contain_text("Computed from the events")

    # The response goes on: the task is done, the incident contained and closed.
    doc = server.post("dept-um", f"{path}/tasks/{_task_id(server, path)}/complete",
                      {"result": "road clear"})
    assert doc["tasks"][0]["status"] == "done"
    server.post("disp-a", f"{path}/contain", {"note": "under control"})
    server.post("disp-a", f"{path}/close", {"note": "done"})
    dispatcher.page.reload()
    expect(dispatcher.testid("review-subtitle")).to_contain_text("closed")
    milestones = dispatcher.testid("milestones-table")
    expect(milestones.locator("tbody tr")).to_have_count(5)
    expect(milestones).to_contain_text("verified")
    entries = dispatcher.page.locator("[data-testid=timeline-entry]")
    expect(entries.first).to_contain_text("disp-a (dispatcher)")
    expect(entries.first).to_contain_text("reported: 仓库火灾")
    expect(dispatcher.page.locator("[data-testid=timeline-entry][data-event=TaskDone]")) \
        .to_contain_text("dept-um (department-user)")
    for chart in ("chart-milestones", "chart-resources", "chart-use"):
        assert _chart_drawn(dispatcher, chart), chart

    # The review: opened, a finding, an improvement.
    dispatcher.testid("open-review").click()
    expect(dispatcher.testid("review-state")).to_contain_text("open")
    form = dispatcher.testid("finding-form")
    form.get_by_test_id("finding-text").fill("The access road was blocked for 20 minutes")
    form.get_by_test_id("finding-aspect").select_option("coordination")
    form.get_by_test_id("finding-department").fill("urban-management")
    form.get_by_test_id("finding-submit").click()
    expect(dispatcher.testid("findings-table")).to_contain_text("access road was blocked")
    plan = dispatcher.testid("improvement-form")
    plan.get_by_test_id("improvement-action").fill("Keep fire access roads clear: weekly patrol")
    plan.get_by_test_id("improvement-department").fill("urban-management")
    plan.get_by_test_id("improvement-assignee").fill("dept-um")
    plan.get_by_test_id("improvement-due").fill("2099-12-31")
    plan.get_by_test_id("improvement-submit").click()
    expect(dispatcher.testid("improvements-table")).to_contain_text("weekly patrol")
    dispatcher.page.screenshot(path=str(screenshots / "review-dispatcher.png"), full_page=True)

    with dispatcher.page.expect_download() as download:
        dispatcher.testid("download-pdf").click()
    pdf = Path(download.value.path()).read_bytes()
    assert pdf.startswith(b"%PDF-")
    expect(dispatcher.testid("review-status")).to_contain_text("Downloaded")

    leader = screens.login("leader-l", f"/after-action-review?incident={incident['id']}")
    expect(leader.testid("findings-table")).to_contain_text("access road was blocked")
    expect(leader.testid("improvements-table")).to_contain_text("weekly patrol")
    expect(leader.testid("finding-form")).to_have_count(0)
    expect(leader.testid("improvement-form")).to_have_count(0)
    leader.page.screenshot(path=str(screenshots / "review-leader.png"), full_page=True)


def _task_id(server: Server, path: str) -> str:
    answer = httpx.get(f"{server.base_url}{path}", timeout=30,
                       headers={"Authorization": f"Bearer {server.token('disp-a')}"})
    answer.raise_for_status()
    task_id: str = answer.json()["tasks"][0]["id"]
    return task_id
