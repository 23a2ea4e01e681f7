"""The composition root: builds the applications, read models and projection followers of
CityOps from one `Settings` object. Nothing connects at import time; everything starts here.
"""

from __future__ import annotations

import gc
import hmac
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from eventsourcing.application import Application

from cityops.domain.accounts.application import Accounts
from cityops.domain.catalogue import Catalogue
from cityops.domain.clock import Clock, system_clock
from cityops.domain.commands import CommandHandlers
from cityops.domain.coordination import CityOperations
from cityops.domain.duplicates import DuplicatePolicy
from cityops.domain.exercises.application import Exercises
from cityops.domain.exercises.scenario import Scenario, ScenarioReference, parse_scenario
from cityops.domain.gridcases.application import GridCases
from cityops.domain.hazards.application import HazardSources
from cityops.domain.hazards.catalogue import HazardCatalogue
from cityops.domain.hotline.application import HotlineTickets
from cityops.domain.incidents.application import Incidents
from cityops.domain.processes.case_conversions import CaseConversions
from cityops.domain.processes.following import CrossStreamProcess
from cityops.domain.processes.incident_escalations import IncidentEscalations
from cityops.domain.processes.resource_movements import ResourceMovements
from cityops.domain.processes.ticket_follow_up import TicketFollowUp
from cityops.domain.resources.application import Resources
from cityops.domain.reviews.application import Reviews
from cityops.domain.reviews.norms import ResponseNorms
from cityops.domain.sharing import SharingPolicy
from cityops.domain.warnings.application import SenderIdentity, Warnings
from cityops.feeds.sharing import load_sharing_policy
from cityops.health import FeedPositions, FeedWatch, HealthLimits, ProcessHealth, ProjectionWatch
from cityops.ingest.prefetch import BatchLookups
from cityops.metrics import MetricsServer, ProcessMetrics, ProjectionCollector
from cityops.projections.emergency import incident_table, plan_table, resource_table
from cityops.projections.follower import Follower, FollowerThread, LogFollower, ProjectedTable
from cityops.projections.generations import (
    ActiveGenerationStore,
    GenerationStorage,
    PostgresGenerations,
    ReadModelGenerations,
    SqliteGenerations,
)
from cityops.projections.hazards import hazard_source_table
from cityops.projections.history import with_histories
from cityops.projections.hotline import ticket_table
from cityops.projections.live_changes import LiveChangeLog, light_change_writer, live_channel
from cityops.projections.photos import PhotoStore
from cityops.projections.readings import StoredLatestReadings
from cityops.projections.returns import case_return_table, ticket_return_table
from cityops.projections.spatial import SpatialQueries, spatial_queries_for
from cityops.projections.statistics import CaseDispatchTable, CityStatistics
from cityops.projections.supervision_clock import SupervisionClock
from cityops.projections.tables import SummaryTable
from cityops.projections.views import ReadModels, grid_case_table
from cityops.projections.warnings import warning_table
from cityops.settings import Settings
from cityops.storage import (
    PostgresListener,
    ReadStore,
    event_channels,
    start_up_serialised,
)

if TYPE_CHECKING:
    from cityops.maps.city import City
    from cityops.maps.warning_areas import WarningAreaLocator

log = logging.getLogger(__name__)

PROJECTION_NAME = "cityops-views"


