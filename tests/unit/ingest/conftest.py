"""Fixtures of the ingest unit tests: the applications ingest drives, keeping their
events in memory (the library's POPO persistence), the demo city's map, ingest's tables in an
in-memory SQLite database, the pipeline over them, and a sender that delivers messages like a
transport. Real code throughout (the open-report finder is a real, empty one): no mocks, no
files, no network.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from cityops.domain.catalogue import Catalogue
from cityops.domain.duplicates import OpenReport
from cityops.domain.geometry import GeoPoint
from cityops.domain.gridcases.application import GridCases
from cityops.domain.hazards.application import HazardSources
from cityops.domain.hazards.catalogue import HazardCatalogue
from cityops.domain.hotline.application import HotlineTickets
from cityops.domain.incidents.application import Incidents
from cityops.domain.resources.application import Resources
from cityops.ingest.deadletters import StoredDeadLetters
from cityops.ingest.handlers import IngestTarget
from cityops.ingest.messages import encode
from cityops.ingest.pipeline import Delivery, IngestPipeline, Outcome, RetryPolicy
from cityops.ingest.topics import Topics
from cityops.ingest.tracks import ResourceTracks
from cityops.storage import SqliteReadStore

POPO = {"PERSISTENCE_MODULE": "eventsourcing.popo"}


class NoOpenReports:
    """An open-report finder of a city where nothing is open yet (no duplicates proposed)."""

    def open_reports_near(self, point: GeoPoint, radius_m: float,
                          since: datetime) -> Sequence[OpenReport]:
        return []


@pytest.fixture
def store() -> SqliteReadStore:
    return SqliteReadStore(Path(":memory:"))


@pytest.fixture
def tracks(store: SqliteReadStore) -> ResourceTracks:
    tracks = ResourceTracks(store)
    tracks.create_table()
    return tracks


@pytest.fixture
def target(demo_city: Any, tracks: ResourceTracks) -> IngestTarget:
    """The applications ingest drives, in memory, over the demo city."""
    catalogue = Catalogue.load()
    incidents = Incidents(POPO, catalogue=catalogue)
    return IngestTarget(
        grid_cases=GridCases(POPO, catalogue=catalogue, locator=demo_city.map,
                             open_reports=NoOpenReports()),
        hotline=HotlineTickets(POPO, catalogue=catalogue, locator=demo_city.map,
                               open_tickets=NoOpenReports()),
        hazards=HazardSources(POPO, catalogue=HazardCatalogue.load()),
        resources=Resources(POPO, catalogue=catalogue, incidents=incidents),
        city_map=demo_city.map,
        tracks=tracks,
        incidents=incidents,
    )


@pytest.fixture
def dead_letters(store: SqliteReadStore) -> StoredDeadLetters:
    return StoredDeadLetters(store)


@pytest.fixture
def pipeline(target: IngestTarget, dead_letters: StoredDeadLetters) -> IngestPipeline:
    return IngestPipeline(target, dead_letters=dead_letters, topics=Topics("cityops.unit"),
                          worker="unit-test",
                          retry=RetryPolicy(first_delay_s=0.001, max_delay_s=0.01,
                                            budget_s=0.5))


@pytest.fixture
def city_point(demo_city: Any) -> GeoPoint:
    """A point well inside the demo city (the centre of one of its cells)."""
    centre = demo_city.map.cells.geometry.iloc[40].centroid
    return GeoPoint(lon=float(centre.x), lat=float(centre.y))


class Sender:
    """Delivers messages to a pipeline the way a transport does, numbering offsets."""

    def __init__(self, pipeline: IngestPipeline) -> None:
        self.pipeline = pipeline
        self.offset = 0

    def send(self, stream: str, message: dict[str, Any] | bytes | None,
             key: bytes | None = None) -> Outcome:
        value = encode(message) if isinstance(message, dict) else message
        self.offset += 1
        return self.pipeline.process(Delivery(topic=self.pipeline.topics.name(stream),
                                              value=value, key=key, partition=0,
                                              offset=self.offset))


@pytest.fixture
def sender(pipeline: IngestPipeline) -> Sender:
    return Sender(pipeline)


@pytest.fixture
def restart(pipeline: IngestPipeline, dead_letters: StoredDeadLetters) -> Callable[[], Sender]:
    """Senders into new pipelines over the same applications: workers after a restart,
    which remember no message ids."""

    def fresh() -> Sender:
        return Sender(IngestPipeline(pipeline.target, dead_letters=dead_letters,
                                     topics=pipeline.topics, worker="restarted"))

    return fresh
