"""Switching a request into a drill, and marking what a drill answers.

A participant's page sends the drill it is switched into with every call (the header
`X-CityOps-Drill: <id>`, or the cookie `cityops_drill` the pages set); the dependency that
gives the routes their system (`dependencies.get_system`) then answers the drill's own
system, for the drill's planners and invited participants only (403 for others, 404 for a
drill that does not exist). Every answer that came from a drill carries the header
`X-CityOps-Drill: <id>` (`install_drill_marking`); the live push of a drill (`/ws` with a
hello naming the drill) is a hub of its own over the drill's change log, and every frame it
sends carries `"drill": "<id>"`.
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
    from cityops.bootstrap import CitySystem
    from cityops.command_center.live import LiveHub

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


def install_drill_marking(app: FastAPI) -> None:
    """Every answer given from a drill's system carries `X-CityOps-Drill: <id>`."""
    app.add_middleware(DrillMarking)


class DrillMarking:
    """ASGI middleware: adds the drill header to answers whose request was switched into a
    drill (the switch notes it in the request's state)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def marked(message: Message) -> None:
            if message["type"] == "http.response.start":
                drill = scope.get("state", {}).get("drill")
                if drill is not None:
                    headers = list(message.get("headers", []))
                    headers.append((DRILL_HEADER.lower().encode(), str(drill).encode()))
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, marked)


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
