"""The emergency-resources application: the handlers of the commands that register
resources, dispatch them to incidents, report their status and their positions (the commands
themselves, as values: `domain/resource_commands.py`).

Positions arrive far more often than anything worth keeping happens, so `judge_position`
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
from typing import Any, Protocol
from uuid import UUID

from cityops.domain.actors import Role
from cityops.domain.application import CityApplication, Clock, UnitOfWork, system_clock
from cityops.domain.catalogue import Catalogue
from cityops.domain.commands import CommandContext, handles
from cityops.domain.errors import ConcurrencyConflict, InvalidValue
from cityops.domain.permissions import check_permitted
from cityops.domain.resources.commands import (
    ActivateResource,
    ClearScene,
    DeactivateResource,
    DispatchResource,
    DispatchToOpenIncident,
    ReassignResource,
    ReassignToOpenIncident,
    RegisterResource,
    ReportAvailable,
    ReportEnRoute,
    ReportOnScene,
    ReportPosition,
    ResourceCommand,
    ReturnToService,
    ReviseResource,
    StandDownResource,
    StatusReport,
    TakeOutOfService,
    Unchanged,
)
from cityops.domain.resources.resource import (
    PositionFix,
    PositionOutcome,
    PositionPolicy,
    Resource,
)


class IncidentAdmission(Protocol):
    """Whether resources may be sent to an incident (the incident application)."""

    def admit_resource(self, incident_id: UUID) -> None:
        """Raise `NotFound` for no such incident, `IllegalTransition` for one not open for
        resources."""

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
        incidents: IncidentAdmission | None = None,
    ) -> None:
        super().__init__(env, clock=clock)
        self.catalogue = catalogue
        self.incidents = incidents
        """Asked, when a resource is sent to an open incident (`DispatchToOpenIncident`),
        whether the incident takes resources (None: for a resources stream on its own)."""
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

    def _remember_when_saved(self, resource: Resource, uow: UnitOfWork) -> None:
        """The cache learns a resource's state once it is stored (after a batch's commit
        when the command was staged in one), never a state that might not be."""
        uow.after_saved(lambda: self._remember(resource))

    def _status_change(self, command: StatusReport | ResourceCommand, uow: UnitOfWork,
                       change: Callable[[Resource, PositionFix | None, datetime], None],
                       ) -> list[Resource]:
        """A status change; it carries the reported position, else the cached one."""
        position = command.position if isinstance(command, StatusReport) else None
        given = PositionFix(position, uow.now) if position is not None else None
        resource = uow.load(Resource, command.resource_id)
        change(resource, given or self._cached_fix(command.resource_id), uow.now)
        self._remember_when_saved(resource, uow)
        if given is not None:
            uow.after_saved(lambda: self._cache_fix(command.resource_id, given))
        return [resource]

    # --- registry ----------------------------------------------------------------------------

    @handles(RegisterResource)
    def register_resource(self, command: RegisterResource, uow: UnitOfWork) -> list[Resource]:
        """A resource of a catalogue kind is registered, owned by a department; its call
        sign is unique (the resource id derives from it)."""
        resource_kind = self.catalogue.resource_kind(command.kind)
        self.catalogue.department(command.department)
        resource_id = Resource.create_id(command.call_sign)

        def already_registered() -> None:
            if self.exists(resource_id):
                raise InvalidValue(
                    f"call sign {command.call_sign} is already registered ({resource_id})")

        # No look-up of the call sign first: the new resource's first event conflicts on
        # save when it is taken, and only then is the conflict explained.
        uow.on_conflict(already_registered)
        resource = Resource.register(
            kind=resource_kind, name=command.resource_name, call_sign=command.call_sign,
            department=command.department, home_base=command.home_base,
            capacity=command.capacity, stock=dict(command.stock or {}),
            speciality=command.speciality, notes=command.notes, actor=uow.actor, at=uow.now,
        )
        self._remember_when_saved(resource, uow)
        return [resource]

    @handles(ReviseResource)
    def revise_resource(self, command: ReviseResource, uow: UnitOfWork) -> list[Resource]:
        """A resource's details are corrected (None, or UNCHANGED for capacity, keeps a
        value); kind, department and call sign do not change."""
        resource = uow.load(Resource, command.resource_id)
        resource.revise(
            name=resource.name if command.resource_name is None else command.resource_name,
            home_base=resource.home_base if command.home_base is None else command.home_base,
            capacity=(resource.capacity if isinstance(command.capacity, Unchanged)
                      else command.capacity),
            stock=resource.stock if command.stock is None else command.stock,
            speciality=(resource.speciality if command.speciality is None
                        else command.speciality),
            notes=resource.notes if command.notes is None else command.notes,
            actor=uow.actor, at=uow.now,
        )
        self._remember_when_saved(resource, uow)
        return [resource]

    # --- assignments ---------------------------------------------------------------------------

    def _send(self, command: DispatchResource, uow: UnitOfWork, *,
              admit: bool) -> list[Resource]:
        """A dispatch or reassignment; `admit`: only to an incident open for resources,
        checked while deciding, so that a repeat of a command already done is answered as
        one even if the incident has closed since."""

        def send(resource: Resource, fix: PositionFix | None, when: datetime) -> None:
            if admit:
                if self.incidents is None:
                    raise TypeError("resources are sent to open incidents only with the "
                                    "incidents to ask (Resources(incidents=...))")
                self.incidents.admit_resource(command.incident_id)
            change = (resource.reassign if isinstance(command, ReassignResource)
                      else resource.dispatch)
            change(incident_id=command.incident_id, fix=fix, actor=uow.actor, at=when)

        return self._status_change(command, uow, send)

    @handles(DispatchResource)
    def dispatch(self, command: DispatchResource, uow: UnitOfWork) -> list[Resource]:
        """An available resource is assigned to an incident (this stream's side only)."""
        return self._send(command, uow, admit=False)

    @handles(DispatchToOpenIncident)
    def dispatch_to_open_incident(self, command: DispatchToOpenIncident,
                                  uow: UnitOfWork) -> list[Resource]:
        """An available resource is assigned to an incident open for resources (the
        incident records it too, see `ResourceAssignments`)."""
        return self._send(command, uow, admit=True)

    @handles(ReassignResource)
    def reassign(self, command: ReassignResource, uow: UnitOfWork) -> list[Resource]:
        """A resource serving one incident moves straight to another (this stream's side
        only)."""
        return self._send(command, uow, admit=False)

    @handles(ReassignToOpenIncident)
    def reassign_to_open_incident(self, command: ReassignToOpenIncident,
                                  uow: UnitOfWork) -> list[Resource]:
        """A resource serving one incident moves straight to another open for resources."""
        return self._send(command, uow, admit=True)

    @handles(StandDownResource)
    def stand_down(self, command: StandDownResource, uow: UnitOfWork) -> list[Resource]:
        """An assignment is cancelled before arrival (available if it had not moved, else
        returning)."""
        return self._status_change(command, uow, lambda r, fix, when: r.stand_down(
            fix=fix, actor=uow.actor, at=when))

    # --- status reports ------------------------------------------------------------------------

    @handles(ReportEnRoute)
    def report_en_route(self, command: ReportEnRoute, uow: UnitOfWork) -> list[Resource]:
        """A mobile resource sets off for its incident."""
        return self._status_change(command, uow, lambda r, fix, when: r.report_en_route(
            fix=fix, actor=uow.actor, at=when))

    @handles(ReportOnScene)
    def report_on_scene(self, command: ReportOnScene, uow: UnitOfWork) -> list[Resource]:
        """A mobile resource arrives at its incident."""
        return self._status_change(command, uow, lambda r, fix, when: r.report_on_scene(
            fix=fix, actor=uow.actor, at=when))

    @handles(ActivateResource)
    def activate(self, command: ActivateResource, uow: UnitOfWork) -> list[Resource]:
        """A depot or shelter dispatched to an incident opens for it."""
        return self._status_change(command, uow, lambda r, _fix, when: r.activate(
            actor=uow.actor, at=when))

    @handles(ClearScene)
    def clear_scene(self, command: ClearScene, uow: UnitOfWork) -> list[Resource]:
        """A mobile resource leaves the scene, its work done: returning."""
        return self._status_change(command, uow, lambda r, fix, when: r.clear_scene(
            fix=fix, actor=uow.actor, at=when))

    @handles(DeactivateResource)
    def deactivate(self, command: DeactivateResource, uow: UnitOfWork) -> list[Resource]:
        """A depot or shelter closes for its incident: available again."""
        return self._status_change(command, uow, lambda r, _fix, when: r.deactivate(
            actor=uow.actor, at=when))

    @handles(ReportAvailable)
    def report_available(self, command: ReportAvailable, uow: UnitOfWork) -> list[Resource]:
        """A returning resource is ready for the next assignment."""
        return self._status_change(command, uow, lambda r, fix, when: r.report_available(
            fix=fix, actor=uow.actor, at=when))

    @handles(TakeOutOfService)
    def take_out_of_service(self, command: TakeOutOfService,
                            uow: UnitOfWork) -> list[Resource]:
        """A resource that is not on an incident is withdrawn, with the reason."""
        return self._status_change(command, uow, lambda r, fix, when: r.take_out_of_service(
            reason=command.reason, fix=fix, actor=uow.actor, at=when))

    @handles(ReturnToService)
    def return_to_service(self, command: ReturnToService, uow: UnitOfWork) -> list[Resource]:
        """An out-of-service resource is available again."""
        return self._status_change(command, uow, lambda r, fix, when: r.return_to_service(
            fix=fix, actor=uow.actor, at=when))

    # --- positions -----------------------------------------------------------------------------

    def judge_position(self, command: ReportPosition, context: CommandContext) -> PositionOutcome:
        """Take a position fix of a mobile resource: record it, cache it, or ignore it.

        Most fixes are judged from this process's cache, without loading the aggregate or
        running the command; only a fix worth recording as far as the cache knows is handled
        (`record_position`). No command id: a fix is idempotent by its time (a repeat is not
        newer than what is known, so it is ignored). A fix older than the last recorded
        position, or than the resource's last event, is ignored. A fix lost to a concurrent
        write stays cached.
        """
        actor = context.actor
        check_permitted(ReportPosition, actor)
        resource_id = command.resource_id
        fix = PositionFix(command.point, self.now(command.measured_at))
        tracked = self._tracked(resource_id)
        foreign = actor.role is Role.DEPARTMENT_USER and actor.department != tracked.department
        batch = context.batch
        unsaved = batch.staged_state(self, resource_id) if batch is not None else None
        if not foreign and tracked.mobile:
            # The cheap path: judge the fix from the cache, without loading the aggregate
            # (or from what the batch holds unsaved, when an earlier fix of the batch is
            # recorded there: the cache learns it only once it is saved).
            with self._tracked_lock:
                tracked = self._tracked_by_id.get(resource_id, tracked)
                recorded, last_event_at = tracked.recorded, tracked.last_event_at
                if isinstance(unsaved, Resource):
                    recorded, last_event_at = unsaved.position, unsaved.modified_on
                judged: PositionOutcome | None
                if recorded is not None and fix.at <= recorded.at:
                    judged = PositionOutcome.IGNORED
                else:
                    is_latest = tracked.latest is None or fix.at > tracked.latest.at
                    if is_latest:
                        self._tracked_by_id[resource_id] = replace(tracked, latest=fix)
                    recordable = (fix.at >= last_event_at
                                  and self.position_policy.worth_recording(recorded, fix))
                    judged = (None if recordable else PositionOutcome.CACHED if is_latest
                              else PositionOutcome.IGNORED)
            if judged is not None:
                if unsaved is not None and batch is not None:
                    # Judged on unsaved state: staged (with no event) beside it, so that it
                    # is judged again if that state is never saved.
                    batch.add(self, [])
                return judged
        # Worth recording as far as this process knows; the aggregate has the last word (and
        # refuses a foreign department or a kind that does not move, in its own words).
        try:
            outcome = self.handle(command, context)
        except ConcurrencyConflict:
            # Another process wrote meanwhile: relearn the resource; the fix stays cached.
            self._remember(self.resource(resource_id))
            self._cache_fix(resource_id, fix)
            return PositionOutcome.CACHED
        assert isinstance(outcome.result, PositionOutcome)
        return outcome.result

    @handles(ReportPosition)
    def record_position(self, command: ReportPosition, uow: UnitOfWork) -> list[Resource]:
        """A position fix the resource judges: recorded if its policy finds it worth it (the
        judgement, `PositionOutcome`, is the command's result)."""
        fix = PositionFix(command.point, self.now(command.measured_at))
        resource = uow.load(Resource, command.resource_id)
        uow.result = resource.report_position(fix=fix, policy=self.position_policy,
                                              actor=uow.actor, at=self.clock())
        self._remember_when_saved(resource, uow)
        return [resource]
