"""The live hub of one API process: tails the read models' change log and pushes what each
WebSocket client subscribed to, without one slow client slowing the others.

One asyncio task tails `live_changes` of the active generation (a poll every
`poll_interval_s`; on PostgreSQL a LISTEN connection wakes it at once, and a local follower's
commit wakes it too) and hands each change to every client whose subscription it concerns.
Each client has a bounded queue drained by its own sender task: a client whose queue is full
is dropped behind — its queue is emptied and it is told to `resync` and sent a new snapshot
when it reads again; the hub never waits for it.

Positions. A client's position is the `seq` of the last change-log row it has been sent (or
that its snapshot is known to include). The snapshot reads the head of the log first, then
the rows: it shows at least everything up to its position, and perhaps a little more; a
change after the position that it already shows is then sent again as a change (clients
apply changes as upserts, so nothing is lost or doubled in effect). A message is never sent
for a position at or below the client's position: positions only go forward. Resuming from
{generation, position} replays the rows after it (filtered) and goes on live; a position of
another generation, or older than the rows kept (`live_retention_minutes`), or too far behind
(`replay_limit` rows) gets `resync` and a snapshot instead.

Scope. What a department user may see is decided by command-center/scopes.py, as for the
REST API: every change (its state after, and before the batch) and every presence passes
`feature_in_scope`; snapshots of incidents and warnings use its SQL twin `layer_scope_where`.

Credentials. A socket is authenticated once, by its hello; it then stays bound to that
login. The hub follows the accounts store's own notification log (woken by its PostgreSQL
NOTIFY, by a change made in this process, and at the latest every `ACCOUNT_POLL_S`), so a
change made through any process reaches every process: when a user's credentials change,
each of their open sockets is checked against the account as it now is. Disabled (or
gone): closed with 1008. Password, role or department changed: the login the socket was
opened with is no longer valid (as for REST), so it is closed with 4401 saying what changed;
the client logs in again and reconnects, and gets the snapshot of its new scope. A socket is
also checked once right after it connects, against a fresh read of the account (the hello's
check may use a cached account up to a couple of seconds old).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import orjson

from cityops.command_center.scopes import feature_in_scope, layer_scope_where, scope_of
from cityops.command_center.server_time import clock_reading
from cityops.command_center.sharing import DocumentView, hidden_by_layer
from cityops.domain.accounts.account import AccountView, UserAccount
from cityops.domain.accounts.application import Accounts
from cityops.domain.actors import Actor
from cityops.domain.clock import Clock, rate_of, system_clock
from cityops.domain.errors import DomainError
from cityops.domain.former_topics import stored_topics
from cityops.domain.model import CityAggregate
from cityops.domain.sharing import SharingPolicy
from cityops.domain.supervision import Light
from cityops.projections.generations import Generation, ReadModelGenerations
from cityops.projections.live_changes import (
    LIVE_LAYERS,
    PRESENCE,
    ChangeRow,
    FilterValues,
    LiveChangeLog,
    LiveLayer,
    live_channel,
)
from cityops.projections.spatial import Feature
from cityops.projections.views import ReadModels, case_light, case_light_sql
from cityops.settings import Settings
from cityops.storage import PostgresListener, ReadStore, row_document

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 10.0
"""How long a shutdown waits for the hub's tasks (they are cancelled and told to stop)."""

SNAPSHOT_LIMIT = 2000
"""Features per layer in a snapshot at most (the most recently updated first); the snapshot
says how many matched, so a client knows when it does not have them all."""
SNAPSHOT_READERS = 2
"""Layers of a snapshot read at once on PostgreSQL (a connection each, of the read pool's):
two cores' worth, leaving the pool's other connections to the other questions."""
REPLAY_LIMIT = 10_000
"""Rows a resume may replay at most; further behind, a snapshot is cheaper."""
HEARTBEAT_S = 5.0
PRESENCE_TTL = timedelta(seconds=60)
PRESENCE_REFRESH_S = 20.0
"""A viewer's presence is written again on its pings at most this often (it expires
`PRESENCE_TTL` after it was last written)."""
READ_BATCH = 1000
ACCOUNT_POLL_S = 1.0
"""How often the hub looks for account changes when nothing woke it (SQLite; a lost LISTEN
connection): the longest a disabled user's socket stays open."""
ACCOUNT_READ_BATCH = 500
ACCOUNT_TOPICS = tuple(topic for cls in vars(UserAccount).values()
                       if isinstance(cls, type) and issubclass(cls, CityAggregate.Event)
                       for topic in stored_topics(cls))
"""The events of user accounts in the accounts store (what a recheck follows)."""
DISABLED = 1008
"""Close code of a socket whose user was disabled (policy violation)."""
CREDENTIALS_CHANGED = 4401
"""Close code of a socket whose login is no longer valid (log in again, then reconnect)."""


class LiveSources(Protocol):
    """What the live hub reads of the system (the composition root hands it the whole
    `CitySystem`, which has all of it)."""

    settings: Settings
    """Where the database is (the LISTEN connection and the change log's channel)."""

    generations: ReadModelGenerations
    """The read models' generations: the active one's change log and tables."""

    read_models: ReadModels
    """The grid cases' supervision lights, for the snapshots' filters."""

    accounts: Accounts
    """Users: a change of credentials ends their sockets."""

    sharing: SharingPolicy
    """Which document keys each user may not see."""

    @property
    def clock(self) -> Clock:
        """The system's clock (lights, and the time snapshots are taken at)."""


class SessionEnded(Exception):
    """The hub ended a client's session (its account changed): close with this code."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class JsonText:
    """A JSON value as the database wrote it, written into a message as it is (not a
    dataclass: orjson would write those itself, as objects)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def _as_orjson(value: Any) -> Any:
    return orjson.Fragment(value.text) if isinstance(value, JsonText) else str(value)


