"""The warnings going out as CAP 1.2 alerts, on real stores (SQLite and PostgreSQL), a real
Kafka broker and real webhook receivers: the gas-leak warning issued, updated (area
widened) and cancelled becomes three valid CAP documents with references in the standard's
form, written once each whatever the follower does; served at stable URLs and in an Atom feed
a feed library reads; published to the warnings topic and to subscribed webhooks by the
feeds' sharing rules (a restricted alert only where the catalogue allows it); a drill's
exercise alerts never leave the drill."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any
from uuid import UUID

import feedparser
import pytest
import shapely
from fastapi.testclient import TestClient
from lxml import etree

from cityops.bootstrap import CitySystem
from cityops.command_center.app import create_app
from cityops.domain.actors import Actor, Role
from cityops.domain.commands import CommandContext
from cityops.domain.geometry import Area, GeoPoint
from cityops.domain.warnings.application import Warnings
from cityops.domain.warnings.commands import (
    ApproveWarning,
    CancelWarning,
    DraftWarning,
    DraftWarningUpdate,
    DrawnArea,
    IssueWarning,
)
from cityops.domain.warnings.content import Scope, WarningCircle, WarningText
from cityops.feeds import cap
from cityops.feeds.cap_publishing import CapAlertLog, CapAlertReader
from cityops.feeds.commands import Subscribe
from cityops.feeds.service import FeedService, build_feed_service
from cityops.feeds.streams import Stream
from cityops.feeds.subscription import Delivery, DeliveryKind, SubscriptionFilter
from cityops.maps.warning_areas import WarningAreaLocator
from cityops.storage import ReadStore

from .conftest import WebhookReceiver, feed_settings, read_committed, wait_until

DRAFTER = Actor("duty-zhao", Role.DISPATCHER)
APPROVER = Actor("duty-li", Role.DISPATCHER)
ADMIN = Actor("root-wu", Role.ADMIN)
NS = {"cap": cap.CAP_NAMESPACE}
SECRET = "fire-department-cap-webhook-secret"


def texts(headline: str = "Gas leak at the LPG depot: keep away") -> tuple[WarningText, ...]:
    return (WarningText(language="zh-CN", headline="液化气站燃气泄漏 请远离",
                        description="液化气站发生燃气泄漏。",
                        instruction="关闭门窗 远离该区域。"),
            WarningText(language="en-US", headline=headline,
                        description="A gas leak at the LPG depot.",
                        instruction="Close windows and stay away from the area."))


def desk_for(system: CitySystem, *, name: str, drill_id: str | None = None) -> Warnings:
    """A warning desk of the test's own, on its own store `name` (not the system's)."""
    env = system.settings.event_store_env(name)
    desk = Warnings(env, catalogue=system.catalogue,
                    geography=WarningAreaLocator(system.city.map),
                    incident_of=system.incidents.incident, drill_id=drill_id,
                    clock=system.clock)
    return desk


def square(point: GeoPoint, half: float) -> Area:
    return Area(wkt=shapely.box(point.lon - half, point.lat - half, point.lon + half,
                                point.lat + half).wkt)


def issue(desk: Warnings, point: GeoPoint, *, scope: Scope = Scope.PUBLIC,
          restriction: str = "") -> UUID:
    now = desk.clock()
    warning_id = desk.handle(DraftWarning(
        texts=texts(), expires=now + timedelta(hours=6), contact="City hotline 12345",
        level="red", category="accident-disaster", event_type="gas-leak", scope=scope,
        restriction=restriction, area=DrawnArea(polygons=(square(point, 0.004),))),
            CommandContext(actor=DRAFTER)).subject
    desk.handle(ApproveWarning(warning_id=warning_id), CommandContext(actor=APPROVER))
    desk.handle(IssueWarning(warning_id=warning_id), CommandContext(actor=DRAFTER))
    return warning_id


def widen_and_cancel(desk: Warnings, warning_id: UUID, point: GeoPoint) -> None:
    now = desk.clock()
    desk.handle(DraftWarningUpdate(
        warning_id=warning_id, texts=texts("Gas leak spreading: keep further away"),
        expires=now + timedelta(hours=8), contact="City hotline 12345",
        area=DrawnArea(polygons=(square(point, 0.004),),
                       circles=(WarningCircle(point, 1.2),)),
        reason="the leak is spreading"), CommandContext(actor=DRAFTER))
    desk.handle(ApproveWarning(warning_id=warning_id), CommandContext(actor=APPROVER))
    desk.handle(IssueWarning(warning_id=warning_id), CommandContext(actor=DRAFTER))
    desk.handle(CancelWarning(warning_id=warning_id, reason="the leak is stopped"),
                CommandContext(actor=DRAFTER))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def system(request: pytest.FixtureRequest) -> CitySystem:
    """The city on each back end (embedded SQLite files, or a fresh PostgreSQL database)."""
    fixture = "embedded_system" if request.param == "sqlite" else "pg_system"
    built: CitySystem = request.getfixturevalue(fixture)
    return built


@pytest.fixture
def point(cell_points: list[tuple[str, GeoPoint]]) -> GeoPoint:
    return cell_points[40][1]


@pytest.fixture
def desk(system: CitySystem) -> Warnings:
    """The system's warning desk, as the composition root built it."""
    return system.warnings


