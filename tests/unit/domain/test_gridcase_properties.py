"""Random sequences of commands, valid and invalid, by the right people and the wrong ones, at
good and bad times, with fresh and reused command ids: whatever happens, the case stays in
a known state, its invariants hold, a failed command changes nothing, only the transitions of
the workflow ever succeed, and its stored events rebuild exactly the state that was saved.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from cityops.domain.actors import Actor, Role
from cityops.domain.errors import (
    CommandIdReused,
    DomainError,
    IllegalTransition,
    InvalidValue,
    NotPermitted,
)
from cityops.domain.gridcases.case import MAX_PHOTOS, CaseStatus, GridCase, RejectionReason
from cityops.domain.model import MAX_TEXT

S = CaseStatus
# The workflow of the domain brief: (state, command) -> state after it. Anything else must fail.
TRANSITIONS: dict[tuple[CaseStatus, str], CaseStatus] = {
    (S.REPORTED, "register"): S.REGISTERED,
    (S.REPORTED, "reject"): S.REJECTED,
    (S.REGISTERED, "dispatch"): S.DISPATCHED,
    (S.RETURNED, "dispatch"): S.DISPATCHED,
    (S.DISPATCHED, "return_to_centre"): S.RETURNED,
    (S.DISPATCHED, "request_extension"): S.DISPATCHED,
    (S.DISPATCHED, "approve_extension"): S.DISPATCHED,
    (S.DISPATCHED, "refuse_extension"): S.DISPATCHED,
    (S.SUSPENDED, "approve_extension"): S.SUSPENDED,
    (S.SUSPENDED, "refuse_extension"): S.SUSPENDED,
    (S.DISPATCHED, "suspend"): S.SUSPENDED,
    (S.DISPATCHED, "request_suspension"): S.DISPATCHED,
    (S.DISPATCHED, "approve_suspension"): S.SUSPENDED,
    (S.DISPATCHED, "refuse_suspension"): S.DISPATCHED,
    (S.RETURNED, "accept_return"): S.DISPATCHED,
    (S.RETURNED, "reject_return"): S.DISPATCHED,
    (S.SUSPENDED, "resume"): S.DISPATCHED,
    (S.DISPATCHED, "handle"): S.HANDLED,
    (S.HANDLED, "verify"): S.VERIFIED,
    (S.HANDLED, "order_rework"): S.DISPATCHED,
    (S.VERIFIED, "close_case"): S.CLOSED,
}
COMMANDS = sorted({command for _, command in TRANSITIONS})
DEPARTMENT_COMMANDS = {"return_to_centre", "request_extension", "request_suspension", "resume",
                       "handle"}
# Accepting a return (also by dispatching the returned case elsewhere) records the review and
# the new dispatch: two events.
EVENTS_RECORDED = {(S.RETURNED, "dispatch"): 2, (S.RETURNED, "accept_return"): 2}
TOO_MANY = [f"photo://{i}.jpg" for i in range(MAX_PHOTOS + 1)]


def variants(command: str, case: GridCase, other: UUID) -> list[dict[str, Any]]:
    """Arguments for `command`: the first is the workflow's default, the others are other
    valid choices and invalid ones."""
    deadline = case.handling_deadline
    return {
        "register": [{}, {"category": "E0101"}, {"category": "Z0000"}, {"urgency": "urgent"}],
        "reject": [{"reason": "not-reproducible"}, {"reason": "duplicate"},
                   {"reason": "duplicate", "duplicate_of": other}, {"reason": "bogus"}],
        "dispatch": [{}, {"department": "roads"}, {"department": "water"},
                     {"department": "nowhere"}],
        "return_to_centre": [{}, {"suggested_department": None},
                             {"suggested_department": "water"}, {"reason": ""}],
        "request_extension": [{}, {"reason": ""},
                              {"requested_deadline": (deadline - timedelta(hours=1))
                               if deadline else None}],
        "approve_extension": [{}, {"deadline": deadline + timedelta(days=10) if deadline
                                   else None},
                              {"deadline": deadline - timedelta(days=1) if deadline
                               else None}],
        "refuse_extension": [{}, {"reason": ""}],
        "suspend": [{}, {"reason": ""}],
        "request_suspension": [{}, {"reason": ""},
                               {"expected_resume_at": case.modified_on + timedelta(days=2)},
                               {"expected_resume_at": case.modified_on}],
        "approve_suspension": [{}, {"expected_resume_at": case.modified_on + timedelta(days=9)}],
        "refuse_suspension": [{}, {"reason": ""}],
        "accept_return": [{}, {"department": "roads"}, {"department": "water"},
                          {"reason": "x" * (MAX_TEXT + 1)}],
        "reject_return": [{}, {"reason": ""}, {"department": "roads"}],
        "resume": [{}],
        "handle": [{}, {"result": ""}, {"evidence": TOO_MANY}],
        "verify": [{}, {"photos": TOO_MANY}, {"note": "x" * (MAX_TEXT + 1)}],
        "order_rework": [{}, {"note": ""}],
        "close_case": [{}, {"note": "x" * (MAX_TEXT + 1)}],
    }[command]


def actor_for(choice: str, command: str, case: GridCase, cast: Any) -> Actor | None:
    """None means the workflow's default actor for the command."""
    department = case.department or "water"
    if choice == "right":
        if command in DEPARTMENT_COMMANDS:
            return Actor(f"{department}-user", Role.DEPARTMENT_USER, department)
        return None
    if choice == "admin":
        return cast.admin
    if choice == "leader":
        return cast.leader
    other = "sanitation" if department != "sanitation" else "water"
    return Actor(f"{other}-user", Role.DEPARTMENT_USER, other)


