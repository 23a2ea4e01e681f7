"""Who did something: every event records the actor, in what role and for which department."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from cityops.domain.errors import InvalidValue
from cityops.domain.values import parse_enum


class Role(StrEnum):
    """The roles of the people (and systems) that act in CityOps."""

    INSPECTOR = "inspector"
    HOTLINE_OPERATOR = "hotline-operator"
    DISPATCHER = "dispatcher"
    DEPARTMENT_USER = "department-user"
    PLANNER = "planner"
    ADMIN = "admin"
    LEADER = "leader"
    SYSTEM = "system"
    """An integrated system: sensor gateway, vehicle tracker, call-centre software."""


@dataclass(frozen=True, slots=True)
class Actor:
    """The accountable party of a command: user id, role and department."""

    user_id: str
    role: Role
    department: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.user_id, str) or not self.user_id.strip():
            raise InvalidValue("actor user id must be a non-empty string")
        object.__setattr__(self, "role", parse_enum(Role, self.role, "role"))
        if self.role is Role.DEPARTMENT_USER and not self.department:
            raise InvalidValue("a department user must belong to a department")

    def as_dict(self) -> dict[str, str | None]:
        return {"user_id": self.user_id, "role": self.role.value, "department": self.department}


SYSTEM = Actor(user_id="cityops", role=Role.SYSTEM, department=None)
"""CityOps itself, for what the system does on its own (for example a merge it was told to do)."""
