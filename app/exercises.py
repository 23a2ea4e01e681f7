"""Playing an exercise's scenario into a system: what a drill runner calls (docs/scenarios.md).

The contract with the drill runtime, in four calls:

1. `system.exercises.parse(text)` (or `load_scenario`) reads and checks a scenario file:
   every problem listed by line in one `ScenarioInvalid`, nothing started;
   `PlanExercise` through `system.commands.handle` records the exercise (checked again);
2. `scenario.due(elapsed, delivered)`: the injects whose time has come;
3. `deliver(inject, system, ingest=..., exercise_id=...)`: the inject goes in through the SAME
   path as a real input: an inspector's report, a hotline call and a sensor reading as
   ingest messages through the ingest pipeline the embedded mode runs (validated,
   deduplicated by message id, dead-lettered if refused); a resource out of service and an
   incident report as command values through `system.commands.handle`, with the actor the
   inject names. No back door;
4. `measure(objectives, events, started_at, now)` (`domain/exercises/objectives.py`): each
   objective met / missed / pending, from the drill's events (`DrillEvents` reads them).

`ExerciseDriver` ties them together for one exercise on one system and clock (its `tick`
delivers what is due and records each delivery on the exercise); `prepare_city_registers`
fills an empty city's registers (resources, hazard sources and sensors, contingency plans)
for a scenario that starts from an empty city.
"""

from __future__ import annotations

import json
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID, uuid5

from eventsourcing.application import AggregateNotFoundError

from cityops.domain.actors import Actor, Role
from cityops.domain.application import COMMAND_NAMESPACE, CityApplication, CommandReceipt
from cityops.domain.commands import CommandContext
from cityops.domain.errors import DomainError, InvalidValue, NotFound
from cityops.domain.exercises.commands import EndExercise, PlanExercise, RecordInjectDelivery
from cityops.domain.exercises.exercise import DeliveryOutcome, Exercise
from cityops.domain.exercises.objectives import ObjectiveResult, measure, minutes_text
from cityops.domain.exercises.scenario import (
    HotlineCall,
    IncidentReport,
    Inject,
    InspectorReport,
    Objective,
    ResourceOutOfService,
    Scenario,
    SensorReading,
)
from cityops.domain.hazards.commands import AddSensor, RegisterHazardSource
from cityops.domain.hazards.source import HazardSource, ThresholdDirection
from cityops.domain.incidents.commands import DefinePlan, ReportIncident
from cityops.domain.incidents.incident import IncidentSource
from cityops.domain.incidents.plans import PlanLevel, PlanTask, ResourceRequirement
from cityops.domain.resources.commands import RegisterResource, TakeOutOfService
from cityops.domain.resources.resource import Resource
from cityops.domain.reviews.report import MeasuredObjective, Verdict
from cityops.ingest import messages
from cityops.ingest.deadletters import StoredDeadLetters
from cityops.ingest.pipeline import Delivery, IngestPipeline, Outcome
from cityops.ingest.topics import IngestStream

if TYPE_CHECKING:
    from cityops.bootstrap import CitySystem
    from cityops.domain.clock import Clock
    from cityops.domain.exercises.application import Exercises
    from cityops.domain.incidents.application import Incidents
    from cityops.domain.resources.application import Resources
    from cityops.simulator import DemoDeadLetters


class ExercisedSystem(Protocol):
    """What measuring an exercise reads of a system (live, or a drill's): its exercises,
    the incidents' and resources' events, and its clock."""

    exercises: Exercises
    incidents: Incidents
    resources: Resources

    @property
    def clock(self) -> Clock: ...

CONTROLLER = Actor("exercise-controller", Role.SYSTEM)
"""Who records what the exercise did (injects delivered, its end): the exercise's control."""
REGISTRAR = Actor("exercise-registrar", Role.ADMIN)
"""Who fills an empty city's registers at the start of an exercise."""


def load_scenario(path: Path, system: CitySystem) -> Scenario:
    """A scenario file read and checked against the system's city and catalogues."""
    return system.exercises.parse(path.read_text(encoding="utf-8"))


def shipped_scenarios() -> dict[str, str]:
    """The example scenarios shipped with CityOps, by file name."""
    folder = resources.files("cityops").joinpath("demo", "scenarios")
    return {entry.name: entry.read_text(encoding="utf-8") for entry in folder.iterdir()
            if entry.name.endswith(".yaml")}


