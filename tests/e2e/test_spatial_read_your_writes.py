"""The spatial questions about one item answer for an item that exists even before the read
models have caught up with it: an incident escalated from a hazard alarm a moment ago is
asked about at once (issue 9, item 13), and a hazard source just registered too. Here no
projection runs in the background (the read models follow only when a test says so): the
answers come from the write side, and an id that exists nowhere is still a 404."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from cityops.bootstrap import CitySystem, build_system
from cityops.domain.accounts.account import PasswordHasher
from cityops.settings import Settings

DEPOT = {"hazard_type": "lpg-depot", "name": "Riverside LPG depot",
         "owner_name": "Riverside Gas Co.", "owner_contact": "+86 25 8888 0000", "grade": 2,
         "impact_radius_m": 400,
         "location": {"type": "Point", "coordinates": [118.80, 32.05]}}
GAS_SENSOR = {"sensor_id": "gas-1", "kind": "gas-concentration", "unit": "%LEL",
              "direction": "high", "warning": 20, "alarm": 50, "label": "Tank A"}
LEAK = {"category": "accident-disaster", "incident_type": "gas-leak",
        "title": "Gas leak at the depot", "level": "IV"}


@pytest.fixture
def system(tmp_path: Path, demo_city: Any) -> CitySystem:
    """A system whose read models do not follow the event stores by themselves (the `api`
    fixture serves it)."""
    built = build_system(Settings(data_dir=tmp_path, run_projections=False), city=demo_city)
    built.accounts.hasher = PasswordHasher(n=2**10, r=8, p=1)
    return built


@pytest.fixture
def lagging(api: Any) -> Any:
    return api


def _escalated_incident(api: Any) -> tuple[str, str]:
    """A depot (on the map: the read models caught up once) whose gas sensor then raised an
    alarm, escalated into an incident the read models have not seen: (source id, incident
    id)."""
    source = api.post("/hazard-sources", DEPOT, role="planner", expect=201)
    path = f"/hazard-sources/{source['id']}"
    api.post(f"{path}/sensors", GAS_SENSOR, role="planner")
    api.settle()
    reading = api.post(f"{path}/sensors/gas-1/readings", {"value": 70}, role="system")
    alarm_id = reading["alarm"]["alarm_id"]
    escalated = api.post(f"{path}/alarms/{alarm_id}/escalation", LEAK)
    return source["id"], escalated["incident_id"]


def test_hazard_sources_near_an_incident_just_escalated_are_found(lagging: Any) -> None:
    source_id, incident_id = _escalated_incident(lagging)
    response = lagging.client.get(f"/spatial/incidents/{incident_id}/hazard-sources",
                                  params={"radius_m": 1000}, headers=lagging.headers())
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["incident_id"] == incident_id
    assert [f["id"] for f in body["features"]] == [source_id]
    assert body["features"][0]["properties"]["distance_m"] == pytest.approx(0, abs=1)


def test_facilities_near_a_hazard_source_just_registered_are_found(lagging: Any) -> None:
    source = lagging.post("/hazard-sources", DEPOT, role="planner", expect=201)
    response = lagging.client.get(f"/spatial/hazard-sources/{source['id']}/facilities",
                                  headers=lagging.headers())
    assert response.status_code == 200, response.text
    assert response.json()["hazard_source_id"] == source["id"]


def test_an_incident_that_exists_nowhere_is_still_404(lagging: Any) -> None:
    for path in (f"/spatial/incidents/{uuid4()}/hazard-sources",
                 "/spatial/incidents/not-an-id/hazard-sources",
                 f"/spatial/hazard-sources/{uuid4()}/facilities"):
        response = lagging.client.get(path, headers=lagging.headers())
        assert response.status_code == 404, (path, response.text)


def test_a_department_user_is_not_told_of_an_incident_outside_their_scope(
        lagging: Any) -> None:
    _, incident_id = _escalated_incident(lagging)
    response = lagging.client.get(f"/spatial/incidents/{incident_id}/hazard-sources",
                                  headers=lagging.headers("department-user", "water"))
    assert response.status_code == 404, response.text
