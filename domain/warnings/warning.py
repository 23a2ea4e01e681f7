"""The warning: one public or inter-agency alert, from its draft to its cancellation.

drafted (from an incident, a hazard alarm or from scratch) -> approved -> issued -> (an update
drafted -> approved -> issued, as often as needed) -> cancelled; a draft never issued may be
discarded. A warning whose expiry has passed is expired: that is computed against the clock
(`is_expired`, `status_at`), not recorded, because nobody does anything when a warning runs
out: its expiry is part of what was issued and every reader (the read model, the feeds) can
tell it from the time alone, to the second, without a scheduler that could be late or down.

Two people: a public warning (and each update of one) is approved by someone who wrote none
of its content; a false public alarm is a disaster of its own. The issuer may be either of
them. A cancellation needs one person: it ends an alarm, it never raises one.

Each issue, update and cancellation is a message (`WarningNotice`) recorded whole in its
event, with its identifier, sequence and references to every earlier message, so that
publishing (CAP documents, the Atom feed, Kafka, webhooks) is built from the event alone.
A warning drafted in a drill is an exercise from its first event on and stays one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from cityops.domain.actors import Actor
from cityops.domain.errors import InvalidValue, NotPermitted
from cityops.domain.model import CityAggregate, checked_text, iso_or_none
from cityops.domain.warnings.content import (
    AlertStatus,
    MessageType,
    Scope,
    WarningContent,
    WarningNotice,
    notice_identifier,
)


class WarningStatus(StrEnum):
    """Where a warning is in its workflow (`expired` is computed, see `Warning.status_at`)."""

    DRAFTED = "drafted"
    APPROVED = "approved"
    ISSUED = "issued"
    UPDATE_DRAFTED = "update-drafted"
    """Issued, with an update being prepared (the issued content stays in force)."""
    UPDATE_APPROVED = "update-approved"
    CANCELLED = "cancelled"
    DISCARDED = "discarded"
    """A draft that was never issued and never will be."""
    EXPIRED = "expired"
    """Never recorded: how an issued warning past its expiry is shown."""


IN_FORCE = frozenset({WarningStatus.ISSUED, WarningStatus.UPDATE_DRAFTED,
                      WarningStatus.UPDATE_APPROVED})
"""States in which an issued content is in force (until it expires)."""
PREPARING = frozenset({WarningStatus.DRAFTED, WarningStatus.UPDATE_DRAFTED})
APPROVED = frozenset({WarningStatus.APPROVED, WarningStatus.UPDATE_APPROVED})
PREPARING_UPDATE = frozenset({WarningStatus.UPDATE_DRAFTED, WarningStatus.UPDATE_APPROVED})
"""Issued, with an update on its way: the centre's business until the update is issued."""
SENT_STEPS = frozenset({"issued", "updated", "cancelled"})
"""The steps of a warning that sent a message out."""


