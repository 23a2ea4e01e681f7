"""The dashboard's time slider in Chromium: dragged back, the queues, the map and the key
figures show the city as it stood at that moment, marked as the past with the instant in the
city's time zone (the server's clock), the live push paused; back to live, everything that
happened meanwhile is there."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

Server = Any
Screens = Any


def row_of(screen: Any, case_id: str) -> Any:
    return screen.page.locator(f"[data-testid=case-row][data-id='{case_id}']")


def server_time(server: Server) -> datetime:
    return datetime.fromisoformat(httpx.get(f"{server.base_url}/clock").json()["server_time"])


def test_dragging_the_slider_back_shows_the_city_then_and_live_returns(
        server: Server, screens: Screens, screenshots: Path) -> None:
    before = server.report_case("Sand spilled on the cycle lane (before the moment)")
    time.sleep(2.5)
    moment = server_time(server)
    time.sleep(2.5)
    after = server.report_case("Sand spilled again (after the moment)")
    screen = screens.login("disp-a")
    page = screen.page
    screen.testid("case-filter").select_option("all-open")
    expect(row_of(screen, before["id"])).to_be_visible()
    expect(row_of(screen, after["id"])).to_be_visible()
    expect(screen.testid("past-banner")).to_be_hidden()

    slider = screen.testid("time-slider")
    expect(screen.testid("time-travel")).to_be_visible()
    # Drag back: the slider's value is the moment (whole seconds, as it steps).
    target = int(moment.timestamp()) * 1000
    slider.evaluate("(input, value) => { input.value = String(value); "
                    "input.dispatchEvent(new Event('input')); "
                    "input.dispatchEvent(new Event('change')); }", target)
    shown = datetime.fromtimestamp(target / 1000, tz=moment.tzinfo)
    page.locator(f"body[data-past-loaded='{shown.isoformat().replace('+00:00', '.000Z')}']"
                 ).wait_for()
    banner = screen.testid("past-banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("THE PAST")
    zone = screen.testid("past-instant").inner_text().split("(")[-1].rstrip(")")
    local = shown.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M:%S")
    expect(screen.testid("past-instant")).to_have_text(f"{local} ({zone})")
    expect(screen.testid("live-status")).to_have_attribute("data-state", "past")
    expect(row_of(screen, before["id"])).to_be_visible()
    expect(row_of(screen, after["id"])).to_have_count(0)
    # Nothing can be done in the past.
    expect(page.locator("body.read-only.in-the-past")).to_have_count(1)
    page.screenshot(path=screenshots / "dashboard-time-slider-past.png")

    # While the past is shown, a new report does not slip in through the live push.
    meanwhile = server.report_case("Sand spilled a third time (while looking back)")
    time.sleep(2)
    expect(row_of(screen, meanwhile["id"])).to_have_count(0)

    screen.testid("back-to-live").click()
    expect(banner).to_be_hidden()
    expect(screen.testid("live-status")).to_have_attribute("data-state", "live")
    for case in (before, after, meanwhile):
        expect(row_of(screen, case["id"])).to_be_visible()
    expect(page.locator("body.in-the-past")).to_have_count(0)
    page.screenshot(path=screenshots / "dashboard-time-slider-live.png")


def test_letting_go_of_the_slider_returns_to_live_unless_held(
        server: Server, screens: Screens) -> None:
    server.report_case("Leaves blocking a drain (before dragging back)")
    time.sleep(3)
    screen = screens.login("disp-a")
    page = screen.page
    expect(screen.testid("time-travel")).to_be_visible()
    box = screen.testid("time-slider").bounding_box()
    middle = box["y"] + box["height"] / 2

    def drag_back() -> None:
        page.mouse.move(box["x"] + box["width"] - 3, middle)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.3, middle, steps=6)

    # Held down and dragged back: the past; let go: live again.
    drag_back()
    page.locator("body[data-past-loaded]").wait_for()
    expect(screen.testid("past-banner")).to_be_visible()
    page.mouse.up()
    expect(screen.testid("past-banner")).to_be_hidden()
    expect(screen.testid("live-status")).to_have_attribute("data-state", "live")
    expect(screen.testid("time-slider-label")).to_have_text("live")
    expect(page.locator("body.in-the-past")).to_have_count(0)

    # With "hold" ticked, the moment let go at stays shown; Escape returns to live.
    screen.testid("time-hold").check()
    drag_back()
    page.mouse.up()
    page.locator("body[data-past-loaded]").wait_for()
    time.sleep(1)
    expect(screen.testid("past-banner")).to_be_visible()
    expect(screen.testid("live-status")).to_have_attribute("data-state", "past")
    screen.testid("time-slider").press("Escape")
    expect(screen.testid("past-banner")).to_be_hidden()
    expect(screen.testid("live-status")).to_have_attribute("data-state", "live")
