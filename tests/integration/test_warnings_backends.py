"""The warning desk's storage on both back ends: a warning's whole life (drafted from an
incident, approved by a second person, issued, updated with a wider area, cancelled) is
stored and read back exactly (every message with its content, references and times), the
read model follows it (status, area, filters, bbox), and a rejected command leaves nothing
behind, on SQLite and on PostgreSQL alike."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import shapely

from cityops.bootstrap import CitySystem, build_system
from cityops.domain.actors import Actor, Role
from cityops.domain.commands import CommandContext
from cityops.domain.errors import InvalidValue
from cityops.domain.geometry import Area, GeoPoint
from cityops.domain.incidents.commands import ReportIncident
from cityops.domain.incidents.incident import IncidentSource
from cityops.domain.warnings.commands import (
    ApproveWarning,
    CancelWarning,
    DraftWarning,
    DraftWarningUpdate,
    DrawnArea,
    IssueWarning,
)
from cityops.domain.warnings.content import MessageType, OriginKind, WarningText
from cityops.domain.warnings.warning import SecondPersonRequired
from cityops.projections.views import BBox
from cityops.projections.warnings import WARNING_TABLE
from cityops.settings import Settings

DRAFTER = Actor("duty-zhao", Role.DISPATCHER)
APPROVER = Actor("duty-li", Role.DISPATCHER)
DEPOT = (118.83165441340427, 32.04413461613862)
TEXTS = (WarningText(language="zh-CN", headline="燃气泄漏", description="液化气站泄漏",
                     instruction="远离该区域"),
         WarningText(language="en-US", headline="Gas leak", description="Leak at the depot",
                     instruction="Stay away"))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def system(request: pytest.FixtureRequest, tmp_path: Path, demo_city: Any) -> Iterator[CitySystem]:
    url = None
    if request.param == "postgres":
        databases = request.getfixturevalue("test_databases")
        url = databases.create("warnings")
    built = build_system(Settings(data_dir=tmp_path, database_url=url, database_pool_size=2,
                                  run_projections=False), city=demo_city)
    try:
        yield built
    finally:
        built.close()
        if url is not None:
            databases.drop(url)


def square(half: float) -> Area:
    lon, lat = DEPOT
    return Area(wkt=shapely.box(lon - half, lat - half, lon + half, lat + half).wkt)


def test_a_warnings_life_is_stored_and_projected(system: CitySystem) -> None:
    incident_id = system.commands.handle(ReportIncident(
        category="accident-disaster", incident_type="gas-leak", title="Gas leak",
        location=GeoPoint(*DEPOT), affected_area=square(0.004), warning="orange",
        source=IncidentSource.HOTLINE), CommandContext(actor=DRAFTER)).subject
    desk = system.warnings
    expires = system.clock() + timedelta(hours=6)
    warning_id = desk.handle(DraftWarning(origin=OriginKind.INCIDENT, incident_id=incident_id,
                                          texts=TEXTS, expires=expires, contact="12345"),
                             CommandContext(actor=DRAFTER, command_id="by:duty-zhao:w1")).subject
    with pytest.raises(SecondPersonRequired):
        desk.handle(ApproveWarning(warning_id=warning_id), CommandContext(actor=DRAFTER))
    desk.handle(ApproveWarning(warning_id=warning_id), CommandContext(actor=APPROVER))
    desk.handle(IssueWarning(warning_id=warning_id), CommandContext(actor=DRAFTER))
    desk.handle(DraftWarningUpdate(warning_id=warning_id, texts=TEXTS, expires=expires,
                                   contact="12345", reason="spreading",
                                   area=DrawnArea(polygons=(square(0.015),))),
                                       CommandContext(actor=DRAFTER))
    desk.handle(ApproveWarning(warning_id=warning_id), CommandContext(actor=APPROVER))
    desk.handle(IssueWarning(warning_id=warning_id), CommandContext(actor=APPROVER))
    system.catch_up()

    # The read model while the update is in force: one row, issued, its wider area.
    page = system.read_models.page(WARNING_TABLE, filters={"origin_id": str(incident_id)})
    assert page.total == 1
    [row] = page.items
    assert row["status"] == "issued" and row["sequence"] == 2
    lon, lat = DEPOT
    assert system.read_models.page(WARNING_TABLE, bbox=BBox(lon - 0.02, lat - 0.02, lon + 0.02,
                                                            lat + 0.02)).total == 1
    assert system.read_models.page(WARNING_TABLE, bbox=BBox(118.76, 32.07, 118.77,
                                                            32.08)).total == 0
    if system.settings.database_url is not None:
        with system.store.transaction() as txn:
            txn.execute(
                f"SELECT count(*) FROM {WARNING_TABLE} WHERE ST_Covers(area, "
                "ST_SetSRID(ST_MakePoint(%s, %s), 4326))", [lon + 0.012, lat + 0.012])
            covered = txn.fetchone()
        assert covered is not None and covered[0] == 1, "the wider area is in PostGIS"

    desk.handle(CancelWarning(warning_id=warning_id, reason="all clear"),
                CommandContext(actor=DRAFTER))
    # Nothing recorded for a refused command.
    with pytest.raises(InvalidValue, match="outside the city"):
        desk.handle(DraftWarning(category="accident-disaster", event_type="gas-leak",
                                 level="red", texts=TEXTS, expires=expires, contact="1",
                                 area=DrawnArea(polygons=(Area(wkt=shapely.box(
                                     100, 10, 100.1, 10.1).wkt),))), CommandContext(actor=DRAFTER))
    system.catch_up()

    # Read back from the store (no cache): every message exactly as sent.
    desk.repository.cache = None
    notices = desk.notices(warning_id)
    assert [n.msg_type for n in notices] == [MessageType.ALERT, MessageType.UPDATE,
                                            MessageType.CANCEL]
    assert notices[2].references == (notices[0].reference, notices[1].reference)
    assert notices[0].content.origin.incident_id == incident_id
    assert notices[1].content.area.polygons == (square(0.015),)
    assert notices[0].sent.utcoffset() is not None
    assert notices[0].content.expires == expires
    [row] = system.read_models.page(WARNING_TABLE).items
    assert row["status"] == "cancelled" and row["sequence"] == 3
    # A repeated draft command is the same warning.
    again = desk.handle(DraftWarning(origin=OriginKind.INCIDENT, incident_id=incident_id,
                                     texts=TEXTS, expires=expires, contact="12345"),
                        CommandContext(actor=DRAFTER, command_id="by:duty-zhao:w1")).subject
    assert again == warning_id
