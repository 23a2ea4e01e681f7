"""`cityops users`, `cityops departments` and `cityops api-keys`: an administrator manages who
may sign in, the departments they belong to and the keys of Open311 clients, on the server,
against the configured event store.

Whoever runs these commands acts as an administrator (having the server's shell and store
settings is the authority); the events record them as `cli:<operating-system user>`. Bad input
is a clear message and exit code 2, and nothing is recorded then.
"""

from __future__ import annotations

import getpass
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, TypeVar

import typer

from cityops.domain.accounts.application import Accounts
from cityops.domain.actors import Actor, Role
from cityops.domain.catalogue import Catalogue
from cityops.domain.errors import DomainError

users_app = typer.Typer(help="Users who sign in to the command centre.", no_args_is_help=True)
departments_app = typer.Typer(help="Departments users belong to.", no_args_is_help=True)
api_keys_app = typer.Typer(help="API keys of Open311 clients.", no_args_is_help=True)

T = TypeVar("T")
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")]
Reason = Annotated[str, typer.Option(help="Why (recorded in the event)")]


def cli_actor() -> Actor:
    """The administrator acting from the command line: the operating-system user."""
    try:
        who = getpass.getuser()
    except (KeyError, OSError):
        who = "unknown"
    return Actor(user_id=f"cli:{who}", role=Role.ADMIN)


@contextmanager
def open_accounts() -> Iterator[Accounts]:
    """The accounts application on the configured store (departments seeded)."""
    from cityops.cli import load_settings

    settings = load_settings()
    try:
        catalogue = Catalogue.load(settings.catalogue_dir)
    except DomainError as error:
        _fail(str(error))
    accounts = Accounts(settings.event_store_env(Accounts.name), catalogue=catalogue)
    try:
        accounts.seed_departments()
        yield accounts
    finally:
        accounts.close()


def _fail(message: str) -> Any:
    typer.secho(f"Error: {message}", fg="red", err=True)
    raise typer.Exit(2)


def _run(action: Callable[[Accounts], T]) -> T:
    """Run one command on the accounts; a domain error is a clear message and exit 2."""
    with open_accounts() as accounts:
        try:
            return action(accounts)
        except DomainError as error:
            return _fail(str(error))  # type: ignore[no-any-return]


def read_password(password_stdin: bool, username: str) -> str:
    """The new password: one line of standard input, or asked twice at a terminal."""
    if password_stdin:
        line = sys.stdin.readline()
        password = line[:-1] if line.endswith("\n") else line
        if not password:
            _fail("no password on standard input")
        return password
    if not sys.stdin.isatty():
        _fail("standard input is not a terminal: give --password-stdin and the password on "
              "standard input")
    typed: str = typer.prompt(f"Password for {username}", hide_input=True,
                              confirmation_prompt=True)
    return typed


