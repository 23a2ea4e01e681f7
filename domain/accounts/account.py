"""Who may sign in to CityOps, and with what: user accounts, the departments they belong to
and the API keys of Open311 clients, event-sourced like everything a person decides (who
created, changed, disabled or revoked what, and when, stays on record).

Passwords are kept only as scrypt hashes (a per-user salt, the cost parameters in the hash
text so that they can be raised later without breaking older hashes); API keys only as the
SHA-256 of their secret. A user's *credential version* moves whenever what a token vouches
for changes (password, role, department, disabling), so tokens issued before stop working.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from cityops.domain.actors import SYSTEM, Actor, Role
from cityops.domain.errors import InvalidValue, NotPermitted
from cityops.domain.model import CityAggregate, iso_or_none
from cityops.domain.values import parse_enum

ACCOUNTS_NAMESPACE = uuid5(NAMESPACE_URL, "https://cityops.invalid/accounts")
USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
DEPARTMENT_CODE = re.compile(r"^[a-z0-9][a-z0-9-]{1,39}$")
KEY_ID = re.compile(r"^ck_[0-9a-f]{16}$")
MIN_PASSWORD = 10
MAX_PASSWORD = 256
MAX_NAME = 200
RESERVED_USERNAMES = frozenset({SYSTEM.user_id})
"""CityOps itself acts under this name: no account may take it."""


# --- passwords ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PasswordHasher:
    """scrypt with a fresh 16-byte salt per hash. The defaults are one of OWASP's
    recommended scrypt settings (N=2^15, r=8, p=3: 32 MiB, about a quarter of a second
    here), heavy enough to slow guessing and light enough for a login on two cores."""

    n: int = 2**15
    r: int = 8
    p: int = 3
    SCHEME = "scrypt"

    def hash(self, password: str) -> str:
        """The hash text: `scrypt$N$r$p$salt$digest` (base64, no padding)."""
        salt = secrets.token_bytes(16)
        digest = _scrypt(password, salt, self.n, self.r, self.p)
        return "$".join((self.SCHEME, str(self.n), str(self.r), str(self.p), _b64(salt),
                         _b64(digest)))

    @classmethod
    def verify(cls, password: str, hashed: str) -> bool:
        """Whether `password` matches `hashed` (made with any parameters; compared in
        constant time)."""
        try:
            scheme, n, r, p, salt, digest = hashed.split("$")
            if scheme != cls.SCHEME:
                return False
            expected = _unb64(digest)
            actual = _scrypt(password, _unb64(salt), int(n), int(r), int(p), len(expected))
        except (ValueError, TypeError):
            return False
        return hmac.compare_digest(actual, expected)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, length: int = 32) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=length,
                          maxmem=2 * 128 * n * r * p + 2**20)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def check_password_rules(password: str, username: str) -> str:
    """Refuse a password too weak to protect a command-centre account, saying why."""
    if not isinstance(password, str):
        raise InvalidValue("password must be text")
    if len(password) < MIN_PASSWORD:
        raise InvalidValue(f"password must be at least {MIN_PASSWORD} characters long "
                           f"(it has {len(password)})")
    if len(password) > MAX_PASSWORD:
        raise InvalidValue(f"password must be at most {MAX_PASSWORD} characters long")
    if password.strip() != password:
        raise InvalidValue("password must not start or end with white space")
    if password.casefold() == username.casefold():
        raise InvalidValue("password must not be the username")
    if len(set(password)) < 4:
        raise InvalidValue("password must use at least 4 different characters")
    kinds = (any(c.isalpha() for c in password) + any(c.isdigit() for c in password)
             + any(not c.isalnum() for c in password))
    if kinds < 2:
        raise InvalidValue("password must mix at least two of: letters, digits, other "
                           "characters")
    return password


def check_username(username: str) -> str:
    """A username: 1-64 letters, digits, '.', '_', '@' or '-', starting with a letter or
    digit (unique whatever the case)."""
    if not isinstance(username, str) or not USERNAME.match(username):
        raise InvalidValue(f"username {username!r} is not valid: use 1-64 letters, digits, "
                           "'.', '_', '@' or '-', starting with a letter or digit")
    return username


def check_new_username(username: str) -> str:
    """A username for a new account: valid, and not one CityOps keeps for itself."""
    check_username(username)
    if username.casefold() in RESERVED_USERNAMES:
        raise InvalidValue(f"username {username!r} is reserved for CityOps itself")
    return username


def check_role(role: Role | str) -> Role:
    """A role an account may hold. `system` is for the accounts of integrated systems
    (sensor gateways, vehicle trackers, call-centre software) that call the API, whose
    commands the permission table allows to systems; never give it to a person."""
    return parse_enum(Role, role, "role")


class WrongPassword(NotPermitted):
    """A password given as proof (the current one, to change it) is not the user's."""


# --- aggregates -----------------------------------------------------------------------------


class AccountStatus(StrEnum):
    ENABLED = "enabled"
    DISABLED = "disabled"


