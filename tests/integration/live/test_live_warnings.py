"""Warnings over /ws like the other streams: the centre's screens receive a warning from its
draft on, with its area in the document; a department's screen receives it only once issued,
and never the draft of an update (the centre's own business)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest

from cityops.bootstrap import CitySystem
from cityops.domain.actors import Actor, Role
from cityops.domain.commands import CommandContext
from cityops.domain.warnings.commands import (
    ApproveWarning,
    DraftWarning,
    DraftWarningUpdate,
    DrawnArea,
    IssueWarning,
)
from cityops.domain.warnings.content import Scope, WarningCircle, WarningText

from .conftest import IN_TOWN, LiveServer, open_session

pytestmark = pytest.mark.anyio

DRAFTER = Actor("duty-zhao", Role.DISPATCHER)
APPROVER = Actor("duty-li", Role.DISPATCHER)


def texts(headline: str) -> tuple[WarningText, ...]:
    return (WarningText(language="zh-CN", headline="燃气泄漏", description="泄漏",
                        instruction="远离"),
            WarningText(language="en-US", headline=headline, description="A leak",
                        instruction="Stay away"))


def draft(system: CitySystem) -> UUID:
    return system.warnings.handle(DraftWarning(
        category="accident-disaster", event_type="gas-leak", level="orange",
        texts=texts("Gas leak"), expires=system.clock() + timedelta(hours=3), contact="12345",
        area=DrawnArea(circles=(WarningCircle(centre=IN_TOWN, radius_km=1.0),))),
            CommandContext(actor=DRAFTER)).subject


def approve_and_issue(system: CitySystem, warning_id: UUID) -> None:
    system.warnings.handle(ApproveWarning(warning_id=warning_id), CommandContext(actor=APPROVER))
    system.warnings.handle(IssueWarning(warning_id=warning_id), CommandContext(actor=DRAFTER))


def draft_update(system: CitySystem, warning_id: UUID) -> None:
    system.warnings.handle(DraftWarningUpdate(
        warning_id=warning_id, texts=texts("Unapproved wording"), contact="12345",
        expires=system.clock() + timedelta(hours=4), reason="longer"),
            CommandContext(actor=DRAFTER))


async def test_warnings_are_pushed_to_the_centre_and_issued_ones_to_departments(
        live_server: LiveServer) -> None:
    system = live_server.system
    fire_token = live_server.token("department-user", "fire")
    dispatcher = await open_session(live_server.url, live_server.token("dispatcher"),
                                    layers=["warnings"])
    fire = await open_session(live_server.url, fire_token, layers=["warnings"])
    assert (await dispatcher.next_of("snapshot"))["layers"]["warnings"] == []
    assert (await fire.next_of("snapshot"))["layers"]["warnings"] == []

    warning_id = await asyncio.to_thread(draft, system)
    drafted = await dispatcher.until(lambda m: m["type"] == "change"
                                     and m["id"] == str(warning_id))
    properties = drafted["feature"]["properties"]
    assert properties["status"] == "drafted"
    assert properties["draft"]["area"]["circles"][0]["radius_km"] == 1.0

    await asyncio.to_thread(approve_and_issue, system, warning_id)
    issued = await fire.until(lambda m: m["type"] == "change" and m["id"] == str(warning_id))
    assert issued["feature"]["properties"]["status"] == "issued"
    assert "draft" not in issued["feature"]["properties"]
    # Nothing of the warning reached the department before it was issued.
    assert [c["feature"]["properties"]["status"] for c in fire.changes()] == ["issued"]

    await asyncio.to_thread(draft_update, system, warning_id)
    await dispatcher.until(lambda m: m["type"] == "change" and m["id"] == str(warning_id)
                           and m["feature"]["properties"]["status"] == "update-drafted")
    await fire.until(lambda m: m["type"] == "change" and m["id"] == str(warning_id)
                     and m["feature"]["properties"]["sequence"] == 1
                     and m is not issued)
    assert "Unapproved wording" not in str(fire.received)

    # A new department screen's snapshot: the issued warning, without the draft.
    late = await open_session(live_server.url, fire_token, layers=["warnings"])
    [shown] = (await late.next_of("snapshot"))["layers"]["warnings"]
    assert shown["id"] == str(warning_id) and "draft" not in shown["properties"]
    for session in (dispatcher, fire, late):
        await session.close()


async def test_a_department_sees_an_issued_warning_as_issued_while_an_update_is_prepared(
        live_server: LiveServer) -> None:
    """The centre prepares an update of an issued warning (drafted, then approved): over /ws
    a department's screen keeps the warning as it went out (status `issued`, the content
    last issued, only the steps that sent a message) until the update is issued."""
    system = live_server.system
    fire_token = live_server.token("department-user", "fire")
    warning_id = await asyncio.to_thread(draft, system)
    await asyncio.to_thread(approve_and_issue, system, warning_id)
    # The snapshot is read from the read models: they must have the issued warning (on a
    # loaded machine the follower may still be behind when the session opens).
    await asyncio.to_thread(system.catch_up)
    fire = await open_session(live_server.url, fire_token, layers=["warnings"])
    [before] = (await fire.next_of("snapshot"))["layers"]["warnings"]
    assert before["properties"]["status"] == "issued"
    dispatcher = await open_session(live_server.url, live_server.token("dispatcher"),
                                    layers=["warnings"])
    await dispatcher.next_of("snapshot")

    def same_warning(message: dict[str, Any]) -> bool:
        return message["type"] == "change" and message["id"] == str(warning_id)

    await asyncio.to_thread(draft_update, system, warning_id)
    await dispatcher.until(lambda m: same_warning(m)
                           and m["feature"]["properties"]["status"] == "update-drafted")
    drafted = (await fire.until(same_warning))["feature"]["properties"]
    await asyncio.to_thread(system.commands.handle, ApproveWarning(warning_id=warning_id),
                            CommandContext(actor=APPROVER))
    await dispatcher.until(lambda m: same_warning(m)
                           and m["feature"]["properties"]["status"] == "update-approved")
    approved = (await fire.until(lambda m: same_warning(m) and m["feature"]["properties"]
                                 ["version"] > drafted["version"]))["feature"]["properties"]
    late = await open_session(live_server.url, fire_token, layers=["warnings"])
    [snapshot] = (await late.next_of("snapshot"))["layers"]["warnings"]
    for shown in (drafted, approved, snapshot["properties"]):
        assert shown["status"] == "issued" and shown["recorded_status"] == "issued"
        assert shown["content"] == before["properties"]["content"]
        assert shown["headline"] == before["properties"]["headline"]
        assert shown["sequence"] == 1
        assert [s["step"] for s in shown["steps"]] == ["issued"]
        assert "draft" not in shown
    assert "Unapproved wording" not in str(fire.received) + str(late.received)

    await asyncio.to_thread(system.commands.handle, IssueWarning(warning_id=warning_id),
                            CommandContext(actor=DRAFTER))
    updated = (await fire.until(lambda m: same_warning(m) and m["feature"]["properties"]
                                ["sequence"] == 2))["feature"]["properties"]
    assert updated["status"] == "issued" and "Unapproved wording" in str(updated["content"])
    assert [s["step"] for s in updated["steps"]] == ["issued", "updated"]
    for session in (dispatcher, fire, late):
        await session.close()


async def test_a_restricted_warning_is_pushed_only_to_departments_that_may_receive_it(
        live_server: LiveServer) -> None:
    """The restricted-warnings condition of the sharing catalogue names fire, not water: a
    water screen gets neither the change nor the warning in a later snapshot."""
    system = live_server.system
    fire_token = live_server.token("department-user", "fire")
    water_token = live_server.token("department-user", "water")
    fire = await open_session(live_server.url, fire_token, layers=["warnings"])
    water = await open_session(live_server.url, water_token, layers=["warnings"])
    await fire.next_of("snapshot")
    await water.next_of("snapshot")

    def issue_restricted() -> UUID:
        warning_id = system.warnings.handle(DraftWarning(
            category="accident-disaster", event_type="gas-leak", level="orange",
            texts=texts("Responders only"), expires=system.clock() + timedelta(hours=3),
            contact="12345", scope=Scope.RESTRICTED, restriction="Responding agencies",
            area=DrawnArea(circles=(WarningCircle(centre=IN_TOWN, radius_km=1.0),))),
            CommandContext(actor=DRAFTER)).subject
        approve_and_issue(system, warning_id)
        return warning_id

    restricted = await asyncio.to_thread(issue_restricted)
    public = await asyncio.to_thread(draft, system)
    await asyncio.to_thread(approve_and_issue, system, public)
    await fire.until(lambda m: m["type"] == "change" and m["id"] == str(restricted))
    await fire.until(lambda m: m["type"] == "change" and m["id"] == str(public))
    await water.until(lambda m: m["type"] == "change" and m["id"] == str(public))
    assert {c["id"] for c in water.changes()} == {str(public)}

    later = await open_session(live_server.url, water_token, layers=["warnings"])
    snapshot = (await later.next_of("snapshot"))["layers"]["warnings"]
    assert [w["id"] for w in snapshot] == [str(public)]
    for session in (fire, water, later):
        await session.close()
