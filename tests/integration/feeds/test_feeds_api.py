"""The subscriptions API over HTTP (FastAPI's test client on the embedded stores): a
department manages its own subscriptions, an administrator any; bad input gets a clear 422;
secrets are shown once and never again; the delivery log and the catalogue are readable."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from cityops.bootstrap import CitySystem, build_system
from cityops.command_center.app import create_app
from cityops.command_center.routers import subscriptions as subscriptions_router
from cityops.domain.accounts.account import PasswordHasher
from cityops.domain.actors import Actor, Role
from cityops.settings import Settings

WATER = ("water-chen", Role.DEPARTMENT_USER, "water")
POLICE = ("police-ma", Role.DEPARTMENT_USER, "police")
ADMIN = ("root-wu", Role.ADMIN, None)
LEADER = ("mayor-zhou", Role.LEADER, None)
INSPECTOR = ("insp-wang", Role.INSPECTOR, None)
PEOPLE = (WATER, POLICE, ADMIN, LEADER, INSPECTOR)
_TOKENS: dict[str, str] = {}
"""Bearer tokens of PEOPLE in the system being served (filled by `serve`)."""


def signed(who: tuple[str, Role, str | None]) -> dict[str, str]:
    """The headers of a request made by `who`, logged in."""
    return {"Authorization": f"Bearer {_TOKENS[who[0]]}"}

COVERS: dict[str, Any] = {
    "name": "manhole covers in D01",
    "filter": {"stream": "grid-cases", "categories": ["C0101", "C0102"],
               "area": {"grid_prefix": "D01"}},
    "triggers": ["created", "closed"],
    "delivery": {"kind": "kafka"},
}


def with_subscriptions(app: FastAPI) -> FastAPI:
    """The command centre with the subscriptions router (once, wherever it is wired)."""
    if not any(getattr(r, "path", "") == "/subscriptions" for r in app.routes):
        app.include_router(subscriptions_router.router)
    return app


def serve(system: CitySystem) -> Iterator[TestClient]:
    app = with_subscriptions(create_app(system, manage_lifecycle=False))
    system.accounts.hasher = PasswordHasher(n=2**10, r=8, p=1)
    admin = Actor(user_id="test-admin", role=Role.ADMIN)
    for username, role, department in PEOPLE:
        system.accounts.add_user(username, role=role, department=department,
                                 password="test-password-1", actor=admin)
        _TOKENS[username] = app.state.auth.issue_token(username)
    with TestClient(app) as test_client:
        yield test_client
    feeds = getattr(app.state, "feeds", None)
    if feeds is not None:
        feeds.close()


@pytest.fixture
def client(embedded_system: CitySystem) -> Iterator[TestClient]:
    yield from serve(embedded_system)


@pytest.fixture(scope="module")
def refusing_client(tmp_path_factory: pytest.TempPathFactory,
                    demo_city: Any) -> Iterator[TestClient]:
    """One city for the tests of refused input: nothing they send is ever recorded."""
    system = build_system(Settings(data_dir=tmp_path_factory.mktemp("refusing")),
                          city=demo_city)
    yield from serve(system)
    system.close()


def test_a_department_subscribes_and_manages_its_own_subscription(client: TestClient) -> None:
    created = client.post("/subscriptions", json=COVERS, headers=signed(WATER))
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["department"] == "water" and body["status"] == "active"
    assert body["filter"]["area"] == {"grid_prefix": "D01"}
    assert body["triggers"] == ["created", "closed"] and "secret" not in body
    url = f"/subscriptions/{body['id']}"

    assert client.get(url, headers=signed(WATER)).json()["name"] == COVERS["name"]
    paused = client.post(f"{url}/pause", json={"reason": "system upgrade"}, headers=signed(WATER))
    assert paused.json()["status"] == "paused"
    assert client.post(f"{url}/pause", json={"reason": "again"},
                       headers=signed(WATER)).status_code == 409
    assert client.post(f"{url}/resume", json={}, headers=signed(WATER)).json()["status"] == "active"
    revised = client.put(url, headers=signed(WATER), json={
        **COVERS, "triggers": ["created", "updated", "closed"], "note": "all steps"})
    assert revised.json()["triggers"] == ["created", "updated", "closed"]
    removed = client.delete(url, params={"reason": "replaced"}, headers=signed(WATER))
    assert removed.json()["status"] == "cancelled"
    history = client.get(f"{url}/history", headers=signed(WATER)).json()
    assert [h["event"] for h in history] == ["Subscribed", "Paused", "Resumed", "Revised",
                                             "Unsubscribed"]
    assert history[0]["actor"]["user_id"] == "water-chen"


def test_other_departments_and_roles_are_kept_out(client: TestClient) -> None:
    water = client.post("/subscriptions", json=COVERS, headers=signed(WATER)).json()
    url = f"/subscriptions/{water['id']}"
    assert client.get(url, headers=signed(POLICE)).status_code == 403
    assert client.post(f"{url}/pause", json={"reason": "x"},
                       headers=signed(POLICE)).status_code == 403
    assert client.post("/subscriptions", json={**COVERS, "department": "water"},
                       headers=signed(POLICE)).status_code == 403
    # An inspector may not subscribe at all: refused before the body is looked at.
    assert client.post("/subscriptions", json=COVERS, headers=signed(INSPECTOR)).status_code == 403
    assert client.post("/subscriptions", json={**COVERS, "department": "water"},
                       headers=signed(INSPECTOR)).status_code == 403
    assert client.get("/subscriptions", headers=signed(POLICE)).json()["count"] == 0
    assert client.get("/subscriptions", params={"department": "water"},
                      headers=signed(POLICE)).status_code == 403
    assert client.get("/subscriptions", headers=signed(LEADER)).json()["count"] == 1
    assert client.get("/subscriptions", headers=signed(INSPECTOR)).status_code == 403
    assert client.get(url).status_code == 401
    for_police = client.post("/subscriptions", headers=signed(ADMIN), json={
        **COVERS, "department": "police", "filter": {"stream": "hotline"}})
    assert for_police.status_code == 201 and for_police.json()["department"] == "police"
    listed = client.get("/subscriptions", params={"stream": "hotline"},
                        headers=signed(ADMIN)).json()
    assert [s["department"] for s in listed["data"]] == ["police"]


@pytest.mark.parametrize(("change", "field"), [
    ({"filter": {"stream": "weather"}}, "filter.stream"),
    ({"filter": {"stream": "grid-cases", "area": {"bbox": [118.9, 32.0, 118.7, 32.1]}}},
     "minimum must be less than its maximum"),
    ({"filter": {"stream": "grid-cases", "area": {"grid_prefix": "D01", "bbox":
                                                  [118.7, 32.0, 118.9, 32.1]}}},
     "exactly one of"),
    ({"filter": {"stream": "grid-cases", "categories": ["C9999"]}}, "unknown grid-cases"),
    ({"filter": {"stream": "hotline", "levels": ["I"]}}, "levels filter incidents only"),
    ({"triggers": ["deleted"]}, "triggers.0"),
    ({"delivery": {"kind": "webhook"}}, "needs a URL"),
    ({"delivery": {"kind": "webhook", "url": "ftp://water.example/x"}}, "http or https"),
    ({"delivery": {"kind": "kafka", "url": "http://water.example/x"}}, "takes no URL"),
    ({"colour": "blue"}, "colour"),
])
def test_bad_input_is_refused_saying_what_is_wrong(refusing_client: TestClient,
                                                   change: dict[str, Any], field: str) -> None:
    response = refusing_client.post("/subscriptions", json={**COVERS, **change},
                                    headers=signed(WATER))
    assert response.status_code == 422, response.text
    assert field in response.json()["detail"]
    assert refusing_client.get("/subscriptions", headers=signed(WATER)).json()["count"] == 0


def test_a_webhook_secret_is_shown_once_and_never_again(client: TestClient) -> None:
    hooked = client.post("/subscriptions", headers=signed(WATER), json={
        **COVERS, "delivery": {"kind": "webhook", "url": "https://water.example/cityops"}})
    assert hooked.status_code == 201
    secret = hooked.json()["secret"]
    assert len(secret) >= 32
    url = f"/subscriptions/{hooked.json()['id']}"
    shown = client.get(url, headers=signed(WATER)).json()
    assert "secret" not in shown and shown["delivery"]["secret_fingerprint"]
    assert secret not in client.get(f"{url}/history", headers=signed(WATER)).text
    assert secret not in client.get("/subscriptions", headers=signed(WATER)).text
    # A revision without a secret keeps the current one.
    revised = client.put(url, headers=signed(WATER), json={
        **COVERS, "note": "new path",
        "delivery": {"kind": "webhook", "url": "https://water.example/cityops/v2"}})
    assert "secret" not in revised.json()
    assert (revised.json()["delivery"]["secret_fingerprint"]
            == shown["delivery"]["secret_fingerprint"])
    deliveries = client.get(f"{url}/deliveries", headers=signed(WATER)).json()
    assert deliveries == {"data": [], "count": 0, "limit": 50, "offset": 0}
    missing = client.post(f"{url}/deliveries/{hooked.json()['id']}/redeliver",
                          headers=signed(WATER))
    assert missing.status_code == 404


def test_the_shared_data_catalogue_is_published(client: TestClient) -> None:
    catalogue = client.get("/subscriptions/catalogue", headers=signed(INSPECTOR)).json()
    assert set(catalogue["feeds"]) == {"grid-cases", "incidents", "hazards", "hotline",
                                       "resources"}
    hotline = catalogue["feeds"]["hotline"]
    assert hotline["fields"]["caller_phone"] == "conditional:caller-personal-data"
    assert hotline["fields"]["possible_duplicates"] == "not-shared"
    assert hotline["scope"] and hotline["update_frequency"]