@dataclass
class CitySystem:
    """Everything one CityOps process needs, wired together."""

    settings: Settings
    catalogue: Catalogue
    hazard_catalogue: HazardCatalogue
    sharing: SharingPolicy
    """Who may see which field: applied by every read path and feed (docs/sharing.md)."""
    city: City
    """The city's map and positioned inventory (cityops.maps)."""
    store: ReadStore
    """The active read-model generation's store (it follows a switch-over)."""
    read_models: ReadModels
    grid_cases: GridCases
    incidents: Incidents
    hazards: HazardSources
    hotline: HotlineTickets
    resources: Resources
    warnings: Warnings
    """The warning desk: public and inter-agency warnings (docs/warnings.md)."""
    exercises: Exercises
    """Exercises played from scenario files, their injects and ratings (docs/scenarios.md;
    not a read-model source: not in `applications`)."""
    spatial: SpatialQueries
    """Bbox, polygon, radius and nearest questions over the read models and the city."""
    generations: ReadModelGenerations
    statistics: CityStatistics
    photos: PhotoStore
    """Photos uploaded from the field (base store: shared by every process, kept across
    rebuilds)."""
    accounts: Accounts
    """Users, departments and Open311 API keys (not a read-model source: not in
    `applications`)."""
    ticket_follow_up: TicketFollowUp
    """The process by which a ticket follows the case or incident it became (it runs
    wherever the projections run, before the read models in each round)."""
    case_conversions: CaseConversions
    """The process by which the grid cases report the case a ticket was converted into."""
    resource_movements: ResourceMovements
    """The process by which the incidents record the resources sent to them and leaving."""
    incident_escalations: IncidentEscalations
    """The process by which the incidents record the tickets and alarms escalated to them."""
    batch_lookups: BatchLookups
    """What the applications look up (the city map, open reports, latest readings), in a
    form an ingest batch fetches once for all of its messages."""
    reviews: Reviews
    """After-action reviews: findings and improvement plans (docs/after-action-review.md;
    not a read-model source: not in `applications`)."""
    response_norms: ResponseNorms
    """Minutes from report to each milestone of a response, by category and level."""
    clock: Clock = system_clock
    """The system's one clock (`cityops.domain.clock`): every application, read model, feed
    and page of this system reads it; a simulated one in the demo or a drill."""
    supervision: SupervisionClock | None = None
    thread: FollowerThread | None = None
    wakeup: PostgresListener | None = None
    """On PostgreSQL: wakes `thread` when any process records events (the event stores'
    NOTIFY); the followers poll too (`projection_poll_interval_s`), so a missed
    notification costs latency, never a change."""

    @property
    def followers(self) -> list[Follower]:
        """The followers of the read models' active generation."""
        return self.generations.followers()

    @property
    def commands(self) -> CommandHandlers:
        """The one entry point of commands (`domain/commands.py`): `handle(command,
        context)` runs each in the application that handles its class."""
        return CommandHandlers([self.grid_cases, self.incidents, self.hazards, self.hotline,
                                self.resources, self.accounts, self.warnings, self.reviews,
                                self.exercises])

    @property
    def operations(self) -> CityOperations:
        """The commands that span two streams."""
        return CityOperations(grid_cases=self.grid_cases, incidents=self.incidents,
                              hazards=self.hazards, hotline=self.hotline,
                              resources=self.resources, case_conversions=self.case_conversions,
                              resource_movements=self.resource_movements,
                              incident_escalations=self.incident_escalations)

    @property
    def processes(self) -> list[CrossStreamProcess]:
        """The processes across streams (`cityops.domain.processes`): each follows one
        application's log and acts on another, from positions tracked with what it did."""
        return [self.case_conversions, self.incident_escalations, self.resource_movements,
                self.ticket_follow_up]

    @property
    def applications(self) -> list[Application[Any]]:
        return [self.grid_cases, self.incidents, self.hazards, self.hotline, self.resources,
                self.warnings]

    def start_projections(self) -> None:
        """Follow the event stores in a background thread (embedded run and projection
        processes)."""
        if self.thread is None and self.settings.run_projections:
            # The thread asks which followers to run each round: a rebuild may switch over.
            self.thread = FollowerThread(self.following,
                                         self.settings.projection_poll_interval_s,
                                         self.settings.projection_min_round_interval_s)
            self.thread.start()
            if self.settings.database_url is not None:
                # Other processes record most events here (API, ingest): their commits
                # NOTIFY, so the followers need not wait for their next poll.
                # Each channel is one application's event store: the round it wakes runs
                # the followers of that log only.
                thread = self.thread
                logs = dict(zip(event_channels(self.applications),
                                (a.name for a in self.applications), strict=True))

                def notified(channel: str) -> None:
                    log_name = logs.get(channel)
                    thread.wake(None if log_name is None else (log_name,))

                self.wakeup = PostgresListener(self.settings.database_url, list(logs),
                                               notified, purpose="follower wake-up")
                self.wakeup.start()
        # Every process with watchers pushes light changes, following or not (it only reads).
        if self.supervision is not None:
            self.supervision.start()

    def following(self) -> list[LogFollower]:
        """What the projection thread runs each round: the processes across streams first
        (what they record is then projected in the same round), then the read models."""
        return [*self.processes, *self.generations.following()]

    def catch_up(self) -> None:
        """Bring the processes across streams and every read model up to date now (tests,
        CLI, start-up)."""
        for process in self.processes:
            process.catch_up()
        for follower in self.followers:
            follower.catch_up()

    def wake_projections(self) -> None:
        if self.thread is not None:
            self.thread.wake()

    def close(self) -> None:
        if self.wakeup is not None:
            self.wakeup.stop()
            self.wakeup = None
        if self.thread is not None:
            self.thread.stop()
            self.thread.join(timeout=10)
            self.thread = None
        if self.supervision is not None:
            self.supervision.stop()
        for application in self.applications:
            application.close()
        self.exercises.close()
        self.accounts.close()
        self.reviews.close()
        self.store.close()