def inject_message_id(exercise_id: UUID, inject: Inject) -> str:
    """The message (or command) id an inject is sent under: a repeat is only a repeat."""
    return f"exercise:{exercise_id}:{inject.id}"


# --- the ingest door -------------------------------------------------------------------------


class ExerciseIngest:
    """The ingest pipeline of the system (the one its embedded mode runs), applying an
    inject's message at once: the exercise learns whether it was applied or refused."""

    def __init__(self, pipeline: IngestPipeline, dead_letters: DemoDeadLetters) -> None:
        self.pipeline = pipeline
        self.dead_letters = dead_letters

    @classmethod
    def open(cls, system: CitySystem) -> ExerciseIngest:
        from cityops.ingest.composition import build_pipeline, ingest_store
        from cityops.ingest.kafka_worker import worker_name
        from cityops.simulator import DemoDeadLetters

        store = ingest_store(system)
        try:
            # Kept in the ingest store like any dead letter, and handed to the inject that
            # sent the message, so that it reports why (as the demo's steps do).
            dead_letters = DemoDeadLetters(StoredDeadLetters(store))
            pipeline = build_pipeline(system, system.settings.ingest, store, dead_letters,
                                      worker=f"exercise:{worker_name()}")
        except BaseException:
            store.close()
            raise
        return cls(pipeline, dead_letters)

    def send(self, stream: IngestStream, message: Mapping[str, Any]) -> tuple[bool, str]:
        """Apply one message: (applied, what the dead letter says if it was refused)."""
        self.dead_letters.take()
        outcome = self.pipeline.process(Delivery(
            topic=self.pipeline.topics.name(stream), value=messages.encode(message),
            key=messages.key_of(message, self.pipeline.catalogue).encode("utf-8")))
        letters = self.dead_letters.take()
        if outcome is Outcome.DEAD_LETTERED:
            reason = "; ".join(f"{letter.code}: {letter.reason}" for letter in letters)
            return False, reason or "dead-lettered"
        if outcome is Outcome.DUPLICATE:
            return True, ("nothing changed: a repeat of a message already applied, or a "
                          "reading not newer than the last one known")
        return True, ""

    def close(self) -> None:
        self.pipeline.close()


# --- delivering an inject -------------------------------------------------------------------


@dataclass(frozen=True)
class InjectResult:
    """What became of one inject: applied (and what it created or changed) or refused."""

    inject_id: str
    outcome: DeliveryOutcome
    subject: UUID | None
    detail: str


def hazard_source_ids(system: CitySystem) -> dict[str, UUID]:
    """The registered hazard sources of the system by name (their ids are the registry's,
    however they were registered: by a replayed history or by the exercise)."""
    found: dict[str, UUID] = {}
    application = system.hazards
    start = 1
    while True:
        notifications = application.recorder.select_notifications(start, 1000)
        if not notifications:
            return found
        for notification in notifications:
            if notification.topic.endswith("HazardSource.Registered"):
                event = application.mapper.to_domain_event(notification)
                if isinstance(event, HazardSource.Registered):
                    found[event.name] = event.originator_id
        start = notifications[-1].id + 1


def _receipt_subject(application: CityApplication, message_id: str) -> UUID | None:
    """The aggregate a receipted message created or changed (None: no receipt)."""
    try:
        receipt: object = application.repository.get(CommandReceipt.create_id(message_id),
                                                     version=1)
    except AggregateNotFoundError:
        return None  # the message's type keeps no receipt
    return receipt.aggregate_id if isinstance(receipt, CommandReceipt) else None


INCIDENT_SOURCES = {
    Role.INSPECTOR: IncidentSource.INSPECTOR,
    Role.HOTLINE_OPERATOR: IncidentSource.HOTLINE,
    Role.SYSTEM: IncidentSource.SENSOR,
}
"""Where an incident report comes from, by the reporter's role (else a department)."""