@pytest.fixture
def feeds(system: CitySystem, desk: Warnings) -> Iterator[FeedService]:
    service = build_feed_service(system, feed_settings("unused"), warnings=desk)
    yield service
    service.close()


def follow_all(log: CapAlertLog) -> None:
    while log.follow_round():
        pass


def test_issue_update_cancel_become_three_valid_alerts_written_once(
        system: CitySystem, desk: Warnings, feeds: FeedService, point: GeoPoint) -> None:
    warning_id = issue(desk, point)
    widen_and_cancel(desk, warning_id, point)
    log = feeds.cap_alerts
    follow_all(log)
    # A second follower over the same store (a restart, or a second feed process) finds
    # every message already written: nothing twice.
    again = CapAlertLog(feeds.store, desk)
    assert again.follow_round() == 0
    alerts = log.of_warning(warning_id)
    assert [(a.sequence, a.msg_type) for a in alerts] == [
        (1, "Alert"), (2, "Update"), (3, "Cancel")]
    for alert in alerts:
        cap.check_document(alert.document)
    roots = [etree.fromstring(a.document) for a in alerts]
    references = [r.findtext("cap:references", namespaces=NS) for r in roots]
    assert [r.find("cap:code", namespaces=NS) for r in roots] == [None] * 3  # live: no drill
    first, update = (desk.notices(warning_id)[i].reference for i in (0, 1))
    assert references[0] is None
    assert references[1] == (f"{first.sender},{first.identifier},"
                             f"{cap.cap_time(first.sent)}")
    assert references[2].split() == [
        f"{r.sender},{r.identifier},{cap.cap_time(r.sent)}" for r in (first, update)]
    # The widened area: the update carries the circle too, "lat,lon radius-km".
    assert roots[1].findtext("cap:info/cap:area/cap:circle", namespaces=NS) == (
        f"{cap._number(point.lat)},{cap._number(point.lon)} 1.2")
    assert log.refusals() == []


def test_a_rebuild_from_zero_writes_the_same_documents(
        system: CitySystem, desk: Warnings, feeds: FeedService, point: GeoPoint,
        tmp_path: Any) -> None:
    from cityops.storage import SqliteReadStore

    warning_id = issue(desk, point)
    follow_all(feeds.cap_alerts)
    store: ReadStore = SqliteReadStore(tmp_path / "rebuilt.sqlite")
    try:
        rebuilt = CapAlertLog(store, desk)
        rebuilt.create_tables()
        follow_all(rebuilt)
        assert [a.document for a in rebuilt.of_warning(warning_id)] == [
            a.document for a in feeds.cap_alerts.of_warning(warning_id)]
    finally:
        store.close()


