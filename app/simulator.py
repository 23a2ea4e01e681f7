"""The demo's simulated day: a believable, seeded day of city activity (inspectors' reports,
hotline calls, sensor readings with an alarm, an incident that escalates, resources moving).

What outside systems would send arrives as ingest messages through the embedded in-process
queue, the same validation, dedupe and dead-letter path as a Kafka worker: inspectors' reports
from their mobile app, tickets from the call-centre system, the IoT gateway's sensor readings,
vehicle trackers' position fixes, crews' status reports, and departments' systems reporting a
case handled or returned and a ticket answered. What a person does in the command centre
(register, dispatch, review a return, decide a suspension request, verify, escalate, assign a
resource...) or at a department's desk (accept or return a ticket, ask for a suspension,
resume) is a direct command, as the dashboard would issue it. A message the pipeline
dead-letters is a failure of the demo.

The whole system runs on a `SimulatedClock`, so deadlines, supervision lights and event times
follow the simulated day; the same seed gives the same day, command for command: message ids
are numbered by the step that sends them, and the case and ticket ids derive from them.
"""

from __future__ import annotations

import heapq
import json
import logging
import math
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import partial
from importlib import resources
from typing import Any
from uuid import UUID

from cityops.bootstrap import CitySystem, build_system
from cityops.demo_users import create_demo_users, demo_logins_text
from cityops.demo_warnings import GasLeakWarning
from cityops.domain.actors import Actor, Role
from cityops.domain.application import CityApplication, CommandReceipt
from cityops.domain.clock import system_clock
from cityops.domain.commands import Command, CommandContext, CommandOutcome
from cityops.domain.errors import DomainError
from cityops.domain.geometry import GeoPoint
from cityops.domain.gridcases.case import CaseStatus, RejectionReason
from cityops.domain.gridcases.commands import (
    CloseCase,
    DecideCaseSuspension,
    DispatchCase,
    RegisterCase,
    RejectCase,
    RequestCaseSuspension,
    ResumeCase,
    ReviewCaseReturn,
    VerifyCase,
)
from cityops.domain.hazards.commands import AddSensor, RegisterHazardSource
from cityops.domain.hazards.source import AlarmLevel, ThresholdDirection, open_alarms
from cityops.domain.hotline.commands import (
    AcceptTicket,
    AnswerTicket,
    AssignTicket,
    CallBackCaller,
    CloseTicket,
    ReturnTicket,
    ReviewTicketReturn,
)
from cityops.domain.hotline.ticket import Satisfaction, TicketStatus
from cityops.domain.incidents.commands import (
    AcknowledgeTask,
    AddSituationReport,
    AssignCommander,
    ChangeIncidentLevel,
    CloseIncident,
    CompleteTask,
    ContainIncident,
    DefinePlan,
    RespondToIncident,
    ReviewIncident,
    VerifyIncident,
    WaiveTask,
)
from cityops.domain.incidents.plans import (
    PlanLevel,
    PlanTask,
    ResourceRequirement,
)
from cityops.domain.resources.commands import ActivateResource, RegisterResource
from cityops.ingest import messages
from cityops.ingest.catalogue import MessageCatalogue
from cityops.ingest.composition import build_pipeline, ingest_store
from cityops.ingest.counters import CounterTable
from cityops.ingest.deadletters import DeadLetter, StoredDeadLetters
from cityops.ingest.embedded import InProcessIngest
from cityops.ingest.kafka_worker import worker_name
from cityops.ingest.pipeline import Outcome
from cityops.ingest.topics import IngestStream, Topics
from cityops.settings import Settings

log = logging.getLogger(__name__)

DAY_START_LOCAL_HOUR = 7.5
DAY_END_LOCAL_HOUR = 21.0
MEAN_MINUTES_BETWEEN_REPORTS = 5.0
MEAN_MINUTES_BETWEEN_CALLS = 7.0
READING_INTERVAL = timedelta(minutes=2)
POSITION_INTERVAL = timedelta(seconds=30)
TRAVEL_SPEED_MPS = 11.0  # about 40 km/h through city traffic
MESSAGE_WAIT_S = 120.0
"""How long a step waits for its messages to be applied before the demo reports them stuck
(the queue retries a transient failure; it never drops a message)."""

ADMIN = Actor("admin-demo", Role.ADMIN)
PLANNER = Actor("planner-li", Role.PLANNER)
DISPATCHER = Actor("dispatcher-wang", Role.DISPATCHER)
OPERATOR = Actor("operator-zhao", Role.HOTLINE_OPERATOR)
GATEWAY = Actor("iot-gateway", Role.SYSTEM)
TRACKER = Actor("vehicle-tracker", Role.SYSTEM)
COMMANDER = "duty-chief-chen"
COMMANDER_DESK = Actor(COMMANDER, Role.DISPATCHER)
"""The incident commander at the centre's desk (waives the tasks the response no longer
needs, so that the incident can close)."""
TASK_LEFT_OPEN_SHARE = 0.25
"""How many plan tasks a department never reports done (the commander waives them)."""

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


