"""The drill room: the drill registry and the drills running in this process.

Each drill is a whole CityOps system of its own, built by the one composition root
(`build_system`) from a copy of the live settings that points at the drill's own stores
(embedded: the folder `<data_dir>/drills/<id>/`; PostgreSQL: the schema `drill_<id>`), on
the drill's own clock (`DrillClock`), with a warning desk that issues exercises only and
feeds that go to the drill's own subscriptions and Kafka topics (`<prefix>.drill-<id>`),
never to live subscribers. A runner (`DrillReplay`) replays the drill's window of history
into it. Live data is only ever read.

The registry (which drills exist, their window, speed, state and participants) is
event-sourced in its own store too (`<data_dir>/drills/registry.sqlite`, or the schema
`drills`): the `Drill` aggregate of `domain/drills/`, whose commands are handed to
`DrillRoom.handle`, which records them and then steers the runner. After a restart the
drills that were running come back paused (`DrillRoom.open`).
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

import psycopg
from psycopg import sql

from cityops.bootstrap import CitySystem, build_system
from cityops.domain.actors import SYSTEM, Actor
from cityops.domain.commands import CommandContext, CommandOutcome
from cityops.domain.drills.application import Drills
from cityops.domain.drills.commands import (
    ChangeDrillSpeed,
    DeleteDrill,
    FinishDrill,
    JumpDrillForward,
    OnDrill,
    PauseDrill,
    ResumeDrill,
    StartDrill,
)
from cityops.domain.drills.drill import Drill, DrillStatus
from cityops.domain.errors import InvalidValue, NotFound, NotPermitted
from cityops.domain.permissions import check_permitted
from cityops.drill_replay import DrillClock, DrillReplay, Exercise, ProgressStore
from cityops.exercises import drill_exercises, exercise_id_of_drill
from cityops.settings import Settings
from cityops.storage import LOCK_SPACE, SCHEMA_CHANGE_LOCK, PostgresReadStore

if TYPE_CHECKING:
    from cityops.feeds.service import FeedService

log = logging.getLogger(__name__)

DRILLS_FOLDER = "drills"
REGISTRY_FILE = "registry.sqlite"
DRILL_HEADER = "X-CityOps-Drill"
"""The header that switches a request into a drill, and marks every answer from one."""
DRILL_COOKIE = "cityops_drill"
"""The cookie the pages set when a participant switches into a drill."""

ExerciseFactory = Callable[[str, str | None, UUID, datetime], Exercise]
"""Makes the exercise of a scenario (by name, or the text of the planner's own file) for a
drill starting at a drill time (raises `InvalidValue` listing what is wrong with the
scenario, before anything starts)."""


def registry_schema(settings: Settings) -> str:
    return f"{settings.database_schema}_drills" if settings.database_schema else "drills"


def drill_schema(settings: Settings, drill_id: UUID) -> str:
    base = f"{settings.database_schema}_" if settings.database_schema else ""
    return f"{base}drill_{drill_id.hex}"


def drills_folder(settings: Settings) -> Path:
    return settings.data_dir / DRILLS_FOLDER


def registry_settings(settings: Settings) -> Settings:
    """Where the registry is kept: its own file or schema, never a live store."""
    if settings.database_url is None:
        return settings.model_copy(update={"data_dir": drills_folder(settings)})
    return settings.model_copy(update={"database_schema": registry_schema(settings)})


def drill_settings(settings: Settings, drill_id: UUID) -> Settings:
    """A copy of the live settings pointing at the drill's own stores and feed topics."""
    feeds = settings.feeds.model_copy(update={
        "topic_prefix": f"{settings.feeds.topic_prefix}.drill-{drill_id.hex[:12]}",
        "transactional_id": f"{settings.feeds.transactional_id}-drill-{drill_id.hex[:12]}"})
    update: dict[str, Any] = {"feeds": feeds, "database_pool_size": 1}
    if settings.database_url is None:
        update["data_dir"] = drills_folder(settings) / drill_id.hex
    else:
        update["database_schema"] = drill_schema(settings, drill_id)
    return settings.model_copy(update=update)


@dataclass
class DrillRun:
    """One drill open in this process: its system, clock, runner and feeds."""

    drill_id: UUID
    system: CitySystem
    clock: DrillClock
    replay: DrillReplay
    feeds: FeedService
    """The drill's own feeds: its subscriptions, delivery log, CAP alerts, and the loops
    that deliver them to the drill's destinations only (every message marked as the
    drill's)."""

    def close(self) -> None:
        self.replay.stop()
        self.feeds.close()
        self.system.close()
        self.replay.progress_store.store.close()


@dataclass(frozen=True)
class DrillView:
    """A drill as the planners' page and the API show it: the registry's facts and the
    runner's progress."""

    drill: Drill
    run: DrillRun | None

    def summary(self) -> dict[str, Any]:
        body = self.drill.summary()
        body["drill_time"] = self.drill.drill_time.isoformat()
        body["events_replayed"] = 0
        body["events_skipped"] = 0
        body["branched_aggregates"] = 0
        body["fixes_replayed"] = 0
        body["injects_delivered"] = 0
        body["window_replayed"] = False
        body["clock_rate"] = 0.0
        body["exercise_id"] = (str(exercise_id_of_drill(self.drill.id))
                               if self.drill.scenario else None)
        body["objectives"] = []
        body["failure"] = None
        if self.run is not None:
            progress = self.run.replay.progress
            body["drill_time"] = self.run.clock().isoformat()
            body["events_replayed"] = progress.replayed
            body["events_skipped"] = progress.skipped
            body["branched_aggregates"] = len(progress.branched)
            body["fixes_replayed"] = progress.fixes
            body["injects_delivered"] = progress.injects
            body["window_replayed"] = progress.window_replayed
            body["clock_rate"] = self.run.clock.speed
            body["objectives"] = list(self.run.replay.objectives)
            body["failure"] = self.run.replay.failure
        return body


class DrillRoom:
    """The drill registry and the drills open in this process."""

    def __init__(self, live: CitySystem, *, exercises: ExerciseFactory | None = None) -> None:
        """`exercises`: makes a scenario's exercise for a drill (the shipped scenarios' by
        default)."""
        self.live = live
        self.settings = live.settings
        self.exercises: ExerciseFactory = (exercises if exercises is not None
                                           else drill_exercises(live))
        self.registry = self._registry()
        self._closed = False
        self._runs: dict[UUID, DrillRun] = {}
        self._lock = threading.RLock()
        self.offers: list[Callable[[], dict[str, Any]]] = []
        """Drills offered ready to start (the demo's morning): each gives the body of a
        start as of now."""
        self.on_close: list[Callable[[UUID], object]] = []
        """Called with a drill's id before its system closes (its live push stops)."""

    # --- queries ---------------------------------------------------------------------------

    def drill(self, drill_id: UUID) -> Drill:
        drill = self.registry.drill(drill_id)
        if drill.status is DrillStatus.DELETED:
            raise NotFound(Drill.KIND, drill_id)
        return drill

    def view(self, drill_id: UUID) -> DrillView:
        return DrillView(self.drill(drill_id), self._runs.get(drill_id))

    def views(self, actor: Actor) -> list[DrillView]:
        """The drills `actor` may see: all for planners, those they take part in otherwise."""
        return [DrillView(d, self._runs.get(d.id)) for d in self.registry.drills()
                if d.status is not DrillStatus.DELETED and d.may_take_part(actor)]

    def system_for(self, drill_id: UUID, actor: Actor) -> CitySystem:
        """The system of a drill `actor` takes part in (`NotPermitted` if not invited;
        `InvalidValue` for a drill that does not exist: the switch names none)."""
        try:
            drill = self.drill(drill_id)
        except NotFound:
            raise InvalidValue(f"{DRILL_HEADER} names no drill: {drill_id} does not exist "
                               "or was deleted") from None
        if not drill.may_take_part(actor):
            raise NotPermitted(f"{actor.role.value} {actor.user_id} is not a participant of "
                               f"drill {drill_id}: a planner invites participants")
        run = self._runs.get(drill_id)
        if run is None:
            raise InvalidValue(f"drill {drill_id} is {drill.status.value}: it has no running "
                               "city to switch into")
        return run.system

    def run_of(self, drill_id: UUID) -> DrillRun | None:
        return self._runs.get(drill_id)

    # --- commands --------------------------------------------------------------------------

    def handle(self, command: OnDrill | StartDrill, context: CommandContext) -> CommandOutcome:
        """Record a command on a drill in the registry, then steer its runner."""
        check_permitted(type(command), context.actor)
        with self._lock:
            if isinstance(command, StartDrill):
                exercise = self._exercise(command)
                outcome = self.registry.handle(command, context)
                if not outcome.repeated:
                    self._open(self.registry.drill(command.drill_id), fresh=True,
                               exercise=exercise)
                return outcome
            run = self._runs.get(command.drill_id)
            if isinstance(command, JumpDrillForward | PauseDrill | FinishDrill) and run:
                # What the runner's clock says is part of the recorded fact.
                now = run.clock()
                if isinstance(command, JumpDrillForward):
                    command = JumpDrillForward(drill_id=command.drill_id, to=command.to,
                                               current=now)
                elif isinstance(command, PauseDrill):
                    command = PauseDrill(drill_id=command.drill_id, drill_time=now)
                else:
                    command = FinishDrill(drill_id=command.drill_id, drill_time=now)
            outcome = self.registry.handle(command, context)
            if run is not None and not outcome.repeated:
                self._steer(command, run)
            elif isinstance(command, DeleteDrill) and not outcome.repeated:
                self._remove(command.drill_id)
            return outcome

    def _exercise(self, command: StartDrill) -> Exercise | None:
        if command.scenario is None:
            return None
        return self.exercises(command.scenario, command.scenario_text, command.drill_id,
                              command.window_from)

    def _steer(self, command: OnDrill, run: DrillRun) -> None:
        if isinstance(command, PauseDrill):
            run.clock.pause()
        elif isinstance(command, ResumeDrill):
            run.clock.resume()
        elif isinstance(command, ChangeDrillSpeed):
            run.clock.set_speed(command.speed)
        elif isinstance(command, JumpDrillForward):
            run.clock.jump_to(command.to)
        elif isinstance(command, FinishDrill):
            run.clock.pause()
        elif isinstance(command, DeleteDrill):
            self._runs.pop(command.drill_id, None)
            self._close_run(run)
            self._remove(command.drill_id)
        run.replay.wake()

    # --- opening, closing, removing ---------------------------------------------------------

    def _registry(self) -> Drills:
        registry = registry_settings(self.settings)
        if registry.database_url is not None:
            # The library creates its tables, not the schema they live in.
            PostgresReadStore(registry.database_url, registry.database_schema, 1).close()
        return Drills(registry.event_store_env(Drills.name), clock=self.live.clock)

    def open(self) -> None:
        """Open the drills of the registry that were running or paused when this server
        stopped: each comes back paused, where it was (the registry too, after a `close`:
        an app's lifespan may start again, as under a test client)."""
        with self._lock:
            if self._closed:
                self.registry = self._registry()
                self._closed = False
        for drill in self.registry.drills():
            if drill.status not in (DrillStatus.RUNNING, DrillStatus.PAUSED) \
                    or drill.id in self._runs:
                continue
            try:
                exercise = (self.exercises(drill.scenario, drill.scenario_text, drill.id,
                                           drill.window_from)
                            if drill.scenario else None)
                self._open(drill, fresh=False, exercise=exercise)
                if drill.status is DrillStatus.RUNNING:
                    self.handle(PauseDrill(drill_id=drill.id, drill_time=drill.drill_time),
                                CommandContext(actor=SYSTEM))
            except Exception:
                log.exception("drill %s could not be opened again", drill.id)

    def _open(self, drill: Drill, *, fresh: bool, exercise: Exercise | None) -> DrillRun:
        from cityops.feeds.service import build_feed_service

        settings = drill_settings(self.settings, drill.id)
        if fresh:
            self._remove(drill.id)  # nothing of an earlier drill with this id may remain
        clock = DrillClock(drill.window_from, drill.speed,
                           running=drill.status is DrillStatus.RUNNING and fresh)
        system = build_system(settings, clock=clock, city=self.live.city,
                              drill_id=str(drill.id))
        try:
            progress_store = ProgressStore(system.generations.storage.base())
            progress = None if fresh else progress_store.load()
            if progress is not None and progress.drill_time is not None:
                clock.jump_to(datetime.fromisoformat(progress.drill_time))
            elif drill.drill_time > drill.window_from:
                clock.jump_to(drill.drill_time)
            replay = DrillReplay(drill_id=drill.id, live=self.live, system=system,
                                 clock=clock, window_from=drill.window_from,
                                 window_to=drill.window_to, progress_store=progress_store,
                                 progress=progress, exercise=exercise)
            if progress is not None and progress.window_replayed:
                clock.replay_done()
            feeds = build_feed_service(system, settings.feeds)
        except BaseException:
            system.close()
            raise
        system.start_projections()
        if settings.run_projections:
            # No feed process serves a drill (`cityops feeds run` is live's): its feeds run
            # where the drill runs, on either back end, and stop and go with it.
            feeds.start()
        run = DrillRun(drill_id=drill.id, system=system, clock=clock, replay=replay,
                       feeds=feeds)
        self._runs[drill.id] = run
        replay.start()
        return run

    def _remove(self, drill_id: UUID) -> None:
        """Remove every store of a drill: its folder, or its schemas; and its Kafka
        topics."""
        settings = drill_settings(self.settings, drill_id)
        self._remove_topics(settings)
        if settings.database_url is None:
            shutil.rmtree(settings.data_dir, ignore_errors=True)
            return
        schema = drill_schema(self.settings, drill_id)
        with psycopg.connect(settings.database_url, autocommit=True) as connection:
            names = [str(r[0]) for r in connection.execute(
                "SELECT nspname FROM pg_namespace WHERE nspname = %s OR "
                "left(nspname, %s) = %s", (schema, len(schema) + 2, f"{schema}_g")).fetchall()]
            with connection.transaction():
                connection.execute("SELECT pg_advisory_xact_lock(%s, %s)",
                                   (LOCK_SPACE, SCHEMA_CHANGE_LOCK))
                for name in names:
                    connection.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                        sql.Identifier(name)))

    @staticmethod
    def _remove_topics(settings: Settings) -> None:
        """Delete the drill's feed topics (`<prefix>.drill-<id>.*`); with Kafka out of
        reach they stay, which is logged (they hold only the drill's messages)."""
        if not settings.kafka_bootstrap_servers:
            return
        from cityops.feeds.kafka_feed import FeedTopics, delete_topics

        try:
            deleted = delete_topics(settings.kafka_bootstrap_servers,
                                    FeedTopics(settings.feeds.topic_prefix),
                                    timeout_s=settings.feeds.kafka_timeout_s)
        except Exception:
            log.exception("the Kafka topics of drill feed %s could not be deleted",
                          settings.feeds.topic_prefix)
            return
        if deleted:
            log.info("deleted the drill's feed topics %s", ", ".join(deleted))

    def _close_run(self, run: DrillRun) -> None:
        for closing in self.on_close:
            try:
                closing(run.drill_id)
            except Exception:
                log.exception("stopping what follows drill %s failed", run.drill_id)
        try:
            run.close()
        except Exception:
            log.exception("closing drill %s failed", run.drill_id)

    def close(self) -> None:
        with self._lock:
            for run in self._runs.values():
                self._close_run(run)
            self._runs.clear()
            self.registry.close()
            self._closed = True