def deliver(inject: Inject, system: CitySystem, *, ingest: ExerciseIngest,
            exercise_id: UUID) -> InjectResult:
    """Send one inject into `system` through the path its real counterpart takes, as the
    inject's actor, at the system's clock; a refusal is an outcome, never an exception."""
    message_id = inject_message_id(exercise_id, inject)
    now = system.clock()
    content = inject.content
    try:
        if isinstance(content, InspectorReport):
            applied, why = ingest.send(IngestStream.GRID_CASE_REPORTS, messages.grid_case_report(
                category=content.category, description=content.description,
                location=content.location, urgency=content.urgency.value, source="inspector",
                actor=inject.actor, occurred_at=now, message_id=message_id))
            subject = _receipt_subject(system.grid_cases, message_id) if applied else None
        elif isinstance(content, HotlineCall):
            applied, why = ingest.send(IngestStream.HOTLINE_TICKETS, messages.hotline_ticket(
                channel=content.channel.value, ticket_type=content.ticket_type.value,
                topic=content.topic, description=content.description,
                caller_name=content.caller_name, caller_phone=content.caller_phone,
                location=content.location, actor=inject.actor, occurred_at=now,
                message_id=message_id))
            subject = _receipt_subject(system.hotline, message_id) if applied else None
        elif isinstance(content, SensorReading):
            source_id = hazard_source_ids(system).get(content.hazard_source_name)
            if source_id is None:
                return InjectResult(inject.id, DeliveryOutcome.REFUSED, None,
                                    f"hazard source {content.hazard_source_name!r} is not "
                                    "registered in this drill")
            applied, why = ingest.send(IngestStream.HAZARD_READINGS, messages.hazard_reading(
                source_id=source_id, sensor_id=content.sensor, value=content.value,
                measured_at=now, actor=inject.actor, message_id=message_id))
            subject = source_id if applied else None
        elif isinstance(content, ResourceOutOfService):
            outcome = system.commands.handle(
                TakeOutOfService(resource_id=Resource.create_id(content.call_sign),
                                 reason=content.reason),
                CommandContext(actor=inject.actor, command_id=message_id))
            applied, why, subject = True, "", outcome.subject
        else:
            assert isinstance(content, IncidentReport)
            outcome = system.commands.handle(
                ReportIncident(
                    category=content.category, incident_type=content.incident_type,
                    title=content.title, description=content.description,
                    location=content.location, level=content.level,
                    source=INCIDENT_SOURCES.get(inject.actor.role, IncidentSource.DEPARTMENT),
                    source_ref=f"exercise {exercise_id} inject {inject.id}",
                    incident_id=uuid5(COMMAND_NAMESPACE, f"incident:{message_id}")),
                CommandContext(actor=inject.actor, command_id=message_id))
            applied, why, subject = True, "", outcome.subject
    except DomainError as error:
        return InjectResult(inject.id, DeliveryOutcome.REFUSED, None, str(error))
    if not applied:
        return InjectResult(inject.id, DeliveryOutcome.REFUSED, None, why)
    return InjectResult(inject.id, DeliveryOutcome.APPLIED, subject, why)


# --- the drill's events ----------------------------------------------------------------------

MEASURED_TOPICS = ("Incident.", "Resource.Registered", "Resource.ArrivedOnScene")
"""The events objectives are measured from (the others are not decoded)."""


class DrillEvents:
    """The incidents' and resources' events of a system, read on from where the last read
    stopped (the objectives are measured over all of them each time)."""

    def __init__(self, system: ExercisedSystem) -> None:
        self.system = system
        self._positions: dict[str, int] = {}
        self._events: list[object] = []
        self._lock = threading.Lock()

    def _read(self, application: CityApplication) -> Iterator[object]:
        start = self._positions.get(application.name, 0) + 1
        while True:
            notifications = application.recorder.select_notifications(start, 1000)
            if not notifications:
                return
            for notification in notifications:
                topic = notification.topic.rsplit(":", 1)[-1]
                if topic.startswith(MEASURED_TOPICS):
                    yield application.mapper.to_domain_event(notification)
            start = notifications[-1].id + 1
            self._positions[application.name] = notifications[-1].id

    def all(self) -> list[object]:
        """Every measured event recorded so far, each stream in its order."""
        with self._lock:
            for application in (self.system.resources, self.system.incidents):
                self._events.extend(self._read(application))
            return list(self._events)


_EVENTS_OF: dict[int, tuple[weakref.ref[Any], DrillEvents]] = {}
_EVENTS_LOCK = threading.Lock()