def _as_json(value: Any) -> Any:
    return json.loads(value.text) if isinstance(value, JsonText) else str(value)


def _dumps(message: Mapping[str, Any]) -> str:
    """A message's text, written by orjson: a snapshot is megabytes of documents (the
    standard encoder took about 50 ms of a 3,000-feature snapshot), and every change frame
    of the push passes here. Non-ASCII text is written as UTF-8, a float below 1e-4 in
    orjson's own form (`0.00001`); a time, as before, as `str` gives it; `JsonText` as it
    is."""
    try:
        return orjson.dumps(message, default=_as_orjson,
                            option=orjson.OPT_PASSTHROUGH_DATETIME).decode()
    except (TypeError, orjson.JSONEncodeError):  # an integer beyond 64 bits
        return json.dumps(message, ensure_ascii=False, separators=(",", ":"),
                          default=_as_json)


def _document_text(dialect: str, layer: LiveLayer, now: datetime) -> tuple[str, list[Any]]:
    """SQL of a row's document as JSON text, with a grid case's light at `now`."""
    if not layer.lights:
        return ("doc::text" if dialect == "postgres" else "doc"), []
    light, params = case_light_sql(now)
    if dialect == "postgres":
        return f"(doc || jsonb_build_object('light', {light}))::text", params
    return f"json_set(doc, '$.light', {light})", params


def visible_to(actor: Actor, layer_id: str, doc: dict[str, Any],
               sharing: SharingPolicy) -> bool:
    """Whether `actor` may see an item of the layer with this document (or the part of it
    that decides: `FilterValues.scope_document`), by the REST API's own rule."""
    return feature_in_scope(layer_id, Feature(id="", geometry=None, doc=doc), actor, sharing)


# --- subscriptions -------------------------------------------------------------------------


@dataclass(frozen=True)
class Subscription:
    """What a client wants pushed: layers, and filters that every item must pass."""

    layers: frozenset[str]
    bbox: tuple[float, float, float, float] | None = None
    categories: frozenset[str] | None = None
    levels: frozenset[str] | None = None
    lights: frozenset[str] | None = None
    department: str | None = None
    """Only items of this department on the layers whose items belong to one (always the
    user's own for a department user); incidents and hazard sources are not narrowed by it:
    the user's scope decides them."""

    @property
    def presence(self) -> bool:
        return PRESENCE in self.layers

    def scoped_to(self, actor: Actor) -> Subscription:
        """The subscription as `actor` may have it: a department user only ever gets their
        own department's items, whatever they asked."""
        department = scope_of(actor)
        if department is not None:
            return Subscription(self.layers, self.bbox, self.categories, self.levels,
                                self.lights, department)
        return self

    def matches(self, layer: LiveLayer, values: FilterValues) -> bool:
        """Whether an item of `layer` with these filter values belongs to the subscription."""
        if self.bbox is not None:
            if values.lon is None or values.lat is None:
                return False
            min_lon, min_lat, max_lon, max_lat = self.bbox
            if not (min_lon <= values.lon <= max_lon and min_lat <= values.lat <= max_lat):
                return False
        if self.categories is not None and values.category not in self.categories:
            return False
        if self.levels is not None and layer.level is not None \
                and values.level not in self.levels:
            return False
        if self.lights is not None and layer.lights and values.light not in self.lights:
            return False
        # Only layers whose items belong to one department are narrowed to one; who may see
        # an incident or a hazard source is the user's scope (`visible_to`), not a filter.
        return (self.department is None or layer.department is None
                or values.department == self.department)

    def as_dict(self) -> dict[str, Any]:
        """The subscription as the protocol writes it (the effective one, after scoping)."""
        return {
            "layers": sorted(self.layers),
            "bbox": list(self.bbox) if self.bbox is not None else None,
            "categories": sorted(self.categories) if self.categories is not None else None,
            "levels": sorted(self.levels) if self.levels is not None else None,
            "lights": sorted(self.lights) if self.lights is not None else None,
            "department": self.department,
        }


# --- what is pushed ------------------------------------------------------------------------


def feature(item_id: str, geometry: dict[str, Any] | None,
            properties: dict[str, Any]) -> dict[str, Any]:
    """A GeoJSON Feature of a read-model document."""
    return {"type": "Feature", "id": item_id, "geometry": geometry, "properties": properties}


class PushedChange:
    """A change-log row on its way to clients: its message, encoded once per way of
    showing it (with the keys a viewer may not see removed, or as a removal)."""

    def __init__(self, row: ChangeRow, generation: int, sharing: SharingPolicy) -> None:
        self.row = row
        self.sharing = sharing
        self.layer = LIVE_LAYERS[row.layer]
        self.generation = generation
        self._texts: dict[DocumentView | None, str] = {}

    def _message(self, doc: dict[str, Any] | None) -> str:
        row = self.row
        return _dumps({
            "type": "change", "generation": self.generation, "position": row.seq,
            "layer": row.layer, "id": row.item_id, "events": row.events, "at": row.at,
            "feature": feature(row.item_id, row.geometry, doc) if doc is not None else None,
        })

    def text_for(self, client: LiveClient) -> str | None:
        """The message for `client`, or None if the change does not concern it."""
        subscription = client.subscription
        row = self.row
        if row.layer not in subscription.layers:
            return None
        if subscription.matches(self.layer, row.values) \
                and visible_to(client.actor, row.layer, row.doc or {}, self.sharing):
            way: DocumentView | None = client.hidden.get(row.layer, DocumentView())
        elif row.previous is not None and subscription.matches(self.layer, row.previous) \
                and visible_to(client.actor, row.layer, row.previous.scope_document(),
                               self.sharing):
            # It has just left the subscription or the user's scope: the client drops it.
            way = None  # removed
        else:
            return None
        text = self._texts.get(way)
        if text is None:
            doc = self.row.doc
            if way and doc is not None:
                doc = way.apply(doc)
            text = self._texts[way] = self._message(None if way is None else doc)
        return text


