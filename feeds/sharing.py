"""The shared-data catalogue: for each feed, its scope, how often it is updated, and the
sharing class of every field it can carry; and the one function that applies it.

Sharing classes (the city's information-sharing rules):

- `shared`: shared unconditionally, on the city-wide topics and with every department;
- `conditional:<condition>`: shared only with the departments (feeds, webhooks) or roles
  (people's screens) that the named condition lists, e.g. caller personal data only with the
  hotline and the police;
- `not-shared`: never leaves CityOps.

The catalogue is data (`data/sharing.json`, or a file given in settings), validated when it is
loaded: every fact of every event of a stream, every context key and the actor must have a
class, no unknown field may be listed, conditions must name known departments and roles. A
field added to an event later therefore stops the feeds at start-up with a clear error until
someone decides how it is shared, instead of leaking by default.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cityops.domain.actors import Role
from cityops.domain.errors import CatalogueError
from cityops.feeds.streams import STREAMS, Stream, all_fact_fields
from cityops.feeds.subject import CONTEXT_FIELDS

CATALOGUE_FILE = "sharing.json"
ACTOR_FIELD = "actor"
"""The catalogue entry of the envelope's actor (who did it, in what role, for which
department)."""
CONDITIONAL_PREFIX = "conditional:"


class SharingClass(StrEnum):
    """How far a field may travel."""

    SHARED = "shared"
    CONDITIONAL = "conditional"
    NOT_SHARED = "not-shared"


@dataclass(frozen=True)
class Recipient:
    """Who a message is for: a department (feeds, webhooks) and/or a role (screens). The
    city-wide topics have no recipient in particular, so they carry only shared fields."""

    department: str | None = None
    role: Role | None = None

    @classmethod
    def city_wide(cls) -> Recipient:
        return cls()

    @classmethod
    def department_feed(cls, department: str) -> Recipient:
        """A department's own systems (its Kafka topic or its webhooks)."""
        return cls(department=department)

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

    def allows(self, recipient: Recipient) -> bool:
        return (recipient.department in self.departments
                or (recipient.role is not None and recipient.role in self.roles))


@dataclass(frozen=True)
class FieldSharing:
    """The sharing class of one field of one feed."""

    field: str
    sharing: SharingClass
    condition: Condition | None = None

    def allows(self, recipient: Recipient) -> bool:
        if self.sharing is SharingClass.SHARED:
            return True
        if self.sharing is SharingClass.CONDITIONAL:
            assert self.condition is not None
            return self.condition.allows(recipient)
        return False

    def label(self) -> str:
        if self.condition is not None:
            return f"{CONDITIONAL_PREFIX}{self.condition.name}"
        return self.sharing.value


@dataclass(frozen=True)
class FeedEntry:
    """One feed of the catalogue: what it covers, how often it changes, and its fields."""

    stream: Stream
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


class _FeedFile(_Strict):
    title: str = Field(min_length=1)
    scope: str = Field(min_length=1)
    update_frequency: str = Field(min_length=1)
    fields: dict[str, str]


class _CatalogueFile(_Strict):
    version: int = Field(ge=1)
    conditions: dict[str, _ConditionFile] = Field(default_factory=dict)
    feeds: dict[str, _FeedFile]


def required_fields(stream: Stream) -> dict[str, str]:
    """Every field a stream's messages can carry, with where it comes from (for errors)."""
    spec = STREAMS[stream]
    required = {ACTOR_FIELD: "the envelope's actor"}
    for name in CONTEXT_FIELDS[spec.aggregate]:
        required[name] = "the message context"
    for name, carriers in all_fact_fields(spec).items():
        required[name] = ", ".join(carriers)
    return required


