"""Who may see which field: the city's information-sharing rules, as one policy applied by
every read path (REST, `/ws`, map layers, OGC, exports, Open311, Kafka feeds, webhooks).

Sharing classes:

- `shared`: shared unconditionally, with every viewer;
- `conditional:<condition>`: only with the departments and roles the named condition lists
  (caller personal data only with the hotline and the police departments and with hotline
  operators, dispatchers and administrators);
- `not-shared`: never leaves the command centre: no feed, webhook or department receives
  it; on screens only the centre's own staff (`centre_roles`) see it.

A viewer is a role and/or a department: a person on a screen is both (a department user of
the police is `department-user` of `police`), a department's systems (its Kafka topic, its
webhooks) are a department, the city-wide topics and Open311 are neither. A condition allows
a viewer whose department or whose role it lists.

A field a viewer may not see is **absent** from what it gets: the key is removed, never
masked or set to null (null keeps meaning "nothing recorded"). A conditional field that holds
a structure (merged calls, a review) is withheld whole.

The catalogue is data (`data/sharing.json`, or a file given in settings), loaded and
validated at start-up against the fields the streams' messages can carry: every one must have
a class, no unknown field may be listed, conditions must name known departments and roles. A
field added to an event later therefore stops the start with a clear error until someone
decides how it is shared.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cityops.domain.actors import Actor, Role
from cityops.domain.errors import CatalogueError

CATALOGUE_FILE = "sharing.json"
ACTOR_FIELD = "actor"
"""The catalogue entry of an event's actor (who did it, in what role, for which
department)."""
CONDITIONAL_PREFIX = "conditional:"

DOCUMENT_KEYS: Mapping[str, Mapping[str, tuple[str, ...]]] = {
    "incidents": {
        # The summary shows the review as one object: it holds the summary and the findings.
        "summary": ("review",),
        "findings": ("review",),
    },
    "hazards": {"owner_contact": ("owner.contact",)},
    "hotline": {
        "caller_name": ("caller",),
        "caller_phone": ("caller",),
        "calls": ("extra_calls",),
    },
}
"""Where a catalogue field appears in a stream's documents (summaries, read-model rows, map
features, histories) under another key than its own: `key` anywhere in the document, or
`parent.key` for a key inside an object held under `parent`. A field's own name is always
one of its keys (event facts carry it as such, at any depth: merged calls, situation
reports). This is structure that follows the aggregates' `summary()`, kept next to the rule
that uses it."""

DEPARTMENT_SCOPED_STREAMS = frozenset({"grid-cases", "hotline", "resources"})
"""Streams whose items belong to one department at a time (a case dispatched to it, a ticket
routed to it, its own resources): a department sees only its own, on screens (REST, `/ws`,
command-center/scopes.py) and in its feeds alike. Incidents are shared by category, area and
level (departments subscribe to them before they have a task; on screens a department user
sees those that gave the department a task); hazard sources are shared with every
department."""


class SharingClass(StrEnum):
    """How far a field may travel."""

    SHARED = "shared"
    CONDITIONAL = "conditional"
    NOT_SHARED = "not-shared"


@dataclass(frozen=True)
class Viewer:
    """Who is to see a document or message: a department (its feeds, webhooks), a role (a
    person's screen), both (a department user), or neither (city-wide topics, the public)."""

    department: str | None = None
    role: Role | None = None

    @classmethod
    def city_wide(cls) -> Viewer:
        """The city-wide topics and the public (Open311): only unconditionally shared
        fields."""
        return cls()

    @classmethod
    def department_feed(cls, department: str) -> Viewer:
        """A department's own systems (its Kafka topic or its webhooks)."""
        return cls(department=department)

    @classmethod
    def of(cls, actor: Actor) -> Viewer:
        """A person (or system account) on a screen or the API: their role and department."""
        return cls(department=actor.department, role=actor.role)

    def describe(self) -> str:
        if self.department is None and self.role is None:
            return "the city-wide feed"
        parts = [f"department {self.department}" if self.department else "",
                 f"role {self.role.value}" if self.role else ""]
        return " as ".join(p for p in parts if p)


@dataclass(frozen=True)
class Condition:
    """A named condition of the catalogue: the departments and roles a field is shared with."""

    name: str
    description: str
    departments: frozenset[str]
    roles: frozenset[Role]

    def allows(self, viewer: Viewer) -> bool:
        return (viewer.department in self.departments
                or (viewer.role is not None and viewer.role in self.roles))


@dataclass(frozen=True)
class FieldSharing:
    """The sharing class of one field of one stream."""

    field: str
    sharing: SharingClass
    condition: Condition | None = None

    def allows(self, viewer: Viewer, centre_roles: frozenset[Role] = frozenset()) -> bool:
        if self.sharing is SharingClass.SHARED:
            return True
        if self.sharing is SharingClass.CONDITIONAL:
            assert self.condition is not None
            return self.condition.allows(viewer)
        return viewer.role is not None and viewer.role in centre_roles

    def label(self) -> str:
        if self.condition is not None:
            return f"{CONDITIONAL_PREFIX}{self.condition.name}"
        return self.sharing.value


@dataclass(frozen=True)
class FeedEntry:
    """One stream of the catalogue: what it covers, how often it changes, and its fields."""

    stream: str
    title: str
    scope: str
    update_frequency: str
    fields: dict[str, FieldSharing]


# --- the file's shape --------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _ConditionFile(_Strict):
    description: str = Field(min_length=1)
    departments: list[str] = Field(default_factory=list)
    roles: list[str] = Field(default_factory=list)


class _CentreFile(_Strict):
    description: str = Field(min_length=1)
    roles: list[str] = Field(min_length=1)
    departments: list[str] = Field(default_factory=list)


class _FeedFile(_Strict):
    title: str = Field(min_length=1)
    scope: str = Field(min_length=1)
    update_frequency: str = Field(min_length=1)
    fields: dict[str, str]


class _CatalogueFile(_Strict):
    version: int = Field(ge=1)
    centre: _CentreFile
    conditions: dict[str, _ConditionFile] = Field(default_factory=dict)
    feeds: dict[str, _FeedFile]


@dataclass(frozen=True)
class SharingPolicy:
    """The sharing catalogue, validated as a whole, and the one place that applies it."""

    version: int
    feeds: dict[str, FeedEntry]
    conditions: dict[str, Condition]
    centre_roles: frozenset[Role]
    centre_description: str
    source: str
    centre_departments: frozenset[str] = frozenset()
    """The centre's own departments (the command centre, the hotline): their feeds are not
    confined to a department's scope."""

    @classmethod
    def load(cls, path: Path | None = None, *, departments: Collection[str],
             fields: Mapping[str, Mapping[str, str]]) -> SharingPolicy:
        """Load and validate the catalogue from `path` (or the built-in file). `departments`
        are the department codes a condition may name; `fields` every field each stream can
        carry, with where it comes from (for the errors)."""
        if path is None:
            source = resources.files("cityops.domain").joinpath("data", CATALOGUE_FILE)
            label = f"built-in {CATALOGUE_FILE}"
        else:
            source = path  # type: ignore[assignment]
            label = str(path)
        try:
            text = source.read_text(encoding="utf-8")
        except (FileNotFoundError, IsADirectoryError):
            raise CatalogueError(f"{label}: file not found") from None
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as error:
            raise CatalogueError(f"{label}: not valid JSON: {error}") from None
        return cls.from_data(raw, label=label, departments=departments, fields=fields)

    @classmethod
    def from_data(cls, raw: Any, *, label: str, departments: Collection[str],
                  fields: Mapping[str, Mapping[str, str]]) -> SharingPolicy:
        """Validate already-parsed catalogue data; every problem is listed in one error."""
        try:
            data = _CatalogueFile.model_validate(raw)
        except ValidationError as error:
            shape = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}"
                for e in error.errors()
            )
            raise CatalogueError(f"{label}: {shape}") from None
        problems: list[str] = []
        conditions = _conditions(data.conditions, departments, problems)
        centre_roles = frozenset(_roles("centre", data.centre.roles, problems))
        for code in data.centre.departments:
            if code not in departments:
                problems.append(f"centre: unknown department {code!r}")
        feeds: dict[str, FeedEntry] = {}
        for name in sorted(set(data.feeds) - set(fields)):
            problems.append(f"feeds.{name}: unknown stream; streams are {', '.join(fields)}")
        for stream, required in fields.items():
            feed = data.feeds.get(stream)
            if feed is None:
                problems.append(f"feeds.{stream}: missing (every stream needs an entry)")
                continue
            feeds[stream] = FeedEntry(
                stream=stream, title=feed.title, scope=feed.scope,
                update_frequency=feed.update_frequency,
                fields=_fields(stream, feed.fields, required, conditions, problems),
            )
        for stream, keys in DOCUMENT_KEYS.items():
            for name in keys:
                if stream in fields and name not in fields[stream]:
                    problems.append(f"document keys of {stream}: {name!r} is not a field of "
                                    "the stream")
        if problems:
            raise CatalogueError(f"{label}: " + "; ".join(problems))
        return cls(version=data.version, feeds=feeds, conditions=conditions,
                   centre_roles=centre_roles, centre_description=data.centre.description,
                   source=label, centre_departments=frozenset(data.centre.departments))

    # --- applying it ----------------------------------------------------------------------

    def allows(self, stream: str, field: str, viewer: Viewer) -> bool:
        """Whether `viewer` may see `field` of `stream` (an unknown field: no)."""
        sharing = self.feeds[stream].fields.get(field)
        return sharing is not None and sharing.allows(viewer, self.centre_roles)

    def share(self, stream: str, fields: Mapping[str, Any], viewer: Viewer) -> dict[str, Any]:
        """The fields of a `stream` message (flat: event facts, context) that `viewer` may
        receive. A field the catalogue does not know is withheld: it cannot happen with a
        catalogue validated against the running code, and withholding is the safe side if it
        does."""
        return {name: value for name, value in fields.items()
                if self.allows(stream, name, viewer)}

    def withheld(self, stream: str, viewer: Viewer) -> frozenset[str]:
        """The catalogue fields of `stream` that `viewer` may not see."""
        return frozenset(name for name, sharing in self.feeds[stream].fields.items()
                         if not sharing.allows(viewer, self.centre_roles))

    def withheld_keys(self, stream: str, viewer: Viewer) -> frozenset[str]:
        """The document keys (`key` or `parent.key`) that `viewer` may not see in `stream`'s
        documents: the withheld fields' own names and where else they appear."""
        fields = self.withheld(stream, viewer)
        keys = set(fields)
        for name in fields:
            keys.update(DOCUMENT_KEYS.get(stream, {}).get(name, ()))
        return frozenset(keys)

    def document(self, stream: str, data: Any, viewer: Viewer) -> Any:
        """`data` (a summary, a read-model row, a page or list of them, an event history, a
        map feature's properties) as `viewer` may see it: every key of a field it may not see
        removed, at any depth. Returns `data` itself when nothing is withheld, otherwise a
        new structure (`data` is not changed)."""
        keys = self.withheld_keys(stream, viewer)
        return without_keys(data, keys) if keys else data

    def in_scope(self, stream: str, concerned: Collection[str], department: str) -> bool:
        """Whether an item of `stream` that concerns the `concerned` departments is in the
        scope of `department`'s feeds (see `DEPARTMENT_SCOPED_STREAMS`); the centre's own
        departments see every item."""
        return (department in self.centre_departments
                or in_department_scope(stream, concerned, department))

    def check_published(self, stream: str, names: Iterable[str], where: str) -> None:
        """Refuse a publication meant for everyone (map layers, OGC collections, exports)
        that carries a key of a field not shared unconditionally."""
        everyone = self.withheld_keys(stream, Viewer.city_wide())
        leaking = sorted(set(names) & {k.split(".")[0] for k in everyone})
        if leaking:
            raise CatalogueError(f"{where} publishes {', '.join(leaking)} of the {stream} "
                                 "stream, which the sharing catalogue does not share with "
                                 "everyone")

    def as_dict(self) -> dict[str, Any]:
        """The catalogue as published to departments (API, docs)."""
        return {
            "version": self.version,
            "centre": {"description": self.centre_description,
                       "roles": sorted(r.value for r in self.centre_roles),
                       "departments": sorted(self.centre_departments)},
            "conditions": {
                c.name: {"description": c.description, "departments": sorted(c.departments),
                         "roles": sorted(r.value for r in c.roles)}
                for c in self.conditions.values()
            },
            "feeds": {
                stream: {
                    "title": feed.title, "scope": feed.scope,
                    "update_frequency": feed.update_frequency,
                    "fields": {name: f.label() for name, f in sorted(feed.fields.items())},
                }
                for stream, feed in self.feeds.items()
            },
        }

    def sharing_of(self, stream: str, field: str) -> FieldSharing:
        """The catalogue entry of one field (a clear error for an unknown one)."""
        try:
            return self.feeds[stream].fields[field]
        except KeyError:
            raise CatalogueError(f"the {stream} feed has no field {field!r}") from None


