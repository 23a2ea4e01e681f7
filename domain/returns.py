"""Returns to the centre and their review, shared by grid cases and hotline tickets.

A department may send a case or ticket back as "not ours". That is a claim, not a fact: the
centre reviews every return. It accepts it (the case or ticket is routed to another
department, the existing re-dispatch path) or rejects it (the same department gets it back
with the reviewer's reason). A rejected return is a dispute, counted in the returning
department's figures, and it gives the department no time: the clock that ran when it
returned the item runs again with the deadline it had, as if the return never happened.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from cityops.domain.model import iso_or_none
from cityops.domain.supervision import StageClock


class ReturnOutcome(StrEnum):
    """What became of one return."""

    AWAITING_REVIEW = "awaiting-review"
    ACCEPTED = "accepted"
    """The centre agreed: routed to another department."""
    REJECTED = "rejected"
    """The centre disagreed: back to the same department (a dispute)."""
    LAPSED = "lapsed"
    """Never reviewed: the item left the centre's review another way (a ticket merged into
    another or handed over to a case or incident, or a return recorded before reviews)."""


@dataclass(frozen=True)
class ReturnRecord:
    """One return of a case or ticket by a department, and the centre's review of it."""

    ordinal: int
    """1 for the item's first return, 2 for its second..."""
    department: str
    returned_at: datetime
    returned_by: str
    reason: str
    suggested_department: str | None
    clock: StageClock | None
    """The department's clock when it returned the item (it runs again on a rejection)."""
    reviewed: ReturnOutcome | None = None
    reviewed_at: datetime | None = None
    reviewed_by: str | None = None
    review_note: str = ""

    def review(self, outcome: ReturnOutcome, *, at: datetime, by: str,
               note: str) -> ReturnRecord:
        return replace(self, reviewed=outcome, reviewed_at=at, reviewed_by=by,
                       review_note=note)

    def outcome(self, *, awaiting: bool) -> ReturnOutcome:
        """The outcome; an unreviewed return awaits review only while the item is still
        returned and this is its latest return (else it lapsed)."""
        if self.reviewed is not None:
            return self.reviewed
        return ReturnOutcome.AWAITING_REVIEW if awaiting else ReturnOutcome.LAPSED

    def as_dict(self, *, awaiting: bool) -> dict[str, Any]:
        return {
            "ordinal": self.ordinal,
            "department": self.department,
            "returned_at": self.returned_at.isoformat(),
            "returned_by": self.returned_by,
            "reason": self.reason,
            "suggested_department": self.suggested_department,
            "outcome": self.outcome(awaiting=awaiting).value,
            "reviewed_at": iso_or_none(self.reviewed_at),
            "reviewed_by": self.reviewed_by,
            "review_note": self.review_note,
        }


def returns_as_dicts(records: Sequence[ReturnRecord], *,
                     item_is_returned: bool) -> list[dict[str, Any]]:
    """Every return of an item as plain data (for summaries and read models)."""
    last = len(records) - 1
    return [r.as_dict(awaiting=item_is_returned and i == last) for i, r in enumerate(records)]


def review_latest(records: list[ReturnRecord], outcome: ReturnOutcome, *, at: datetime,
                  by: str, note: str) -> None:
    """Record the centre's review on the latest return (in place, from an event's apply)."""
    records[-1] = records[-1].review(outcome, at=at, by=by, note=note)
