"""Figures a city can trust (issue 9, items 3 and 4), through HTTP: a department can no longer
stop its own supervision clock (it asks, the centre decides), and a department's "not ours"
is a claim the centre reviews (accept: routed elsewhere; reject: back to the department on
the clock it had, counted as a dispute in its figures)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

REPORT = {"category": "E0101", "description": "Garbage heap next to the bus stop",
          "location": {"type": "Point", "coordinates": [118.80, 32.05]}}
URBAN = {"role": "department-user", "dept": "urban-management"}
WATER = {"role": "department-user", "dept": "water"}
OPERATOR = {"role": "hotline-operator"}


def dispatched_case(api: Any, department: str = "urban-management") -> str:
    case = api.post("/grid-cases", REPORT, role="inspector", expect=201)
    path = f"/grid-cases/{case['id']}"
    api.post(f"{path}/register")
    api.post(f"{path}/dispatch", {"department": department})
    return path


def events(api: Any, path: str) -> list[str]:
    return [e["event"] for e in api.history(path)]


# --- item 3: suspension ------------------------------------------------------------------


def test_a_department_user_can_no_longer_suspend_its_own_case(api: Any) -> None:
    """The reproduction: the department user's suspend was accepted and stopped the clock."""
    path = dispatched_case(api)
    refused = api.post(f"{path}/suspend", {"reason": "Needs a permit"}, expect=403, **URBAN)
    assert refused["error"] == "not-permitted"
    assert "grid-case.request-suspension" in refused["detail"]
    # The bulk route is gated as its single action: refused as a whole, before its body.
    case_id = path.rsplit("/", 1)[1]
    bulk = api.post("/grid-cases/bulk/suspend", {"items": [{"id": case_id}],
                                                 "reason": "Needs a permit"}, expect=403,
                    **URBAN)
    assert "grid-case.request-suspension" in bulk["detail"]
    case = api.get(path)
    assert (case["status"], case["suspended_since"]) == ("dispatched", None)
    assert events(api, path)[-1] == "Dispatched"


def test_a_department_asks_for_a_suspension_and_the_centre_decides(api: Any) -> None:
    path = dispatched_case(api)
    resume_at = (api.system.grid_cases.clock() + timedelta(days=3)).isoformat()
    asked = api.post(f"{path}/suspension-requests",
                     {"reason": "The road must be closed first", "expected_resume_at": resume_at},
                     **URBAN)
    # Asking stops nothing: the case is still with the department, its clock running.
    assert asked["status"] == "dispatched"
    assert asked["pending_suspension"]["reason"] == "The road must be closed first"
    assert asked["pending_suspension"]["requested_by"] == "department-user-1"
    api.post(f"{path}/suspension-decision", {"approve": True}, expect=403, **URBAN)

    approved = api.post(f"{path}/suspension-decision", {"approve": True})
    assert (approved["status"], approved["pending_suspension"]) == ("suspended", None)
    assert approved["suspension_reason"] == "The road must be closed first"
    assert datetime.fromisoformat(approved["expected_resume_at"]) == datetime.fromisoformat(
        resume_at)
    assert approved["suspended_since"] is not None
    # The department resumes when it can work again: that only starts the clock.
    resumed = api.post(f"{path}/resume", {}, **URBAN)
    assert (resumed["status"], resumed["expected_resume_at"]) == ("dispatched", None)
    assert events(api, path)[-3:] == ["SuspensionRequested", "SuspensionApproved", "Resumed"]

    # A refusal leaves the clock running; it needs a reason.
    api.post(f"{path}/suspension-requests", {"reason": "Waiting for parts"}, **URBAN)
    api.post(f"{path}/suspension-decision", {"approve": False}, expect=422)
    refused = api.post(f"{path}/suspension-decision",
                       {"approve": False, "reason": "A temporary fix will do"})
    assert (refused["status"], refused["pending_suspension"]) == ("dispatched", None)
    history = api.history(path)
    assert (history[-1]["event"], history[-1]["facts"]["reason"]) == (
        "SuspensionRefused", "A temporary fix will do")