def without_keys(data: Any, keys: frozenset[str]) -> Any:
    """`data` with every `key` (anywhere) and every `parent.key` removed: a new structure."""
    if isinstance(data, list):
        return [without_keys(item, keys) for item in data]
    if not isinstance(data, dict):
        return data
    kept: dict[str, Any] = {}
    for key, value in data.items():
        if key in keys:
            continue
        inner = frozenset(k.split(".", 1)[1] for k in keys if k.startswith(f"{key}."))
        kept[key] = without_keys(value, keys | inner if isinstance(value, dict) else keys)
    return kept


def in_department_scope(stream: str, concerned: Collection[str], department: str) -> bool:
    """Whether an item of `stream` that concerns the `concerned` departments is in the scope
    of `department` (see `DEPARTMENT_SCOPED_STREAMS`)."""
    return stream not in DEPARTMENT_SCOPED_STREAMS or department in concerned


def _roles(where: str, names: Iterable[str], problems: list[str]) -> list[Role]:
    known = {r.value for r in Role}
    roles = []
    for role in names:
        if role not in known:
            problems.append(f"{where}: unknown role {role!r}; roles are "
                            f"{', '.join(sorted(known))}")
        else:
            roles.append(Role(role))
    return roles


def _conditions(data: Mapping[str, _ConditionFile], departments: Collection[str],
                problems: list[str]) -> dict[str, Condition]:
    conditions: dict[str, Condition] = {}
    for name, condition in data.items():
        where = f"conditions.{name}"
        if not condition.departments and not condition.roles:
            problems.append(f"{where}: names no department and no role")
        for code in condition.departments:
            if code not in departments:
                problems.append(f"{where}: unknown department {code!r}")
        conditions[name] = Condition(
            name=name, description=condition.description,
            departments=frozenset(condition.departments),
            roles=frozenset(_roles(where, condition.roles, problems)),
        )
    return conditions


