"""Duplicate reports: a new report of the same category close in space and time to an open
case is proposed as a duplicate, nearest first; it is never merged silently.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cityops.domain.duplicates import DuplicatePolicy, OpenReport, propose_duplicates
from cityops.domain.errors import InvalidValue
from cityops.domain.geometry import GeoPoint
from cityops.domain.gridcases.case import CaseStatus

NOW = datetime(2026, 3, 10, 1, 0, tzinfo=UTC)
HERE = GeoPoint(121.4105, 31.2105)
METRES_PER_DEGREE_LAT = 111_195.08


def north(metres: float, of: GeoPoint = HERE) -> GeoPoint:
    return GeoPoint(of.lon, of.lat + metres / METRES_PER_DEGREE_LAT)


def report(metres: float = 0.0, *, category: str = "E0101", ago: timedelta = timedelta(hours=1),
           report_id: UUID | None = None) -> OpenReport:
    return OpenReport(id=report_id or uuid4(), category=category, location=north(metres),
                      reported_at=NOW - ago)


def propose(*candidates: OpenReport, policy: DuplicatePolicy | None = None,
            category: str = "E0101") -> list[UUID]:
    return propose_duplicates(category=category, location=HERE, at=NOW,
                              candidates=candidates, policy=policy or DuplicatePolicy())


def test_the_default_policy_is_fifty_metres_and_a_day():
    policy = DuplicatePolicy()
    assert policy.radius_m == 50.0
    assert policy.window == timedelta(hours=24)


def test_a_report_of_the_same_thing_nearby_and_recently_is_proposed():
    same = report(20)
    assert propose(same) == [same.id]


def test_other_categories_far_places_and_old_reports_are_not_proposed():
    assert propose(
        report(5, category="E0102"),
        report(80),
        report(5, ago=timedelta(hours=25)),
        report(5, ago=-timedelta(hours=25)),  # a clock far ahead is no closer in time
    ) == []


def test_proposals_are_nearest_first_then_earliest():
    far, near = report(40), report(10)
    older, newer = report(25, ago=timedelta(hours=5)), report(25, ago=timedelta(hours=2))
    assert propose(far, newer, near, older) == [near.id, older.id, newer.id, far.id]


def test_the_limits_are_inclusive():
    at_the_edge = report(0, ago=timedelta(hours=24))
    exactly_there = report(30)
    radius = HERE.distance_m(exactly_there.location)
    assert propose(at_the_edge, exactly_there, policy=DuplicatePolicy(radius_m=radius)) == [
        at_the_edge.id, exactly_there.id]


def test_a_wider_policy_finds_more():
    distant = report(180, ago=timedelta(hours=40))
    assert propose(distant) == []
    wide = DuplicatePolicy(radius_m=200, window=timedelta(hours=48))
    assert propose(distant, policy=wide) == [distant.id]


@pytest.mark.parametrize(("kwargs", "problem"), [
    ({"radius_m": 0}, "radius must be positive"),
    ({"radius_m": -5}, "radius must be positive"),
    ({"window": timedelta()}, "time window must be positive"),
    ({"window": -timedelta(hours=1)}, "time window must be positive"),
])
def test_a_policy_must_have_a_positive_radius_and_window(kwargs, problem):
    with pytest.raises(InvalidValue, match=problem):
        DuplicatePolicy(**kwargs)


candidates = st.lists(
    st.builds(
        report,
        st.floats(min_value=0, max_value=150),
        category=st.sampled_from(["E0101", "E0102"]),
        ago=st.integers(min_value=-30 * 3600, max_value=30 * 3600).map(
            lambda s: timedelta(seconds=s)),
    ),
    max_size=12,
)


@settings(max_examples=150, derandomize=True, deadline=None)
@given(reports=candidates)
def test_every_proposal_fits_the_policy_and_none_is_missed(reports):
    policy = DuplicatePolicy()
    proposed = propose(*reports, policy=policy)
    by_id = {r.id: r for r in reports}
    fits = {r.id for r in reports if r.category == "E0101"
            and HERE.distance_m(r.location) <= policy.radius_m
            and abs(NOW - r.reported_at) <= policy.window}
    assert set(proposed) == fits
    distances = [HERE.distance_m(by_id[i].location) for i in proposed]
    assert distances == sorted(distances)


# --- in the application -------------------------------------------------------------------


def test_a_new_report_near_an_open_case_is_proposed_not_merged(workflow, open_reports, clock,
                                                               places):
    first = workflow.report(category="E0101", location=places.in_d01)
    open_reports.add_case(workflow.case(first))
    clock.advance(hours=3)
    second = workflow.report(category="E0101", location=north(15, of=places.in_d01))
    case = workflow.case(second)
    assert case.possible_duplicates == [first]
    assert case.status is CaseStatus.REPORTED
    assert workflow.case(first).status is CaseStatus.REPORTED
    assert case.summary()["possible_duplicates"] == [str(first)]
    # The read model was asked for reports within the policy's radius and window.
    point, radius, since = open_reports.queries[-1]
    assert (point, radius, since) == (north(15, of=places.in_d01), 50.0,
                                      clock() - timedelta(hours=24))


def test_a_report_of_another_category_at_the_same_place_is_not_a_duplicate(workflow,
                                                                            open_reports):
    first = workflow.report(category="E0101")
    open_reports.add_case(workflow.case(first))
    second = workflow.report(category="C0101")
    assert workflow.case(second).possible_duplicates == []


def test_the_application_uses_its_duplicate_policy(make_gridcases, clock, open_reports, cast,
                                                   places):
    app = make_gridcases(clock, open_reports=open_reports,
                         duplicate_policy=DuplicatePolicy(radius_m=300))
    first = app.report(source="inspector", category="E0101", description="garbage",
                       location=places.in_d01, actor=cast.inspector)
    open_reports.add_case(app.case(first))
    second = app.report(source="camera", category="E0101", description="garbage seen",
                        location=north(250, of=places.in_d01), actor=cast.system)
    assert app.case(second).possible_duplicates == [first]
    assert open_reports.queries[-1][1] == 300
