"""Inspectors work in their own cells (issue 9, item 6): a case is verified by the inspector
who patrols its cell, or by the one the centre assigns; a report outside one's cells is
accepted but marked. In the test city `insp-wang` patrols everything but district D04,
which `insp-zhou` patrols."""

from __future__ import annotations

from uuid import UUID

import pytest

from cityops.domain.actors import Actor, Role
from cityops.domain.errors import IllegalTransition, InvalidValue, NotPermitted
from cityops.domain.gridcases.case import CaseStatus

WANG = Actor("insp-wang", Role.INSPECTOR)
ZHOU = Actor("insp-zhou", Role.INSPECTOR)


@pytest.fixture
def d04_case(workflow, places):
    """A case in D04 (reported by its own inspector), handled: waiting for verification."""
    return workflow.to("handled", location=places.in_d04, actor=ZHOU)


def event_names(workflow, case_id: UUID) -> list[str]:
    return [type(e).__name__ for e in workflow.app.events.get(case_id)]


def test_an_inspector_cannot_verify_a_case_outside_their_cells(workflow,
                                                               d04_case: UUID) -> None:
    version = workflow.version(d04_case)
    with pytest.raises(NotPermitted, match=(
            rf"inspector insp-wang may not verify grid case {d04_case}: it is in cell "
            r"D04-\S+, patrolled by insp-zhou; the centre can assign another inspector")):
        workflow.verify(d04_case, actor=WANG)
    with pytest.raises(NotPermitted, match="may not order rework of"):
        workflow.order_rework(d04_case, actor=WANG)
    assert workflow.version(d04_case) == version
    workflow.verify(d04_case, actor=ZHOU)
    assert workflow.case(d04_case).status is CaseStatus.VERIFIED


def test_the_centre_may_still_verify_itself(workflow, d04_case: UUID) -> None:
    workflow.verify(d04_case, actor=workflow.cast.dispatcher)
    assert workflow.case(d04_case).status is CaseStatus.VERIFIED


def test_the_centre_assigns_another_inspector_to_verify(workflow,
                                                        d04_case: UUID) -> None:
    app, dispatcher = workflow.app, workflow.cast.dispatcher
    app.assign_verifier(d04_case, inspector="insp-wang", reason="insp-zhou is on leave",
                        actor=dispatcher)
    case = workflow.case(d04_case)
    assert case.summary()["assigned_verifier"] == "insp-wang"
    assert event_names(workflow, d04_case)[-1] == "VerifierAssigned"
    # The cell's own inspector is no longer the one to verify it.
    with pytest.raises(NotPermitted, match="the centre assigned insp-wang to verify it"):
        workflow.verify(d04_case, actor=ZHOU)
    with pytest.raises(IllegalTransition, match="insp-wang is already assigned"):
        app.assign_verifier(d04_case, inspector="insp-wang", actor=dispatcher)
    workflow.order_rework(d04_case, actor=WANG)
    # Rework done, the assigned inspector verifies again.
    workflow.handle(d04_case)
    workflow.verify(d04_case, actor=WANG)
    assert workflow.case(d04_case).status is CaseStatus.VERIFIED
    with pytest.raises(IllegalTransition, match="it is verified"):
        app.assign_verifier(d04_case, inspector="insp-zhou", actor=dispatcher)


def test_only_the_centre_assigns_a_known_inspector(workflow, d04_case: UUID) -> None:
    app, dispatcher = workflow.app, workflow.cast.dispatcher
    with pytest.raises(NotPermitted, match=r"may not grid-case\.assign-verifier"):
        app.assign_verifier(d04_case, inspector="insp-wang", actor=WANG)
    with pytest.raises(InvalidValue, match="unknown inspector 'insp-nobody'"):
        app.assign_verifier(d04_case, inspector="insp-nobody", actor=dispatcher)
    assert workflow.case(d04_case).assigned_verifier is None


def test_a_report_outside_ones_cells_is_accepted_and_marked(workflow,
                                                           places) -> None:
    outside = workflow.report(location=places.in_d04, actor=WANG)
    summary = workflow.case(outside).summary()
    assert (summary["status"], summary["outside_assigned_cells"]) == ("reported", True)
    assert event_names(workflow, outside) == ["Reported", "ReportedOutsideAssignedCells"]
    [marked] = [e for e in workflow.app.events.get(outside)
                if type(e).__name__ == "ReportedOutsideAssignedCells"]
    assert (marked.actor, marked.cell_inspector) == (WANG, "insp-zhou")

    own = workflow.report(location=places.in_d04, actor=ZHOU)
    by_centre = workflow.report(location=places.in_d04,
                                actor=workflow.cast.dispatcher)
    for case_id in (own, by_centre):
        assert workflow.case(case_id).summary()["outside_assigned_cells"] is False
        assert event_names(workflow, case_id) == ["Reported"]