def events_of(system: ExercisedSystem) -> DrillEvents:
    """The measured events of a system, read on incrementally by every caller in this
    process (the API's reads and the drill runner share them)."""
    with _EVENTS_LOCK:
        found = _EVENTS_OF.get(id(system))
        if found is not None and found[0]() is system:
            return found[1]
        for key in [k for k, (ref, _) in _EVENTS_OF.items() if ref() is None]:
            del _EVENTS_OF[key]
        events = DrillEvents(system)
        _EVENTS_OF[id(system)] = (weakref.ref(system), events)
        return events


# --- an empty city's registers ---------------------------------------------------------------


def prepare_city_registers(system: CitySystem, actor: Actor = REGISTRAR) -> None:
    """Register the city's resources, hazard sources with their sensors and the contingency
    plans, as a city starts from nothing (those already registered are left alone)."""
    for resource in system.city.resources:
        if system.resources.exists(Resource.create_id(resource.id)):
            continue
        system.commands.handle(RegisterResource(
            kind=resource.kind, resource_name=resource.name, call_sign=resource.id,
            department=resource.department, home_base=resource.location,
        ), CommandContext(actor=actor, command_id=f"exercise-city:resource:{resource.id}"))
    registered = hazard_source_ids(system)
    for source in system.city.hazard_sources:
        if source.name in registered:
            continue
        source_id = system.commands.handle(RegisterHazardSource(
            hazard_type=source.hazard_type, source_name=source.name,
            owner_name=source.owner_name, owner_contact=source.owner_contact,
            grade=source.grade, location=source.location,
            impact_radius_m=source.impact_radius_m, impact_zone=source.impact_zone,
        ), CommandContext(actor=actor, command_id=f"exercise-city:hazard:{source.id}")).subject
        for sensor in source.sensors:
            system.commands.handle(AddSensor(
                source_id=source_id, sensor_id=sensor.id, kind=sensor.kind, unit=sensor.unit,
                direction=ThresholdDirection(sensor.direction), warning=sensor.warning,
                alarm=sensor.alarm, label=sensor.label,
            ), CommandContext(actor=actor, command_id=f"exercise-city:sensor:{sensor.id}"))
    text = resources.files("cityops").joinpath("demo", "contingency_plans.json")
    for plan in json.loads(text.read_text(encoding="utf-8"))["plans"]:
        try:
            system.incidents.plan_by_code(plan["code"])
            continue
        except NotFound:
            pass
        levels = tuple(
            PlanLevel(level=level["level"],
                      tasks=tuple(PlanTask(department=t["department"],
                                           description=t["description"],
                                           allowance=timedelta(minutes=t["allowance_minutes"]))
                                  for t in level["tasks"]),
                      resources=tuple(ResourceRequirement(kind=r["kind"], count=r["count"])
                                      for r in level["resources"]))
            for level in plan["levels"])
        system.commands.handle(DefinePlan(
            code=plan["code"], plan_name=plan["name"], category=plan["category"],
            incident_types=tuple(plan["incident_types"]), levels=levels,
        ), CommandContext(actor=actor, command_id=f"exercise-city:plan:{plan['code']}"))


# --- one exercise, played ---------------------------------------------------------------------


