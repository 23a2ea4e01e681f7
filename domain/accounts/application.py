"""The accounts application: the handler of every command on users, departments and API keys
(the commands themselves, as values: `commands.py`)."""

from __future__ import annotations

import hmac
import secrets
import threading
from collections.abc import Callable, Iterator, Mapping
from uuid import UUID

from eventsourcing.persistence import IntegrityError

from cityops.domain.accounts.account import (
    KEY_ID,
    AccountView,
    ApiClient,
    ApiKey,
    ApiKeyStatus,
    Department,
    PasswordHasher,
    UserAccount,
    WrongPassword,
    check_password_rules,
    check_username,
    secret_digest,
)
from cityops.domain.accounts.commands import (
    AddDepartment,
    AddUser,
    ChangePassword,
    DisableUser,
    EnableUser,
    IssueApiKey,
    RenameDepartment,
    RenameUser,
    ResetPassword,
    RetireDepartment,
    RevokeApiKey,
    SetDepartment,
    SetRole,
    UserCommand,
)
from cityops.domain.actors import SYSTEM, Role
from cityops.domain.application import CityApplication, Clock, UnitOfWork, system_clock
from cityops.domain.catalogue import Catalogue
from cityops.domain.commands import handles
from cityops.domain.errors import InvalidValue, NotFound, NotPermitted
from cityops.domain.former_topics import stored_topics
from cityops.domain.model import CityAggregate


