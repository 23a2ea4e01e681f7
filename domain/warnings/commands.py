"""The warning desk's commands, as values (`cityops.domain.commands.Command`): frozen
dataclasses that check their own fields when built, handed with a `CommandContext` to the one
entry point (`system.commands.handle`), which runs the one handler of each in `Warnings`
(`@handles`). The HTTP routes, the simulator and tests only build them. Their classes key the
role table (`domain/permissions.py`); `name` is the command's name on its receipt.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, ClassVar
from uuid import UUID

from cityops.domain.commands import Command, enum_field
from cityops.domain.errors import InvalidValue
from cityops.domain.geometry import Area
from cityops.domain.model import checked_text
from cityops.domain.values import checked_id, checked_instant
from cityops.domain.warnings.content import (
    Certainty,
    OriginKind,
    Scope,
    Urgency,
    WarningCircle,
    WarningText,
    warning_polygon,
)


@dataclass(frozen=True, kw_only=True)
class WarningCommand(Command):
    """Base of the warning desk's commands."""

    name: ClassVar[str]

    def fingerprint_args(self) -> dict[str, Any]:
        """What the command asks for, as data (nested values too: the texts, the area)."""
        return asdict(self)


@dataclass(frozen=True, kw_only=True)
class OnWarning(WarningCommand):
    """A command on one warning already drafted."""

    name: ClassVar[str]
    warning_id: UUID

    def __post_init__(self) -> None:
        checked_id("warning id", self.warning_id)


@dataclass(frozen=True, kw_only=True)
class DrawnArea:
    """An area a person drew or typed: polygons and/or circles, and optionally its
    description (else the administrative areas it touches describe it). Whether it lies in
    the city, and which areas it touches, the city's map says when the command is handled."""

    polygons: tuple[Area, ...] = ()
    circles: tuple[WarningCircle, ...] = ()
    description: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "polygons", tuple(warning_polygon(p) for p in self.polygons))
        object.__setattr__(self, "circles", tuple(self.circles))
        for circle in self.circles:
            if not isinstance(circle, WarningCircle):
                raise InvalidValue("each circle of an area must be a WarningCircle")
        if not self.polygons and not self.circles:
            raise InvalidValue("a warning needs an area: at least one polygon or circle")
        object.__setattr__(self, "description", checked_text(
            "area description", self.description, required=False, limit=500))


@dataclass(frozen=True, kw_only=True)
class WarningWording:
    """What a person writes of a warning (the rest comes from its origin and the map):
    level, urgency, certainty, texts in each language, times, contact, scope and area.

    `level` None takes the origin's (an incident's warning colour or level); `area` None
    takes the origin's area (an incident's affected area, a hazard source's impact zone)
    for a draft, and keeps the area in force for a revision or an update, unless
    `area_from_origin` asks for the origin's area as it is now; `onset` None is now for a
    draft and unchanged otherwise."""

    texts: tuple[WarningText, ...]
    expires: datetime
    contact: str
    urgency: Urgency = Urgency.IMMEDIATE
    certainty: Certainty = Certainty.OBSERVED
    level: str | None = None
    onset: datetime | None = None
    scope: Scope = Scope.PUBLIC
    restriction: str = ""
    area: DrawnArea | None = None
    area_from_origin: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "texts", tuple(self.texts))
        for text in self.texts:
            if not isinstance(text, WarningText):
                raise InvalidValue("each text of a warning must be a WarningText")
        checked_instant("expiry", self.expires)
        if self.onset is not None:
            checked_instant("onset", self.onset)
            if self.expires <= self.onset:
                raise InvalidValue(f"expiry {self.expires.isoformat()} is not after onset "
                                   f"{self.onset.isoformat()}")
        object.__setattr__(self, "urgency",
                           enum_field(Urgency, "urgency", self.urgency, "urgencies"))
        object.__setattr__(self, "certainty", enum_field(Certainty, "certainty", self.certainty,
                                                          "certainties"))
        object.__setattr__(self, "scope", enum_field(Scope, "scope", self.scope))
        if self.level is not None:
            object.__setattr__(self, "level", checked_text("level", self.level, limit=20))
        if self.area is not None and not isinstance(self.area, DrawnArea):
            raise InvalidValue("a warning's area must be a DrawnArea")
        if self.area is not None and self.area_from_origin:
            raise InvalidValue("give an area or ask for the origin's area, not both")


