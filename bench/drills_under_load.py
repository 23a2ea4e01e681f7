"""Benchmark: live WebSocket latency while drills replay history at 100x, against the same
run without drills, measured in the same run (issue 12: three drills at 100x at once while
the live system takes 200 reports/s; live p99 under 250 ms).

It is bench/ws_latency.py's system run (`run_system`): a real `cityops serve` (with
`--postgres` a projection process beside it, with `--push-process` the clients on a second
API process), `--clients` dashboards on `/ws` subscribed to every layer with no filter,
grid-case reports entering at `--rate` per second through `POST /grid-cases` (open loop,
each stamped with when it was due), p50/p99 from a report's entry to its change in every
client over the measured window. Run twice, each on a fresh store holding the same history
(the demo-day seed of bench/city_history.py, its events copied as they are and projected
before the processes start):

1. without drills: the baseline;
2. with `--drills` drills (3) started by a planner through `POST /drills` on the API process
   that takes the commands, at `--speed` (100x), each replaying the busiest stretch of the
   history (the window with the most events, long enough to last the whole run at that
   speed). They start before the load; the load begins once each has copied the city as it
   stood at its window's start, so the measured window sees them replaying at 100x.

Also reported: each drill's progress over the measured window (events replayed per second,
drill seconds per real second: 100 when it keeps its speed), how long the drills took to
start, and the 1-minute load average (before, at the window's end, after).

Usage:
    python bench/drills_under_load.py --postgres --push-process --batch-ms 50
    python bench/drills_under_load.py --clients 100 --rate 200          # embedded SQLite
    python bench/drills_under_load.py --clients 10 --rate 20 --seconds 5 --warm-up 2
"""

from __future__ import annotations

import argparse
import bisect
import logging
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import summary
from city_history import SEED_EVENTS, seed_system
from projection_rebuild import copy_events
from ws_latency import (
    Deployment,
    RunHooks,
    RunResult,
    add_run_options,
    add_users,
    check_run_options,
    database,
    login,
    run_system,
    scratch_folder,
)

from cityops.bootstrap import CitySystem, build_system
from cityops.drill_replay import city_timed, event_time
from cityops.settings import Settings

TARGET_P99_MS = 250.0
START_TIMEOUT_S = 600.0
PLANNER = "bench-planner"


def load() -> str:
    return ", ".join(f"{v:.2f}" for v in os.getloadavg())


# --- the history ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """The stretch of history the drills replay."""

    start: datetime
    end: datetime
    events: int
    """City-timed events in it."""
    before: int
    """Events a drill copies first (the city as it stood at the start)."""


def busiest_window(seed: CitySystem, length: timedelta,
                   starts_within: timedelta = timedelta(days=1)) -> Window:
    """The window of `length` with the most events of the history among those starting
    within `starts_within` of its first event (so that a drill has little to copy before
    its window: the measured part is its replay at speed; its end at the last event at
    most)."""
    times: list[datetime] = []
    stamped: list[list[datetime | None]] = []
    for app in seed.applications:
        decode = app.mapper.transcoder.decode
        position, last = 0, None
        mine: list[datetime | None] = []
        while page := app.recorder.select_notifications(start=position, limit=2000,
                                                        inclusive_of_start=False):
            position = page[-1].id
            for n in page:
                if city_timed(n.topic):
                    last = event_time(n.state, decode)
                    times.append(last)
                mine.append(last)  # a receipt goes with the event before it
        stamped.append(mine)
    times.sort()
    if not times:
        raise RuntimeError("the history has no events")
    length = min(length, times[-1] - times[0])
    best, best_start, k = -1, times[0], 0
    for i, start in enumerate(times):
        if start + length > times[-1] or start > times[0] + starts_within:
            break
        k = max(k, i)
        k = bisect.bisect_right(times, start + length, lo=k)
        if k - i > best:
            best, best_start = k - i, start
    # Starting just before its first event: that event is replayed, not copied.
    start = best_start - timedelta(seconds=1)
    before = sum(1 for mine in stamped for at in mine if at is not None and at <= start)
    return Window(start, start + length, max(best, 0), before)


def copy_history(seed: CitySystem, deployment: Deployment) -> None:
    """The seed's events into the deployment's store, as they are, and projected (processes
    and read models) before its processes start."""
    settings = Settings(data_dir=deployment.folder / "data",
                        database_url=deployment.database_url, run_projections=False)
    target = build_system(settings, city=seed.city)
    try:
        copy_events(seed, target)
        target.catch_up()
    finally:
        target.close()


