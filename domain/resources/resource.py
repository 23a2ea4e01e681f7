"""The emergency resource: a rescue team, vehicle, supply depot, shelter or expert that the
command centre dispatches to incidents, with the status model of dispatch systems.

Statuses: available, dispatched (assigned to an incident, not yet moving), en-route,
on-scene, returning, out-of-service. Mobile kinds (vehicles, teams, experts) travel;
non-mobile kinds (supply depot, shelter: `mobile` is false in the catalogue) stay at their
home base and are *activated* for an incident (dispatched -> on-scene) and *deactivated*
(on-scene -> available) instead of travelling.

Allowed transitions (any other command in any other state raises `IllegalTransition`):

=====================  ===============================  ====================  =========
command                from                             to                    kinds
=====================  ===============================  ====================  =========
register               (new)                            available             all
dispatch(incident)     available                        dispatched            all
reassign(incident)     dispatched, en-route, on-scene   dispatched (new one)  all
report_en_route        dispatched                       en-route              mobile
report_on_scene        dispatched, en-route             on-scene              mobile
activate               dispatched                       on-scene              non-mobile
clear_scene            on-scene                         returning             mobile
deactivate             on-scene                         available             non-mobile
stand_down             dispatched                       available             all
stand_down             en-route                         returning             mobile
report_available       returning                        available             mobile
take_out_of_service    available, returning             out-of-service        all
return_to_service      out-of-service                   available             all
revise                 any                              (unchanged)           all
report_position        any                              (unchanged)           mobile
=====================  ===============================  ====================  =========

Decisions behind the table:
- Only an available resource can be dispatched. A resource serving an incident (dispatched,
  en-route, on-scene) is moved to another one with `reassign`, which records both incident
  ids; otherwise it must be stood down or cleared first. A returning resource must first
  report available (it may do so before it is back at base).
- Stand-down is deterministic: a resource that has not moved (dispatched) is available
  again at once; one on the road (en-route) is returning.
- A mobile resource normally reports en-route before on-scene; a crew that skipped the
  en-route button may still report on scene (its turnout and travel times are then unknown,
  while its response time is still measured). A non-mobile one never goes en-route or
  returning.
- Out of service only from available or returning: a resource on an incident is stood
  down, cleared or reassigned first, so an incident never loses a resource silently.
- The incident id is kept while dispatched, en-route, on-scene and returning (returning
  *from* that incident) and cleared when available or out of service.

Every status change is an event carrying the new status, the incident id, and the latest
known position (with its time), and is appended to a compact status history
`(status, at, incident_id)` from which `response_times` computes the NFPA-style times.

A status change is reported at a time (`reported_at`, what the history and the response
times use). The crew's status button and the vehicle's tracker are two devices on two
topics, so a status report may arrive after a later position fix was recorded: it is then
recorded at the time of the resource's last event (the event log stays in time order) with
its reported time kept, as hazard readings keep their measured time. A status reported
before the resource's last *status change* is out of order and refused.

Positions: a vehicle reports fixes often; the aggregate records a `PositionReported` only
when `PositionPolicy.worth_recording` says so (see there); the rest lives in the
`Resources` application's in-process latest-position cache.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import Any, NamedTuple
from uuid import NAMESPACE_URL, UUID, uuid5

from cityops.domain.actors import Actor, Role
from cityops.domain.catalogue import ResourceKind
from cityops.domain.errors import InvalidValue, NotPermitted
from cityops.domain.geometry import GeoPoint
from cityops.domain.model import CityAggregate, checked_text
from cityops.domain.values import checked_number

RESOURCE_NAMESPACE = uuid5(NAMESPACE_URL, "https://cityops.invalid/resources")
MAX_CALL_SIGN = 40
MAX_STOCK_ITEMS = 500


class ResourceStatus(StrEnum):
    """The status model of dispatch systems (see the module docstring for transitions)."""

    AVAILABLE = "available"
    DISPATCHED = "dispatched"
    """Assigned to an incident, not yet moving (or, non-mobile, not yet activated)."""
    EN_ROUTE = "en-route"
    ON_SCENE = "on-scene"
    """At the incident; for a depot or shelter: activated for the incident."""
    RETURNING = "returning"
    OUT_OF_SERVICE = "out-of-service"


SERVING_STATUSES = frozenset(
    {ResourceStatus.DISPATCHED, ResourceStatus.EN_ROUTE, ResourceStatus.ON_SCENE}
)
"""The statuses in which a resource serves an incident (and cannot be dispatched)."""

WITH_INCIDENT_STATUSES = SERVING_STATUSES | {ResourceStatus.RETURNING}
"""The statuses in which a resource is tied to an incident id."""


class StatusChange(NamedTuple):
    """One entry of a resource's status history: the new status, when, for which incident."""

    status: ResourceStatus
    at: datetime
    incident_id: UUID | None
    by: Actor | None = None
    """Who recorded the change (the incident records a departure or arrival in their name)."""