def load_city(settings: Settings, catalogue: Catalogue,
              hazard_catalogue: HazardCatalogue) -> City:
    """The city's map and inventory; codes in a city's own files are checked against the
    catalogues (the shipped demo city is checked by its tests)."""
    from cityops.maps import load_city as load_city_from
    from cityops.maps import load_demo_city

    if settings.city_dir is not None:
        return load_city_from(settings.city_dir, catalogue=catalogue,
                              hazard_catalogue=hazard_catalogue)
    return load_demo_city()


def warning_geography(city: City) -> WarningAreaLocator:
    """The city's map as the warning desk asks it (in the city? which areas?)."""
    from cityops.maps.warning_areas import WarningAreaLocator

    return WarningAreaLocator(city.map)


def scenario_parser(city: City, catalogue: Catalogue) -> Callable[[str], Scenario]:
    """The scenario files' reader, checking them against this city and catalogue."""
    from functools import partial

    from cityops.maps.scenario_places import CityScenarioReference

    reference = ScenarioReference(catalogue=catalogue, city=CityScenarioReference(city))
    return partial(parse_scenario, reference=reference)


def build_system(settings: Settings, *, clock: Clock = system_clock,
                 city: City | None = None, drill_id: str | None = None) -> CitySystem:
    """Build a CityOps system from settings (embedded SQLite or PostgreSQL); a drill's
    (`drill_id`, `cityops.drills`) on its own stores and clock, its warning desk issuing
    exercises only."""
    catalogue = Catalogue.load(settings.catalogue_dir)
    hazard_catalogue = HazardCatalogue.load(settings.catalogue_dir)
    sharing = load_sharing_policy(settings.sharing_catalogue,
                                  departments=catalogue.departments)
    city = city if city is not None else load_city(settings, catalogue, hazard_catalogue)
    # Processes starting at once on PostgreSQL create their event stores, read models and
    # other tables one after the other: created at the same instant, IF NOT EXISTS still
    # races ("tuple concurrently updated", a duplicate type).
    with start_up_serialised(settings.database_url):
        return _wire(settings, clock, catalogue, hazard_catalogue, sharing, city, drill_id)


def read_model_tables(catalogue: Catalogue) -> dict[str, list[ProjectedTable]]:
    """The read-model tables projected from each application's events (each with its
    history: projections/history.py)."""
    return with_histories({
        "gridcases": [grid_case_table(catalogue), CaseDispatchTable(), case_return_table()],
        "incidents": [incident_table(), plan_table()],
        "hazards": [hazard_source_table()],
        "hotline": [ticket_table(), ticket_return_table()],
        "resources": [resource_table()],
        "warnings": [warning_table()],
    })