class Accounts(CityApplication):
    """Every command on users, departments and API keys, in one place. Administrative
    commands need an administrator (the permission table); changing one's own password
    needs the current one."""

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

    # --- command handlers (run through `handle`, see `domain/commands.py`) ------------------

    @handles(AddUser)
    def add_user(self, command: AddUser, uow: UnitOfWork) -> list[UserAccount]:
        """An account is created (its password only as a hash)."""
        username = command.username
        department = self._check_department_for(command.role, command.department)
        account_id = UserAccount.create_id(username)

        def explain() -> None:
            if uow.exists(account_id):
                raise InvalidValue(f"user {username!r} already exists")

        uow.on_conflict(explain)
        existing = self.find_user(username)
        if existing is not None:
            raise InvalidValue(f"user {existing.username!r} already exists")
        uow.after_saved(lambda: self._changed(username))
        assert command.display_name is not None  # the command defaults it to the username
        return [UserAccount.register(username=username, display_name=command.display_name,
                                     role=command.role, department=department,
                                     password_hash=self.hasher.hash(command.password),
                                     actor=uow.actor, at=uow.now)]

    @handles(SetRole)
    def set_role(self, command: SetRole, uow: UnitOfWork) -> list[UserAccount]:
        """Another role (a department user's department comes with it)."""
        account = self._account(command, uow)
        role, department = command.role, command.department
        wanted = department if department is not None else account.department
        if role is Role.DEPARTMENT_USER or department is not None:
            wanted = self._check_department_for(role, wanted)
        account.change_role(role, wanted, actor=uow.actor, at=uow.now)
        return [account]

    @handles(SetDepartment)
    def set_department(self, command: SetDepartment, uow: UnitOfWork) -> list[UserAccount]:
        """Another department (or none, not for a department user)."""
        account = self._account(command, uow)
        wanted = (self._check_department_for(account.role, command.department)
                  if command.department is not None else None)
        account.change_department(wanted, actor=uow.actor, at=uow.now)
        return [account]

    @handles(RenameUser)
    def rename_user(self, command: RenameUser, uow: UnitOfWork) -> list[UserAccount]:
        """Another display name."""
        account = self._account(command, uow)
        account.rename(command.display_name, actor=uow.actor, at=uow.now)
        return [account]

    @handles(DisableUser)
    def disable_user(self, command: DisableUser, uow: UnitOfWork) -> list[UserAccount]:
        """The user no longer signs in; their tokens stop working."""
        if uow.actor.user_id.casefold() == command.username.casefold():
            raise InvalidValue("an administrator cannot disable their own account")
        account = self._account(command, uow)
        account.disable(command.reason, actor=uow.actor, at=uow.now)
        return [account]

    @handles(EnableUser)
    def enable_user(self, command: EnableUser, uow: UnitOfWork) -> list[UserAccount]:
        """The user signs in again (if their department is still active)."""
        account = self._account(command, uow)
        if account.department is not None:
            self._check_department_for(account.role, account.department)
        account.enable(command.note, actor=uow.actor, at=uow.now)
        return [account]

    @handles(ResetPassword)
    def reset_password(self, command: ResetPassword, uow: UnitOfWork) -> list[UserAccount]:
        """An administrator sets a new password (the user's tokens stop working)."""
        account = self._account(command, uow)
        check_password_rules(command.password, account.username)
        account.change_password(self.hasher.hash(command.password), reset=True,
                                actor=uow.actor, at=uow.now)
        return [account]

    @handles(ChangePassword)
    def change_password(self, command: ChangePassword, uow: UnitOfWork) -> list[UserAccount]:
        """A user changes their own password, proving they know the current one."""
        if uow.actor.user_id.casefold() != command.username.casefold():
            raise NotPermitted(f"{uow.actor.user_id} may only change their own password")
        account = self._account(command, uow)
        if not PasswordHasher.verify(command.current, account.password_hash):
            raise WrongPassword("the current password is not correct")
        if command.current == command.new:
            raise InvalidValue("the new password must differ from the current one")
        check_password_rules(command.new, account.username)
        account.change_password(self.hasher.hash(command.new), reset=False, actor=uow.actor,
                                at=uow.now)
        return [account]

    def _account(self, command: UserCommand, uow: UnitOfWork) -> UserAccount:
        """The account a command changes; listeners learn of the change once it is saved."""
        username = command.username
        account = uow.load(UserAccount, UserAccount.create_id(username))
        uow.after_saved(lambda: self._changed(username))
        return account

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

    @handles(AddDepartment)
    def add_department(self, command: AddDepartment, uow: UnitOfWork) -> list[Department]:
        """A department is added."""
        code = command.code

        def explain() -> None:
            raise InvalidValue(f"department {code!r} already exists")

        uow.on_conflict(explain)
        if uow.exists(Department.create_id(code)):
            raise InvalidValue(f"department {code!r} already exists")
        return [Department.add(code=code, name=command.department_name, actor=uow.actor,
                               at=uow.now)]

    @handles(RenameDepartment)
    def rename_department(self, command: RenameDepartment,
                          uow: UnitOfWork) -> list[Department]:
        """A department gets another name."""
        department = uow.load(Department, self.department(command.code).id)
        department.rename(command.department_name, actor=uow.actor, at=uow.now)
        return [department]

    @handles(RetireDepartment)
    def retire_department(self, command: RetireDepartment,
                          uow: UnitOfWork) -> list[Department]:
        """A department is retired, unless enabled users still belong to it."""
        code = command.code
        department_id = self.department(code).id
        members = sorted(u.username for u in self.users()
                         if u.enabled and u.department == code)
        if members:
            raise InvalidValue(f"department {code!r} still has enabled users: "
                               f"{', '.join(members)}; move or disable them first")
        department = uow.load(Department, department_id)
        department.retire(command.reason, actor=uow.actor, at=uow.now)
        return [department]

    @handles(IssueApiKey)
    def issue_api_key(self, command: IssueApiKey, uow: UnitOfWork) -> list[ApiKey]:
        """A key for an Open311 client is issued (only its secret's digest is stored)."""
        return [ApiKey.issue(key_id=command.key_id, name=command.client_name,
                             secret_sha256=secret_digest(command.secret), actor=uow.actor,
                             at=uow.now)]

    @handles(RevokeApiKey)
    def revoke_api_key(self, command: RevokeApiKey, uow: UnitOfWork) -> list[ApiKey]:
        """A client's key stops working."""
        key = uow.load(ApiKey, ApiKey.create_id(command.key_id))
        key.revoke(command.reason, actor=uow.actor, at=uow.now)
        return [key]
