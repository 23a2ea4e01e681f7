"""The warning desk's application: every command of the warning stream, in one place.

A command value (`domain/warnings/commands.py`) is handed with its `CommandContext` (who
acts, under which command id, the version they saw) to the one entry point
(`system.commands.handle`, or this application's `handle`); its one handler (`@handles`)
builds the content from what the person wrote,
what the warning was drafted from (an incident, a hazard source's alarm) and the city's map
(is the area in the city, which districts, streets and communities it touches), and calls
the `Warning` aggregate, which keeps the workflow's rules.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from uuid import UUID, uuid4, uuid5

from cityops.domain.application import COMMAND_NAMESPACE, CityApplication, Clock, UnitOfWork
from cityops.domain.catalogue import Catalogue
from cityops.domain.commands import handles
from cityops.domain.errors import IllegalTransition, InvalidValue
from cityops.domain.geometry import Area
from cityops.domain.hazards.source import HazardSource, HazardStatus
from cityops.domain.incidents.incident import OPEN_STATUSES, Incident
from cityops.domain.warnings.commands import (
    ApproveWarning,
    CancelWarning,
    DiscardWarningDraft,
    DraftWarning,
    DraftWarningUpdate,
    IssueWarning,
    ReviseWarningDraft,
    WarningWording,
)
from cityops.domain.warnings.content import (
    AdminAreaRef,
    LevelKind,
    OriginKind,
    WarningArea,
    WarningCircle,
    WarningContent,
    WarningLevel,
    WarningNotice,
    WarningOrigin,
    polygons_of,
)
from cityops.domain.warnings.warning import Warning, WarningStatus

INCIDENT_ACTIVE = OPEN_STATUSES
"""An incident a warning may be drafted from: reported, verified, responding or contained."""


class WarningGeography(Protocol):
    """What the warning desk asks of the city's map (`cityops.maps.warning_areas`)."""

    def check_in_city(self, polygons: Sequence[Area], circles: Sequence[WarningCircle]) -> None:
        """Raise `InvalidValue` unless the area overlaps the city (an area reaching beyond
        the boundary is allowed: the neighbouring city gets the inter-agency alert)."""

    def admin_areas(self, polygons: Sequence[Area],
                    circles: Sequence[WarningCircle]) -> tuple[AdminAreaRef, ...]:
        """The districts, streets and communities the area touches, largest first."""


@dataclass(frozen=True)
class SenderIdentity:
    """Who the warnings come from (CAP `sender`, `senderName`) and the prefix of the
    messages' identifiers."""

    sender: str = "command-centre@cityops.invalid"
    name: str = "City Emergency Command Centre"
    identifier_prefix: str = "cityops-warning"

    def __post_init__(self) -> None:
        for label, value in (("sender", self.sender),
                             ("identifier prefix", self.identifier_prefix)):
            if not value or any(c in value for c in " ,<&"):
                raise InvalidValue(f"warning {label} {value!r} must be non-empty, without "
                                   "spaces, commas, '<' or '&' (CAP)")
        if not self.name.strip():
            raise InvalidValue("the warning sender's name must not be empty")