def as_sent(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A warning's document (`Warning.summary()`, its read-model row) as it went out: what
    those outside the centre see. While an update is prepared an issued warning stays
    `issued` (its content is the one last issued: the summary's `content`, and the headline,
    level, area and expiry it shows), and only the steps that sent a message are listed.
    Who may see the draft itself is the sharing catalogue's rule (`warning-preparation`)."""
    shown = dict(doc)
    preparing = {s.value for s in PREPARING_UPDATE}
    for key in ("status", "recorded_status"):
        if shown.get(key) in preparing:
            shown[key] = WarningStatus.ISSUED.value
    if "steps" in shown:
        shown["steps"] = [s for s in shown["steps"] or [] if s.get("step") in SENT_STEPS]
    return shown


@dataclass(frozen=True)
class WarningStep:
    """A step of a warning's workflow: what was done, by whom in what role, when, and the
    note or reason given."""

    step: str
    by: str
    role: str
    at: datetime
    note: str = ""

    @classmethod
    def of(cls, step: str, actor: Actor, at: datetime, note: str = "") -> WarningStep:
        return cls(step=step, by=actor.user_id, role=actor.role.value, at=at, note=note)

    def summary(self) -> dict[str, Any]:
        return {"step": self.step, "by": self.by, "role": self.role,
                "at": self.at.isoformat(), "note": self.note}


class SecondPersonRequired(NotPermitted):
    """The two-person rule: who wrote a public warning's content may not approve it."""


class Warning(CityAggregate):
    """A warning of the command centre and every message it sent out."""

    KIND = "warning"

    class Drafted(CityAggregate.Created):
        """`Warning.__init__` makes the warning's state from these facts (the library passes
        a created event's fields to `__init__` by name)."""

        # Declared again only for the type checker: it sees `Created` without `Event`'s actor.
        actor: Actor
        content: dict[str, Any]
        alert_status: str
        drill_id: str | None

    class DraftRevised(CityAggregate.Event):
        """The content under preparation was changed (an approval given is withdrawn)."""

        content: dict[str, Any]
        reason: str

        def apply(self, warning: Warning) -> None:
            warning.draft = WarningContent.from_fact(self.content)
            if self.actor.user_id not in warning.authors:
                warning.authors.append(self.actor.user_id)
            warning.approved_by = None
            warning.approved_at = None
            warning.status = (WarningStatus.DRAFTED if not warning.notices
                              else WarningStatus.UPDATE_DRAFTED)
            warning.note_step("revised", self, self.reason)

    class Approved(CityAggregate.Event):
        note: str

        def apply(self, warning: Warning) -> None:
            warning.approved_by = self.actor.user_id
            warning.approved_at = self.timestamp
            warning.status = (WarningStatus.APPROVED if not warning.notices
                              else WarningStatus.UPDATE_APPROVED)
            warning.note_step("approved", self, self.note)

    class Issued(CityAggregate.Event):
        """The first alert went out."""

        notice: dict[str, Any]

        def apply(self, warning: Warning) -> None:
            warning.sent(WarningNotice.from_fact(self.notice), WarningStatus.ISSUED)
            warning.note_step("issued", self)

    class UpdateDrafted(CityAggregate.Event):
        """An update of the issued warning is being prepared."""

        content: dict[str, Any]
        reason: str

        def apply(self, warning: Warning) -> None:
            warning.draft = WarningContent.from_fact(self.content)
            warning.authors = [self.actor.user_id]
            warning.drafted_by = self.actor.user_id
            warning.approved_by = None
            warning.approved_at = None
            warning.status = WarningStatus.UPDATE_DRAFTED
            warning.note_step("update drafted", self, self.reason)

    class Updated(CityAggregate.Event):
        """An update went out, replacing every earlier message."""

        notice: dict[str, Any]

        def apply(self, warning: Warning) -> None:
            warning.sent(WarningNotice.from_fact(self.notice), WarningStatus.ISSUED)
            warning.note_step("updated", self)

    class Cancelled(CityAggregate.Event):
        """The cancellation went out: the warning is over."""

        notice: dict[str, Any]
        reason: str

        def apply(self, warning: Warning) -> None:
            warning.sent(WarningNotice.from_fact(self.notice), WarningStatus.CANCELLED)
            warning.cancelled_at = self.timestamp
            warning.cancelled_by = self.actor.user_id
            warning.cancel_reason = self.reason
            warning.note_step("cancelled", self, self.reason)

    class DraftDiscarded(CityAggregate.Event):
        """A draft (or a prepared update) was dropped; nothing was sent for it."""

        reason: str

        def apply(self, warning: Warning) -> None:
            warning.draft = None
            warning.approved_by = None
            warning.approved_at = None
            if warning.notices:
                warning.status = WarningStatus.ISSUED
            else:
                warning.status = WarningStatus.DISCARDED
                warning.discarded_at = self.timestamp
            warning.note_step("discarded", self, self.reason)

    # --- state helpers used by the events ------------------------------------------------

    def __init__(self, *, content: dict[str, Any], alert_status: str, drill_id: str | None,
                 actor: Actor, timestamp: datetime) -> None:
        """The warning as drafted (from the `Drafted` event's facts): every attribute it
        keeps is declared here, once, with its type; the events change them."""
        self.status: WarningStatus = WarningStatus.DRAFTED
        self.alert_status = AlertStatus(alert_status)
        self.drill_id = drill_id
        """The drill it was drafted in (an exercise from its first event on), or None."""
        self.draft: WarningContent | None = WarningContent.from_fact(content)
        """The content under preparation (None when nothing is prepared)."""
        self.authors: list[str] = [actor.user_id]
        """Who wrote the content under preparation (none of them may approve it)."""
        self.drafted_by = actor.user_id
        self.drafted_at = timestamp
        self.approved_by: str | None = None
        self.approved_at: datetime | None = None
        self.notices: list[WarningNotice] = []
        """Every message sent out, oldest first."""
        self.cancelled_at: datetime | None = None
        self.cancelled_by: str | None = None
        self.cancel_reason: str | None = None
        self.discarded_at: datetime | None = None
        self.steps: list[WarningStep] = [WarningStep.of("drafted", actor, timestamp)]

    def sent(self, notice: WarningNotice, status: WarningStatus) -> None:
        self.notices.append(notice)
        self.draft = None
        self.status = status

    def note_step(self, step: str, event: CityAggregate.Event, note: str = "") -> None:
        """Keep a step of the workflow (its event's actor and time) for the summary."""
        self.steps.append(WarningStep.of(step, event.actor, event.timestamp, note))

    # --- commands ---------------------------------------------------------------------------

    @classmethod
    def draft_new(cls, *, warning_id: UUID, content: WarningContent, actor: Actor,
                  at: datetime, drill_id: str | None = None) -> Warning:
        """A new warning, as its drafter wrote it; an exercise when drafted in a drill."""
        cls.check_content(content)
        if drill_id is not None:
            drill_id = checked_text("drill id", drill_id, limit=100)
        status = AlertStatus.EXERCISE if drill_id is not None else AlertStatus.ACTUAL
        return cls._create(cls.Drafted, id=warning_id, timestamp=at, actor=actor,
                           content=content.as_fact(), alert_status=status.value,
                           drill_id=drill_id)

    def revise(self, *, content: WarningContent, reason: str, actor: Actor,
               at: datetime) -> None:
        """Change the content under preparation; an approval already given no longer
        holds (the approver approved other words)."""
        self.require_status("revise", WarningStatus.DRAFTED, WarningStatus.APPROVED,
                            WarningStatus.UPDATE_DRAFTED, WarningStatus.UPDATE_APPROVED)
        self.check_content(content)
        self.check_scope_kept(content)
        self.record(self.DraftRevised, actor=actor, at=at, content=content.as_fact(),
                    reason=checked_text("reason", reason, required=False))

    def approve(self, *, note: str, actor: Actor, at: datetime) -> None:
        """A second person approves the content under preparation for issuing."""
        self.require_status("approve", WarningStatus.DRAFTED, WarningStatus.UPDATE_DRAFTED)
        self.check_second_person(actor)
        self.record(self.Approved, actor=actor, at=at,
                    note=checked_text("note", note, required=False))

    def issue(self, *, sender: str, sender_name: str, identifier_prefix: str, actor: Actor,
              at: datetime) -> WarningNotice:
        """Send the approved content out: the first alert, or an update of the warning."""
        self.require_status("issue", WarningStatus.APPROVED, WarningStatus.UPDATE_APPROVED)
        assert self.draft is not None
        self.check_not_expired("issue", self.draft, at)
        first = self.status is WarningStatus.APPROVED
        notice = self._notice(MessageType.ALERT if first else MessageType.UPDATE, self.draft,
                              sender=sender, sender_name=sender_name,
                              identifier_prefix=identifier_prefix, actor=actor, at=at,
                              approved_by=self.approved_by)
        self.record(self.Issued if first else self.Updated, actor=actor, at=at,
                    notice=notice.as_fact())
        return notice

    def draft_update(self, *, content: WarningContent, reason: str, actor: Actor,
                     at: datetime) -> None:
        """Prepare an update of the issued warning (issued once approved)."""
        self.require_status("update", WarningStatus.ISSUED)
        self.check_not_expired("update", self.issued_content, at)
        self.check_content(content)
        self.check_scope_kept(content)
        self.record(self.UpdateDrafted, actor=actor, at=at, content=content.as_fact(),
                    reason=checked_text("reason", reason))

    def cancel(self, *, reason: str, sender: str, sender_name: str, identifier_prefix: str,
               actor: Actor, at: datetime) -> WarningNotice:
        """End the warning now: the cancellation goes out (an update in preparation is
        dropped with it)."""
        self.require_status("cancel", *IN_FORCE)
        self.check_not_expired("cancel", self.issued_content, at)
        reason = checked_text("reason", reason)
        notice = self._notice(MessageType.CANCEL, self.issued_content, sender=sender,
                              sender_name=sender_name, identifier_prefix=identifier_prefix,
                              actor=actor, at=at, approved_by=None, note=reason)
        self.record(self.Cancelled, actor=actor, at=at, notice=notice.as_fact(), reason=reason)
        return notice

    def discard(self, *, reason: str, actor: Actor, at: datetime) -> None:
        """Drop the draft (never issued) or the update in preparation."""
        self.require_status("discard the draft of", WarningStatus.DRAFTED,
                            WarningStatus.APPROVED, WarningStatus.UPDATE_DRAFTED,
                            WarningStatus.UPDATE_APPROVED)
        self.record(self.DraftDiscarded, actor=actor, at=at,
                    reason=checked_text("reason", reason))

    # --- rules ------------------------------------------------------------------------------

    @staticmethod
    def check_content(content: WarningContent) -> None:
        if not isinstance(content, WarningContent):
            raise InvalidValue("a warning's content must be a WarningContent")

    def check_scope_kept(self, content: WarningContent) -> None:
        """A warning stays public or restricted: widening who receives it (or narrowing it
        once the public has it) is another warning."""
        current = self.draft if self.draft is not None else self.issued_content
        if content.scope is not current.scope:
            self.refuse("change its scope", f"its scope is {current.scope.value}; draft "
                        "another warning for another audience")

    def check_second_person(self, actor: Actor) -> None:
        """The two-person rule for public warnings."""
        assert self.draft is not None
        if self.draft.scope is Scope.PUBLIC and actor.user_id in self.authors:
            raise SecondPersonRequired(
                f"{actor.user_id} wrote this public warning's content and may not approve it: "
                "a second person must approve a public warning")

    def check_not_expired(self, attempted: str, content: WarningContent, at: datetime) -> None:
        if content.expires <= at:
            self.refuse(attempted, f"its expiry {content.expires.isoformat()} has passed")

    # --- queries ----------------------------------------------------------------------------

    @property
    def sequence(self) -> int:
        """How many messages went out."""
        return len(self.notices)

    @property
    def issued_content(self) -> WarningContent:
        if not self.notices:
            raise InvalidValue(f"warning {self.id} was never issued")
        return self.notices[-1].content

    @property
    def content(self) -> WarningContent:
        """What the warning says now: the last issued content, else the draft."""
        if self.notices:
            return self.notices[-1].content
        assert self.draft is not None or self.status is WarningStatus.DISCARDED
        return self.draft if self.draft is not None else self._discarded_content()

    def _discarded_content(self) -> WarningContent:
        raise InvalidValue(f"warning {self.id} was discarded before it was issued")

    @property
    def is_exercise(self) -> bool:
        return self.alert_status is AlertStatus.EXERCISE

    def is_expired(self, now: datetime) -> bool:
        """Whether an issued warning's expiry has passed (a cancelled one is cancelled)."""
        return self.status in IN_FORCE and self.issued_content.expires <= now

    def status_at(self, now: datetime) -> WarningStatus:
        """The status as shown at `now`: `expired` once an issued warning runs out."""
        return WarningStatus.EXPIRED if self.is_expired(now) else self.status

    def _notice(self, msg_type: MessageType, content: WarningContent, *, sender: str,
                sender_name: str, identifier_prefix: str, actor: Actor, at: datetime,
                approved_by: str | None, note: str = "") -> WarningNotice:
        sequence = self.sequence + 1
        return WarningNotice(
            warning_id=self.id,
            identifier=notice_identifier(identifier_prefix, self.id, sequence),
            sequence=sequence, msg_type=msg_type, sent=at, sender=sender,
            sender_name=sender_name, status=self.alert_status, content=content,
            references=tuple(n.reference for n in self.notices), note=note,
            drill_id=self.drill_id, issued_by=actor.user_id, approved_by=approved_by)

    def summary(self, now: datetime | None = None) -> dict[str, Any]:
        """The warning as plain data; `status` is as shown at `now` (expired or not)."""
        issued = self.notices[-1].content if self.notices else None
        shown = issued if issued is not None else self.draft
        return {
            "id": str(self.id),
            "version": self.version,
            "status": (self.status_at(now) if now is not None else self.status).value,
            "recorded_status": self.status.value,
            "alert_status": self.alert_status.value,
            "drill_id": self.drill_id,
            "scope": shown.scope.value if shown is not None else None,
            "headline": shown.headline if shown is not None else None,
            "level": shown.level.code if shown is not None else None,
            "event_type": shown.event_type if shown is not None else None,
            "expires": shown.expires.isoformat() if shown is not None else None,
            "origin": shown.summary()["origin"] if shown is not None else None,
            "content": issued.summary() if issued is not None else None,
            "draft": self.draft.summary() if self.draft is not None else None,
            "authors": list(self.authors),
            "drafted_by": self.drafted_by,
            "drafted_at": self.drafted_at.isoformat(),
            "approved_by": self.approved_by,
            "approved_at": iso_or_none(self.approved_at),
            "sequence": self.sequence,
            "notices": [{"identifier": n.identifier, "sequence": n.sequence,
                         "msg_type": n.msg_type.value, "sent": n.sent.isoformat(),
                         "issued_by": n.issued_by, "approved_by": n.approved_by}
                        for n in self.notices],
            "issued_at": self.notices[0].sent.isoformat() if self.notices else None,
            "last_sent_at": self.notices[-1].sent.isoformat() if self.notices else None,
            "cancelled_at": iso_or_none(self.cancelled_at),
            "cancelled_by": self.cancelled_by,
            "cancel_reason": self.cancel_reason,
            "discarded_at": iso_or_none(self.discarded_at),
            "steps": [s.summary() for s in self.steps],
        }


SENT_EVENTS = (Warning.Issued, Warning.Updated, Warning.Cancelled)
"""The events of a warning that sent a message out (its history as it went out)."""
