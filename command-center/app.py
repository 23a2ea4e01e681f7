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
)

API_DESCRIPTION = """
CityOps command centre API: grid cases, incidents, hazard sources, hotline tickets and
emergency resources. Commands accept an `Idempotency-Key` header (a client-supplied command
id): repeating a command with the same key changes nothing. Every command records who did it
(`X-Actor-Id`, `X-Actor-Role`, `X-Actor-Department`).
"""


def create_app(system: CitySystem, *, manage_lifecycle: bool = True) -> FastAPI:
    """The web app over `system`; with `manage_lifecycle` it starts the projection followers
    on start-up and closes the system on shutdown."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if manage_lifecycle:
            system.start_projections()
        try:
            yield
        finally:
            if manage_lifecycle:
                system.close()

    app = FastAPI(title="CityOps command centre", version="0.1.0",
                  description=API_DESCRIPTION, lifespan=lifespan)
    app.state.system = system
    install_error_handlers(app)
    for module in (catalogue, grid_cases, incidents, plans, resources, hazard_sources,
                   hotline_tickets, spatial, ogc, exports, statistics):
        app.include_router(module.router)

    @app.get("/health", tags=["operations"])
    def health() -> dict[str, Any]:
        """Liveness and the projections' lag behind each event store."""
        lag = {f.application_name: f.head() - f.position() for f in system.followers}
        return {"status": "ok", "projection_lag": lag}

    return app
