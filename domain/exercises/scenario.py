"""The scenario file of an exercise (what exercise planners call the master scenario events
list, MSEL): YAML, `version: 1`, its injects at offsets from the drill's start and its
objectives with targets (docs/scenarios.md tells the format).

`parse_scenario` reads and checks a whole file against the city and the catalogues before
anything starts: every problem found (bad YAML, a missing field, an unknown category, a
place outside the city, an offset out of order, an unknown objective kind...) is listed with
its line in one `ScenarioInvalid`, so a planner fixes the file in one go. A `Scenario` that
exists is valid: its injects can be delivered and its objectives measured.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from cityops.domain.actors import Actor, Role
from cityops.domain.catalogue import Catalogue, Urgency
from cityops.domain.errors import InvalidValue
from cityops.domain.geometry import GeoPoint
from cityops.domain.hotline.ticket import Channel, TicketType

FORMAT_VERSION = 1
"""The scenario format this code reads (`version:` in the file)."""
MAX_SCENARIO_BYTES = 1024 * 1024
MAX_OFFSET = timedelta(days=7)
"""No drill lasts longer: an offset or a target beyond it is a typing error."""


class ScenarioProblem:
    """One thing wrong in a scenario file, at its line (1 is the first line)."""

    __slots__ = ("line", "message")

    def __init__(self, line: int, message: str) -> None:
        self.line = line
        self.message = message

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, ScenarioProblem)
                and (self.line, self.message) == (other.line, other.message))

    def __hash__(self) -> int:
        return hash((self.line, self.message))

    def __repr__(self) -> str:
        return f"ScenarioProblem({self.line}, {self.message!r})"

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "message": self.message}


class ScenarioInvalid(InvalidValue):
    """A scenario file is refused: every problem found, each with its line. Nothing of the
    exercise has started."""

    def __init__(self, problems: Sequence[ScenarioProblem]) -> None:
        self.problems = tuple(sorted(problems, key=lambda p: p.line))
        count = len(self.problems)
        listed = "; ".join(str(p) for p in self.problems)
        super().__init__(f"the scenario is refused ({count} problem"
                         f"{'' if count == 1 else 's'}): {listed}")


# --- what a scenario is -----------------------------------------------------------------------


class InjectKind(StrEnum):
    """What an inject puts into the drill, and through which path real inputs come."""

    INSPECTOR_REPORT = "inspector-report"
    """A grid inspector's report (ingest: grid-case report)."""
    HOTLINE_CALL = "hotline-call"
    """A call on the service hotline (ingest: hotline ticket)."""
    SENSOR_READING = "sensor-reading"
    """A hazard source's sensor reading, e.g. crossing its alarm threshold (ingest)."""
    RESOURCE_OUT_OF_SERVICE = "resource-out-of-service"
    """A resource breaks down (command: resource.take-out-of-service)."""
    INCIDENT_REPORT = "incident-report"
    """An incident reported at a place (command: incident.report)."""


class ObjectiveKind(StrEnum):
    """What an objective measures, from the drill's own events."""

    INCIDENT_VERIFIED = "incident-verified"
    """The incident is verified within the target of its first report."""
    PLAN_ACTIVATED = "plan-activated"
    """A contingency plan is activated for the incident within the target."""
    RESOURCE_ON_SCENE = "resource-on-scene"
    """The first resource of a kind (a fire engine...) is on scene within the target."""
    TASKS_ACKNOWLEDGED = "tasks-acknowledged"
    """Every task of the incident's activated plans is acknowledged within the target of
    its assignment."""


class StartKind(StrEnum):
    """What the injects are played on top of."""

    EMPTY = "empty"
    """An empty city: only its registers (resources, hazard sources, plans)."""
    REPLAY = "replay"
    """A window of real history replayed into the drill."""


@dataclass(frozen=True)
class ScenarioStart:
    kind: StartKind
    replay_from: datetime | None = None
    replay_to: datetime | None = None


@dataclass(frozen=True)
class InspectorReport:
    category: str
    description: str
    location: GeoPoint
    urgency: Urgency


@dataclass(frozen=True)
class HotlineCall:
    channel: Channel
    ticket_type: TicketType
    topic: str
    description: str
    location: GeoPoint | None
    caller_name: str | None
    caller_phone: str | None


@dataclass(frozen=True)
class SensorReading:
    hazard_source: str
    """The hazard source's id in the city's inventory (HS-01...)."""
    hazard_source_name: str
    sensor: str
    value: float


@dataclass(frozen=True)
class ResourceOutOfService:
    call_sign: str
    reason: str


@dataclass(frozen=True)
class IncidentReport:
    category: str
    incident_type: str
    level: str | None
    title: str
    description: str
    location: GeoPoint


InjectContent = InspectorReport | HotlineCall | SensorReading | ResourceOutOfService | \
    IncidentReport


