"""Every command of the grid-case stream, as values (handled by `GridCases`, one handler
each; who may issue them: `domain/permissions.py`).

Each names the case it acts on by `case_id` (but `ReportCase`, which makes one). Checks that
need no state are made here, when the value is built; checks against the catalogue, the map,
the clock or the case are the handler's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar
from uuid import UUID

from cityops.domain.catalogue import Urgency
from cityops.domain.commands import Command
from cityops.domain.errors import InvalidValue
from cityops.domain.geometry import GeoPoint
from cityops.domain.gridcases.case import CaseSource, RejectionReason
from cityops.domain.values import parse_enum


def _zoned(label: str, value: datetime | None) -> None:
    if value is not None and value.tzinfo is None:
        raise InvalidValue(f"{label} has no time zone")


@dataclass(frozen=True, kw_only=True)
class CaseCommand(Command):
    """A command on one existing case."""

    case_id: UUID


@dataclass(frozen=True, kw_only=True)
class ReportCase(Command):
    """Report a case: it is located to its grid cell and checked for duplicates. `case_id`
    is for a case another stream derives (a hotline ticket that becomes a case); otherwise
    the id derives from the command id, or is new."""

    name: ClassVar[str] = "grid-case.report"
    source: CaseSource = CaseSource.INSPECTOR
    category: str
    description: str
    location: GeoPoint
    urgency: Urgency = Urgency.NORMAL
    photos: tuple[str, ...] = ()
    ticket_id: UUID | None = None
    case_id: UUID | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "source", parse_enum(CaseSource, self.source, "case source"))
        object.__setattr__(self, "urgency",
                           parse_enum(Urgency, self.urgency, "urgency", "urgencies"))
        object.__setattr__(self, "photos", tuple(self.photos))
        if not isinstance(self.location, GeoPoint):
            raise InvalidValue(f"a case's location must be a point, not {self.location!r}")

    def fingerprint_args(self) -> dict[str, Any]:
        # As recorded before commands were values: the location as [lon, lat], and the
        # derived case id left out (it follows from the command id).
        return {"source": self.source, "category": self.category,
                "description": self.description,
                "location": [self.location.lon, self.location.lat], "urgency": self.urgency,
                "photos": list(self.photos), "ticket_id": self.ticket_id}


@dataclass(frozen=True, kw_only=True)
class RegisterCase(CaseCommand):
    """The centre accepts a reported case (it may correct category and urgency)."""

    name: ClassVar[str] = "grid-case.register"
    category: str | None = None
    urgency: Urgency | None = None
    note: str = ""

    def __post_init__(self) -> None:
        if self.urgency is not None:
            object.__setattr__(self, "urgency",
                               parse_enum(Urgency, self.urgency, "urgency", "urgencies"))


@dataclass(frozen=True, kw_only=True)
class RejectCase(CaseCommand):
    """The centre refuses a report: a duplicate (merged into another case), not a
    city-management matter, or not reproducible."""

    name: ClassVar[str] = "grid-case.reject"
    reason: RejectionReason
    duplicate_of: UUID | None = None
    note: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "reason",
                           parse_enum(RejectionReason, self.reason, "rejection reason"))


@dataclass(frozen=True, kw_only=True)
class DispatchCase(CaseCommand):
    """Send the case to one department (the proposed one unless the dispatcher overrides)
    with a deadline from the category catalogue, counted on the business calendar."""

    name: ClassVar[str] = "grid-case.dispatch"
    department: str | None = None
    instructions: str = ""


@dataclass(frozen=True, kw_only=True)
class ReviewCaseReturn(CaseCommand):
    """The centre reviews a department's return. Accept: the case is dispatched to another
    department (`department`, default the proposed one) with a new deadline. Reject (`reason`
    required): back to the returning department on the clock it had."""

    name: ClassVar[str] = "grid-case.review-return"
    accept: bool
    department: str | None = None
    instructions: str = ""
    reason: str = ""

    def __post_init__(self) -> None:
        if not self.accept and self.department is not None:
            raise InvalidValue("a rejected return goes back to the department that "
                               "returned it: give no department")


@dataclass(frozen=True, kw_only=True)
class ReturnCaseToCentre(CaseCommand):
    """A department sends the case back as not its responsibility."""

    name: ClassVar[str] = "grid-case.return-to-centre"
    reason: str
    suggested_department: str | None = None


@dataclass(frozen=True, kw_only=True)
class RequestCaseExtension(CaseCommand):
    """A department asks for more time."""

    name: ClassVar[str] = "grid-case.request-extension"
    requested_deadline: datetime
    reason: str


@dataclass(frozen=True, kw_only=True)
class DecideCaseExtension(CaseCommand):
    """The centre approves (optionally with another deadline) or refuses an extension."""

    name: ClassVar[str] = "grid-case.decide-extension"
    approve: bool
    deadline: datetime | None = None
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class RequestCaseSuspension(CaseCommand):
    """A department asks the centre to stop the clock of a case that needs long work."""

    name: ClassVar[str] = "grid-case.request-suspension"
    reason: str
    expected_resume_at: datetime | None = None

    def __post_init__(self) -> None:
        _zoned("expected resume time", self.expected_resume_at)


@dataclass(frozen=True, kw_only=True)
class DecideCaseSuspension(CaseCommand):
    """The centre approves (the clock stops from now) or refuses a suspension request."""

    name: ClassVar[str] = "grid-case.decide-suspension"
    approve: bool
    expected_resume_at: datetime | None = None
    reason: str = ""

    def __post_init__(self) -> None:
        _zoned("expected resume time", self.expected_resume_at)


@dataclass(frozen=True, kw_only=True)
class SuspendCase(CaseCommand):
    """The centre stops the clock of a case that needs long work (a department asks with
    `RequestCaseSuspension`)."""

    name: ClassVar[str] = "grid-case.suspend"
    reason: str


@dataclass(frozen=True, kw_only=True)
class ResumeCase(CaseCommand):
    """Restart the clock: the deadline moves by the counted time spent suspended."""

    name: ClassVar[str] = "grid-case.resume"


@dataclass(frozen=True, kw_only=True)
class HandleCase(CaseCommand):
    """The department reports the result, with evidence."""

    name: ClassVar[str] = "grid-case.handle"
    result: str
    evidence: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "evidence", tuple(self.evidence))


@dataclass(frozen=True, kw_only=True)
class VerifyCase(CaseCommand):
    """An inspector checks on site: fixed -> verified; not fixed -> rework."""

    name: ClassVar[str] = "grid-case.verify"
    fixed: bool
    note: str = ""
    photos: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "photos", tuple(self.photos))


@dataclass(frozen=True, kw_only=True)
class AssignCaseVerifier(CaseCommand):
    """The centre names the inspector who verifies the case on site, in place of the
    inspector of its cell."""

    name: ClassVar[str] = "grid-case.assign-verifier"
    inspector: str
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class CloseCase(CaseCommand):
    """Close a verified case; it then counts in evaluation."""

    name: ClassVar[str] = "grid-case.close"
    note: str = ""
