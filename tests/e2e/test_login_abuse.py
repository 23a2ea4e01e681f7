"""Password guessing is slowed per address without locking anyone out, `/auth/password` is
throttled like a login, and password hashing runs in a bounded pool of its own (issue 10,
items 6 and 7). The throttle's clock is a test's own: no test here waits for real time."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cityops.command_center.login_guard import (
    FREE_PER_PAIR,
    FREE_PER_SOURCE,
    UNDER_ATTACK,
    LoginGuard,
    PasswordChecksBusy,
    PasswordHashing,
)
from cityops.domain.accounts.commands import AddUser
from cityops.domain.commands import CommandContext

WRONG = "wrong-password-1"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(api: Any) -> Clock:
    """The throttle of the app under test, on a clock the test moves."""
    moved = Clock()
    api.client.app.state.auth.guard = LoginGuard(moved)
    return moved


def from_address(api: Any, address: str) -> TestClient:
    """A client of the same app whose requests come from `address`."""
    return TestClient(api.client.app, client=(address, 40000))


def login(client: TestClient, username: str, password: str, expect: int) -> Any:
    answer = client.post("/auth/login", json={"username": username, "password": password})
    assert answer.status_code == expect, answer.text
    return answer


def test_failing_the_duty_officers_login_on_purpose_does_not_lock_them_out(
        api: Any, clock: Clock) -> None:
    """Reproduction: anyone could lock any user (the duty officer) out for 5 minutes by
    failing their login five times."""
    api.user("dispatcher", None, "duty-officer")
    attacker = from_address(api, "203.0.113.7")
    for _ in range(FREE_PER_PAIR):
        login(attacker, "duty-officer", WRONG, 401)
    login(attacker, "duty-officer", WRONG, 429)
    officer = from_address(api, "198.51.100.20")
    answer = login(officer, "duty-officer", api.PASSWORD, 200)
    assert answer.json()["user"]["username"] == "duty-officer"


def test_an_address_that_keeps_failing_waits_longer_each_time(api: Any, clock: Clock) -> None:
    api.user("dispatcher", None, "duty-lin")
    guesser = from_address(api, "203.0.113.8")
    for _ in range(FREE_PER_PAIR):
        login(guesser, "duty-lin", WRONG, 401)
    pauses = []
    for _ in range(4):
        paused = login(guesser, "duty-lin", WRONG, 429)
        assert "too many failed logins for 'duty-lin' from this address" in \
            paused.json()["detail"]
        pauses.append(int(paused.headers["Retry-After"]))
        clock.now += pauses[-1]
        login(guesser, "duty-lin", WRONG, 401)  # allowed again: fails again
    assert pauses == [1, 2, 4, 8]
    # Even the right password waits out the pause from that address...
    login(guesser, "duty-lin", api.PASSWORD, 429)
    clock.now += 16
    login(guesser, "duty-lin", api.PASSWORD, 200)
    # ...and a success forgives that address's failures on that name.
    login(guesser, "duty-lin", WRONG, 401)
    login(guesser, "duty-lin", api.PASSWORD, 200)


def test_a_spray_of_names_from_one_address_pauses_that_address_only(
        api: Any, clock: Clock) -> None:
    sprayer = from_address(api, "203.0.113.9")
    for number in range(FREE_PER_SOURCE):
        login(sprayer, f"made-up-{number}", WRONG, 401)
    paused = login(sprayer, "made-up-next", WRONG, 429)
    assert "from this address" in paused.json()["detail"]
    api.user("inspector", None, "insp-gao")
    login(sprayer, "insp-gao", api.PASSWORD, 429)
    login(from_address(api, "198.51.100.21"), "insp-gao", api.PASSWORD, 200)


def test_a_username_guessed_from_many_addresses_still_lets_its_user_in(
        api: Any, clock: Clock) -> None:
    api.user("dispatcher", None, "duty-sun")
    for number in range(UNDER_ATTACK):
        login(from_address(api, f"192.0.2.{number + 1}"), "duty-sun", WRONG, 401)
    # Under attack, an address that has failed on the name is paused at once...
    login(from_address(api, "192.0.2.1"), "duty-sun", WRONG, 429)
    # ...but the user, from an address with no failure on it, gets in.
    login(from_address(api, "198.51.100.22"), "duty-sun", api.PASSWORD, 200)


def test_unknown_and_known_names_are_throttled_alike(api: Any, clock: Clock) -> None:
    api.user("dispatcher", None, "duty-he")
    client = from_address(api, "203.0.113.10")
    answers = {}
    for name in ("duty-he", "no-such-user"):
        for _ in range(FREE_PER_PAIR):
            login(client, name, WRONG, 401)
        paused = login(client, name, WRONG, 429)
        answers[name] = (paused.json()["detail"].replace(repr(name), "NAME"),
                         paused.headers["Retry-After"])
    assert answers["duty-he"] == answers["no-such-user"]


def test_guessing_the_current_password_on_auth_password_is_throttled(
        api: Any, clock: Clock) -> None:
    """Reproduction: `/auth/password` checked the current password without any limit, an
    oracle for whoever holds a stolen token."""
    token = api.token("inspector", None, "insp-ma")
    client = from_address(api, "203.0.113.11")
    headers = {"Authorization": f"Bearer {token}"}
    guess = {"current_password": WRONG, "new_password": "a-new-password-9"}
    for _ in range(FREE_PER_PAIR):
        answer = client.post("/auth/password", headers=headers, json=guess)
        assert answer.status_code == 403, answer.text
        assert "current password is not correct" in answer.json()["detail"]
    paused = client.post("/auth/password", headers=headers, json=guess)
    assert paused.status_code == 429, paused.text
    assert int(paused.headers["Retry-After"]) >= 1
    clock.now += 1
    changed = client.post("/auth/password", headers=headers, json={
        "current_password": api.PASSWORD, "new_password": "a-new-password-9"})
    assert changed.status_code == 200, changed.text


def test_passwords_are_hashed_in_their_own_pool_not_on_the_request_threads(
        api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    api.user("dispatcher", None, "duty-wang")
    accounts = api.system.accounts
    threads = []
    authenticate = accounts.authenticate

    def watched(username: str, password: str) -> Any:
        threads.append(threading.current_thread().name)
        return authenticate(username, password)

    monkeypatch.setattr(accounts, "authenticate", watched)
    login(api.client, "duty-wang", api.PASSWORD, 200)
    login(api.client, "nobody-here", WRONG, 401)
    assert len(threads) == 2
    assert all(name.startswith("cityops-password") for name in threads), threads


def test_logins_beyond_the_password_pool_are_answered_503_at_once(api: Any) -> None:
    pool = PasswordHashing(workers=1, queue=0)
    api.client.app.state.auth.hashing = pool
    gate = threading.Event()
    busy = threading.Thread(target=lambda: asyncio.run(pool.run(gate.wait)))
    busy.start()
    try:
        for _ in range(100):  # until the blocking work holds the only slot
            answer = api.client.post("/auth/login", json={"username": "duty-x",
                                                          "password": WRONG})
            if answer.status_code == 503:
                break
        assert answer.status_code == 503, answer.text
        assert answer.json()["error"] == "busy"
        assert int(answer.headers["Retry-After"]) >= 1
    finally:
        gate.set()
        busy.join()
        pool.close()


def test_the_password_pool_refuses_beyond_its_workers_and_queue() -> None:
    async def scenario() -> None:
        pool = PasswordHashing(workers=1, queue=1)
        gate = threading.Event()
        running = [asyncio.create_task(pool.run(gate.wait)) for _ in range(2)]
        await asyncio.sleep(0)
        with pytest.raises(PasswordChecksBusy):
            await pool.run(lambda: None)
        gate.set()
        await asyncio.gather(*running)
        assert await pool.run(lambda: 7) == 7
        pool.close()

    asyncio.run(scenario())


def test_an_app_started_again_after_its_lifespan_ended_still_checks_passwords(
        system: Any) -> None:
    """The password pool closes with the app's lifespan; a second start (the test client
    again, a server's reload) must not answer 500 "cannot schedule new futures"."""
    from fastapi.testclient import TestClient

    from cityops.command_center.app import create_app
    from cityops.domain.actors import Actor, Role

    system.accounts.handle(
        AddUser(username="twice", role=Role.DISPATCHER, password="twice-password-1"),
        CommandContext(actor=Actor("admin", Role.ADMIN)))
    app = create_app(system, manage_lifecycle=False)
    for _ in range(2):
        with TestClient(app) as client:
            answer = client.post("/auth/login", json={"username": "twice",
                                                      "password": "twice-password-1"})
            assert answer.status_code == 200, answer.text