@dataclass(frozen=True)
class Inject:
    """One line of the MSEL: at `offset` from the drill's start, `content` enters the
    drill as `actor` would send it."""

    id: str
    offset: timedelta
    kind: InjectKind
    actor: Actor
    content: InjectContent
    line: int
    note: str = ""
    """The controller's note (what the inject is meant to test); never sent."""

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "offset_s": self.offset.total_seconds(), "kind": self.kind.value,
                "actor": self.actor.as_dict(), "note": self.note, "line": self.line}


@dataclass(frozen=True)
class IncidentFilter:
    """Which incident an objective is about (the first reported that matches)."""

    category: str | None = None
    incident_type: str | None = None
    level: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {"category": self.category, "type": self.incident_type, "level": self.level}


@dataclass(frozen=True)
class Objective:
    """An exercise objective with its target, measured from the drill's events."""

    id: str
    kind: ObjectiveKind
    description: str
    within: timedelta
    incident: IncidentFilter
    line: int
    resource_kind: str | None = None
    since_inject: str | None = None
    """Measured from this inject's delivery instead of the incident's report."""
    since_offset: timedelta | None = None
    """That inject's offset from the drill's start."""

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind.value, "description": self.description,
                "within_s": self.within.total_seconds(), "incident": self.incident.as_dict(),
                "resource_kind": self.resource_kind, "since_inject": self.since_inject,
                "since_offset_s": (self.since_offset.total_seconds()
                                   if self.since_offset is not None else None),
                "line": self.line}

    @classmethod
    def from_dict(cls, fact: Mapping[str, Any]) -> Objective:
        """The objective as an exercise's event keeps it (`as_dict`)."""
        incident = fact["incident"]
        since = fact.get("since_offset_s")
        return cls(id=fact["id"], kind=ObjectiveKind(fact["kind"]),
                   description=fact["description"], within=timedelta(seconds=fact["within_s"]),
                   incident=IncidentFilter(category=incident.get("category"),
                                           incident_type=incident.get("type"),
                                           level=incident.get("level")),
                   line=int(fact.get("line", 0)), resource_kind=fact.get("resource_kind"),
                   since_inject=fact.get("since_inject"),
                   since_offset=timedelta(seconds=since) if since is not None else None)


@dataclass(frozen=True)
class Scenario:
    """A valid scenario: its injects in the order of their offsets, its objectives."""

    title: str
    description: str
    start: ScenarioStart
    injects: tuple[Inject, ...]
    objectives: tuple[Objective, ...]
    duration: timedelta
    """How long the exercise runs from the drill's start."""
    digest: str
    """SHA-256 of the file's text: which file the exercise was played from."""
    version: int = FORMAT_VERSION
    text: str = field(default="", repr=False, compare=False)

    def due(self, elapsed: timedelta, delivered: Sequence[str] | frozenset[str] = ()
            ) -> list[Inject]:
        """The injects whose time has come at `elapsed` from the drill's start and that are
        not `delivered` yet, in order."""
        done = set(delivered)
        return [i for i in self.injects if i.offset <= elapsed and i.id not in done]

    def inject(self, inject_id: str) -> Inject:
        for inject in self.injects:
            if inject.id == inject_id:
                return inject
        raise InvalidValue(f"the scenario has no inject {inject_id!r}")


# --- what the city offers to check against ----------------------------------------------------


@dataclass(frozen=True)
class SensorRef:
    id: str
    direction: str
    warning: float
    alarm: float
    unit: str


@dataclass(frozen=True)
class HazardSourceRef:
    id: str
    name: str
    sensors: Mapping[str, SensorRef]


@dataclass(frozen=True)
class ResourceRef:
    call_sign: str
    kind: str
    department: str


class CityReference(Protocol):
    """What a scenario is checked against in the city (`cityops.exercises` builds it from
    the city's map, gazetteer and inventory)."""

    def place(self, name: str) -> GeoPoint | None:
        """The point of a place of the gazetteer with exactly this name (None: none)."""

    def places_like(self, name: str) -> list[str]:
        """Names of places that look like `name` (to suggest)."""

    def in_city(self, point: GeoPoint) -> bool:
        """Whether the point is inside the city's boundary."""

    def hazard_source(self, name_or_id: str) -> HazardSourceRef | None:
        """A hazard source of the inventory by id or name."""

    def resource(self, call_sign: str) -> ResourceRef | None:
        """A resource of the inventory by call sign."""


@dataclass(frozen=True)
class ScenarioReference:
    """The catalogues and the city a scenario refers to."""

    catalogue: Catalogue
    city: CityReference


# --- reading ----------------------------------------------------------------------------------

TOP_FIELDS = frozenset({"version", "title", "description", "start", "duration",
                        "objectives", "injects"})