class DemoMessageRefused(Exception):
    """A message the demo sent was dead-lettered, or not applied in time: the simulator sent
    something the city does not take, a failure of the demo (reported, never hidden)."""


class DemoDeadLetters:
    """The embedded default's stored dead letters, also handed to the demo as they happen, so
    that the step that sent a refused message reports it."""

    def __init__(self, stored: StoredDeadLetters) -> None:
        self.stored = stored
        self._letters: list[DeadLetter] = []
        self._lock = threading.Lock()

    def send(self, letter: DeadLetter) -> None:
        # Kept in the ingest store first, as any dead letter: `cityops ingest dead-letters`
        # shows it and can replay it.
        self.stored.send(letter)
        with self._lock:
            self._letters.append(letter)

    def take(self) -> list[DeadLetter]:
        """The dead letters since the last call."""
        with self._lock:
            letters, self._letters = self._letters, []
        return letters

    def close(self) -> None:
        self.stored.close()


def _describe(letter: DeadLetter) -> str:
    what = letter.schema or letter.source_topic
    return (f"message {letter.message_id or '(unreadable)'} ({what}) dead-lettered: "
            f"{letter.code}: {letter.reason}")


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
        # The demo is the embedded demo: its outside systems always send through the
        # in-process queue, whatever Kafka setting the environment has.
        self.ingest_settings = system.settings.ingest
        self.topics = Topics(self.ingest_settings.topic_namespace)
        self.catalogue = MessageCatalogue.load()
        self._ingest: InProcessIngest | None = None
        self._dead_letters: DemoDeadLetters | None = None
        self._closed_runs: Counter[Outcome] = Counter()
        self.sent: Counter[IngestStream] = Counter()
        """Messages sent per ingest stream."""
        self._waiting = False
        self._step: _Step | None = None
        self._escalating: set[UUID] = set()
        self.gas_leak_warning: GasLeakWarning | None = None
        """The gas leak's public warning, once the leak became an incident."""
        self._tasks_in_hand: set[UUID] = set()

    # --- scheduling -----------------------------------------------------------------------

    def at(self, moment: datetime, name: str, action: Callable[[], object]) -> None:
        self._order += 1
        heapq.heappush(self._queue, _Step(moment, self._order, name, action))

    def after(self, delay: timedelta, name: str, action: Callable[[], object]) -> None:
        self.at(self.clock() + delay, name, action)

    def minutes(self, low: float, high: float) -> timedelta:
        return timedelta(minutes=self.rng.uniform(low, high))

    def _run(self, step: _Step) -> None:
        self._step = step
        failed = False
        try:
            step.action()
        except (DomainError, DemoMessageRefused) as error:
            failed = True
            self._fail(step, error)
        try:
            # What the step sent is applied before the next step, which may depend on it.
            self.wait_for_messages()
        except DemoMessageRefused as error:
            failed = True
            self._fail(step, error)
        if not failed:
            self.done += 1

    def _fail(self, step: _Step, error: Exception) -> None:
        self.failures.append(f"{step.name}: {error}")
        log.warning("demo step %s failed: %s", step.name, error)

    def run_until(self, moment: datetime) -> None:
        """Play every step due by `moment` at once (the clock jumps to each step's time)."""
        with self._ingest_running():
            while self._queue and self._queue[0].at <= moment:
                step = heapq.heappop(self._queue)
                self.clock.advance_to(step.at)
                self._run(step)
        self.clock.advance_to(moment)

    def run_in_real_time(self) -> None:
        """Play steps as the simulated clock reaches them, until the day ends or `stop`."""
        with self._ingest_running():
            while not self._stop.is_set() and self._queue:
                now = self.clock()
                if self._queue[0].at <= now:
                    self._run(heapq.heappop(self._queue))
                    continue
                wait = (self._queue[0].at - now).total_seconds() / max(self.clock.speed, 1e-9)
                self._stop.wait(min(0.25, max(0.0, wait)))
        if not self._queue:
            counts = self.messages
            log.info("demo day over: %d steps played, %d failed; messages applied %d, "
                     "duplicate %d, dead-lettered %d", self.done, len(self.failures),
                     counts[Outcome.APPLIED], counts[Outcome.DUPLICATE],
                     counts[Outcome.DEAD_LETTERED])

    def stop(self) -> None:
        self._stop.set()

    # --- the outside systems' messages ----------------------------------------------------

    @property
    def messages(self) -> Counter[Outcome]:
        """What became of the messages the demo sent so far (applied, duplicate,
        dead-lettered)."""
        counts = Counter(self._closed_runs)
        if self._ingest is not None:
            counts.update(self._ingest.outcomes)
        return counts

    @contextmanager
    def _ingest_running(self) -> Iterator[None]:
        """The in-process ingest queue, for one run of the day: it is stopped (its queue
        applied, its counters saved, its store connection closed) when the run ends, so that
        a day played in parts leaves nothing running between them."""
        if self._ingest is not None:
            yield
            return
        settings = self.ingest_settings
        store = ingest_store(self.system)
        try:
            dead_letters = DemoDeadLetters(StoredDeadLetters(store))
            pipeline = build_pipeline(self.system, settings, store, dead_letters,
                                      worker=f"demo-day:{worker_name()}")
        except BaseException:
            store.close()
            raise
        ingest = InProcessIngest(pipeline, capacity=settings.queue_capacity,
                                 counter_table=CounterTable(store),
                                 stats_interval_s=settings.stats_interval_s)
        self._ingest, self._dead_letters = ingest.start(), dead_letters
        try:
            yield
        finally:
            ingest.stop(timeout=MESSAGE_WAIT_S)
            self._closed_runs.update(ingest.outcomes)
            self._ingest = self._dead_letters = None

    def _message_id(self, what: str) -> str:
        """A message id unique to the step that sends it and the same for the same seed."""
        order = self._step.order if self._step is not None else 0
        return f"demo:{order}:{what}"

    def send(self, stream: IngestStream, message: Mapping[str, Any]) -> str:
        """Put a message on its ingest topic's queue, keyed by its aggregate, as the outside
        system would send it; returns its message id."""
        if self._ingest is None:
            raise RuntimeError("the demo's ingest queue runs only while the day is played "
                               "(run_until or run_in_real_time)")
        self._ingest.submit(self.topics.name(stream), messages.encode(message),
                            key=messages.key_of(message, self.catalogue))
        self.sent[stream] += 1
        self._waiting = True
        return str(message["message_id"])

    def deliver(self, stream: IngestStream, message: Mapping[str, Any]) -> str:
        """Send a message and wait until it is applied (what comes next depends on it)."""
        message_id = self.send(stream, message)
        self.wait_for_messages()
        return message_id

    def wait_for_messages(self) -> None:
        """Wait until every message sent so far is applied or dead-lettered; a dead letter
        (or a message still not applied after `MESSAGE_WAIT_S`) is `DemoMessageRefused`."""
        if not self._waiting or self._ingest is None or self._dead_letters is None:
            return
        self._waiting = False
        if not self._ingest.wait_until_processed(MESSAGE_WAIT_S):
            raise DemoMessageRefused(
                f"messages still not applied after {MESSAGE_WAIT_S:.0f} s "
                f"({self._ingest.stats()['queued']} queued; the log says why)")
        letters = self._dead_letters.take()
        if letters:
            raise DemoMessageRefused("; ".join(_describe(letter) for letter in letters))

    def act(self, command: Command, actor: Actor) -> CommandOutcome:
        """A person's command, as the dashboard would issue it."""
        return self.system.commands.handle(command, CommandContext(actor=actor))

    @staticmethod
    def _created_by(application: CityApplication, message_id: str) -> UUID:
        """The case or ticket a receipted message created: its receipt names it."""
        receipt: object = application.repository.get(CommandReceipt.create_id(message_id),
                                                     version=1)
        if not isinstance(receipt, CommandReceipt):
            raise TypeError(f"{message_id} has no command receipt")
        return receipt.aggregate_id

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
            self.resource_ids[resource.id] = self.system.commands.handle(RegisterResource(
                kind=resource.kind, resource_name=resource.name, call_sign=resource.id,
                department=resource.department, home_base=resource.location,
            ), CommandContext(actor=ADMIN, command_id=f"demo:resource:{resource.id}")).subject

    def register_hazard_sources(self) -> None:
        for source in self.system.city.hazard_sources:
            source_id = self.system.commands.handle(RegisterHazardSource(
                hazard_type=source.hazard_type, source_name=source.name,
                owner_name=source.owner_name, owner_contact=source.owner_contact,
                grade=source.grade, location=source.location,
                impact_radius_m=source.impact_radius_m, impact_zone=source.impact_zone,
            ), CommandContext(actor=ADMIN, command_id=f"demo:hazard:{source.id}")).subject
            self.hazard_ids[source.id] = source_id
            for sensor in source.sensors:
                self.system.commands.handle(AddSensor(
                    source_id=source_id, sensor_id=sensor.id, kind=sensor.kind,
                    unit=sensor.unit, direction=ThresholdDirection(sensor.direction),
                    warning=sensor.warning,
                    alarm=sensor.alarm, label=sensor.label,
                ), CommandContext(actor=ADMIN, command_id=f"demo:sensor:{sensor.id}"))
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
            self.system.commands.handle(DefinePlan(
                code=plan["code"], plan_name=plan["name"], category=plan["category"],
                incident_types=tuple(plan["incident_types"]), levels=tuple(levels),
            ), CommandContext(actor=PLANNER, command_id=f"demo:plan:{plan['code']}"))

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
        message_id = self._message_id("case")
        # From the inspectors' mobile app; the case id derives from the message id.
        self.deliver(IngestStream.GRID_CASE_REPORTS, messages.grid_case_report(
            source="inspector", category=category, urgency=urgency,
            description=f"{name} seen on patrol in cell {cell_code}",
            location=self._random_point_in_cell(cell_code), actor=actor,
            photos=[f"photo://demo/{message_id.replace(':', '-')}.jpg"],
            message_id=message_id, occurred_at=self.clock(),
        ))
        case_id = self._created_by(self.system.grid_cases, message_id)
        self.after(self.minutes(4, 25), "register case", lambda: self.register_case(case_id))

    def register_case(self, case_id: UUID) -> None:
        case = self.system.grid_cases.case(case_id)
        if case.possible_duplicates:
            self.act(RejectCase(case_id=case_id, reason=RejectionReason.DUPLICATE,
                                duplicate_of=case.possible_duplicates[0],
                                note="Same problem already reported"), DISPATCHER)
            return
        if self.rng.random() < 0.05:
            self.act(RejectCase(case_id=case_id, reason=RejectionReason.NOT_REPRODUCIBLE,
                                note="Nothing found on the camera"), DISPATCHER)
            return
        self.act(RegisterCase(case_id=case_id), DISPATCHER)
        self.after(self.minutes(3, 20), "dispatch case", lambda: self.dispatch_case(case_id))

    def dispatch_case(self, case_id: UUID) -> None:
        self.act(DispatchCase(case_id=case_id), DISPATCHER)
        if self.rng.random() < 0.06:
            self.after(self.minutes(10, 40), "return case", lambda: self.return_case(case_id))
            return
        if self.rng.random() < 0.05:
            self.after(self.minutes(15, 60), "request suspension",
                       lambda: self.request_suspension(case_id))
            return
        self.schedule_handling(case_id)

    def schedule_handling(self, case_id: UUID) -> None:
        """The department reports the case handled: most within the time left, about one in
        six late."""
        case = self.system.grid_cases.case(case_id)
        limit = (case.handling_deadline or self.clock()) - self.clock()
        on_time = self.rng.random() > 0.17
        share = self.rng.uniform(0.2, 0.9) if on_time else self.rng.uniform(1.05, 1.6)
        delay = max(timedelta(minutes=20), limit * share)
        self.after(delay, "handle case", lambda: self.handle_case(case_id))

    @staticmethod
    def _desk(department: str) -> Actor:
        """The department's desk, acting on the dashboard."""
        return Actor(f"{department}-desk", Role.DEPARTMENT_USER, department)

    def request_suspension(self, case_id: UUID) -> None:
        """The department needs a road closure before it can work: it asks the centre to
        stop the clock."""
        case = self.system.grid_cases.case(case_id)
        if case.status is not CaseStatus.DISPATCHED or case.department is None:
            return
        self.act(RequestCaseSuspension(
            case_id=case_id, reason="A road closure permit is needed before the work",
            expected_resume_at=self.clock() + timedelta(hours=3)), self._desk(case.department))
        self.after(self.minutes(10, 30), "decide suspension",
                   lambda: self.decide_suspension(case_id))

    def decide_suspension(self, case_id: UUID) -> None:
        if self.rng.random() < 0.75:
            self.act(DecideCaseSuspension(case_id=case_id, approve=True), DISPATCHER)
            self.after(self.minutes(90, 180), "resume case", lambda: self.resume_case(case_id))
        else:
            self.act(DecideCaseSuspension(case_id=case_id, approve=False,
                                          reason="Work around the traffic instead"),
                     DISPATCHER)
            self.schedule_handling(case_id)

    def resume_case(self, case_id: UUID) -> None:
        """The permit came: the department starts the clock again and gets to work."""
        case = self.system.grid_cases.case(case_id)
        assert case.department is not None
        self.act(ResumeCase(case_id=case_id), self._desk(case.department))
        self.schedule_handling(case_id)

    def return_case(self, case_id: UUID) -> None:
        case = self.system.grid_cases.case(case_id)
        department = case.department or "urban-management"
        other = "urban-management" if department != "urban-management" else "sanitation"
        # From the department's own system.
        self.deliver(IngestStream.DEPARTMENT_REPORTS, messages.grid_case_returned(
            case_id=case_id, reason="Not our asset: belongs to the district",
            suggested_department=other,
            actor=Actor(f"{department}-desk", Role.DEPARTMENT_USER, department),
            message_id=self._message_id("case-returned"), occurred_at=self.clock(),
        ))
        self.after(self.minutes(5, 20), "review case return",
                   lambda: self.review_case_return(case_id, other))

    def review_case_return(self, case_id: UUID, other: str) -> None:
        """The duty officer checks the asset register: most returns are right (the case goes
        to the other department), about one in three is not (back to the returner)."""
        if self.rng.random() < 0.35:
            self.act(ReviewCaseReturn(case_id=case_id, accept=False,
                                      reason="The asset register names your department"),
                     DISPATCHER)
            self.after(self.minutes(30, 120), "handle case", lambda: self.handle_case(case_id))
            return
        self.act(ReviewCaseReturn(case_id=case_id, accept=True, department=other,
                                  reason="Confirmed by the asset register"), DISPATCHER)
        self.after(self.minutes(60, 240), "handle case", lambda: self.handle_case(case_id))

    def handle_case(self, case_id: UUID) -> None:
        case = self.system.grid_cases.case(case_id)
        if case.status is not CaseStatus.DISPATCHED or case.department is None:
            return
        # The department's system reports the result.
        self.deliver(IngestStream.DEPARTMENT_REPORTS, messages.grid_case_handled(
            case_id=case_id, result="Dealt with on site",
            evidence=[f"photo://demo/{case_id}-after.jpg"],
            actor=Actor(f"{case.department}-crew", Role.DEPARTMENT_USER, case.department),
            message_id=self._message_id("case-handled"), occurred_at=self.clock(),
        ))
        self.after(self.minutes(30, 150), "verify case", lambda: self.verify_case(case_id))

    def verify_case(self, case_id: UUID) -> None:
        case = self.system.grid_cases.case(case_id)
        inspector = self.system.city.map.locate(case.location)
        actor = Actor(inspector.inspector_id if inspector else "insp-demo", Role.INSPECTOR)
        fixed = self.rng.random() > 0.12
        self.act(VerifyCase(case_id=case_id, fixed=fixed,
                            note="" if fixed else "Still not fixed"), actor)
        if fixed:
            self.after(self.minutes(10, 60), "close case", lambda: self.close_case(case_id))
        else:
            self.after(self.minutes(60, 180), "handle case", lambda: self.handle_case(case_id))

    def close_case(self, case_id: UUID) -> None:
        self.act(CloseCase(case_id=case_id), DISPATCHER)
        ticket_id = self.system.grid_cases.case(case_id).ticket_id
        if ticket_id is not None:
            self.after(self.minutes(20, 120), "call back after the case",
                       lambda: self.call_back_after_case(ticket_id))

    # hotline

    def call_back_after_case(self, ticket_id: UUID) -> None:
        """The operator calls back a caller whose ticket became a case, once the case is
        closed and the ticket follow-up has filled the reply from its result (it runs with
        the projections; the step makes sure it has followed everything so far)."""
        self.system.ticket_follow_up.catch_up()
        self.call_back(ticket_id)

    def _random_point(self) -> GeoPoint:
        codes = self.system.city.map.cells["code"]
        return self._random_point_in_cell(str(codes.iloc[self.rng.randrange(len(codes))]))

    def hotline_call(self) -> None:
        topic = self.rng.choices(list(CALL_MIX), weights=list(CALL_MIX.values()))[0]
        name = self.system.catalogue.hotline_topic(topic).name
        message_id = self._message_id("call")
        # From the call-centre system; the ticket id derives from the message id.
        self.deliver(IngestStream.HOTLINE_TICKETS, messages.hotline_ticket(
            channel=self.rng.choice(["phone", "phone", "phone", "web", "messaging-app"]),
            ticket_type="consultation" if topic == "consultation-policy" else "complaint",
            topic=topic, description=f"Caller reports: {name.lower()}",
            caller_name=self.rng.choice(["Zhang Wei", "Li Na", "Wang Fang", "Liu Yang"]),
            caller_phone=f"1380000{self.rng.randrange(1000, 9999)}",
            location=self._random_point(), actor=OPERATOR,
            message_id=message_id, occurred_at=self.clock(),
        ))
        ticket_id = self._created_by(self.system.hotline, message_id)
        self.after(self.minutes(1, 6), "route call", lambda: self.route_call(ticket_id))

    def route_call(self, ticket_id: UUID) -> None:
        ticket = self.system.hotline.ticket(ticket_id)
        topic = self.system.catalogue.hotline_topic(ticket.topic)
        if topic.code == "consultation-policy":
            self.act(AnswerTicket(ticket_id=ticket_id,
                                  answer="Explained the policy to the caller"), OPERATOR)
            return
        if topic.case_category is not None and self.rng.random() < 0.3:
            case_id = self.system.operations.ticket_to_case(ticket_id, actor=OPERATOR)
            # The case goes the grid-case way; the ticket follows it to the callback.
            self.after(self.minutes(4, 25), "register case", lambda: self.register_case(case_id))
            return
        self.act(AssignTicket(ticket_id=ticket_id), OPERATOR)
        self.after(self.minutes(10, 90), "department reply", lambda: self.reply(ticket_id))

    def reply(self, ticket_id: UUID) -> None:
        ticket = self.system.hotline.ticket(ticket_id)
        department = ticket.department or "hotline"
        desk = Actor(f"{department}-desk", Role.DEPARTMENT_USER, department)
        if not ticket.returns and ticket.reopen_count == 0 and self.rng.random() < 0.08:
            # The desk says it is not its matter; the operator reviews the return.
            self.act(ReturnTicket(ticket_id=ticket_id, reason="Not our matter"), desk)
            self.after(self.minutes(5, 20), "review ticket return",
                       lambda: self.review_ticket_return(ticket_id, department))
            return
        # The desk accepts the ticket on the dashboard; its reply comes from the
        # department's system.
        self.act(AcceptTicket(ticket_id=ticket_id), desk)
        self.deliver(IngestStream.DEPARTMENT_REPORTS, messages.hotline_ticket_replied(
            ticket_id=ticket_id, reply="Handled; see the case notes", actor=desk,
            message_id=self._message_id("ticket-replied"), occurred_at=self.clock(),
        ))
        self.after(self.minutes(20, 120), "call back", lambda: self.call_back(ticket_id))

    def review_ticket_return(self, ticket_id: UUID, returned_by: str) -> None:
        if self.rng.random() < 0.4:
            self.act(ReviewTicketReturn(
                ticket_id=ticket_id, accept=False,
                reason="The topic is yours: please answer the caller"), OPERATOR)
        else:
            other = "urban-management" if returned_by != "urban-management" else "sanitation"
            self.act(ReviewTicketReturn(ticket_id=ticket_id, accept=True, department=other,
                                        reason="Re-routed"), OPERATOR)
        self.after(self.minutes(10, 90), "department reply", lambda: self.reply(ticket_id))

    def call_back(self, ticket_id: UUID) -> None:
        satisfaction = self.rng.choices(["satisfied", "basically-satisfied", "dissatisfied"],
                                        weights=[70, 20, 10])[0]
        self.act(CallBackCaller(ticket_id=ticket_id, satisfaction=Satisfaction(satisfaction)),
                 OPERATOR)
        if satisfaction == "dissatisfied":
            if self.system.hotline.ticket(ticket_id).status is TicketStatus.RETURNED:
                # Dissatisfied with the result of its case: routed again to a department.
                self.act(AssignTicket(ticket_id=ticket_id), OPERATOR)
            self.after(self.minutes(30, 120), "department reply", lambda: self.reply(ticket_id))
        else:
            self.act(CloseTicket(ticket_id=ticket_id), OPERATOR)

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
        """The IoT gateway's round of readings; a gas alarm is escalated by the dispatcher
        a few minutes after it is raised."""
        now = self.clock()
        leak = self._gas_leak_profile(now)
        leak_source = self._leak_source()
        for (city_source, sensor_id), normal in self.sensor_levels.items():
            value = normal * self.rng.uniform(0.9, 1.1)
            if city_source == leak_source and "GAS" in sensor_id and leak is not None:
                value = leak
            self.send(IngestStream.HAZARD_READINGS, messages.hazard_reading(
                source_id=self.hazard_ids[city_source], sensor_id=sensor_id, value=value,
                measured_at=now, actor=GATEWAY,
                message_id=self._message_id(f"reading:{sensor_id}"),
            ))
        if leak is None or "gas-leak" in self.incidents:
            return
        # The dispatcher sees the alarm on the dashboard once the gateway's readings are in.
        self.wait_for_messages()
        source = self.system.hazards.source(self.hazard_ids[leak_source])
        for alarm in open_alarms(source):
            if ("GAS" in alarm.sensor_id and alarm.level is AlarmLevel.ALARM
                    and alarm.alarm_id not in self._escalating):
                self._escalating.add(alarm.alarm_id)
                self.after(timedelta(minutes=3), "escalate gas alarm",
                           partial(self.escalate_gas_alarm, leak_source, alarm.alarm_id))

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
                   lambda: self.act(VerifyIncident(incident_id=incident_id,
                                                   note="Confirmed by the depot"), DISPATCHER))
        # The public warning: drafted by the duty officer, approved by a second person.
        warning = GasLeakWarning(self.system, drafter=DISPATCHER, approver=COMMANDER_DESK,
                                 incident_id=incident_id,
                                 hazard_source_id=self.hazard_ids[city_source])
        self.gas_leak_warning = warning
        self.after(timedelta(minutes=5), "draft gas leak warning", warning.draft)
        self.after(timedelta(minutes=7), "approve gas leak warning", warning.approve)
        self.after(timedelta(minutes=8), "issue gas leak warning", warning.issue)
        self.after(timedelta(minutes=36), "widen gas leak warning", warning.widen)
        self.after(timedelta(minutes=38), "approve widened warning", warning.approve)
        self.after(timedelta(minutes=39), "issue widened warning", warning.issue)
        self.after(timedelta(minutes=140), "cancel gas leak warning", warning.cancel)
        self.after(timedelta(minutes=6), "respond to gas leak",
                   lambda: self.respond(incident_id, "IV", "gas-leak",
                                        ["fire-engine", "hazmat-team"]))
        self.after(timedelta(minutes=35), "raise gas leak level",
                   lambda: self.raise_level(incident_id, "III", ["ambulance", "fire-engine"]))
        self.after(timedelta(minutes=130), "contain gas leak",
                   lambda: self.contain(incident_id))

    def accident_call(self) -> None:
        point = self._random_point()
        message_id = self._message_id("call")
        self.deliver(IngestStream.HOTLINE_TICKETS, messages.hotline_ticket(
            channel="phone", ticket_type="request-for-help", topic="traffic-accident",
            description="Two cars collided at the crossing, one driver hurt",
            caller_name="Chen Jie", caller_phone="13800001234", location=point, actor=OPERATOR,
            message_id=message_id, occurred_at=self.clock(),
        ))
        ticket_id = self._created_by(self.system.hotline, message_id)
        # The operator escalates it on the dashboard.
        incident_id = self.system.operations.ticket_to_incident(
            ticket_id, category="accident-disaster", incident_type="traffic-accident",
            title="Traffic accident with injury", level="IV", actor=OPERATOR,
        )
        self.incidents["traffic"] = incident_id
        self.after(timedelta(minutes=2), "verify accident",
                   lambda: self.act(VerifyIncident(incident_id=incident_id), DISPATCHER))
        self.after(timedelta(minutes=3), "respond to accident",
                   lambda: self.respond(incident_id, "IV", "traffic-accident",
                                        ["police-car", "ambulance"]))
        self.after(timedelta(minutes=50), "contain accident", lambda: self.contain(incident_id))

    def respond(self, incident_id: UUID, level: str, plan_code: str, kinds: list[str]) -> None:
        plan = self.system.incidents.plan_by_code(plan_code)
        self.act(RespondToIncident(incident_id=incident_id, level=level, plan_id=plan.id,
                                   reason="Plan activated"), DISPATCHER)
        self.act(AssignCommander(incident_id=incident_id, commander=COMMANDER), DISPATCHER)
        self.work_on_tasks(incident_id)
        self.send_resources(incident_id, kinds)

    def raise_level(self, incident_id: UUID, level: str, kinds: list[str]) -> None:
        self.act(AddSituationReport(
            incident_id=incident_id,
            text="Leak spreading downwind; school inside the impact zone"), DISPATCHER)
        self.act(ChangeIncidentLevel(incident_id=incident_id, level=level,
                                     reason="Impact zone includes a school"), DISPATCHER)
        self.work_on_tasks(incident_id)
        self.send_resources(incident_id, kinds)

    def work_on_tasks(self, incident_id: UUID) -> None:
        """The departments take the plan's new tasks in hand and report most of them done
        (some late); a few are never reported done."""
        incident = self.system.incidents.incident(incident_id)
        for task in incident.tasks.values():
            if task.id in self._tasks_in_hand or not task.is_open:
                continue
            self._tasks_in_hand.add(task.id)
            desk = Actor(f"{task.department}-desk", Role.DEPARTMENT_USER, task.department)
            allowance = task.due - task.assigned_at
            self.after(self.minutes(1, 5), "acknowledge incident task", partial(
                self.act, AcknowledgeTask(incident_id=incident_id, task_id=task.id), desk))
            if self.rng.random() < TASK_LEFT_OPEN_SHARE:
                continue
            self.after(allowance * self.rng.uniform(0.5, 1.3), "complete incident task", partial(
                self.act, CompleteTask(incident_id=incident_id, task_id=task.id,
                                       result="Done as the plan says"), desk))

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
            self.act(ActivateResource(resource_id=resource_id), DISPATCHER)
            return
        call_sign = resource.call_sign
        crew = Actor(f"{call_sign}-crew", Role.DEPARTMENT_USER, resource.department)
        self.report_status(call_sign, "en-route", crew)
        origin = resource.home_base
        target = self.system.incidents.incident(incident_id).location
        seconds = origin.distance_m(target) / TRAVEL_SPEED_MPS
        steps = max(1, math.ceil(seconds / POSITION_INTERVAL.total_seconds()))
        heading = _heading(origin, target)
        for step in range(1, steps + 1):
            share = step / steps
            point = GeoPoint(lon=origin.lon + (target.lon - origin.lon) * share,
                             lat=origin.lat + (target.lat - origin.lat) * share)
            self.after(POSITION_INTERVAL * step, "position fix",
                       partial(self._fix, call_sign, point, heading))
        self.after(POSITION_INTERVAL * steps + timedelta(seconds=5), "on scene",
                   partial(self.report_status, call_sign, "on-scene", crew, target))

    def report_status(self, call_sign: str, status: str, crew: Actor,
                      position: GeoPoint | None = None) -> None:
        """A status report from the crew's terminal."""
        self.deliver(IngestStream.RESOURCE_STATUS, messages.resource_status(
            call_sign=call_sign, status=status, actor=crew, position=position,
            message_id=self._message_id(f"status:{status}"), occurred_at=self.clock(),
        ))

    def _fix(self, call_sign: str, point: GeoPoint, heading: float) -> None:
        """A fix from the vehicle's tracker."""
        self.send(IngestStream.RESOURCE_POSITIONS, messages.resource_position(
            call_sign=call_sign, position=point, measured_at=self.clock(), actor=TRACKER,
            speed_mps=TRAVEL_SPEED_MPS, heading_deg=heading,
            message_id=self._message_id("position"),
        ))

    def contain(self, incident_id: UUID) -> None:
        self.act(ContainIncident(incident_id=incident_id,
                                 note="Source isolated, no further spread"), DISPATCHER)
        incident = self.system.incidents.incident(incident_id)
        for assignment in list(incident.resources):
            if assignment.released_at is None:
                self.after(self.minutes(10, 30), "resource clears scene",
                           partial(self.clear, assignment.resource_id, incident_id))
        self.after(timedelta(minutes=90), "close incident",
                   lambda: self.close_incident(incident_id))

    def clear(self, resource_id: UUID, incident_id: UUID) -> None:
        """The resource leaves the incident; the incident records it (the crew's status
        report, or the centre's release)."""
        resource = self.system.resources.resource(resource_id)
        assignments = self.system.operations.resource_assignments
        if resource.status.value == "on-scene" and resource.mobile:
            crew = Actor(f"{resource.call_sign}-crew", Role.DEPARTMENT_USER,
                         resource.department)
            self.report_status(resource.call_sign, "returning", crew)
            self.after(self.minutes(10, 25), "resource back at base",
                       partial(self.report_status, resource.call_sign, "available", crew,
                               resource.home_base))
        elif resource.status.value == "on-scene":
            assignments.deactivate(resource_id, actor=DISPATCHER)
        else:
            assignments.release(incident_id, resource_id, actor=DISPATCHER)

    def close_incident(self, incident_id: UUID) -> None:
        """The commander waives the tasks left open (with the reason), then it closes."""
        for task in self.system.incidents.incident(incident_id).open_tasks():
            self.act(WaiveTask(
                incident_id=incident_id, task_id=task.id,
                reason=f"Not needed once the incident was contained ({task.department})"),
                COMMANDER_DESK)
        self.act(CloseIncident(incident_id=incident_id, note="All units released"), DISPATCHER)
        self.after(timedelta(minutes=60), "review incident",
                   lambda: self.act(ReviewIncident(
                       incident_id=incident_id,
                       summary="Response within plan times; see the timeline"), PLANNER))


