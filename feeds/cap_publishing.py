"""The warnings as they go out: each issued, updated or cancelled warning becomes a CAP 1.2
alert document, kept, served and published.

`CapAlertLog` follows the warnings application's notification log from its tracked position
(`projection_positions`, projection `cityops-cap-alerts`) and, for each message the warning
desk sent (`Warning.Issued`, `.Updated`, `.Cancelled`, each carrying its whole
`WarningNotice`), writes the CAP document (checked against the OASIS schema and the
standard's rules, signed when a key is configured) into `cap_alerts`, with the new position in
the same transaction: an alert is written once, whatever stops the follower, and a re-run
from zero writes the same documents. A notice whose document fails the checks is not
published: it is recorded in `cap_alert_refusals` with every problem, and logged.

The documents are then published by the feeds' own machinery, as one more stream
(`Stream.WARNINGS`): `CapAlertReader` reads `cap_alerts` in order for the Kafka publisher
(its topic `<prefix>.warnings`, and the departments' `<prefix>.department.<code>.warnings`,
positions committed in the same Kafka transactions as the other streams') and for the
webhook outbox (subscriptions to the warnings stream, retries, signatures, destinations
policy, delivery log). The sharing catalogue decides who receives what: a public alert is
`alert` (shared), a restricted one `restricted_alert` (conditional: restricted-warnings),
so the city-wide topic and the public Atom feed only ever carry public alerts.

Drills. An exercise alert belongs to its drill (`drill_id`): a publisher leaves out every
alert of another drill (a live publisher: every exercise alert), so it never reaches the live
feed, topic or webhooks; it is still recorded (for the drill's review), marked as held.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any
from uuid import UUID

from eventsourcing.application import Application

from cityops.domain.clock import SecondsClock, real_seconds
from cityops.domain.geometry import Area
from cityops.domain.warnings.content import WarningNotice
from cityops.feeds.cap import CAP_MEDIA_TYPE, InvalidAlert, render
from cityops.feeds.cap_signing import AlertSigner
from cityops.feeds.cap_warnings import alert_message
from cityops.feeds.events import LogBatch
from cityops.feeds.sharing import Recipient, SharingCatalogue
from cityops.feeds.streams import Stream, Trigger
from cityops.feeds.subject import Subject
from cityops.storage import (
    TRACKING_DDL,
    ReadStore,
    positions,
    schema_transaction,
    set_position,
)

log = logging.getLogger(__name__)

CAP_LOG_PROJECTION = "cityops-cap-alerts"
CAP_ALERTS_SOURCE = "cap-alerts"
"""The name the feeds track their position in `cap_alerts` under."""
WARNING_MESSAGES = {"Warning.Issued": Trigger.CREATED, "Warning.Updated": Trigger.UPDATED,
                    "Warning.Cancelled": Trigger.CLOSED}
"""The warning's events that send a message out, and the feeds' trigger of each."""

ALERT_COLUMNS = ("seq", "identifier", "warning_id", "sequence", "msg_type", "status", "scope",
                 "sent", "onset", "expires", "headline", "drill_id", "held", "trigger",
                 "occurred_at", "categories", "level", "area_wkt", "document", "signed",
                 "recorded_at", "expires_at")


def cap_alerts_ddl() -> list[str]:
    """The alerts' tables (the same statements on SQLite and PostgreSQL)."""
    return [
        TRACKING_DDL,
        """
        CREATE TABLE IF NOT EXISTS cap_alerts (
            seq BIGINT PRIMARY KEY,
            identifier TEXT NOT NULL UNIQUE,
            warning_id TEXT NOT NULL,
            sequence INTEGER NOT NULL,
            msg_type TEXT NOT NULL,
            status TEXT NOT NULL,
            scope TEXT NOT NULL,
            sent TEXT NOT NULL,
            onset TEXT NOT NULL,
            expires TEXT NOT NULL,
            headline TEXT NOT NULL,
            drill_id TEXT,
            held INTEGER NOT NULL,
            trigger TEXT NOT NULL,
            occurred_at TEXT NOT NULL,
            categories TEXT NOT NULL,
            level TEXT NOT NULL,
            area_wkt TEXT NOT NULL,
            document TEXT NOT NULL,
            signed INTEGER NOT NULL,
            recorded_at DOUBLE PRECISION NOT NULL,
            expires_at DOUBLE PRECISION NOT NULL
        )
        """,
        "CREATE INDEX IF NOT EXISTS cap_alerts_warning ON cap_alerts (warning_id, seq)",
        "CREATE INDEX IF NOT EXISTS cap_alerts_in_force ON cap_alerts (held, expires_at)",
        """
        CREATE TABLE IF NOT EXISTS cap_alert_refusals (
            seq BIGINT PRIMARY KEY,
            identifier TEXT NOT NULL,
            warning_id TEXT NOT NULL,
            problems TEXT NOT NULL,
            recorded_at DOUBLE PRECISION NOT NULL
        )
        """,
    ]


