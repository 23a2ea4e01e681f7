"""What an event is about, for matching subscriptions and for the `context` of a message.

Most events carry only what changed (a case's `Closed` has a note, not its category or
place), yet a department subscribes to "closed cases of category C0101 in district D01". So
the feeds follow each aggregate's state along the log and describe it after every event: its
status, the codes a subscription's categories match, its incident level, where it is, and
which departments it concerns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cityops.domain.geometry import Area, GeoPoint
from cityops.domain.gridcases.case import GridCase
from cityops.domain.hazards.source import HazardSource
from cityops.domain.hotline.ticket import HotlineTicket
from cityops.domain.incidents.incident import Incident
from cityops.domain.resources.resource import Resource


@dataclass(frozen=True)
class Subject:
    """An aggregate as the feeds see it after one of its events."""

    status: str
    categories: frozenset[str]
    """Codes a subscription's `categories` match (case category; incident category and type;
    hazard type; hotline topic and ticket type; resource kind)."""
    level: str | None = None
    """The incident level (I to IV); None for the other streams."""
    point: GeoPoint | None = None
    area: Area | None = None
    """An incident's affected area or a hazard source's impact zone, when it has one."""
    grid_cell: str | None = None
    """The unit grid cell the aggregate recorded; None when it records none (then a grid
    filter locates `point`)."""
    departments: frozenset[str] = frozenset()
    """Departments the aggregate is dispatched or assigned to, or that own it (the reader
    adds those it concerned just before the event)."""
    context: dict[str, Any] = field(default_factory=dict)
    """Named facts of the current state carried in messages (each has a sharing class). A
    case's or ticket's description (and a ticket's caller) are in it: a department's feed
    receives an item from the event that brings it into its scope (a dispatch, an
    assignment), not the report made before."""


def _grid_case(case: GridCase) -> Subject:
    departments = frozenset({case.department}) if case.department else frozenset()
    return Subject(
        status=case.status.value, categories=frozenset({case.category}),
        point=case.location, grid_cell=case.grid_cell, departments=departments,
        context={"status": case.status.value, "category": case.category,
                 "urgency": case.urgency.value, "description": case.description,
                 "location": case.location, "grid_cell": case.grid_cell,
                 "department": case.department},
    )


def _incident(incident: Incident) -> Subject:
    departments = frozenset(task.department for task in incident.tasks.values())
    return Subject(
        status=incident.status.value,
        categories=frozenset({incident.category, incident.incident_type}),
        level=incident.level, point=incident.location, area=incident.affected_area,
        departments=departments,
        context={"status": incident.status.value, "category": incident.category,
                 "incident_type": incident.incident_type, "level": incident.level,
                 "location": incident.location, "affected_area": incident.affected_area,
                 "task_departments": sorted(departments)},
    )


def _hazard_source(source: HazardSource) -> Subject:
    return Subject(
        status=source.status.value, categories=frozenset({source.hazard_type}),
        point=source.location, area=source.impact_zone,
        context={"status": source.status.value, "hazard_type": source.hazard_type,
                 "grade": source.grade, "location": source.location},
    )


def _hotline_ticket(ticket: HotlineTicket) -> Subject:
    departments = frozenset({ticket.department}) if ticket.department else frozenset()
    return Subject(
        status=ticket.status.value,
        categories=frozenset({ticket.topic, ticket.ticket_type.value}),
        point=ticket.location, grid_cell=ticket.grid_cell, departments=departments,
        context={"status": ticket.status.value, "ticket_type": ticket.ticket_type.value,
                 "topic": ticket.topic, "description": ticket.description,
                 "caller_name": ticket.caller_name, "caller_phone": ticket.caller_phone,
                 "calls": [call.as_fact() for call in ticket.extra_calls],
                 "location": ticket.location, "grid_cell": ticket.grid_cell,
                 "department": ticket.department},
    )


def _resource(resource: Resource) -> Subject:
    # Where a resource is: its last known position, else its home base.
    point = resource.position.point if resource.position is not None else resource.home_base
    return Subject(
        status=resource.status.value, categories=frozenset({resource.kind}),
        point=point, departments=frozenset({resource.department}),
        context={"status": resource.status.value, "kind": resource.kind,
                 "department": resource.department, "position": point,
                 "incident_id": resource.incident_id},
    )


DESCRIBE: dict[type[Any], Callable[[Any], Subject]] = {
    GridCase: _grid_case,
    Incident: _incident,
    HazardSource: _hazard_source,
    HotlineTicket: _hotline_ticket,
    Resource: _resource,
}

CONTEXT_FIELDS: dict[type[Any], tuple[str, ...]] = {
    GridCase: ("status", "category", "urgency", "description", "location", "grid_cell",
               "department"),
    Incident: ("status", "category", "incident_type", "level", "location", "affected_area",
               "task_departments"),
    HazardSource: ("status", "hazard_type", "grade", "location"),
    HotlineTicket: ("status", "ticket_type", "topic", "description", "caller_name",
                    "caller_phone", "calls", "location", "grid_cell", "department"),
    Resource: ("status", "kind", "department", "position", "incident_id"),
}
"""The context keys of each aggregate class (the sharing catalogue must classify each)."""


def describe(aggregate: Any) -> Subject:
    """The subject of an aggregate of one of the feeds' streams."""
    return DESCRIBE[type(aggregate)](aggregate)
