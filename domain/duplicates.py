"""Duplicate reports: a new report of the same category close in space and time to an open
case or ticket is proposed as a duplicate to merge; it is never merged silently.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol
from uuid import UUID

from cityops.domain.errors import InvalidValue
from cityops.domain.geometry import GeoPoint


@dataclass(frozen=True)
class DuplicatePolicy:
    """How close (metres) and how recent a report must be to be proposed as a duplicate."""

    radius_m: float = 50.0
    window: timedelta = timedelta(hours=24)

    def __post_init__(self) -> None:
        if self.radius_m <= 0:
            raise InvalidValue("duplicate radius must be positive")
        if self.window <= timedelta():
            raise InvalidValue("duplicate time window must be positive")


@dataclass(frozen=True)
class OpenReport:
    """An open case or ticket that a new report might repeat."""

    id: UUID
    category: str
    location: GeoPoint
    reported_at: datetime


class OpenReportFinder(Protocol):
    """A read model that returns open reports near a point (a coarse pre-filter)."""

    def open_reports_near(self, point: GeoPoint, radius_m: float,
                          since: datetime) -> Sequence[OpenReport]: ...


def propose_duplicates(
    *,
    category: str,
    location: GeoPoint,
    at: datetime,
    candidates: Iterable[OpenReport],
    policy: DuplicatePolicy,
) -> list[UUID]:
    """The open reports the new one may repeat, nearest first."""
    matches = []
    for candidate in candidates:
        if candidate.category != category:
            continue
        if abs(at - candidate.reported_at) > policy.window:
            continue
        distance = location.distance_m(candidate.location)
        if distance <= policy.radius_m:
            matches.append((distance, candidate.reported_at, candidate.id))
    matches.sort(key=lambda m: (m[0], m[1]))
    return [m[2] for m in matches]

