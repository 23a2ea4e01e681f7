"""Switching a request into a drill, and marking what a drill answers.

A participant's page sends the drill it is switched into with every call (the header
`X-CityOps-Drill: <id>`, or the cookie `cityops_drill` the pages set); the dependency that
gives the routes their system (`dependencies.get_system`) then answers the drill's own
system, for the drill's planners and invited participants only (403 for others, 404 for a
drill that does not exist). Every answer that came from a drill carries the header
`X-CityOps-Drill: <id>` (`install_drill_marking`), refusals included: a refusal that came
before the route reached the drill (the command gate's 403, an unknown query parameter, a
body too large) is marked too when the route acts in the switched system and the caller is
admitted to the drill. A switch that is itself refused (not logged in, not a participant, no
such drill) is answered by the live gate, unmarked: the request never got into a drill.
Routes that do not act in a city (login, the drill registry `/drills`, `/health`,
`/metrics`, the pages, Open311's citizen apps) answer the same whatever the switch, unmarked.
The live push of a drill (`/ws` with a hello naming the drill) is a hub of its own over the
drill's change log, and every frame it sends carries `"drill": "<id>"`; the drill's feeds
mark every message (docs/drills.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from uuid import UUID

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.concurrency import run_in_threadpool
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cityops.domain.accounts.application import Accounts
from cityops.domain.clock import Clock
from cityops.domain.errors import InvalidValue
from cityops.domain.sharing import SharingPolicy
from cityops.drills import DRILL_COOKIE, DRILL_HEADER, DrillRoom
from cityops.projections.generations import ReadModelGenerations
from cityops.projections.views import ReadModels
from cityops.settings import Settings

if TYPE_CHECKING:
    import re

    from cityops.bootstrap import CitySystem
    from cityops.command_center.live import LiveHub
    from cityops.feeds.service import FeedService

log = logging.getLogger(__name__)

LIVE = ("", "live")
"""What a header or cookie says to mean the live city."""


def drill_id_of(text: str | None) -> UUID | None:
    """The drill a request or hello names (None: the live city); not an id: 422."""
    if text is None or text.strip().lower() in LIVE:
        return None
    try:
        return UUID(text.strip())
    except ValueError:
        raise InvalidValue(f"{DRILL_HEADER} {text!r} is not a drill id (a UUID, or "
                           "\"live\")") from None


def requested_drill(request: Request) -> UUID | None:
    """The drill a request is switched into: its header, else the pages' cookie."""
    header = request.headers.get(DRILL_HEADER)
    if header is not None:
        return drill_id_of(header)
    return drill_id_of(request.cookies.get(DRILL_COOKIE))


def room_of(app: Any) -> DrillRoom:
    room: DrillRoom = app.state.drills
    return room


def admitted_system(app: Any, drill_id: UUID, authorization: str | None) -> CitySystem:
    """The system of drill `drill_id` for the caller of `authorization` (its bearer
    token): 401 without a login, 403 for someone not invited, 422 for no such drill."""
    from cityops.command_center.auth import NotAuthenticated

    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthenticated("log in first: a drill is open to its participants only")
    actor = app.state.auth.actor_for_token(token.strip())
    return room_of(app).system_for(drill_id, actor)


def drill_feeds(app: Any, drill: str) -> FeedService:
    """The feeds of a drill a request was switched into (its subscriptions, delivery log
    and CAP alerts: the drill's own)."""
    run = room_of(app).run_of(UUID(drill))
    if run is None:
        raise InvalidValue(f"drill {drill} is no longer running: it has no feeds to answer")
    return run.feeds


def install_drill_marking(app: FastAPI) -> None:
    """Every answer given from a drill's system carries `X-CityOps-Drill: <id>` (installed
    last: the outermost middleware, so that the refusals of the others are marked too)."""
    app.add_middleware(DrillMarking)


def acts_in_a_city(route: APIRoute) -> bool:
    """Whether a route answers from the system a request is switched into (it depends on
    `dependencies.get_system`)."""
    from cityops.command_center.dependencies import get_system

    def uses(dependant: Any) -> bool:
        return dependant.call is get_system or any(uses(d) for d in dependant.dependencies)

    return uses(route.dependant)