INJECT_COMMON = frozenset({"id", "at", "kind", "actor", "note"})
INJECT_FIELDS: dict[InjectKind, frozenset[str]] = {
    InjectKind.INSPECTOR_REPORT: frozenset({"category", "description", "place", "urgency"}),
    InjectKind.HOTLINE_CALL: frozenset({"channel", "ticket_type", "topic", "description",
                                        "place", "caller"}),
    InjectKind.SENSOR_READING: frozenset({"hazard_source", "sensor", "value", "crosses"}),
    InjectKind.RESOURCE_OUT_OF_SERVICE: frozenset({"resource", "reason"}),
    InjectKind.INCIDENT_REPORT: frozenset({"category", "type", "level", "title",
                                           "description", "place"}),
}
DEFAULT_ACTORS: dict[InjectKind, Actor] = {
    InjectKind.INSPECTOR_REPORT: Actor("exercise-inspector", Role.INSPECTOR),
    InjectKind.HOTLINE_CALL: Actor("exercise-hotline", Role.HOTLINE_OPERATOR),
    InjectKind.SENSOR_READING: Actor("exercise-sensor-gateway", Role.SYSTEM),
    InjectKind.RESOURCE_OUT_OF_SERVICE: Actor("exercise-control", Role.DISPATCHER),
    InjectKind.INCIDENT_REPORT: Actor("exercise-control", Role.DEPARTMENT_USER,
                                      "emergency-management"),
}
"""Who sends an inject that names no actor: the role that sends such an input for real (a
resource's breakdown: its own department's desk, see `_Reader.content`)."""
OBJECTIVE_COMMON = frozenset({"id", "kind", "description", "within", "incident", "since"})
OBJECTIVE_FIELDS: dict[ObjectiveKind, frozenset[str]] = {
    ObjectiveKind.INCIDENT_VERIFIED: frozenset(),
    ObjectiveKind.PLAN_ACTIVATED: frozenset(),
    ObjectiveKind.RESOURCE_ON_SCENE: frozenset({"resource_kind"}),
    ObjectiveKind.TASKS_ACKNOWLEDGED: frozenset(),
}
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_CLOCK = re.compile(r"^(\d+):([0-5]\d)(?::([0-5]\d))?$")
_UNITS = re.compile(r"^(?:(\d+)\s*h)?\s*(?:(\d+)\s*m(?:in)?)?\s*(?:(\d+)\s*s)?$")


NULL_TAG = "tag:yaml.org,2002:null"
BOOL_TAG = "tag:yaml.org,2002:bool"
PLAIN_TAGS = frozenset({"tag:yaml.org,2002:str", "tag:yaml.org,2002:int",
                        "tag:yaml.org,2002:float", "tag:yaml.org,2002:timestamp", NULL_TAG,
                        BOOL_TAG})
"""The scalars a scenario takes: YAML's own (no `!!python/...`, `!!binary` or local tags)."""
_UNREADABLE = object()
"""A scalar that could not be read (its problem is already listed)."""


def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1


def parse_duration_text(text: str) -> timedelta | None:
    """A duration as a scenario writes it: minutes (`12`), `H:MM[:SS]` or `1h30m`, `90s`,
    `12m`; None if it is none of those."""
    text = text.strip()
    if text.isdigit():
        return timedelta(minutes=int(text))
    clock = _CLOCK.match(text)
    if clock:
        hours, minutes, seconds = clock.groups()
        return timedelta(hours=int(hours), minutes=int(minutes), seconds=int(seconds or 0))
    units = _UNITS.match(text)
    if units and text and any(units.groups()):
        hours, minutes, seconds = (int(g or 0) for g in units.groups())
        return timedelta(hours=hours, minutes=minutes, seconds=seconds)
    return None