def _fields(stream: str, data: Mapping[str, str], required: Mapping[str, str],
            conditions: Mapping[str, Condition], problems: list[str]) -> dict[str, FieldSharing]:
    where = f"feeds.{stream}.fields"
    for name in sorted(set(required) - set(data)):
        problems.append(f"{where}: field {name!r} (of {required[name]}) has no sharing class")
    for name in sorted(set(data) - set(required)):
        problems.append(f"{where}: {name!r} is not a field of the {stream} feed")
    fields: dict[str, FieldSharing] = {}
    for name, text in data.items():
        if name not in required:
            continue
        if text.startswith(CONDITIONAL_PREFIX):
            condition_name = text.removeprefix(CONDITIONAL_PREFIX).strip()
            condition = conditions.get(condition_name)
            if condition is None:
                problems.append(f"{where}.{name}: unknown condition {condition_name!r}; "
                                f"conditions are {', '.join(sorted(conditions)) or 'none'}")
                continue
            fields[name] = FieldSharing(name, SharingClass.CONDITIONAL, condition)
        elif text in (SharingClass.SHARED.value, SharingClass.NOT_SHARED.value):
            fields[name] = FieldSharing(name, SharingClass(text))
        else:
            problems.append(f"{where}.{name}: {text!r} is not a sharing class; use 'shared', "
                            f"'not-shared' or 'conditional:<condition>'")
    return fields
