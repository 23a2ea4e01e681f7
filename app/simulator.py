"""The demo's simulated day: a believable, seeded day of city activity played through the
same application commands as the API (inspectors' reports, hotline calls, sensor readings
with an alarm, an incident that escalates, resources moving).

The whole system runs on a `SimulatedClock`, so deadlines, supervision lights and event times
follow the simulated day; the same seed gives the same day, command for command.
"""

from __future__ import annotations

import heapq
import json
import logging
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import partial
from importlib import resources
from typing import Any
from uuid import UUID

from cityops.bootstrap import CitySystem, build_system
from cityops.domain.actors import Actor, Role
from cityops.domain.errors import DomainError
from cityops.domain.geometry import GeoPoint
from cityops.domain.gridcase import CaseStatus
from cityops.domain.incident import PlanLevel, PlanTask, ResourceRequirement
from cityops.settings import Settings

log = logging.getLogger(__name__)

DAY_START_LOCAL_HOUR = 7.5
DAY_END_LOCAL_HOUR = 21.0
MEAN_MINUTES_BETWEEN_REPORTS = 5.0
MEAN_MINUTES_BETWEEN_CALLS = 7.0
READING_INTERVAL = timedelta(minutes=2)
POSITION_INTERVAL = timedelta(seconds=30)
TRAVEL_SPEED_MPS = 11.0  # about 40 km/h through city traffic

ADMIN = Actor("admin-demo", Role.ADMIN)
PLANNER = Actor("planner-li", Role.PLANNER)
DISPATCHER = Actor("dispatcher-wang", Role.DISPATCHER)
OPERATOR = Actor("operator-zhao", Role.HOTLINE_OPERATOR)
GATEWAY = Actor("iot-gateway", Role.SYSTEM)
TRACKER = Actor("vehicle-tracker", Role.SYSTEM)
COMMANDER = "duty-chief-chen"

# How often each grid-case category is reported in a day (the common ones first).
CASE_MIX = {
    "E0101": 14, "E0401": 10, "E0402": 9, "E0102": 6, "E0201": 6, "E0104": 5, "C0105": 5,
    "C0302": 4, "C0101": 3, "C0102": 3, "E0403": 4, "E0103": 3, "C0401": 2, "C0204": 2,
    "E0301": 2, "C0201": 2, "E0503": 1, "E0502": 1,
}
CALL_MIX = {
    "consultation-policy": 8, "garbage": 5, "noise": 4, "street-lighting": 3,
    "illegal-parking": 4, "water-supply": 3, "public-transport": 3, "consumer": 3,
    "housing": 3, "street-vendor": 2, "manhole": 2, "food-safety": 2, "health-service": 2,
}


class SimulatedClock:
    """Time of the simulated day: runs `speed` times faster than real time from `start`;
    with speed 0 it only moves when told (`advance_to`), for tests."""

    def __init__(self, start: datetime, speed: float) -> None:
        self._start = start
        self._speed = speed
        self._real_start = time.monotonic()
        self._offset = timedelta()
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            elapsed = (time.monotonic() - self._real_start) * self._speed
            return self._start + timedelta(seconds=elapsed) + self._offset

    @property
    def speed(self) -> float:
        return self._speed

    def restart(self, start: datetime, speed: float) -> None:
        """Start the day again at `start` (before anything was recorded with this clock)."""
        with self._lock:
            self._start = start
            self._speed = speed
            self._real_start = time.monotonic()
            self._offset = timedelta()

    def advance_to(self, moment: datetime) -> None:
        """Jump forward (never back) to `moment`."""
        now = self()
        if moment > now:
            with self._lock:
                self._offset += moment - now


@dataclass(order=True)
class _Step:
    at: datetime
    order: int
    name: str = field(compare=False)
    action: Callable[[], object] = field(compare=False)