class ExerciseDriver:
    """Plays one exercise into one system as its clock runs: `tick` delivers the injects
    that are due and records each on the exercise; `objectives` measures them now."""

    def __init__(self, system: CitySystem, exercise_id: UUID, *, ingest: ExerciseIngest,
                 controller: Actor = CONTROLLER) -> None:
        self.system = system
        self.exercise_id = exercise_id
        self.ingest = ingest
        self.controller = controller
        exercise = system.exercises.exercise(exercise_id)
        self.started_at: datetime = exercise.started_at
        self.scenario = system.exercises.parse(exercise.scenario_text)
        self.objective_list: list[Objective] = system.exercises.objectives(exercise_id)
        self.events = events_of(system)

    @classmethod
    def start(cls, system: CitySystem, scenario_text: str, *, actor: Actor,
              ingest: ExerciseIngest, drill_id: str | None = None,
              command_id: str | None = None) -> ExerciseDriver:
        """Check the scenario, fill an empty city's registers if it starts from one, and
        plan the exercise from now (refused with `ScenarioInvalid` before anything)."""
        scenario = system.exercises.parse(scenario_text)
        if scenario.start.kind.value == "empty":
            prepare_city_registers(system)
        outcome = system.commands.handle(
            PlanExercise(scenario_text=scenario_text, drill_id=drill_id,
                         started_at=system.clock()),
            CommandContext(actor=actor, command_id=command_id))
        return cls(system, outcome.subject, ingest=ingest)

    @property
    def exercise(self) -> Exercise:
        return self.system.exercises.exercise(self.exercise_id)

    def elapsed(self) -> timedelta:
        return self.system.clock() - self.started_at

    def delivered(self) -> frozenset[str]:
        return frozenset(self.exercise.deliveries)

    def due(self) -> list[Inject]:
        return self.scenario.due(self.elapsed(), self.delivered())

    def tick(self) -> list[InjectResult]:
        """Deliver every inject whose time has come, in order, and record each."""
        results = []
        for inject in self.due():
            result = deliver(inject, self.system, ingest=self.ingest,
                             exercise_id=self.exercise_id)
            self.system.commands.handle(RecordInjectDelivery(
                exercise_id=self.exercise_id, inject_id=inject.id, outcome=result.outcome,
                subject=result.subject, detail=result.detail[:4000]),
                CommandContext(actor=self.controller))
            results.append(result)
        return results

    def next_inject_at(self) -> datetime | None:
        """When the next undelivered inject is due (None: all delivered)."""
        done = self.delivered()
        waiting = [i for i in self.scenario.injects if i.id not in done]
        return self.started_at + waiting[0].offset if waiting else None

    def ends_at(self) -> datetime:
        return self.started_at + self.scenario.duration

    def objectives(self, now: datetime | None = None) -> list[ObjectiveResult]:
        """Each objective met / missed / pending now, from the drill's events."""
        return measure(self.objective_list, self.events.all(), self.started_at,
                       now if now is not None else self.system.clock())

    def end(self, note: str = "") -> None:
        self.system.commands.handle(EndExercise(exercise_id=self.exercise_id, note=note),
                                    CommandContext(actor=self.controller))


def exercise_status(system: ExercisedSystem, exercise_id: UUID,
                    events: Sequence[object] | None = None,
                    now: datetime | None = None) -> dict[str, Any]:
    """An exercise as the API and the drill screen show it: its summary, and each
    objective's live measure beside its ratings (as of `now`, default the system's clock;
    an ended exercise as of its end)."""
    exercise = system.exercises.exercise(exercise_id)
    objectives = [Objective.from_dict(o) for o in exercise.objectives]
    now = now if now is not None else system.clock()
    measured = {r.objective_id: r for r in measure(
        objectives, events if events is not None else events_of(system).all(),
        exercise.started_at, min(now, exercise.ended_at or now))}
    summary = exercise.summary()
    for objective in summary["objectives"]:
        objective["measure"] = measured[objective["id"]].as_dict()
    return summary


def measured_objectives(system: ExercisedSystem, *, incident_id: UUID | None = None,
                        now: datetime | None = None) -> list[MeasuredObjective]:
    """The objectives of every exercise played in `system`, measured from its events, with
    each one's latest rating, as the after-action reviews show them (live history plays no
    exercise: none). With `incident_id`: only those measured on that incident."""
    exercise_ids = system.exercises.exercise_ids()
    if not exercise_ids:
        return []
    events = events_of(system).all()
    found = []
    for exercise_id in exercise_ids:
        for objective in exercise_status(system, exercise_id, events, now)["objectives"]:
            result = objective["measure"]
            if incident_id is not None and result["incident_id"] != str(incident_id):
                continue
            latest = objective["ratings"][-1] if objective["ratings"] else None
            measured = result["measured_s"]
            found.append(MeasuredObjective(
                name=objective["description"],
                target=minutes_text(timedelta(seconds=objective["within_s"])),
                measured=(minutes_text(timedelta(seconds=measured))
                          if measured is not None else None),
                verdict=Verdict(result["status"]),
                rating=(f"{latest['rating']}: {latest['meaning']}"
                        if latest is not None else None),
                observations=latest["observations"] if latest is not None else ""))
    return found




# --- an exercise on top of a drill ----------------------------------------------------------


def exercise_id_of_drill(drill_id: UUID) -> UUID:
    """The exercise a drill plays (one per drill: its id follows from the drill's)."""
    return uuid5(COMMAND_NAMESPACE, f"drill-exercise:{drill_id}")