def step_in(status: CaseStatus) -> st.SearchStrategy[dict[str, Any]]:
    """One step: mostly a command the workflow allows now (so cases get far), sometimes any
    command; mostly by the right person at the right time, sometimes not."""
    allowed = sorted(command for (s, command) in TRANSITIONS if s is status)
    if "reject" in allowed:
        allowed += ["register"] * 3  # rejection ends a case: let most of them go on
    commands = st.sampled_from(COMMANDS)
    if allowed:
        commands = st.sampled_from(allowed) | st.sampled_from(allowed) | commands
    return st.fixed_dictionaries({
        "command": commands,
        "variant": st.just(0) | st.integers(min_value=0, max_value=4),
        "actor": st.sampled_from(["right"] * 6 + ["admin", "leader", "other-department"]),
        "wait": st.sampled_from([0, 1, 17, 90, 600, 1440, 4000]).map(
            lambda m: timedelta(minutes=m)),
        "at": st.sampled_from(["now"] * 8 + ["before-last", "future", "naive"]),
        "command_id": st.sampled_from([None] * 4 + ["fresh", "reuse"]),
    })


def check_invariants(case: GridCase) -> None:
    """What must hold of a case in every state."""
    assert isinstance(case.status, CaseStatus)
    assert case.summary()["status"] in {s.value for s in CaseStatus}
    if case.is_open:
        assert case.closed_at is None
        assert case.stage is not None
        assert case.stage.deadline >= case.stage.started_at
    else:
        assert case.closed_at is not None
        assert case.stage is None
    if case.status in (S.DISPATCHED, S.SUSPENDED):
        assert case.department is not None
        assert case.handling_deadline is not None
        assert case.handling_deadline == case.stage.deadline
        assert (case.stage.paused_since is not None) == (case.status is S.SUSPENDED)
        assert (case.suspension_reason is not None) == (case.status is S.SUSPENDED)
    else:
        assert case.pending_extension is None
        assert case.stage is None or case.stage.paused_since is None
    if case.status is not S.DISPATCHED:
        assert case.pending_suspension is None
    if case.status is not S.SUSPENDED:
        assert case.expected_resume_at is None
    assert len(case.returns) == case.return_count
    outcomes = [r["outcome"] for r in case.summary()["returns"]]
    if case.status is S.RETURNED:
        assert outcomes[-1] == "awaiting-review"
    assert "awaiting-review" not in outcomes[:-1 if case.status is S.RETURNED else None]
    assert "lapsed" not in outcomes
    if case.status in (S.HANDLED, S.VERIFIED, S.CLOSED):
        assert case.department is not None
        assert case.result
        assert case.handled_at is not None
    if case.status in (S.VERIFIED, S.CLOSED):
        assert case.verified_at is not None
    if case.status is S.RETURNED:
        assert case.department is None
        assert case.handling_deadline is None
        assert case.returned_by is not None
    if case.status is S.REJECTED:
        assert case.rejection_reason is not None
        assert (case.duplicate_of is not None) == (
            case.rejection_reason is RejectionReason.DUPLICATE)
    else:
        assert case.rejection_reason is None
    if case.status in (S.REPORTED, S.REGISTERED, S.REJECTED):
        assert case.department is None
        assert case.dispatch_count == 0


