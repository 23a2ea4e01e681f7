"""The inspector's field page on a phone-sized screen in a real browser: Zhang Wei (inspector
of communities D01-S01-C01 and -C02 of the demo city) sees his cells, reports a case from his
GPS position with a photo taken by the camera, reports another one tapped on the map while
he has no signal (it is sent once he is back online, exactly once), and verifies on site a
case the department reported handled. Nothing is loaded from outside the app."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

# The fixtures' types (Server) live in this folder's conftest, which is not importable as a
# module under --import-mode=importlib: spelled Any here.
Server = Any

INSPECTOR = "insp-D01-01"
"""Zhang Wei: his user name is his inspector id in the demo city's inspectors.json."""
PASSWORD = "field-test-password-5"
PHONE = {"width": 390, "height": 844}
UI_TIMEOUT_MS = 15000
SETTLE_TIMEOUT_S = 20.0
GPS_IFD = 0x8825


# --- the inspector and his phone ----------------------------------------------------------


@pytest.fixture(scope="module")
def inspector(server: Server) -> str:
    """Zhang Wei's account on the test server, added with `cityops users add` over the
    server's own data folder (the conftest's users are not inspectors of the city's map)."""
    data_dir = server.log.parent / "data"
    assert data_dir.is_dir(), f"the server's data folder is not at {data_dir}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYOPS_")}
    env["CITYOPS_DATA_DIR"] = str(data_dir)
    done = subprocess.run(
        [sys.executable, "-m", "cityops.cli", "users", "add", INSPECTOR, "--role", "inspector",
         "--password-stdin"], input=PASSWORD + "\n", env=env, capture_output=True, text=True,
        timeout=120, check=False)
    assert done.returncode == 0, f"cityops users add {INSPECTOR}: {done.stderr or done.stdout}"
    return INSPECTOR


@dataclass
class Field:
    """Zhang Wei's view of the command centre through the API (to prepare and to check)."""

    server: Server
    token: str = ""

    def __post_init__(self) -> None:
        answer = httpx.post(f"{self.server.base_url}/auth/login",
                            json={"username": INSPECTOR, "password": PASSWORD}, timeout=30)
        answer.raise_for_status()
        self.token = answer.json()["access_token"]

    def get(self, path: str, **params: Any) -> Any:
        answer = httpx.get(f"{self.server.base_url}{path}", params=params, timeout=30,
                           headers={"Authorization": f"Bearer {self.token}"})
        assert answer.status_code == 200, f"{path}: {answer.status_code} {answer.text}"
        return answer.json() if "json" in answer.headers["content-type"] else answer.content

    def post(self, path: str, body: dict[str, Any]) -> Any:
        answer = httpx.post(f"{self.server.base_url}{path}", json=body, timeout=30,
                            headers={"Authorization": f"Bearer {self.token}"})
        assert answer.status_code < 300, f"{path}: {answer.status_code} {answer.text}"
        return answer.json()

    def cases_described(self, description: str) -> list[dict[str, Any]]:
        """The cases with this (unique) description, once the read models show one."""
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        while True:
            page = self.get("/grid-cases", limit=500)
            found = [c for c in page["data"] if c["description"] == description]
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.2)


@pytest.fixture(scope="module")
def zhang(server: Server, inspector: str) -> Field:
    return Field(server)


@dataclass
class Phone:
    """One phone's browser: its page, every request it made and its script errors."""

    context: Any
    page: Any
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def testid(self, name: str) -> Any:
        return self.page.get_by_test_id(name)


@pytest.fixture
def phone(browser: Any, server: Server, inspector: str,
          demo_city: Any) -> Iterator[Callable[[], Phone]]:
    """Opens Zhang Wei's phone (390 x 844, touch, GPS allowed and placed in one of his
    cells) logged in on /field; afterwards no phone may have left the app's origin or hit a
    script error."""
    opened: list[Phone] = []
    centre = demo_city.map.cell("D01-S01-C02-0010").centre

    def open_phone() -> Phone:
        context = browser.new_context(
            viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2,
            geolocation={"latitude": centre.lat, "longitude": centre.lon, "accuracy": 8},
            permissions=["geolocation"])
        context.set_default_timeout(UI_TIMEOUT_MS)
        screen = Phone(context=context, page=context.new_page())
        context.on("request", lambda request: screen.requests.append(request.url))
        screen.page.on("websocket", lambda socket: screen.requests.append(socket.url))
        screen.page.on("pageerror", lambda error: screen.errors.append(str(error)))
        opened.append(screen)
        page = screen.page
        page.goto(f"{server.base_url}/field")
        page.wait_for_url("**/login**")
        screen.testid("login-username").fill(INSPECTOR)
        screen.testid("login-password").fill(PASSWORD)
        screen.testid("login-submit").click()
        page.wait_for_url("**/field")
        expect(screen.testid("map-hint")).to_have_attribute("data-state", "cells")
        return screen

    try:
        yield open_phone
        origin = server.base_url
        ws_origin = origin.replace("http://", "ws://", 1)
        foreign = [url for screen in opened for url in screen.requests
                   if not (url.startswith((origin + "/", ws_origin + "/", "data:", "blob:")))]
        assert foreign == [], "the field page made requests outside the app"
        assert [e for screen in opened for e in screen.errors] == [], "script errors"
    finally:
        for screen in opened:
            screen.context.close()


