"""A snapshot is taken for one subscription: the one it reports (issue 14, found in review
of the snapshot whose layers are read at once). A `subscribe` that arrives while the layers
are being read does not change what the snapshot under way filters by; it asks for a
snapshot of its own."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

from cityops.command_center.live import LiveClient, LiveHub, Subscription
from cityops.domain.actors import Actor, Role

from .conftest import build, report_case, settings_for

DISPATCHER = Actor("snapshot-subscriber", Role.DISPATCHER)


class _Nowhere:
    async def send_text(self, data: str) -> None:
        pass


def test_a_subscribe_during_a_snapshot_does_not_change_what_it_filters(
        tmp_path: Path, demo_city: Any) -> None:
    system = build(settings_for(tmp_path), demo_city)
    try:
        report_case(system)
        report_case(system)
        system.catch_up()
        hub = LiveHub(system)
        everywhere = Subscription(frozenset({"grid-cases"}))
        # A box far from the city: no case is in it.
        nowhere = Subscription(frozenset({"grid-cases"}), bbox=(0.0, 0.0, 1.0, 1.0))
        client = LiveClient(actor=DISPATCHER, outbox=_Nowhere(), queue_size=10,
                            subscription=everywhere)
        go = threading.Event()
        read_layer = hub._snapshot_layer

        def late(*args: Any) -> Any:  # the layer's worker thread starts late
            go.wait(10)
            return read_layer(*args)

        hub._snapshot_layer = late  # type: ignore[method-assign]

        async def subscribe_meanwhile() -> dict[str, Any]:
            taking = asyncio.create_task(hub.snapshot(client))
            await asyncio.sleep(0.3)
            client.subscription = nowhere  # what the WebSocket does on a `subscribe`
            go.set()
            _, _, text = await taking
            message: dict[str, Any] = json.loads(text)
            return message

        message = asyncio.run(subscribe_meanwhile())
        assert message["subscription"]["bbox"] is None
        assert len(message["layers"]["grid-cases"]) == 2
        assert message["limits"]["grid-cases"]["matched"] == 2
    finally:
        system.close()
