"""A command's answer is its subject as the command saved it (issue 14): the report path read
the case it had just saved back from the event store to answer, a third of its time. The
answer reads nothing back, and is the same state the store holds."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID

from cityops.domain.application import CityApplication
from cityops.domain.geometry import GeoPoint

from .test_api_grid_cases import REPORT, reported
from .test_api_hotline import call


@contextmanager
def reads_of_aggregates(application: CityApplication) -> Iterator[list[UUID]]:
    """The ids of the aggregates `application` reads from its event store (or cache)."""
    repository = application.repository
    reads: list[UUID] = []
    original = repository.get

    def get(aggregate_id: UUID, *args: Any, **kwargs: Any) -> Any:
        reads.append(aggregate_id)
        return original(aggregate_id, *args, **kwargs)

    repository.get = get  # type: ignore[method-assign]
    try:
        yield reads
    finally:
        del repository.get


def test_a_reported_case_is_answered_without_reading_it_back(api: Any) -> None:
    cases = api.system.grid_cases
    with reads_of_aggregates(cases) as reads:
        case = reported(api)
    assert UUID(case["id"]) not in reads
    stored = cases.case(UUID(case["id"])).summary()
    assert case == {**{key: stored[key] for key in case if key != "light"}, "light": "green"}

    with reads_of_aggregates(cases) as reads:
        registered = api.post(f"/grid-cases/{case['id']}/register", {"urgency": "urgent"})
    assert reads.count(UUID(case["id"])) == 1  # the command's own load, nothing after it
    assert registered["version"] == 2 and registered["status"] == "registered"


def test_a_received_call_is_answered_without_reading_it_back(api: Any) -> None:
    hotline = api.system.hotline
    with reads_of_aggregates(hotline) as reads:
        ticket = api.post("/hotline-tickets", call(), role="hotline-operator", expect=201)
    assert UUID(ticket["id"]) not in reads
    with reads_of_aggregates(hotline) as reads:
        assigned = api.post(f"/hotline-tickets/{ticket['id']}/assign", {},
                            role="hotline-operator")
    assert reads.count(UUID(ticket["id"])) == 1
    assert assigned["status"] == "assigned" and assigned["version"] == ticket["version"] + 1


def test_a_repeated_command_is_answered_with_the_state_stored_now(api: Any) -> None:
    first = reported(api, key="report-once")
    path = f"/grid-cases/{first['id']}"
    api.post(f"{path}/register", {})
    again = reported(api, key="report-once")  # the same report, sent again
    assert again["id"] == first["id"] and again["status"] == "registered"


def test_a_command_checks_its_token_once(api: Any) -> None:
    """The command gate and the route both asked who acts: the token was checked twice."""
    auth = api.client.app.state.auth
    checked: list[str] = []
    original = auth.claims

    def claims(token: str) -> Any:
        checked.append(token)
        return original(token)

    auth.claims = claims
    try:
        reported(api)
    finally:
        del auth.claims
    assert len(checked) == 1


def test_a_report_hops_to_a_worker_thread_only_where_it_may_block(
        api: Any, monkeypatch: Any) -> None:
    """Every dependency written `def` ran in a worker thread: ten hops per report (the
    query check, the If-Match check, the system, the token twice, the idempotency key, the
    command id, the scope guard, the endpoint, its answer's validation), a sixth of the API
    process's time. Left: the endpoint (the command saves) and FastAPI's validation of a
    `def` endpoint's answer; the token check hops only for an account not in the
    authenticator's cache (a read of the accounts store), as on the first request."""
    import anyio.to_thread

    hops: list[str] = []
    original = anyio.to_thread.run_sync

    async def run_sync(function: Any, *args: Any, **kwargs: Any) -> Any:
        inner = getattr(function, "func", function)
        hops.append(getattr(inner, "__qualname__", type(inner).__qualname__))
        return await original(function, *args, **kwargs)

    reported(api)  # the inspector's account and token exist
    lon, lat = REPORT["location"]["coordinates"]
    inspector = api.system.city.map.locate(GeoPoint(lon=lon, lat=lat)).inspector_id
    api.client.app.state.auth.forget(inspector)  # as after the cache's few seconds
    monkeypatch.setattr(anyio.to_thread, "run_sync", run_sync)
    reported(api)
    assert sorted(hops) == sorted(['Authenticator.account', '_run_sync_endpoint',
                                   'ModelField.validate']), hops
    hops.clear()
    reported(api)
    assert sorted(hops) == sorted(['_run_sync_endpoint', 'ModelField.validate']), hops
