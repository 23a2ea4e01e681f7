"""Benchmark: a drill's replay as fast as possible, against the raw read-and-decode rate of
the same event stores, measured in the same run (embedded SQLite).

The store is a synthetic history of the demo city made through the application commands
on a simulated clock: grid cases reported at random places by the inspectors who patrol
them, registered, dispatched, handled by their department, verified on site and closed,
one command every few simulated seconds (each command one event, as live), until the stores
hold `--events` events. (Simulated demo days, `bench/projection_rebuild.py`'s `generate`,
take about a minute per 2,000 events on the shared machine: too slow for 100,000.)
It measures, best of `--repeat` runs each:

- raw read: `select_notifications` + `mapper.to_domain_event` over every event of the
  city's six stores (the baseline: a replay reads and orders every event);
- drill replay: a drill started over the whole history (`StartDrill`, speed `max`) through
  the drill room, from its runner's start until every event is in the drill's own stores
  (read, timed from the stored bytes, merged in time order across the stores, written in
  batches with their hash chains, progress saved after each batch); building the drill's
  system before (catalogues, stores, read-model tables: a fixed cost) is shown apart;
- and, apart, how long the drill's read models then take to catch up (not part of the
  replay's rate: they follow in their own thread while a drill runs).

The target (issue 12): replay >= 50 % of the raw read rate. `uptime` is printed before and
after: the machine is shared, so figures are only comparable within one run.

Usage:
    python bench/drill_replay.py                           # >= 100,000 events
    python bench/drill_replay.py --events 100000 --store /tmp/drill-bench-events
"""

from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from projection_rebuild import event_count, raw_read

from cityops.bootstrap import CitySystem, build_system
from cityops.domain.actors import Actor, Role
from cityops.domain.commands import CommandContext
from cityops.domain.drills.commands import DeleteDrill, StartDrill
from cityops.domain.geometry import GeoPoint
from cityops.domain.gridcases.commands import (
    CloseCase,
    DispatchCase,
    HandleCase,
    RegisterCase,
    ReportCase,
    VerifyCase,
)
from cityops.drill_replay import city_timed, event_time
from cityops.drills import DrillRoom
from cityops.settings import Settings
from cityops.simulator import SimulatedClock

PLANNER = CommandContext(actor=Actor("bench-planner", Role.PLANNER))


def generate(folder: Path, events: int) -> CitySystem:
    """Grid cases through their whole workflow, one command each few simulated seconds,
    until the stores hold `events` events."""
    clock = SimulatedClock(datetime(2026, 3, 2, tzinfo=UTC), 0.0)
    system = build_system(Settings(data_dir=folder, run_projections=False), clock=clock)
    rng = random.Random(12)
    city = system.city.map
    bounds = city.bounds
    dispatcher = Actor("bench-dispatcher", Role.DISPATCHER)
    categories = ["E0101", "E0102", "E0401", "C0101", "E0201"]
    made = event_count(system)
    while made < events:
        clock.advance_to(clock() + timedelta(seconds=rng.uniform(1, 8)))
        while True:
            point = GeoPoint(lon=rng.uniform(bounds[0], bounds[2]),
                             lat=rng.uniform(bounds[1], bounds[3]))
            located = city.locate(point)
            if located is not None and located.inspector_id:
                inspector = located.inspector_id
                break
        reporter = Actor(str(inspector), Role.INSPECTOR)
        outcome = system.commands.handle(ReportCase(category=rng.choice(categories),
                                                    description="bench report",
                                                    location=point),
                                         CommandContext(actor=reporter))
        case_id = outcome.subject
        steps: list[tuple[Any, Actor]] = [(RegisterCase(case_id=case_id), dispatcher),
                                          (DispatchCase(case_id=case_id), dispatcher)]
        for command, actor in steps:
            clock.advance_to(clock() + timedelta(seconds=rng.uniform(1, 8)))
            system.commands.handle(command, CommandContext(actor=actor))
        case = system.grid_cases.case(case_id)
        department = Actor(f"desk-{case.department}", Role.DEPARTMENT_USER, case.department)
        for command, actor in ((HandleCase(case_id=case_id, result="fixed"), department),
                               (VerifyCase(case_id=case_id, fixed=True), reporter),
                               (CloseCase(case_id=case_id), dispatcher)):
            clock.advance_to(clock() + timedelta(seconds=rng.uniform(1, 8)))
            system.commands.handle(command, CommandContext(actor=actor))
        made += 6
        if made % 6000 == 0:
            print(f"  {made:,} events", flush=True)
    return system


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def history_bounds(system: object) -> tuple[object, object]:
    """The first and last city time of the stores."""
    first, last = None, None
    for app in system.applications:  # type: ignore[attr-defined]
        decode = app.mapper.transcoder.decode
        page = app.recorder.select_notifications(start=1, limit=50)
        for n in page:
            if city_timed(n.topic):
                at = event_time(n.state, decode)
                first = at if first is None or at < first else first
                break
        head = app.recorder.max_notification_id() or 0
        tail = app.recorder.select_notifications(start=max(1, head - 200), limit=201)
        for n in tail:
            if city_timed(n.topic):
                at = event_time(n.state, decode)
                last = at if last is None or at > last else last
    return first, last