def test_a_suspension_request_with_a_bad_resume_time_is_a_clear_422(api: Any) -> None:
    path = dispatched_case(api)
    naive = api.post(f"{path}/suspension-requests",
                     {"reason": "Permit", "expected_resume_at": "2030-01-01T08:00:00"},
                     expect=422, **URBAN)
    assert "time zone" in naive["detail"]
    past = api.post(f"{path}/suspension-requests",
                    {"reason": "Permit", "expected_resume_at": "2001-01-01T08:00:00+08:00"},
                    expect=422, **URBAN)
    assert "not in the future" in past["detail"]
    other = api.post(f"{path}/suspension-requests", {"reason": "Permit"}, expect=404, **WATER)
    assert other["error"] == "not-found"


# --- item 4: review of returns -----------------------------------------------------------


def test_the_centre_overrules_a_case_return_and_accepts_another(api: Any) -> None:
    """The reproduction: after a return the only way on was another department (dispatch to
    the returning one: 409 "already returned it"); now the centre reviews the return."""
    path = dispatched_case(api)
    deadline = api.get(path)["handling_deadline"]
    api.post(f"{path}/return", {"reason": "Not ours: a private yard"}, **URBAN)
    back = api.post(f"{path}/dispatch", {"department": "urban-management"}, expect=409)
    assert "reject the return with a reason" in back["detail"]
    assert api.get(path)["returns"][0]["outcome"] == "awaiting-review"
    # Out of the department's hands until the centre decides: its role may not review
    # (refused at the gate, 403, before the case's scope is looked at).
    api.post(f"{path}/return-review", {"accept": False, "reason": "Public pavement"},
             expect=403, **URBAN)
    api.post(f"{path}/return-review", {"accept": False}, expect=422)

    rejected = api.post(f"{path}/return-review",
                        {"accept": False, "reason": "Public pavement: the city's to clear"})
    assert (rejected["status"], rejected["department"]) == ("dispatched", "urban-management")
    # No free time: the deadline is the one the department had before it returned the case.
    assert rejected["handling_deadline"] == deadline
    [record] = rejected["returns"]
    assert (record["outcome"], record["review_note"], record["reviewed_by"]) == (
        "rejected", "Public pavement: the city's to clear", "dispatcher-1")
    # The department has it again, and may still dispute it.
    assert api.get(path, **URBAN)["department"] == "urban-management"
    api.post(f"{path}/return", {"reason": "Still not ours", "suggested_department": "sanitation"},
             **URBAN)
    accepted = api.post(f"{path}/return-review",
                        {"accept": True, "reason": "Sanitation's bins after all",
                         "instructions": "Bins at the bus stop"})
    assert (accepted["status"], accepted["department"]) == ("dispatched", "sanitation")
    assert [r["outcome"] for r in accepted["returns"]] == ["rejected", "accepted"]
    assert events(api, path)[-5:] == ["ReturnedToCentre", "ReturnRejected", "ReturnedToCentre",
                                      "ReturnAccepted", "Dispatched"]
    api.get(path, expect=404, **URBAN)  # no longer the urban management's case


