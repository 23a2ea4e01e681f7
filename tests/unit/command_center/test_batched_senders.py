"""A batched client's sender (`batch_ms`): the first message after a quiet spell goes at
once; what comes during its tick travels in one frame at the tick's end; a queue half full
does not wait; two frames of changes are never closer than `batch_ms`, even for a sender that
ran late behind hundreds of others; and every change offered goes out. On both loops:
uvicorn runs the push on uvloop, whose timer handles differ from asyncio's.

(A timer shared by all the clients of a tick length was tried, to save the push process a
wake-up and a timer per client a tick: its frames came 25 ms apart for a sender that ran
late, and on uvloop it lost messages. These tests are what it failed.)"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import uvloop

from cityops.command_center.live import LiveClient, LiveHub, Subscription
from cityops.domain.actors import Actor, Role

Runner = Callable[[Coroutine[Any, Any, Any]], Any]
loops = pytest.mark.parametrize("run", [asyncio.run, uvloop.run], ids=["asyncio", "uvloop"])


class Frames:
    """An outbox that notes when each frame went and how many changes it carried, taking
    `cost_s` of the loop's time."""

    def __init__(self, cost_s: float = 0.0) -> None:
        self.cost_s = cost_s
        self.sent_at: list[float] = []
        self.changes = 0

    async def send_text(self, data: str) -> None:
        time.sleep(self.cost_s)
        self.sent_at.append(time.monotonic())
        self.changes += data.count('"type":"change"')


def dashboard(batch_ms: int, queue_size: int = 1000, cost_s: float = 0.0) -> LiveClient:
    return LiveClient(actor=Actor("disp", Role.DISPATCHER),
                      subscription=Subscription(frozenset({"grid-cases"})),
                      outbox=Frames(cost_s), queue_size=queue_size, batch_ms=batch_ms)


def frames_of(each: LiveClient) -> Frames:
    outbox = each.outbox
    assert isinstance(outbox, Frames)
    return outbox


def senders_of(clients: list[LiveClient]) -> list[asyncio.Task[None]]:
    hub = LiveHub.__new__(LiveHub)  # what a sender uses of its hub: nothing of its system
    return [asyncio.create_task(hub.run_sender(each)) for each in clients]


CHANGE = '{"type":"change"}'


@loops
def test_the_first_change_after_a_quiet_spell_goes_at_once_the_next_at_the_ticks_end(
        run: Runner) -> None:
    async def scenario() -> tuple[float, list[float], int]:
        watched = dashboard(batch_ms=300)
        senders = senders_of([watched])
        offered = time.monotonic()
        watched.offer(1, CHANGE)
        await asyncio.sleep(0.05)
        for seq in (2, 3, 4):
            watched.offer(seq, CHANGE)
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.4)
        for sender in senders:
            sender.cancel()
        return offered, frames_of(watched).sent_at, frames_of(watched).changes

    offered, sent, changes = run(scenario())
    assert changes == 4
    assert len(sent) == 2  # the first at once, the three of its tick together
    assert sent[0] - offered < 0.05
    assert sent[1] - sent[0] >= 0.3 - 0.001


@loops
def test_a_queue_half_full_does_not_wait_for_the_ticks_end(run: Runner) -> None:
    async def scenario() -> list[float]:
        watched = dashboard(batch_ms=1000, queue_size=8)
        senders = senders_of([watched])
        watched.offer(1, CHANGE)
        await asyncio.sleep(0.05)  # sent at once: its tick runs for a second now
        for seq in range(2, 6):  # the fourth fills half the queue
            watched.offer(seq, CHANGE)
        await asyncio.sleep(0.1)
        for sender in senders:
            sender.cancel()
        return frames_of(watched).sent_at

    assert len(run(scenario())) == 2


@loops
def test_a_sender_that_ran_late_keeps_its_frames_spaced_and_sends_every_change(
        run: Runner) -> None:
    """300 batched dashboards, a frame costing 0.25 ms of the loop's time: every other tick
    a change concerns them all (the watched one's sender then runs some 75 ms late),
    otherwise the watched one alone (its sender runs at once)."""
    tick_ms = 100

    async def scenario() -> tuple[list[LiveClient], int]:
        dashboards = [dashboard(tick_ms, cost_s=0.00025) for _ in range(300)]
        senders = senders_of(dashboards)
        watched = dashboards[-1]
        started = time.monotonic()
        for seq in itertools.count(1):
            elapsed = time.monotonic() - started
            if elapsed > 3:
                break
            for each in dashboards if int(elapsed / (tick_ms / 1000)) % 2 == 0 else [watched]:
                each.offer(seq, CHANGE)
            await asyncio.sleep(0.01)
        await asyncio.sleep(3 * tick_ms / 1000)
        for sender in senders:
            sender.cancel()
        return dashboards, seq - 1

    dashboards, offered = run(scenario())
    assert not [each for each in dashboards if each.queue]
    watched = frames_of(dashboards[-1])
    assert watched.changes == offered
    gaps_ms = [(later - earlier) * 1000
               for earlier, later in itertools.pairwise(watched.sent_at)]
    assert len(gaps_ms) > 10
    assert min(gaps_ms) >= tick_ms - 1, sorted(gaps_ms)[:5]