def test_public_urls_and_the_atom_feed_carry_only_public_alerts_in_force(
        system: CitySystem, desk: Warnings, point: GeoPoint) -> None:
    # The composition root wires the warning desk into the system; here the test does.
    system.warnings = desk  # type: ignore[attr-defined]
    app = create_app(system, manage_lifecycle=False)
    feeds: FeedService = app.state.feeds
    public = issue(desk, point)
    restricted = issue(desk, point, scope=Scope.RESTRICTED,
                       restriction="emergency-management fire police")
    follow_all(feeds.cap_alerts)
    with TestClient(app) as client:
        answer = client.get("/cap/alerts.atom")
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("application/atom+xml")
        parsed = feedparser.parse(answer.content)
        assert not parsed.bozo, parsed.get("bozo_exception")
        assert parsed.version == "atom10"
        [entry] = parsed.entries
        [public_alert] = feeds.cap_alerts.of_warning(public)
        link = next(li for li in entry.links if li.get("type") == cap.CAP_MEDIA_TYPE)
        assert link.href.endswith(f"/cap/alerts/{public_alert.identifier}.xml")
        assert entry.title == public_alert.headline

        document = client.get(f"/cap/alerts/{public_alert.identifier}.xml")
        assert document.status_code == 200
        assert document.headers["content-type"] == cap.CAP_MEDIA_TYPE
        assert document.content == public_alert.document
        cap.check_document(document.content)

        [restricted_alert] = feeds.cap_alerts.of_warning(restricted)
        hidden = client.get(f"/cap/alerts/{restricted_alert.identifier}.xml")
        assert hidden.status_code == 404
        assert hidden.json()["error"] == "not-found"
        assert client.get("/cap/alerts/no-such-alert.xml").status_code == 404

        # After the cancellation the feed still shows it (until the expiry), as a Cancel.
        widen_and_cancel(desk, public, point)
        follow_all(feeds.cap_alerts)
        [entry] = feedparser.parse(client.get("/cap/alerts.atom").content).entries
        assert [t["term"] for t in entry.tags] == ["Cancel"]
        assert "/cap/alerts/" in entry.id and entry.id.endswith(".3.xml")
        # Once the warning's expiry has passed, it is off the feed; its documents stay.
        assert feeds.cap_alerts.current(system.clock() + timedelta(hours=9)) == []
        assert client.get(entry.id.removeprefix("http://testserver")).status_code == 200


def test_a_drills_exercise_alerts_never_leave_the_drill(
        system: CitySystem, point: GeoPoint, tmp_path: Any) -> None:
    from cityops.storage import SqliteReadStore

    drill_desk = desk_for(system, name="drillwarnings", drill_id="drill-7")
    store: ReadStore = SqliteReadStore(tmp_path / "drill-feeds.sqlite")
    try:
        warning_id = issue(drill_desk, point)
        live = CapAlertLog(store, drill_desk)  # a live publisher: no drill of its own
        live.create_tables()
        follow_all(live)
        [alert] = live.of_warning(warning_id)
        assert alert.status == "Exercise" and alert.held
        cap.check_document(alert.document)
        # The document itself names its drill (CAP's code of special handling).
        codes = etree.fromstring(alert.document).findall(f"{{{cap.CAP_NAMESPACE}}}code")
        assert [c.text for c in codes] == ["CITYOPS-DRILL:drill-7"]
        assert live.current(system.clock()) == []
        batch = CapAlertReader(live).read(0, 100)
        assert batch.read == 1 and batch.events == []  # read, never sent

        drill = CapAlertLog(SqliteReadStore(tmp_path / "drill-own.sqlite"), drill_desk,
                            drill_id="drill-7")
        drill.create_tables()
        follow_all(drill)
        [own] = drill.of_warning(warning_id)
        assert not own.held
        assert [a.identifier for a in drill.current(system.clock())] == [own.identifier]
        drill.store.close()
    finally:
        store.close()
        drill_desk.close()


