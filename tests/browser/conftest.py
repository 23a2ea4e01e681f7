"""Browser tests of the command centre's pages: a real `cityops serve` process (embedded
stores in a temporary folder, the demo city), users created with `cityops users add`, and
Debian's chromium driven by Playwright (no downloaded browser build).

Every page a test opens records the requests it makes, so that a test can say that nothing
left the app's origin. Screenshots go to $CITYOPS_SCREENSHOTS (default .local/screenshots).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
PASSWORD = "browser-test-password-7"
SERVER_START_TIMEOUT_S = 60.0
UI_TIMEOUT_MS = 15000
"""How long a test waits for the screen to show something (a live change, a result)."""

IN_TOWN = (118.80, 32.05)
"""A point in the middle of the demo city."""

USERS: dict[str, tuple[str, str | None]] = {
    "disp-a": ("dispatcher", None),
    "disp-b": ("dispatcher", None),
    "leader-l": ("leader", None),
    "dept-um": ("department-user", "urban-management"),
    "planner-p": ("planner", None),
}
"""The people of the scenario: username -> (role, department); the inspector is the one
the demo city assigns to the cell of IN_TOWN (an inspector's user name is their id)."""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _cityops() -> list[str]:
    """The `cityops` command, run by this very interpreter (so by this checkout's code)."""
    return [sys.executable, "-m", "cityops.cli"]


@dataclass
class Server:
    """The running command centre: its address and an HTTP client that acts as any user."""

    base_url: str
    process: subprocess.Popen[bytes]
    log: Path
    inspector: str
    """The inspector of the cell where the scenario's cases are reported."""
    tokens: dict[str, str] = field(default_factory=dict)
    password: str = PASSWORD
    """The password of every user of the scenario."""

    def token(self, username: str) -> str:
        """A bearer token of `username` (logged in once through the API)."""
        if username not in self.tokens:
            answer = httpx.post(f"{self.base_url}/auth/login",
                                json={"username": username, "password": PASSWORD}, timeout=30)
            answer.raise_for_status()
            self.tokens[username] = answer.json()["access_token"]
        return self.tokens[username]

    def post(self, username: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """A command through the REST API as `username`; it must succeed."""
        answer = httpx.post(f"{self.base_url}{path}", json=body, timeout=30,
                            headers={"Authorization": f"Bearer {self.token(username)}"})
        assert answer.status_code < 300, f"{path}: {answer.status_code} {answer.text}"
        result: dict[str, Any] = answer.json()
        return result

    def report_case(self, description: str, category: str = "E0102") -> dict[str, Any]:
        """The cell's inspector reports a case (illegal dumping: urban management's)."""
        return self.post(self.inspector, "/grid-cases", {
            "category": category, "description": description,
            "location": {"type": "Point", "coordinates": list(IN_TOWN)},
        })


def _add_users(users: dict[str, tuple[str, str | None]], env: dict[str, str]) -> None:
    """`cityops users add` for each user, side by side (each command is a process start;
    the event store serialises their writes)."""
    running = {}
    for username, (role, department) in users.items():
        command = [*_cityops(), "users", "add", username, "--role", role, "--password-stdin"]
        if department:
            command += ["--department", department]
        running[username] = subprocess.Popen(command, stdin=subprocess.PIPE,
                                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                             env=env, text=True)
    for username, process in running.items():
        output, _ = process.communicate(PASSWORD + "\n", timeout=120)
        assert process.returncode == 0, f"cityops users add {username}: {output}"


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory, demo_city: Any) -> Iterator[Server]:
    """`cityops serve` on a free port over a fresh embedded data folder, with the users."""
    from cityops.domain.geometry import GeoPoint

    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is needed: apt-get install -y chromium")
    inspector = demo_city.map.locate(GeoPoint(lon=IN_TOWN[0], lat=IN_TOWN[1])).inspector_id
    users = {**USERS, inspector: ("inspector", None)}
    data_dir = tmp_path_factory.mktemp("cityops-browser")
    port = _free_port()
    env = {**os.environ, "CITYOPS_DATA_DIR": str(data_dir / "data"),
           "CITYOPS_HOST": "127.0.0.1", "CITYOPS_PORT": str(port)}
    for name in [k for k in env if k.startswith("CITYOPS_") and k not in (
            "CITYOPS_DATA_DIR", "CITYOPS_HOST", "CITYOPS_PORT", "CITYOPS_SCREENSHOTS")]:
        del env[name]  # the developer's own settings (a PostgreSQL URL) must not leak in
    _add_users(users, env)
    log = data_dir / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen([*_cityops(), "serve"], env=env, stdout=out,
                                   stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            pytest.fail(f"cityops serve exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{base_url}/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            process.terminate()
            pytest.fail(f"cityops serve did not answer in {SERVER_START_TIMEOUT_S} s:\n"
                        f"{log.read_text()}")
        time.sleep(0.2)
    try:
        yield Server(base_url=base_url, process=process, log=log, inspector=inspector)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    """Where the tests save screenshots of the main screens."""
    folder = Path(os.environ.get("CITYOPS_SCREENSHOTS") or REPO / ".local" / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's chromium, headless, for one test module. Not for the session: Playwright's
    sync API keeps an asyncio loop running in the main thread while it is open, and the
    asyncio tests collected after the browser tests could not start theirs."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class Screen:
    """One person's browser tab, with every request it made."""

    page: Any
    context: Any
    requests: list[str]

    def testid(self, name: str) -> Any:
        return self.page.get_by_test_id(name)


class Screens:
    """Opens logged-in dashboards (or any page) in separate browser contexts: separate
    sessionStorage, so each is another person."""

    def __init__(self, browser: Any, server: Server) -> None:
        self.browser = browser
        self.server = server
        self.opened: list[Screen] = []

    def blank(self) -> Screen:
        context = self.browser.new_context(viewport={"width": 1600, "height": 900})
        context.set_default_timeout(UI_TIMEOUT_MS)
        requests: list[str] = []
        context.on("request", lambda request: requests.append(request.url))
        page = context.new_page()
        page.on("websocket", lambda socket: requests.append(socket.url))
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        # What the Content-Security-Policy blocked shows only on the console.
        page.on("console", lambda message: errors.append(message.text)
                if message.type == "error" and "Refused to" in message.text else None)
        screen = Screen(page=page, context=context, requests=requests)
        screen.page_errors = errors  # type: ignore[attr-defined]
        self.opened.append(screen)
        return screen

    def login(self, username: str, path: str = "/dashboard") -> Screen:
        """A tab where `username` logged in through the login page and `path` is live."""
        screen = self.blank()
        page = screen.page
        page.goto(f"{self.server.base_url}{path}")
        page.wait_for_url("**/login**")
        screen.testid("login-username").fill(username)
        screen.testid("login-password").fill(PASSWORD)
        screen.testid("login-submit").click()
        page.wait_for_url(f"**{path}")
        if path in ("/dashboard", "/drill-room"):
            # The page has set its form up (the drill room fills the window from the
            # server's time: a test that fills it first would race with it).
            page.locator("body[data-ready=true]").wait_for()
        if path == "/dashboard":
            page.locator("[data-testid=live-status][data-state=live]").wait_for()
        return screen

    def foreign_requests(self) -> list[str]:
        """Requests any opened tab made outside the app's own origin."""
        origin = self.server.base_url
        ws_origin = origin.replace("http://", "ws://", 1)
        return [url for screen in self.opened for url in screen.requests
                if not (url.startswith(origin + "/") or url.startswith(ws_origin + "/")
                        or url.startswith("data:") or url.startswith("blob:"))]

    def page_errors(self) -> list[str]:
        return [e for screen in self.opened for e in screen.page_errors]  # type: ignore[attr-defined]

    def close(self) -> None:
        for screen in self.opened:
            screen.context.close()


@pytest.fixture
def screens(browser: Any, server: Server) -> Iterator[Screens]:
    """Browser tabs for one test; at its end no tab may have left the app's origin or hit
    a script error."""
    opened = Screens(browser, server)
    try:
        yield opened
        assert opened.foreign_requests() == [], "a page made requests outside the app"
        assert opened.page_errors() == [], "a page hit script errors or refused content"
    finally:
        opened.close()