@dataclass(frozen=True)
class StoredAlert:
    """One alert as `cap_alerts` keeps it."""

    seq: int
    """Its message's position in the warnings' log (increasing: the order alerts went out)."""
    identifier: str
    warning_id: UUID
    sequence: int
    msg_type: str
    status: str
    scope: str
    sent: datetime
    onset: datetime
    expires: datetime
    headline: str
    drill_id: str | None
    held: bool
    """An exercise alert of another drill than this publisher's: never published here."""
    trigger: Trigger
    occurred_at: datetime
    categories: frozenset[str]
    level: str
    area_wkt: str
    document: bytes
    signed: bool
    recorded_at: float

    @property
    def public(self) -> bool:
        return self.scope == "Public" and not self.held

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> StoredAlert:
        return cls(
            seq=int(row["seq"]), identifier=str(row["identifier"]),
            warning_id=UUID(str(row["warning_id"])), sequence=int(row["sequence"]),
            msg_type=str(row["msg_type"]), status=str(row["status"]),
            scope=str(row["scope"]), sent=datetime.fromisoformat(row["sent"]),
            onset=datetime.fromisoformat(row["onset"]),
            expires=datetime.fromisoformat(row["expires"]), headline=str(row["headline"]),
            drill_id=row["drill_id"], held=bool(row["held"]), trigger=Trigger(row["trigger"]),
            occurred_at=datetime.fromisoformat(row["occurred_at"]),
            categories=frozenset(json.loads(row["categories"])), level=str(row["level"]),
            area_wkt=str(row["area_wkt"]), document=str(row["document"]).encode(),
            signed=bool(row["signed"]), recorded_at=float(row["recorded_at"]))

    def summary(self) -> dict[str, Any]:
        """The alert's envelope as JSON-ready data (without the document)."""
        return {"identifier": self.identifier, "warning_id": str(self.warning_id),
                "sequence": self.sequence, "msg_type": self.msg_type, "status": self.status,
                "scope": self.scope, "sent": self.sent.isoformat(),
                "onset": self.onset.isoformat(), "expires": self.expires.isoformat(),
                "headline": self.headline, "drill_id": self.drill_id, "held": self.held,
                "signed": self.signed}