# --- the drills ---------------------------------------------------------------------------------


@dataclass
class Sample:
    at: float
    """time.monotonic()"""
    replayed: list[int]
    drill_time: list[datetime]
    failures: list[str | None]
    done: list[bool]


@dataclass
class DrillLoad(RunHooks):
    """A run's history, and its drills (none for the baseline run)."""

    seed: CitySystem
    window: Window
    drills: int
    speed: float
    settle_s: float = 5.0
    subject: str = "system"
    password: str = ""
    base_url: str = ""
    token: str = ""
    ids: list[str] = field(default_factory=list)
    started_in: float = 0.0
    samples: list[Sample] = field(default_factory=list)
    opened: float = 0.0
    closed: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        self.subject = f"+{self.drills} drills" if self.drills else "no drills"

    def prepare(self, deployment: Deployment, password: str) -> None:
        add_users(deployment, password, **{PLANNER: "planner"})
        self.password = password
        began = time.perf_counter()
        copy_history(self.seed, deployment)
        print(f"    history copied and projected in {time.perf_counter() - began:.0f} s",
              flush=True)

    def begin(self, deployment: Deployment) -> None:
        if not self.drills:
            return
        import httpx

        self.base_url = deployment.base_url
        self.token = login(deployment.base_url, PLANNER, self.password)
        began = time.perf_counter()
        for number in range(self.drills):
            response = httpx.post(
                f"{self.base_url}/drills", headers=self._headers(), timeout=120,
                json={"title": f"bench drill {number + 1}",
                      "window_from": self.window.start.isoformat(),
                      "window_to": self.window.end.isoformat(), "speed": self.speed})
            if response.status_code != 201:
                raise RuntimeError(f"starting a drill failed: {response.status_code} "
                                   f"{response.text[:300]}")
            self.ids.append(str(response.json()["id"]))
        # Each copies the city as it stood at the window's start first, as fast as it can.
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            sample = self._sample()
            failed = [f for f in sample.failures if f]
            if failed:
                raise RuntimeError(f"a drill failed: {failed[0]}")
            if min(sample.replayed) >= self.window.before:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the drills did not start in {START_TIMEOUT_S:.0f} s: "
                                   f"{sample.replayed} of {self.window.before} events")
            time.sleep(0.5)
        self.started_in = time.perf_counter() - began
        print(f"    {self.drills} drills started (each copied {self.window.before:,} events "
              f"first) in {self.started_in:.1f} s; load {load()}", flush=True)
        time.sleep(self.settle_s)  # their read models catch up with what they copied
        self._thread = threading.Thread(target=self._follow, daemon=True)
        self._thread.start()

    def window_opened(self) -> None:
        self.opened = time.monotonic()

    def window_closed(self) -> None:
        self.closed = time.monotonic()

    def end(self, deployment: Deployment) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def _sample(self) -> Sample:
        import httpx

        bodies = []
        for drill_id in self.ids:
            response = httpx.get(f"{self.base_url}/drills/{drill_id}", headers=self._headers(),
                                 timeout=30)
            response.raise_for_status()
            bodies.append(response.json())
        return Sample(time.monotonic(), [int(b["events_replayed"]) for b in bodies],
                      [datetime.fromisoformat(b["drill_time"]) for b in bodies],
                      [b.get("failure") for b in bodies],
                      [bool(b["window_replayed"]) for b in bodies])

    def _follow(self) -> None:
        """A sample a second (as a planner's page polls), in a thread of its own."""
        while not self._stop.wait(1.0):
            try:
                self.samples.append(self._sample())
            except Exception as error:  # the run's report says a sample failed
                logging.getLogger(__name__).warning("drill sample failed: %s", error)

    def progress(self) -> list[dict[str, Any]]:
        """Each drill over the measured window: events replayed per second, drill seconds
        per second, whether it was done or failed."""
        if not self.samples or not self.closed:
            return []
        first = min(self.samples, key=lambda s: abs(s.at - self.opened))
        last = min(self.samples, key=lambda s: abs(s.at - self.closed))
        seconds = max(1e-9, last.at - first.at)
        return [{"drill": self.ids[i][:8],
                 "events_per_s": (last.replayed[i] - first.replayed[i]) / seconds,
                 "speed": (last.drill_time[i] - first.drill_time[i]).total_seconds() / seconds,
                 "replayed": last.replayed[i], "window_done": last.done[i],
                 "failure": last.failures[i]} for i in range(len(self.ids))]