class Departure(NamedTuple):
    """The resource's leaving an incident it served: which, when, and how."""

    incident_id: UUID
    at: datetime
    how: str
    """"cleared the scene", "stood down", "reassigned to incident ...", ..."""
    by: Actor | None = None
    """Who made it leave."""


def _how_it_left(served: StatusChange, then: StatusChange) -> str:
    """How a resource that served an incident (`served`, its last status there) left it
    (`then`, its next status change)."""
    if then.status is ResourceStatus.DISPATCHED:
        return f"reassigned to incident {then.incident_id}"
    if then.status is ResourceStatus.OUT_OF_SERVICE:
        return "taken out of service"
    if served.status is ResourceStatus.ON_SCENE:
        return "cleared the scene" if then.status is ResourceStatus.RETURNING else "deactivated"
    if then.status is ResourceStatus.RETURNING:
        return "stood down on the way"
    return "stood down"


class PositionFix(NamedTuple):
    """A position and the time it was measured."""

    point: GeoPoint
    at: datetime


class PositionOutcome(StrEnum):
    """What became of a reported position fix."""

    RECORDED = "recorded"
    """Recorded as a `PositionReported` event (and kept as the latest position)."""
    CACHED = "cached"
    """Kept only as the latest position in the application's in-process cache."""
    IGNORED = "ignored"
    """Out of order or a repeat: not newer than what is already known."""


@dataclass(frozen=True)
class PositionPolicy:
    """When a position fix is worth an event in the resource's history.

    A fix is recorded when it is newer than the last recorded position (and than the
    resource's last event: history is never written out of order) and

    - no position has been recorded yet, or
    - it is at least `distance_m` (default 200 m) from the last recorded position, or
    - at least `interval` (default 60 s) has passed since the last recorded position and
      it is at least `jitter_m` (default 20 m) from it.

    So a moving vehicle leaves at least one point per `interval` and a point every
    `distance_m` when fast; a parked one, whose fixes only wander by GPS noise, leaves
    none. Status changes carry the latest position whatever this rule says.
    """

    interval: timedelta = timedelta(seconds=60)
    distance_m: float = 200.0
    jitter_m: float = 20.0

    def __post_init__(self) -> None:
        if self.interval <= timedelta(0):
            raise InvalidValue("position recording interval must be positive")
        if not (math.isfinite(self.distance_m) and self.distance_m > 0):
            raise InvalidValue("position recording distance must be a positive number")
        if not (math.isfinite(self.jitter_m) and 0 <= self.jitter_m <= self.distance_m):
            raise InvalidValue("position jitter must be between 0 and the recording distance")

    def worth_recording(self, last: PositionFix | None, fix: PositionFix) -> bool:
        """Whether `fix` deserves an event, given the last recorded position `last`."""
        if last is None:
            return True
        if fix.at <= last.at:
            return False
        moved = last.point.distance_m(fix.point)
        if moved >= self.distance_m:
            return True
        return fix.at - last.at >= self.interval and moved >= self.jitter_m




def _capacity(value: int | None) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidValue(f"capacity must be a whole number of at least 0, got {value!r}")
    return value


