"""Fixtures of the feeds' unit tests: the built-in catalogues, a clock that stands still
until a test moves it, the subscription application and the hotline and incident
applications in memory (eventsourcing's POPO recorder: real, no I/O), located on the demo
city's real grid."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cityops.domain.actors import Actor, Role
from cityops.domain.catalogue import Catalogue
from cityops.domain.duplicates import OpenReport
from cityops.domain.geometry import GeoPoint
from cityops.domain.hazards.catalogue import HazardCatalogue
from cityops.domain.hotline.application import HotlineTickets
from cityops.domain.incidents.application import Incidents
from cityops.feeds.sharing import SharingCatalogue, load_sharing_policy
from cityops.feeds.subscriptions import Subscriptions

POPO = {"PERSISTENCE_MODULE": "eventsourcing.popo"}
START = datetime(2026, 3, 10, 1, 0, tzinfo=UTC)


class FixedClock:
    """Tells the same time until the test moves it."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **parts: float) -> datetime:
        self.now += timedelta(**parts)
        return self.now


class NoOpenReports:
    """A city where nothing is open yet: no duplicate is ever proposed."""

    def open_reports_near(self, point: GeoPoint, radius_m: float,
                          since: datetime) -> list[OpenReport]:
        return []


class People:
    """Who acts in these tests."""

    admin = Actor("root-wu", Role.ADMIN)
    water = Actor("water-chen", Role.DEPARTMENT_USER, "water")
    police = Actor("police-ma", Role.DEPARTMENT_USER, "police")
    dispatcher = Actor("duty-zhao", Role.DISPATCHER)
    operator = Actor("op-li", Role.HOTLINE_OPERATOR)


@pytest.fixture(scope="session")
def catalogue() -> Catalogue:
    return Catalogue.load()


@pytest.fixture(scope="session")
def hazard_catalogue() -> HazardCatalogue:
    return HazardCatalogue.load()


@pytest.fixture(scope="session")
def sharing(catalogue: Catalogue) -> SharingCatalogue:
    return load_sharing_policy(departments=catalogue.departments)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(START)


@pytest.fixture(scope="session")
def people() -> People:
    return People()


@pytest.fixture
def subscriptions(catalogue: Catalogue, hazard_catalogue: HazardCatalogue,
                  clock: FixedClock) -> Subscriptions:
    return Subscriptions(POPO, catalogue=catalogue, hazard_catalogue=hazard_catalogue,
                         clock=clock)


@pytest.fixture
def hotline(catalogue: Catalogue, demo_city: Any, clock: FixedClock) -> HotlineTickets:
    return HotlineTickets(POPO, catalogue=catalogue, locator=demo_city.map,
                          open_tickets=NoOpenReports(), clock=clock)


@pytest.fixture
def incidents(catalogue: Catalogue, clock: FixedClock) -> Incidents:
    return Incidents(POPO, catalogue=catalogue, clock=clock)


@pytest.fixture(scope="session")
def city_point(demo_city: Any) -> GeoPoint:
    """A point inside the demo city's first grid cell."""
    cell = demo_city.map.cells.iloc[0]
    inside = cell.geometry.representative_point()
    return GeoPoint(inside.x, inside.y)