# --- the run ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=100, help="WebSocket clients")
    parser.add_argument("--drills", type=int, default=3)
    parser.add_argument("--speed", type=float, default=100.0,
                        help="drill seconds per real second (1 to 100)")
    parser.add_argument("--settle", type=float, default=5.0,
                        help="seconds between the drills' start and the load")
    parser.add_argument("--seed-events", type=int, default=SEED_EVENTS,
                        help="events of the demo-day history (bench/city_history.py's seed)")
    add_run_options(parser)
    summary.add_option(parser)
    args = parser.parse_args(argv)
    check_run_options(parser, args)
    logging.basicConfig(level=logging.ERROR)

    print(f"load average before: {load()}", flush=True)
    seed = seed_system(args.seed_events)
    try:
        # Long enough for the drills to replay at their speed through the whole run.
        length = timedelta(seconds=args.speed * (args.warm_up + args.seconds + args.drain + 120))
        window = busiest_window(seed, length)
        print(f"{args.rate:.0f} reports/s, {args.clients} clients "
              f"({'batched ' + str(args.batch_ms) + ' ms' if args.batch_ms else 'unbatched'}), "
              f"store {'PostgreSQL' if args.postgres else 'embedded SQLite'}"
              f"{' + push process' if args.push_process else ''}; drills replay "
              f"{window.start:%Y-%m-%d %H:%M} .. {window.end:%H:%M} UTC "
              f"({window.events:,} events; "
              f"{window.events / length.total_seconds() * args.speed:,.1f} events/s each at "
              f"{args.speed:.0f}x), after copying {window.before:,}",
              flush=True)
        runs: list[tuple[RunResult, DrillLoad]] = []
        with scratch_folder(args.keep) as scratch:
            for drills in (0, args.drills):
                hooks = DrillLoad(seed, window, drills, args.speed, args.settle)
                folder = Path(scratch) / f"drills-{drills}"
                folder.mkdir()
                print(f"  run {hooks.subject}: load {load()}", flush=True)
                with database(args.postgres) as url:
                    result = run_system(args.clients, args, folder, url, hooks)
                runs.append((result, hooks))
                print(result.line(), flush=True)
                print(result.trend(), flush=True)
                for p in hooks.progress():
                    print(f"    drill {p['drill']}: {p['events_per_s']:,.1f} events/s, "
                          f"{p['speed']:,.1f} drill s per s, {p['replayed']:,} replayed"
                          f"{', window done' if p['window_done'] else ''}"
                          f"{', FAILED: ' + str(p['failure']) if p['failure'] else ''}",
                          flush=True)
    finally:
        seed.close()
    (base, _), (loaded, hooks) = runs
    ratio = loaded.percentile(99) / base.percentile(99)
    met = loaded.percentile(99) < TARGET_P99_MS and loaded.lost == 0
    print()
    print(f"live /ws p99 without drills {base.percentile(99):.1f} ms, with {args.drills} drills "
          f"at {args.speed:.0f}x {loaded.percentile(99):.1f} ms: {ratio:.2f} x; target p99 < "
          f"{TARGET_P99_MS:.0f} ms with drills: {'met' if met else 'MISSED'}")
    print(f"load average (1 min) at the windows' ends: {base.window.load_average:.2f} without, "
          f"{loaded.window.load_average:.2f} with drills; after: {load()}")
    progress = hooks.progress()
    speeds = ", ".join(f"{p['speed']:.0f}x" for p in progress)
    summary.write(args.summary, "drills_under_load.py", [summary.Row(
        name=f"{args.clients} clients, {args.rate:.0f}/s, {args.drills} drills at "
             f"{args.speed:.0f}x",
        baseline=f"no drills: p50 {base.percentile(50):.1f}, p99 {base.percentile(99):.1f} ms",
        figure=f"p50 {loaded.percentile(50):.1f}, p99 {loaded.percentile(99):.1f} ms, lost "
               f"{loaded.lost}; drills kept {speeds or '?'}",
        ratio=ratio, ratio_text=f"p99 {ratio:.2f}x", target=f"p99 < {TARGET_P99_MS:.0f} ms",
        met=met)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