@dataclass(frozen=True)
class SharingCatalogue:
    """Every feed's entry and the conditions they refer to, validated as a whole."""

    version: int
    feeds: dict[Stream, FeedEntry]
    conditions: dict[str, Condition]
    source: str

    @classmethod
    def load(cls, path: Path | None = None, *, departments: Collection[str]) -> SharingCatalogue:
        """Load and validate the catalogue from `path` (or the built-in file); `departments`
        are the department codes a condition may name."""
        if path is None:
            source = resources.files("cityops.feeds").joinpath("data", CATALOGUE_FILE)
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
        return cls.from_data(raw, label=label, departments=departments)

    @classmethod
    def from_data(cls, raw: Any, *, label: str,
                  departments: Collection[str]) -> SharingCatalogue:
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
        feeds: dict[Stream, FeedEntry] = {}
        known_streams = {s.value for s in Stream}
        for name in sorted(set(data.feeds) - known_streams):
            problems.append(f"feeds.{name}: unknown stream; streams are "
                            f"{', '.join(s.value for s in Stream)}")
        for stream in Stream:
            feed = data.feeds.get(stream.value)
            if feed is None:
                problems.append(f"feeds.{stream.value}: missing (every stream needs an entry)")
                continue
            feeds[stream] = FeedEntry(
                stream=stream, title=feed.title, scope=feed.scope,
                update_frequency=feed.update_frequency,
                fields=_fields(stream, feed.fields, conditions, problems),
            )
        if problems:
            raise CatalogueError(f"{label}: " + "; ".join(problems))
        return cls(version=data.version, feeds=feeds, conditions=conditions, source=label)

    # --- applying it ----------------------------------------------------------------------

    def share(self, stream: Stream, fields: Mapping[str, Any],
              recipient: Recipient) -> dict[str, Any]:
        """The fields of a `stream` message that `recipient` may receive: shared ones always,
        conditional ones when the condition allows the recipient, not-shared ones never.

        The one place where sharing classes are applied (Kafka feeds and webhooks alike). A
        field the catalogue does not know is withheld: it cannot happen with a catalogue
        validated against the running code, and withholding is the safe side if it does."""
        entry = self.feeds[stream].fields
        shared: dict[str, Any] = {}
        for name, value in fields.items():
            sharing = entry.get(name)
            if sharing is not None and sharing.allows(recipient):
                shared[name] = value
        return shared

    def sharing_of(self, stream: Stream, field: str) -> FieldSharing:
        """The catalogue entry of one field (a clear error for an unknown one)."""
        try:
            return self.feeds[stream].fields[field]
        except KeyError:
            raise CatalogueError(f"the {stream.value} feed has no field {field!r}") from None

    def as_dict(self) -> dict[str, Any]:
        """The catalogue as published to departments (API, docs)."""
        return {
            "version": self.version,
            "conditions": {
                c.name: {"description": c.description, "departments": sorted(c.departments),
                         "roles": sorted(r.value for r in c.roles)}
                for c in self.conditions.values()
            },
            "feeds": {
                stream.value: {
                    "title": feed.title, "scope": feed.scope,
                    "update_frequency": feed.update_frequency,
                    "fields": {name: f.label() for name, f in sorted(feed.fields.items())},
                }
                for stream, feed in self.feeds.items()
            },
        }


def _conditions(data: Mapping[str, _ConditionFile], departments: Collection[str],
                problems: list[str]) -> dict[str, Condition]:
    roles = {r.value for r in Role}
    conditions: dict[str, Condition] = {}
    for name, condition in data.items():
        where = f"conditions.{name}"
        if not condition.departments and not condition.roles:
            problems.append(f"{where}: names no department and no role")
        for code in condition.departments:
            if code not in departments:
                problems.append(f"{where}: unknown department {code!r}")
        for role in condition.roles:
            if role not in roles:
                problems.append(f"{where}: unknown role {role!r}; roles are "
                                f"{', '.join(sorted(roles))}")
        conditions[name] = Condition(
            name=name, description=condition.description,
            departments=frozenset(condition.departments),
            roles=frozenset(Role(r) for r in condition.roles if r in roles),
        )
    return conditions


def _fields(stream: Stream, data: Mapping[str, str], conditions: Mapping[str, Condition],
            problems: list[str]) -> dict[str, FieldSharing]:
    where = f"feeds.{stream.value}.fields"
    required = required_fields(stream)
    for name in sorted(set(required) - set(data)):
        problems.append(f"{where}: field {name!r} (of {required[name]}) has no sharing class")
    for name in sorted(set(data) - set(required)):
        problems.append(f"{where}: {name!r} is not a field of the {stream.value} feed")
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
