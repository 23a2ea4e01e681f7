"""Batched clients are woken by their tick length's shared ticks: the first message after a
quiet spell goes at once, what comes during a tick waits for its end (one frame), a queue
half full does not wait, and each tick length keeps its own ticks."""

from __future__ import annotations

import asyncio

from cityops.command_center.live import BatchTicks, LiveClient, Subscription
from cityops.domain.actors import Actor, Role

TICK_MS = 200


class Frames:
    async def send_text(self, data: str) -> None:  # never called: no sender runs here
        raise AssertionError(data)


def client(clients: set[LiveClient], ticks: BatchTicks, batch_ms: int = TICK_MS,
           queue_size: int = 100) -> LiveClient:
    made = LiveClient(actor=Actor("disp", Role.DISPATCHER),
                      subscription=Subscription(frozenset({"grid-cases"})), outbox=Frames(),
                      queue_size=queue_size, batch_ms=batch_ms, ticks=ticks)
    clients.add(made)
    return made


async def woken(of: LiveClient) -> bool:
    await asyncio.sleep(0)  # a tick due now runs at the end of the loop's turn
    if of.wake.is_set():
        of.wake.clear()
        return True
    return False


def test_a_tick_wakes_every_client_of_its_length_with_messages_once() -> None:
    async def scenario() -> None:
        clients: set[LiveClient] = set()
        ticks = BatchTicks(clients)
        first, second, idle = (client(clients, ticks) for _ in range(3))
        # A quiet spell: the first message goes at once, with the others of the same turn.
        first.offer(1, "a")
        second.offer(1, "a")
        assert first.wake.is_set() is False  # not woken by the offer itself
        assert await woken(first) and await woken(second)
        assert not await woken(idle)
        first.queue.clear()
        second.queue.clear()
        # Within the tick: they wait for its end, and are woken once for all that came.
        for seq in (2, 3, 4):
            first.offer(seq, "b")
            second.offer(seq, "b")
        await asyncio.sleep(TICK_MS / 1000 / 4)
        assert not first.wake.is_set() and not second.wake.is_set()
        await asyncio.sleep(TICK_MS / 1000)
        assert await woken(first) and await woken(second)
        assert [seq for seq, _, _ in first.queue] == [2, 3, 4]
        ticks.close()

    asyncio.run(scenario())


def test_a_queue_half_full_does_not_wait_for_the_tick() -> None:
    async def scenario() -> None:
        clients: set[LiveClient] = set()
        ticks = BatchTicks(clients)
        busy = client(clients, ticks, queue_size=8)
        busy.offer(1, "a")
        assert await woken(busy)
        busy.queue.clear()
        for seq in (2, 3, 4):
            busy.offer(seq, "b")
        assert not busy.wake.is_set()
        busy.offer(5, "b")  # half of 8
        assert busy.wake.is_set()
        ticks.close()

    asyncio.run(scenario())


def test_each_tick_length_keeps_its_own_ticks() -> None:
    async def scenario() -> None:
        clients: set[LiveClient] = set()
        ticks = BatchTicks(clients)
        slow = client(clients, ticks, batch_ms=1000)
        fast = client(clients, ticks, batch_ms=50)
        single = client(clients, ticks, batch_ms=0)
        for each in (slow, fast):
            each.offer(1, "a")
            assert await woken(each)
            each.queue.clear()
            each.offer(2, "b")
        single.offer(1, "a")
        assert single.wake.is_set()  # unbatched: woken by every message
        await asyncio.sleep(0.2)
        assert fast.wake.is_set() and not slow.wake.is_set()
        ticks.close()

    asyncio.run(scenario())