def _table(rows: list[dict[str, Any]], columns: list[str], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    if not rows:
        typer.echo("(none)")
        return
    widths = {c: max(len(c), *(len(str(r.get(c) if r.get(c) is not None else "-"))
                               for r in rows)) for c in columns}
    typer.echo("  ".join(c.upper().ljust(widths[c]) for c in columns).rstrip())
    for row in rows:
        typer.echo("  ".join(str(row.get(c) if row.get(c) is not None else "-").ljust(widths[c])
                             for c in columns).rstrip())


# --- users ----------------------------------------------------------------------------------


@users_app.command("add")
def add_user(
    username: Annotated[str, typer.Argument(help="Login name (letters, digits, . _ @ -)")],
    role: Annotated[str, typer.Option(help="inspector, hotline-operator, dispatcher, "
                                      "department-user, planner, admin, leader (or system "
                                      "for an integrated system's account)")],
    department: Annotated[str | None, typer.Option(help="Department code (required for a "
                                                   "department user)")] = None,
    display_name: Annotated[str | None, typer.Option(help="Name shown on screens")] = None,
    password_stdin: Annotated[bool, typer.Option(help="Read the password from standard "
                                                 "input (else it is asked twice)")] = False,
) -> None:
    """Create a user who can sign in."""
    password = read_password(password_stdin, username)
    actor = cli_actor()

    def add(accounts: Accounts) -> None:
        accounts.add_user(username, role=role, department=department,
                          display_name=display_name, password=password, actor=actor)

    _run(add)
    typer.secho(f"User {username} added as {role}"
                + (f" of {department}" if department else ""), fg="green")


@users_app.command("list")
def list_users(as_json: JsonOption = False) -> None:
    """Every user: role, department, enabled or not."""
    rows = _run(lambda accounts: [u.summary() for u in accounts.users()])
    _table(rows, ["username", "role", "department", "status", "display_name"], as_json)


@users_app.command("set-role")
def set_role(
    username: str, role: str,
    department: Annotated[str | None, typer.Option(help="Their department (required to "
                                                   "become a department user)")] = None,
) -> None:
    """Give a user another role; their current logins end."""
    actor = cli_actor()
    _run(lambda accounts: accounts.set_role(username, role, department=department,
                                            actor=actor))
    typer.secho(f"User {username} is now {role}", fg="green")


@users_app.command("set-department")
def set_department(
    username: str,
    department: Annotated[str | None, typer.Argument(help="Department code")] = None,
    none: Annotated[bool, typer.Option("--none", help="Belong to no department")] = False,
) -> None:
    """Move a user to another department; their current logins end."""
    if (department is None) == (not none):
        _fail("give a department code, or --none")
    actor = cli_actor()
    _run(lambda accounts: accounts.set_department(username, department, actor=actor))
    typer.secho(f"User {username} is now in {department or 'no department'}", fg="green")


@users_app.command("disable")
def disable_user(username: str, reason: Reason) -> None:
    """Stop a user from signing in; their tokens stop working within seconds."""
    actor = cli_actor()
    _run(lambda accounts: accounts.disable_user(username, reason=reason, actor=actor))
    typer.secho(f"User {username} disabled", fg="green")


@users_app.command("enable")
def enable_user(username: str, note: Annotated[str, typer.Option()] = "") -> None:
    """Let a disabled user sign in again."""
    actor = cli_actor()
    _run(lambda accounts: accounts.enable_user(username, note=note, actor=actor))
    typer.secho(f"User {username} enabled", fg="green")


@users_app.command("reset-password")
def reset_password(
    username: str,
    password_stdin: Annotated[bool, typer.Option(help="Read the password from standard "
                                                 "input (else it is asked twice)")] = False,
) -> None:
    """Set a new password for a user; their current logins end."""
    password = read_password(password_stdin, username)
    actor = cli_actor()
    _run(lambda accounts: accounts.reset_password(username, password, actor=actor))
    typer.secho(f"Password of {username} reset", fg="green")


# --- departments ----------------------------------------------------------------------------


@departments_app.command("list")
def list_departments(as_json: JsonOption = False) -> None:
    """Every department, active or retired."""
    rows = _run(lambda accounts: [d.summary() for d in accounts.departments()])
    _table(rows, ["code", "name", "status"], as_json)


@departments_app.command("add")
def add_department(code: str, name: str) -> None:
    """Add a department users can belong to."""
    actor = cli_actor()
    _run(lambda accounts: accounts.add_department(code, name, actor=actor))
    typer.secho(f"Department {code} added", fg="green")


@departments_app.command("rename")
def rename_department(code: str, name: str) -> None:
    """Give a department a new name (its code stays)."""
    actor = cli_actor()
    _run(lambda accounts: accounts.rename_department(code, name, actor=actor))
    typer.secho(f"Department {code} renamed", fg="green")


@departments_app.command("retire")
def retire_department(code: str, reason: Reason) -> None:
    """Retire a department (refused while enabled users belong to it)."""
    actor = cli_actor()
    _run(lambda accounts: accounts.retire_department(code, reason=reason, actor=actor))
    typer.secho(f"Department {code} retired", fg="green")


# --- API keys -------------------------------------------------------------------------------


@api_keys_app.command("issue")
def issue_api_key(name: Annotated[str, typer.Argument(help="The client, e.g. its app name")]
                  ) -> None:
    """Issue a key for an Open311 client; the key is printed once and stored nowhere."""
    actor = cli_actor()
    issued = _run(lambda accounts: accounts.issue_api_key(name, actor=actor))
    typer.secho(f"API key {issued.key_id} issued to {issued.name}. Give the client this key "
                "(shown once, not stored):", fg="green", err=True)
    typer.echo(issued.key)


@api_keys_app.command("list")
def list_api_keys(as_json: JsonOption = False) -> None:
    """Every key: its client, issued or revoked, and by whom (never the secret)."""
    rows = _run(lambda accounts: [k.summary() for k in accounts.api_keys()])
    _table(rows, ["key_id", "name", "status", "issued_by", "issued_at", "revoked_at"],
           as_json)


@api_keys_app.command("revoke")
def revoke_api_key(key_id: str, reason: Reason) -> None:
    """Revoke a key: the client's requests with it are refused from now on."""
    actor = cli_actor()
    _run(lambda accounts: accounts.revoke_api_key(key_id, reason=reason, actor=actor))
    typer.secho(f"API key {key_id} revoked", fg="green")