def _wire(settings: Settings, clock: Clock, catalogue: Catalogue,
          hazard_catalogue: HazardCatalogue, sharing: SharingPolicy, city: City,
          drill_id: str | None = None) -> CitySystem:
    """Open the stores and wire the applications, read models and clocks (creating what
    is missing)."""
    storage: GenerationStorage
    if settings.database_url is None:
        storage = SqliteGenerations(settings.data_dir)
    else:
        storage = PostgresGenerations(settings.database_url, settings.database_schema,
                                      settings.database_pool_size)
    tables = read_model_tables(catalogue)
    summary_tables = [t for group in tables.values() for t in group
                      if isinstance(t, SummaryTable)]
    generations = ReadModelGenerations(storage, tables, PROJECTION_NAME)
    # Every generation gets the live push's change log; its followers write it while they
    # keep the active generation.
    live_changes = LiveChangeLog(
        channel=live_channel(settings.database_schema) if storage.dialect == "postgres"
        else None,
        retention=timedelta(minutes=settings.live_retention_minutes))
    generations.live_changes = live_changes
    store = ActiveGenerationStore(generations)
    read_models = ReadModels(store, summary_tables)
    duplicate_policy = DuplicatePolicy(radius_m=settings.duplicate_radius_m,
                                       window=settings.duplicate_window)

    def env(name: str) -> dict[str, str]:
        return settings.event_store_env(name)

    # The applications look things up through lookups that an ingest batch can fetch for
    # all of its messages at once (ingest/prefetch.py); outside a batch they pass each
    # question on. Built here, once, so that nothing re-wires an application later.
    lookups = BatchLookups.around(
        city.map, read_models.open_reports("rm_grid_cases", "category"),
        read_models.open_reports("rm_tickets", "topic"),
        StoredLatestReadings(storage.base()), duplicate_policy)
    grid_cases = GridCases(
        env(GridCases.name), catalogue=catalogue, locator=lookups.locator,
        open_reports=lookups.open_cases, duplicate_policy=duplicate_policy, clock=clock,
    )
    incidents = Incidents(env(Incidents.name), catalogue=catalogue, clock=clock)
    hazards = HazardSources(env(HazardSources.name), catalogue=hazard_catalogue, clock=clock,
                            latest_readings=lookups.latest_readings)
    hotline = HotlineTickets(
        env(HotlineTickets.name), catalogue=catalogue, locator=lookups.locator,
        open_tickets=lookups.open_tickets, duplicate_policy=duplicate_policy, clock=clock,
    )
    # A resource is dispatched only to an incident open for resources (checked as it decides).
    resources = Resources(env(Resources.name), catalogue=catalogue, clock=clock,
                          incidents=incidents)
    warnings = Warnings(
        env(Warnings.name), catalogue=catalogue, geography=warning_geography(city),
        incident_of=incidents.incident, hazard_source_of=hazards.source,
        sender=SenderIdentity(sender=settings.warning_sender,
                              name=settings.warning_sender_name,
                              identifier_prefix=settings.warning_identifier_prefix),
        drill_id=drill_id, clock=clock,
    )
    # A drill's system reviews that drill (its warning desk knows which drill it is).
    reviews = Reviews(env(Reviews.name), catalogue=catalogue, clock=clock,
                      incident_exists=incidents.incident, drill_id=warnings.drill_id)
    exercises = Exercises(env(Exercises.name), parse=scenario_parser(city, catalogue),
                          clock=clock)
    # Identity is administered in real time, also in a drill or a demo day on its own clock.
    accounts = Accounts(env(Accounts.name), catalogue=catalogue)
    accounts.seed_departments()
    # The read models' active generation opens here (generation 1 on the first start).
    generations.start([grid_cases, incidents, hazards, hotline, resources, warnings])
    spatial = spatial_queries_for(store, summary_tables, city)
    if storage.dialect == "postgres":
        # The city's layers are published into each generation's schema: a generation that
        # a rebuild opens gets them before it serves (publishing is idempotent).
        generations.on_open.append(
            lambda opened: spatial_queries_for(opened, summary_tables, city).close())

    system = CitySystem(
        settings=settings,
        catalogue=catalogue,
        hazard_catalogue=hazard_catalogue,
        sharing=sharing,
        city=city,
        store=store,
        read_models=read_models,
        spatial=spatial,
        grid_cases=grid_cases,
        incidents=incidents,
        hazards=hazards,
        hotline=hotline,
        resources=resources,
        warnings=warnings,
        exercises=exercises,
        generations=generations,
        statistics=CityStatistics(store),
        photos=PhotoStore(generations.registry.store, clock=clock),
        accounts=accounts,
        ticket_follow_up=TicketFollowUp(hotline, grid_cases, incidents),
        case_conversions=CaseConversions(hotline, grid_cases),
        resource_movements=ResourceMovements(resources, incidents),
        incident_escalations=IncidentEscalations(hotline, hazards, incidents),
        batch_lookups=lookups,
        reviews=reviews,
        response_norms=ResponseNorms.load(catalogue, settings.catalogue_dir),
        clock=clock,
    )
    spatial.follow(system.followers)

    def grid_case_position() -> int:
        return next(f.position() for f in system.followers
                    if f.application_name == GridCases.name)

    system.supervision = SupervisionClock(
        generations.store, clock, generations.listeners(GridCases.name),
        projection=PROJECTION_NAME, position=grid_case_position,
    )
    if settings.run_projections:
        # The processes that follow also write the clock's light changes to the change log
        # (once, however many of them see the change).
        generations.listeners(GridCases.name).append(
            light_change_writer(live_changes, generations.store, clock))
    return system


