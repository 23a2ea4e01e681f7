"""The composition root: builds the applications, read models and projection followers of
CityOps from one `Settings` object. Nothing connects at import time; everything starts here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from eventsourcing.application import Application

from cityops.domain.application import system_clock
from cityops.domain.catalogue import Catalogue
from cityops.domain.duplicates import DuplicatePolicy
from cityops.domain.geometry import GeoPoint
from cityops.domain.gridcases import GridCases
from cityops.projections.follower import Follower, FollowerThread
from cityops.projections.store import PostgresReadStore, ReadStore, SqliteReadStore
from cityops.projections.tables import SummaryTable
from cityops.projections.views import ReadModels, grid_case_table
from cityops.settings import Settings

log = logging.getLogger(__name__)

PROJECTION_NAME = "cityops-views"


class CityLocator:
    """Adapts the city map to the domain's `GridLocator` port."""

    def __init__(self, city_map: Any) -> None:
        self.city_map = city_map

    def locate_cell(self, point: GeoPoint) -> str | None:
        location = self.city_map.locate(point)
        return None if location is None else str(location.cell_code)


@dataclass
class CitySystem:
    """Everything one CityOps process needs, wired together."""

    settings: Settings
    catalogue: Catalogue
    city: Any
    store: ReadStore
    read_models: ReadModels
    grid_cases: GridCases
    applications: list[Application[Any]] = field(default_factory=list)
    followers: list[Follower] = field(default_factory=list)
    thread: FollowerThread | None = None

    def start_projections(self) -> None:
        """Follow the event stores in a background thread (embedded run and projection
        processes)."""
        if self.thread is None:
            self.thread = FollowerThread(self.followers, self.settings.projection_poll_interval_s)
            self.thread.start()

    def catch_up(self) -> None:
        """Bring every read model up to date now (tests, CLI, start-up)."""
        for follower in self.followers:
            follower.catch_up()

    def wake_projections(self) -> None:
        if self.thread is not None:
            self.thread.wake()

    def close(self) -> None:
        if self.thread is not None:
            self.thread.stop()
            self.thread.join(timeout=10)
            self.thread = None
        for application in self.applications:
            application.close()
        self.store.close()


def load_city(settings: Settings) -> Any:
    from cityops.maps import load_city as load_city_from
    from cityops.maps import load_demo_city

    if settings.city_dir is not None:
        return load_city_from(settings.city_dir)
    return load_demo_city()


def build_system(settings: Settings, *, clock: Callable[[], datetime] = system_clock,
                 city: Any | None = None) -> CitySystem:
    """Build a CityOps system from settings (embedded SQLite or PostgreSQL)."""
    catalogue = Catalogue.load(settings.catalogue_dir)
    city = city if city is not None else load_city(settings)
    store: ReadStore
    if settings.database_url is None:
        store = SqliteReadStore(settings.data_dir / "readmodels.sqlite")
    else:
        store = PostgresReadStore(settings.database_url, settings.database_schema,
                                  settings.database_pool_size)
    cases_table = grid_case_table(catalogue)
    tables: list[SummaryTable] = [cases_table]
    read_models = ReadModels(store, tables)

    grid_cases = GridCases(
        settings.event_store_env(GridCases.name),
        catalogue=catalogue,
        locator=CityLocator(city.city_map),
        open_reports=read_models,
        duplicate_policy=DuplicatePolicy(radius_m=settings.duplicate_radius_m,
                                         window=settings.duplicate_window),
        clock=clock,
    )
    applications: list[Application[Any]] = [grid_cases]
    followers = [Follower(PROJECTION_NAME, grid_cases, [cases_table], store)]
    for follower in followers:
        follower.create_tables()
    return CitySystem(
        settings=settings,
        catalogue=catalogue,
        city=city,
        store=store,
        read_models=read_models,
        grid_cases=grid_cases,
        applications=applications,
        followers=followers,
    )