def _stock(stock: Mapping[str, float]) -> dict[str, float]:
    if not isinstance(stock, Mapping):
        raise InvalidValue("stock must map item names to quantities")
    if len(stock) > MAX_STOCK_ITEMS:
        raise InvalidValue(f"stock lists more than {MAX_STOCK_ITEMS} items")
    checked: dict[str, float] = {}
    for item, quantity in stock.items():
        name = checked_text("stock item", item, limit=200)
        if name in checked:
            raise InvalidValue(f"stock item {name!r} is listed twice")
        if (not isinstance(quantity, int | float) or isinstance(quantity, bool)
                or not math.isfinite(quantity) or quantity < 0):
            raise InvalidValue(
                f"stock quantity of {name!r} must be a number of at least 0, got {quantity!r}"
            )
        checked_number(f"stock quantity of {name!r}", quantity, minimum=0)
        checked[name] = quantity
    return checked


def _point(label: str, value: GeoPoint) -> GeoPoint:
    if not isinstance(value, GeoPoint):
        raise InvalidValue(f"{label} must be a GeoPoint")
    return value


def normalise_call_sign(call_sign: str) -> str:
    """The call sign as stored: trimmed, inner spaces collapsed, upper case."""
    text = checked_text("call sign", call_sign, limit=MAX_CALL_SIGN)
    return " ".join(text.split()).upper()


@lru_cache(maxsize=4096)
def _resource_id(call_sign: str) -> UUID:
    """The id of a call sign, kept: every position fix and status report asks it."""
    return uuid5(RESOURCE_NAMESPACE, normalise_call_sign(call_sign))