def demo_day_start(system: CitySystem, today: date) -> datetime:
    """07:30 local time on the last working day up to `today`."""
    calendar = system.catalogue.calendar
    day = today
    while not calendar.is_working_day(day):
        day -= timedelta(days=1)
    hours = int(DAY_START_LOCAL_HOUR)
    minutes = int((DAY_START_LOCAL_HOUR - hours) * 60)
    local = datetime(day.year, day.month, day.day, hours, minutes, tzinfo=calendar.timezone)
    return local.astimezone(UTC)


class DemoDay:
    """Schedules and plays the simulated day on a system whose clock is `clock`."""

    def __init__(self, system: CitySystem, clock: SimulatedClock, start: datetime,
                 seed: int) -> None:
        self.system = system
        self.clock = clock
        self.start = start
        self.end = start + timedelta(hours=DAY_END_LOCAL_HOUR - DAY_START_LOCAL_HOUR)
        self.rng = random.Random(seed)
        self._queue: list[_Step] = []
        self._order = 0
        self.done = 0
        self.failures: list[str] = []
        self.resource_ids: dict[str, UUID] = {}
        self.hazard_ids: dict[str, UUID] = {}
        self.sensor_levels: dict[tuple[str, str], float] = {}
        self.incidents: dict[str, UUID] = {}
        self._stop = threading.Event()

    # --- scheduling -----------------------------------------------------------------------

    def at(self, moment: datetime, name: str, action: Callable[[], object]) -> None:
        self._order += 1
        heapq.heappush(self._queue, _Step(moment, self._order, name, action))

    def after(self, delay: timedelta, name: str, action: Callable[[], object]) -> None:
        self.at(self.clock() + delay, name, action)

    def minutes(self, low: float, high: float) -> timedelta:
        return timedelta(minutes=self.rng.uniform(low, high))

    def _run(self, step: _Step) -> None:
        try:
            step.action()
            self.done += 1
        except DomainError as error:
            self.failures.append(f"{step.name}: {error}")
            log.warning("demo step %s refused: %s", step.name, error)

    def run_until(self, moment: datetime) -> None:
        """Play every step due by `moment` at once (the clock jumps to each step's time)."""
        while self._queue and self._queue[0].at <= moment:
            step = heapq.heappop(self._queue)
            self.clock.advance_to(step.at)
            self._run(step)
        self.clock.advance_to(moment)

    def run_in_real_time(self) -> None:
        """Play steps as the simulated clock reaches them, until the day ends or `stop`."""
        while not self._stop.is_set() and self._queue:
            now = self.clock()
            if self._queue[0].at <= now:
                self._run(heapq.heappop(self._queue))
                continue
            wait = (self._queue[0].at - now).total_seconds() / max(self.clock.speed, 1e-9)
            self._stop.wait(min(0.25, max(0.0, wait)))

    def stop(self) -> None:
        self._stop.set()

    # --- the day --------------------------------------------------------------------------

    def plan(self) -> None:
        """Set up the city's registers and schedule the whole day."""
        self.at(self.start, "register resources", self.register_resources)
        self.at(self.start, "register hazard sources", self.register_hazard_sources)
        self.at(self.start, "define contingency plans", self.define_plans)
        moment = self.start + timedelta(minutes=3)
        while moment < self.end:
            self.at(moment, "inspector report", self.inspector_report)
            moment += timedelta(minutes=self.rng.expovariate(1 / MEAN_MINUTES_BETWEEN_REPORTS))
        moment = self.start + timedelta(minutes=5)
        while moment < self.end:
            self.at(moment, "hotline call", self.hotline_call)
            moment += timedelta(minutes=self.rng.expovariate(1 / MEAN_MINUTES_BETWEEN_CALLS))
        moment = self.start + timedelta(minutes=1)
        while moment < self.end:
            self.at(moment, "sensor readings", self.sensor_readings)
            moment += READING_INTERVAL
        self.at(self.start + timedelta(minutes=45), "traffic accident call", self.accident_call)

    # setup

    def register_resources(self) -> None:
        for resource in self.system.city.resources:
            self.resource_ids[resource.id] = self.system.resources.register_resource(
                kind=resource.kind, name=resource.name, call_sign=resource.id,
                department=resource.department, home_base=resource.location, actor=ADMIN,
                command_id=f"demo:resource:{resource.id}",
            )

    def register_hazard_sources(self) -> None:
        for source in self.system.city.hazard_sources:
            source_id = self.system.hazards.register(
                hazard_type=source.hazard_type, name=source.name, owner_name=source.owner_name,
                owner_contact=source.owner_contact, grade=source.grade, location=source.location,
                impact_radius_m=source.impact_radius_m, impact_zone=source.impact_zone,
                actor=ADMIN,
                command_id=f"demo:hazard:{source.id}",
            )
            self.hazard_ids[source.id] = source_id
            for sensor in source.sensors:
                self.system.hazards.add_sensor(
                    source_id, sensor_id=sensor.id, kind=sensor.kind, unit=sensor.unit,
                    direction=sensor.direction, warning=sensor.warning, alarm=sensor.alarm,
                    label=sensor.label, actor=ADMIN, command_id=f"demo:sensor:{sensor.id}",
                )
                self.sensor_levels[(source.id, sensor.id)] = self._normal_value(sensor)

    @staticmethod
    def _normal_value(sensor: Any) -> float:
        """A value comfortably on the safe side of the warning threshold."""
        warning = float(sensor.warning)
        return warning * 0.4 if sensor.direction == "high" else warning * 1.6

    def define_plans(self) -> None:
        text = resources.files("cityops").joinpath("demo", "contingency_plans.json")
        for plan in json.loads(text.read_text(encoding="utf-8"))["plans"]:
            levels = [
                PlanLevel(
                    level=level["level"],
                    tasks=tuple(PlanTask(department=t["department"], description=t["description"],
                                         allowance=timedelta(minutes=t["allowance_minutes"]))
                                for t in level["tasks"]),
                    resources=tuple(ResourceRequirement(kind=r["kind"], count=r["count"])
                                    for r in level["resources"]),
                )
                for level in plan["levels"]
            ]
            self.system.incidents.define_plan(
                code=plan["code"], name=plan["name"], category=plan["category"],
                incident_types=plan["incident_types"], levels=levels, actor=PLANNER,
                command_id=f"demo:plan:{plan['code']}",
            )

    # grid cases

    def _random_point_in_cell(self, code: str) -> GeoPoint:
        cell = self.system.city.map.cell(code)
        minx, miny, maxx, maxy = cell.shape.shape.bounds
        for _ in range(20):
            point = GeoPoint(lon=self.rng.uniform(minx, maxx), lat=self.rng.uniform(miny, maxy))
            if self.system.city.map.locate_cell(point) == code:
                return point
        centre: GeoPoint = cell.centre
        return centre

    def inspector_report(self) -> None:
        city_map = self.system.city.map
        inspector = self.rng.choice(sorted(city_map.inspectors))
        cells = city_map.cells_of_inspector(inspector)
        cell_code = self.rng.choice(sorted(cells))
        category = self.rng.choices(list(CASE_MIX), weights=list(CASE_MIX.values()))[0]
        actor = Actor(inspector, Role.INSPECTOR)
        name = self.system.catalogue.case_category(category).name
        urgency = "urgent" if self.rng.random() < 0.15 else "normal"
        case_id = self.system.grid_cases.report(
            source="inspector", category=category, urgency=urgency,
            description=f"{name} seen on patrol in cell {cell_code}",
            location=self._random_point_in_cell(cell_code), actor=actor,
            photos=[f"photo://demo/{self._order}.jpg"],
            command_id=f"demo:case:{self._order}",
        )
        self.after(self.minutes(4, 25), "register case", lambda: self.register_case(case_id))

    def register_case(self, case_id: UUID) -> None:
        case = self.system.grid_cases.case(case_id)
        if case.possible_duplicates:
            self.system.grid_cases.reject(case_id, reason="duplicate",
                                          duplicate_of=case.possible_duplicates[0],
                                          note="Same problem already reported", actor=DISPATCHER)
            return
        if self.rng.random() < 0.05:
            self.system.grid_cases.reject(case_id, reason="not-reproducible",
                                          note="Nothing found on the camera", actor=DISPATCHER)
            return
        self.system.grid_cases.register(case_id, actor=DISPATCHER)
        self.after(self.minutes(3, 20), "dispatch case", lambda: self.dispatch_case(case_id))

    def dispatch_case(self, case_id: UUID) -> None:
        self.system.grid_cases.dispatch(case_id, actor=DISPATCHER)
        case = self.system.grid_cases.case(case_id)
        if self.rng.random() < 0.06:
            self.after(self.minutes(10, 40), "return case", lambda: self.return_case(case_id))
            return
        limit = (case.handling_deadline or self.clock()) - self.clock()
        # Most departments finish within the limit; about one in six is late.
        on_time = self.rng.random() > 0.17
        share = self.rng.uniform(0.2, 0.9) if on_time else self.rng.uniform(1.05, 1.6)
        delay = max(timedelta(minutes=20), limit * share)
        self.after(delay, "handle case", lambda: self.handle_case(case_id))

    def return_case(self, case_id: UUID) -> None:
        case = self.system.grid_cases.case(case_id)
        department = case.department or "urban-management"
        self.system.grid_cases.return_to_centre(
            case_id, reason="Not our asset: belongs to the district", actor=Actor(
                f"{department}-desk", Role.DEPARTMENT_USER, department))
        other = "urban-management" if department != "urban-management" else "sanitation"
        self.after(self.minutes(5, 20), "re-dispatch case",
                   lambda: self._redispatch(case_id, other))

    def _redispatch(self, case_id: UUID, department: str) -> None:
        self.system.grid_cases.dispatch(case_id, department=department, actor=DISPATCHER)
        self.after(self.minutes(60, 240), "handle case", lambda: self.handle_case(case_id))

    def handle_case(self, case_id: UUID) -> None:
        case = self.system.grid_cases.case(case_id)
        if case.status is not CaseStatus.DISPATCHED or case.department is None:
            return
        self.system.grid_cases.handle(
            case_id, result="Dealt with on site", evidence=[f"photo://demo/{case_id}-after.jpg"],
            actor=Actor(f"{case.department}-crew", Role.DEPARTMENT_USER, case.department),
        )
        self.after(self.minutes(30, 150), "verify case", lambda: self.verify_case(case_id))

    def verify_case(self, case_id: UUID) -> None:
        case = self.system.grid_cases.case(case_id)
        inspector = self.system.city.map.locate(case.location)
        actor = Actor(inspector.inspector_id if inspector else "insp-demo", Role.INSPECTOR)
        fixed = self.rng.random() > 0.12
        self.system.grid_cases.verify(case_id, fixed=fixed, actor=actor,
                                      note="" if fixed else "Still not fixed")
        if fixed:
            self.after(self.minutes(10, 60), "close case",
                       lambda: self.system.grid_cases.close_case(case_id, actor=DISPATCHER))
        else:
            self.after(self.minutes(60, 180), "handle case", lambda: self.handle_case(case_id))

    # hotline

    def _random_point(self) -> GeoPoint:
        codes = self.system.city.map.cells["code"]
        return self._random_point_in_cell(str(codes.iloc[self.rng.randrange(len(codes))]))

    def hotline_call(self) -> None:
        topic = self.rng.choices(list(CALL_MIX), weights=list(CALL_MIX.values()))[0]
        name = self.system.catalogue.hotline_topic(topic).name
        ticket_id = self.system.hotline.receive(
            channel=self.rng.choice(["phone", "phone", "phone", "web", "messaging-app"]),
            ticket_type="consultation" if topic == "consultation-policy" else "complaint",
            topic=topic, description=f"Caller reports: {name.lower()}",
            caller_name=self.rng.choice(["Zhang Wei", "Li Na", "Wang Fang", "Liu Yang"]),
            caller_phone=f"1380000{self.rng.randrange(1000, 9999)}",
            location=self._random_point(), actor=OPERATOR,
            command_id=f"demo:call:{self._order}",
        )
        self.after(self.minutes(1, 6), "route call", lambda: self.route_call(ticket_id))

    def route_call(self, ticket_id: UUID) -> None:
        ticket = self.system.hotline.ticket(ticket_id)
        topic = self.system.catalogue.hotline_topic(ticket.topic)
        if topic.code == "consultation-policy":
            self.system.hotline.answer_at_first_contact(
                ticket_id, answer="Explained the policy to the caller", actor=OPERATOR)
            return
        if topic.case_category is not None and self.rng.random() < 0.3:
            self.system.operations.ticket_to_case(ticket_id, actor=OPERATOR)
            return
        self.system.hotline.assign(ticket_id, actor=OPERATOR)
        self.after(self.minutes(10, 90), "department reply", lambda: self.reply(ticket_id))

    def reply(self, ticket_id: UUID) -> None:
        ticket = self.system.hotline.ticket(ticket_id)
        department = ticket.department or "hotline"
        desk = Actor(f"{department}-desk", Role.DEPARTMENT_USER, department)
        self.system.hotline.accept(ticket_id, actor=desk)
        self.system.hotline.reply(ticket_id, reply="Handled; see the case notes", actor=desk)
        self.after(self.minutes(20, 120), "call back", lambda: self.call_back(ticket_id))

    def call_back(self, ticket_id: UUID) -> None:
        satisfaction = self.rng.choices(["satisfied", "basically-satisfied", "dissatisfied"],
                                        weights=[70, 20, 10])[0]
        self.system.hotline.call_back(ticket_id, satisfaction=satisfaction, actor=OPERATOR)
        if satisfaction == "dissatisfied":
            self.after(self.minutes(30, 120), "department reply", lambda: self.reply(ticket_id))
        else:
            self.system.hotline.close_ticket(ticket_id, actor=OPERATOR)

    # sensors and the gas leak

    def _gas_leak_profile(self, now: datetime) -> float | None:
        """The LPG depot's gas concentration (%LEL) during the leak, None outside it."""
        minutes = (now - self.start).total_seconds() / 60
        rise, peak, fall, gone = 190.0, 225.0, 300.0, 330.0
        if minutes < rise or minutes > gone:
            return None
        if minutes < peak:
            return 8 + (52 - 8) * (minutes - rise) / (peak - rise)
        if minutes < fall:
            return 52.0
        return 52 - (52 - 6) * (minutes - fall) / (gone - fall)

    def sensor_readings(self) -> None:
        now = self.clock()
        for (city_source, sensor_id), normal in self.sensor_levels.items():
            value = normal * self.rng.uniform(0.9, 1.1)
            leak = self._gas_leak_profile(now)
            is_leak_sensor = city_source == self._leak_source() and "GAS" in sensor_id
            if is_leak_sensor and leak is not None:
                value = leak
            outcome = self.system.hazards.record_reading(
                self.hazard_ids[city_source], sensor_id, value, now, actor=GATEWAY)
            if (is_leak_sensor and outcome.effect.value in ("raised", "level-changed")
                    and outcome.level.value == "alarm" and "gas-leak" not in self.incidents):
                alarm = outcome.alarm
                assert alarm is not None
                self.after(timedelta(minutes=3), "escalate gas alarm",
                           partial(self.escalate_gas_alarm, city_source, alarm.alarm_id))

    def _leak_source(self) -> str:
        lpg = [s for s in self.system.city.hazard_sources if s.hazard_type == "lpg-depot"]
        source_id: str = (lpg or self.system.city.hazard_sources)[0].id
        return source_id

    def escalate_gas_alarm(self, city_source: str, alarm_id: UUID) -> None:
        incident_id = self.system.operations.escalate_alarm(
            self.hazard_ids[city_source], alarm_id, category="accident-disaster",
            incident_type="gas-leak", title="Gas leak at the LPG depot", level="IV",
            actor=DISPATCHER,
        )
        self.incidents["gas-leak"] = incident_id
        self.after(timedelta(minutes=4), "verify gas leak",
                   lambda: self.system.incidents.verify(incident_id, actor=DISPATCHER,
                                                        note="Confirmed by the depot"))
        self.after(timedelta(minutes=6), "respond to gas leak",
                   lambda: self.respond(incident_id, "IV", "gas-leak",
                                        ["fire-engine", "hazmat-team"]))
        self.after(timedelta(minutes=35), "raise gas leak level",
                   lambda: self.raise_level(incident_id, "III", ["ambulance", "fire-engine"]))
        self.after(timedelta(minutes=130), "contain gas leak",
                   lambda: self.contain(incident_id))

    def accident_call(self) -> None:
        point = self._random_point()
        ticket_id = self.system.hotline.receive(
            channel="phone", ticket_type="request-for-help", topic="traffic-accident",
            description="Two cars collided at the crossing, one driver hurt",
            caller_name="Chen Jie", caller_phone="13800001234", location=point, actor=OPERATOR,
            command_id="demo:call:accident",
        )
        incident_id = self.system.operations.ticket_to_incident(
            ticket_id, category="accident-disaster", incident_type="traffic-accident",
            title="Traffic accident with injury", level="IV", actor=OPERATOR,
        )
        self.incidents["traffic"] = incident_id
        self.after(timedelta(minutes=2), "verify accident",
                   lambda: self.system.incidents.verify(incident_id, actor=DISPATCHER))
        self.after(timedelta(minutes=3), "respond to accident",
                   lambda: self.respond(incident_id, "IV", "traffic-accident",
                                        ["police-car", "ambulance"]))
        self.after(timedelta(minutes=50), "contain accident", lambda: self.contain(incident_id))

    def respond(self, incident_id: UUID, level: str, plan_code: str, kinds: list[str]) -> None:
        plan = self.system.incidents.plan_by_code(plan_code)
        self.system.incidents.respond(incident_id, level=level, plan_id=plan.id,
                                      actor=DISPATCHER, reason="Plan activated")
        self.system.incidents.assign_commander(incident_id, commander=COMMANDER,
                                               actor=DISPATCHER)
        self.send_resources(incident_id, kinds)

    def raise_level(self, incident_id: UUID, level: str, kinds: list[str]) -> None:
        self.system.incidents.add_situation_report(
            incident_id, text="Leak spreading downwind; school inside the impact zone",
            actor=DISPATCHER)
        self.system.incidents.change_level(incident_id, level=level,
                                           reason="Impact zone includes a school",
                                           actor=DISPATCHER)
        self.send_resources(incident_id, kinds)

    def send_resources(self, incident_id: UUID, kinds: list[str]) -> None:
        incident = self.system.incidents.incident(incident_id)
        for kind in kinds:
            candidates = [
                (self.system.resources.resource(rid), rid)
                for rid in self.resource_ids.values()
            ]
            available = [
                (r.home_base.distance_m(incident.location), rid)
                for r, rid in candidates if r.kind == kind and r.status.value == "available"
            ]
            if not available:
                continue
            _, resource_id = min(available)
            self.system.operations.assign_resource(incident_id, resource_id, actor=DISPATCHER)
            self.after(timedelta(minutes=1.5), "resource en route",
                       partial(self.drive, resource_id, incident_id))

    def drive(self, resource_id: UUID, incident_id: UUID) -> None:
        resource = self.system.resources.resource(resource_id)
        if not resource.mobile:
            self.system.resources.activate(resource_id, actor=DISPATCHER)
            return
        crew = Actor(f"{resource.call_sign}-crew", Role.DEPARTMENT_USER, resource.department)
        self.system.resources.report_en_route(resource_id, actor=crew)
        origin = resource.home_base
        target = self.system.incidents.incident(incident_id).location
        seconds = origin.distance_m(target) / TRAVEL_SPEED_MPS
        steps = max(1, math.ceil(seconds / POSITION_INTERVAL.total_seconds()))
        for step in range(1, steps + 1):
            share = step / steps
            point = GeoPoint(lon=origin.lon + (target.lon - origin.lon) * share,
                             lat=origin.lat + (target.lat - origin.lat) * share)
            self.after(POSITION_INTERVAL * step, "position fix",
                       partial(self._fix, resource_id, point))
        self.after(POSITION_INTERVAL * steps + timedelta(seconds=5), "on scene",
                   lambda: self.system.resources.report_on_scene(
                       resource_id, actor=crew, position=target))

    def _fix(self, resource_id: UUID, point: GeoPoint) -> None:
        self.system.resources.report_position(resource_id, point, self.clock(), actor=TRACKER)

    def contain(self, incident_id: UUID) -> None:
        self.system.incidents.contain(incident_id, actor=DISPATCHER,
                                      note="Source isolated, no further spread")
        incident = self.system.incidents.incident(incident_id)
        for assignment in list(incident.resources):
            if assignment.released_at is None:
                self.after(self.minutes(10, 30), "resource clears scene",
                           partial(self.clear, assignment.resource_id, incident_id))
        self.after(timedelta(minutes=90), "close incident",
                   lambda: self.close_incident(incident_id))

    def clear(self, resource_id: UUID, incident_id: UUID) -> None:
        resource = self.system.resources.resource(resource_id)
        if resource.status.value == "on-scene" and resource.mobile:
            self.system.resources.clear_scene(resource_id, actor=DISPATCHER)
            self.after(self.minutes(10, 25), "resource back at base",
                       lambda: self.system.resources.report_available(
                           resource_id, actor=DISPATCHER, position=resource.home_base)
                       )
        elif resource.status.value == "on-scene":
            self.system.resources.deactivate(resource_id, actor=DISPATCHER)
        self.system.incidents.release_resource(incident_id, resource_id=resource_id,
                                               actor=DISPATCHER)

    def close_incident(self, incident_id: UUID) -> None:
        self.system.incidents.close_incident(incident_id, actor=DISPATCHER,
                                             note="All units released")
        self.after(timedelta(minutes=60), "review incident",
                   lambda: self.system.incidents.review(
                       incident_id, actor=PLANNER,
                       summary="Response within plan times; see the timeline"))


def build_demo(settings: Settings, *, seed: int, speed: float,
               today: date | None = None) -> tuple[CitySystem, DemoDay]:
    """A system on a simulated clock, with its day planned (nothing played yet)."""
    clock = SimulatedClock(datetime.now(UTC), 0.0)
    system = build_system(settings, clock=clock)
    local_today = today or datetime.now(system.catalogue.calendar.timezone).date()
    start = demo_day_start(system, local_today)
    # Every application holds this same clock object: restarting it sets the day for all.
    clock.restart(start, speed)
    demo = DemoDay(system, clock, start, seed)
    demo.plan()
    return system, demo


def run_demo(settings: Settings, *, seed: int, speed: float,
             serve: Callable[[Settings, CitySystem], None]) -> None:
    """Play the demo day in the background while the command centre serves it."""
    system, demo = build_demo(settings, seed=seed, speed=speed)
    log.info("demo day starts at %s (simulated), %.0fx real time, seed %d",
             demo.start.isoformat(), speed, seed)
    player = threading.Thread(target=demo.run_in_real_time, name="cityops-demo", daemon=True)
    player.start()
    try:
        serve(settings, system)
    finally:
        demo.stop()
        player.join(timeout=5)
