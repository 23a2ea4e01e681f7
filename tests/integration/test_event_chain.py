"""Tamper evidence, on SQLite and on PostgreSQL: every stored event is linked into its
stream's hash chain in the same transaction, and `cityops history verify` names the store,
the stream, the version and what is wrong when someone edits, deletes or inserts a stored
event behind CityOps' back (here: raw SQL on the database)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest
from eventsourcing.persistence import IntegrityError, StoredEvent
from typer.testing import CliRunner

from cityops.bootstrap import CitySystem, build_system
from cityops.cli import app as cityops_cli
from cityops.domain.actors import Actor, Role
from cityops.domain.commands import CommandContext
from cityops.domain.geometry import GeoPoint
from cityops.domain.gridcases.commands import DispatchCase, HandleCase, RegisterCase, ReportCase
from cityops.domain.hotline.commands import ReceiveTicket
from cityops.event_chain import Breach, StoreVerdict
from cityops.settings import Settings
from cityops.site import open_snapshot

DISPATCHER = Actor("disp-1", Role.DISPATCHER)


@dataclass
class Site:
    """A site on one back end, with raw SQL access to its event stores (the tamperer's)."""

    settings: Settings
    backend: str

    def events_table(self, store: str) -> str:
        return "stored_events" if self.backend == "sqlite" else f"{store}_events"

    def chain_table(self, store: str) -> str:
        return "event_chain" if self.backend == "sqlite" else f"{store}_event_chain"

    def oid(self, aggregate_id: UUID) -> Any:
        return aggregate_id.hex if self.backend == "sqlite" else aggregate_id

    def sql(self, store: str, statement: str, params: tuple[Any, ...] = ()) -> list[Any]:
        """Run one statement on a store, committed; `{events}` and `{chain}` name its
        tables."""
        text = statement.format(events=self.events_table(store), chain=self.chain_table(store))
        if self.backend == "sqlite":
            connection = sqlite3.connect(self.settings.data_dir / f"{store}.sqlite")
            try:
                rows = connection.execute(text, params).fetchall()
                connection.commit()
                return rows
            finally:
                connection.close()
        assert self.settings.database_url is not None
        with psycopg.connect(self.settings.database_url) as connection:
            cursor = connection.execute(text.replace("?", "%s"), params)
            return cursor.fetchall() if cursor.description else []

    def cli_env(self) -> dict[str, str]:
        if self.backend == "sqlite":
            return {"CITYOPS_DATA_DIR": str(self.settings.data_dir), "CITYOPS_DATABASE_URL": ""}
        assert self.settings.database_url is not None
        return {"CITYOPS_DATABASE_URL": self.settings.database_url}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Site:
    if request.param == "sqlite":
        return Site(Settings(data_dir=tmp_path / "site"), "sqlite")
    url = request.getfixturevalue("fresh_database")
    return Site(Settings(database_url=url), "postgres")


@pytest.fixture
def system(site: Site) -> Iterator[CitySystem]:
    built = build_system(site.settings)
    yield built
    built.close()


def a_case(system: CitySystem) -> UUID:
    """A grid case of three events: reported, registered, dispatched."""
    centre = system.city.map.cells.geometry.iloc[42].representative_point()
    point = GeoPoint(lon=centre.x, lat=centre.y)
    # The cell's own inspector (a report outside one's cells records one more event).
    inspector = Actor(system.city.map.locate(point).inspector_id, Role.INSPECTOR)
    case_id = system.grid_cases.handle(
        ReportCase(source="inspector", category="E0101", description="garbage heap",
                   location=point),
        CommandContext(actor=inspector)).subject
    system.grid_cases.handle(RegisterCase(case_id=case_id), CommandContext(actor=DISPATCHER))
    system.grid_cases.handle(DispatchCase(case_id=case_id), CommandContext(actor=DISPATCHER))
    return case_id


def verdicts(site: Site) -> dict[str, StoreVerdict]:
    snapshot = open_snapshot(site.settings)
    try:
        return {store: snapshot.verdict(store) for store in snapshot.stores()}
    finally:
        snapshot.close()


def history_verify(site: Site) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(cityops_cli, ["history", "verify", "--json"],
                                env=site.cli_env())
    return result.exit_code, json.loads(result.output)


def only_broken(site: Site) -> Any:
    found = [b for v in verdicts(site).values() for b in v.broken]
    assert len(found) == 1, found
    return found[0]


def test_a_clean_store_verifies_intact(site: Site, system: CitySystem) -> None:
    a_case(system)
    a_case(system)
    found = verdicts(site)
    assert found["gridcases"].events == 6 and found["gridcases"].streams == 2
    assert all(v.intact for v in found.values())
    code, report = history_verify(site)
    assert code == 0 and report["intact"] is True


def test_an_edited_event_is_named_by_store_stream_and_version(site: Site,
                                                               system: CitySystem) -> None:
    case_id = a_case(system)
    a_case(system)
    (state,) = site.sql("gridcases", "SELECT state FROM {events} WHERE originator_id = ? "
                        "AND originator_version = 2", (site.oid(case_id),))[0]
    edited = bytes(state).replace(b"disp-1", b"disp-9")
    assert edited != bytes(state)
    site.sql("gridcases", "UPDATE {events} SET state = ? WHERE originator_id = ? AND "
             "originator_version = 2", (edited, site.oid(case_id)))
    broken = only_broken(site)
    assert (broken.store, broken.stream, broken.version, broken.breach) == (
        "gridcases", str(case_id), 2, Breach.EDITED)
    code, report = history_verify(site)
    assert code == 1 and report["intact"] is False
    listed = [b for s in report["stores"] for b in s["broken"]]
    assert listed == [{"store": "gridcases", "stream": str(case_id), "version": 2,
                       "problem": "edited", "detail": broken.detail}]


def test_a_changed_topic_is_an_edit_too(site: Site, system: CitySystem) -> None:
    case_id = a_case(system)
    site.sql("gridcases", "UPDATE {events} SET topic = topic || 'x' WHERE originator_id = ? "
             "AND originator_version = 3", (site.oid(case_id),))
    broken = only_broken(site)
    assert (broken.stream, broken.version, broken.breach) == (str(case_id), 3, Breach.EDITED)


def test_a_deleted_event_is_found(site: Site, system: CitySystem) -> None:
    case_id = a_case(system)
    site.sql("gridcases", "DELETE FROM {events} WHERE originator_id = ? AND "
             "originator_version = 2", (site.oid(case_id),))
    broken = only_broken(site)
    assert (broken.stream, broken.version, broken.breach) == (str(case_id), 2, Breach.DELETED)
    assert "its link is still there" in broken.detail


def test_an_event_deleted_with_its_link_leaves_a_gap_that_is_found(site: Site,
                                                                   system: CitySystem) -> None:
    case_id = a_case(system)
    for table in ("{events}", "{chain}"):
        site.sql("gridcases", f"DELETE FROM {table} WHERE originator_id = ? AND "
                 "originator_version = 2", (site.oid(case_id),))
    broken = only_broken(site)
    assert (broken.stream, broken.version, broken.breach) == (str(case_id), 2, Breach.DELETED)
    assert "goes on at version 3" in broken.detail


def test_an_event_inserted_behind_cityops_back_is_found(site: Site,
                                                        system: CitySystem) -> None:
    case_id = a_case(system)
    topic, state = site.sql("gridcases", "SELECT topic, state FROM {events} WHERE "
                            "originator_id = ? AND originator_version = 3",
                            (site.oid(case_id),))[0]
    site.sql("gridcases", "INSERT INTO {events} (originator_id, originator_version, topic, "
             "state) VALUES (?, 4, ?, ?)", (site.oid(case_id), topic, bytes(state)))
    broken = only_broken(site)
    assert (broken.stream, broken.version, broken.breach) == (str(case_id), 4, Breach.INSERTED)


def test_a_refused_save_leaves_no_link(site: Site, system: CitySystem) -> None:
    case_id = a_case(system)
    links = site.sql("gridcases", "SELECT count(*) FROM {chain}")[0][0]
    stored = system.grid_cases.recorder.select_events(case_id, limit=1)[0]
    again = StoredEvent(originator_id=case_id, originator_version=1, topic=stored.topic,
                        state=stored.state)
    later = StoredEvent(originator_id=case_id, originator_version=4, topic=stored.topic,
                        state=stored.state)
    with pytest.raises(IntegrityError):
        system.grid_cases.recorder.insert_events([later, again])
    assert site.sql("gridcases", "SELECT count(*) FROM {chain}")[0][0] == links
    assert all(v.intact for v in verdicts(site).values())


def test_events_of_one_aggregate_saved_together_chain_in_order(site: Site,
                                                               system: CitySystem) -> None:
    centre = system.city.map.cells.geometry.iloc[7].representative_point()
    point = GeoPoint(lon=centre.x, lat=centre.y)
    case_id = system.grid_cases.handle(
        ReportCase(source="inspector", category="E0101", description="garbage heap",
                   location=point),
        CommandContext(actor=Actor(system.city.map.locate(point).inspector_id,
                                   Role.INSPECTOR))).subject
    first = system.grid_cases.recorder.select_events(case_id)[0]
    # Two more events of the same aggregate in one save (one transaction).
    extra = [StoredEvent(originator_id=case_id, originator_version=v, topic=first.topic,
                         state=first.state) for v in (2, 3)]
    system.grid_cases.recorder.insert_events(extra)
    assert all(v.intact for v in verdicts(site).values())


def test_history_recorded_before_the_chain_is_chained_once_at_upgrade(site: Site) -> None:
    system = build_system(site.settings)
    try:
        case_id = a_case(system)
    finally:
        system.close()
    # A store recorded by a CityOps without the chain: no chain table.
    site.sql("gridcases", "DROP TABLE {chain}")
    upgraded = build_system(site.settings)
    try:
        assert all(v.intact for v in verdicts(site).values())
        assert site.sql("gridcases", "SELECT count(*) FROM {chain}")[0][0] == 3
        system_case = upgraded.grid_cases.case(case_id)
        assert system_case.version == 3
        # From now on, an event without a link is an insertion (the chain is not redone).
        topic, state = site.sql("gridcases", "SELECT topic, state FROM {events} WHERE "
                                "originator_id = ? AND originator_version = 3",
                                (site.oid(case_id),))[0]
        site.sql("gridcases", "INSERT INTO {events} (originator_id, originator_version, "
                 "topic, state) VALUES (?, 4, ?, ?)", (site.oid(case_id), topic, bytes(state)))
    finally:
        upgraded.close()
    again = build_system(site.settings)
    again.close()
    broken = only_broken(site)
    assert (broken.version, broken.breach) == (4, Breach.INSERTED)



def test_the_hotline_process_recorder_chains_its_events_with_the_follow_ups(
        site: Site, system: CitySystem) -> None:
    """The hotline store is a process recorder (the ticket follow-up's tracked saves): its
    events, those the follow-up records included, are chained like every store's."""
    centre = system.city.map.cells.geometry.iloc[60].representative_point()
    point = GeoPoint(lon=centre.x, lat=centre.y)
    operator = Actor("op-1", Role.HOTLINE_OPERATOR)
    ticket_id = system.hotline.handle(
        ReceiveTicket(channel="phone", ticket_type="complaint", topic="street-lighting",
                      description="The street lamp is out", caller_phone="13800138000",
                      location=point),
        CommandContext(actor=operator)).subject
    case_id = system.operations.ticket_to_case(ticket_id, actor=operator)
    system.grid_cases.handle(RegisterCase(case_id=case_id), CommandContext(actor=DISPATCHER))
    system.grid_cases.handle(
        DispatchCase(case_id=case_id, department="roads"),
        CommandContext(actor=DISPATCHER))
    system.grid_cases.handle(
        HandleCase(case_id=case_id, result="lamp replaced"),
        CommandContext(actor=Actor("roads-1", Role.DEPARTMENT_USER, "roads")))
    system.catch_up()
    names = [type(e).__name__ for e in system.hotline.events.get(ticket_id)]
    assert "LinkedWorkProgressed" in names
    hotline = verdicts(site)["hotline"]
    stored = site.sql("hotline", "SELECT count(*) FROM {events}")[0][0]
    assert hotline.intact and hotline.events == stored >= len(names)
    assert site.sql("hotline", "SELECT count(*) FROM {chain}")[0][0] == stored
