"""Bulk actions as a dispatcher uses them on a selection: each item its own command with its
own result (done, illegal, stale, unknown, invalid), nothing undone by a neighbour's failure,
the same checks as the single action, and a retried request repeats nothing."""

from __future__ import annotations

import re
from typing import Any
from uuid import uuid4

import pytest

from cityops.command_center.routers.bulk import MAX_BULK_ITEMS

REPORT = {"category": "E0101", "description": "Garbage heap next to the bus stop",
          "location": {"type": "Point", "coordinates": [118.80, 32.05]}}
CALL = {"channel": "phone", "ticket_type": "complaint", "topic": "garbage",
        "description": "Bins not emptied for three days", "caller_name": "Zhang San",
        "caller_phone": "13812345678",
        "location": {"type": "Point", "coordinates": [118.80, 32.05]}}


def cases(api: Any, count: int) -> list[str]:
    return [api.post("/grid-cases", REPORT, role="inspector",
                     user=api.inspector_at(REPORT["location"]), expect=201)["id"]
            for _ in range(count)]


def events(api: Any, collection: str, item_id: str) -> list[str]:
    return [e["event"] for e in api.history(f"/{collection}/{item_id}")]


def test_a_selection_with_done_illegal_stale_unknown_and_invalid_items(api: Any) -> None:
    fresh, registered, moved, bad_args = cases(api, 4)
    unknown = str(uuid4())
    api.post(f"/grid-cases/{registered}/register", {})
    # Someone else registers `moved` after our dispatcher saw it at version 1.
    api.post(f"/grid-cases/{moved}/register", {}, user="dispatcher-2")

    answer = api.post("/grid-cases/bulk/register", {
        "note": "Morning queue",
        "items": [{"id": fresh, "version": 1}, {"id": registered}, {"id": moved, "version": 1},
                  {"id": unknown}, {"id": bad_args, "urgency": "whenever"}],
    })
    results = answer["results"]
    assert [r["id"] for r in results] == [fresh, registered, moved, unknown, bad_args]
    assert [(r["ok"], r["status"], r["code"]) for r in results] == [
        (True, 200, None), (False, 409, "illegal-transition"), (False, 409, "stale-version"),
        (False, 404, "not-found"), (False, 422, "invalid-request")]
    assert (answer["succeeded"], answer["failed"]) == (1, 4)

    done = results[0]
    assert done["error"] is None
    assert (done["document"]["status"], done["document"]["version"]) == ("registered", 2)
    assert done["document"] == api.get(f"/grid-cases/{fresh}")
    assert f"cannot register grid case {registered}: it is registered" in results[1]["error"]
    assert re.match(rf"grid case {moved} changed since you opened it: version 1 -> 2 "
                    r"\(Registered by dispatcher-2 at ", results[2]["error"])
    assert results[3]["error"] == f"grid case {unknown} does not exist"
    assert "urgency" in results[4]["error"]
    assert all(r["document"] is None for r in results[1:])

    # Only the one item was changed; the note reached it.
    assert events(api, "grid-cases", fresh) == ["Reported", "Registered"]
    assert api.history(f"/grid-cases/{fresh}")[1]["facts"]["note"] == "Morning queue"
    assert events(api, "grid-cases", registered) == ["Reported", "Registered"]
    assert events(api, "grid-cases", moved) == ["Reported", "Registered"]
    assert events(api, "grid-cases", bad_args) == ["Reported"]


def test_a_retried_bulk_request_repeats_nothing_and_does_what_was_left(api: Any) -> None:
    first, second, third = cases(api, 3)
    selection = [{"id": first}, {"id": second}]
    done = api.post("/grid-cases/bulk/register", {"items": selection}, key="desk-4:bulk-17")
    assert [r["ok"] for r in done["results"]] == [True, True]

    # The answer was lost; the dashboard sends the request again, now with a third case.
    again = api.post("/grid-cases/bulk/register", {"items": [*selection, {"id": third}]},
                     key="desk-4:bulk-17")
    assert [r["ok"] for r in again["results"]] == [True, True, True]
    assert [r["document"] for r in again["results"][:2]] == [
        r["document"] for r in done["results"]]
    for case_id in (first, second, third):
        assert events(api, "grid-cases", case_id) == ["Reported", "Registered"]

    # The same key for another action is a reused id, item by item.
    reused = api.post("/grid-cases/bulk/reject", {"reason": "not-reproducible",
                                                  "items": [{"id": first}]},
                      key="desk-4:bulk-17")
    assert reused["results"][0]["code"] == "command-id-reused"