@dataclass(frozen=True, kw_only=True)
class DraftWarning(WarningCommand, WarningWording):
    """Draft a warning from an incident, a hazard source's alarm, or from scratch (then
    with an area and the event's category and type)."""

    name: ClassVar[str] = "warning.draft"
    origin: OriginKind = OriginKind.NONE
    incident_id: UUID | None = None
    hazard_source_id: UUID | None = None
    alarm_id: UUID | None = None
    category: str | None = None
    event_type: str | None = None
    warning_id: UUID | None = None

    def __post_init__(self) -> None:
        WarningWording.__post_init__(self)
        for label, value in (("warning id", self.warning_id),
                             ("incident id", self.incident_id),
                             ("hazard source id", self.hazard_source_id),
                             ("alarm id", self.alarm_id)):
            if value is not None:
                checked_id(label, value)
        object.__setattr__(self, "origin", enum_field(OriginKind, "origin", self.origin))
        if self.origin is OriginKind.INCIDENT and self.incident_id is None:
            raise InvalidValue("a warning drafted from an incident names the incident")
        if self.origin is OriginKind.HAZARD_ALARM and (
                self.hazard_source_id is None or self.alarm_id is None):
            raise InvalidValue("a warning drafted from a hazard alarm names the hazard source "
                               "and the alarm")
        if self.origin is OriginKind.NONE:
            if self.area is None:
                raise InvalidValue("a warning drafted from scratch needs an area")
            if self.area_from_origin:
                raise InvalidValue("a warning drafted from scratch has no origin's area")
            if not self.category or not self.event_type:
                raise InvalidValue("a warning drafted from scratch names the event's "
                                   "category and type")


@dataclass(frozen=True, kw_only=True)
class ReviseWarningDraft(OnWarning, WarningWording):
    """Change the content under preparation (a draft or an update not yet issued); an
    approval already given is withdrawn."""

    name: ClassVar[str] = "warning.revise"
    reason: str = ""

    def __post_init__(self) -> None:
        OnWarning.__post_init__(self)
        WarningWording.__post_init__(self)
        object.__setattr__(self, "reason", checked_text("reason", self.reason,
                                                         required=False))


@dataclass(frozen=True, kw_only=True)
class DraftWarningUpdate(OnWarning, WarningWording):
    """Prepare an update of an issued warning (a new area, level, wording or expiry); it is
    approved and issued like the first alert."""

    name: ClassVar[str] = "warning.update"
    reason: str

    def __post_init__(self) -> None:
        OnWarning.__post_init__(self)
        WarningWording.__post_init__(self)
        object.__setattr__(self, "reason", checked_text("reason", self.reason))


@dataclass(frozen=True, kw_only=True)
class ApproveWarning(OnWarning):
    """A second person approves the content under preparation."""

    name: ClassVar[str] = "warning.approve"
    note: str = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "note", checked_text("note", self.note, required=False))


@dataclass(frozen=True, kw_only=True)
class IssueWarning(OnWarning):
    """Send the approved content out (the first alert or an update)."""

    name: ClassVar[str] = "warning.issue"


@dataclass(frozen=True, kw_only=True)
class CancelWarning(OnWarning):
    """End an issued warning now, with the reason (the cancellation goes out)."""

    name: ClassVar[str] = "warning.cancel"
    reason: str

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "reason", checked_text("reason", self.reason))


@dataclass(frozen=True, kw_only=True)
class DiscardWarningDraft(OnWarning):
    """Drop a draft never issued, or an update in preparation."""

    name: ClassVar[str] = "warning.discard"
    reason: str

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "reason", checked_text("reason", self.reason))