class Warnings(CityApplication):
    """Drafts, approves, issues, updates and cancels the centre's warnings."""

    name = "warnings"

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        *,
        catalogue: Catalogue,
        geography: WarningGeography,
        incident_of: Callable[[UUID], Incident] | None = None,
        hazard_source_of: Callable[[UUID], HazardSource] | None = None,
        sender: SenderIdentity | None = None,
        drill_id: str | None = None,
        clock: Clock,
    ) -> None:
        super().__init__(env, clock=clock)
        self.catalogue = catalogue
        self.geography = geography
        self.incident_of = incident_of
        self.hazard_source_of = hazard_source_of
        self.sender = sender or SenderIdentity()
        self.drill_id = drill_id
        """Set by a drill's own desk: every warning it drafts is an exercise of that drill
        (a live desk cannot draft an exercise, a drill's desk cannot draft a real one)."""

    # --- queries ------------------------------------------------------------------------

    def warning(self, warning_id: UUID) -> Warning:
        return self.load(Warning, warning_id)

    def notices(self, warning_id: UUID) -> list[WarningNotice]:
        """Every message the warning sent out, oldest first."""
        return list(self.warning(warning_id).notices)

    # --- handlers (`@handles`: the one handler of each command class) ---------------------

    @handles(DraftWarning)
    def draft(self, command: DraftWarning, uow: UnitOfWork) -> list[Warning]:
        """A warning is drafted from an incident, a hazard source's alarm or from scratch."""
        if command.warning_id is not None:
            new_id = command.warning_id
        elif uow.command_id:
            # A repeated draft (same command id) lands on the same warning.
            new_id = uuid5(COMMAND_NAMESPACE, f"warning:{uow.command_id}")
        else:
            new_id = uuid4()
        if uow.exists(new_id):
            raise IllegalTransition(Warning.KIND, new_id, "already drafted", "draft")
        origin, category, event_type, level, origin_area = self._origin(command)
        content = self._content(command, origin=origin, category=category,
                                event_type=event_type, origin_level=level,
                                origin_area=origin_area, base=None, at=uow.now)
        return [Warning.draft_new(warning_id=new_id, content=content, actor=uow.actor,
                                  at=uow.now, drill_id=self.drill_id)]

    @handles(ReviseWarningDraft)
    def revise(self, command: ReviseWarningDraft, uow: UnitOfWork) -> list[Warning]:
        """The content under preparation is changed (an approval given is withdrawn)."""
        warning = uow.load(Warning, command.warning_id)
        base = warning.draft if warning.draft is not None else warning.content
        content = self._reworded(warning, command, base, uow.now)
        warning.revise(content=content, reason=command.reason, actor=uow.actor, at=uow.now)
        return [warning]

    @handles(DraftWarningUpdate)
    def draft_update(self, command: DraftWarningUpdate, uow: UnitOfWork) -> list[Warning]:
        """An update of the issued warning is prepared."""
        warning = uow.load(Warning, command.warning_id)
        # The state first: an update of a cancelled warning is refused as such, before
        # anything about its new content.
        warning.require_status("update", WarningStatus.ISSUED)
        content = self._reworded(warning, command, warning.issued_content, uow.now)
        warning.draft_update(content=content, reason=command.reason, actor=uow.actor,
                             at=uow.now)
        return [warning]

    @handles(ApproveWarning)
    def approve(self, command: ApproveWarning, uow: UnitOfWork) -> list[Warning]:
        """The content under preparation is approved (a public one by a second person)."""
        warning = uow.load(Warning, command.warning_id)
        warning.approve(note=command.note, actor=uow.actor, at=uow.now)
        return [warning]

    @handles(IssueWarning)
    def issue(self, command: IssueWarning, uow: UnitOfWork) -> list[Warning]:
        """The approved content goes out: the first alert, or an update."""
        warning = uow.load(Warning, command.warning_id)
        warning.issue(sender=self.sender.sender, sender_name=self.sender.name,
                      identifier_prefix=self.sender.identifier_prefix, actor=uow.actor,
                      at=uow.now)
        return [warning]

    @handles(CancelWarning)
    def cancel(self, command: CancelWarning, uow: UnitOfWork) -> list[Warning]:
        """The issued warning ends now: the cancellation goes out."""
        warning = uow.load(Warning, command.warning_id)
        warning.cancel(reason=command.reason, sender=self.sender.sender,
                       sender_name=self.sender.name,
                       identifier_prefix=self.sender.identifier_prefix, actor=uow.actor,
                       at=uow.now)
        return [warning]

    @handles(DiscardWarningDraft)
    def discard(self, command: DiscardWarningDraft, uow: UnitOfWork) -> list[Warning]:
        """The draft, or the update in preparation, is dropped."""
        warning = uow.load(Warning, command.warning_id)
        warning.discard(reason=command.reason, actor=uow.actor, at=uow.now)
        return [warning]

    # --- building the content -----------------------------------------------------------

    def _reworded(self, warning: Warning, wording: WarningWording, base: WarningContent,
                  at: datetime) -> WarningContent:
        """New content for a warning from new wording over `base` (what is in force or under
        preparation): its origin, category and type stay."""
        origin_area: WarningArea | None = None
        origin_level: str | None = None
        if wording.area_from_origin:
            origin_area = self._origin_area_of(base.origin)
        if wording.level is None:
            origin_level = base.level.code
        return self._content(wording, origin=base.origin, category=base.category,
                             event_type=base.event_type, origin_level=origin_level,
                             origin_area=origin_area, base=base, at=at)

    def _content(self, wording: WarningWording, *, origin: WarningOrigin, category: str,
                 event_type: str, origin_level: str | None, origin_area: WarningArea | None,
                 base: WarningContent | None, at: datetime) -> WarningContent:
        self.catalogue.incident_type(category, event_type)
        level_code = wording.level or origin_level
        if level_code is None:
            raise InvalidValue("give the warning's level: red, orange, yellow or blue, or an "
                               "incident level I to IV")
        if wording.area is not None:
            drawn = wording.area
            area = self._located(drawn.polygons, drawn.circles, drawn.description)
        elif origin_area is not None:
            area = origin_area
        elif base is not None:
            area = base.area
        else:
            raise InvalidValue("a warning needs an area: draw one, or draft from an incident "
                               "with an affected area or a hazard source with an impact zone")
        onset = wording.onset or (base.onset if base is not None else at)
        return WarningContent(
            category=category, event_type=event_type, level=self.level(level_code),
            urgency=wording.urgency, certainty=wording.certainty, texts=wording.texts,
            area=area, onset=onset, expires=wording.expires, contact=wording.contact,
            scope=wording.scope, restriction=wording.restriction, origin=origin)

    def level(self, code: str) -> WarningLevel:
        """A warning level from the catalogue: a warning colour or an incident level."""
        colours = self.catalogue.warning_colours
        if code in colours:
            return WarningLevel(code=code, kind=LevelKind.COLOUR, rank=colours.index(code) + 1)
        if code in self.catalogue.incident_levels:
            level = self.catalogue.incident_level(code)
            return WarningLevel(code=code, kind=LevelKind.INCIDENT_LEVEL, rank=level.rank)
        known = ", ".join([*colours, *self.catalogue.incident_levels])
        raise InvalidValue(f"unknown warning level {code!r}; levels are {known}")

    def _located(self, polygons: Sequence[Area], circles: Sequence[WarningCircle],
                 description: str) -> WarningArea:
        """An area checked against the city's map, with the administrative areas it
        touches (which also describe it when no description is given)."""
        self.geography.check_in_city(polygons, circles)
        admin_areas = self.geography.admin_areas(polygons, circles)
        if not description:
            description = describe_admin_areas(admin_areas)
        return WarningArea(description=description, polygons=tuple(polygons),
                           circles=tuple(circles), admin_areas=admin_areas)

    def _origin(self, command: DraftWarning
                ) -> tuple[WarningOrigin, str, str, str | None, WarningArea | None]:
        """(origin, category, event type, level, area) of what a draft comes from."""
        if command.origin is OriginKind.INCIDENT:
            assert command.incident_id is not None
            incident = self._incident(command.incident_id)
            origin = WarningOrigin(kind=OriginKind.INCIDENT, incident_id=incident.id,
                                   title=incident.title)
            area = self._origin_area_of(origin) if command.area is None else None
            return (origin, command.category or incident.category,
                    command.event_type or incident.incident_type,
                    incident.warning or incident.level, area)
        if command.origin is OriginKind.HAZARD_ALARM:
            assert command.hazard_source_id is not None and command.alarm_id is not None
            source = self._hazard_source(command.hazard_source_id)
            if command.alarm_id not in source.alarms:
                raise InvalidValue(f"hazard source {source.id} has no alarm {command.alarm_id}")
            origin = WarningOrigin(kind=OriginKind.HAZARD_ALARM, hazard_source_id=source.id,
                                   alarm_id=command.alarm_id, title=source.name)
            if not (command.category and command.event_type):
                raise InvalidValue("a warning drafted from a hazard alarm names the event's "
                                   "category and type (what the alarm warns of)")
            area = self._origin_area_of(origin) if command.area is None else None
            return origin, command.category, command.event_type, None, area
        assert command.category is not None and command.event_type is not None
        return WarningOrigin(), command.category, command.event_type, None, None

    def _origin_area_of(self, origin: WarningOrigin) -> WarningArea:
        """The area of what a warning comes from, as it is now: an incident's affected
        area, a hazard source's impact zone (or the circle of its impact radius)."""
        if origin.kind is OriginKind.INCIDENT:
            assert origin.incident_id is not None
            incident = self._incident(origin.incident_id, must_be_open=False)
            if incident.affected_area is None:
                raise InvalidValue(f"incident {incident.id} has no affected area: draw the "
                                   "warning's area")
            return self._located(polygons_of(incident.affected_area), (),
                                 "")
        if origin.kind is OriginKind.HAZARD_ALARM:
            assert origin.hazard_source_id is not None
            source = self._hazard_source(origin.hazard_source_id)
            if source.impact_zone is not None:
                return self._located(polygons_of(source.impact_zone), (), "")
            if source.impact_radius_m:
                circle = WarningCircle(centre=source.location,
                                       radius_km=source.impact_radius_m / 1000)
                return self._located((), (circle,), "")
            raise InvalidValue(f"hazard source {source.id} has no impact zone: draw the "
                               "warning's area")
        raise InvalidValue("a warning drafted from scratch has no origin's area: draw it")

    def _incident(self, incident_id: UUID, *, must_be_open: bool = True) -> Incident:
        if self.incident_of is None:
            raise InvalidValue("this warning desk cannot read incidents")
        incident = self.incident_of(incident_id)
        if must_be_open and incident.status not in INCIDENT_ACTIVE:
            raise InvalidValue(f"incident {incident_id} is {incident.status.value}: a warning "
                               "is drafted from an incident still under way")
        return incident

    def _hazard_source(self, source_id: UUID) -> HazardSource:
        if self.hazard_source_of is None:
            raise InvalidValue("this warning desk cannot read hazard sources")
        source = self.hazard_source_of(source_id)
        if source.status is HazardStatus.DECOMMISSIONED:
            raise InvalidValue(f"hazard source {source_id} is decommissioned")
        return source



def describe_admin_areas(admin_areas: Sequence[AdminAreaRef]) -> str:
    """A description of an area by the administrative areas it touches (the communities if
    there are any, else the streets, else the districts)."""
    for level in ("community", "street", "district"):
        names = [a.name for a in admin_areas if a.level.value == level]
        if names:
            shown = ", ".join(names[:12])
            more = len(names) - 12
            return shown + (f" and {more} more" if more > 0 else "")
    return "Area of the warning"
