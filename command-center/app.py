"""The FastAPI application of the command centre, built around an already-wired system."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from cityops.bootstrap import CitySystem, StoredDeadLetterCount, build_operations
from cityops.command_center.auth import Authenticator
from cityops.command_center.body_limits import RequestBodyLimit
from cityops.command_center.command_gate import install_command_gate
from cityops.command_center.drill_switch import DrillHubs, install_drill_marking
from cityops.command_center.error_answers import install_error_documentation
from cityops.command_center.errors import install_error_handlers
from cityops.command_center.live import LiveHub
from cityops.command_center.login_guard import PasswordHashing
from cityops.command_center.observability import install_observability
from cityops.command_center.photos import DecodeSlots
from cityops.command_center.prefix_routes import serve_prefix_first
from cityops.command_center.query_checks import install_query_checks
from cityops.command_center.routers import (
    auth,
    bulk,
    cap,
    catalogue,
    drills,
    exercises,
    exports,
    field,
    grid_cases,
    hazard_sources,
    hotline_tickets,
    incidents,
    ogc,
    open311,
    pages,
    photos,
    plans,
    resources,
    reviews,
    search,
    spatial,
    statistics,
    subscriptions,
    warnings,
    ws,
)
from cityops.command_center.server_time import router as server_time_router
from cityops.command_center.sharing import check_map_layers
from cityops.command_center.time_travel import install_time_travel
from cityops.command_center.time_travel import router as time_travel_router
from cityops.command_center.versions import install_version_checks
from cityops.drills import DrillRoom
from cityops.feeds.service import build_feed_service

API_DESCRIPTION = """
CityOps command centre API: grid cases, incidents, hazard sources, hotline tickets and
emergency resources. Commands accept an `Idempotency-Key` header (a client-supplied command
id): repeating a command with the same key changes nothing.

Conflicts, not silent overwrites: every document carries its `version`, also sent as its
`ETag` (`"4"`). A command may send `If-Match` with the version its user saw; if the document
changed since, the command is refused with 409 (`stale-version`) and a message saying what
changed, by whom and when (reload it and try again). A malformed `If-Match` is refused with
422. Bulk actions (`POST /grid-cases/bulk/{action}`, `POST /hotline-tickets/bulk/{action}`)
run the single command once per item and answer a result per item; each item may carry the
version its user saw.

Sign in with `POST /auth/login` (username and password) and send the `access_token` it
answers as `Authorization: Bearer <token>` on every other call; a token lasts one shift
(`CITYOPS_TOKEN_TTL_MINUTES`) and stops working at once when the user's password, role or
department changes or the account is disabled. Without a valid token the answer is 401. Every
command records who did it (the user, their role and department). Roles decide which commands
a user may issue (403 otherwise; a leader only reads); a department user sees and acts only
within their department's scope: what lies outside it answers 404, and lists leave it out.
Only `/health`, `/metrics` (unless a metrics token is set), `/auth/login`, the pages and
Open311's GET endpoints are public.
"""


def create_app(system: CitySystem, *, manage_lifecycle: bool = True,
               drill_room: DrillRoom | None = None) -> FastAPI:
    """The web app over `system`; with `manage_lifecycle` it starts the projection followers
    on start-up (and, embedded, the feed loops: one process does everything) and closes the
    system on shutdown."""
    # The map layers publish their properties to everyone who may read them: each must be
    # shared unconditionally (a clear error at start-up otherwise).
    check_map_layers(system, system.spatial.layers.values())
    feeds = build_feed_service(system)
    live_hub = LiveHub(system, queue_size=system.settings.ws_client_queue)
    dead_letters = StoredDeadLetterCount(system)
    operations = build_operations(system, dead_letters=dead_letters,
                                  feed_positions=feeds.published_positions)
    operations.on_close.append(dead_letters.close)
    # Drills run in their own systems beside the live one (docs/drills.md).
    room = drill_room if drill_room is not None else DrillRoom(system)
    drill_hubs = DrillHubs(room, system, queue_size=system.settings.ws_client_queue)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if manage_lifecycle:
            system.start_projections()
            if system.settings.embedded and system.settings.run_projections:
                feeds.start()
        await live_hub.start()  # the WebSocket clients' push (every API process has one)
        if manage_lifecycle:
            await asyncio.to_thread(room.open)  # drills that were running come back paused
        try:
            yield
        finally:
            await drill_hubs.stop()
            if manage_lifecycle:  # else the caller keeps the room open, as the system
                await asyncio.to_thread(room.close)
            await live_hub.stop()
            operations.close()
            app.state.auth.close()
            if manage_lifecycle:
                feeds.close()
                system.close()

    app = FastAPI(title="CityOps command centre", version="0.1.0",
                  description=API_DESCRIPTION, lifespan=lifespan)
    app.state.system = system
    app.state.feeds = feeds
    app.state.live = live_hub
    app.state.drills = room
    app.state.drill_hubs = drill_hubs
    app.state.photo_decoding = DecodeSlots(system.settings.photo_decode_concurrency)
    app.state.auth = Authenticator(
        system.accounts, system.settings.token_secret(),
        ttl_minutes=system.settings.token_ttl_minutes,
        hashing=PasswordHashing(system.settings.password_hash_workers,
                                system.settings.password_hash_queue))
    # Account changes the hub sees (made by any process) reach this process's REST checks
    # at once, not after the account cache's few seconds.
    live_hub.account_listeners.append(app.state.auth.forget)
    install_error_handlers(app)
    install_version_checks(app)  # before the routers: it adds a dependency to each route
    install_query_checks(app)  # before the routers, too: unknown query parameters -> 422
    # bulk first: /grid-cases/bulk/register would otherwise match /grid-cases/{case_id}/...
    for module in (bulk, auth, catalogue, grid_cases, incidents, plans, resources,
                   hazard_sources, hotline_tickets, spatial, ogc, exports, statistics,
                   subscriptions, warnings, reviews, exercises, drills):
        app.include_router(module.router)
    app.include_router(exercises.scenarios_router)
    app.include_router(pages.router)
    app.include_router(reviews.page_router)  # the after-action review page
    app.include_router(photos.router)
    app.include_router(field.router)
    app.include_router(search.router)
    app.include_router(open311.router)  # public GETs; POST checks its own api_key
    app.include_router(cap.router)  # the warnings' CAP alerts: public feed and documents
    app.include_router(ws.router)  # /ws: authenticated by its first message's token
    app.include_router(server_time_router)  # /clock: public, as /health
    app.include_router(time_travel_router)  # /time-travel: the span as_of may take
    # The GIS clients' and the dispatchers' map questions, included late: matched first.
    serve_prefix_first(app, ogc.router)
    serve_prefix_first(app, spatial.router)
    app.mount("/static", pages.static_files(), name="static")
    install_command_gate(app)  # 403 before a command's body is read
    # Outermost: a body over its route's limit is refused before anything reads it.
    app.add_middleware(RequestBodyLimit)

    install_time_travel(app)  # answers about the past are marked as such
    install_observability(app, operations)  # /health, /metrics, the request middleware
    # Outermost: every answer from a drill says so, the other middlewares' refusals too.
    install_drill_marking(app)
    install_error_documentation(app)  # the error answers of every operation, in /openapi.json
    return app