def test_the_hotline_overrules_a_ticket_return(api: Any) -> None:
    ticket = api.post("/hotline-tickets", {
        "ticket_type": "complaint", "topic": "garbage", "description": "Bins overflowing",
        "caller_name": "Zhang San", "caller_phone": "13800001234",
        "location": {"type": "Point", "coordinates": [118.80, 32.05]}}, expect=201, **OPERATOR)
    path = f"/hotline-tickets/{ticket['id']}"
    deadline = api.post(f"{path}/assign", {"department": "water"}, **OPERATOR)["reply_deadline"]
    api.post(f"{path}/return", {"reason": "not water"}, **WATER)
    api.post(f"{path}/assign", {"department": "water"}, expect=409, **OPERATOR)
    api.post(f"{path}/return-review", {"accept": False, "reason": "x"}, expect=403, **WATER)

    rejected = api.post(f"{path}/return-review",
                        {"accept": False, "reason": "A burst main floods the bins"}, **OPERATOR)
    assert (rejected["status"], rejected["department"]) == ("assigned", "water")
    assert rejected["reply_deadline"] == deadline
    assert rejected["returns"][0]["outcome"] == "rejected"
    assert api.post(f"{path}/accept", {}, **WATER)["status"] == "accepted"

    again = api.post("/hotline-tickets", {
        "ticket_type": "complaint", "topic": "garbage", "description": "Bins overflowing",
        "location": {"type": "Point", "coordinates": [118.81, 32.05]}}, expect=201, **OPERATOR)
    other = f"/hotline-tickets/{again['id']}"
    api.post(f"{other}/assign", {"department": "water"}, **OPERATOR)
    api.post(f"{other}/return", {"reason": "not water"}, **WATER)
    accepted = api.post(f"{other}/return-review",
                        {"accept": True, "department": "sanitation", "reason": "bins"},
                        **OPERATOR)
    assert (accepted["status"], accepted["department"]) == ("assigned", "sanitation")
    assert accepted["returns"][0]["outcome"] == "accepted"
    # Both returns count against the water company, wherever the tickets went.
    api.settle()
    [water] = [d for d in api.get("/statistics/hotline", **WATER)["departments"]]
    assert (water["department"], water["returns_made"], water["returns_rejected"],
            water["returns_accepted"], water["dispute_rate"]) == ("water", 2, 1, 1, 0.5)


def test_disputes_are_counted_in_the_department_s_statistics(api: Any) -> None:
    rejected = dispatched_case(api)
    api.post(f"{rejected}/return", {"reason": "Not ours"}, **URBAN)
    api.post(f"{rejected}/return-review", {"accept": False, "reason": "Yours"})
    accepted = dispatched_case(api)
    api.post(f"{accepted}/return", {"reason": "Not ours"}, **URBAN)
    api.post(f"{accepted}/return-review", {"accept": True, "department": "sanitation"})
    waiting = dispatched_case(api)
    api.post(f"{waiting}/return", {"reason": "Not ours"}, **URBAN)
    api.settle()
    for actor in ({}, URBAN):
        [urban] = [d for d in api.get("/statistics/departments", **actor)["data"]
                   if d["department"] == "urban-management"]
        assert {k: urban[k] for k in ("returns_reviewed", "returns_rejected", "returns_accepted",
                                      "returns_awaiting_review")} == {
            "returns_reviewed": 2, "returns_rejected": 1, "returns_accepted": 1,
            "returns_awaiting_review": 1}
        assert urban["dispute_rate"] == 0.5


def test_the_centre_settles_a_selection_in_bulk(api: Any) -> None:
    asked = [dispatched_case(api) for _ in range(2)]
    for path in asked:
        api.post(f"{path}/suspension-requests", {"reason": "Road closure needed"}, **URBAN)
    returned = [dispatched_case(api) for _ in range(2)]
    for path in returned:
        api.post(f"{path}/return", {"reason": "Not ours"}, **URBAN)

    def ids(paths: list[str]) -> list[dict[str, str]]:
        return [{"id": p.rsplit("/", 1)[1]} for p in paths]

    approved = api.post("/grid-cases/bulk/suspension-decision",
                        {"items": ids(asked), "approve": True})
    assert [r["document"]["status"] for r in approved["results"]] == ["suspended"] * 2
    rejected = api.post("/grid-cases/bulk/return-review",
                        {"items": ids(returned), "accept": False, "reason": "Yours"})
    assert [(r["document"]["status"], r["document"]["department"])
            for r in rejected["results"]] == [("dispatched", "urban-management")] * 2