def camera_photo(colour: tuple[int, int, int], *, with_gps: bool = False) -> dict[str, Any]:
    """A photo as the phone's camera hands it to the page (a JPEG, with the GPS position
    of where it was taken if asked)."""
    image = Image.linear_gradient("L").resize((1200, 900)).convert("RGB")
    image.paste(colour, (300, 200, 700, 600))
    out = io.BytesIO()
    if with_gps:
        exif = Image.Exif()
        exif[GPS_IFD] = {1: "N", 2: (32.0, 3.0, 21.0), 3: "E", 4: (118.0, 46.0, 9.0)}
        image.save(out, "JPEG", exif=exif)
    else:
        image.save(out, "JPEG")
    return {"name": f"IMG_{uuid.uuid4().hex[:6]}.jpg", "mimeType": "image/jpeg",
            "buffer": out.getvalue()}


def fill_report(screen: Phone, description: str, category: str = "E0101") -> None:
    screen.testid("report-category").select_option(category)
    screen.testid("report-description").fill(description)


def shot(screen: Phone, screenshots: Path, name: str) -> None:
    screen.page.screenshot(path=str(screenshots / name), full_page=True)


# --- the scenarios --------------------------------------------------------------------


def test_an_inspector_reports_a_case_from_his_gps_position_with_a_photo(
        phone: Callable[[], Phone], zhang: Field, demo_city: Any, screenshots: Path) -> None:
    screen = phone()
    hint = screen.testid("map-hint")
    cells = zhang.get("/field/me/cells")
    expect(hint).to_contain_text(f"{cells['numberMatched']} cells assigned to you")
    # Every cell of his is drawn on the map.
    expect(screen.page.locator("#field-map path.leaflet-interactive, #field-map path")
           ).not_to_have_count(0)
    shot(screen, screenshots, "field-cells.png")

    screen.testid("use-gps").click()
    location = screen.testid("report-location")
    expect(location).to_have_attribute("data-state", "gps")
    expect(location).to_contain_text("from GPS")
    description = f"Overflowing bin at the school gate {uuid.uuid4().hex[:8]}"
    fill_report(screen, description)
    screen.testid("report-photo-input").set_input_files(
        [camera_photo((200, 40, 40), with_gps=True)])
    expect(screen.page.locator("[data-testid=photo-item]")).to_have_attribute(
        "data-state", "uploaded")
    # A file that is not a photo is refused with the command centre's reason, and left out.
    screen.testid("report-photo-input").set_input_files(
        [{"name": "notes.jpg", "mimeType": "image/jpeg", "buffer": b"shopping list\n"}])
    refused = screen.page.locator("[data-testid=photo-item][data-state=failed]")
    expect(refused).to_contain_text("not a JPEG, PNG or WebP image")
    shot(screen, screenshots, "field-report.png")

    screen.testid("report-submit").click()
    outcome = screen.testid("report-outcome")
    expect(outcome).to_have_attribute("data-state", "ok")
    expect(outcome).to_contain_text("Reported: case")
    shot(screen, screenshots, "field-reported.png")

    [case] = zhang.cases_described(description)
    centre = demo_city.map.cell("D01-S01-C02-0010").centre
    assert case["grid_cell"] == "D01-S01-C02-0010"
    assert case["location"]["coordinates"] == pytest.approx([centre.lon, centre.lat], abs=1e-6)
    assert case["category"] == "E0101" and case["source"] == "inspector"
    [photo] = case["photos"]  # the refused file went nowhere
    stored = Image.open(io.BytesIO(zhang.get(f"/photos/{photo.removeprefix('photo:')}")))
    assert not stored.getexif().get_ifd(GPS_IFD), "the photo kept the GPS position"
    history = zhang.get(f"/grid-cases/{case['id']}/history")
    assert history[0]["actor"]["user_id"] == INSPECTOR