@dataclass
class Viewer:
    """One connection viewing one item (from a presence row)."""

    user_id: str
    role: str
    layer: str
    item_id: str
    since: str
    expires_at: datetime
    department: str | None
    scope: dict[str, Any]
    """What decides who may see the item (`FilterValues.scope_document`), as it was when
    the presence was written."""


class PresenceBoard:
    """Who is viewing what, as the presence rows of every process tell it."""

    def __init__(self) -> None:
        self.viewers: dict[str, Viewer] = {}
        """Connection id -> what it views."""

    def apply(self, row: ChangeRow) -> set[tuple[str, str]]:
        """Take one presence row; the items whose viewers changed."""
        doc = row.doc or {}
        touched = set()
        old = self.viewers.pop(row.item_id, None)
        if old is not None:
            touched.add((old.layer, old.item_id))
        expires = doc.get("expires_at")
        if doc.get("id") and doc.get("layer") and expires:
            scope = doc.get("scope")
            viewer = Viewer(str(doc.get("user_id")), str(doc.get("role")), str(doc["layer"]),
                            str(doc["id"]), str(doc.get("since")),
                            datetime.fromisoformat(expires), row.values.department,
                            dict(scope) if isinstance(scope, dict)
                            else {"department": row.values.department})
            if viewer.expires_at > system_clock():
                self.viewers[row.item_id] = viewer
                touched.add((viewer.layer, viewer.item_id))
        return touched

    def expire(self, now: datetime) -> set[tuple[str, str]]:
        """Forget viewers whose presence expired; the items whose viewers changed."""
        gone = [c for c, v in self.viewers.items() if v.expires_at <= now]
        touched = set()
        for connection in gone:
            viewer = self.viewers.pop(connection)
            touched.add((viewer.layer, viewer.item_id))
        return touched

    def of(self, layer: str, item_id: str) -> tuple[list[dict[str, str]], dict[str, Any]]:
        """The viewers of one item (one entry per user, their earliest since) and what
        decides who may see the item (the latest written)."""
        users: dict[str, dict[str, str]] = {}
        scope: dict[str, Any] = {}
        for viewer in self.viewers.values():
            if viewer.layer == layer and viewer.item_id == item_id:
                scope = viewer.scope
                seen = users.get(viewer.user_id)
                if seen is None or viewer.since < seen["since"]:
                    users[viewer.user_id] = {"user_id": viewer.user_id, "role": viewer.role,
                                             "since": viewer.since}
        return sorted(users.values(), key=lambda v: (v["since"], v["user_id"])), scope

    def items(self) -> set[tuple[str, str]]:
        return {(v.layer, v.item_id) for v in self.viewers.values()}


def presence_text(board: PresenceBoard, layer: str,
                  item_id: str) -> tuple[str, dict[str, Any]]:
    """The `presence` message of one item, and what decides who may see the item."""
    viewers, scope = board.of(layer, item_id)
    return _dumps({"type": "presence", "layer": layer, "id": item_id,
                   "viewers": viewers}), scope


def presence_allowed(client: LiveClient, layer: str, scope: dict[str, Any],
                     sharing: SharingPolicy) -> bool:
    """Whether `client` may see who views an item of `layer` (`scope`: what decides who
    may see the item): it subscribed to presence, the item passes its department filter,
    and the user may see the item."""
    subscription = client.subscription
    live_layer = LIVE_LAYERS.get(layer)
    if not subscription.presence or live_layer is None:
        return False
    if subscription.department is not None and live_layer.department is not None \
            and scope.get("department") != subscription.department:
        return False
    return visible_to(client.actor, layer, scope, sharing)


# --- clients ---------------------------------------------------------------------------------


class Outbox(Protocol):
    """Where a client's messages go (a WebSocket's `send_text`)."""

    async def send_text(self, data: str) -> None: ...


@dataclass(eq=False)
class LiveClient:
    """One connected WebSocket client: who it is, what it wants, and what waits for it."""

    actor: Actor
    subscription: Subscription
    outbox: Outbox
    queue_size: int
    connection_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    position: int = 0
    generation: int = 0
    queue: deque[tuple[int | None, str, bool]] = field(default_factory=deque)
    """(position, message, whether it is a heartbeat) in order."""
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    pending: tuple[str, Any] | None = None
    """What the sender must do before sending queued messages: ("snapshot", None),
    ("resync", reason) or ("resume", (generation, position))."""
    closed: bool = False
    resyncs: int = 0
    viewing: tuple[str, str] | None = None
    presence_written_at: float = 0.0
    batch_ms: int = 0
    """0: one frame per message; otherwise its changes travel together, in one `changes`
    frame at most every `batch_ms` ms."""
    holding: bool = False
    """Whether its sender is waiting for the end of a batch's tick (offers then do not
    wake it, unless its queue fills up)."""
    sent_at: float = -1e9
    """When (the loop's clock) its last batch was sent."""
    hidden: dict[str, DocumentView] = field(default_factory=dict)
    """Per layer, how this user sees its documents: the keys the sharing policy withholds
    from them, warnings as they went out (set by `LiveHub.connect` and `snapshot` from the
    system's policy)."""
    credential_version: int | None = None
    """The credential version of the login it was opened with (None: not checked)."""
    ending: tuple[int, str] | None = None
    """(close code, reason) once the hub has ended its session: nothing more is sent."""

    def offer(self, seq: int | None, text: str, *, heartbeat: bool = False) -> None:
        """Queue a message (with the position it brings the client to, if any); a full
        queue is dropped and the client told to resync."""
        if self.ending is not None or (self.pending is not None
                                       and self.pending[0] == "resync"):
            return  # ended, or it will get a snapshot: queued messages would be skipped
        if len(self.queue) >= self.queue_size:
            self.queue.clear()
            self.pending = ("resync", f"too far behind: more than {self.queue_size} messages "
                                      "were waiting for this client")
        else:
            self.queue.append((seq, text, heartbeat))
            if self.holding and len(self.queue) < self.queue_size // 2:
                return  # the end of its tick wakes it; a filling queue cuts the tick short
        self.wake.set()

    def demand(self, action: str, argument: Any = None) -> None:
        """Have the sender start over with a snapshot (or resume) before anything queued."""
        if self.ending is not None:
            return
        self.queue.clear()
        self.pending = (action, argument)
        self.wake.set()

    def end(self, code: int, reason: str) -> None:
        """End the session: nothing more is sent, the sender stops with `SessionEnded`."""
        self.ending = (code, reason)
        self.queue.clear()
        self.pending = None
        self.wake.set()


