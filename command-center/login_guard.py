"""Slowing password guessing down without handing anyone a lockout, and keeping password
hashing from starving the rest of the API.

**Throttling.** A lock per username (five failures, then nobody may log in as that user for
five minutes) lets anyone lock the duty officer out by failing their login on purpose.
Failures are therefore counted per *(username, source)* and per *source* (the client's
address), never against the user alone:

- a source may fail `FREE_PER_PAIR` times on one username, then each further attempt from
  it on that name waits an exponentially growing pause (1 s, 2 s, 4 s ... at most
  `MAX_PAUSE_S`) after its last failure;
- a source may fail `FREE_PER_SOURCE` times over all usernames (a spray of names), then the
  same pauses apply to everything it tries;
- when one username collects `UNDER_ATTACK` failures from all sources together (guessing
  spread over many addresses), every source that has failed on it even once gets the pause
  at once, with no free attempts — but a source with no failure on that name is never
  paused: the real user, typing the right password on their own device, always gets in.

So an attacker only ever slows themself (and whoever shares their address), and a
distributed attacker gets one guess per address and pause. A success clears that source's
failures on that name. Unknown usernames are counted exactly like known ones (a pause says
nothing about whether a name exists). Counting is per server process and kept in memory
(bounded: `MAX_TRACKED` keys, the stalest dropped first); a failure is forgotten after
`WINDOW_S`. The source is the TCP peer as uvicorn reports it (behind a proxy on the same
host, uvicorn takes it from `X-Forwarded-For`).

**Hashing.** scrypt is meant to be slow (about a quarter of a second and 32 MiB a hash).
Run on the request thread pool, a burst of logins with made-up names held every CPU and
every thread and slowed all other requests tenfold. Each hash now runs in a small pool of
its own (`password_hash_workers` threads, `password_hash_queue` waiting at most); when it is
full a login is answered 503 with `Retry-After` at once instead of queuing without end.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from cityops.domain.errors import DomainError

FREE_PER_PAIR = 5
"""Failures a source may have on one username before its attempts on it are paused."""
FREE_PER_SOURCE = 20
"""Failures a source may have over all usernames before all its attempts are paused."""
UNDER_ATTACK = 20
"""Failures on one username from all sources that put it under attack (see above)."""
WINDOW_S = 900.0
"""How long a failure counts."""
FIRST_PAUSE_S = 1.0
MAX_PAUSE_S = 300.0
MAX_TRACKED = 20_000
"""Keys (pairs, sources, usernames) each table keeps at most."""
BUSY_RETRY_AFTER_S = 2

T = TypeVar("T")


class LoginThrottled(DomainError):
    """Too many failed logins from this source (on this username): wait a moment (429)."""

    def __init__(self, what: str, retry_after_s: int) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(f"too many failed logins {what}; try again in {retry_after_s} s")


class PasswordChecksBusy(DomainError):
    """Every password-hashing slot is taken: try again shortly (503)."""

    def __init__(self, retry_after_s: int = BUSY_RETRY_AFTER_S) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(f"too many passwords are being checked right now; try again in "
                         f"{retry_after_s} s")


class _Failures:
    """The recent failures of one key, oldest first."""

    __slots__ = ("times",)

    def __init__(self) -> None:
        self.times: deque[float] = deque()

    def recent(self, now: float) -> int:
        while self.times and now - self.times[0] >= WINDOW_S:
            self.times.popleft()
        return len(self.times)


def _pause(failures: int, free: int) -> float:
    """The pause after the last of `failures` failures, `free` of which cost nothing."""
    if failures < max(free, 1):
        return 0.0
    return float(min(MAX_PAUSE_S, FIRST_PAUSE_S * 2.0 ** (failures - max(free, 1))))


class LoginGuard:
    """Counts failed password checks per (username, source), source and username, and
    says when an attempt must wait (thread-safe)."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._pairs: dict[tuple[str, str], _Failures] = {}
        self._sources: dict[str, _Failures] = {}
        self._users: dict[str, _Failures] = {}

    def check(self, username: str, source: str) -> None:
        """Raise `LoginThrottled` if an attempt on `username` from `source` must wait."""
        user = username.casefold()
        now = self._monotonic()
        with self._lock:
            waits = []
            pair = self._pairs.get((user, source))
            if pair is not None and pair.recent(now):
                attacked = self._count(self._users, user, now) >= UNDER_ATTACK
                free = 0 if attacked else FREE_PER_PAIR
                waits.append((pair.times[-1] + _pause(len(pair.times), free),
                              f"for {username!r} from this address"))
            spray = self._sources.get(source)
            if spray is not None and spray.recent(now):
                waits.append((spray.times[-1] + _pause(len(spray.times), FREE_PER_SOURCE),
                              "from this address"))
        until, what = max(waits, default=(0.0, ""))
        if until > now:
            raise LoginThrottled(what, max(1, math.ceil(until - now)))

    def failed(self, username: str, source: str) -> None:
        """A wrong password (or an unknown name) from `source`."""
        user = username.casefold()
        now = self._monotonic()
        with self._lock:
            self._record(self._pairs, (user, source), now)
            self._record(self._sources, source, now)
            self._record(self._users, user, now)

    def succeeded(self, username: str, source: str) -> None:
        """The right password from `source`: its failures on that name are forgiven."""
        with self._lock:
            self._pairs.pop((username.casefold(), source), None)

    def _record(self, table: dict[Any, _Failures], key: Any, now: float) -> None:
        failures = table.get(key)
        if failures is None:
            if len(table) >= MAX_TRACKED:
                self._prune(table, now)
            failures = table[key] = _Failures()
        failures.recent(now)
        failures.times.append(now)

    @staticmethod
    def _count(table: dict[str, _Failures], key: str, now: float) -> int:
        failures = table.get(key)
        return failures.recent(now) if failures is not None else 0

    @staticmethod
    def _prune(table: dict[Any, _Failures], now: float) -> None:
        """Make room: forget keys with no recent failure, then the stalest tenth."""
        for key in [k for k, f in table.items() if not f.recent(now)]:
            del table[key]
        if len(table) >= MAX_TRACKED:
            stalest = sorted(table, key=lambda k: table[k].times[-1])
            for key in stalest[:max(1, MAX_TRACKED // 10)]:
                del table[key]


class PasswordHashing:
    """A small pool of its own for password hashing: `workers` threads and `queue` waiting
    at most; beyond that, `PasswordChecksBusy` at once."""

    def __init__(self, workers: int, queue: int) -> None:
        if workers < 1 or queue < 0:
            raise ValueError("password hashing needs at least one worker and a queue >= 0")
        self._workers = workers
        self._executor: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(workers + queue)

    def _pool(self) -> ThreadPoolExecutor:
        """The threads, started on first use: an app whose lifespan ended (and closed them)
        may be started again (the test client, a server's reload)."""
        with self._pool_lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self._workers,
                                                    thread_name_prefix="cityops-password")
            return self._executor

    async def run(self, work: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run `work` (which hashes) in the pool and wait for it without holding a thread."""
        if not self._slots.acquire(blocking=False):
            raise PasswordChecksBusy()
        try:
            future = self._pool().submit(work, *args, **kwargs)
        except BaseException:
            self._slots.release()
            raise
        # The slot is free when the work is done, even if the request has gone meanwhile.
        future.add_done_callback(lambda _: self._slots.release())
        return await asyncio.wrap_future(future)

    def close(self) -> None:
        with self._pool_lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