def test_a_report_made_without_signal_is_sent_once_back_online(
        phone: Callable[[], Phone], zhang: Field, screenshots: Path) -> None:
    screen = phone()
    screen.context.set_offline(True)
    expect(screen.testid("signal")).to_have_attribute("data-state", "offline")
    # No GPS fix needed: a tap on the map places the report.
    box = screen.page.locator("#field-map").bounding_box()
    screen.page.locator("#field-map").click(position={"x": box["width"] * 0.5,
                                                      "y": box["height"] * 0.55})
    expect(screen.testid("report-location")).to_have_attribute("data-state", "map")
    description = f"Illegal dumping behind the market {uuid.uuid4().hex[:8]}"
    fill_report(screen, description, category="E0102")
    screen.testid("report-photo-input").set_input_files([camera_photo((40, 160, 60))])
    expect(screen.page.locator("[data-testid=photo-item]")).to_have_attribute(
        "data-state", "offline")
    screen.testid("report-submit").click()
    expect(screen.testid("report-outcome")).to_have_attribute("data-state", "queued")
    expect(screen.testid("outbox-count")).to_have_text("1")
    screen.testid("tab-outbox").click()
    expect(screen.page.locator("[data-testid=outbox-item]")).to_contain_text(
        "waiting for signal (1 photo)")
    shot(screen, screenshots, "field-offline-outbox.png")

    screen.context.set_offline(False)
    expect(screen.testid("signal")).to_have_attribute("data-state", "online")
    expect(screen.page.locator("[data-testid=outbox-item]")).to_have_count(0)
    expect(screen.page.locator("[data-testid=sent-item]").first).to_contain_text("case")
    [case] = zhang.cases_described(description)
    assert len(case["photos"]) == 1 and case["photos"][0].startswith("photo:")


def test_a_lost_answer_is_sent_again_without_reporting_twice(
        phone: Callable[[], Phone], zhang: Field) -> None:
    screen = phone()
    keys: list[str] = []

    def lose_the_first_answer(route: Any) -> None:
        request = route.request
        if request.method != "POST":
            route.continue_()
            return
        keys.append(request.headers["idempotency-key"])
        if len(keys) == 1:
            route.fetch()  # the command centre records the report...
            route.abort("internetdisconnected")  # ...and the answer never arrives
        else:
            route.continue_()

    screen.page.route("**/grid-cases", lose_the_first_answer)
    screen.testid("use-gps").click()
    expect(screen.testid("report-location")).to_have_attribute("data-state", "gps")
    description = f"Broken street lamp {uuid.uuid4().hex[:8]}"
    fill_report(screen, description, category="C0105")
    screen.testid("report-submit").click()
    expect(screen.testid("report-outcome")).to_have_attribute("data-state", "queued")
    screen.testid("tab-outbox").click()
    screen.testid("outbox-send").click()
    expect(screen.page.locator("[data-testid=outbox-item]")).to_have_count(0)
    assert len(keys) == 2 and keys[0] == keys[1], keys
    cases = zhang.cases_described(description)
    time.sleep(1.0)  # let the read models show a second case, if there were one
    assert len(zhang.cases_described(description)) == len(cases) == 1


def test_an_inspector_verifies_a_handled_case_in_his_cells(
        phone: Callable[[], Phone], server: Server, zhang: Field, demo_city: Any,
        screenshots: Path) -> None:
    centre = demo_city.map.cell("D01-S01-C01-0005").centre
    description = f"Construction spoil left uncovered {uuid.uuid4().hex[:8]}"
    case = zhang.post("/grid-cases", {
        "category": "E0102", "description": description,
        "location": {"type": "Point", "coordinates": [centre.lon, centre.lat]}})
    path = f"/grid-cases/{case['id']}"
    server.post("disp-a", f"{path}/register", {})
    server.post("disp-a", f"{path}/dispatch", {})
    server.post("dept-um", f"{path}/handle", {"result": "Spoil removed and covered"})
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while case["id"] not in [t["id"] for t in zhang.get("/field/me/tasks")["data"]]:
        assert time.monotonic() < deadline, "the task never showed in /field/me/tasks"
        time.sleep(0.2)

    screen = phone()
    screen.testid("tab-tasks").click()
    task = screen.page.locator(f"[data-testid=task][data-id='{case['id']}']")
    expect(task).to_contain_text(description)
    expect(task).to_contain_text("Spoil removed and covered")
    expect(task.get_by_test_id("task-deadline")).to_contain_text("verify by")
    expect(task).to_have_attribute("data-light", "green")
    shot(screen, screenshots, "field-tasks.png")

    task.get_by_test_id("task-verify-open").click()
    task.get_by_test_id("verify-fixed").check()
    task.get_by_test_id("verify-note").fill("Checked on site: clean")
    task.get_by_test_id("verify-photo-input").set_input_files([camera_photo((30, 90, 200))])
    expect(task.locator("[data-testid=photo-item]")).to_have_attribute("data-state",
                                                                        "uploaded")
    shot(screen, screenshots, "field-verify.png")
    task.get_by_test_id("verify-submit").click()
    expect(task.get_by_test_id("verify-outcome")).to_have_attribute("data-state", "ok")
    expect(screen.page.locator(f"[data-testid=task][data-id='{case['id']}']")).to_have_count(0)

    verified = zhang.get(path)
    assert verified["status"] == "verified"
    last = zhang.get(f"{path}/history")[-1]
    assert last["event"] == "Verified" and last["actor"]["user_id"] == INSPECTOR
    assert "photo:" in str(last)