class CapAlertLog:
    """Writes the CAP alert of every message of the warning desk (see the module docstring)
    and answers what the public endpoints and the feeds read."""

    def __init__(self, store: ReadStore, warnings: Application[Any] | None, *,
                 signer: AlertSigner | None = None, drill_id: str | None = None,
                 batch_size: int = 200, clock: SecondsClock = real_seconds) -> None:
        self.store = store
        self.warnings = warnings
        self.signer = signer
        self.drill_id = drill_id
        """The drill this system plays (None: live). Alerts of any other drill are held."""
        self.batch_size = batch_size
        self.clock = clock
        """Real time, only to stamp when a row was written (for monitoring and the
        benchmark); what an alert says is the warning's own time."""
        self.written = 0
        self.refused = 0

    def create_tables(self) -> None:
        with schema_transaction(self.store) as txn:
            for statement in cap_alerts_ddl():
                txn.execute(statement)

    # --- following the warnings' log ------------------------------------------------------

    def position(self) -> int:
        """How far in the warnings' log the alerts are written."""
        return positions(self.store, CAP_LOG_PROJECTION).get(self._source(), 0)

    def _source(self) -> str:
        assert self.warnings is not None
        return str(self.warnings.name)

    def follow_round(self) -> int:
        """One batch of the warnings' log; returns how many notifications were read."""
        if self.warnings is None:
            return 0
        application = self.warnings
        with self.store.transaction() as txn:
            lock = " FOR UPDATE" if self.store.dialect == "postgres" else ""
            txn.execute("SELECT position FROM projection_positions WHERE projection = %s "
                        f"AND application = %s{lock}", (CAP_LOG_PROJECTION, self._source()))
            row = txn.fetchone()
            after = int(row[0]) if row else 0
            notifications = application.recorder.select_notifications(
                start=after, limit=self.batch_size, inclusive_of_start=False)
            if not notifications:
                return 0
            written = refused = 0
            for notification in notifications:
                event = application.mapper.to_domain_event(notification)
                trigger = WARNING_MESSAGES.get(type(event).__qualname__)
                if trigger is None:
                    continue
                notice = WarningNotice.from_fact(getattr(event, "notice"))  # noqa: B009
                try:
                    row_values = self._alert_row(notification.id, notice, trigger, event)
                except InvalidAlert as error:
                    refused += 1
                    log.error("warning %s message %s is not published: %s",
                              notice.warning_id, notice.identifier, error)
                    txn.execute(
                        "INSERT INTO cap_alert_refusals (seq, identifier, warning_id, "
                        "problems, recorded_at) VALUES (%s, %s, %s, %s, %s) "
                        "ON CONFLICT (seq) DO NOTHING",
                        (notification.id, notice.identifier, str(notice.warning_id),
                         json.dumps(error.problems, ensure_ascii=False), self.clock()))
                    continue
                txn.execute(
                    f"INSERT INTO cap_alerts ({', '.join(ALERT_COLUMNS)}) VALUES "
                    f"({', '.join(['%s'] * len(ALERT_COLUMNS))}) ON CONFLICT (seq) DO NOTHING",
                    row_values)
                written += 1
            set_position(txn, CAP_LOG_PROJECTION, self._source(), notifications[-1].id)
        self.written += written
        self.refused += refused
        return len(notifications)

    def _alert_row(self, seq: int, notice: WarningNotice, trigger: Trigger,
                   event: Any) -> tuple[Any, ...]:
        document = render(alert_message(notice))
        if self.signer is not None:
            document = self.signer.sign(document)
        content = notice.content
        held = notice.drill_id != self.drill_id
        return (seq, notice.identifier, str(notice.warning_id), notice.sequence,
                notice.msg_type.cap, notice.status.cap, content.scope.cap,
                notice.sent.isoformat(), content.onset.isoformat(),
                content.expires.isoformat(), content.headline, notice.drill_id, int(held),
                trigger.value, event.timestamp.isoformat(),
                json.dumps(sorted({content.category, content.event_type})),
                content.level.code, notice.content.area.outline().wkt, document.decode(),
                int(self.signer is not None), self.clock(), content.expires.timestamp())

    # --- reading ----------------------------------------------------------------------------

    def _select(self, where: str, params: tuple[Any, ...], tail: str = "",
                alias: str = "") -> list[StoredAlert]:
        columns = ", ".join(f"{alias}.{c}" if alias else c for c in ALERT_COLUMNS)
        with self.store.transaction() as txn:
            txn.execute(f"SELECT {columns} FROM cap_alerts {alias} WHERE {where} {tail}",
                        params)
            rows = txn.fetchall()
        return [StoredAlert.from_row(dict(zip(ALERT_COLUMNS, r, strict=True))) for r in rows]

    def alert(self, identifier: str) -> StoredAlert | None:
        found = self._select("identifier = %s", (identifier,))
        return found[0] if found else None

    def of_warning(self, warning_id: UUID) -> list[StoredAlert]:
        """Every alert of one warning, in the order they went out."""
        return self._select("warning_id = %s", (str(warning_id),), "ORDER BY seq")

    def after(self, seq: int, limit: int) -> list[StoredAlert]:
        return self._select("seq > %s", (seq,), f"ORDER BY seq LIMIT {int(limit)}")

    def head(self) -> int:
        with self.store.transaction() as txn:
            txn.execute("SELECT max(seq) FROM cap_alerts")
            row = txn.fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def current(self, now: datetime) -> list[StoredAlert]:
        """The public alerts in force at `now`, newest first: the last message of each
        warning that is not held, not restricted, and not past its expiry (a cancellation
        stays until the warning's expiry, so that aggregators learn of it)."""
        found = self._select(
            "a.held = 0 AND a.expires_at > %s AND a.seq = (SELECT max(b.seq) FROM cap_alerts "
            "b WHERE b.warning_id = a.warning_id AND b.held = 0)", (now.timestamp(),),
            "ORDER BY a.seq DESC", alias="a")
        return [a for a in found if a.public]

    def refusals(self) -> list[dict[str, Any]]:
        with self.store.transaction() as txn:
            txn.execute("SELECT seq, identifier, warning_id, problems FROM cap_alert_refusals "
                        "ORDER BY seq")
            rows = txn.fetchall()
        return [{"seq": int(s), "identifier": i, "warning_id": w, "problems": json.loads(p)}
                for s, i, w, p in rows]