# --- Kafka and webhooks ---------------------------------------------------------------------


def hook(feeds: FeedService, department: str, receiver: WebhookReceiver) -> UUID:
    subscription: UUID = feeds.subscriptions.subscribe(Subscribe(
        department=department, subscription_name=f"{department} warnings",
        filter=SubscriptionFilter(stream=Stream.WARNINGS),
        triggers=("created", "updated", "closed"),
        delivery=Delivery(kind=DeliveryKind.WEBHOOK, url=receiver.url,
                          secret=receiver.secret)),
        CommandContext(actor=ADMIN)).subject
    return subscription


@pytest.mark.postgres
@pytest.mark.kafka
def test_alerts_go_to_the_topic_and_webhooks_by_the_sharing_rules(
        pg_kafka_system: CitySystem, kafka_bootstrap: str, topic_prefix: str,
        webhook_receiver: Callable[[str], WebhookReceiver], point: GeoPoint) -> None:
    system = pg_kafka_system
    desk = system.warnings
    feeds = build_feed_service(system, feed_settings(topic_prefix), warnings=desk)
    fire = webhook_receiver(SECRET)
    water = webhook_receiver(SECRET)
    hook(feeds, "fire", fire)
    hook(feeds, "water", water)
    try:
        public = issue(desk, point)
        restricted = issue(desk, point, scope=Scope.RESTRICTED,
                           restriction="emergency-management fire police")
        widen_and_cancel(desk, public, point)
        feeds.start()
        try:
            wait_until(lambda: len(fire.accepted()) == 4, 60,
                       "fire's webhook to get 3 public alerts and the restricted one")
            wait_until(lambda: len(water.accepted()) == 3, 30,
                       "water's webhook to get the 3 public alerts")
            topic = f"{topic_prefix}.warnings"
            wait_until(lambda: len(read_committed(kafka_bootstrap, topic)) == 3, 60,
                       "the public alerts on the warnings topic")
        finally:
            feeds.stop()
        public_ids = [a.identifier for a in feeds.cap_alerts.of_warning(public)]
        [restricted_id] = [a.identifier for a in feeds.cap_alerts.of_warning(restricted)]

        messages = read_committed(kafka_bootstrap, f"{topic_prefix}.warnings")
        assert [etree.fromstring(m.raw).findtext("cap:identifier", namespaces=NS)
                for m in messages] == public_ids  # once each, in order (one key)
        assert {m.key for m in messages} == {str(public).encode()}
        for message in messages:
            cap.check_document(message.raw)

        for receiver, expected in ((fire, {*public_ids, restricted_id}),
                                   (water, set(public_ids))):
            requests = receiver.accepted()
            assert all(r.signature_ok for r in requests)
            assert {r.headers["Content-Type"] for r in requests} == {cap.CAP_MEDIA_TYPE}
            got = [etree.fromstring(r.body).findtext("cap:identifier", namespaces=NS)
                   for r in requests]
            assert sorted(got) == sorted(expected)
            assert len(got) == len(set(got))
            for request in requests:
                cap.check_document(request.body)
        # Published once more by nothing: the Kafka positions and the outbox positions
        # cover the warnings stream.
        published = feeds.published_positions()
        assert published[("webhook", "warnings")][0] == published[("webhook", "warnings")][1]
    finally:
        feeds.close()


class AnywhereInTown:
    """A map that takes any area (to let through one the CAP checks must refuse)."""

    def check_in_city(self, polygons: Any, circles: Any) -> None:
        return None

    def admin_areas(self, polygons: Any, circles: Any) -> tuple[Any, ...]:
        return ()