class Resource(CityAggregate):
    """An emergency resource owned by one department, dispatched to incidents."""

    KIND = "resource"

    @staticmethod
    def create_id(call_sign: str) -> UUID:
        """One resource per call sign: registering a call sign twice is refused."""
        if isinstance(call_sign, str):
            return _resource_id(call_sign)
        return uuid5(RESOURCE_NAMESPACE, normalise_call_sign(call_sign))

    class Registered(CityAggregate.Created):
        """`Resource.__init__` makes the resource's state from these facts (the library
        passes a created event's fields to `__init__` by name)."""

        kind: str
        mobile: bool
        """Copied from the catalogue at registration, so history never depends on it."""
        name: str
        call_sign: str
        department: str
        home_base: GeoPoint
        capacity: int | None
        stock: dict[str, float]
        speciality: str
        notes: str

    class DetailsRevised(CityAggregate.Event):
        name: str
        home_base: GeoPoint
        capacity: int | None
        stock: dict[str, float]
        speciality: str
        notes: str

        def apply(self, resource: Resource) -> None:
            resource.name = self.name
            resource.home_base = self.home_base
            resource.capacity = self.capacity
            resource.stock = dict(self.stock)
            resource.speciality = self.speciality
            resource.notes = self.notes

    class StatusChanged(CityAggregate.Event):
        """Base of the status events: the new status, the incident, the position then, and
        when the change was reported (`reported_at`; the event's timestamp, when it was
        recorded, is later for a report that arrived after a later event)."""

        class_version = 2
        status: str
        incident_id: UUID | None
        position: GeoPoint | None
        position_at: datetime | None
        reported_at: datetime

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            # Before late reports were taken, a change was recorded at its reported time.
            state["reported_at"] = state["timestamp"]

        def apply(self, resource: Resource) -> None:
            self.change_status(resource)

        def change_status(self, resource: Resource) -> None:
            status = ResourceStatus(self.status)
            resource.status = status
            resource.status_since = self.reported_at
            resource.incident_id = self.incident_id
            if status is not ResourceStatus.OUT_OF_SERVICE:
                resource.out_of_service_reason = None
            resource.history.append(StatusChange(status, self.reported_at, self.incident_id,
                                                 self.actor))
            if self.position is not None and self.position_at is not None:
                resource.position = PositionFix(self.position, self.position_at)

    class Dispatched(StatusChanged):
        pass

    class Reassigned(StatusChanged):
        """Moved from one incident straight to another (the new one is `incident_id`)."""

        from_incident_id: UUID

    class WentEnRoute(StatusChanged):
        pass

    class ArrivedOnScene(StatusChanged):
        pass

    class Activated(StatusChanged):
        """A depot or shelter opened for the incident it was dispatched to."""

    class ClearedScene(StatusChanged):
        pass

    class Deactivated(StatusChanged):
        """A depot or shelter closed for its incident: available again."""

    class StoodDown(StatusChanged):
        """Cancelled before arriving: available (had not moved) or returning."""

    class BecameAvailable(StatusChanged):
        pass

    class TakenOutOfService(StatusChanged):
        reason: str

        def apply(self, resource: Resource) -> None:
            self.change_status(resource)
            resource.out_of_service_reason = self.reason

    class ReturnedToService(StatusChanged):
        pass

    class PositionReported(CityAggregate.Event):
        """A position worth keeping in the history (see `PositionPolicy`); `position_at` is
        when it was measured, the event's timestamp when it was recorded."""

        position: GeoPoint
        position_at: datetime

        def apply(self, resource: Resource) -> None:
            resource.position = PositionFix(self.position, self.position_at)

    def __init__(self, *, kind: str, mobile: bool, name: str, call_sign: str, department: str,
                 home_base: GeoPoint, capacity: int | None, stock: dict[str, float],
                 speciality: str, notes: str, timestamp: datetime) -> None:
        """The resource as registered (from the `Registered` event's facts): every
        attribute it keeps is declared here, once, with its type; the events change them."""
        self.kind = kind
        self.mobile = mobile
        self.name = name
        self.call_sign = call_sign
        self.department = department
        self.home_base = home_base
        self.capacity = capacity
        self.stock = dict(stock)
        self.speciality = speciality
        self.notes = notes
        self.registered_at = timestamp
        self.status: ResourceStatus = ResourceStatus.AVAILABLE
        self.status_since = timestamp
        self.incident_id: UUID | None = None
        self.out_of_service_reason: str | None = None
        self.position: PositionFix | None = None
        self.history = [StatusChange(ResourceStatus.AVAILABLE, timestamp, None)]

    # --- rules -----------------------------------------------------------------------------

    def check_scope(self, attempted: str, actor: Actor) -> None:
        """A department user acts only on the resources of their own department."""
        if actor.role is Role.DEPARTMENT_USER and actor.department != self.department:
            raise NotPermitted(
                f"{actor.user_id} of {actor.department} may not {attempted} resource "
                f"{self.call_sign}: it belongs to {self.department}"
            )

    def _require_mobile(self, attempted: str, instead: str) -> None:
        if not self.mobile:
            self.refuse(attempted, f"{self.kind} is not a mobile kind ({instead})")

    def _require_fixed(self, attempted: str, instead: str) -> None:
        if self.mobile:
            self.refuse(attempted, f"{self.kind} is a mobile kind ({instead})")

    def _position_facts(self, fix: PositionFix | None, at: datetime) -> dict[str, Any]:
        """The position a status change at `at` carries: `fix`, unless it is newer than the
        change or not newer than the recorded position."""
        stale = fix is None or (self.position is not None and fix.at <= self.position.at)
        if not self.mobile or fix is None or stale or fix.at > at:
            return {"position": None, "position_at": None}
        return {"position": _point("position", fix.point), "position_at": fix.at}

    def _change(self, event_class: type[Resource.StatusChanged], status: ResourceStatus,
                incident_id: UUID | None, *, fix: PositionFix | None, actor: Actor,
                at: datetime, **facts: Any) -> None:
        """Record a status change reported at `at` (see the module docstring for a report
        that arrives after a later event)."""
        last_change = self.history[-1].at
        if at < last_change:
            raise InvalidValue(
                f"{self.KIND} {self.id}: status reported at {at.isoformat()} precedes its "
                f"last status change at {last_change.isoformat()}"
            )
        self.record(event_class, actor=actor, at=max(at, self.modified_on),
                    status=status.value, incident_id=incident_id, reported_at=at,
                    **self._position_facts(fix, at), **facts)

    # --- commands ----------------------------------------------------------------------------

    @classmethod
    def register(
        cls,
        *,
        kind: ResourceKind,
        name: str,
        call_sign: str,
        department: str,
        home_base: GeoPoint,
        capacity: int | None,
        stock: Mapping[str, float],
        speciality: str,
        notes: str,
        actor: Actor,
        at: datetime,
    ) -> Resource:
        """A resource enters the registry, available at its home base."""
        if actor.role is Role.DEPARTMENT_USER and actor.department != department:
            raise NotPermitted(
                f"{actor.user_id} of {actor.department} may not register a resource of "
                f"{department}"
            )
        sign = normalise_call_sign(call_sign)
        return cls._create(
            cls.Registered,
            id=cls.create_id(sign),
            timestamp=at,
            actor=actor,
            kind=kind.code,
            mobile=kind.mobile,
            name=checked_text("name", name, limit=200),
            call_sign=sign,
            department=department,
            home_base=_point("home base", home_base),
            capacity=_capacity(capacity),
            stock=_stock(stock),
            speciality=checked_text("speciality", speciality, required=False, limit=200),
            notes=checked_text("notes", notes, required=False),
        )

    def revise(self, *, name: str, home_base: GeoPoint, capacity: int | None,
               stock: Mapping[str, float], speciality: str, notes: str, actor: Actor,
               at: datetime) -> None:
        """Correct the registered details (kind, department and call sign stay)."""
        self.check_scope("revise", actor)
        self.record(self.DetailsRevised, actor=actor, at=at,
                    name=checked_text("name", name, limit=200),
                    home_base=_point("home base", home_base), capacity=_capacity(capacity),
                    stock=_stock(stock),
                    speciality=checked_text("speciality", speciality, required=False, limit=200),
                    notes=checked_text("notes", notes, required=False))

    def dispatch(self, *, incident_id: UUID, fix: PositionFix | None, actor: Actor,
                 at: datetime) -> None:
        """Assign the resource to an incident."""
        if self.status in SERVING_STATUSES:
            self.refuse("dispatch", f"serves incident {self.incident_id}: stand it down, clear "
                                    "it or reassign it")
        self.require_status("dispatch", ResourceStatus.AVAILABLE)
        self._change(self.Dispatched, ResourceStatus.DISPATCHED, incident_id,
                     fix=fix, actor=actor, at=at)

    def reassign(self, *, incident_id: UUID, fix: PositionFix | None, actor: Actor,
                 at: datetime) -> None:
        """Send a resource that serves one incident straight to another."""
        self.require_status("reassign", *sorted(SERVING_STATUSES))
        if incident_id == self.incident_id:
            self.refuse("reassign", f"already serves incident {incident_id}")
        assert self.incident_id is not None
        self._change(self.Reassigned, ResourceStatus.DISPATCHED, incident_id,
                     fix=fix, actor=actor, at=at, from_incident_id=self.incident_id)

    def report_en_route(self, *, fix: PositionFix | None, actor: Actor, at: datetime) -> None:
        """The crew sets off for its incident."""
        self.check_scope("report en route", actor)
        self._require_mobile("report en route", "activate it instead")
        self.require_status("report en route", ResourceStatus.DISPATCHED)
        self._change(self.WentEnRoute, ResourceStatus.EN_ROUTE, self.incident_id,
                     fix=fix, actor=actor, at=at)

    def report_on_scene(self, *, fix: PositionFix | None, actor: Actor, at: datetime) -> None:
        """The crew arrives at its incident."""
        self.check_scope("report on scene", actor)
        self._require_mobile("report on scene", "activate it instead")
        self.require_status("report on scene", ResourceStatus.DISPATCHED, ResourceStatus.EN_ROUTE)
        self._change(self.ArrivedOnScene, ResourceStatus.ON_SCENE, self.incident_id,
                     fix=fix, actor=actor, at=at)

    def activate(self, *, actor: Actor, at: datetime) -> None:
        """Open a depot or shelter for the incident it was dispatched to."""
        self.check_scope("activate", actor)
        self._require_fixed("activate", "report it en route, then on scene")
        self.require_status("activate", ResourceStatus.DISPATCHED)
        self._change(self.Activated, ResourceStatus.ON_SCENE, self.incident_id,
                     fix=None, actor=actor, at=at)

    def clear_scene(self, *, fix: PositionFix | None, actor: Actor, at: datetime) -> None:
        """The resource leaves the scene, its work there done: returning."""
        self.check_scope("clear the scene for", actor)
        self._require_mobile("clear the scene for", "deactivate it instead")
        self.require_status("clear the scene for", ResourceStatus.ON_SCENE)
        self._change(self.ClearedScene, ResourceStatus.RETURNING, self.incident_id,
                     fix=fix, actor=actor, at=at)

    def deactivate(self, *, actor: Actor, at: datetime) -> None:
        """Close a depot or shelter for its incident: available again."""
        self.check_scope("deactivate", actor)
        self._require_fixed("deactivate", "clear the scene instead")
        self.require_status("deactivate", ResourceStatus.ON_SCENE)
        self._change(self.Deactivated, ResourceStatus.AVAILABLE, None,
                     fix=None, actor=actor, at=at)

    def stand_down(self, *, fix: PositionFix | None, actor: Actor, at: datetime) -> None:
        """Cancel an assignment before arrival."""
        self.require_status("stand down", ResourceStatus.DISPATCHED, ResourceStatus.EN_ROUTE)
        if self.status is ResourceStatus.DISPATCHED:
            self._change(self.StoodDown, ResourceStatus.AVAILABLE, None,
                         fix=fix, actor=actor, at=at)
        else:
            self._change(self.StoodDown, ResourceStatus.RETURNING, self.incident_id,
                         fix=fix, actor=actor, at=at)

    def report_available(self, *, fix: PositionFix | None, actor: Actor, at: datetime) -> None:
        """A returning resource is ready for the next assignment."""
        self.check_scope("report available", actor)
        self.require_status("report available", ResourceStatus.RETURNING)
        self._change(self.BecameAvailable, ResourceStatus.AVAILABLE, None,
                     fix=fix, actor=actor, at=at)

    def take_out_of_service(self, *, reason: str, fix: PositionFix | None, actor: Actor,
                            at: datetime) -> None:
        """Maintenance, breakdown, crew rest, stock exhausted...: not dispatchable."""
        self.check_scope("take out of service", actor)
        reason = checked_text("reason", reason)
        if self.status in SERVING_STATUSES:
            self.refuse("take out of service", f"serves incident {self.incident_id}: stand it "
                                               "down or clear it first")
        self.require_status("take out of service", ResourceStatus.AVAILABLE,
                            ResourceStatus.RETURNING)
        self._change(self.TakenOutOfService, ResourceStatus.OUT_OF_SERVICE, None,
                     fix=fix, actor=actor, at=at, reason=reason)

    def return_to_service(self, *, fix: PositionFix | None, actor: Actor, at: datetime) -> None:
        """Back from maintenance or rest: available again."""
        self.check_scope("return to service", actor)
        self.require_status("return to service", ResourceStatus.OUT_OF_SERVICE)
        self._change(self.ReturnedToService, ResourceStatus.AVAILABLE, None,
                     fix=fix, actor=actor, at=at)

    def report_position(self, *, fix: PositionFix, policy: PositionPolicy, actor: Actor,
                        at: datetime) -> PositionOutcome:
        """Record `fix` at `at` (the system's time) if the policy finds it worth it; say what
        became of it."""
        self.check_scope("report the position of", actor)
        self._require_mobile("report the position of", "it stays at its home base")
        _point("position", fix.point)
        if self.position is not None and fix.at <= self.position.at:
            return PositionOutcome.IGNORED
        # A fix older than the last event is not recorded: history is kept in time order.
        if fix.at < self.modified_on or not policy.worth_recording(self.position, fix):
            return PositionOutcome.CACHED
        # A fix stamped a little ahead of our clock is recorded at our time, so that it
        # cannot make the next command look older than the resource's last event.
        recorded_at = min(fix.at, at)
        if recorded_at < self.modified_on:
            return PositionOutcome.CACHED
        self.record(self.PositionReported, actor=actor, at=recorded_at, position=fix.point,
                    position_at=fix.at)
        return PositionOutcome.RECORDED

    # --- views -------------------------------------------------------------------------------

    def serves(self, incident_id: UUID) -> bool:
        """Whether the resource is assigned to (dispatched to, on its way to, at) `incident_id`."""
        return self.status in SERVING_STATUSES and self.incident_id == incident_id

    def arrival(self) -> tuple[int, datetime] | None:
        """Where in its status history, and when, the assignment it serves now began (its
        dispatch, or reassignment, to that incident); None when it serves none. The
        position names the assignment, so the incident records it once however often it
        is told."""
        if self.status not in SERVING_STATUSES:
            return None
        start = len(self.history) - 1
        while start > 0:
            before = self.history[start - 1]
            if before.incident_id != self.incident_id or before.status not in SERVING_STATUSES:
                break
            start -= 1
        return start, self.history[start].at

    def departures(self, recent: int) -> list[Departure]:
        """How the resource left each of the `recent` incidents it served last (most recent
        first), leaving out one it serves now: from its status history, so that the
        incidents can record it however the status change reached the resource."""
        departures: list[Departure] = []
        seen: set[UUID] = set()
        for index in range(len(self.history) - 1, -1, -1):
            served = self.history[index]
            incident_id = served.incident_id
            if (incident_id is None or incident_id in seen
                    or served.status not in SERVING_STATUSES):
                continue
            if len(seen) == recent:
                break
            seen.add(incident_id)
            if index + 1 < len(self.history):  # else it serves the incident still
                then = self.history[index + 1]
                departures.append(Departure(incident_id, then.at, _how_it_left(served, then),
                                            then.by))
        return departures

    @property
    def location(self) -> GeoPoint:
        """Where the resource is as far as its history knows: last position or home base."""
        if self.mobile and self.position is not None:
            return self.position.point
        return self.home_base

    def summary(self) -> dict[str, Any]:
        """The resource's current state as plain data (for API responses and tests)."""
        return {
            "id": str(self.id),
            "version": self.version,
            "kind": self.kind,
            "mobile": self.mobile,
            "name": self.name,
            "call_sign": self.call_sign,
            "department": self.department,
            "home_base": self.home_base.to_geojson(),
            "capacity": self.capacity,
            "stock": dict(self.stock),
            "speciality": self.speciality,
            "notes": self.notes,
            "status": self.status.value,
            "status_since": self.status_since.isoformat(),
            "incident_id": _str(self.incident_id),
            "out_of_service_reason": self.out_of_service_reason,
            "position": _fix(self.position),
            "registered_at": self.registered_at.isoformat(),
            "history": [
                {"status": c.status.value, "at": c.at.isoformat(),
                 "incident_id": _str(c.incident_id)}
                for c in self.history
            ],
        }