REPLAY_FRAME = 500
"""Changes per `changes` frame at most in a batched client's replay."""


def changes_frame(generation: int, position: int, texts: Sequence[str]) -> str:
    """A `changes` frame of already encoded `change` messages (in order; `position`: the
    last one's): joined as they are, not encoded again for each client."""
    return (f'{{"type":"changes","generation":{generation},"position":{position},'
            f'"changes":[{",".join(texts)}]}}')


class LiveHub:
    """Tails the change log of the active read-model generation and feeds the clients."""

    def __init__(self, system: LiveSources, *, queue_size: int = 1000,
                 poll_interval_s: float = 0.1, heartbeat_s: float = HEARTBEAT_S,
                 snapshot_limit: int = SNAPSHOT_LIMIT, replay_limit: int = REPLAY_LIMIT) -> None:
        self.system = system
        self.queue_size = queue_size
        self.poll_interval_s = poll_interval_s
        self.heartbeat_s = heartbeat_s
        self.snapshot_limit = snapshot_limit
        self.replay_limit = replay_limit
        self.log = system.generations.live_changes or LiveChangeLog()
        self.clients: set[LiveClient] = set()
        self.generation = 0
        self.head = 0
        self.board = PresenceBoard()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._heartbeat_at = 0.0
        self.failures = 0
        self.connections = 0
        """Clients registered since start (the metrics' count of connections)."""
        self.resyncs = 0
        """Clients told to resync since start: too far behind, a gap, a rebuild."""
        self.accounts_position = 0
        """The accounts store's notification log as far as it was checked."""
        self._accounts_wake = asyncio.Event()
        self._to_recheck: set[LiveClient] = set()
        self.listener: PostgresListener | None = None
        """On PostgreSQL: the LISTEN connection that wakes the tailer and the account
        checks when another process writes (they poll too)."""
        self._changes_channel: str | None = None
        self._accounts_channel: str | None = None
        self.account_listeners: list[Callable[[str], object]] = []
        """Called with the username of every account that changed, in whatever process
        (an in-process cache of accounts forgets it)."""

    # --- life -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start tailing from the head of the log (clients get snapshots, not history)."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()  # of this loop (an app may be started more than once)
        self._stopping = False
        self.generation, store = await asyncio.to_thread(self._active)
        self.head = await asyncio.to_thread(LiveChangeLog.head, store)
        rows = await asyncio.to_thread(LiveChangeLog.presence_since, store,
                                       system_clock() - PRESENCE_TTL)
        for row in rows:
            self.board.apply(row)
        self.system.generations.listen(self._local_commit)
        self._tasks.append(asyncio.create_task(self._tail(), name="cityops-live-tail"))
        self._accounts_wake = asyncio.Event()
        self.accounts_position = await asyncio.to_thread(self._accounts_head)
        self.system.accounts.on_change.append(self._local_account_change)
        self._tasks.append(asyncio.create_task(self._watch_accounts(),
                                               name="cityops-live-accounts"))
        settings = self.system.settings
        if settings.database_url is not None:
            # The change log's NOTIFY (a follower of any process wrote to it), and the
            # accounts store's own (the library sends it on every insert): a change of
            # credentials made by any process reaches this one at once.
            self._changes_channel = live_channel(settings.database_schema)
            self._accounts_channel = getattr(self.system.accounts.recorder, "channel_name",
                                             None)
            channels = [self._changes_channel]
            if isinstance(self._accounts_channel, str):
                channels.append(self._accounts_channel)
            self.listener = PostgresListener(settings.database_url, channels, self._notified,
                                             purpose="live push")
            self.listener.start()

    async def stop(self) -> None:
        """Stop tailing; clients' connections are closed by their endpoints."""
        for listeners in (self.system.generations.listeners(name)
                          for name in self.system.generations.tables):
            if self._local_commit in listeners:
                listeners.remove(self._local_commit)
        if self._local_account_change in self.system.accounts.on_change:
            self.system.accounts.on_change.remove(self._local_account_change)
        # The loops also check a flag: on Python 3.11 `wait_for` can swallow a cancellation
        # that arrives just as its inner wait completes, and the task would then run on
        # (this hung an application's shutdown).
        self._stopping = True
        self._wake.set()
        self._accounts_wake.set()
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=STOP_TIMEOUT_S)
            if pending:
                log.error("live push: %d task(s) did not stop within %.0f s: %s",
                          len(pending), STOP_TIMEOUT_S, [t.get_name() for t in pending])
        self._tasks.clear()
        if self.listener is not None:
            await asyncio.to_thread(self.listener.stop)
            self.listener = None

    def _local_commit(self, _: Sequence[Any]) -> None:
        """A follower of this process committed a batch (its thread): tail now."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._wake.set)

    def wake(self) -> None:
        """Tail now (after this process wrote to the log)."""
        self._wake.set()

    def _local_account_change(self, _: str) -> None:
        """An account was changed by this process (any thread): check the sockets now."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._accounts_wake.set)

    def _active(self) -> tuple[int, ReadStore]:
        generation = self.system.generations.active()
        return generation.number, generation.store

    def _notified(self, channel: str) -> None:
        """A NOTIFY of the change log or of the accounts store (the listener's thread)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            wake = (self._accounts_wake if channel == self._accounts_channel
                    else self._wake)
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(wake.set)

    # --- credentials -------------------------------------------------------------------------

    def _accounts_head(self) -> int:
        return self.system.accounts.recorder.max_notification_id() or 0

    async def _watch_accounts(self) -> None:
        await self._run_when_woken(lambda: self._accounts_wake, ACCOUNT_POLL_S,
                                   self.check_accounts, "checking account changes")

    async def _run_when_woken(self, wake: Callable[[], asyncio.Event], interval_s: float,
                              step: Callable[[], Awaitable[None]], what: str) -> None:
        """Run `step` whenever `wake()` is set, and at least every `interval_s`, until the
        hub stops; a failure is logged and retried after `interval_s`."""
        while not self._stopping:
            event = wake()  # (`start` makes new events: the loop's own)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), interval_s)
            if self._stopping:
                break
            event.clear()
            try:
                await step()
            except asyncio.CancelledError:
                raise
            except Exception:
                self.failures += 1
                log.exception("live push: %s failed; retrying", what)
                await asyncio.sleep(interval_s)

    async def check_accounts(self) -> None:
        """Check the sockets of every user whose account changed since the last look (and
        those just connected) against their account as it is now."""
        changed, position = await asyncio.to_thread(self._changed_accounts,
                                                    self.accounts_position)
        fresh, self._to_recheck = self._to_recheck, set()
        concerned = [c for c in self.clients if c.credential_version is not None
                     and (c in fresh or UserAccount.create_id(c.actor.user_id) in changed)]
        ids = changed | {UserAccount.create_id(c.actor.user_id) for c in concerned}
        views = await asyncio.to_thread(self._account_views, ids) if ids else {}
        self.accounts_position = position
        for account_id in changed:
            view = views.get(account_id)
            if view is not None:
                for listener in self.account_listeners:
                    listener(view.username)
        for client in concerned:
            self._recheck(client, views.get(UserAccount.create_id(client.actor.user_id)))

    def _changed_accounts(self, position: int) -> tuple[set[uuid.UUID], int]:
        """Ids of the user accounts with events after `position` in the accounts store's
        notification log, and the log's head (writes to one store are serialised, so no
        event below the head can appear later)."""
        recorder = self.system.accounts.recorder
        head = recorder.max_notification_id() or 0
        changed: set[uuid.UUID] = set()
        start = position + 1
        while start <= head:
            batch = recorder.select_notifications(start, ACCOUNT_READ_BATCH, stop=head,
                                                  topics=ACCOUNT_TOPICS)
            for notification in batch:
                originator = notification.originator_id
                changed.add(originator if isinstance(originator, uuid.UUID)
                            else uuid.UUID(str(originator)))
            if len(batch) < ACCOUNT_READ_BATCH:
                break
            start = batch[-1].id + 1
        return changed, max(head, position)

    def _account_views(self, ids: set[uuid.UUID]) -> dict[uuid.UUID, AccountView]:
        """The accounts as they are now, read from the store (not a cache of this hub)."""
        views = {}
        for account_id in ids:
            with contextlib.suppress(DomainError):
                views[account_id] = self.system.accounts.load(UserAccount, account_id).view()
        return views

    def _recheck(self, client: LiveClient, account: AccountView | None) -> None:
        """End the client's session if its login no longer holds (see the module's text)."""
        name = client.actor.user_id
        if account is None:
            self._end(client, DISABLED, f"account {name!r} no longer exists; this connection "
                                        "is closed")
        elif not account.enabled:
            self._end(client, DISABLED, f"account {name!r} is disabled; this connection is "
                                        "closed")
        elif account.credential_version != client.credential_version:
            actor = client.actor
            if (account.role, account.department) != (actor.role, actor.department):
                now = account.role.value + (f" of {account.department}"
                                            if account.department else "")
                what = f"the role or department of this account changed (now {now})"
            else:
                what = "the password of this account changed"
            self._end(client, CREDENTIALS_CHANGED, f"{what}; log in again and reconnect")

    def _end(self, client: LiveClient, code: int, reason: str) -> None:
        self.clients.discard(client)
        client.end(code, reason)

    # --- tailing ----------------------------------------------------------------------------

    async def _tail(self) -> None:
        await self._run_when_woken(lambda: self._wake, self.poll_interval_s,
                                   self._tail_once, "tailing the change log")

    async def _tail_once(self) -> None:
        generation, store = await asyncio.to_thread(self._active)
        if generation != self.generation:
            self.head = await asyncio.to_thread(LiveChangeLog.head, store)
            self.generation = generation
            for client in list(self.clients):
                client.demand("resync", f"the read models were rebuilt (generation "
                                        f"{generation}); here is a fresh snapshot")
            return
        while True:
            rows = await asyncio.to_thread(LiveChangeLog.read, store, self.head, READ_BATCH)
            if rows:
                await self.dispatch(rows)
            if len(rows) < READ_BATCH:
                break
        now = time.monotonic()
        expired = self.board.expire(system_clock())
        if expired:
            self._push_presence(expired)
        if now - self._heartbeat_at >= self.heartbeat_s:
            self._heartbeat_at = now
            text = _dumps({"type": "position", "generation": self.generation,
                           "position": self.head, **clock_reading(self.system.clock)})
            for client in self.clients:
                if client.pending is None:
                    self._offer(client, self.head, text, heartbeat=True)

    async def dispatch(self, rows: Sequence[ChangeRow]) -> None:
        """Hand each row to the clients it concerns; never waits for a client. The rows
        of one read are handed out together, so that each sender wakes once for all of
        them (not once a row: the task switches cost more than the rows); only after each
        quarter of a client queue's worth of rows do the senders get their turn, so that a
        burst of rows (a follower's batch, a backlog) is not taken for a client falling
        behind."""
        chunk = max(1, self.queue_size // 4)
        for start in range(0, len(rows), chunk):
            if start:
                await asyncio.sleep(0)
            # What a change is for a client depends only on who it is and what it
            # subscribed to (`PushedChange.text_for`): decided once per such audience, not
            # once per client (many dashboards follow the same city as the same role).
            audiences: dict[tuple[Actor, Subscription], list[LiveClient]] = {}
            for client in self.clients:
                audiences.setdefault((client.actor, client.subscription), []).append(client)
            groups = list(audiences.values())
            for row in rows[start:start + chunk]:
                self.head = max(self.head, row.seq)
                if row.layer == PRESENCE:
                    self._push_presence(self.board.apply(row))
                    continue
                if row.layer not in LIVE_LAYERS:
                    continue
                change = PushedChange(row, self.generation, self.system.sharing)
                for group in groups:
                    try:
                        text = change.text_for(group[0])
                    except Exception:
                        self._start_afresh(group)
                        continue
                    if text is not None:
                        for client in group:
                            # `_offer` written out: this loop runs for every client and
                            # change (a call more cost a fifth of an offer's time).
                            try:
                                client.offer(row.seq, text)
                            except Exception:
                                self._start_afresh([client])

    def _push_presence(self, items: set[tuple[str, str]]) -> None:
        # Presence messages are whole states: they go without a position and are never
        # skipped (a snapshot's own presence may predate them).
        for layer, item_id in sorted(items):
            text, scope = presence_text(self.board, layer, item_id)
            for client in self.clients:
                if presence_allowed(client, layer, scope, self.system.sharing):
                    self._offer(client, None, text)

    def _offer(self, client: LiveClient, seq: int | None, text: str, *,
               heartbeat: bool = False) -> None:
        """Queue a message for one client. If that fails (a bug), the client starts over
        with a fresh snapshot rather than miss the change: the hub has moved past it, and
        the other clients are offered it all the same (an exception here ended the round
        for all the clients after this one, and the change never reached them)."""
        try:
            client.offer(seq, text, heartbeat=heartbeat)
        except Exception:
            self._start_afresh([client])

    def _start_afresh(self, clients: Sequence[LiveClient]) -> None:
        """Send `clients` a fresh snapshot: a message for them could not be made or queued
        (called while handling that error, which is logged)."""
        log.exception("live push: a message could not be made or queued for %d client(s); "
                      "they are sent a fresh snapshot", len(clients))
        for client in clients:
            client.demand("resync", "a change could not be sent to this client; here is a "
                                    "fresh snapshot")

    # --- clients ------------------------------------------------------------------------------

    def connect(self, client: LiveClient, resume: tuple[int, int] | None) -> None:
        """Register a client: from now on it is offered every change; its sender starts
        with a snapshot, or with the replay of what it missed."""
        client.hidden = hidden_by_layer(self.system, client.actor)
        self.clients.add(client)
        self.connections += 1
        if resume is None:
            client.demand("snapshot")
        else:
            client.demand("resume", resume)
        if client.credential_version is not None:
            # Checked once more against a fresh read of the account: the hello's check may
            # have used one cached a moment before a change.
            self._to_recheck.add(client)
            self._accounts_wake.set()

    def disconnect(self, client: LiveClient) -> None:
        client.closed = True
        client.wake.set()
        self.clients.discard(client)

    async def run_sender(self, client: LiveClient) -> None:
        """Send the client its messages in order, until it is closed: what `pending` asks
        first, then what is queued (never a position at or below the client's)."""
        outbox = client.outbox
        while not client.closed:
            await client.wake.wait()
            client.wake.clear()
            if client.batch_ms and client.pending is None and client.queue:
                await self._hold(client)
            while not client.closed:
                if client.ending is not None:
                    raise SessionEnded(*client.ending)
                if client.pending is not None:
                    action, argument = client.pending
                    client.pending = None
                    await self._start_over(client, action, argument)
                    continue
                if not client.queue:
                    break
                if client.batch_ms:
                    await self._send_batch(client)
                    continue
                seq, text, heartbeat = client.queue.popleft()
                if seq is not None:
                    # A change at or below the client's position is in what it has; a
                    # heartbeat may repeat its position, never go back.
                    if seq < client.position or (seq == client.position and not heartbeat):
                        continue
                    client.position = seq
                await outbox.send_text(text)

    async def _hold(self, client: LiveClient) -> None:
        """Wait for the end of the client's tick (`batch_ms` after its last batch), so that
        what comes meanwhile travels in the same frame. After a quiet spell the tick is
        over already: the first change goes at once. A queue half full, a snapshot to
        send or a disconnect cut the wait short."""
        loop = asyncio.get_running_loop()
        delay = client.sent_at + client.batch_ms / 1000 - loop.time()
        if delay <= 0 or len(client.queue) >= client.queue_size // 2:
            return
        # A timer, not `wait_for`: one callback a tick, no task per wait.
        client.holding = True
        timer = loop.call_later(delay, client.wake.set)
        try:
            await client.wake.wait()
        finally:
            timer.cancel()
            client.holding = False
        client.wake.clear()

    async def _send_batch(self, client: LiveClient) -> None:
        """Send all that is queued for a batched client: its changes together, as
        `changes` frames of the already encoded messages (a presence, pong or heartbeat
        in between goes on its own, in its turn)."""
        outbox = client.outbox
        texts: list[str] = []
        last = client.position
        while client.queue:
            seq, text, heartbeat = client.queue.popleft()
            if seq is not None:
                if seq < client.position or (seq == client.position and not heartbeat):
                    continue
                client.position = seq
                if not heartbeat:
                    texts.append(text)
                    last = seq
                    continue
            if texts:
                await outbox.send_text(changes_frame(client.generation, last, texts))
                texts = []
            await outbox.send_text(text)
        if texts:
            await outbox.send_text(changes_frame(client.generation, last, texts))
        client.sent_at = asyncio.get_running_loop().time()

    async def _start_over(self, client: LiveClient, action: str, argument: Any) -> None:
        if action == "resume":
            generation, position = argument
            reason = await self._replay(client, generation, position)
            if reason is None:
                return
            action, argument = "resync", reason
        if action == "resync":
            client.resyncs += 1
            self.resyncs += 1
            await client.outbox.send_text(_dumps({"type": "resync", "reason": argument}))
        await self._send_snapshot(client)

    async def _send_snapshot(self, client: LiveClient) -> None:
        generation, position, text = await self.snapshot(client)
        same = generation == client.generation
        client.generation = generation
        client.position = max(client.position, position) if same else position
        await client.outbox.send_text(text)
        await self._send_presence(client)

    async def _send_presence(self, client: LiveClient) -> None:
        if not client.subscription.presence:
            return
        for layer, item_id in sorted(self.board.items()):
            text, scope = presence_text(self.board, layer, item_id)
            if presence_allowed(client, layer, scope, self.system.sharing):
                await client.outbox.send_text(text)

    async def _replay(self, client: LiveClient, generation: int, position: int) -> str | None:
        """Send what the client missed after `position`; the reason it cannot, if so."""
        active, store = await asyncio.to_thread(self._active)
        if generation != active:
            return (f"position {position} is of read-model generation {generation}; "
                    f"generation {active} serves now")
        bounds = await asyncio.to_thread(LiveChangeLog.bounds, store)
        if not LiveChangeLog.resumable(bounds, position):
            if position > bounds[1]:
                return f"position {position} is beyond the last change ({bounds[1]})"
            return (f"position {position} is older than the changes kept (from "
                    f"{bounds[0]}); here is a fresh snapshot")
        missed = await asyncio.to_thread(LiveChangeLog.count_after, store, position)
        if missed > self.replay_limit:
            return (f"{missed} changes happened since position {position}; here is a fresh "
                    "snapshot")
        rows = await asyncio.to_thread(LiveChangeLog.read, store, position, missed + 1)
        client.generation = active
        client.position = position
        held: list[str] = []  # a batched client's replay goes in `changes` frames
        held_last = position
        for row in rows:
            text = (PushedChange(row, active, self.system.sharing).text_for(client)
                    if row.layer in LIVE_LAYERS else None)
            if text is not None and client.batch_ms:
                held.append(text)
                held_last = row.seq
                if len(held) >= REPLAY_FRAME:
                    await client.outbox.send_text(changes_frame(active, held_last, held))
                    held = []
            elif text is not None:
                await client.outbox.send_text(text)
            client.position = row.seq
        if held:
            await client.outbox.send_text(changes_frame(active, held_last, held))
        await client.outbox.send_text(_dumps({"type": "position", "generation": active,
                                              "position": client.position}))
        await self._send_presence(client)
        return None

    # --- snapshots ----------------------------------------------------------------------------

    async def snapshot(self, client: LiveClient) -> tuple[int, int, str]:
        """The client's snapshot: (generation, position, message), for the subscription in
        force when it was asked (a `subscribe` meanwhile asks for one of its own). The
        position is read before the rows: they show at least everything up to it. Each
        layer is a question of its own, in a worker thread; on PostgreSQL two are read at
        once (at 1,000,000 grid cases the layers one after another took about 150 ms of a
        snapshot's 200, most of it the database writing out documents: bench/city_scale.py).
        SQLite takes a lock for every read transaction: its layers go one after another."""
        subscription = client.subscription
        generation, position, now, hidden = await asyncio.to_thread(self._snapshot_start,
                                                                    client)
        store = generation.store
        readers = asyncio.Semaphore(SNAPSHOT_READERS if store.dialect == "postgres" else 1)

        async def page(layer: LiveLayer) -> tuple[list[dict[str, Any]], int]:
            async with readers:
                return await asyncio.to_thread(self._snapshot_layer, store, layer,
                                               subscription, client.actor,
                                               hidden.get(layer.id), now)

        layer_ids = [layer_id for layer_id in sorted(subscription.layers)
                     if layer_id in LIVE_LAYERS]
        pages = await asyncio.gather(*(page(LIVE_LAYERS[layer_id]) for layer_id in layer_ids))
        layers = {layer_id: features for layer_id, (features, _) in zip(layer_ids, pages,
                                                                           strict=True)}
        limits = {layer_id: {"limit": self.snapshot_limit, "matched": matched,
                             "complete": matched <= self.snapshot_limit}
                  for layer_id, (_, matched) in zip(layer_ids, pages, strict=True)}
        # The time its lights were taken at: the page counts on from it.
        text = await asyncio.to_thread(_dumps, {
            "type": "snapshot", "generation": generation.number, "position": position,
            "layers": layers, "limits": limits, "subscription": subscription.as_dict(),
            "server_time": now.isoformat(), "clock_rate": rate_of(self.system.clock)})
        return generation.number, position, text

    def _snapshot_start(self, client: LiveClient
                        ) -> tuple[Generation, int, datetime, dict[str, DocumentView]]:
        """The generation, the change log's head and the time a snapshot is taken at, and
        what the client's role hides as of now (kept for its live changes too)."""
        generation = self.system.generations.active()
        position = LiveChangeLog.head(generation.store)
        client.hidden = hidden_by_layer(self.system, client.actor)
        return generation, position, self.system.clock(), client.hidden

    def _snapshot_layer(self, store: ReadStore, layer: LiveLayer, subscription: Subscription,
                        actor: Actor, view: DocumentView | None, now: datetime
                        ) -> tuple[list[dict[str, Any]], int]:
        """A layer's part of a snapshot (in a worker thread): its newest features for the
        subscription, as `view` shows them, and how many match in all."""
        features, matched = self._features(store, layer, subscription, actor, now,
                                           as_written=not view)
        if view:
            for item in features:
                item["properties"] = view.apply(item["properties"])
        return features, matched

    def _features(self, store: ReadStore, layer: LiveLayer, subscription: Subscription,
                  actor: Actor, now: datetime, *, as_written: bool = False
                  ) -> tuple[list[dict[str, Any]], int]:
        """The layer's newest features for the subscription, and how many match in all.
        `as_written`: the properties are the documents' text as the database gives it (with
        the light, computed in SQL), passed on without being decoded and encoded again
        (three fifths of a snapshot of 6,000 features at 1,000,000 grid cases)."""
        where: list[str] = []
        params: list[Any] = []
        if subscription.bbox is not None:
            min_lon, min_lat, max_lon, max_lat = subscription.bbox
            where.append("lon BETWEEN %s AND %s AND lat BETWEEN %s AND %s")
            params += [min_lon, max_lon, min_lat, max_lat]
        for column, allowed in ((layer.category, subscription.categories),
                                (layer.level, subscription.levels)):
            if column is not None and allowed is not None:
                where.append(_any_of(column, allowed, params))
        if layer.lights and subscription.lights is not None:
            clauses = []
            for light in sorted(subscription.lights):
                clause, clause_params = self.system.read_models.grid_case_lights(Light(light),
                                                                                 now)
                clauses.append(clause)
                params += clause_params
            where.append(f"({' OR '.join(clauses)})" if clauses else "1 = 0")
        if subscription.department is not None and layer.department is not None:
            # For a department user this is their scope on this layer (`scoped_to`).
            where.append(f"{layer.department} = %s")
            params.append(subscription.department)
        if layer.scope_in_doc:
            for clause, clause_params in layer_scope_where(layer.id, store.dialect, actor,
                                                               self.system.sharing):
                where.append(clause)
                params += clause_params
        sql_where = f" WHERE {' AND '.join(where)}" if where else ""
        document: str = "doc"
        document_params: list[Any] = []
        if as_written:
            document, document_params = _document_text(store.dialect, layer, now)
        with store.transaction() as txn:
            if where:
                txn.execute(f"SELECT count(*) FROM {layer.table}{sql_where}", params)
                counted = txn.fetchone()
                matched = int(counted[0]) if counted else 0
            else:
                matched = self.system.read_models.tables[layer.table].row_count(txn)
            # The documents' text is made for the rows of the page only (made before the
            # sort, an incident's large document was sorted too: 105 ms for 2,000 of them).
            txn.execute(f"SELECT id, lon, lat, {document} FROM (SELECT * FROM {layer.table}"
                        f"{sql_where} ORDER BY updated_at DESC, id LIMIT %s) AS newest "
                        "ORDER BY updated_at DESC, id",
                        [*document_params, *params, self.snapshot_limit])
            rows = txn.fetchall()
        features = []
        for item_id, lon, lat, doc in rows:
            properties: Any
            if as_written:
                properties = JsonText(doc)
            else:
                properties = row_document(doc)
                if layer.lights:
                    shown = case_light(properties, now)
                    properties["light"] = shown.value if shown is not None else None
            geometry = ({"type": "Point", "coordinates": [float(lon), float(lat)]}
                        if lon is not None and lat is not None else None)
            features.append(feature(str(item_id), geometry, properties))
        return features, matched

    # --- presence -------------------------------------------------------------------------------

    async def view(self, client: LiveClient, layer: str | None, item_id: str | None) -> None:
        """Record what the client views now (None: nothing), for every process to see."""
        client.viewing = (layer, item_id) if layer and item_id else None
        await self._write_presence(client)

    async def refresh_presence(self, client: LiveClient) -> None:
        """Keep the client's presence from expiring (on its pings)."""
        if client.viewing is not None and \
                time.monotonic() - client.presence_written_at >= PRESENCE_REFRESH_S:
            await self._write_presence(client)

    async def _write_presence(self, client: LiveClient) -> None:
        client.presence_written_at = time.monotonic()
        # Presence keeps real time on purpose: it says who has an item open now, and
        # expires after real seconds without a ping, whatever clock the city runs on.
        now = system_clock()
        viewing = client.viewing
        presence: dict[str, Any] = {
            "connection": client.connection_id, "user_id": client.actor.user_id,
            "role": client.actor.role.value, "layer": viewing[0] if viewing else None,
            "id": viewing[1] if viewing else None, "since": now.isoformat(),
            "expires_at": (now + PRESENCE_TTL).isoformat() if viewing else None,
        }
        if viewing is not None:
            # A refresh keeps the time the user started viewing the item.
            current = self.board.viewers.get(client.connection_id)
            if current is not None and (current.layer, current.item_id) == viewing:
                presence["since"] = current.since
        await asyncio.to_thread(self._record_presence, client.connection_id, presence,
                                viewing)
        self._wake.set()

    def _record_presence(self, connection: str, presence: dict[str, Any],
                         viewing: tuple[str, str] | None) -> None:
        _, store = self._active()
        department = None
        if viewing is not None and viewing[0] in LIVE_LAYERS:
            # Who may see the viewers is who may see the item: what decides it travels with
            # the presence (an item not in the read models: by no department user, unless
            # its layer is shared with every department).
            scope = LiveChangeLog.scope_of(store, viewing[0], viewing[1])
            presence["scope"] = scope if scope is not None else {"department": None}
            department = presence["scope"].get("department")
        self.log.record_presence(store, connection, presence, department)


def _any_of(column: str, values: frozenset[str], params: list[Any]) -> str:
    if not values:
        return "1 = 0"
    params.extend(sorted(values))
    return f"{column} IN ({', '.join(['%s'] * len(values))})"