def test_a_warning_whose_document_fails_the_checks_is_recorded_and_not_published(
        system: CitySystem, feeds: FeedService, point: GeoPoint) -> None:
    desk = Warnings(system.settings.event_store_env("oddwarnings"),
                    catalogue=system.catalogue, geography=AnywhereInTown(), clock=system.clock)
    try:
        # A square a few millimetres wide: a valid polygon, but at CAP's six decimals its
        # corners collapse into one "lat,lon" pair: not a ring enclosing an area.
        tiny = Area(wkt=shapely.box(point.lon, point.lat, point.lon + 2e-8,
                                    point.lat + 2e-8).wkt)
        now = desk.clock()
        warning_id = desk.handle(DraftWarning(
            texts=texts(), expires=now + timedelta(hours=1), contact="12345", level="blue",
            category="accident-disaster", event_type="gas-leak",
            area=DrawnArea(polygons=(tiny,), description="a point")),
                CommandContext(actor=DRAFTER)).subject
        desk.handle(ApproveWarning(warning_id=warning_id), CommandContext(actor=APPROVER))
        desk.handle(IssueWarning(warning_id=warning_id), CommandContext(actor=DRAFTER))
        log = CapAlertLog(feeds.store, desk)
        follow_all(log)
        assert log.of_warning(warning_id) == []
        assert (log.written, log.refused) == (0, 1)  # cityops_cap_alerts_refused_total
        [refusal] = log.refusals()
        assert refusal["warning_id"] == str(warning_id)
        assert any("polygon" in problem for problem in refusal["problems"])
        assert CapAlertReader(log).read(0, 10).events == []
    finally:
        desk.close()


def test_alerts_are_signed_with_the_configured_key(
        system: CitySystem, desk: Warnings, point: GeoPoint, tmp_path: Any) -> None:
    from cityops.feeds.cap_signing import verify
    from tests.unit.feeds.test_cap_signing import key_and_certificate

    key, cert = key_and_certificate()
    (tmp_path / "cap.key").write_bytes(key)
    (tmp_path / "cap.crt").write_bytes(cert)
    feeds = build_feed_service(system, feed_settings(
        "unused", cap_signing_key_file=tmp_path / "cap.key",
        cap_signing_cert_file=tmp_path / "cap.crt"), warnings=desk)
    try:
        warning_id = issue(desk, point)
        follow_all(feeds.cap_alerts)
        [alert] = feeds.cap_alerts.of_warning(warning_id)
        assert alert.signed
        cap.check_document(alert.document)
        assert alert.identifier.encode() in verify(alert.document, cert)
        tampered = alert.document.replace(b"keep away", b"come closer")
        with pytest.raises(Exception, match="does not verify"):
            verify(tampered, cert)
    finally:
        feeds.close()


def test_a_webhook_receives_the_alerts_on_each_back_end(
        system: CitySystem, desk: Warnings, point: GeoPoint,
        webhook_receiver: Callable[[str], WebhookReceiver]) -> None:
    """The webhook outbox reads the CAP alerts inside its own transaction on the feed store:
    on SQLite too (one connection per thread), where the read used to open a second
    transaction on the same connection and stop the outbox of every stream."""
    feeds = build_feed_service(system, feed_settings("unused"))
    receiver = webhook_receiver(SECRET)
    hook(feeds, "fire", receiver)
    try:
        warning_id = issue(desk, point)
        feeds.start()
        try:
            wait_until(lambda: len(receiver.accepted()) == 1, 30,
                       "the fire department's webhook to get the alert")
            failures = feeds.loop_failures()
        finally:
            feeds.stop()
        assert set(failures.values()) == {0}, failures
        [alert] = feeds.cap_alerts.of_warning(warning_id)
        [request] = receiver.accepted()
        assert request.signature_ok and request.body == alert.document
    finally:
        feeds.close()
