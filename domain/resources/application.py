"""The emergency-resources application: registering resources, dispatching them to incidents,
their status reports, and their positions.

Positions arrive far more often than anything worth keeping happens, so `report_position`
decides from an in-process cache whether a fix deserves an event (`PositionPolicy`), and
only then loads and saves the aggregate. The cache also answers "where is it now" for
screens: it is a read-side convenience of this process (lost on restart, not shared between
processes); the movement history that drills need is kept by the ingest/projection layer.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from enum import Enum
from typing import Any
from uuid import UUID

from cityops.domain.actors import Actor, Role
from cityops.domain.application import CityApplication, Clock, system_clock
from cityops.domain.catalogue import Catalogue
from cityops.domain.errors import ConcurrencyConflict, InvalidValue
from cityops.domain.geometry import GeoPoint
from cityops.domain.permissions import check_permitted
from cityops.domain.resources.resource import (
    PositionFix,
    PositionOutcome,
    PositionPolicy,
    Resource,
    normalise_call_sign,
)


class Unchanged(Enum):
    """Marks an optional revision argument left as it is (where None has a meaning)."""

    UNCHANGED = "unchanged"


UNCHANGED = Unchanged.UNCHANGED


@dataclass(frozen=True)
class _Tracked:
    """What this process knows of one resource to judge a position fix without loading it."""

    department: str
    mobile: bool
    last_event_at: datetime
    recorded: PositionFix | None
    latest: PositionFix | None


def _newer(a: PositionFix | None, b: PositionFix | None) -> PositionFix | None:
    if a is None:
        return b
    if b is None:
        return a
    return b if b.at > a.at else a


def _fix_args(point: GeoPoint | None) -> list[float] | None:
    return [point.lon, point.lat] if point is not None else None


class Resources(CityApplication):
    """Registers emergency resources and follows their status and position."""

    name = "resources"

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        *,
        catalogue: Catalogue,
        position_policy: PositionPolicy | None = None,
        clock: Clock = system_clock,
    ) -> None:
        super().__init__(env, clock=clock)
        self.catalogue = catalogue
        self.position_policy = position_policy or PositionPolicy()
        self._tracked_lock = threading.Lock()
        self._tracked_by_id: dict[UUID, _Tracked] = {}

    # --- reading ---------------------------------------------------------------------------

    def resource(self, resource_id: UUID) -> Resource:
        """The resource as its events tell it, or `NotFound`."""
        return self.load(Resource, resource_id)

    def latest_position(self, resource_id: UUID) -> PositionFix | None:
        """The newest position known to this process: cached fix or recorded position."""
        tracked = self._tracked(resource_id)
        return _newer(tracked.recorded, tracked.latest)

    def resource_view(self, resource_id: UUID) -> dict[str, Any]:
        """The resource's summary plus its `latest_position` from this process's cache."""
        resource = self.resource(resource_id)
        self._remember(resource)
        summary = resource.summary()
        latest = self.latest_position(resource_id) if resource.mobile else None
        summary["latest_position"] = (
            {"point": latest.point.to_geojson(), "at": latest.at.isoformat()}
            if latest is not None else None
        )
        return summary

    # --- the latest-position cache -----------------------------------------------------------

    def _tracked(self, resource_id: UUID) -> _Tracked:
        with self._tracked_lock:
            tracked = self._tracked_by_id.get(resource_id)
        if tracked is not None:
            return tracked
        return self._remember(self.resource(resource_id))

    def _remember(self, resource: Resource) -> _Tracked:
        """Refresh what the cache knows from a resource just loaded or saved."""
        with self._tracked_lock:
            known = self._tracked_by_id.get(resource.id)
            tracked = _Tracked(
                department=resource.department,
                mobile=resource.mobile,
                last_event_at=resource.modified_on,
                recorded=resource.position,
                latest=_newer(known.latest if known else None, resource.position),
            )
            self._tracked_by_id[resource.id] = tracked
            return tracked

    def _cache_fix(self, resource_id: UUID, fix: PositionFix) -> None:
        with self._tracked_lock:
            known = self._tracked_by_id.get(resource_id)
            if known is not None:
                self._tracked_by_id[resource_id] = replace(known, latest=_newer(known.latest, fix))

    def _cached_fix(self, resource_id: UUID) -> PositionFix | None:
        with self._tracked_lock:
            known = self._tracked_by_id.get(resource_id)
            return known.latest if known is not None else None

    # --- helpers -----------------------------------------------------------------------------

    def _command(self, command: str, actor: Actor, command_id: str | None,
                 args: dict[str, Any], decide: Callable[[], list[Resource]], *,
                 explain_conflict: Callable[[], None] | None = None) -> UUID:
        saved: list[Resource] = []

        def decide_and_keep() -> list[Resource]:
            saved[:] = decide()
            return saved

        subject = self.command(command, actor, command_id, args, decide_and_keep,
                               explain_conflict=explain_conflict)

        def remember_saved() -> None:
            for resource in saved:
                self._remember(resource)

        # The cache learns a resource's state once it is stored (after a batch's commit
        # when the command was staged in one), never a state that might not be.
        self.after_saved(remember_saved)
        return subject

    def _status_command(
        self,
        command: str,
        resource_id: UUID,
        *,
        actor: Actor,
        position: GeoPoint | None,
        at: datetime | None,
        command_id: str | None,
        change: Callable[[Resource, PositionFix | None, datetime], None],
        args: Mapping[str, Any] | None = None,
        admit: Callable[[], None] | None = None,
    ) -> UUID:
        """Run a status change; it carries the reported position, else the cached one.
        `admit` is a check of another stream made when deciding (it raises to refuse)."""
        if position is not None and not isinstance(position, GeoPoint):
            raise InvalidValue("position must be a GeoPoint")
        when = self.now(at)
        given = PositionFix(position, when) if position is not None else None

        def decide() -> list[Resource]:
            resource = self.resource(resource_id)
            if admit is not None:
                admit()
            change(resource, given or self._cached_fix(resource_id), when)
            return [resource]

        subject = self._command(command, actor, command_id, {
            "resource_id": resource_id, "position": _fix_args(position), **(args or {}),
        }, decide)
        if given is not None:
            self._cache_fix(resource_id, given)
        return subject

    @staticmethod
    def _incident(incident_id: UUID) -> UUID:
        if not isinstance(incident_id, UUID):
            raise InvalidValue(f"incident id must be a UUID, got {incident_id!r}")
        return incident_id

    # --- registry ----------------------------------------------------------------------------

    def register_resource(
        self,
        *,
        kind: str,
        name: str,
        call_sign: str,
        department: str,
        home_base: GeoPoint,
        actor: Actor,
        capacity: int | None = None,
        stock: Mapping[str, float] | None = None,
        speciality: str = "",
        notes: str = "",
        at: datetime | None = None,
        command_id: str | None = None,
    ) -> UUID:
        """Register a resource of a catalogue kind, owned by a department; its call sign is
        unique (the resource id derives from it)."""
        resource_kind = self.catalogue.resource_kind(kind)
        self.catalogue.department(department)
        sign = normalise_call_sign(call_sign)
        when = self.now(at)

        resource_id = Resource.create_id(sign)

        def decide() -> list[Resource]:
            # No look-up of the call sign first: the new resource's first event conflicts on
            # save when it is taken, and only then is the conflict explained (below).
            return [Resource.register(
                kind=resource_kind, name=name, call_sign=sign, department=department,
                home_base=home_base, capacity=capacity, stock=dict(stock or {}),
                speciality=speciality, notes=notes, actor=actor, at=when,
            )]

        def already_registered() -> None:
            if self.exists(resource_id):
                raise InvalidValue(f"call sign {sign} is already registered ({resource_id})")

        return self._command("resource.register", actor, command_id, {
            "kind": kind, "name": name, "call_sign": sign, "department": department,
            "home_base": _fix_args(home_base) if isinstance(home_base, GeoPoint) else home_base,
            "capacity": capacity, "stock": dict(stock or {}), "speciality": speciality,
            "notes": notes,
        }, decide, explain_conflict=already_registered)

    def revise_resource(
        self,
        resource_id: UUID,
        *,
        actor: Actor,
        name: str | None = None,
        home_base: GeoPoint | None = None,
        capacity: int | Unchanged | None = UNCHANGED,
        stock: Mapping[str, float] | None = None,
        speciality: str | None = None,
        notes: str | None = None,
        at: datetime | None = None,
        command_id: str | None = None,
    ) -> UUID:
        """Correct a resource's details (None, or UNCHANGED for capacity, keeps a value);
        kind, department and call sign do not change."""
        when = self.now(at)

        def decide() -> list[Resource]:
            resource = self.resource(resource_id)
            resource.revise(
                name=resource.name if name is None else name,
                home_base=resource.home_base if home_base is None else home_base,
                capacity=resource.capacity if capacity is UNCHANGED else capacity,
                stock=resource.stock if stock is None else stock,
                speciality=resource.speciality if speciality is None else speciality,
                notes=resource.notes if notes is None else notes,
                actor=actor, at=when,
            )
            return [resource]

        return self._command("resource.revise", actor, command_id, {
            "resource_id": resource_id, "name": name,
            "home_base": _fix_args(home_base) if isinstance(home_base, GeoPoint) else home_base,
            "capacity": capacity.value if isinstance(capacity, Unchanged) else capacity,
            "stock": dict(stock) if stock is not None else None, "speciality": speciality,
            "notes": notes,
        }, decide)

    # --- assignments ---------------------------------------------------------------------------

    def dispatch(self, resource_id: UUID, *, incident_id: UUID, actor: Actor,
                 position: GeoPoint | None = None, at: datetime | None = None,
                 command_id: str | None = None,
                 admit: Callable[[], None] | None = None) -> UUID:
        """Assign an available resource to an incident (this stream's side only: the
        command centre sends resources through `ResourceAssignments`, which records it on
        the incident too and passes the incident's check as `admit`, made when deciding, so
        that a repeat of a dispatch already done is answered as one)."""
        incident = self._incident(incident_id)
        return self._status_command(
            "resource.dispatch", resource_id, actor=actor, position=position, at=at,
            command_id=command_id, args={"incident_id": incident}, admit=admit,
            change=lambda r, fix, when: r.dispatch(incident_id=incident, fix=fix, actor=actor,
                                                   at=when))

    def reassign(self, resource_id: UUID, *, incident_id: UUID, actor: Actor,
                 position: GeoPoint | None = None, at: datetime | None = None,
                 command_id: str | None = None,
                 admit: Callable[[], None] | None = None) -> UUID:
        """Move a resource serving one incident straight to another (this stream's side
        only, as `dispatch`)."""
        incident = self._incident(incident_id)
        return self._status_command(
            "resource.reassign", resource_id, actor=actor, position=position, at=at,
            command_id=command_id, args={"incident_id": incident}, admit=admit,
            change=lambda r, fix, when: r.reassign(incident_id=incident, fix=fix, actor=actor,
                                                   at=when))

    def stand_down(self, resource_id: UUID, *, actor: Actor, position: GeoPoint | None = None,
                   at: datetime | None = None, command_id: str | None = None) -> UUID:
        """Cancel an assignment before arrival (available if it had not moved, else
        returning)."""
        return self._status_command(
            "resource.stand-down", resource_id, actor=actor, position=position, at=at,
            command_id=command_id,
            change=lambda r, fix, when: r.stand_down(fix=fix, actor=actor, at=when))

    # --- status reports ------------------------------------------------------------------------

    def report_en_route(self, resource_id: UUID, *, actor: Actor,
                        position: GeoPoint | None = None, at: datetime | None = None,
                        command_id: str | None = None) -> UUID:
        """A mobile resource sets off for its incident."""
        return self._status_command(
            "resource.report-en-route", resource_id, actor=actor, position=position, at=at,
            command_id=command_id,
            change=lambda r, fix, when: r.report_en_route(fix=fix, actor=actor, at=when))

    def report_on_scene(self, resource_id: UUID, *, actor: Actor,
                        position: GeoPoint | None = None, at: datetime | None = None,
                        command_id: str | None = None) -> UUID:
        """A mobile resource arrives at its incident."""
        return self._status_command(
            "resource.report-on-scene", resource_id, actor=actor, position=position, at=at,
            command_id=command_id,
            change=lambda r, fix, when: r.report_on_scene(fix=fix, actor=actor, at=when))

    def activate(self, resource_id: UUID, *, actor: Actor, at: datetime | None = None,
                 command_id: str | None = None) -> UUID:
        """A depot or shelter dispatched to an incident opens for it."""
        return self._status_command(
            "resource.activate", resource_id, actor=actor, position=None, at=at,
            command_id=command_id,
            change=lambda r, _fix, when: r.activate(actor=actor, at=when))

    def clear_scene(self, resource_id: UUID, *, actor: Actor, position: GeoPoint | None = None,
                    at: datetime | None = None, command_id: str | None = None) -> UUID:
        """A mobile resource leaves the scene, its work done: returning."""
        return self._status_command(
            "resource.clear-scene", resource_id, actor=actor, position=position, at=at,
            command_id=command_id,
            change=lambda r, fix, when: r.clear_scene(fix=fix, actor=actor, at=when))

    def deactivate(self, resource_id: UUID, *, actor: Actor, at: datetime | None = None,
                   command_id: str | None = None) -> UUID:
        """A depot or shelter closes for its incident: available again."""
        return self._status_command(
            "resource.deactivate", resource_id, actor=actor, position=None, at=at,
            command_id=command_id,
            change=lambda r, _fix, when: r.deactivate(actor=actor, at=when))

    def report_available(self, resource_id: UUID, *, actor: Actor,
                         position: GeoPoint | None = None, at: datetime | None = None,
                         command_id: str | None = None) -> UUID:
        """A returning resource is ready for the next assignment."""
        return self._status_command(
            "resource.report-available", resource_id, actor=actor, position=position, at=at,
            command_id=command_id,
            change=lambda r, fix, when: r.report_available(fix=fix, actor=actor, at=when))

    def take_out_of_service(self, resource_id: UUID, *, reason: str, actor: Actor,
                            position: GeoPoint | None = None, at: datetime | None = None,
                            command_id: str | None = None) -> UUID:
        """Withdraw a resource that is not on an incident, with the reason."""
        return self._status_command(
            "resource.take-out-of-service", resource_id, actor=actor, position=position,
            at=at, command_id=command_id, args={"reason": reason},
            change=lambda r, fix, when: r.take_out_of_service(reason=reason, fix=fix,
                                                              actor=actor, at=when))

    def return_to_service(self, resource_id: UUID, *, actor: Actor,
                          position: GeoPoint | None = None, at: datetime | None = None,
                          command_id: str | None = None) -> UUID:
        """An out-of-service resource is available again."""
        return self._status_command(
            "resource.return-to-service", resource_id, actor=actor, position=position, at=at,
            command_id=command_id,
            change=lambda r, fix, when: r.return_to_service(fix=fix, actor=actor, at=when))

    # --- positions -----------------------------------------------------------------------------

    def report_position(self, resource_id: UUID, point: GeoPoint, at: datetime, *,
                        actor: Actor) -> PositionOutcome:
        """Take a position fix of a mobile resource: record it, cache it, or ignore it.

        No command id: a fix is idempotent by its time (a repeat is not newer than what is
        known, so it is ignored). A fix older than the last recorded position, or than the
        resource's last event, is ignored. A fix lost to a concurrent write stays cached.
        """
        check_permitted("resource.position", actor)
        if not isinstance(point, GeoPoint):
            raise InvalidValue("position must be a GeoPoint")
        if not isinstance(at, datetime):
            raise InvalidValue("a position fix needs the time it was measured")
        fix = PositionFix(point, self.now(at))
        tracked = self._tracked(resource_id)
        foreign = actor.role is Role.DEPARTMENT_USER and actor.department != tracked.department
        if not foreign and tracked.mobile:
            # The cheap path: judge the fix from the cache, without loading the aggregate.
            with self._tracked_lock:
                tracked = self._tracked_by_id.get(resource_id, tracked)
                recorded = tracked.recorded
                if recorded is not None and fix.at <= recorded.at:
                    return PositionOutcome.IGNORED
                is_latest = tracked.latest is None or fix.at > tracked.latest.at
                if is_latest:
                    self._tracked_by_id[resource_id] = replace(tracked, latest=fix)
            recordable = (fix.at >= tracked.last_event_at
                          and self.position_policy.worth_recording(recorded, fix))
            if not recordable:
                return PositionOutcome.CACHED if is_latest else PositionOutcome.IGNORED
        # Worth recording as far as this process knows; the aggregate has the last word (and
        # refuses a foreign department or a kind that does not move, in its own words).
        outcome = [PositionOutcome.IGNORED]

        def decide() -> list[Resource]:
            resource = self.resource(resource_id)
            outcome[0] = resource.report_position(fix=fix, policy=self.position_policy,
                                                  actor=actor, at=self.clock())
            return [resource]

        try:
            self._command("resource.position", actor, None, {
                "resource_id": resource_id, "point": _fix_args(point), "at": fix.at,
            }, decide)
        except ConcurrencyConflict:
            # Another process wrote meanwhile: relearn the resource; the fix stays cached.
            self._remember(self.resource(resource_id))
            self._cache_fix(resource_id, fix)
            return PositionOutcome.CACHED
        return outcome[0]
