"""The warning desk in a real browser: a dispatcher drafts a public warning from an incident,
the dashboard refuses to let them approve it (two people), a second dispatcher approves and
issues it on their own screen, the map of both shows its area live, a department's screen
shows it once issued, and the public feed carries it; an update widens the area and a
cancellation takes it off the map. Screenshots of each screen."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import feedparser
import httpx
import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

Server = Any
Screens = Any

LEAK = (118.812, 32.046)
FEED_WAIT_S = 30


def _feed_entry(server: Server, identifier: str) -> Any:
    """The Atom feed's entry of the alert `identifier`, once the feed carries it."""
    deadline = time.monotonic() + FEED_WAIT_S
    while True:
        feed = httpx.get(f"{server.base_url}/cap/alerts.atom", timeout=30)
        assert feed.status_code == 200, feed.text
        assert feed.headers["content-type"].startswith("application/atom+xml")
        parsed = feedparser.parse(feed.content)
        assert not parsed.bozo, parsed.bozo_exception
        for entry in parsed.entries:
            if entry.id.endswith(f"/cap/alerts/{identifier}.xml"):
                return entry
        assert time.monotonic() < deadline, f"the Atom feed has no entry {identifier}"
        time.sleep(0.25)


def test_a_dispatcher_drafts_a_warning_from_an_incident_and_a_second_one_approves_it(
        server: Server, screens: Screens, screenshots: Path) -> None:
    incident = server.post("disp-a", "/incidents", {
        "category": "accident-disaster", "incident_type": "gas-leak",
        "title": "Gas smell in a residential block (browser test)", "warning": "orange",
        "location": {"type": "Point", "coordinates": list(LEAK)},
    })

    drafter = screens.login("disp-a")
    drafter.testid("tab-incidents").click()
    drafter.page.locator(f"[data-testid=incident-card][data-id='{incident['id']}']").click()
    drafter.testid("tab-warnings").click()
    form = drafter.testid("warning-form")
    expect(form.get_by_test_id("warning-incident")).to_have_value(incident["id"])
    expect(form.get_by_test_id("warning-headline-en")).to_have_value(
        "Gas smell in a residential block (browser test): keep away from the area")
    form.get_by_test_id("warning-radius").fill("1.5")
    form.get_by_test_id("warning-headline-en").fill("Gas leak: keep away from the block")
    form.get_by_test_id("warning-draft").click()
    expect(drafter.testid("warning-outcome")).to_have_attribute("data-state", "ok")
    card = drafter.page.locator("[data-testid=warning-card]", has_text="Gas leak: keep away")
    expect(card).to_have_attribute("data-status", "drafted")
    warning_id = card.get_attribute("data-id")
    assert warning_id
    # The drafter is offered no approval: a second person must approve.
    expect(card.get_by_test_id("warning-needs-second")).to_be_visible()
    expect(card.get_by_test_id("warning-approve")).to_have_count(0)
    # The draft's area is on the map (dashed), as the circle around the incident.
    area = drafter.page.locator(f"path.warning-area[data-warning-id='{warning_id}']")
    expect(area).to_have_count(1)
    expect(area).to_have_attribute("data-status", "drafted")
    drafter.page.screenshot(path=screenshots / "warnings-drafted.png")

    approver = screens.login("disp-b")
    approver.testid("tab-warnings").click()
    theirs = approver.page.locator(f"[data-testid=warning-card][data-id='{warning_id}']")
    theirs.get_by_test_id("warning-approve").click()
    expect(theirs).to_have_attribute("data-status", "approved")
    theirs.get_by_test_id("warning-issue").click()
    expect(theirs).to_have_attribute("data-status", "issued")
    expect(theirs).to_contain_text("approved by disp-b")
    expect(approver.page.locator(f"path.warning-area[data-warning-id='{warning_id}']")) \
        .to_have_attribute("data-status", "issued")
    # The drafter's screen follows live: issued, the area solid on the map.
    expect(card).to_have_attribute("data-status", "issued")
    expect(area).to_have_attribute("data-status", "issued")
    approver.page.screenshot(path=screenshots / "warnings-issued.png")

    # A department's screen shows the warning once issued, without any action.
    department = screens.login("dept-um")
    department.testid("tab-warnings").click()
    seen = department.page.locator(f"[data-testid=warning-card][data-id='{warning_id}']")
    expect(seen).to_have_attribute("data-status", "issued")
    expect(department.testid("warning-form")).to_be_hidden()
    expect(seen.get_by_test_id("warning-cancel")).to_have_count(0)
    department.page.screenshot(path=screenshots / "warnings-department.png")

    # The public Atom feed carries it (the server's feed process writes its CAP alert), read
    # by a feed library, its entry linking to the CAP document at its stable URL.
    notices = httpx.get(f"{server.base_url}/warnings/{warning_id}/notices", timeout=30,
                        headers={"Authorization": f"Bearer {server.token('disp-a')}"})
    assert notices.status_code == 200, notices.text
    [alert] = notices.json()
    assert alert["msg_type"] == "alert" and alert["approved_by"] == "disp-b"
    entry = _feed_entry(server, alert["identifier"])
    assert entry.summary.startswith(f"Alert: {entry.title} (until ")
    document = httpx.get(entry.link, timeout=30)
    assert document.status_code == 200, document.text
    assert document.headers["content-type"].startswith("application/cap+xml")
    assert alert["identifier"] in document.text and "<status>Actual</status>" in document.text

    # The drafter widens it; the second person approves and issues the update.
    card.get_by_test_id("warning-update").click()
    card.get_by_test_id("warning-update-radius").fill("3")
    card.get_by_test_id("warning-update-confirm").click()
    expect(card).to_have_attribute("data-status", "update-drafted")
    theirs.get_by_test_id("warning-approve").click()
    expect(theirs).to_have_attribute("data-status", "update-approved")
    theirs.get_by_test_id("warning-issue").click()
    expect(card).to_contain_text("2 message(s) sent")
    widened = httpx.get(f"{server.base_url}/warnings/{warning_id}", timeout=30,
                        headers={"Authorization": f"Bearer {server.token('disp-a')}"}).json()
    assert widened["content"]["area"]["circles"][0]["radius_km"] == 3
    drafter.page.screenshot(path=screenshots / "warnings-updated.png")

    # Cancelled: off the map of every screen.
    card.get_by_test_id("warning-cancel").click()
    card.get_by_test_id("warning-cancel-confirm").click()
    expect(card).to_have_attribute("data-status", "cancelled")
    expect(area).to_have_count(0)
    expect(approver.page.locator(f"path.warning-area[data-warning-id='{warning_id}']")) \
        .to_have_count(0)
    expect(seen).to_have_attribute("data-status", "cancelled")