class _Reader:
    """Walks the YAML node tree, collecting every problem with its line."""

    def __init__(self, reference: ScenarioReference) -> None:
        self.reference = reference
        self.problems: list[ScenarioProblem] = []
        self._loader: yaml.SafeLoader | None = None

    def problem(self, node: Node | int, message: str) -> None:
        line = node if isinstance(node, int) else _line(node)
        self.problems.append(ScenarioProblem(line, message))

    # structure

    def mapping(self, node: Node, what: str, allowed: frozenset[str] | None
                ) -> dict[str, tuple[Node, Node]] | None:
        """The fields of a mapping node by name (key node, value node); unknown and repeated
        fields are problems. None if the node is not a mapping."""
        if not isinstance(node, MappingNode):
            self.problem(node, f"{what} must be a mapping of fields")
            return None
        fields: dict[str, tuple[Node, Node]] = {}
        for key, value in node.value:
            if not isinstance(key, ScalarNode):
                self.problem(key, f"{what} has a field name that is not text")
                continue
            name = str(key.value)
            if name in fields:
                self.problem(key, f"{what} has the field {name!r} twice")
                continue
            if allowed is not None and name not in allowed:
                known = ", ".join(sorted(allowed))
                self.problem(key, f"{what} has an unknown field {name!r} (known: {known})")
                continue
            fields[name] = (key, value)
        return fields

    def require(self, fields: dict[str, tuple[Node, Node]], name: str, owner: Node,
                what: str) -> Node | None:
        found = fields.get(name)
        if found is None:
            self.problem(owner, f"{what} is missing the field {name!r}")
            return None
        return found[1]

    def scalar(self, node: Node, what: str) -> Any:
        """A scalar's value as YAML reads it; `_UNREADABLE` (and a problem) for a value of a
        tag this format does not take, or one YAML cannot construct (a 30th of February)."""
        assert self._loader is not None
        if node.tag not in PLAIN_TAGS:
            self.problem(node, f"{what} has the tag {node.tag!r}, which a scenario does not "
                               "take")
            return _UNREADABLE
        try:
            return self._loader.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, OverflowError) as error:
            self.problem(node, f"{what} {node.value!r} is not a valid value: {error}")
            return _UNREADABLE

    def text(self, node: Node | None, what: str, *, limit: int = 4000) -> str | None:
        if node is None:
            return None
        if not isinstance(node, ScalarNode):
            self.problem(node, f"{what} must be text")
            return None
        if node.tag not in PLAIN_TAGS:
            self.scalar(node, what)
            return None
        # Text as written: `yes` or `2026-06-01` in a description is text, not a value.
        text = "" if node.tag == NULL_TAG else str(node.value).strip()
        if not text:
            self.problem(node, f"{what} must not be empty")
            return None
        if len(text) > limit:
            self.problem(node, f"{what} is longer than {limit} characters")
            return None
        return text

    def duration(self, node: Node | None, what: str) -> timedelta | None:
        if node is None:
            return None
        if not isinstance(node, ScalarNode):
            self.problem(node, f"{what} must be a duration such as 12m, 1h30m or 0:45")
            return None
        found = parse_duration_text(str(node.value))
        if found is None:
            self.problem(node, f"{what} {node.value!r} is not a duration (write minutes, "
                               "12m, 1h30m, 90s or H:MM)")
            return None
        if found > MAX_OFFSET:
            self.problem(node, f"{what} {node.value!r} is longer than a drill (7 days)")
            return None
        return found

    def number(self, node: Node | None, what: str) -> float | None:
        if node is None:
            return None
        value = self.scalar(node, what) if isinstance(node, ScalarNode) else None
        if value is _UNREADABLE:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(
                float(value)):
            self.problem(node, f"{what} must be a number")
            return None
        return float(value)

    def instant(self, node: Node | None, what: str) -> datetime | None:
        if node is None:
            return None
        value = self.scalar(node, what) if isinstance(node, ScalarNode) else None
        if value is _UNREADABLE:
            return None
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value)
            except ValueError:
                value = None
        if not isinstance(value, datetime):
            self.problem(node, f"{what} must be an ISO 8601 instant with a time zone")
            return None
        if value.tzinfo is None:
            self.problem(node, f"{what} {node.value!r} has no time zone")
            return None
        return value

    def code(self, node: Node | None, what: str, known: Mapping[str, Any] | Sequence[str]
             ) -> str | None:
        text = self.text(node, what, limit=200)
        if text is None or node is None:
            return None
        if text not in known:
            listed = ", ".join(sorted(known)) if len(known) <= 40 else f"{len(known)} codes"
            self.problem(node, f"unknown {what} {text!r} (known: {listed})")
            return None
        return text

    def choice(self, node: Node | None, what: str, enum: type[StrEnum]) -> Any:
        return (None if node is None else
                enum(found) if (found := self.code(node, what, [e.value for e in enum]))
                else None)

    def place(self, node: Node | None, what: str) -> GeoPoint | None:
        """A place: a gazetteer name, `[lon, lat]` or `{lon: .., lat: ..}`, inside the city."""
        if node is None:
            return None
        point: GeoPoint | None = None
        city = self.reference.city
        if isinstance(node, ScalarNode):
            name = self.text(node, what)
            if name is None:
                return None
            point = city.place(name)
            if point is None:
                like = city.places_like(name)
                hint = f"; did you mean {', '.join(repr(n) for n in like)}?" if like else ""
                self.problem(node, f"{what} {name!r} is not a place of the city's "
                                   f"gazetteer{hint}")
                return None
            if not city.in_city(point):
                self.problem(node, f"{what} {name!r} is outside the city")
                return None
            return point
        values: list[Node]
        if isinstance(node, SequenceNode):
            values = list(node.value)
        elif isinstance(node, MappingNode):
            fields = self.mapping(node, what, frozenset({"lon", "lat"}))
            if fields is None:
                return None
            if "lon" not in fields or "lat" not in fields:
                self.problem(node, f"{what} needs both lon and lat")
                return None
            values = [fields["lon"][1], fields["lat"][1]]
        else:
            self.problem(node, f"{what} must be a place name or [lon, lat]")
            return None
        if len(values) != 2:
            self.problem(node, f"{what} must be [lon, lat]: two numbers")
            return None
        lon, lat = (self.number(v, f"{what}'s {axis}")
                    for v, axis in zip(values, ("longitude", "latitude"), strict=True))
        if lon is None or lat is None:
            return None
        if not (-180 <= lon <= 180 and -90 <= lat <= 90):
            self.problem(node, f"{what} [{lon}, {lat}] is not a longitude and latitude")
            return None
        point = GeoPoint(lon=lon, lat=lat)
        if not city.in_city(point):
            self.problem(node, f"{what} [{lon}, {lat}] is outside the city")
            return None
        return point

    def actor(self, node: Node | None, kind: InjectKind) -> Actor:
        default = DEFAULT_ACTORS[kind]
        if node is None:
            return default
        fields = self.mapping(node, "the inject's actor",
                              frozenset({"user", "role", "department"}))
        if fields is None:
            return default
        user = self.text(fields["user"][1] if "user" in fields else None, "actor user",
                         limit=200)
        role_node = fields["role"][1] if "role" in fields else None
        role = self.choice(role_node, "actor role", Role) if role_node else default.role
        department = (self.code(fields["department"][1], "department",
                                self.reference.catalogue.departments)
                      if "department" in fields else None)
        if user is None and "user" not in fields:
            self.problem(node, "the inject's actor is missing the field 'user'")
        if user is None or role is None:
            return default
        if role is Role.DEPARTMENT_USER and department is None:
            if "department" not in fields:
                self.problem(node, "a department user needs a department")
            return default
        return Actor(user, role, department)

    # the file

    def read(self, text: str) -> Scenario | None:
        try:
            loader = yaml.SafeLoader(text)
            self._loader = loader
            try:
                root = loader.get_single_node()
            finally:
                loader.dispose()
        except yaml.MarkedYAMLError as error:
            mark = error.problem_mark or error.context_mark
            line = int(mark.line) + 1 if mark is not None else 1
            context = f" ({error.context})" if error.context else ""
            self.problem(line, f"not valid YAML: {error.problem or error}{context}")
            return None
        except yaml.YAMLError as error:
            self.problem(1, f"not valid YAML: {error}")
            return None
        except RecursionError:
            self.problem(1, "not valid YAML for a scenario: nested too deeply")
            return None
        if root is None:
            self.problem(1, "the scenario file is empty")
            return None
        top = self.mapping(root, "the scenario", TOP_FIELDS)
        if top is None:
            return None
        version_node = self.require(top, "version", root, "the scenario")
        if version_node is not None:
            version = (self.scalar(version_node, "version")
                       if isinstance(version_node, ScalarNode) else None)
            if version is _UNREADABLE:
                return None
            if version != FORMAT_VERSION or isinstance(version, bool):
                self.problem(version_node, f"version {getattr(version_node, 'value', '?')!r} "
                                           f"is not a scenario format this CityOps reads "
                                           f"(version: {FORMAT_VERSION})")
                # Another version's fields mean other things: stop at the version.
                return None
        title = self.text(self.require(top, "title", root, "the scenario"), "title", limit=200)
        description = self.text(top["description"][1], "description") if "description" in top \
            else ""
        start = self.start(top["start"][1]) if "start" in top else ScenarioStart(StartKind.EMPTY)
        injects = self.injects(self.require(top, "injects", root, "the scenario"))
        objectives = self.objectives(top["objectives"][1], injects) if "objectives" in top \
            else []
        duration = self.duration(top["duration"][1], "duration") if "duration" in top else None
        last = max((i.offset for i in injects), default=timedelta())
        if duration is None:
            longest = max((o.within for o in objectives), default=timedelta())
            duration = last + longest
        elif duration < last:
            self.problem(top["duration"][1], f"the duration {duration} ends before the last "
                                              f"inject (at {last})")
        if self.problems or title is None or start is None:
            return None
        return Scenario(title=title, description=description or "", start=start,
                        injects=tuple(injects), objectives=tuple(objectives),
                        duration=duration, digest=hashlib.sha256(text.encode()).hexdigest(),
                        text=text)

    def start(self, node: Node) -> ScenarioStart | None:
        if isinstance(node, ScalarNode):
            kind = self.choice(node, "start", StartKind)
            if kind is StartKind.REPLAY:
                self.problem(node, "a replayed start needs its window: start: {replay: "
                                   "{from: ..., to: ...}}")
                return None
            return ScenarioStart(kind) if kind is not None else None
        fields = self.mapping(node, "start", frozenset({"replay"}))
        if fields is None:
            return None
        replay = self.require(fields, "replay", node, "start")
        if replay is None:
            return None
        window = self.mapping(replay, "the replayed window", frozenset({"from", "to"}))
        if window is None:
            return None
        begin = self.instant(self.require(window, "from", replay, "the replayed window"),
                             "the window's start")
        end = self.instant(self.require(window, "to", replay, "the replayed window"),
                           "the window's end")
        if begin is not None and end is not None and end <= begin:
            self.problem(window["to"][1], "the replayed window ends before it starts")
            return None
        return ScenarioStart(StartKind.REPLAY, begin, end)

    def injects(self, node: Node | None) -> list[Inject]:
        if node is None:
            return []
        if not isinstance(node, SequenceNode):
            self.problem(node, "injects must be a list")
            return []
        if not node.value:
            self.problem(node, "injects must list at least one inject")
        found: list[Inject] = []
        seen: dict[str, int] = {}
        previous: tuple[timedelta, Node] | None = None
        for number, item in enumerate(node.value, start=1):
            what = f"inject {number}"
            fields = self.mapping(item, what, None)
            if fields is None:
                continue
            inject_id = (self.text(fields["id"][1], f"{what}'s id", limit=64)
                         if "id" in fields else f"{number}")
            if inject_id is not None and "id" in fields:
                if not ID_PATTERN.match(inject_id):
                    self.problem(fields["id"][1], f"{what}'s id {inject_id!r} must be letters, "
                                                  "digits, '.', '_' or '-'")
                what = f"inject {inject_id!r}"
            if inject_id is not None:
                if inject_id in seen:
                    self.problem(fields["id"][1] if "id" in fields else item,
                                 f"two injects have the id {inject_id!r} (also line "
                                 f"{seen[inject_id]})")
                seen.setdefault(inject_id, _line(item))
            offset_node = self.require(fields, "at", item, what)
            offset = self.duration(offset_node, f"{what}'s time 'at'")
            if offset is not None and offset_node is not None:
                if previous is not None and offset < previous[0]:
                    self.problem(offset_node, f"{what} at {offset} is out of order: the inject "
                                              f"before it (line {_line(previous[1])}) is at "
                                              f"{previous[0]}; list injects by time")
                else:
                    previous = (offset, offset_node)
            kind_node = self.require(fields, "kind", item, what)
            kind = self.choice(kind_node, "inject kind", InjectKind)
            if kind is None:
                continue
            allowed = INJECT_COMMON | INJECT_FIELDS[kind]
            for name, (key, _) in fields.items():
                if name not in allowed:
                    self.problem(key, f"{what} ({kind.value}) has an unknown field {name!r} "
                                      f"(known: {', '.join(sorted(allowed))})")
            actor = self.actor(fields["actor"][1] if "actor" in fields else None, kind)
            note = (self.text(fields["note"][1], f"{what}'s note") or "") if "note" in fields \
                else ""
            content = self.content(kind, fields, item, what)
            if content is None or offset is None or inject_id is None:
                continue
            if isinstance(content, ResourceOutOfService) and "actor" not in fields:
                # The resource's own department reports its breakdown.
                owner = self.reference.city.resource(content.call_sign)
                if owner is not None:
                    actor = Actor(f"{owner.department}-desk", Role.DEPARTMENT_USER,
                                  owner.department)
            found.append(Inject(id=inject_id, offset=offset, kind=kind, actor=actor,
                                content=content, line=_line(item), note=note))
        return found

    def content(self, kind: InjectKind, fields: dict[str, tuple[Node, Node]], item: Node,
                what: str) -> InjectContent | None:
        catalogue = self.reference.catalogue

        def need(name: str) -> Node | None:
            return self.require(fields, name, item, what)

        def maybe(name: str) -> Node | None:
            return fields[name][1] if name in fields else None

        if kind is InjectKind.INSPECTOR_REPORT:
            category = self.code(need("category"), "grid-case category",
                                 catalogue.case_categories)
            description = self.text(need("description"), f"{what}'s description")
            location = self.place(need("place"), f"{what}'s place")
            urgency = (self.choice(maybe("urgency"), "urgency", Urgency) if "urgency" in fields
                       else Urgency.NORMAL)
            if None in (category, description, location, urgency):
                return None
            return InspectorReport(category=category, description=description,  # type: ignore[arg-type]
                                   location=location, urgency=urgency)  # type: ignore[arg-type]
        if kind is InjectKind.HOTLINE_CALL:
            channel = (self.choice(maybe("channel"), "channel", Channel) if "channel" in fields
                       else Channel.PHONE)
            ticket_type = self.choice(need("ticket_type"), "ticket type", TicketType)
            topic = self.code(need("topic"), "hotline topic", catalogue.hotline_topics)
            description = self.text(need("description"), f"{what}'s description")
            location = self.place(maybe("place"), f"{what}'s place")
            caller_name = caller_phone = None
            if "caller" in fields:
                caller_node = fields["caller"][1]
                caller = self.mapping(caller_node, "the caller", frozenset({"name", "phone"}))
                if caller is not None:
                    caller_name = (self.text(caller["name"][1], "the caller's name", limit=200)
                                   if "name" in caller else None)
                    caller_phone = (self.text(caller["phone"][1], "the caller's phone",
                                              limit=40) if "phone" in caller else None)
            if None in (channel, ticket_type, topic, description) or (
                    "place" in fields and location is None):
                return None
            return HotlineCall(channel=channel, ticket_type=ticket_type, topic=topic,  # type: ignore[arg-type]
                               description=description, location=location,  # type: ignore[arg-type]
                               caller_name=caller_name, caller_phone=caller_phone)
        if kind is InjectKind.SENSOR_READING:
            source_node = need("hazard_source")
            source_text = self.text(source_node, "hazard source", limit=200)
            source = (self.reference.city.hazard_source(source_text)
                      if source_text is not None else None)
            if source_text is not None and source is None and source_node is not None:
                self.problem(source_node, f"unknown hazard source {source_text!r} (give its "
                                          "name or id in the city's inventory)")
            sensor_node = need("sensor")
            sensor = self.text(sensor_node, "sensor", limit=200)
            if source is not None and sensor is not None and sensor_node is not None \
                    and sensor not in source.sensors:
                self.problem(sensor_node, f"hazard source {source.name!r} has no sensor "
                                          f"{sensor!r} (its sensors: "
                                          f"{', '.join(sorted(source.sensors))})")
                sensor = None
            value_node = need("value")
            value = self.number(value_node, f"{what}'s value")
            if "crosses" in fields and source is not None and sensor is not None \
                    and value is not None and value_node is not None:
                expected = self.code(fields["crosses"][1], "threshold",
                                     ["normal", "warning", "alarm"])
                self.check_crossing(value_node, source.sensors[sensor], value, expected)
            if source is None or sensor is None or value is None:
                return None
            return SensorReading(hazard_source=source.id, hazard_source_name=source.name,
                                 sensor=sensor, value=value)
        if kind is InjectKind.RESOURCE_OUT_OF_SERVICE:
            resource_node = need("resource")
            call_sign = self.text(resource_node, "resource", limit=64)
            if call_sign is not None and resource_node is not None \
                    and self.reference.city.resource(call_sign) is None:
                self.problem(resource_node, f"unknown resource {call_sign!r} (give its call "
                                            "sign in the city's inventory)")
                call_sign = None
            reason = self.text(need("reason"), f"{what}'s reason")
            if call_sign is None or reason is None:
                return None
            return ResourceOutOfService(call_sign=call_sign, reason=reason)
        category_node, type_node = need("category"), need("type")
        category = self.code(category_node, "incident category",
                             catalogue.incident_categories)
        incident_type = None
        if category is not None:
            incident_type = self.code(type_node, f"incident type of {category}",
                                      catalogue.incident_categories[category].types)
        level = (self.code(maybe("level"), "incident level", catalogue.incident_levels)
                 if "level" in fields else None)
        title = self.text(need("title"), f"{what}'s title", limit=200)
        description = (self.text(maybe("description"), f"{what}'s description") or "") \
            if "description" in fields else ""
        location = self.place(need("place"), f"{what}'s place")
        if None in (category, incident_type, title, location) or (
                "level" in fields and level is None):
            return None
        return IncidentReport(category=category, incident_type=incident_type,  # type: ignore[arg-type]
                              level=level, title=title, description=description,  # type: ignore[arg-type]
                              location=location)  # type: ignore[arg-type]

    def check_crossing(self, node: Node, sensor: SensorRef, value: float,
                       expected: str | None) -> None:
        """A reading meant to cross a threshold (`crosses:`) must be on its far side: the
        planner's intent checked against the sensor's thresholds."""
        if expected is None:
            return
        rising = sensor.direction == "high"

        def beyond(threshold: float) -> bool:
            return value >= threshold if rising else value <= threshold

        level = ("alarm" if beyond(sensor.alarm) else
                 "warning" if beyond(sensor.warning) else "normal")
        if level != expected:
            way = "rising" if rising else "falling"
            self.problem(node, f"value {value:g} of {sensor.id} is {level}, not {expected} "
                               f"(warning at {sensor.warning:g}, alarm at {sensor.alarm:g} "
                               f"{sensor.unit}, {way})")

    def objectives(self, node: Node, injects: list[Inject]) -> list[Objective]:
        if not isinstance(node, SequenceNode):
            self.problem(node, "objectives must be a list")
            return []
        catalogue = self.reference.catalogue
        offsets = {i.id: i.offset for i in injects}
        found: list[Objective] = []
        seen: set[str] = set()
        for number, item in enumerate(node.value, start=1):
            what = f"objective {number}"
            fields = self.mapping(item, what, None)
            if fields is None:
                continue
            objective_id = self.text(self.require(fields, "id", item, what), f"{what}'s id",
                                     limit=64)
            if objective_id is not None:
                id_node = fields["id"][1]
                if not ID_PATTERN.match(objective_id):
                    self.problem(id_node, f"{what}'s id {objective_id!r} must be letters, "
                                          "digits, '.', '_' or '-'")
                if objective_id in seen:
                    self.problem(id_node, f"two objectives have the id {objective_id!r}")
                seen.add(objective_id)
                what = f"objective {objective_id!r}"
            kind = self.choice(self.require(fields, "kind", item, what), "objective kind",
                               ObjectiveKind)
            if kind is None:
                continue
            allowed = OBJECTIVE_COMMON | OBJECTIVE_FIELDS[kind]
            for name, (key, _) in fields.items():
                if name not in allowed:
                    self.problem(key, f"{what} ({kind.value}) has an unknown field {name!r} "
                                      f"(known: {', '.join(sorted(allowed))})")
            within = self.duration(self.require(fields, "within", item, what),
                                   f"{what}'s target 'within'")
            if within is not None and within <= timedelta():
                self.problem(fields["within"][1], f"{what}'s target must be longer than 0")
                within = None
            description = (self.text(fields["description"][1], f"{what}'s description")
                           if "description" in fields else None)
            incident = self.incident_filter(fields["incident"][1] if "incident" in fields
                                            else None, catalogue)
            resource_kind = None
            if kind is ObjectiveKind.RESOURCE_ON_SCENE:
                resource_kind = self.code(self.require(fields, "resource_kind", item, what),
                                          "resource kind", catalogue.resource_kinds)
            since_inject = since_offset = None
            if "since" in fields:
                since_node = fields["since"][1]
                since = self.text(since_node, f"{what}'s 'since'", limit=64)
                if since is not None and since != "report":
                    if since not in offsets:
                        self.problem(since_node, f"{what} is measured since inject {since!r}, "
                                                 "which the scenario does not have (give an "
                                                 "inject's id, or 'report')")
                    else:
                        since_inject, since_offset = since, offsets[since]
            if objective_id is None or within is None or incident is None or (
                    kind is ObjectiveKind.RESOURCE_ON_SCENE and resource_kind is None):
                continue
            found.append(Objective(
                id=objective_id, kind=kind, description=description or objective_id,
                within=within, incident=incident, line=_line(item),
                resource_kind=resource_kind, since_inject=since_inject,
                since_offset=since_offset))
        return found

    def incident_filter(self, node: Node | None, catalogue: Catalogue
                        ) -> IncidentFilter | None:
        if node is None:
            return IncidentFilter()
        fields = self.mapping(node, "the objective's incident",
                              frozenset({"category", "type", "level"}))
        if fields is None:
            return None
        category = (self.code(fields["category"][1], "incident category",
                              catalogue.incident_categories) if "category" in fields else None)
        types: dict[str, str] = {}
        for code, known in catalogue.incident_categories.items():
            if category is None or code == category:
                types.update(known.types)
        incident_type = (self.code(fields["type"][1], "incident type", types)
                         if "type" in fields else None)
        level = (self.code(fields["level"][1], "incident level", catalogue.incident_levels)
                 if "level" in fields else None)
        if any(name in fields and value is None for name, value in
               (("category", category), ("type", incident_type), ("level", level))):
            return None
        return IncidentFilter(category=category, incident_type=incident_type, level=level)


def parse_scenario(text: str | bytes, reference: ScenarioReference) -> Scenario:
    """The scenario in `text`, checked whole against the city and catalogues; raises
    `ScenarioInvalid` listing every problem with its line."""
    if isinstance(text, bytes):
        raw = text
        if len(raw) > MAX_SCENARIO_BYTES:
            raise ScenarioInvalid([ScenarioProblem(1, "the scenario file is larger than "
                                                      f"{MAX_SCENARIO_BYTES} bytes")])
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise ScenarioInvalid([ScenarioProblem(
                raw[: error.start].count(b"\n") + 1, "the file is not UTF-8 text")]) from None
    if len(text) > MAX_SCENARIO_BYTES:
        raise ScenarioInvalid([ScenarioProblem(1, "the scenario file is larger than "
                                                  f"{MAX_SCENARIO_BYTES} bytes")])
    reader = _Reader(reference)
    scenario = reader.read(text)
    if reader.problems or scenario is None:
        raise ScenarioInvalid(reader.problems or [ScenarioProblem(1, "not a scenario")])
    return scenario


ScenarioParser = Callable[[str], Scenario]
"""A parser bound to one city and catalogue (what the exercises application is given)."""
