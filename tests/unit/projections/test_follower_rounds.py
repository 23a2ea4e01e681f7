"""The projection thread's rounds: a wake that names the logs that moved runs their
followers only (with those that have work left, and those new to the thread); a wake that
does not, and a round every poll interval, run every follower."""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Iterable

from cityops.projections.follower import FollowerThread


class Following:
    """A follower of some logs that does what it is told to (`results`: what each of its
    batches returns, then 0), and counts its batches."""

    def __init__(self, name: str, logs: Iterable[str], records_in: Iterable[str] = (),
                 results: Iterable[int | Exception] = ()) -> None:
        self.projection = "test"
        self.application_name = name
        self.logs = frozenset(logs)
        self.records_in = frozenset(records_in)
        self.results: deque[int | Exception] = deque(results)
        self.batches = 0
        self.ran_at: list[float] = []
        self.resets = 0
        self.lock = threading.Lock()

    def process_batch(self) -> int:
        with self.lock:
            self.batches += 1
            self.ran_at.append(time.monotonic())
            result = self.results.popleft() if self.results else 0
        if isinstance(result, Exception):
            raise result
        return result

    def reset(self) -> None:
        self.resets += 1


def ran(*followers: Following) -> list[int]:
    return [f.batches for f in followers]


def test_the_first_round_runs_every_follower_then_a_named_log_only_its_followers() -> None:
    cases = Following("gridcases", ["gridcases"])
    tickets = Following("hotline", ["hotline"])
    follow_up = Following("gridcases+incidents", ["gridcases", "incidents"])
    thread = FollowerThread([follow_up, cases, tickets], poll_interval=60)
    thread.run_round([follow_up, cases, tickets], {"gridcases"})
    assert ran(follow_up, cases, tickets) == [1, 1, 1]  # all new to the thread
    thread.run_round([follow_up, cases, tickets], {"gridcases"})
    assert ran(follow_up, cases, tickets) == [2, 2, 1]
    thread.run_round([follow_up, cases, tickets], {"incidents"})
    assert ran(follow_up, cases, tickets) == [3, 2, 1]
    thread.run_round([follow_up, cases, tickets], set())
    assert ran(follow_up, cases, tickets) == [3, 2, 1]
    thread.run_round([follow_up, cases, tickets], None)  # not said which: every one
    assert ran(follow_up, cases, tickets) == [4, 3, 2]


def test_a_follower_with_work_left_runs_again_without_being_named() -> None:
    cases = Following("gridcases", ["gridcases"], results=[0, 500, 500, 3])
    tickets = Following("hotline", ["hotline"])
    thread = FollowerThread([cases, tickets], poll_interval=60)
    followers = [cases, tickets]
    assert not thread.run_round(followers, None)
    assert thread.run_round(followers, {"gridcases"})
    assert thread.run_round(followers, set())
    assert thread.run_round(followers, set())
    assert not thread.run_round(followers, set())  # found nothing more: done
    assert not thread.run_round(followers, set())
    assert ran(cases, tickets) == [5, 1]


def test_a_process_that_recorded_runs_the_followers_of_its_downstream_in_that_round() -> None:
    conversions = Following("hotline", ["hotline"], records_in=["gridcases"], results=[0, 1])
    cases = Following("gridcases", ["gridcases"])
    resources = Following("resources", ["resources"])
    followers = [conversions, cases, resources]
    thread = FollowerThread(followers, poll_interval=60)
    thread.run_round(followers, None)
    thread.run_round(followers, {"hotline"})
    assert ran(conversions, cases, resources) == [2, 2, 1]


def test_a_follower_new_to_the_thread_runs_in_its_first_round() -> None:
    old = Following("gridcases", ["gridcases"])
    thread = FollowerThread([old], poll_interval=60)
    thread.run_round([old], None)
    rebuilt = Following("gridcases", ["gridcases"])  # a rebuild switched over
    warnings = Following("warnings", ["warnings"])
    thread.run_round([rebuilt, warnings], set())
    assert ran(old, rebuilt, warnings) == [1, 1, 1]
    thread.run_round([rebuilt, warnings], set())
    assert ran(old, rebuilt, warnings) == [1, 1, 1]


def test_a_follower_that_failed_is_tried_again_next_round() -> None:
    cases = Following("gridcases", ["gridcases"], results=[RuntimeError("database away"), 2])
    tickets = Following("hotline", ["hotline"])
    thread = FollowerThread([cases, tickets], poll_interval=60)
    assert not thread.run_round([cases, tickets], None)
    assert (thread.failures, cases.resets) == (1, 1)
    assert thread.run_round([cases, tickets], set())
    assert ran(cases, tickets) == [2, 1]


def test_named_wakes_gather_and_a_wake_that_does_not_name_wins() -> None:
    thread = FollowerThread([], poll_interval=60)
    thread._moved = set()
    thread.wake(["gridcases"])
    thread.wake(["hotline"])
    assert thread._moved == {"gridcases", "hotline"}
    thread.wake()
    thread.wake(["resources"])
    assert thread._moved is None


def test_every_follower_runs_once_a_poll_interval_under_a_stream_of_named_wakes() -> None:
    cases = Following("gridcases", ["gridcases"])
    warnings = Following("warnings", ["warnings"])
    thread = FollowerThread([cases, warnings], poll_interval=0.2, min_round_interval=0.01)
    thread.start()
    try:
        until = time.monotonic() + 1.5
        while time.monotonic() < until:
            thread.wake(["gridcases"])
            time.sleep(0.005)
    finally:
        thread.stop()
        thread.join(5)
    # About 100 rounds for the cases; a round of every follower each 0.2 s (about 7).
    assert cases.batches > 40
    assert 4 <= warnings.batches <= 12


def test_a_named_wake_does_not_put_off_the_round_of_every_follower() -> None:
    """A wake for one log just before every follower is due ran that log's followers and
    then waited a whole poll interval again: the others waited nearly two."""
    named = Following("gridcases", ["gridcases"])
    other = Following("warnings", ["warnings"])
    poll = 0.6
    thread = FollowerThread([named, other], poll_interval=poll)
    thread.start()
    try:
        time.sleep(0.2)  # the first round, of every follower, is over
        time.sleep(max(0.0, other.ran_at[-1] + poll - 0.05 - time.monotonic()))
        thread.wake(["gridcases"])
        time.sleep(2 * poll)
    finally:
        thread.stop()
        thread.join(5)
    gaps = [later - earlier for earlier, later in itertools.pairwise(other.ran_at)]
    assert gaps and max(gaps) < poll + 0.2, gaps
