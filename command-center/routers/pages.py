"""The command centre's own web pages (dashboard, login) and their static files, served by
the app itself so that a control room on an isolated network needs nothing from outside.

Every page is sent with a Content-Security-Policy that lets it load scripts, styles, images
and connections from this origin only, plus the optional tile server's origin for images:
a page can neither pull code from a CDN nor send data anywhere else.
"""

from __future__ import annotations

import html
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import APIRouter, HTTPException
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response
from starlette.types import Scope

from cityops.command_center.dependencies import SystemDep
from cityops.domain.actors import Role

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

router = APIRouter(tags=["pages"])


def tile_origin(tile_url: str | None) -> str | None:
    """The scheme://host[:port] of the tile server, the only other origin a page may use."""
    if not tile_url:
        return None
    parts = urlsplit(tile_url)
    return f"{parts.scheme}://{parts.netloc}"


def content_security_policy(tile_url: str | None) -> str:
    """'self' only (plus the tile server for images): no inline script, no other origin."""
    images = "'self' data: blob:"
    origin = tile_origin(tile_url)
    if origin:
        images += f" {origin}"
    return "; ".join([
        "default-src 'self'",
        "script-src 'self'",
        # Leaflet and Chart.js set element styles from script, which CSP allows; no inline
        # <style> or style="" attributes are used by the pages.
        "style-src 'self'",
        f"img-src {images}",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ])


@lru_cache(maxsize=16)
def _page_text(name: str) -> str:
    path = STATIC_DIR / name
    if not path.is_file():
        raise HTTPException(status_code=404, detail=f"page {name} is not installed")
    return path.read_text(encoding="utf-8")


def page(name: str, tile_url: str | None) -> HTMLResponse:
    """A page from static/ with the settings it needs filled in and its security headers."""
    text = _page_text(name).replace("{{tile_url}}", html.escape(tile_url or "", quote=True))
    return HTMLResponse(text, headers={
        "Content-Security-Policy": content_security_policy(tile_url),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "Cache-Control": "no-cache",
    })


HOME_PAGES = {Role.INSPECTOR: "/field"}
"""The page each role starts on after logging in, when it differs from the dashboard (an
inspector on patrol works on the mobile field page)."""
DEFAULT_HOME_PAGE = "/dashboard"


def home_page(role: Role) -> str:
    """Where a user of `role` lands after logging in."""
    return HOME_PAGES.get(role, DEFAULT_HOME_PAGE)


@router.get("/", response_class=RedirectResponse, status_code=307,
            responses={307: {"description": "To the dashboard (Location: /dashboard)"}})
def root() -> RedirectResponse:
    """The duty officer's screen is the start page."""
    return RedirectResponse("/dashboard", status_code=307)


@router.get("/dashboard", response_class=HTMLResponse)
def dashboard(system: SystemDep) -> HTMLResponse:
    """The dispatcher's dashboard: one map, the queues and boards, live."""
    return page("dashboard.html", system.settings.tile_url)


@router.get("/drill-room", response_class=HTMLResponse)
def drill_room(system: SystemDep) -> HTMLResponse:
    """The planners' drill room: start, follow and steer drills (docs/drills.md)."""
    return page("drill-room.html", system.settings.tile_url)


@router.get("/login", response_class=HTMLResponse)
def login_page(system: SystemDep) -> HTMLResponse:
    """Log in to the command centre's pages."""
    return page("login.html", system.settings.tile_url)


class StaticWithHeaders(StaticFiles):
    """Static files that browsers must not sniff into another type."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Cache-Control", "no-cache")
        return response


def static_files() -> StaticWithHeaders:
    """The /static mount: the pages' own scripts and styles and the vendored libraries."""
    return StaticWithHeaders(directory=STATIC_DIR)
