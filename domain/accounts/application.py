"""The accounts application: every command on users, departments and API keys."""

from __future__ import annotations

import hmac
import secrets
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError

from cityops.domain.accounts.account import (
    DEPARTMENT_CODE,
    KEY_ID,
    MAX_NAME,
    AccountView,
    ApiClient,
    ApiKey,
    ApiKeyStatus,
    Department,
    IssuedApiKey,
    PasswordHasher,
    UserAccount,
    WrongPassword,
    check_new_username,
    check_password_rules,
    check_role,
    check_username,
    secret_digest,
)
from cityops.domain.actors import SYSTEM, Actor, Role
from cityops.domain.application import CityApplication, Clock, system_clock
from cityops.domain.catalogue import Catalogue
from cityops.domain.errors import InvalidValue, NotFound, NotPermitted
from cityops.domain.former_topics import stored_topics
from cityops.domain.model import CityAggregate, checked_text


class Accounts(CityApplication):
    """Every command on users, departments and API keys, in one place. Administrative
    commands need an administrator; changing one's own password needs the current one."""

    name = "accounts"

    def __init__(self, env: Mapping[str, str] | None = None, *, catalogue: Catalogue,
                 hasher: PasswordHasher | None = None, clock: Clock = system_clock) -> None:
        super().__init__(env, clock=clock)
        self.catalogue = catalogue
        self.hasher = hasher or PasswordHasher()
        self._unknown_user_hash: str | None = None
        self._lock = threading.Lock()
        self.on_change: list[Callable[[str], object]] = []
        """Called with a username after a change to that account is saved (an in-process
        cache of accounts forgets it at once)."""

    # --- start-up -----------------------------------------------------------------------------

    def seed_departments(self) -> int:
        """Add the catalogue's departments that are not known yet (first start; a department
        added to the catalogue later). Returns how many were added."""
        when = self.now()
        missing = [Department.add(code=d.code, name=d.name, actor=SYSTEM, at=when)
                   for d in self.catalogue.departments.values()
                   if not self.exists(Department.create_id(d.code))]
        if not missing:
            return 0
        try:
            self.save(*missing)
        except IntegrityError:
            # Another process seeded at the same moment: what it saved is what we wanted.
            return 0
        return len(missing)

    # --- queries ------------------------------------------------------------------------------

    def user(self, username: str) -> UserAccount:
        """The account of `username` (any case), or `NotFound`."""
        check_username(username)
        return self.load(UserAccount, UserAccount.create_id(username))

    def find_user(self, username: str) -> UserAccount | None:
        try:
            return self.user(username)
        except (NotFound, InvalidValue):
            return None

    def users(self) -> list[UserAccount]:
        """Every account, in the order they were created."""
        return [self.load(UserAccount, i) for i in self._created(UserAccount)]

    def department(self, code: str) -> Department:
        if not isinstance(code, str) or not code:
            raise InvalidValue("department code must be non-empty text")
        try:
            return self.load(Department, Department.create_id(code))
        except NotFound:
            known = ", ".join(d.code for d in self.departments() if d.active)
            raise InvalidValue(f"unknown department {code!r}; departments: {known}") from None

    def departments(self) -> list[Department]:
        return [self.load(Department, i) for i in self._created(Department)]

    def api_key(self, key_id: str) -> ApiKey:
        return self.load(ApiKey, ApiKey.create_id(key_id))

    def api_keys(self) -> list[ApiKey]:
        return [self.load(ApiKey, i) for i in self._created(ApiKey)]

    def api_client_for_key(self, key: str) -> ApiClient | None:
        """The client a presented key (`<key id>.<secret>`) belongs to, or None if the key
        is malformed, unknown, wrong or revoked."""
        if not isinstance(key, str):
            return None
        key_id, dot, secret = key.strip().partition(".")
        if not dot or not KEY_ID.match(key_id) or not secret:
            return None
        try:
            found = self.api_key(key_id)
        except NotFound:
            return None
        if not hmac.compare_digest(found.secret_sha256, secret_digest(secret)):
            return None
        if found.status is not ApiKeyStatus.ISSUED:
            return None
        return ApiClient(name=found.name, key_id=found.key_id)

    def authenticate(self, username: str, password: str) -> AccountView | None:
        """The account if `username` and `password` match (enabled or not: the caller says
        which), else None.
        An unknown user costs the same hashing time as a known one (no timing oracle)."""
        account = self.find_user(username) if isinstance(username, str) else None
        if account is None:
            PasswordHasher.verify(password if isinstance(password, str) else "",
                                  self._dummy_hash())
            return None
        if not PasswordHasher.verify(password, account.password_hash):
            return None
        return account.view()

    def _dummy_hash(self) -> str:
        with self._lock:
            if self._unknown_user_hash is None:
                self._unknown_user_hash = self.hasher.hash(secrets.token_urlsafe(16))
            return self._unknown_user_hash

    def _created(self, cls: type[CityAggregate]) -> Iterator[UUID]:
        """Ids of the aggregates of `cls`, oldest first, read from the application's log
        (accounts are few: hundreds, not millions)."""
        created = next(c for c in vars(cls).values()
                       if isinstance(c, type) and issubclass(c, CityAggregate.Created))
        start, page = 1, 1000
        while True:
            batch = self.recorder.select_notifications(start, page,
                                                      topics=stored_topics(created))
            for notification in batch:
                originator = notification.originator_id
                yield originator if isinstance(originator, UUID) else UUID(originator)
            if len(batch) < page:
                return
            start = batch[-1].id + 1

    # --- users --------------------------------------------------------------------------------

    def add_user(self, username: str, *, role: Role | str, password: str,
                 department: str | None = None, display_name: str | None = None,
                 actor: Actor, command_id: str | None = None) -> UUID:
        """Create an account (an administrator's command)."""
        _require_admin(actor, "add users")
        check_new_username(username)
        role = check_role(role)
        department = self._check_department_for(role, department)
        name = checked_text("display name", display_name or username, limit=MAX_NAME)
        check_password_rules(password, username)
        when = self.now()
        account_id = UserAccount.create_id(username)

        def decide() -> list[UserAccount]:
            existing = self.find_user(username)
            if existing is not None:
                raise InvalidValue(f"user {existing.username!r} already exists")
            return [UserAccount.register(username=username, display_name=name, role=role,
                                         department=department,
                                         password_hash=self.hasher.hash(password),
                                         actor=actor, at=when)]

        def explain() -> None:
            if self.exists(account_id):
                raise InvalidValue(f"user {username!r} already exists")

        result = self.run_command("account.add-user", actor=actor, command_id=command_id,
                                  args={"username": username.casefold(), "role": role.value,
                                        "department": department},
                                  decide=decide, explain_conflict=explain)
        self._changed(username)
        return result

    def set_role(self, username: str, role: Role | str, *, department: str | None = None,
                 actor: Actor) -> UUID:
        """Give a user another role (a department user's department comes with it; the
        current department is kept if none is given)."""
        _require_admin(actor, "change roles")
        role = check_role(role)

        def change(account: UserAccount) -> None:
            wanted = department if department is not None else account.department
            if role is Role.DEPARTMENT_USER or department is not None:
                wanted = self._check_department_for(role, wanted)
            account.change_role(role, wanted, actor=actor, at=self.now())

        return self._change_user("account.set-role", username, actor, change,
                                 {"role": role.value, "department": department})

    def set_department(self, username: str, department: str | None, *, actor: Actor) -> UUID:
        """Move a user to another department (None: to none, not for a department user)."""
        _require_admin(actor, "change departments")

        def change(account: UserAccount) -> None:
            wanted = (self._check_department_for(account.role, department)
                      if department is not None else None)
            account.change_department(wanted, actor=actor, at=self.now())

        return self._change_user("account.set-department", username, actor, change,
                                 {"department": department})

    def rename_user(self, username: str, display_name: str, *, actor: Actor) -> UUID:
        _require_admin(actor, "rename users")
        name = checked_text("display name", display_name, limit=MAX_NAME)
        return self._change_user(
            "account.rename", username, actor,
            lambda a: a.rename(name, actor=actor, at=self.now()), {"display_name": name})

    def disable_user(self, username: str, *, reason: str, actor: Actor) -> UUID:
        """Stop a user from signing in; their tokens stop working."""
        _require_admin(actor, "disable users")
        text = checked_text("reason", reason)
        if actor.user_id.casefold() == username.casefold():
            raise InvalidValue("an administrator cannot disable their own account")
        return self._change_user("account.disable", username, actor,
                                 lambda a: a.disable(text, actor=actor, at=self.now()),
                                 {"reason": text})

    def enable_user(self, username: str, *, note: str = "", actor: Actor) -> UUID:
        _require_admin(actor, "enable users")

        def change(account: UserAccount) -> None:
            if account.department is not None:
                self._check_department_for(account.role, account.department)
            account.enable(note, actor=actor, at=self.now())

        return self._change_user("account.enable", username, actor, change, {"note": note})

    def reset_password(self, username: str, password: str, *, actor: Actor) -> UUID:
        """An administrator sets a new password (the user's tokens stop working)."""
        _require_admin(actor, "reset passwords")
        account = self.user(username)
        check_password_rules(password, account.username)
        hashed = self.hasher.hash(password)
        return self._change_user(
            "account.reset-password", username, actor,
            lambda a: a.change_password(hashed, reset=True, actor=actor, at=self.now()), {})

    def change_password(self, username: str, *, current: str, new: str,
                        actor: Actor) -> UUID:
        """A user changes their own password, proving they know the current one."""
        if actor.user_id.casefold() != username.casefold():
            raise NotPermitted(f"{actor.user_id} may only change their own password")
        account = self.user(username)
        if not PasswordHasher.verify(current, account.password_hash):
            raise WrongPassword("the current password is not correct")
        if current == new:
            raise InvalidValue("the new password must differ from the current one")
        check_password_rules(new, account.username)
        hashed = self.hasher.hash(new)
        return self._change_user(
            "account.change-password", username, actor,
            lambda a: a.change_password(hashed, reset=False, actor=actor, at=self.now()), {})

    def _change_user(self, command: str, username: str, actor: Actor,
                     change: Callable[[UserAccount], None], args: dict[str, Any]) -> UUID:
        account_id = UserAccount.create_id(check_username(username))

        def decide() -> list[UserAccount]:
            account = self.load(UserAccount, account_id)
            change(account)
            return [account]

        result = self.run_command(command, actor=actor, command_id=None,
                                  args={"username": username.casefold(), **args},
                                  decide=decide)
        self._changed(username)
        return result

    def _check_department_for(self, role: Role, department: str | None) -> str | None:
        if department is None or department == "":
            if role is Role.DEPARTMENT_USER:
                raise InvalidValue("a department user needs a department (--department)")
            return None
        found = self.department(department)
        if not found.active:
            raise InvalidValue(f"department {department!r} is retired")
        return found.code

    def _changed(self, username: str) -> None:
        for listener in self.on_change:
            listener(username.casefold())

    # --- departments --------------------------------------------------------------------------

    def add_department(self, code: str, name: str, *, actor: Actor) -> UUID:
        _require_admin(actor, "add departments")
        if not isinstance(code, str) or not DEPARTMENT_CODE.match(code):
            raise InvalidValue(f"department code {code!r} is not valid: use 2-40 lower-case "
                               "letters, digits and hyphens, starting with a letter or digit")
        text = checked_text("department name", name, limit=MAX_NAME)
        department_id = Department.create_id(code)

        def decide() -> list[Department]:
            if self.exists(department_id):
                raise InvalidValue(f"department {code!r} already exists")
            return [Department.add(code=code, name=text, actor=actor, at=self.now())]

        def explain() -> None:
            raise InvalidValue(f"department {code!r} already exists")

        return self.run_command("department.add", actor=actor, command_id=None,
                                args={"code": code, "name": text}, decide=decide,
                                explain_conflict=explain)

    def rename_department(self, code: str, name: str, *, actor: Actor) -> UUID:
        _require_admin(actor, "rename departments")
        text = checked_text("department name", name, limit=MAX_NAME)
        department_id = self.department(code).id

        def decide() -> list[Department]:
            department = self.load(Department, department_id)
            department.rename(text, actor=actor, at=self.now())
            return [department]

        return self.run_command("department.rename", actor=actor, command_id=None,
                                args={"code": code, "name": text}, decide=decide)

    def retire_department(self, code: str, *, reason: str, actor: Actor) -> UUID:
        """Retire a department; refused while enabled users still belong to it."""
        _require_admin(actor, "retire departments")
        text = checked_text("reason", reason)
        department_id = self.department(code).id
        members = sorted(u.username for u in self.users()
                         if u.enabled and u.department == code)
        if members:
            raise InvalidValue(f"department {code!r} still has enabled users: "
                               f"{', '.join(members)}; move or disable them first")

        def decide() -> list[Department]:
            department = self.load(Department, department_id)
            department.retire(text, actor=actor, at=self.now())
            return [department]

        return self.run_command("department.retire", actor=actor, command_id=None,
                                args={"code": code, "reason": text}, decide=decide)

    # --- API keys -----------------------------------------------------------------------------

    def issue_api_key(self, name: str, *, actor: Actor) -> IssuedApiKey:
        """A new key for an Open311 client; its secret is in the answer and nowhere else."""
        _require_admin(actor, "issue API keys")
        text = checked_text("client name", name, limit=MAX_NAME)
        key_id = f"ck_{secrets.token_hex(8)}"
        secret = secrets.token_urlsafe(32)

        def decide() -> list[ApiKey]:
            return [ApiKey.issue(key_id=key_id, name=text, secret_sha256=secret_digest(secret),
                                 actor=actor, at=self.now())]

        self.run_command("api-key.issue", actor=actor, command_id=None,
                         args={"key_id": key_id, "name": text}, decide=decide)
        return IssuedApiKey(key_id=key_id, name=text, key=f"{key_id}.{secret}")

    def revoke_api_key(self, key_id: str, *, reason: str, actor: Actor) -> UUID:
        _require_admin(actor, "revoke API keys")
        text = checked_text("reason", reason)
        if not isinstance(key_id, str) or not KEY_ID.match(key_id):
            raise InvalidValue(f"{key_id!r} is not a key id (ck_ and 16 hex digits)")
        api_key_id = ApiKey.create_id(key_id)

        def decide() -> list[ApiKey]:
            key = self.load(ApiKey, api_key_id)
            key.revoke(text, actor=actor, at=self.now())
            return [key]

        return self.run_command("api-key.revoke", actor=actor, command_id=None,
                                args={"key_id": key_id, "reason": text}, decide=decide)


def _require_admin(actor: Actor, what: str) -> None:
    if actor.role is not Role.ADMIN:
        raise NotPermitted(f"{actor.role.value} {actor.user_id} may not {what}; only an "
                           "admin may")
