"""Grid cases as the API answers them: the case document (its `summary()`), the case with
its supervision light (the body of every command and of GET), and the rows of the list
(the read-model document, which also carries the instants its light turns)."""

from __future__ import annotations

from pydantic import Field

from cityops.command_center.models.common import (
    BulkResultsPublic,
    PagePublic,
    PointPublic,
    Public,
    Timestamp,
    Uuid,
    withheld,
)
from cityops.domain.catalogue import Urgency
from cityops.domain.gridcases.case import CaseSource, CaseStatus, RejectionReason
from cityops.domain.returns import ReturnOutcome
from cityops.domain.supervision import Light


class PendingExtensionPublic(Public):
    """A department's extension request awaiting the centre's decision."""

    requested_deadline: Timestamp
    reason: str
    requested_at: Timestamp
    requested_by: str


class PendingSuspensionPublic(Public):
    """A department's suspension request awaiting the centre's decision."""

    reason: str
    expected_resume_at: Timestamp | None
    requested_at: Timestamp
    requested_by: str


class ReturnPublic(Public):
    """One return of a case or ticket to the centre, and the centre's review of it."""

    ordinal: int = Field(description="1 for the first return, 2 for the second...")
    department: str
    returned_at: Timestamp
    returned_by: str
    reason: str
    suggested_department: str | None
    outcome: ReturnOutcome
    reviewed_at: Timestamp | None
    reviewed_by: str | None
    review_note: str


class GridCaseDocument(Public):
    """A grid case as recorded: the case's `summary()` (also the read model's document and
    what the live push sends)."""

    id: Uuid
    version: int = Field(description="Also the answer's ETag; send it as If-Match")
    status: CaseStatus
    source: CaseSource
    category: str = Field(description="Category code from the catalogue")
    urgency: Urgency
    description: str
    location: PointPublic
    grid_cell: str | None = Field(description="The unit grid cell's code")
    department: str | None = Field(description="The department it is dispatched to")
    proposed_department: str | None
    handling_deadline: Timestamp | None
    stage_deadline: Timestamp | None = Field(description="The deadline of the current stage")
    reported_at: Timestamp
    closed_at: Timestamp | None
    rework_count: int
    return_count: int
    extension_count: int
    pending_extension: PendingExtensionPublic | None
    possible_duplicates: list[Uuid] = withheld("Open cases nearby of the same category.")
    duplicate_of: Uuid | None
    rejection_reason: RejectionReason | None
    result: str | None
    photos: list[str]
    evidence: list[str]
    ticket_id: Uuid | None = Field(description="The hotline ticket it came from")
    returned_by: str | None
    return_reason: str | None
    returns: list[ReturnPublic]
    suspension_reason: str | None
    suspended_since: Timestamp | None
    expected_resume_at: Timestamp | None
    pending_suspension: PendingSuspensionPublic | None
    outside_assigned_cells: bool
    assigned_verifier: str | None


class GridCasePublic(GridCaseDocument):
    """A grid case as recorded now, with the supervision light it shows now."""

    light: Light | None = Field(description="green, yellow or red while open; null when "
                                "closed or not yet dispatched")


class GridCaseRow(GridCaseDocument):
    """A grid case as the list shows it: the read model's document, with the instants its
    light turns and the light it shows now."""

    yellow_at: Timestamp | None = Field(description="When its light turns yellow (open)")
    red_at: Timestamp | None = Field(description="When its light turns red (open)")
    frozen_light: Light | None = Field(description="The light it keeps while suspended")
    light: Light | None


class GridCasesPublic(PagePublic[GridCaseRow]):
    """A page of grid cases."""


class VerificationTaskPublic(GridCaseRow):
    """A handled case waiting for the inspector's verification on site."""

    verify_by: Timestamp | None = Field(description="The deadline of the verification")
    assigned_to_me: bool = Field(description="The centre assigned it to this inspector")


class VerificationTasksPublic(PagePublic[VerificationTaskPublic]):
    """A page of the inspector's verification tasks, the most urgent first."""


class GridCaseBulkResults(BulkResultsPublic[GridCasePublic]):
    """What each item of a bulk action came to, with the item after the command (withheld
    fields absent, as in the single action's answer)."""