def _str(value: UUID | None) -> str | None:
    return str(value) if value is not None else None


def _fix(fix: PositionFix | None) -> dict[str, Any] | None:
    if fix is None:
        return None
    return {"point": fix.point.to_geojson(), "at": fix.at.isoformat()}


# --- eligibility ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """A resource eligible for dispatch and its straight-line distance to the incident."""

    resource_id: str
    call_sign: str
    distance_m: float
    summary: Mapping[str, Any]


def _summary_location(summary: Mapping[str, Any]) -> GeoPoint:
    """The best-known location of a summarised resource (see `nearest_available`)."""
    if summary.get("mobile", True):
        for key in ("latest_position", "position"):
            fix = summary.get(key)
            if fix:
                return GeoPoint.from_geojson(fix["point"])
    return GeoPoint.from_geojson(summary["home_base"])


def nearest_available(resources: Iterable[Mapping[str, Any]], kind: str, point: GeoPoint,
                      n: int) -> list[Candidate]:
    """The `n` nearest resources that may be dispatched now, nearest first.

    Eligible: status available (so neither serving an incident, returning nor out of
    service) and `kind` matching the kind code. Mobile or not, both count; a non-mobile
    resource is where its home base is; a mobile one is at its `latest_position` (the
    application's cache, when the caller added it), else its last recorded `position`,
    else its home base. Distance is straight-line (haversine); road travel time is the
    job of the spatial index in `maps`. Ties are broken by call sign, so the answer is
    deterministic.
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise InvalidValue(f"number of resources wanted must be at least 1, got {n!r}")
    _point("incident location", point)
    candidates = [
        Candidate(
            resource_id=str(summary["id"]),
            call_sign=str(summary["call_sign"]),
            distance_m=point.distance_m(_summary_location(summary)),
            summary=summary,
        )
        for summary in resources
        if summary["status"] == ResourceStatus.AVAILABLE.value and summary["kind"] == kind
    ]
    candidates.sort(key=lambda c: (c.distance_m, c.call_sign, c.resource_id))
    return candidates[:n]
