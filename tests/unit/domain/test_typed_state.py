"""Aggregates keep their state as typed values (LevelChange, SituationReport, Link,
LinkedWork, ExtensionRequest, PlanRevision...) made from the facts their events carry.

The events in `data/state_before_typed_values.json` were stored, and their summaries
written, by the code before that change (commit 1470918, when the state was dicts): the
same stored events load into the typed state, and every summary document is byte-for-byte
what it was."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.persistence import StoredEvent

from cityops.domain.application import CityApplication
from cityops.domain.gridcases.case import ExtensionRequest, GridCase, SuspensionRequest
from cityops.domain.hotline.ticket import HotlineTicket, LinkedWork, LinkedWorkKind
from cityops.domain.incidents.incident import (
    AfterActionReview,
    CommanderAssignment,
    Incident,
    LevelChange,
    Link,
    LinkKind,
    SituationReport,
)
from cityops.domain.incidents.plans import ContingencyPlan, PlanEntry, PlanRegistry, PlanRevision

RECORDED = json.loads((Path(__file__).parent / "data" / "state_before_typed_values.json")
                      .read_text(encoding="utf-8"))["aggregates"]


def _app_with_the_recorded_events() -> CityApplication:
    app = CityApplication(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    app.recorder.insert_events([
        StoredEvent(originator_id=UUID(aggregate["id"]),
                    originator_version=event["originator_version"], topic=event["topic"],
                    state=event["state"].encode("utf-8"))
        for aggregate in RECORDED for event in aggregate["events"]
    ])
    return app


def _loaded(app: CityApplication, name: str, index: int = 0) -> tuple[Any, dict[str, Any]]:
    recorded = [a for a in RECORDED if a["class"] == name][index]
    return app.repository.get(UUID(recorded["id"])), recorded


@pytest.mark.parametrize("recorded", [a for a in RECORDED if a["summary"] is not None],
                         ids=lambda a: a["class"])
def test_stored_events_load_and_summaries_are_byte_for_byte_those_of_the_dict_state(
        recorded: dict[str, Any]) -> None:
    aggregate = _app_with_the_recorded_events().repository.get(UUID(recorded["id"]))
    assert json.dumps(aggregate.summary()) == recorded["summary"]


def test_the_incident_keeps_its_timeline_as_typed_values() -> None:
    incident, _ = _loaded(_app_with_the_recorded_events(), "Incident")
    assert isinstance(incident, Incident)
    assert all(isinstance(c, LevelChange) for c in incident.level_changes)
    assert [(c.level, c.previous_level) for c in incident.level_changes] == [
        ("III", "III"), ("II", "III"), ("III", "II")]
    assert [type(c) for c in incident.commanders] == [CommanderAssignment] * 2
    assert incident.commanders[1].previous == "chief-zhao"
    first, second = incident.situation_reports
    assert isinstance(first, SituationReport) and (first.number, second.number) == (1, 2)
    assert first.author.department == "water" and first.affected_area is not None
    assert incident.links == [
        Link(kind=LinkKind.HOTLINE_TICKET, target_id=UUID(_id("HotlineTicket")),
             at=incident.links[0].at, by="hotline-operator-1"),
        Link(kind=LinkKind.HAZARD_ALARM, target_id=incident.links[1].target_id,
             at=incident.links[1].at, by="duty-officer"),
    ]
    assert isinstance(incident.after_action, AfterActionReview)
    assert [f.aspect.value for f in incident.after_action.findings] == [
        "response-time", "information"]


def test_plans_tickets_and_cases_keep_typed_values() -> None:
    app = _app_with_the_recorded_events()
    plan, _ = _loaded(app, "ContingencyPlan")
    assert isinstance(plan, ContingencyPlan)
    assert [(r.revision, r.note) for r in plan.revisions] == [
        (1, "defined"), (2, "after the 2026 drill")]
    assert all(isinstance(r, PlanRevision) for r in plan.revisions)
    registry, _ = _loaded(app, "PlanRegistry")
    assert isinstance(registry, PlanRegistry)
    assert list(registry.entries.values()) == [
        PlanEntry(code="flood-city", category="natural-disaster")]
    assert registry.plan_ids("natural-disaster") == [plan.id]

    ticket, _ = _loaded(app, "HotlineTicket")
    assert isinstance(ticket, HotlineTicket)
    work = sorted(ticket.linked_work.values(), key=lambda w: w.kind.value)
    assert all(isinstance(w, LinkedWork) for w in work)
    assert [(w.kind, w.finished, w.department) for w in work] == [
        (LinkedWorkKind.GRID_CASE, True, "water"), (LinkedWorkKind.INCIDENT, True, None)]

    extended, _ = _loaded(app, "GridCase", 0)
    suspended, _ = _loaded(app, "GridCase", 1)
    assert isinstance(extended, GridCase) and isinstance(suspended, GridCase)
    assert isinstance(extended.pending_extension, ExtensionRequest)
    assert extended.pending_extension.requested_by == "water-chen"
    assert isinstance(suspended.pending_suspension, SuspensionRequest)
    assert suspended.pending_suspension.reason == "The road must be closed first"


def _id(name: str) -> str:
    return str(next(a["id"] for a in RECORDED if a["class"] == name))