class DrillMarking:
    """ASGI middleware: adds the drill header to answers whose request was switched into a
    drill (the switch notes it in the request's state), and to refusals given before the
    switch was reached, when the route acts in a city and the caller is admitted to the
    drill it names."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._city_routes: list[tuple[set[str], re.Pattern[str]]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        started = False

        async def marked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                drill = scope.get("state", {}).get("drill")
                if drill is None and message["status"] >= 400:
                    drill = await self._refused_in_drill(scope)
                if drill is not None:
                    headers = list(message.get("headers", []))
                    headers.append((DRILL_HEADER.lower().encode(), str(drill).encode()))
                    message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, marked)
        except Exception:
            # An unexpected failure: the server's own 500 (outside every middleware) would
            # go out unmarked; answered here, marked, it is then only logged by the server.
            if not started and scope.get("state", {}).get("drill") is not None:
                await PlainTextResponse("Internal Server Error", status_code=500)(
                    scope, receive, marked)
            raise

    async def _refused_in_drill(self, scope: Scope) -> str | None:
        """The drill a refused request was switched into, if it would have been answered
        from that drill: it names one, the route acts in a city, the caller is admitted."""
        request = Request(scope)
        try:
            drill_id = requested_drill(request)
        except InvalidValue:
            return None
        if drill_id is None or not self._acts_in_a_city(scope):
            return None
        try:
            await run_in_threadpool(admitted_system, scope["app"], drill_id,
                                    request.headers.get("authorization"))
        except Exception:
            return None  # the switch itself is refused: the live gate answered
        return str(drill_id)

    def _acts_in_a_city(self, scope: Scope) -> bool:
        route = scope.get("route")
        if isinstance(route, APIRoute):
            return acts_in_a_city(route)
        # Refused before routing (the command gate): find the route as the router would.
        if self._city_routes is None:
            self._city_routes = [
                (set(context.original_route.methods or ()),
                 compile_path(context.path_format)[0])
                for context in iter_route_contexts(scope["app"].router.routes)
                if isinstance(context.original_route, APIRoute)
                and context.path_format and acts_in_a_city(context.original_route)]
        path = scope["path"]
        return any(scope["method"] in methods and pattern.match(path)
                   for methods, pattern in self._city_routes)


@dataclass
class DrillLiveSources:
    """What a drill's live hub reads: the drill's read models and clock, and the live
    accounts (participants log in as themselves; their credentials live there)."""

    settings: Settings
    generations: ReadModelGenerations
    read_models: ReadModels
    accounts: Accounts
    sharing: SharingPolicy
    _clock: Clock

    @property
    def clock(self) -> Clock:
        return self._clock

    @classmethod
    def of(cls, drill: CitySystem, live: CitySystem) -> DrillLiveSources:
        return cls(settings=drill.settings, generations=drill.generations,
                   read_models=drill.read_models, accounts=live.accounts,
                   sharing=drill.sharing, _clock=drill.clock)


class DrillOutbox:
    """A socket whose every frame (JSON objects) carries `"drill": "<id>"`."""

    def __init__(self, websocket: Any, drill_id: UUID) -> None:
        self.websocket = websocket
        self.prefix = '{"drill":' + json.dumps(str(drill_id)) + ","

    async def send_text(self, data: str) -> None:
        if data.startswith("{") and len(data) > 2:
            data = self.prefix + data[1:]
        await self.websocket.send_text(data)


class DrillHubs:
    """The live hubs of the drills this process serves, one per drill, made on first use
    and stopped when the drill is closed."""

    def __init__(self, room: DrillRoom, live: CitySystem, queue_size: int) -> None:
        self.room = room
        self.live = live
        self.queue_size = queue_size
        self._hubs: dict[UUID, tuple[Any, LiveHub]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        room.on_close.append(self._closing)

    async def hub(self, drill_id: UUID, system: CitySystem) -> LiveHub:
        from cityops.command_center.live import LiveHub

        self._loop = asyncio.get_running_loop()
        held = self._hubs.get(drill_id)
        if held is not None and held[0] is system:
            return held[1]
        if held is not None:
            await held[1].stop()
        hub = LiveHub(DrillLiveSources.of(system, self.live), queue_size=self.queue_size)
        await hub.start()
        self._hubs[drill_id] = (system, hub)
        return hub

    def _closing(self, drill_id: UUID) -> None:
        """Called (from any thread) before a drill's system closes."""
        held = self._hubs.pop(drill_id, None)
        if held is None or self._loop is None or self._loop.is_closed():
            return
        future = asyncio.run_coroutine_threadsafe(held[1].stop(), self._loop)
        with contextlib.suppress(Exception):
            future.result(timeout=10)

    async def stop(self) -> None:
        hubs, self._hubs = self._hubs, {}
        for _, hub in hubs.values():
            with contextlib.suppress(Exception):
                await hub.stop()
