"""The pages are served by the app itself: the start page leads to the dashboard, pages and
their files need no login (the data behind them does), and every page carries a
Content-Security-Policy that allows this origin only, plus the tile server when one is set."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cityops.bootstrap import build_system
from cityops.command_center.app import create_app
from cityops.settings import Settings


def _directives(policy: str) -> dict[str, list[str]]:
    parts = (item.strip().split() for item in policy.split(";") if item.strip())
    return {words[0]: words[1:] for words in parts}


def test_the_start_page_is_the_dashboard(api: Any) -> None:
    answer = api.client.get("/", follow_redirects=False)
    assert answer.status_code in (302, 307)
    assert answer.headers["location"] == "/dashboard"


@pytest.mark.parametrize("path", ["/dashboard", "/login"])
def test_pages_allow_only_their_own_origin(api: Any, path: str) -> None:
    answer = api.client.get(path)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    policy = _directives(answer.headers["content-security-policy"])
    for directive in ("default-src", "script-src", "style-src", "connect-src"):
        assert policy[directive] == ["'self'"], f"{directive}: {policy[directive]}"
    assert policy["img-src"] == ["'self'", "data:", "blob:"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert "{{" not in answer.text, "a settings placeholder was left in the page"


def test_static_files_and_vendored_libraries_are_served(api: Any) -> None:
    for path, kind in [("/static/dashboard/main.js", "javascript"),
                       ("/static/common/api.js", "javascript"),
                       ("/static/vendor/leaflet/leaflet.js", "javascript"),
                       ("/static/vendor/leaflet/leaflet.css", "text/css"),
                       ("/static/vendor/chart.js/chart.umd.min.js", "javascript")]:
        answer = api.client.get(path)
        assert answer.status_code == 200, path
        assert kind in answer.headers["content-type"], (path, answer.headers["content-type"])
        assert answer.headers["x-content-type-options"] == "nosniff"
    assert api.client.get("/static/../app.py").status_code == 404
    assert api.client.get("/static/no-such-file.js").status_code == 404


def test_a_tile_server_is_the_one_other_origin_and_only_for_images(
        tmp_path: Path, demo_city: Any) -> None:
    tiles = "https://tiles.city.example/osm/{z}/{x}/{y}.png"
    system = build_system(Settings(data_dir=tmp_path, tile_url=tiles), city=demo_city)
    with TestClient(create_app(system)) as client:
        answer = client.get("/dashboard")
    policy = _directives(answer.headers["content-security-policy"])
    assert policy["img-src"] == ["'self'", "data:", "blob:", "https://tiles.city.example"]
    assert policy["connect-src"] == ["'self'"]
    assert policy["script-src"] == ["'self'"]
    assert f'content="{tiles}"' in answer.text


@pytest.mark.parametrize("bad, message", [
    ("ftp://tiles.example/{z}/{x}/{y}.png", "http(s)"),
    ("https://tiles.example/{z}/{x}.png", "{y}"),
    ('https://tiles.example/{z}/{x}/{y}.png"><script>', "characters"),
])
def test_a_wrong_tile_url_is_refused_with_what_is_wrong(bad: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        Settings(tile_url=bad)


@pytest.mark.parametrize(("role", "dept", "home"), [
    ("inspector", None, "/field"), ("dispatcher", None, "/dashboard"),
    ("leader", None, "/dashboard"), ("department-user", "water", "/dashboard"),
])
def test_the_login_answer_names_the_user_s_start_page(api: Any, role: str, dept: str | None,
                                                      home: str) -> None:
    """Issue 9, item 13: an inspector logging in landed on the dispatcher's dashboard."""
    username = api.user(role, dept)
    answer = api.client.post("/auth/login",
                             json={"username": username, "password": api.PASSWORD})
    assert answer.status_code == 200, answer.text
    assert answer.json()["home_page"] == home