class UserAccount(CityAggregate):
    """A person who signs in: their role, department, password hash and whether they may."""

    KIND = "user account"

    @staticmethod
    def create_id(username: str) -> UUID:
        return uuid5(ACCOUNTS_NAMESPACE, f"user:{username.casefold()}")

    class Registered(CityAggregate.Created):
        """`UserAccount.__init__` makes the account's state from these facts (the library
        passes a created event's fields to `__init__` by name)."""

        actor: Actor
        username: str
        display_name: str
        role: str
        department: str | None
        password_hash: str

    class PasswordChanged(CityAggregate.Event):
        """A new password: by its owner, or reset by an administrator."""

        password_hash: str
        reset: bool

        def apply(self, account: UserAccount) -> None:
            account.password_hash = self.password_hash
            account.password_changed_at = self.timestamp
            account.credential_version += 1

    class RoleChanged(CityAggregate.Event):
        role: str
        department: str | None

        def apply(self, account: UserAccount) -> None:
            account.role = Role(self.role)
            account.department = self.department
            account.credential_version += 1

    class DepartmentChanged(CityAggregate.Event):
        department: str | None

        def apply(self, account: UserAccount) -> None:
            account.department = self.department
            account.credential_version += 1

    class Renamed(CityAggregate.Event):
        display_name: str

        def apply(self, account: UserAccount) -> None:
            account.display_name = self.display_name

    class Disabled(CityAggregate.Event):
        reason: str

        def apply(self, account: UserAccount) -> None:
            account.status = AccountStatus.DISABLED
            account.disabled_reason = self.reason
            account.credential_version += 1

    class Enabled(CityAggregate.Event):
        note: str

        def apply(self, account: UserAccount) -> None:
            account.status = AccountStatus.ENABLED
            account.disabled_reason = None

    def __init__(self, *, username: str, display_name: str, role: str, department: str | None,
                 password_hash: str, timestamp: datetime) -> None:
        """The account as registered (from the `Registered` event's facts): every
        attribute it keeps is declared here, once, with its type; the events change them."""
        self.status: AccountStatus = AccountStatus.ENABLED
        self.username = username
        self.display_name = display_name
        self.role = Role(role)
        self.department = department
        self.password_hash = password_hash
        self.credential_version = 1
        self.password_changed_at = timestamp
        self.disabled_reason: str | None = None

    @classmethod
    def register(cls, *, username: str, display_name: str, role: Role, department: str | None,
                 password_hash: str, actor: Actor, at: datetime) -> UserAccount:
        return cls._create(cls.Registered, id=cls.create_id(username), timestamp=at,
                           actor=actor, username=username, display_name=display_name,
                           role=role.value, department=department,
                           password_hash=password_hash)

    @property
    def enabled(self) -> bool:
        return self.status is AccountStatus.ENABLED

    def change_password(self, password_hash: str, *, reset: bool, actor: Actor,
                        at: datetime) -> None:
        self.record(self.PasswordChanged, actor=actor, at=at, password_hash=password_hash,
                    reset=reset)

    def change_role(self, role: Role, department: str | None, *, actor: Actor,
                    at: datetime) -> None:
        if role is self.role and department == self.department:
            return
        self.record(self.RoleChanged, actor=actor, at=at, role=role.value,
                    department=department)

    def change_department(self, department: str | None, *, actor: Actor, at: datetime) -> None:
        if department == self.department:
            return
        if department is None and self.role is Role.DEPARTMENT_USER:
            self.refuse("remove the department of", "a department user needs a department")
        self.record(self.DepartmentChanged, actor=actor, at=at, department=department)

    def rename(self, display_name: str, *, actor: Actor, at: datetime) -> None:
        if display_name != self.display_name:
            self.record(self.Renamed, actor=actor, at=at, display_name=display_name)

    def disable(self, reason: str, *, actor: Actor, at: datetime) -> None:
        self.require_status("disable", AccountStatus.ENABLED)
        self.record(self.Disabled, actor=actor, at=at, reason=reason)

    def enable(self, note: str, *, actor: Actor, at: datetime) -> None:
        self.require_status("enable", AccountStatus.DISABLED)
        self.record(self.Enabled, actor=actor, at=at, note=note)

    def view(self) -> AccountView:
        return AccountView(username=self.username, display_name=self.display_name,
                           role=self.role, department=self.department, enabled=self.enabled,
                           credential_version=self.credential_version)

    def summary(self) -> dict[str, Any]:
        """The account as administrators list it (never the password hash)."""
        return {"username": self.username, "display_name": self.display_name,
                "role": self.role.value, "department": self.department,
                "status": self.status.value, "disabled_reason": self.disabled_reason,
                "credential_version": self.credential_version,
                "password_changed_at": iso_or_none(self.password_changed_at),
                "created_at": iso_or_none(self.created_on)}


@dataclass(frozen=True)
class AccountView:
    """What signing in needs to know of an account (no password hash)."""

    username: str
    display_name: str
    role: Role
    department: str | None
    enabled: bool
    credential_version: int

    def actor(self) -> Actor:
        return Actor(user_id=self.username, role=self.role, department=self.department)

    def as_dict(self) -> dict[str, Any]:
        return {"username": self.username, "role": self.role.value,
                "department": self.department, "display_name": self.display_name}