@dataclass
class Operations:
    """What one process tells its operators: its own Prometheus registry (never the
    library's global one: one per app instance) and its health checks, over the same
    watches (docs/operations.md)."""

    metrics: ProcessMetrics
    health: ProcessHealth
    metrics_token: str | None = None
    """With it, a scrape must send `Authorization: Bearer <token>`."""
    on_close: list[Callable[[], object]] = field(default_factory=list)

    def may_scrape(self, authorization: str | None) -> bool:
        """Whether a scrape with this `Authorization` header may read the metrics."""
        if self.metrics_token is None:
            return True
        expected = f"Bearer {self.metrics_token}".encode()
        return hmac.compare_digest((authorization or "").encode(), expected)

    def close(self) -> None:
        for release in self.on_close:
            release()
        self.on_close.clear()


def build_operations(system: CitySystem, *, projections: bool = True,
                     dead_letters: Callable[[], int] | None = None,
                     feed_positions: Callable[[], FeedPositions] | None = None,
                     monotonic: Callable[[], float] = time.monotonic) -> Operations:
    """The metrics and health of one process: the projections' lag and failing aggregates
    (with `projections`), ingest's dead letters (`dead_letters`: the total so far) and the
    feeds' positions (`feed_positions`). The caller registers what else it measures."""
    metrics = ProcessMetrics()
    watch = None
    if projections:
        watch = ProjectionWatch(lambda: system.followers, monotonic,
                                processes=lambda: system.processes)

        def thread_failures() -> int | None:
            return system.thread.failures if system.thread is not None else None

        metrics.register(ProjectionCollector(watch, thread_failures))
    feeds = None
    if feed_positions is not None:
        feeds = FeedWatch(feed_positions, monotonic)
    health = ProcessHealth(HealthLimits.of(system.settings), projections=watch,
                           dead_letters=dead_letters, feeds=feeds, monotonic=monotonic)
    token = system.settings.metrics_token
    return Operations(metrics=metrics, health=health,
                      metrics_token=token.get_secret_value() if token is not None else None)


def start_metrics_server(operations: Operations, settings: Settings,
                         port: int | None = None) -> MetricsServer | None:
    """Serve `/metrics` and `/health` of a process without a web app (projection, ingest,
    feed processes) on `port` (else `CITYOPS_METRICS_PORT`; neither: no server). It stops
    when `operations` is closed."""
    port = port if port is not None else settings.metrics_port
    if port is None:
        return None
    server = MetricsServer(operations.metrics, operations.health.report,
                           host=settings.metrics_host, port=port,
                           may_scrape=operations.may_scrape).start()
    operations.on_close.append(server.stop)
    return server


class StoredDeadLetterCount:
    """Every ingest worker's dead letters so far, added up from the counters they save in
    the base store (opened at the first count, closed with the process's operations)."""

    def __init__(self, system: CitySystem) -> None:
        self.system = system
        self._store: ReadStore | None = None
        self._table: Any = None

    def __call__(self) -> int:
        if self._table is None:
            from cityops.ingest.counters import CounterTable

            self._store = self.system.generations.storage.base()
            self._table = CounterTable(self._store)
        return sum(c.dead_lettered for c in self._table.by_topic().values())

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store, self._table = None, None


def freeze_long_lived_objects() -> None:
    """Move what a long-running process built at start (the city's map, catalogues, imported
    libraries: ~120,000 objects) out of the garbage collector's reach. Full collections then
    no longer walk them: measured, they stalled every request and WebSocket push in flight
    (POST p99 178 ms -> 22 ms, bench/README.md)."""
    gc.collect()
    gc.freeze()
