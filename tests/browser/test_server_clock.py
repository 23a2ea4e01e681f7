"""The dashboard counts time from the server's clock, not the browser's: with the browser's
clock days away from the server's, the case queue shows the light and the deadline the
server says (the queue used to compute them from the browser's `Date.now()`, so it showed a
case "2 d 5 h overdue" in red while the server and the map said green)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

Server = Any
Screens = Any

PASSWORD = "browser-test-password-7"  # as the conftest creates the users


def _login_with_a_wrong_clock(screens: Screens, server: Server, username: str,
                              browser_now: datetime) -> Any:
    screen = screens.blank()
    screen.context.clock.set_fixed_time(browser_now)
    page = screen.page
    page.goto(f"{server.base_url}/dashboard")
    page.wait_for_url("**/login**")
    screen.testid("login-username").fill(username)
    screen.testid("login-password").fill(PASSWORD)
    screen.testid("login-submit").click()
    page.wait_for_url("**/dashboard")
    page.locator("body[data-ready=true]").wait_for()
    page.locator("[data-testid=live-status][data-state=live]").wait_for()
    return screen


def _server_case(server: Server, case_id: str) -> dict[str, Any]:
    answer = httpx.get(f"{server.base_url}/grid-cases/{case_id}", timeout=30,
                       headers={"Authorization": f"Bearer {server.token('disp-a')}"})
    answer.raise_for_status()
    result: dict[str, Any] = answer.json()
    return result


def test_the_queue_agrees_with_the_server_when_the_browsers_clock_is_days_off(
        server: Server, screens: Screens) -> None:
    case = server.report_case("dumping reported just now")
    on_server = _server_case(server, case["id"])
    assert on_server["light"] == "green" and on_server["stage_deadline"]
    hours_left = (datetime.fromisoformat(on_server["stage_deadline"])
                  - datetime.now(UTC)) / timedelta(hours=1)
    assert 0 < hours_left < 24

    # The browser's clock three days behind the server's (one days ahead would log itself
    # out at once: the login token's expiry is real time, checked by the browser's clock).
    browser_now = datetime.now(UTC) - timedelta(days=3)
    screen = _login_with_a_wrong_clock(screens, server, "disp-a", browser_now)
    assert screen.page.evaluate("() => Date.now()") == pytest.approx(
        browser_now.timestamp() * 1000, abs=60_000), "the browser's clock is off"
    row = screen.page.locator(f"[data-testid=case-row][data-id='{case['id']}']")
    expect(row).to_have_attribute("data-light", "green")
    deadline = row.get_by_test_id("case-deadline")
    # Hours away on the server's clock ("in 3 d 5 h" on the browser's).
    expect(deadline).to_have_text(re.compile(rf"^in ({int(hours_left)}|{int(hours_left) + 1}) h "
                                             r"\d\d min$|^in \d+ min$"))
    expect(deadline).not_to_have_class(re.compile(r"overdue"))
