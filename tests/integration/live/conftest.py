"""Fixtures of the live push tests: a real CityOps system behind a real uvicorn server on a
free port (in a thread of the test process, so the test can issue commands directly), users
with real login tokens, and `websockets` clients that speak the /ws protocol."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import uvicorn
import websockets
from websockets.asyncio.client import ClientConnection

from cityops.bootstrap import CitySystem, build_system
from cityops.command_center.app import create_app
from cityops.domain.accounts.account import PasswordHasher
from cityops.domain.actors import Actor, Role
from cityops.domain.geometry import GeoPoint
from cityops.settings import Settings

ADMIN = Actor("live-admin", Role.ADMIN)
DISPATCHER = Actor("disp-live", Role.DISPATCHER)
ALL_LAYERS = ["grid-cases", "incidents", "hazard-sources", "resources", "hotline-tickets"]
IN_TOWN = GeoPoint(118.80, 32.05)
TEST_HASHER = PasswordHasher(n=2**10, r=8, p=1)
RECEIVE_TIMEOUT_S = 10.0


@pytest.fixture
def anyio_backend() -> str:
    """The async tests run on asyncio (anyio's pytest plugin), like uvicorn."""
    return "asyncio"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class LiveServer:
    """A real uvicorn server over the system's app, in a background thread."""

    def __init__(self, system: CitySystem, *, send_buffer: int | None = None) -> None:
        self.system = system
        self.app = create_app(system)
        # A listening socket of our own; with `send_buffer`, the connections it accepts
        # inherit a small kernel send buffer (no autotuning), so that a client that stops
        # reading pushes back on the server after a few kilobytes, not megabytes.
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if send_buffer is not None:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
        listener.bind(("127.0.0.1", 0))
        self.port = listener.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning",
                                                    lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [listener]},
                                       name="uvicorn", daemon=True)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)

    def token(self, role: str = "dispatcher", dept: str | None = None,
              user: str | None = None) -> str:
        """A real login token of a user of that role (created if need be)."""
        name = user or f"{role}-{dept or 'live'}"
        accounts = self.system.accounts
        if accounts.find_user(name) is None:
            accounts.add_user(name, role=role, department=dept, password="live-password-1",
                              actor=ADMIN)
        token: str = self.app.state.auth.issue_token(name)
        return token


def settings_for(tmp_path: Path, **overrides: Any) -> Settings:
    return Settings(data_dir=tmp_path, projection_poll_interval_s=0.05, **overrides)


def build(settings: Settings, demo_city: Any) -> CitySystem:
    system = build_system(settings, city=demo_city)
    system.accounts.hasher = TEST_HASHER
    return system


@pytest.fixture
def live_server_factory(tmp_path: Path, demo_city: Any) -> Iterator[
        Callable[..., LiveServer]]:
    """Starts servers (embedded SQLite in a temporary folder unless settings say otherwise);
    they stop at the end of the test."""
    servers: list[LiveServer] = []

    def start(settings: Settings | None = None, **options: Any) -> LiveServer:
        server = LiveServer(build(settings or settings_for(tmp_path), demo_city),
                            **options).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def live_server(live_server_factory: Callable[..., LiveServer]) -> LiveServer:
    return live_server_factory()


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory,
                  demo_city: Any) -> Iterator[LiveServer]:
    """One server for the tests that only check refusals (they change nothing)."""
    server = LiveServer(build(settings_for(tmp_path_factory.mktemp("live")), demo_city))
    yield server.start()
    server.stop()


def report_case(system: CitySystem, point: GeoPoint = IN_TOWN, category: str = "E0101",
                description: str = "Overflowing bins") -> UUID:
    # Reported by the inspector who patrols the place (elsewhere it is marked: one more
    # event).
    inspector = Actor(system.city.map.locate(point).inspector_id, Role.INSPECTOR)
    case_id: UUID = system.grid_cases.report(source="inspector", category=category,
                                             description=description, location=point,
                                             actor=inspector)
    return case_id


@dataclass
class Session:
    """One /ws connection as a test drives it: every message it received, in order."""

    ws: ClientConnection
    received: list[dict[str, Any]] = field(default_factory=list)

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message))

    async def next(self, timeout: float = RECEIVE_TIMEOUT_S) -> dict[str, Any]:
        message: dict[str, Any] = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
        self.received.append(message)
        return message

    async def next_of(self, kind: str, timeout: float = RECEIVE_TIMEOUT_S) -> dict[str, Any]:
        """The next message of that type (others are kept in `received`)."""
        deadline = time.monotonic() + timeout
        while True:
            message = await self.next(max(0.01, deadline - time.monotonic()))
            if message["type"] == kind:
                return message

    async def until(self, condition: Callable[[dict[str, Any]], bool],
                    timeout: float = RECEIVE_TIMEOUT_S) -> dict[str, Any]:
        """Read until a message satisfies `condition`; returns it."""
        deadline = time.monotonic() + timeout
        while True:
            message = await self.next(max(0.01, deadline - time.monotonic()))
            if condition(message):
                return message

    async def close(self) -> None:
        await self.ws.close()

    def changes(self) -> list[dict[str, Any]]:
        """Every change received, in order, those of batched `changes` frames included."""
        found: list[dict[str, Any]] = []
        for message in self.received:
            if message["type"] == "change":
                found.append(message)
            elif message["type"] == "changes":
                found.extend(message["changes"])
        return found


async def open_session(url: str, token: str | None, layers: list[str] | None = None,
                       resume: dict[str, int] | None = None, batch_ms: int | None = None,
                       **filters: Any) -> Session:
    """Connect, say hello (asking for batched changes with `batch_ms`), and read the
    welcome (a refused hello raises)."""
    ws = await websockets.connect(url, open_timeout=10, close_timeout=5)
    session = Session(ws)
    hello: dict[str, Any] = {"type": "hello", "token": token,
                             "subscribe": {"layers": layers or ALL_LAYERS, **filters},
                             "resume": resume}
    if batch_ms is not None:
        hello["batch_ms"] = batch_ms
    await session.send(hello)
    welcome = await session.next()
    assert welcome["type"] == "welcome", welcome
    return session
