"""Open WebSockets follow their user's credentials (issue 10, item 4): a disabled user's
sockets are closed with 1008, a user whose password, role or department changed has theirs
closed with 4401 (log in again; the new login's socket has the new scope), whichever process
made the change: a change through another process reaches every server process."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from cityops.bootstrap import build_system
from cityops.command_center.auth import Authenticator
from cityops.domain.accounts.application import Accounts
from cityops.domain.accounts.commands import AddUser, DisableUser, ResetPassword, SetDepartment
from cityops.domain.commands import CommandContext
from cityops.domain.gridcases.commands import DispatchCase, RegisterCase
from cityops.settings import Settings

from .conftest import ADMIN, DISPATCHER, TEST_HASHER, LiveServer, Session, open_session, report_case
from .test_live_postgres import serving

pytestmark = pytest.mark.anyio

CLOSE_WITHIN_S = 10.0


async def closed_with(session: Session, timeout: float = CLOSE_WITHIN_S) -> tuple[int, str]:
    """Read until the server closes the socket: (code, the last error message)."""
    error = ""
    deadline = time.monotonic() + timeout
    try:
        while True:  # heartbeats keep coming: the deadline is for the whole wait
            message = await session.next(max(0.01, deadline - time.monotonic()))
            if message["type"] == "error":
                error = message["message"]
    except ConnectionClosed as closed:
        assert closed.rcvd is not None, "closed without a close frame"
        return closed.rcvd.code, error
    except TimeoutError:
        await session.close()  # or the server's shutdown would wait for it
        raise AssertionError(f"the socket was still open after {timeout} s") from None


def another_process_accounts(live_server: LiveServer) -> Accounts:
    """The accounts store as another process (the admin CLI, another API worker) opens
    it: its changes are not announced in the server's process."""
    system = live_server.system
    return Accounts(system.settings.event_store_env(Accounts.name), catalogue=system.catalogue)


async def test_a_disabled_users_open_socket_is_closed_within_seconds(
        live_server: LiveServer) -> None:
    """Reproduction: a disabled user kept receiving every change on their open socket."""
    token = live_server.token("dispatcher", user="disp-leaving")
    session = await open_session(live_server.url, token, layers=["grid-cases"])
    await session.next_of("snapshot")
    await asyncio.to_thread(live_server.system.commands.handle,
                            DisableUser(username="disp-leaving", reason="left the service"),
                            CommandContext(actor=ADMIN))
    code, error = await closed_with(session)
    assert code == 1008
    assert "'disp-leaving' is disabled" in error


async def test_a_user_disabled_by_another_process_is_closed_too(
        live_server: LiveServer) -> None:
    token = live_server.token("inspector", user="insp-lost-phone")
    session = await open_session(live_server.url, token, layers=["grid-cases"])
    await session.next_of("snapshot")
    elsewhere = another_process_accounts(live_server)
    try:
        await asyncio.to_thread(elsewhere.handle,
                                DisableUser(username="insp-lost-phone", reason="lost phone"),
                                CommandContext(actor=ADMIN))
    finally:
        elsewhere.close()
    code, _ = await closed_with(session)
    assert code == 1008


async def test_a_moved_user_stops_receiving_the_old_scope_and_gets_the_new_one(
        live_server: LiveServer) -> None:
    """Reproduction: a user moved to another department kept the old department's scope on
    their open socket."""
    system = live_server.system
    token = live_server.token("department-user", "sanitation", user="dept-mover")
    old = await open_session(live_server.url, token, layers=["grid-cases"])
    await old.next_of("snapshot")
    await asyncio.to_thread(system.commands.handle,
                            SetDepartment(username="dept-mover", department="roads"),
                            CommandContext(actor=ADMIN))
    code, error = await closed_with(old)
    assert code == 4401
    assert "now department-user of roads" in error
    # A case of the old department after the move never reached the old socket.
    case = await asyncio.to_thread(report_case, system)
    await asyncio.to_thread(system.commands.handle, RegisterCase(case_id=case),
                            CommandContext(actor=DISPATCHER))
    await asyncio.to_thread(system.commands.handle,
                            DispatchCase(case_id=case, department="sanitation"),
                            CommandContext(actor=DISPATCHER))
    assert all(c["id"] != str(case) for c in old.changes())
    # Logged in again, the socket has the new department's scope.
    fresh = await open_session(live_server.url,
                               live_server.app.state.auth.issue_token("dept-mover"),
                               layers=["grid-cases"])
    snapshot = await fresh.next_of("snapshot")
    assert snapshot["subscription"]["department"] == "roads"
    await fresh.close()