class DepartmentStatus(StrEnum):
    ACTIVE = "active"
    RETIRED = "retired"


class Department(CityAggregate):
    """A department users can belong to (seeded from the catalogue, then kept by admins)."""

    KIND = "department"

    @staticmethod
    def create_id(code: str) -> UUID:
        return uuid5(ACCOUNTS_NAMESPACE, f"department:{code}")

    class Added(CityAggregate.Created):
        """`Department.__init__` makes the department's state from these facts (the library
        passes a created event's fields to `__init__` by name)."""

        actor: Actor
        code: str
        name: str

    class Renamed(CityAggregate.Event):
        name: str

        def apply(self, department: Department) -> None:
            department.name = self.name

    class Retired(CityAggregate.Event):
        reason: str

        def apply(self, department: Department) -> None:
            department.status = DepartmentStatus.RETIRED
            department.retired_reason = self.reason

    def __init__(self, *, code: str, name: str) -> None:
        """The department as added (from the `Added` event's facts): every
        attribute it keeps is declared here, once, with its type; the events change them."""
        self.status: DepartmentStatus = DepartmentStatus.ACTIVE
        self.code = code
        self.name = name
        self.retired_reason: str | None = None

    @classmethod
    def add(cls, *, code: str, name: str, actor: Actor, at: datetime) -> Department:
        return cls._create(cls.Added, id=cls.create_id(code), timestamp=at, actor=actor,
                           code=code, name=name)

    @property
    def active(self) -> bool:
        return self.status is DepartmentStatus.ACTIVE

    def rename(self, name: str, *, actor: Actor, at: datetime) -> None:
        self.require_status("rename", DepartmentStatus.ACTIVE)
        if name != self.name:
            self.record(self.Renamed, actor=actor, at=at, name=name)

    def retire(self, reason: str, *, actor: Actor, at: datetime) -> None:
        self.require_status("retire", DepartmentStatus.ACTIVE)
        self.record(self.Retired, actor=actor, at=at, reason=reason)

    def summary(self) -> dict[str, Any]:
        return {"code": self.code, "name": self.name, "status": self.status.value,
                "retired_reason": self.retired_reason}


class ApiKeyStatus(StrEnum):
    ISSUED = "issued"
    REVOKED = "revoked"


class ApiKey(CityAggregate):
    """An Open311 client's key: its name and the SHA-256 of its secret (never the secret)."""

    KIND = "API key"

    @staticmethod
    def create_id(key_id: str) -> UUID:
        return uuid5(ACCOUNTS_NAMESPACE, f"api-key:{key_id}")

    class Issued(CityAggregate.Created):
        """`ApiKey.__init__` makes the key's state from these facts (the library
        passes a created event's fields to `__init__` by name)."""

        actor: Actor
        key_id: str
        name: str
        secret_sha256: str

    class Revoked(CityAggregate.Event):
        reason: str

        def apply(self, key: ApiKey) -> None:
            key.status = ApiKeyStatus.REVOKED
            key.revoked_at = self.timestamp
            key.revoked_by = self.actor.user_id
            key.revoked_reason = self.reason

    def __init__(self, *, key_id: str, name: str, secret_sha256: str, actor: Actor) -> None:
        """The key as issued (from the `Issued` event's facts): every
        attribute it keeps is declared here, once, with its type; the events change them."""
        self.status: ApiKeyStatus = ApiKeyStatus.ISSUED
        self.key_id = key_id
        self.name = name
        self.secret_sha256 = secret_sha256
        self.issued_by = actor.user_id
        self.revoked_at: datetime | None = None
        self.revoked_by: str | None = None
        self.revoked_reason: str | None = None

    @classmethod
    def issue(cls, *, key_id: str, name: str, secret_sha256: str, actor: Actor,
              at: datetime) -> ApiKey:
        return cls._create(cls.Issued, id=cls.create_id(key_id), timestamp=at, actor=actor,
                           key_id=key_id, name=name, secret_sha256=secret_sha256)

    def revoke(self, reason: str, *, actor: Actor, at: datetime) -> None:
        self.require_status("revoke", ApiKeyStatus.ISSUED)
        self.record(self.Revoked, actor=actor, at=at, reason=reason)

    def summary(self) -> dict[str, Any]:
        return {"key_id": self.key_id, "name": self.name, "status": self.status.value,
                "issued_at": iso_or_none(self.created_on), "issued_by": self.issued_by,
                "revoked_at": iso_or_none(self.revoked_at), "revoked_by": self.revoked_by,
                "revoked_reason": self.revoked_reason}


@dataclass(frozen=True)
class ApiClient:
    """An Open311 client identified by a valid API key."""

    name: str
    key_id: str


@dataclass(frozen=True)
class IssuedApiKey:
    """A newly issued key: `key` is what the client sends; it is shown once, never stored."""

    key_id: str
    name: str
    key: str


def secret_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
