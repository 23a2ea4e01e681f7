"""Every command on accounts, departments and Open311 API keys, as values (handled by
`Accounts`, one handler each; only an administrator issues them, but a user changes their
own password: `domain/permissions.py`); their values are checked with the rules of
`account.py`.

Passwords and API-key secrets travel in a command only on their way to being hashed: they
are left out of its `repr` and of its fingerprint.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any, ClassVar

from cityops.domain.accounts.account import (
    DEPARTMENT_CODE,
    KEY_ID,
    MAX_NAME,
    check_new_username,
    check_password_rules,
    check_role,
    check_username,
)
from cityops.domain.actors import Role
from cityops.domain.commands import Command
from cityops.domain.errors import InvalidValue
from cityops.domain.model import checked_text


@dataclass(frozen=True, kw_only=True)
class UserCommand(Command):
    """A command on one user account, named by its username (any case)."""

    username: str

    def __post_init__(self) -> None:
        check_username(self.username)

    def fingerprint_args(self) -> dict[str, Any]:
        return {**super().fingerprint_args(), "username": self.username.casefold()}


@dataclass(frozen=True, kw_only=True)
class AddUser(Command):
    """Create an account."""

    name: ClassVar[str] = "account.add-user"
    username: str
    role: Role
    password: str = field(repr=False)
    department: str | None = None
    display_name: str | None = None

    def __post_init__(self) -> None:
        check_new_username(self.username)
        object.__setattr__(self, "role", check_role(self.role))
        object.__setattr__(self, "display_name", checked_text(
            "display name", self.display_name or self.username, limit=MAX_NAME))
        check_password_rules(self.password, self.username)

    def fingerprint_args(self) -> dict[str, Any]:
        # As recorded before commands were values; never the password.
        return {"username": self.username.casefold(), "role": self.role.value,
                "department": self.department or None}


@dataclass(frozen=True, kw_only=True)
class SetRole(UserCommand):
    """Give a user another role (a department user's department comes with it; the current
    department is kept if none is given)."""

    name: ClassVar[str] = "account.set-role"
    role: Role
    department: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "role", check_role(self.role))


@dataclass(frozen=True, kw_only=True)
class SetDepartment(UserCommand):
    """Move a user to another department (None: to none, not for a department user)."""

    name: ClassVar[str] = "account.set-department"
    department: str | None


@dataclass(frozen=True, kw_only=True)
class RenameUser(UserCommand):
    """Change the name a user is shown by."""

    name: ClassVar[str] = "account.rename"
    display_name: str

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "display_name",
                           checked_text("display name", self.display_name, limit=MAX_NAME))


@dataclass(frozen=True, kw_only=True)
class DisableUser(UserCommand):
    """Stop a user from signing in; their tokens stop working."""

    name: ClassVar[str] = "account.disable"
    reason: str

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "reason", checked_text("reason", self.reason))


@dataclass(frozen=True, kw_only=True)
class EnableUser(UserCommand):
    """Let a disabled user sign in again."""

    name: ClassVar[str] = "account.enable"
    note: str = ""


@dataclass(frozen=True, kw_only=True)
class ResetPassword(UserCommand):
    """An administrator sets a new password (the user's tokens stop working)."""

    name: ClassVar[str] = "account.reset-password"
    password: str = field(repr=False)

    def fingerprint_args(self) -> dict[str, Any]:
        return {"username": self.username.casefold()}


@dataclass(frozen=True, kw_only=True)
class ChangePassword(UserCommand):
    """A user changes their own password, proving they know the current one."""

    name: ClassVar[str] = "account.change-password"
    current: str = field(repr=False)
    new: str = field(repr=False)

    def fingerprint_args(self) -> dict[str, Any]:
        return {"username": self.username.casefold()}


@dataclass(frozen=True, kw_only=True)
class DepartmentNaming(Command):
    """A command that gives the department `code` a name (kept as `department_name`: a
    command's `name` is its own)."""

    code: str
    department_name: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "department_name", checked_text(
            "department name", self.department_name, limit=MAX_NAME))

    def fingerprint_args(self) -> dict[str, Any]:
        return {"code": self.code, "name": self.department_name}


@dataclass(frozen=True, kw_only=True)
class AddDepartment(DepartmentNaming):
    """Add a department."""

    name: ClassVar[str] = "department.add"

    def __post_init__(self) -> None:
        if not isinstance(self.code, str) or not DEPARTMENT_CODE.match(self.code):
            raise InvalidValue(f"department code {self.code!r} is not valid: use 2-40 "
                               "lower-case letters, digits and hyphens, starting with a "
                               "letter or digit")
        super().__post_init__()


@dataclass(frozen=True, kw_only=True)
class RenameDepartment(DepartmentNaming):
    """Change a department's name."""

    name: ClassVar[str] = "department.rename"


@dataclass(frozen=True, kw_only=True)
class RetireDepartment(Command):
    """Retire a department; refused while enabled users still belong to it."""

    name: ClassVar[str] = "department.retire"
    code: str
    reason: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "reason", checked_text("reason", self.reason))


@dataclass(frozen=True, kw_only=True)
class IssueApiKey(Command):
    """A new key for an Open311 client. The caller mints it (`IssueApiKey.new`) and shows
    `key` once; only the digest of its secret is stored."""

    name: ClassVar[str] = "api-key.issue"
    client_name: str
    key_id: str
    secret: str = field(repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "client_name",
                           checked_text("client name", self.client_name, limit=MAX_NAME))
        if not isinstance(self.key_id, str) or not KEY_ID.match(self.key_id):
            raise InvalidValue(f"{self.key_id!r} is not a key id (ck_ and 16 hex digits)")

    @classmethod
    def new(cls, client_name: str) -> IssueApiKey:
        """A key with a fresh id and secret for the client `client_name`."""
        return cls(client_name=client_name, key_id=f"ck_{secrets.token_hex(8)}",
                   secret=secrets.token_urlsafe(32))

    @property
    def key(self) -> str:
        """What the client sends: `<key id>.<secret>`."""
        return f"{self.key_id}.{self.secret}"

    def fingerprint_args(self) -> dict[str, Any]:
        return {"key_id": self.key_id, "name": self.client_name}


@dataclass(frozen=True, kw_only=True)
class RevokeApiKey(Command):
    """Revoke an Open311 client's key."""

    name: ClassVar[str] = "api-key.revoke"
    key_id: str
    reason: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "reason", checked_text("reason", self.reason))
        if not isinstance(self.key_id, str) or not KEY_ID.match(self.key_id):
            raise InvalidValue(f"{self.key_id!r} is not a key id (ck_ and 16 hex digits)")
