"""The demo's users: one per role (and a few departments), with passwords everybody knows,
so that `cityops demo` is usable at once. They exist only in the demo's own data folder;
a real deployment creates its users with `cityops users add`."""

from __future__ import annotations

from dataclasses import dataclass

from cityops.domain.accounts.application import Accounts
from cityops.domain.actors import Actor, Role


@dataclass(frozen=True)
class DemoUser:
    """A demo login."""

    username: str
    password: str
    role: Role
    department: str | None
    display_name: str


DEMO_USERS = (
    DemoUser("dispatcher", "dispatcher-demo", Role.DISPATCHER, None, "Duty officer Zhao"),
    # An inspector logs in with their inspector id in the city's map: it names their cells.
    DemoUser("insp-D01-01", "inspector-demo", Role.INSPECTOR, None, "Grid inspector Wang"),
    DemoUser("hotline", "hotline-demo", Role.HOTLINE_OPERATOR, None, "Hotline operator Li"),
    DemoUser("sanitation", "sanitation-demo", Role.DEPARTMENT_USER, "sanitation",
             "Sanitation department"),
    DemoUser("water", "water-demo", Role.DEPARTMENT_USER, "water", "Water company"),
    DemoUser("fire", "fire-demo-1", Role.DEPARTMENT_USER, "fire", "Fire brigade"),
    DemoUser("planner", "planner-demo", Role.PLANNER, None, "Planner Sun"),
    DemoUser("leader", "leader-demo", Role.LEADER, None, "Deputy mayor Zhou"),
    DemoUser("admin", "admin-demo", Role.ADMIN, None, "Administrator"),
)
DEMO_ADMIN = Actor(user_id="cityops-demo", role=Role.ADMIN)
"""Who creates the demo users (the demo itself, acting as an administrator)."""


def create_demo_users(accounts: Accounts) -> list[DemoUser]:
    """Create the demo users that do not exist yet; returns those created."""
    created = []
    for user in DEMO_USERS:
        if accounts.find_user(user.username) is None:
            accounts.add_user(user.username, role=user.role, department=user.department,
                              display_name=user.display_name, password=user.password,
                              actor=DEMO_ADMIN)
            created.append(user)
    return created


def demo_logins_text() -> str:
    """The demo logins as the demo prints them at start."""
    lines = ["Demo logins (username / password):"]
    for user in DEMO_USERS:
        role = user.role.value + (f" of {user.department}" if user.department else "")
        lines.append(f"  {user.username:<11} / {user.password:<16} {role}")
    return "\n".join(lines)