def _heading(origin: GeoPoint, target: GeoPoint) -> float:
    """Compass heading in degrees from `origin` to `target` (good enough across a city)."""
    east = (target.lon - origin.lon) * math.cos(math.radians(origin.lat))
    north = target.lat - origin.lat
    return math.degrees(math.atan2(east, north)) % 360.0


def build_demo(settings: Settings, *, seed: int, speed: float,
               today: date | None = None) -> tuple[CitySystem, DemoDay]:
    """A system on a simulated clock, with its day planned (nothing played yet)."""
    # Real time only places the simulated day (the real today); then all runs on its clock.
    clock = SimulatedClock(system_clock(), 0.0)
    system = build_system(settings, clock=clock)
    create_demo_users(system.accounts)
    local_today = today or system_clock().astimezone(system.catalogue.calendar.timezone).date()
    start = demo_day_start(system, local_today)
    # Every application holds this same clock object: restarting it sets the day for all.
    clock.restart(start, speed)
    demo = DemoDay(system, clock, start, seed)
    demo.plan()
    return system, demo


DEMO_DRILL_SPEED = 10.0
DEMO_DRILL_MORNING = timedelta(hours=4)


DEMO_DRILL_SCENARIO = "chemical-leak"
"""The shipped exercise scenario the demo's drill plays on top, where scenarios are
installed."""


