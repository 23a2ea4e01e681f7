"""Idempotency keys belong to the user who sends them (issue 10, item 7): another user's
command with the same key is another command, and receipts stored before keys were scoped
still answer their own user's retries."""

from __future__ import annotations

from typing import Any

from cityops.domain.actors import Actor, Role
from cityops.domain.catalogue import Urgency
from cityops.domain.geometry import GeoPoint
from cityops.domain.gridcases.case import CaseSource

REPORT = {"category": "E0101", "description": "Overflowing bins at the bus stop",
          "location": {"type": "Point", "coordinates": [118.80, 32.05]}}


def test_another_users_same_key_is_another_command_not_a_replay(api: Any) -> None:
    """Reproduction: the second user's command answered the first user's case (their
    report was never recorded, and they were shown someone else's)."""
    first = api.post("/grid-cases", REPORT, role="inspector", user="insp-a", key="k-1",
                     expect=201)
    second = api.post("/grid-cases", REPORT, role="inspector", user="insp-b", key="k-1",
                      expect=201)
    assert second["id"] != first["id"]
    history = api.history(f"/grid-cases/{second['id']}")
    assert history[0]["actor"]["user_id"] == "insp-b"
    # Each user's own retry is still a repeat of their own command.
    again = api.post("/grid-cases", REPORT, role="inspector", user="insp-a", key="k-1",
                     expect=201)
    assert again["id"] == first["id"]
    assert again["version"] == first["version"]


def test_another_users_same_key_on_a_transition_is_not_answered_from_the_first(
        api: Any) -> None:
    case = api.post("/grid-cases", REPORT, role="inspector", expect=201)
    api.post(f"/grid-cases/{case['id']}/register", role="dispatcher", user="disp-a",
             key="reg-1")
    # The same key from another dispatcher is their own command: refused on the case as
    # it now is, not answered with the first dispatcher's success.
    refused = api.client.post(f"/grid-cases/{case['id']}/register", json={},
                              headers=api.headers("dispatcher", key="reg-1", user="disp-b"))
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"] == "illegal-transition"


def test_a_receipt_stored_before_keys_were_scoped_answers_its_own_users_retry(
        api: Any) -> None:
    """A phone's outbox may send again, after an upgrade, a report first sent before it:
    the receipt stored under the bare key still makes it a repeat."""
    api.user("inspector", user="insp-old")
    inspector = Actor(user_id="insp-old", role=Role.INSPECTOR)
    # What the API stored before: the receipt under the bare key.
    old_id = api.system.grid_cases.report(
        source=CaseSource.INSPECTOR, category="E0101",
        description=REPORT["description"], location=GeoPoint(118.80, 32.05),
        urgency=Urgency.NORMAL, photos=[], actor=inspector, command_id="outbox-7")
    retried = api.post("/grid-cases", REPORT, role="inspector", user="insp-old",
                       key="outbox-7", expect=201)
    assert retried["id"] == str(old_id)
    # Someone else's old receipt under that bare key is not theirs to replay.
    other = api.post("/grid-cases", REPORT, role="inspector", user="insp-new",
                     key="outbox-7", expect=201)
    assert other["id"] != str(old_id)