COUNTERS = ("rework_count", "return_count", "extension_count", "dispatch_count")


def state(case: GridCase) -> dict[str, Any]:
    """Everything an aggregate holds, but the events it has not yet saved."""
    return {k: v for k, v in vars(case).items() if k != "_pending_events"}


@settings(max_examples=150, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), length=st.integers(min_value=1, max_value=40))
def test_random_command_sequences_keep_the_case_consistent(make_workflow, cast, data, length):
    workflow = make_workflow()
    app, clock = workflow.app, workflow.clock
    case_id = workflow.report()
    other = workflow.report(description="the cover next door")

    # A spy on the application's loader: the aggregate a command worked on and saved.
    worked_on: list[GridCase] = []
    load = app.case

    def case_spy(aggregate_id: UUID) -> GridCase:
        worked_on.append(load(aggregate_id))
        return worked_on[-1]

    app.case = case_spy  # type: ignore[method-assign]
    receipted: list[str] = []
    for number in range(length):
        before = app.repository.get(case_id)
        step = data.draw(step_in(before.status), label=f"step {number}")
        clock.advance(step["wait"])
        command = step["command"]
        choices = variants(command, before, other)
        kwargs = dict(choices[step["variant"] % len(choices)])
        kwargs = {k: v for k, v in kwargs.items()
                  if v is not None or k == "suggested_department"}
        actor = actor_for(step["actor"], command, before, cast)
        if actor is not None:
            kwargs["actor"] = actor
        if step["at"] == "before-last":
            kwargs["at"] = before.modified_on - timedelta(seconds=1)
        elif step["at"] == "future":
            kwargs["at"] = clock() + timedelta(days=1)
        elif step["at"] == "naive":
            kwargs["at"] = clock().replace(tzinfo=None)
        repeat = step["command_id"] == "reuse" and bool(receipted)
        if repeat:
            kwargs["command_id"] = receipted[-1]
        elif step["command_id"] == "fresh":
            kwargs["command_id"] = f"step-{number}"

        worked_on.clear()
        try:
            getattr(workflow, command)(case_id, **kwargs)
        except DomainError as error:
            failed: DomainError | None = error
        else:
            failed = None
        after = app.repository.get(case_id)

        if failed is not None or repeat:
            # Nothing changed: not the version, not the state.
            assert after.version == before.version, (command, kwargs, failed)
            assert after.summary() == before.summary()
            if repeat:
                # The receipt answers before the case is looked at: the same command again
                # is answered as before, another one is refused.
                assert failed is None or isinstance(
                    failed, CommandIdReused | InvalidValue | NotPermitted)
            elif failed is not None:
                assert isinstance(failed, IllegalTransition | InvalidValue | NotPermitted)
        else:
            # Only the workflow's transitions succeed, each with one event.
            assert (before.status, command) in TRANSITIONS, (before.status, command)
            assert after.status is TRANSITIONS[before.status, command]
            assert after.version == before.version + EVENTS_RECORDED.get(
                (before.status, command), 1)
            # The state saved is exactly the state its stored events rebuild.
            saved = [c for c in worked_on if c.id == case_id][-1]
            assert saved.summary() == after.summary()
            assert state(saved) == state(after)
            if "command_id" in kwargs:
                receipted.append(kwargs["command_id"])

        event(f"reached {after.status.value}")
        if after.pending_extension:
            event("extension pending")
        if after.rework_count:
            event("reworked")
        if failed is None and repeat:
            event("repeated command id")
        check_invariants(after)
        for counter in COUNTERS:
            assert getattr(after, counter) >= getattr(before, counter)
        assert after.reported_at == before.reported_at
