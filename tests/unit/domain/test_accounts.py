"""Accounts: passwords kept as scrypt hashes, credential versions that end old logins,
departments users must belong to, API keys stored as digests, and only administrators
managing any of it (on the in-memory event store)."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from cityops.domain.accounts.account import PasswordHasher, check_password_rules
from cityops.domain.accounts.application import Accounts
from cityops.domain.actors import Actor, Role
from cityops.domain.catalogue import Catalogue
from cityops.domain.errors import IllegalTransition, InvalidValue, NotFound, NotPermitted

ADMIN = Actor(user_id="root-wu", role=Role.ADMIN)
FAST = PasswordHasher(n=2**10, r=8, p=1)
PASSWORD = "river-bank-42"


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return Catalogue.load(None)


@pytest.fixture
def accounts(catalogue: Catalogue) -> Accounts:
    app = Accounts({"PERSISTENCE_MODULE": "eventsourcing.popo"}, catalogue=catalogue,
                   hasher=FAST)
    app.seed_departments()
    return app


def test_a_password_hash_is_salted_scrypt_with_its_parameters() -> None:
    hasher = PasswordHasher()
    first, second = hasher.hash(PASSWORD), hasher.hash(PASSWORD)
    assert first != second  # a fresh salt each time
    scheme, n, r, p, salt, digest = first.split("$")
    assert len(salt) >= 20 and len(digest) >= 40  # 16 and 32 bytes, base64
    assert (scheme, int(n), int(r), int(p)) == ("scrypt", 2**15, 8, 3)
    assert PASSWORD not in first
    assert PasswordHasher.verify(PASSWORD, first)
    assert not PasswordHasher.verify("river-bank-43", first)
    # Parameters travel in the hash: a cheaper old hash still verifies.
    assert PasswordHasher.verify(PASSWORD, FAST.hash(PASSWORD))
    for broken in ("", "scrypt$1$2", "bcrypt$1$1$1$AA$AA", first.replace("$8$", "$x$")):
        assert not PasswordHasher.verify(PASSWORD, broken)


@pytest.mark.parametrize(("password", "reason"), [
    ("short-1", "at least 10 characters"),
    ("a" * 300, "at most 256"),
    (" padded-password-1", "white space"),
    ("Water-Chen", "must not be the username"),
    ("abababababab", "4 different characters"),
    ("onlyletterspassword", "two of: letters, digits"),
])
def test_weak_passwords_are_refused_saying_why(password: str, reason: str) -> None:
    with pytest.raises(InvalidValue, match=reason):
        check_password_rules(password, "water-chen")


def test_a_user_signs_in_with_any_case_of_the_name(accounts: Accounts) -> None:
    accounts.add_user("Water-Chen", role="department-user", department="water",
                      password=PASSWORD, display_name="Chen Li", actor=ADMIN)
    view = accounts.authenticate("water-chen", PASSWORD)
    assert view is not None
    assert (view.username, view.role, view.department, view.credential_version) == (
        "Water-Chen", Role.DEPARTMENT_USER, "water", 1)
    assert view.actor() == Actor("Water-Chen", Role.DEPARTMENT_USER, "water")
    assert accounts.authenticate("water-chen", "wrong-password-1") is None
    assert accounts.authenticate("nobody", PASSWORD) is None
    with pytest.raises(InvalidValue, match="already exists"):
        accounts.add_user("WATER-CHEN", role="leader", password=PASSWORD, actor=ADMIN)
    summary = accounts.user("water-chen").summary()
    assert "password_hash" not in summary and PASSWORD not in str(summary)


def test_the_credential_version_moves_when_what_a_token_vouches_for_changes(
        accounts: Accounts) -> None:
    accounts.add_user("zhao", role="dispatcher", password=PASSWORD, actor=ADMIN)

    def version() -> int:
        return accounts.user("zhao").credential_version

    accounts.reset_password("zhao", "new-password-7", actor=ADMIN)
    assert version() == 2
    me = Actor("zhao", Role.DISPATCHER)
    accounts.change_password("zhao", current="new-password-7", new="newer-password-8",
                             actor=me)
    assert version() == 3
    accounts.set_role("zhao", "planner", actor=ADMIN)
    assert version() == 4
    accounts.set_role("zhao", "planner", actor=ADMIN)  # nothing changed: no new version
    assert version() == 4
    accounts.set_department("zhao", "roads", actor=ADMIN)
    assert version() == 5
    accounts.rename_user("zhao", "Zhao Wei", actor=ADMIN)  # a name is not a credential
    assert version() == 5
    accounts.disable_user("zhao", reason="left the centre", actor=ADMIN)
    assert version() == 6
    assert not accounts.user("zhao").enabled
    with pytest.raises(IllegalTransition, match="it is disabled"):
        accounts.disable_user("zhao", reason="again", actor=ADMIN)
    accounts.enable_user("zhao", actor=ADMIN)
    assert accounts.user("zhao").enabled
    events = [type(e).__name__ for e in accounts.events.get(accounts.user("zhao").id)]
    assert events == ["Registered", "PasswordChanged", "PasswordChanged", "RoleChanged",
                      "DepartmentChanged", "Renamed", "Disabled", "Enabled"]
    recorded = list(accounts.events.get(accounts.user("zhao").id))
    assert recorded[0].actor == ADMIN and recorded[2].actor == me


def test_changing_ones_own_password_needs_the_current_one(accounts: Accounts) -> None:
    accounts.add_user("wang", role="inspector", password=PASSWORD, actor=ADMIN)
    wang = Actor("wang", Role.INSPECTOR)
    with pytest.raises(NotPermitted, match="current password is not correct"):
        accounts.change_password("wang", current="guess-guess-1", new="new-password-7",
                                 actor=wang)
    with pytest.raises(NotPermitted, match="only change their own"):
        accounts.change_password("wang", current=PASSWORD, new="new-password-7",
                                 actor=Actor("li", Role.INSPECTOR))
    with pytest.raises(InvalidValue, match="must differ"):
        accounts.change_password("wang", current=PASSWORD, new=PASSWORD, actor=wang)
    assert accounts.user("wang").credential_version == 1


def test_department_rules(accounts: Accounts) -> None:
    with pytest.raises(InvalidValue, match="needs a department"):
        accounts.add_user("li", role="department-user", password=PASSWORD, actor=ADMIN)
    with pytest.raises(InvalidValue, match="unknown department 'atlantis'"):
        accounts.add_user("li", role="department-user", department="atlantis",
                          password=PASSWORD, actor=ADMIN)
    assert accounts.find_user("li") is None  # nothing half-written

    accounts.add_department("parks-east", "Parks East Office", actor=ADMIN)
    accounts.add_user("li", role="department-user", department="parks-east",
                      password=PASSWORD, actor=ADMIN)
    with pytest.raises(InvalidValue, match="still has enabled users: li"):
        accounts.retire_department("parks-east", reason="merged", actor=ADMIN)
    with pytest.raises(IllegalTransition, match="a department user needs a department"):
        accounts.set_department("li", None, actor=ADMIN)
    accounts.set_department("li", "landscaping", actor=ADMIN)
    accounts.rename_department("parks-east", "Parks (East)", actor=ADMIN)
    accounts.retire_department("parks-east", reason="merged into landscaping", actor=ADMIN)
    assert accounts.department("parks-east").summary() == {
        "code": "parks-east", "name": "Parks (East)", "status": "retired",
        "retired_reason": "merged into landscaping"}
    with pytest.raises(InvalidValue, match="retired"):
        accounts.set_department("li", "parks-east", actor=ADMIN)
    with pytest.raises(InvalidValue, match="already exists"):
        accounts.add_department("water", "Another water", actor=ADMIN)
    with pytest.raises(InvalidValue, match="not valid"):
        accounts.add_department("Bad Code", "x", actor=ADMIN)


def test_departments_are_seeded_once_from_the_catalogue(accounts: Accounts,
                                                        catalogue: Catalogue) -> None:
    codes = {d.code for d in accounts.departments()}
    assert codes == set(catalogue.departments)
    assert accounts.seed_departments() == 0
    assert len(accounts.departments()) == len(catalogue.departments)


def test_an_api_key_is_stored_as_a_digest_and_can_be_revoked(accounts: Accounts) -> None:
    issued = accounts.issue_api_key("FixMyStreet", actor=ADMIN)
    key_id, secret = issued.key.split(".")
    assert key_id == issued.key_id
    stored: Any = accounts.api_key(key_id)
    assert stored.secret_sha256 == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in str([vars(e) for e in accounts.events.get(stored.id)])
    client = accounts.api_client_for_key(issued.key)
    assert client is not None and (client.name, client.key_id) == ("FixMyStreet", key_id)
    for wrong in (issued.key + "x", f"{key_id}.", "nonsense", f"ck_{'0' * 16}.{secret}"):
        assert accounts.api_client_for_key(wrong) is None
    accounts.revoke_api_key(key_id, reason="phone lost", actor=ADMIN)
    assert accounts.api_client_for_key(issued.key) is None
    assert accounts.api_key(key_id).summary()["revoked_by"] == "root-wu"
    with pytest.raises(IllegalTransition):
        accounts.revoke_api_key(key_id, reason="again", actor=ADMIN)
    with pytest.raises(NotFound):
        accounts.revoke_api_key(f"ck_{'1' * 16}", reason="x", actor=ADMIN)


@pytest.mark.parametrize("role", [r for r in Role if r is not Role.ADMIN])
def test_only_an_administrator_manages_accounts(accounts: Accounts, role: Role) -> None:
    someone = Actor("someone", role, "water" if role is Role.DEPARTMENT_USER else None)
    for attempt in (
        lambda: accounts.add_user("x1", role="leader", password=PASSWORD, actor=someone),
        lambda: accounts.add_department("new-dept", "New", actor=someone),
        lambda: accounts.issue_api_key("client", actor=someone),
        lambda: accounts.disable_user("anyone", reason="x", actor=someone),
    ):
        with pytest.raises(NotPermitted, match="only an admin"):
            attempt()


def test_bad_names_and_roles_are_refused(accounts: Accounts) -> None:
    for username in ("", "has space", "-dash-first", "x" * 65, "cityops"):
        with pytest.raises(InvalidValue):
            accounts.add_user(username, role="leader", password=PASSWORD, actor=ADMIN)
    with pytest.raises(InvalidValue, match="unknown role 'mayor'"):
        accounts.add_user("zhou", role="mayor", password=PASSWORD, actor=ADMIN)
    with pytest.raises(InvalidValue, match="cannot disable their own"):
        accounts.disable_user("root-wu", reason="oops", actor=ADMIN)
    assert accounts.users() == []