def demo_drill_offer(demo: DemoDay, *, scenario: str | None = None,
                     ) -> Callable[[], dict[str, Any]]:
    """The drill the demo offers planners: its own simulated morning, replayed at 10x (as
    much of it as has happened when it is started), with `scenario` on top."""

    def offer() -> dict[str, Any]:
        end = min(demo.start + DEMO_DRILL_MORNING, demo.clock())
        return {"title": "Demo morning drill", "window_from": demo.start.isoformat(),
                "window_to": end.isoformat(), "speed": DEMO_DRILL_SPEED, "scenario": scenario,
                "participants": ["dispatcher", "duty-chief", "water", "insp-D01-01"],
                "note": "The demo's own simulated morning, replayed at 10x into a drill of "
                        "its own; the dispatcher, duty chief, water department and inspector "
                        "insp-D01-01 are invited."}

    return offer


def run_demo(settings: Settings, *, seed: int, speed: float,
             serve: Callable[..., None]) -> None:
    """Play the demo day in the background while the command centre serves it; planners
    are offered a ready drill of the demo's morning (docs/drills.md)."""
    from cityops.drills import DrillRoom

    system, demo = build_demo(settings, seed=seed, speed=speed)
    drill_room = DrillRoom(system)
    drill_room.offers.append(demo_drill_offer(
        demo, scenario=DEMO_DRILL_SCENARIO if drill_room.exercises is not None else None))
    # Printed, not logged: the one command of the README must end with a usable login.
    print(demo_logins_text(), flush=True)
    log.info("demo day starts at %s (simulated), %.0fx real time, seed %d",
             demo.start.isoformat(), speed, seed)
    player = threading.Thread(target=demo.run_in_real_time, name="cityops-demo", daemon=True)
    player.start()
    try:
        serve(settings, system, drill_room=drill_room)
    finally:
        demo.stop()
        player.join(timeout=5)
