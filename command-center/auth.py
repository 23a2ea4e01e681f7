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

from cityops.domain.accounts import Accounts, AccountView
from cityops.domain.actors import Actor
from cityops.domain.clock import SecondsClock, real_seconds
from cityops.domain.errors import DomainError

ACCOUNT_CACHE_SECONDS = 2.0
"""How long a process trusts an account it read: the longest a disabled user or a changed
password keeps working on another process."""
FAILED_LOGIN_LIMIT = 5
FAILED_LOGIN_WINDOW_S = 300.0
"""After this many failed logins for one username within the window, further attempts are
refused until the oldest failure leaves the window (per process)."""
MAX_THROTTLED_NAMES = 10_000
TOKEN_VERSION = 1


class NotAuthenticated(DomainError):
    """No valid login behind a request: no token, a bad or expired one, or an account that
    may no longer sign in. Answered with 401 and `WWW-Authenticate: Bearer`."""


class LoginThrottled(DomainError):
    """Too many failed logins for one username: refused for a while (429)."""

    def __init__(self, username: str, retry_after_s: int) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(f"too many failed logins for {username!r}; try again in "
                         f"{retry_after_s} s")


@dataclass(frozen=True)
class IssuedToken:
    """A token as a login answers it."""

    token: str
    expires_at: datetime
    account: AccountView


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Authenticator:
    """Issues login tokens and turns a presented token into the acting `Actor`."""

    def __init__(self, accounts: Accounts, secret_key: str, *, ttl_minutes: int,
                 now: SecondsClock = real_seconds,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        if not secret_key:
            raise ValueError("the token secret key must not be empty")
        # A key of its own for tokens, derived from the deployment's secret.
        self._key = hashlib.sha256(b"cityops-login-token\x00" + secret_key.encode()).digest()
        self.accounts = accounts
        self.ttl_s = ttl_minutes * 60
        self._now = now
        self._monotonic = monotonic
        self._cache: dict[str, tuple[float, AccountView | None]] = {}
        self._failures: dict[str, list[float]] = {}
        self._lock = threading.Lock()
        self.logins: Counter[str] = Counter()
        """Login attempts of this process by outcome (succeeded, failed, throttled), for
        the metrics."""
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
        account = self._account(username)
        if account is None:
            raise NotAuthenticated(f"user {username!r} no longer exists")
        if not account.enabled:
            raise NotAuthenticated(f"account {account.username!r} is disabled")
        if account.credential_version != version:
            raise NotAuthenticated("the credentials of this account changed since this login "
                                   "(password, role or department); log in again")
        return account

    def actor_for_token(self, token: str) -> Actor:
        """Who acts with this token: `Actor(user_id=username, role, department)`."""
        return self.account_for_token(token).actor()

    # --- the account cache --------------------------------------------------------------------

    def _account(self, username: str) -> AccountView | None:
        key = username.casefold()
        now = self._monotonic()
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None and now - cached[0] < ACCOUNT_CACHE_SECONDS:
            return cached[1]
        found = self.accounts.find_user(username)
        view = found.view() if found is not None else None
        with self._lock:
            self._cache[key] = (now, view)
        return view

    def forget(self, username: str) -> None:
        """Drop a cached account (it was just changed in this process)."""
        with self._lock:
            self._cache.pop(username.casefold(), None)

    # --- logins -------------------------------------------------------------------------------

    def login(self, username: str, password: str) -> IssuedToken:
        """Check a username and password and issue a token; the same answer for an unknown
        user and a wrong password, and a pause after repeated failures."""
        key = username.casefold() if isinstance(username, str) else ""
        try:
            self._check_throttle(username, key)
        except LoginThrottled:
            self._count_login("throttled")
            raise
        account = self.accounts.authenticate(username, password)
        if account is None:
            self._count_login("failed")
            with self._lock:
                now = self._monotonic()
                if len(self._failures) > MAX_THROTTLED_NAMES:
                    # Many names tried (a spray): keep only those failing within the window.
                    self._failures = {k: v for k, v in self._failures.items()
                                      if now - v[-1] < FAILED_LOGIN_WINDOW_S}
                self._failures.setdefault(key, []).append(now)
            raise NotAuthenticated("wrong username or password")
        with self._lock:
            self._failures.pop(key, None)
        if not account.enabled:
            self._count_login("failed")
            raise NotAuthenticated(f"account {account.username!r} is disabled")
        issued = self.issue(account.username)
        self._count_login("succeeded")
        return issued

    def _count_login(self, outcome: str) -> None:
        with self._lock:
            self.logins[outcome] += 1

    def _check_throttle(self, username: str, key: str) -> None:
        now = self._monotonic()
        with self._lock:
            recent = [t for t in self._failures.get(key, []) if now - t < FAILED_LOGIN_WINDOW_S]
            if recent:
                self._failures[key] = recent
            else:
                self._failures.pop(key, None)
        if len(recent) >= FAILED_LOGIN_LIMIT:
            wait = int(FAILED_LOGIN_WINDOW_S - (now - recent[0])) + 1
            raise LoginThrottled(username, wait)