async def test_a_password_change_ends_the_sockets_of_the_earlier_login(
        live_server: LiveServer) -> None:
    token = live_server.token("dispatcher", user="disp-newpass")
    session = await open_session(live_server.url, token, layers=["grid-cases"])
    await session.next_of("snapshot")
    await asyncio.to_thread(live_server.system.commands.handle,
                            ResetPassword(username="disp-newpass", password="a-new-password-7"),
                            CommandContext(actor=ADMIN))
    code, error = await closed_with(session)
    assert code == 4401
    assert "password of this account changed" in error


async def test_other_users_sockets_are_left_alone(live_server: LiveServer) -> None:
    stays = await open_session(live_server.url, live_server.token("dispatcher",
                                                                  user="disp-stays"),
                               layers=["grid-cases"])
    leaves = await open_session(live_server.url, live_server.token("dispatcher",
                                                                   user="disp-goes"),
                                layers=["grid-cases"])
    for session in (stays, leaves):
        await session.next_of("snapshot")
    await asyncio.to_thread(live_server.system.commands.handle,
                            DisableUser(username="disp-goes", reason="left"),
                            CommandContext(actor=ADMIN))
    assert (await closed_with(leaves))[0] == 1008
    case = await asyncio.to_thread(report_case, live_server.system)
    change = await stays.until(lambda m: m["type"] == "change" and m["id"] == str(case))
    assert change["events"] == ["Reported"]
    await stays.close()


@pytest.mark.postgres
async def test_a_change_made_in_another_process_closes_sockets_on_every_server_process(
        fresh_database: str, tmp_path: Path, demo_city: Any) -> None:
    settings = Settings(database_url=fresh_database, data_dir=tmp_path / "unused",
                        run_projections=False, database_pool_size=2)
    system = build_system(settings, city=demo_city)
    system.accounts.hasher = TEST_HASHER
    for name, role, department in (("disp-pg-off", "dispatcher", None),
                                   ("dept-pg-move", "department-user", "sanitation")):
        system.accounts.handle(
            AddUser(username=name, role=role, department=department, password="live-password-1"),
            CommandContext(actor=ADMIN))
    auth = Authenticator(system.accounts, settings.token_secret(), ttl_minutes=60)
    try:
        with serving(fresh_database, tmp_path, {},
                     {"CITYOPS_RUN_PROJECTIONS": "false"}) as bases:
            urls = [base.replace("http", "ws") + "/ws" for base in bases]
            disabled = [await open_session(url, auth.issue_token("disp-pg-off"),
                                           layers=["grid-cases"]) for url in urls]
            moved = [await open_session(url, auth.issue_token("dept-pg-move"),
                                        layers=["grid-cases"]) for url in urls]
            for session in (*disabled, *moved):
                await session.next_of("snapshot")
            # This test's process is neither server: the changes reach them through the
            # accounts store alone.
            await asyncio.to_thread(system.commands.handle,
                                    DisableUser(username="disp-pg-off", reason="left"),
                                    CommandContext(actor=ADMIN))
            await asyncio.to_thread(system.commands.handle,
                                    SetDepartment(username="dept-pg-move", department="roads"),
                                    CommandContext(actor=ADMIN))
            for session in disabled:
                assert (await closed_with(session))[0] == 1008
            for session in moved:
                code, error = await closed_with(session)
                assert code == 4401 and "roads" in error
    finally:
        auth.close()
        system.close()
