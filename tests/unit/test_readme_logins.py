"""The demo logins the README tells people to use are the demo's own (issue 9, item 13: it
named an `inspector` login that does not exist)."""

from __future__ import annotations

import re
from pathlib import Path

from cityops.demo_users import DEMO_USERS

README = Path(__file__).resolve().parents[2] / "README.md"
LOGIN = re.compile(r"`([\w.-]+)`\s*/\s*`([\w.-]+-demo[\w-]*)`")
"""`username` / `password` pairs as the README writes them."""


def test_every_demo_login_in_the_readme_exists_with_that_password() -> None:
    # Lines are joined: a pair may be broken across two lines of the README.
    text = " ".join(README.read_text(encoding="utf-8").split())
    named = LOGIN.findall(text)
    assert len(named) >= 5, "the README's demo logins were not found"
    known = {user.username: user.password for user in DEMO_USERS}
    wrong = [(name, password) for name, password in named if known.get(name) != password]
    assert wrong == [], f"README names demo logins that do not exist: {wrong}"


def test_the_readme_names_the_inspector_s_login() -> None:
    inspector = next(u for u in DEMO_USERS if u.role.value == "inspector")
    text = " ".join(README.read_text(encoding="utf-8").split())
    assert f"`{inspector.username}` / `{inspector.password}`" in text
