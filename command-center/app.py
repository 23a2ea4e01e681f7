"""The FastAPI application of the command centre, built around an already-wired system."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from cityops.bootstrap import CitySystem
from cityops.command_center.errors import install_error_handlers
from cityops.command_center.routers import (
    catalogue,
    exports,
    grid_cases,
    hazard_sources,
    hotline_tickets,
    incidents,
    ogc,
    plans,
    resources,
    spatial,
    statistics,
    subscriptions,
)
from cityops.feeds.service import build_feed_service

API_DESCRIPTION = """
CityOps command centre API: grid cases, incidents, hazard sources, hotline tickets and
emergency resources. Commands accept an `Idempotency-Key` header (a client-supplied command
id): repeating a command with the same key changes nothing. Every command records who did it
(`X-Actor-Id`, `X-Actor-Role`, `X-Actor-Department`).
"""


def create_app(system: CitySystem, *, manage_lifecycle: bool = True) -> FastAPI:
    """The web app over `system`; with `manage_lifecycle` it starts the projection followers
    on start-up (and, embedded, the feed loops: one process does everything) and closes the
    system on shutdown."""
    feeds = build_feed_service(system)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if manage_lifecycle:
            system.start_projections()
            if system.settings.embedded and system.settings.run_projections:
                feeds.start()
        try:
            yield
        finally:
            if manage_lifecycle:
                feeds.close()
                system.close()

    app = FastAPI(title="CityOps command centre", version="0.1.0",
                  description=API_DESCRIPTION, lifespan=lifespan)
    app.state.system = system
    app.state.feeds = feeds
    install_error_handlers(app)
    for module in (catalogue, grid_cases, incidents, plans, resources, hazard_sources,
                   hotline_tickets, spatial, ogc, exports, statistics,
                   subscriptions):
        app.include_router(module.router)

    @app.get("/health", tags=["operations"])
    def health() -> dict[str, Any]:
        """Liveness and the projections' lag behind each event store."""
        lag = {f.application_name: f.head() - f.position() for f in system.followers}
        return {"status": "ok", "projection_lag": lag}

    return app
