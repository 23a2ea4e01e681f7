"""`/ws`: the live push to dashboards and field pages (protocol in docs/websocket.md).

The endpoint only speaks the protocol: it authenticates the first message's token, checks
every message (a bad one closes the connection with 4400 and says what is wrong) and hands
the client to the process's `LiveHub`, which sends it snapshots and changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Annotated, Any, Literal

from fastapi import APIRouter, WebSocket
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.websockets import WebSocketState

from cityops.command_center.auth import NotAuthenticated
from cityops.command_center.drill_switch import DrillOutbox, drill_id_of, room_of
from cityops.command_center.live import LiveClient, LiveHub, SessionEnded, Subscription
from cityops.command_center.server_time import clock_reading
from cityops.domain.accounts.account import AccountView
from cityops.domain.actors import Actor
from cityops.domain.errors import DomainError
from cityops.domain.supervision import Light
from cityops.projections.live_changes import LIVE_LAYERS, PRESENCE

log = logging.getLogger(__name__)

router = APIRouter(tags=["live"])

HELLO_TIMEOUT_S = 10.0
UNAUTHENTICATED = 4401
BAD_MESSAGE = 4400
SERVER_ERROR = 1011
KNOWN_LAYERS = (*LIVE_LAYERS, PRESENCE)
MAX_MESSAGE_CHARS = 64_000
MAX_BATCH_MS = 1000
BatchMs = Annotated[int, Field(ge=0, le=MAX_BATCH_MS, strict=True)]
"""`batch_ms`: 0 for one frame per message, or the ms a client's changes may wait to
travel together in one `changes` frame."""


class BadMessage(Exception):
    """A client message that does not follow the protocol (closes with 4400)."""


class SubscriptionIn(BaseModel):
    """SUB: the layers wanted and the filters every item must pass."""

    model_config = ConfigDict(extra="forbid")

    layers: list[str]
    bbox: Annotated[list[float], Field(min_length=4, max_length=4)] | None = None
    categories: list[str] | None = None
    levels: list[str] | None = None
    lights: list[Light] | None = None
    department: str | None = None

    @field_validator("layers")
    @classmethod
    def _known_layers(cls, layers: list[str]) -> list[str]:
        unknown = [name for name in layers if name not in KNOWN_LAYERS]
        if unknown:
            raise ValueError(f"unknown layer {unknown[0]!r}; layers: {', '.join(KNOWN_LAYERS)}")
        return layers

    @field_validator("bbox")
    @classmethod
    def _possible_bbox(cls, bbox: list[float] | None) -> list[float] | None:
        if bbox is None:
            return None
        min_lon, min_lat, max_lon, max_lat = bbox
        if not (-180 <= min_lon <= 180 and -180 <= max_lon <= 180):
            raise ValueError("bbox longitudes must be within -180..180")
        if not (-90 <= min_lat <= 90 and -90 <= max_lat <= 90):
            raise ValueError("bbox latitudes must be within -90..90")
        if min_lon > max_lon or min_lat > max_lat:
            raise ValueError("bbox minimum is greater than its maximum "
                             "([min_lon, min_lat, max_lon, max_lat])")
        return bbox

    def subscription(self) -> Subscription:
        def values(items: list[str] | None) -> frozenset[str] | None:
            return frozenset(items) if items is not None else None

        return Subscription(
            layers=frozenset(self.layers),
            bbox=(self.bbox[0], self.bbox[1], self.bbox[2], self.bbox[3])
            if self.bbox is not None else None,
            categories=values(self.categories), levels=values(self.levels),
            lights=frozenset(light.value for light in self.lights)
            if self.lights is not None else None,
            department=self.department,
        )


class ResumeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    generation: int = Field(ge=1)
    position: int = Field(ge=0)


class Hello(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["hello"]
    token: str = Field(min_length=1)
    subscribe: SubscriptionIn
    resume: ResumeIn | None = None
    batch_ms: BatchMs = 0
    drill: str | None = Field(default=None, max_length=64)
    """The drill to follow (its participants only); absent or "live": the live city."""


class Subscribe(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["subscribe"]
    subscribe: SubscriptionIn
    batch_ms: BatchMs | None = None
    """None: as it was."""


class Viewing(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["viewing"]
    layer: str | None = None
    id: str | None = Field(default=None, max_length=200)


class Ping(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["ping"]


MESSAGES: dict[str, type[BaseModel]] = {
    "hello": Hello, "subscribe": Subscribe, "viewing": Viewing, "ping": Ping,
}


def parse_message(text: str) -> BaseModel:
    """A client message, or `BadMessage` saying what is wrong with it."""
    if len(text) > MAX_MESSAGE_CHARS:
        raise BadMessage(f"message too long: at most {MAX_MESSAGE_CHARS} characters")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise BadMessage(f"messages are JSON objects: {error}") from None
    if not isinstance(data, dict):
        raise BadMessage("messages are JSON objects with a \"type\"")
    kind = data.get("type")
    model = MESSAGES.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise BadMessage(f"unknown message type {kind!r}; types: {', '.join(MESSAGES)}")
    try:
        return model.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "message"
        message = str(first["msg"]).removeprefix("Value error, ")
        raise BadMessage(f"bad {kind} message: {where}: {message}") from None


async def _refuse(websocket: WebSocket, code: int, message: str) -> None:
    """Say why and close (4401 unauthenticated or credentials changed, 4400 bad message,
    1008 account disabled)."""
    if websocket.application_state == WebSocketState.CONNECTED \
            and websocket.client_state == WebSocketState.CONNECTED:
        with contextlib.suppress(Exception):
            await websocket.send_text(json.dumps({"type": "error", "message": message}))
            # A close reason is limited to 123 bytes; the error message says it all.
            await websocket.close(code=code, reason=message.encode()[:120].decode(
                errors="ignore"))


async def _receive_text(websocket: WebSocket) -> str | None:
    """The next text frame (None once the client has gone)."""
    message = await websocket.receive()
    if message["type"] == "websocket.disconnect":
        return None
    text = message.get("text")
    if text is None:
        raise BadMessage("messages are JSON text frames, not binary ones")
    return str(text)


@router.websocket("/ws")
async def live(websocket: WebSocket) -> None:
    """Live push: a snapshot of the subscribed layers, then every change, each with its
    position (resume after a reconnect with no gap and no duplicate)."""
    await websocket.accept()
    hub: LiveHub = websocket.app.state.live
    try:
        text = await asyncio.wait_for(_receive_text(websocket), HELLO_TIMEOUT_S)
        if text is None:
            return
        hello = parse_message(text)
    except TimeoutError:
        await _refuse(websocket, UNAUTHENTICATED, f"no hello within {HELLO_TIMEOUT_S:.0f} s: "
                      "send {\"type\":\"hello\",\"token\":...,\"subscribe\":...} first")
        return
    except BadMessage as error:
        await _refuse(websocket, BAD_MESSAGE, str(error))
        return
    if not isinstance(hello, Hello):
        await _refuse(websocket, UNAUTHENTICATED,
                      "authenticate first: the first message must be a hello with a token")
        return
    try:
        account: AccountView = await asyncio.to_thread(
            websocket.app.state.auth.account_for_token, hello.token)
    except NotAuthenticated as error:
        await _refuse(websocket, UNAUTHENTICATED, str(error))
        return
    except Exception:  # never drop the socket without a close code
        log.exception("checking the token of a live client failed")
        await _refuse(websocket, SERVER_ERROR, "the login could not be checked; reconnect")
        return
    actor: Actor = account.actor()
    outbox: Any = websocket
    try:
        drill_id = drill_id_of(hello.drill)
        if drill_id is not None:
            system = await asyncio.to_thread(room_of(websocket.app).system_for, drill_id, actor)
            hub = await websocket.app.state.drill_hubs.hub(drill_id, system)
            outbox = DrillOutbox(websocket, drill_id)
    except DomainError as error:
        await _refuse(websocket, BAD_MESSAGE, f"drill: {error}")
        return
    # The socket stays bound to this login: the hub ends it when the account changes.
    client = LiveClient(actor=actor, subscription=hello.subscribe.subscription().scoped_to(actor),
                        outbox=outbox, queue_size=hub.queue_size,
                        batch_ms=hello.batch_ms,
                        credential_version=account.credential_version)
    await outbox.send_text(json.dumps({"type": "welcome", "user": actor.as_dict(),
                                          "generation": hub.generation,
                                          "batch_ms": hello.batch_ms,
                                          **clock_reading(hub.system.clock)}))
    resume = (hello.resume.generation, hello.resume.position) if hello.resume else None
    sender = asyncio.create_task(hub.run_sender(client), name="cityops-live-sender")
    receiver = asyncio.create_task(_converse(websocket, hub, client),
                                   name="cityops-live-receiver")
    hub.connect(client, resume)
    try:
        done, _ = await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        hub.disconnect(client)
        for task in (sender, receiver):
            task.cancel()
        for task in (sender, receiver):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if client.viewing is not None:
            with contextlib.suppress(Exception):
                await hub.view(client, None, None)  # a disconnect ends the presence
    for task in done:
        if task.cancelled():
            continue
        failure = task.exception()
        if isinstance(failure, BadMessage):
            await _refuse(websocket, BAD_MESSAGE, str(failure))
        elif isinstance(failure, SessionEnded):
            await _refuse(websocket, failure.code, failure.reason)
        elif failure is not None and not _gone(failure):
            log.error("live push to %s failed", actor.user_id, exc_info=failure)
            await _refuse(websocket, SERVER_ERROR, "the server could not go on; reconnect "
                          "and resume")


def _gone(error: BaseException) -> bool:
    """Whether the error only says the client has gone."""
    from starlette.websockets import WebSocketDisconnect

    return isinstance(error, WebSocketDisconnect | ConnectionError | RuntimeError)


async def _converse(websocket: WebSocket, hub: LiveHub, client: LiveClient) -> None:
    """Answer the client's messages after its hello, until it goes (or sends a bad one)."""
    while True:
        text = await _receive_text(websocket)
        if text is None:
            return
        message: Any = parse_message(text)
        if isinstance(message, Hello):
            raise BadMessage("hello was already received; send subscribe to change the "
                             "subscription")
        if isinstance(message, Subscribe):
            client.subscription = message.subscribe.subscription().scoped_to(client.actor)
            if message.batch_ms is not None:
                client.batch_ms = message.batch_ms
            client.demand("snapshot")
        elif isinstance(message, Viewing):
            if message.id is not None and message.layer not in LIVE_LAYERS:
                raise BadMessage(f"bad viewing message: layer must be one of "
                                 f"{', '.join(LIVE_LAYERS)} (got {message.layer!r})")
            await hub.view(client, message.layer, message.id)
        elif isinstance(message, Ping):
            await hub.refresh_presence(client)
            client.offer(None, '{"type":"pong"}')
