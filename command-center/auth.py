"""Signing in to the command centre: login tokens and who a token says is acting.

A token is `<payload>.<signature>`: the payload (base64url JSON) names the user, their
credential version, when it was issued and when it expires; the signature is HMAC-SHA256 of
the payload with the deployment's secret key. Nothing is stored per token: every API process
with the same secret key checks any token, and a token stops working when it expires or when
its user's credential version moves on (password or role changed, disabled).

Checking the credential version needs the account. Reading it from the event store on every
request would put a store read in front of every call (the dashboard polls, the field page
reports), so each process keeps what it read for `ACCOUNT_CACHE_SECONDS`. A change made in
this process is seen at once (the accounts application tells the cache); a change made by
another process (the admin CLI, another API worker) is seen within those few seconds.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple

from cityops.command_center.login_guard import LoginGuard, LoginThrottled, PasswordHashing
from cityops.domain.accounts.account import AccountView, WrongPassword
from cityops.domain.accounts.application import Accounts
from cityops.domain.accounts.commands import ChangePassword
from cityops.domain.actors import Actor
from cityops.domain.clock import SecondsClock, real_seconds
from cityops.domain.commands import CommandContext
from cityops.domain.errors import DomainError

ACCOUNT_CACHE_SECONDS = 2.0
"""How long a process trusts an account it read: the longest a disabled user or a changed
password keeps working on another process."""
TOKEN_VERSION = 1


class NotAuthenticated(DomainError):
    """No valid login behind a request: no token, a bad or expired one, or an account that
    may no longer sign in. Answered with 401 and `WWW-Authenticate: Bearer`."""


@dataclass(frozen=True)
class IssuedToken:
    """A token as a login answers it."""

    token: str
    expires_at: datetime
    account: AccountView


class TokenClaims(NamedTuple):
    """Who a signed token speaks for, and the credentials it was issued under."""

    username: str
    credential_version: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Authenticator:
    """Issues login tokens and turns a presented token into the acting `Actor`."""

    def __init__(self, accounts: Accounts, secret_key: str, *, ttl_minutes: int,
                 now: SecondsClock = real_seconds,
                 monotonic: Callable[[], float] = time.monotonic,
                 hashing: PasswordHashing | None = None,
                 guard: LoginGuard | None = None) -> None:
        if not secret_key:
            raise ValueError("the token secret key must not be empty")
        # A key of its own for tokens, derived from the deployment's secret.
        self._key = hashlib.sha256(b"cityops-login-token\x00" + secret_key.encode()).digest()
        self.accounts = accounts
        self.ttl_s = ttl_minutes * 60
        self._now = now
        self._monotonic = monotonic
        self._cache: dict[str, tuple[float, AccountView | None]] = {}
        self._lock = threading.Lock()
        self.logins: Counter[str] = Counter()
        """Login attempts of this process by outcome (succeeded, failed, throttled), for
        the metrics."""
        self.hashing = hashing or PasswordHashing(workers=1, queue=8)
        """Where passwords are checked and hashed (never on the request thread pool)."""
        self.guard = guard or LoginGuard(monotonic)
        accounts.on_change.append(self.forget)

    # --- tokens -------------------------------------------------------------------------------

    def issue(self, username: str) -> IssuedToken:
        """A token for an enabled account (the login has checked its password)."""
        account = self.accounts.user(username).view()
        if not account.enabled:
            raise NotAuthenticated(f"account {account.username!r} is disabled")
        issued = int(self._now())
        expires = issued + self.ttl_s
        payload = {"v": TOKEN_VERSION, "sub": account.username,
                   "cv": account.credential_version, "iat": issued, "exp": expires}
        body = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
        token = f"{body}.{self._sign(body)}"
        return IssuedToken(token=token, expires_at=datetime.fromtimestamp(expires, UTC),
                           account=account)

    def issue_token(self, username: str) -> str:
        return self.issue(username).token

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self._key, body.encode(), hashlib.sha256).digest())

    def account_for_token(self, token: str) -> AccountView:
        """The account a token speaks for, or `NotAuthenticated` saying why not."""
        return self.account(self.claims(token))

    def account(self, claims: TokenClaims) -> AccountView:
        """The account of a token's claims if they still hold (it may read the account from
        its store: a blocking read)."""
        return self._checked(claims, self._account(claims.username))

    def cached_account(self, claims: TokenClaims) -> AccountView | None:
        """`account` from the account cache alone, without blocking: None when the account
        would have to be read from its store."""
        cached = self._cached(claims.username)
        return None if cached is None else self._checked(claims, cached[0])

    def claims(self, token: str) -> TokenClaims:
        """What a well-formed, signed, unexpired token says, or `NotAuthenticated`."""
        # Tokens are ASCII (base64url): anything else is refused before it is compared
        # (hmac.compare_digest refuses non-ASCII text with a TypeError).
        if not isinstance(token, str) or not token.isascii() or token.count(".") != 1:
            raise NotAuthenticated("the bearer token is malformed; log in again")
        body, signature = token.split(".")
        if not hmac.compare_digest(signature, self._sign(body)):
            raise NotAuthenticated("the bearer token's signature is not valid; log in again")
        try:
            payload = json.loads(_unb64(body))
            username, version = str(payload["sub"]), int(payload["cv"])
            expires = int(payload["exp"])
        except (ValueError, KeyError, TypeError):
            raise NotAuthenticated("the bearer token is malformed; log in again") from None
        if self._now() >= expires:
            raise NotAuthenticated("the login has expired; log in again")
        return TokenClaims(username, version)

    @staticmethod
    def _checked(claims: TokenClaims, account: AccountView | None) -> AccountView:
        if account is None:
            raise NotAuthenticated(f"user {claims.username!r} no longer exists")
        if not account.enabled:
            raise NotAuthenticated(f"account {account.username!r} is disabled")
        if account.credential_version != claims.credential_version:
            raise NotAuthenticated("the credentials of this account changed since this login "
                                   "(password, role or department); log in again")
        return account

    def actor_for_token(self, token: str) -> Actor:
        """Who acts with this token: `Actor(user_id=username, role, department)`."""
        return self.account_for_token(token).actor()

    # --- the account cache --------------------------------------------------------------------

    def _cached(self, username: str) -> tuple[AccountView | None] | None:
        """(the account or None if there is none) while the cache may answer, else None."""
        with self._lock:
            cached = self._cache.get(username.casefold())
        if cached is not None and self._monotonic() - cached[0] < ACCOUNT_CACHE_SECONDS:
            return (cached[1],)
        return None

    def _account(self, username: str) -> AccountView | None:
        cached = self._cached(username)
        if cached is not None:
            return cached[0]
        now = self._monotonic()
        found = self.accounts.find_user(username)
        view = found.view() if found is not None else None
        with self._lock:
            self._cache[username.casefold()] = (now, view)
        return view

    def forget(self, username: str) -> None:
        """Drop a cached account (it was just changed in this process)."""
        with self._lock:
            self._cache.pop(username.casefold(), None)

    # --- logins ---------------------------------------------------------------------------

    async def login(self, username: str, password: str, source: str) -> IssuedToken:
        """Check a username and password (from the client address `source`) and issue a
        token; the same answer for an unknown user and a wrong password, at the same cost,
        and a growing pause after repeated failures from that source (`LoginGuard`)."""
        name = username if isinstance(username, str) else ""
        try:
            self.guard.check(name, source)
        except LoginThrottled:
            self._count_login("throttled")
            raise
        outcome = await self.hashing.run(self._checked_login, username, password)
        if outcome is None:
            self.guard.failed(name, source)
            self._count_login("failed")
            raise NotAuthenticated("wrong username or password")
        self.guard.succeeded(name, source)
        if isinstance(outcome, NotAuthenticated):
            self._count_login("failed")
            raise outcome
        self._count_login("succeeded")
        return outcome

    def _count_login(self, outcome: str) -> None:
        with self._lock:
            self.logins[outcome] += 1

    def _checked_login(self, username: str, password: str) -> IssuedToken | NotAuthenticated | None:
        account = self.accounts.authenticate(username, password)
        if account is None:
            return None
        if not account.enabled:
            return NotAuthenticated(f"account {account.username!r} is disabled")
        return self.issue(account.username)

    async def change_password(self, actor: Actor, *, current: str, new: str,
                              source: str) -> IssuedToken:
        """A user changes their own password: the current one is checked like a login
        (throttled the same way, hashed in the same pool); the answer is a fresh token."""
        self.guard.check(actor.user_id, source)
        try:
            await self.hashing.run(
                self.accounts.handle,
                ChangePassword(username=actor.user_id, current=current, new=new),
                CommandContext(actor=actor))
        except WrongPassword:
            self.guard.failed(actor.user_id, source)
            raise
        self.guard.succeeded(actor.user_id, source)
        return await asyncio.to_thread(self.issue, actor.user_id)

    def close(self) -> None:
        self.hashing.close()
