"""Response times of emergency resources, computed from their status history, in the terms
of NFPA 1710 (the fire-service standard for response-time measurement) so that drills and
after-action reviews speak the language dispatch centres are evaluated in.

All functions are pure: they take the compact status history a `Resource` keeps (or build
it from the resource's recorded events with `status_changes`), and times of the incident
they need as arguments; they never load anything.

Terms, for one assignment of one resource to one incident:

- queue time: incident reported -> resource dispatched (the call-processing and alarm
  handling share of the response: how long the incident waited for this resource);
- turnout time: dispatched -> en route (how long the crew took to set off);
- travel time: en route -> on scene;
- response time: incident reported -> first arrival on scene (over several assignments of
  the same incident: the first of them to arrive);
- time on scene: on scene -> leaving the scene (cleared, deactivated or reassigned).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from uuid import UUID

from cityops.domain.errors import InvalidValue
from cityops.domain.resources.resource import Resource, ResourceStatus, StatusChange


class AssignmentOutcome(StrEnum):
    """How an assignment ended."""

    CLEARED = "cleared"
    """Left the scene after arriving (or, a depot or shelter, was deactivated)."""
    STOOD_DOWN = "stood-down"
    """Cancelled before arriving."""
    REASSIGNED = "reassigned"
    """Sent straight to another incident."""


@dataclass(frozen=True)
class Assignment:
    """One resource serving one incident, from dispatch until it stopped serving it."""

    incident_id: UUID
    dispatched_at: datetime
    en_route_at: datetime | None
    on_scene_at: datetime | None
    ended_at: datetime | None
    """When it stopped serving the incident; None while it still serves it."""
    outcome: AssignmentOutcome | None


@dataclass(frozen=True)
class DurationStatistics:
    """Count, mean and nearest-rank percentiles of a set of durations."""

    count: int
    mean: timedelta | None
    p50: timedelta | None
    p90: timedelta | None


def status_changes(events: Iterable[object]) -> list[StatusChange]:
    """The status history of a resource from its recorded events, in their order (the same
    list the aggregate keeps); events that change no status are skipped."""
    history: list[StatusChange] = []
    for event in events:
        if isinstance(event, Resource.Registered):
            history.append(StatusChange(ResourceStatus.AVAILABLE, event.timestamp, None))
        elif isinstance(event, Resource.StatusChanged):
            history.append(
                StatusChange(ResourceStatus(event.status), event.timestamp, event.incident_id,
                             event.actor)
            )
    return history


def assignments(history: Iterable[StatusChange]) -> list[Assignment]:
    """Split a status history into assignments, in order of dispatch.

    An assignment starts at each `dispatched` entry (a reassignment ends the previous one
    at the same instant) and ends at the first later `returning`, `available` or
    `out-of-service` entry; the last one may still be open.
    """
    found: list[Assignment] = []
    current: Assignment | None = None

    def end(at: datetime, outcome: AssignmentOutcome) -> None:
        assert current is not None
        found.append(Assignment(current.incident_id, current.dispatched_at, current.en_route_at,
                                current.on_scene_at, at, outcome))

    for change in history:
        status = ResourceStatus(change.status)
        if status is ResourceStatus.DISPATCHED:
            if change.incident_id is None:
                raise InvalidValue(f"dispatched at {change.at.isoformat()} without an incident")
            if current is not None:
                end(change.at, AssignmentOutcome.REASSIGNED)
            current = Assignment(change.incident_id, change.at, None, None, None, None)
        elif current is None:
            continue
        elif status is ResourceStatus.EN_ROUTE and current.en_route_at is None:
            current = Assignment(current.incident_id, current.dispatched_at, change.at,
                                 None, None, None)
        elif status is ResourceStatus.ON_SCENE and current.on_scene_at is None:
            current = Assignment(current.incident_id, current.dispatched_at,
                                 current.en_route_at, change.at, None, None)
        elif status in (ResourceStatus.RETURNING, ResourceStatus.AVAILABLE,
                        ResourceStatus.OUT_OF_SERVICE):
            end(change.at, AssignmentOutcome.CLEARED if current.on_scene_at is not None
                else AssignmentOutcome.STOOD_DOWN)
            current = None
    if current is not None:
        found.append(current)
    return found


def queue_time(incident_reported_at: datetime, assignment: Assignment) -> timedelta:
    """Incident reported -> this resource dispatched.

    Negative when the resource was dispatched before the report was recorded (an incident
    a crew came upon itself): such assignments are usually left out of statistics.
    """
    return assignment.dispatched_at - incident_reported_at


def turnout_time(assignment: Assignment) -> timedelta | None:
    """Dispatched -> en route; None if it never set off (non-mobile, or stood down first)."""
    if assignment.en_route_at is None:
        return None
    return assignment.en_route_at - assignment.dispatched_at


def travel_time(assignment: Assignment) -> timedelta | None:
    """En route -> on scene; None unless it did both."""
    if assignment.en_route_at is None or assignment.on_scene_at is None:
        return None
    return assignment.on_scene_at - assignment.en_route_at


def response_time(incident_reported_at: datetime,
                  incident_assignments: Iterable[Assignment]) -> timedelta | None:
    """Incident reported -> first arrival on scene among the given assignments (pass one
    to get that resource's own response time); None if none arrived.

    The assignments must all be for the same incident.
    """
    arrivals: list[datetime] = []
    incidents: set[UUID] = set()
    for assignment in incident_assignments:
        incidents.add(assignment.incident_id)
        if assignment.on_scene_at is not None:
            arrivals.append(assignment.on_scene_at)
    if len(incidents) > 1:
        raise InvalidValue("response time is measured for one incident; assignments of "
                           f"{len(incidents)} incidents were given")
    if not arrivals:
        return None
    return min(arrivals) - incident_reported_at


def time_on_scene(assignment: Assignment) -> timedelta | None:
    """On scene -> left the scene; None if it never arrived or is still there."""
    if assignment.on_scene_at is None or assignment.ended_at is None:
        return None
    return assignment.ended_at - assignment.on_scene_at


def percentile(ordered: Sequence[timedelta], p: float) -> timedelta:
    """Nearest-rank percentile of durations sorted ascending: the smallest duration that
    at least `p` percent of them do not exceed (the "90 % of responses within" figure)."""
    if not ordered:
        raise InvalidValue("no durations to take a percentile of")
    if not 0 < p <= 100:
        raise InvalidValue(f"percentile must be in (0, 100], got {p}")
    rank = math.ceil(p / 100 * len(ordered))
    return ordered[rank - 1]


def duration_statistics(durations: Iterable[timedelta | None]) -> DurationStatistics:
    """Count, mean, median (p50) and p90 of the measured durations; None values (a time
    that could not be measured) are left out, so `count` says how many were measured."""
    measured = sorted(d for d in durations if d is not None)
    if not measured:
        return DurationStatistics(count=0, mean=None, p50=None, p90=None)
    total = sum(measured, timedelta())
    return DurationStatistics(
        count=len(measured),
        mean=total / len(measured),
        p50=percentile(measured, 50),
        p90=percentile(measured, 90),
    )