def replay_once(room: DrillRoom, first: object, last: object,
                ) -> tuple[int, float, float, float]:
    """(events replayed, seconds to replay them, seconds to start the drill (its system
    built), seconds for the read models to catch up)."""
    drill_id = uuid.uuid4()
    started = time.perf_counter()
    room.handle(StartDrill(drill_id=drill_id, title="bench", window_from=first,  # type: ignore[arg-type]
                           window_to=last, speed=None), PLANNER)  # type: ignore[arg-type]
    run = room.run_of(drill_id)
    assert run is not None
    while not run.replay.progress.window_replayed:
        if run.replay.failure:
            raise RuntimeError(run.replay.failure)
        time.sleep(0.01)
    whole = time.perf_counter() - started
    replayed = run.replay.replayed_in or whole
    events = run.replay.progress.replayed
    caught = time.perf_counter()
    run.system.catch_up()
    catch_up = time.perf_counter() - caught
    room.handle(DeleteDrill(drill_id=drill_id), PLANNER)
    return events, replayed, whole - replayed, catch_up


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--store", type=Path, default=None,
                        help="keep the generated event stores here (reused when present)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    folder = args.store or Path(tempfile.mkdtemp(prefix="cityops-drill-bench-"))
    print(f"uptime before: {uptime()}", flush=True)
    if (folder / "gridcases.sqlite").exists():
        system = build_system(Settings(data_dir=folder, run_projections=False))
        print(f"store {folder}: {event_count(system):,} events", flush=True)
        if event_count(system) < args.events:
            system.close()
            system = generate(folder, args.events)
    else:
        print(f"generating {args.events:,} events in {folder} ...", flush=True)
        system = generate(folder, args.events)
    shutil.rmtree(folder / "drills", ignore_errors=True)
    total = event_count(system)
    first, last = history_bounds(system)
    print(f"{total:,} events, city time {first} .. {last}", flush=True)
    raw_rates, replay_rates, catch_ups = [], [], []
    room = DrillRoom(system)
    try:
        for attempt in range(args.repeat):
            count, seconds = raw_read(system.applications)
            raw_rates.append(count / seconds)
            events, replayed, opening, catch_up = replay_once(room, first, last)
            replay_rates.append(events / replayed)
            catch_ups.append(catch_up)
            print(f"  run {attempt + 1}: raw read {count:,} events in {seconds:.2f} s "
                  f"({count / seconds:,.0f}/s); replay {events:,} events in {replayed:.2f} s "
                  f"({events / replayed:,.0f}/s; the drill's system built in {opening:.1f} s "
                  f"before); read models caught up in {catch_up:.1f} s",
                  flush=True)
    finally:
        room.close()
        system.close()
    raw, replay = max(raw_rates), max(replay_rates)
    print(f"best raw read {raw:,.0f} events/s; best replay {replay:,.0f} events/s = "
          f"{100 * replay / raw:.0f} % of raw (target >= 50 %); read models caught up in "
          f"{min(catch_ups):.1f} s at best")
    print(f"uptime after: {uptime()}")
    if args.store is None:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
