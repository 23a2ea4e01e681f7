"""A client that stops reading must not slow the others: its bounded queue overflows, it is
told to resync and gets a fresh snapshot when it reads again, while a client that reads
keeps receiving every change, in order, without a resync."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.uri import parse_uri

from cityops.domain.geometry import GeoPoint

from .conftest import LiveServer, open_session, report_case, settings_for

pytestmark = pytest.mark.anyio

QUEUE = 50
REPORTS = 300


class StalledClient:
    """A real WebSocket client (the `websockets` sans-I/O protocol over a plain socket with
    a small receive buffer) that says hello and then reads nothing until told to: the
    server's writes to it back up after a few kilobytes."""

    def __init__(self, url: str, port: int) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.connect(("127.0.0.1", port))
        self.sock.settimeout(20)
        self.protocol = ClientProtocol(parse_uri(url))
        self.protocol.send_request(self.protocol.connect())
        self._flush()
        while self.protocol.state is not State.OPEN:
            self._read()
        self.messages: list[dict[str, Any]] = []

    def _flush(self) -> None:
        for data in self.protocol.data_to_send():
            self.sock.sendall(data)

    def _read(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("the server closed the connection")
        self.protocol.receive_data(data)
        self._flush()  # answers to pings
        for event in self.protocol.events_received():
            if isinstance(event, Frame) and event.opcode is Opcode.TEXT:
                self.messages.append(json.loads(event.data))

    def send(self, message: dict[str, Any]) -> None:
        self.protocol.send_text(json.dumps(message).encode())
        self._flush()

    def next_of(self, kind: str) -> dict[str, Any]:
        """Read (at last) until a message of that type; returns it."""
        while True:
            while self.messages:
                message = self.messages.pop(0)
                if message["type"] == kind:
                    return message
            self._read()

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize("batch_ms", [None, 50], ids=["single", "batched"])
async def test_a_slow_client_is_told_to_resync_and_never_slows_a_fast_one(
        live_server_factory: Callable[..., LiveServer], tmp_path: Path,
        batch_ms: int | None) -> None:
    server = live_server_factory(settings_for(tmp_path, ws_client_queue=QUEUE),
                                 send_buffer=8192)
    token = server.token("dispatcher")
    fast = await open_session(server.url, token, layers=["grid-cases"], batch_ms=batch_ms)
    await fast.next_of("snapshot")
    slow = StalledClient(server.url, server.port)
    hello: dict[str, Any] = {"type": "hello", "token": token,
                             "subscribe": {"layers": ["grid-cases"]}, "resume": None}
    if batch_ms is not None:
        hello["batch_ms"] = batch_ms
    slow.send(hello)

    def report_many() -> list[str]:
        ids = []
        for i in range(REPORTS):
            point = GeoPoint(118.78 + (i % 40) / 1000, 32.04 + (i // 40) / 1000)
            ids.append(str(report_case(server.system, point, description="x" * 400)))
        return ids

    reported = asyncio.create_task(asyncio.to_thread(report_many))
    received: list[str] = []
    positions: list[int] = []
    while not reported.done() or len(received) < REPORTS:
        message = await fast.next(20)
        assert message["type"] != "resync", "the fast client was dropped behind"
        # A batched client gets its changes in `changes` frames only, the other never.
        assert message["type"] != ("change" if batch_ms else "changes"), message
        changes = {"change": [message], "changes": message.get("changes", [])}.get(
            message["type"], [])
        for change in changes:
            received.append(change["id"])
            positions.append(change["position"])
    ids = await reported
    assert received == ids
    assert positions == sorted(positions)

    behind = [c for c in server.app.state.live.clients
              if c.pending is not None and c.pending[0] == "resync"]
    assert len(behind) == 1 and not behind[0].queue
    # Reading again, the slow client learns it must resync and gets a fresh snapshot that
    # holds every case.
    resync = await asyncio.to_thread(slow.next_of, "resync")
    assert "too far behind" in resync["reason"]
    snapshot = await asyncio.to_thread(slow.next_of, "snapshot")
    assert {f["id"] for f in snapshot["layers"]["grid-cases"]} == set(ids)
    slow.close()
    await fast.close()