# --- the alerts as a feed stream -----------------------------------------------------------


@dataclass(frozen=True)
class AlertItem:
    """A CAP alert as the Kafka publisher and the webhook outbox route and send it."""

    alert: StoredAlert
    stream: Stream = Stream.WARNINGS
    content_type: str = CAP_MEDIA_TYPE

    @property
    def position(self) -> int:
        return self.alert.seq

    @property
    def event_type(self) -> str:
        return f"CAP.{self.alert.msg_type}"

    @property
    def aggregate_id(self) -> UUID:
        return self.alert.warning_id

    @property
    def occurred_at(self) -> datetime:
        return self.alert.occurred_at

    @property
    def trigger(self) -> Trigger:
        return self.alert.trigger

    @cached_property
    def subject(self) -> Subject:
        alert = self.alert
        return Subject(status=alert.msg_type, categories=alert.categories, level=alert.level,
                       area=Area(wkt=alert.area_wkt),
                       context={"identifier": alert.identifier, "scope": alert.scope})

    @property
    def event_id(self) -> str:
        return self.alert.identifier

    @property
    def key(self) -> bytes:
        """The warning's id: its alerts keep their order in one partition."""
        return str(self.alert.warning_id).encode()

    def payload(self, catalogue: SharingCatalogue, recipient: Recipient,
                extra: Mapping[str, Any] | None = None) -> bytes | None:
        """The document, if the sharing catalogue lets `recipient` have an alert of this
        scope (`extra` keys belong to JSON messages: a document is sent as it is)."""
        field = "alert" if self.alert.scope == "Public" else "restricted_alert"
        if self.alert.held or not catalogue.allows(Stream.WARNINGS, field, recipient):
            return None
        return self.alert.document


@dataclass(frozen=True)
class CapAlertSource:
    stream: Stream = Stream.WARNINGS
    application: str = CAP_ALERTS_SOURCE


class CapAlertReader:
    """Reads `cap_alerts` after a position for the feeds (held alerts are read and skipped:
    they move the position but are never sent)."""

    spec = CapAlertSource()
    stream = Stream.WARNINGS

    def __init__(self, log: CapAlertLog) -> None:
        self.log = log

    def head(self) -> int:
        return self.log.head()

    def read(self, after: int, limit: int) -> LogBatch:
        alerts = self.log.after(after, limit)
        return LogBatch(stream=Stream.WARNINGS, after=after,
                        last=alerts[-1].seq if alerts else after, read=len(alerts),
                        events=[AlertItem(a) for a in alerts if not a.held])

    def forget(self) -> None:
        """Nothing is cached."""