class DrillExercise:
    """A scenario played on top of a drill, as the drill runner calls it after each step
    (`deliver_due`, `measure`, with the drill's system and clock). The exercise is planned
    in the drill's own store at its first call (again after a restart: a repeat), starting
    at the drill's start; an empty-city scenario gets the city's registers first."""

    def __init__(self, scenario_text: str, scenario: Scenario, drill_id: UUID,
                 started_at: datetime, *, planner: Actor = CONTROLLER) -> None:
        self.scenario_text = scenario_text
        self.scenario = scenario
        self.drill_id = drill_id
        self.started_at = started_at
        self.planner = planner
        self.exercise_id = exercise_id_of_drill(drill_id)
        self._lock = threading.Lock()

    def _planned(self, system: CitySystem) -> None:
        if system.exercises.exists(self.exercise_id):
            return
        if self.scenario.start.kind.value == "empty":
            prepare_city_registers(system)
        system.commands.handle(
            PlanExercise(scenario_text=self.scenario_text, drill_id=str(self.drill_id),
                         started_at=self.started_at, exercise_id=self.exercise_id),
            CommandContext(actor=self.planner, command_id=f"drill:{self.drill_id}:exercise"))

    def deliver_due(self, system: CitySystem, drill_time: datetime) -> int:
        """Deliver the injects due up to `drill_time` through the drill system's ingest and
        command paths, each recorded on the exercise; returns how many went in."""
        with self._lock:
            self._planned(system)
            exercise = system.exercises.exercise(self.exercise_id)
            if exercise.status.value != "running":
                return 0
            due = self.scenario.due(drill_time - self.started_at, frozenset(exercise.deliveries))
            if not due:
                return 0
            ingest = ExerciseIngest.open(system)
            try:
                for inject in due:
                    result = deliver(inject, system, ingest=ingest,
                                     exercise_id=self.exercise_id)
                    system.commands.handle(RecordInjectDelivery(
                        exercise_id=self.exercise_id, inject_id=inject.id,
                        outcome=result.outcome, subject=result.subject,
                        detail=result.detail[:4000]), CommandContext(actor=CONTROLLER))
            finally:
                ingest.close()
            return len(due)

    def next_due_at(self, system: CitySystem) -> datetime | None:
        """When the next inject not yet delivered is due (None: none left): a runner that
        replays faster than real time stops there, so that the inject goes in at its time
        and not at the end of a long batch."""
        with self._lock:
            self._planned(system)
            done = system.exercises.exercise(self.exercise_id).deliveries
        waiting = [i for i in self.scenario.injects if i.id not in done]
        return self.started_at + waiting[0].offset if waiting else None

    def measure(self, system: CitySystem, drill_time: datetime) -> list[dict[str, Any]]:
        """The objectives as measured from the drill's own events up to `drill_time`, each
        with its ratings so far."""
        with self._lock:
            self._planned(system)
            status = exercise_status(system, self.exercise_id, events_of(system).all(),
                                     now=drill_time)
        objectives: list[dict[str, Any]] = status["objectives"]
        return objectives


def scenario_text(name: str, folder: Path | None = None) -> str:
    """The text of a scenario by name: one of the shipped examples (`chemical-leak`,
    `typhoon.yaml`), or a file of `folder` (by its name only: never a path)."""
    file_name = name if name.endswith(".yaml") else f"{name}.yaml"
    if "/" in file_name or "\\" in file_name or file_name.startswith("."):
        raise InvalidValue(f"scenario {name!r}: give a scenario's name, not a path")
    if folder is not None and (folder / file_name).is_file():
        return (folder / file_name).read_text(encoding="utf-8")
    shipped = shipped_scenarios()
    if file_name in shipped:
        return shipped[file_name]
    known = sorted(n.removesuffix(".yaml") for n in shipped)
    if folder is not None:
        known += sorted(p.stem for p in folder.glob("*.yaml"))
    raise InvalidValue(f"unknown scenario {name!r} (known: {', '.join(known)})")


def drill_exercises(live: CitySystem, folder: Path | None = None
                    ) -> Callable[[str, str | None, UUID, datetime], DrillExercise]:
    """The drill room's exercise factory: a scenario by name, or the planner's own file's
    text, checked against the city (a refusal lists every problem by line, before the drill
    starts), for a drill that starts at a drill time."""

    def make(name: str, own_text: str | None, drill_id: UUID,
             started_at: datetime) -> DrillExercise:
        text = own_text if own_text is not None else scenario_text(name, folder)
        return DrillExercise(text, live.exercises.parse(text), drill_id, started_at)

    return make