def test_common_arguments_apply_to_every_item_and_an_item_s_own_win(api: Any) -> None:
    usual, special = cases(api, 2)
    api.post("/grid-cases/bulk/register", {"items": [{"id": usual}, {"id": special}]})
    answer = api.post("/grid-cases/bulk/dispatch", {
        "department": "sanitation", "instructions": "Today",
        "items": [{"id": usual}, {"id": special, "department": "urban-management"}]})
    assert [r["document"]["department"] for r in answer["results"]] == [
        "sanitation", "urban-management"]


def test_each_item_gets_the_same_permission_checks_as_the_single_action(api: Any) -> None:
    first, second = cases(api, 2)
    # A role that may not issue the single action is refused the whole request before its
    # body is read (it learns nothing about the items); other checks stay per item.
    answer = api.post("/grid-cases/bulk/register", {"items": [{"id": first}, {"id": second}]},
                      role="inspector", expect=403)
    assert answer["error"] == "not-permitted" and "grid-case.register" in answer["detail"]
    assert events(api, "grid-cases", first) == ["Reported"]
    api.post("/grid-cases/bulk/register", {"items": [{"id": first}]}, role=None, expect=401)


def test_a_department_user_acts_only_on_their_own_tickets(api: Any) -> None:
    operator = {"role": "hotline-operator"}
    ours = api.post("/hotline-tickets", CALL, expect=201, **operator)["id"]
    theirs = api.post("/hotline-tickets", CALL, expect=201, **operator)["id"]
    assigned = api.post("/hotline-tickets/bulk/assign", {
        "items": [{"id": ours, "department": "sanitation"},
                  {"id": theirs, "department": "water"}]}, **operator)
    assert [r["document"]["department"] for r in assigned["results"]] == ["sanitation", "water"]

    accepted = api.post("/hotline-tickets/bulk/accept", {"items": [{"id": ours},
                                                                    {"id": theirs}]},
                        role="department-user", dept="sanitation")
    mine, other = accepted["results"]
    assert (mine["ok"], mine["document"]["status"]) == (True, "accepted")
    # The caller's personal data is withheld as the single route withholds it.
    assert "caller" not in mine["document"]
    # Another department's ticket reads as absent, exactly as through the single route.
    single = api.client.post(f"/hotline-tickets/{theirs}/accept", json={},
                             headers=api.headers("department-user", "sanitation"))
    assert (other["ok"], other["status"]) == (False, single.status_code)
    assert other["error"] == single.json()["detail"]
    assert events(api, "hotline-tickets", theirs) == ["Received", "Assigned"]


def test_tickets_of_one_matter_are_merged_into_their_primary(api: Any) -> None:
    operator = {"role": "hotline-operator"}
    primary, *duplicates = (api.post("/hotline-tickets", CALL, expect=201, **operator)["id"]
                            for _ in range(3))
    answer = api.post("/hotline-tickets/bulk/merge",
                      {"primary_id": primary, "items": [{"id": d} for d in duplicates]},
                      **operator)
    assert [(r["document"]["status"], r["document"]["merged_into"])
            for r in answer["results"]] == [("merged", primary)] * 2
    assert len(api.get(f"/hotline-tickets/{primary}", **operator)["extra_calls"]) == 2


@pytest.mark.parametrize(("body", "message"), [
    ({"items": []}, "items: Value error, give at least one item"),
    ({"items": [{"id": str(uuid4())} for _ in range(MAX_BULK_ITEMS + 1)]},
     f"a bulk action takes at most {MAX_BULK_ITEMS} items, not {MAX_BULK_ITEMS + 1}"),
    ({"items": [{"id": "00000000-0000-0000-0000-000000000001"}] * 2},
     "item 00000000-0000-0000-0000-000000000001 appears twice"),
    ({"items": [{"id": "case-one"}]}, "items.0.id"),
    ({"note": "no items"}, "items: Field required"),
])
def test_a_malformed_selection_is_refused_whole(api: Any, body: dict[str, Any],
                                                message: str) -> None:
    refused = api.post("/grid-cases/bulk/register", body, expect=422)
    assert message in refused["detail"]


def test_an_action_without_a_bulk_form_is_refused(api: Any) -> None:
    refused = api.post("/grid-cases/bulk/handle", {"items": [{"id": str(uuid4())}]},
                       expect=422)
    assert "register" in refused["detail"] and "action" in refused["detail"]


def test_the_most_items_are_accepted(api: Any) -> None:
    """200 items of which none exists: each answered, in order, and quickly refused."""
    ids = [str(uuid4()) for _ in range(MAX_BULK_ITEMS)]
    answer = api.post("/hotline-tickets/bulk/close", {"items": [{"id": i} for i in ids]},
                      role="hotline-operator")
    assert [r["id"] for r in answer["results"]] == ids
    assert {r["status"] for r in answer["results"]} == {404}
