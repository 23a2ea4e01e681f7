"""Events as the feeds read and write them: from the notification log (receipts skipped,
each aggregate's state followed) to JSON messages after the sharing filter."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID

import pytest

from cityops.domain.actors import Actor, Role
from cityops.domain.geometry import Area, GeoPoint
from cityops.domain.hotline.application import HotlineTickets
from cityops.domain.incidents.application import Incidents
from cityops.feeds.events import SCHEMA_VERSION, StreamReader, encode, to_json
from cityops.feeds.routing import route
from cityops.feeds.sharing import Recipient, SharingCatalogue
from cityops.feeds.streams import STREAMS, Stream, Trigger
from cityops.feeds.subscription import Delivery, DeliveryKind, SubscriptionFilter
from cityops.feeds.subscriptions import Subscriptions

OPERATOR = Actor("op-li", Role.HOTLINE_OPERATOR)
DISPATCHER = Actor("duty-zhao", Role.DISPATCHER)


class Colour(Enum):
    RED = "red"


def test_facts_are_written_as_json_with_geojson_geometries() -> None:
    when = datetime(2026, 3, 10, 1, 0, tzinfo=UTC)
    written = to_json({
        "point": GeoPoint(118.8, 32.05),
        "area": Area(wkt="POLYGON((118.7 32.0, 118.8 32.0, 118.8 32.1, 118.7 32.0))"),
        "id": UUID("12345678-1234-5678-1234-567812345678"),
        "at": when, "day": date(2026, 3, 10), "paused": timedelta(minutes=90),
        "colour": Colour.RED, "amount": Decimal("1.50"), "tags": ("a", "b"),
        "actor": OPERATOR, "set": {"b", "a"}, "nested": [{"p": GeoPoint(1.0, 2.0)}],
    })
    assert written == {
        "point": {"type": "Point", "coordinates": [118.8, 32.05]},
        "area": {"type": "Polygon", "coordinates": [[[118.7, 32.0], [118.8, 32.0],
                                                     [118.8, 32.1], [118.7, 32.0]]]},
        "id": "12345678-1234-5678-1234-567812345678",
        "at": "2026-03-10T01:00:00+00:00", "day": "2026-03-10", "paused": 5400.0,
        "colour": "red", "amount": "1.50", "tags": ["a", "b"],
        "actor": {"user_id": "op-li", "role": "hotline-operator", "department": None},
        "set": ["a", "b"], "nested": [{"p": {"type": "Point", "coordinates": [1.0, 2.0]}}],
    }
    assert json.loads(encode({"text": "井盖"})) == {"text": "井盖"}


def test_a_type_nobody_decided_how_to_write_is_an_error() -> None:
    with pytest.raises(TypeError, match="cannot write a complex"):
        to_json({"z": 1j})


def receive_call(hotline: HotlineTickets, point: GeoPoint, command_id: str | None) -> UUID:
    return hotline.receive(channel="phone", ticket_type="complaint", topic="noise",
                           description="karaoke at 2 a.m.", caller_name="Zhang San",
                           caller_phone="13812345678", location=point, actor=OPERATOR,
                           command_id=command_id)


def test_the_reader_skips_receipts_and_follows_each_aggregates_state(
        hotline: HotlineTickets, city_point: GeoPoint) -> None:
    first = receive_call(hotline, city_point, command_id="call-1")  # + a command receipt
    hotline.assign(first, actor=OPERATOR, department="environment")
    second = receive_call(hotline, city_point, command_id=None)
    reader = StreamReader(STREAMS[Stream.HOTLINE], hotline)
    batch = reader.read(0, 100)
    assert batch.read == 4 and batch.last == 4  # the receipt is read, not published
    assert [(e.event_type, e.aggregate_id, e.version) for e in batch.events] == [
        ("HotlineTicket.Received", first, 1),
        ("HotlineTicket.Assigned", first, 2),
        ("HotlineTicket.Received", second, 1),
    ]
    assigned = batch.events[1]
    assert assigned.trigger is Trigger.UPDATED
    assert assigned.event_id == f"{first}:2" and assigned.key == str(first).encode()
    # The Assigned event carries no topic; the followed state does.
    assert assigned.subject.context["topic"] == "noise"
    assert assigned.subject.departments == {"environment"}
    assert assigned.subject.grid_cell is not None
    assert reader.read(batch.last, 100).read == 0


def test_an_event_taking_a_ticket_away_still_concerns_the_department(
        hotline: HotlineTickets, city_point: GeoPoint) -> None:
    ticket = receive_call(hotline, city_point, command_id=None)
    hotline.assign(ticket, actor=OPERATOR, department="water")
    water = Actor("water-chen", Role.DEPARTMENT_USER, "water")
    hotline.return_to_centre(ticket, reason="not a water matter", actor=water)
    events = StreamReader(STREAMS[Stream.HOTLINE], hotline).read(0, 10).events
    returned = events[-1]
    assert returned.event_type == "HotlineTicket.ReturnedToCentre"
    assert returned.subject.departments == {"water"}
    assert returned.subject.context["department"] is None  # the state after the event
    assert events[0].subject.departments == frozenset()


def test_a_reader_starting_mid_log_rebuilds_the_state_from_the_event_store(
        hotline: HotlineTickets, city_point: GeoPoint) -> None:
    ticket = receive_call(hotline, city_point, command_id=None)
    hotline.assign(ticket, actor=OPERATOR, department="environment")
    reader = StreamReader(STREAMS[Stream.HOTLINE], hotline)
    assert [e.subject.status for e in reader.read(1, 10).events] == ["assigned"]
    with pytest.raises(ValueError, match="follows the hotline application, not incidents"):
        StreamReader(STREAMS[Stream.HOTLINE], hotline_like_incidents())


def hotline_like_incidents() -> Any:
    class Named:
        name = "incidents"

    return Named()


def test_a_message_carries_what_its_recipient_may_receive(
        hotline: HotlineTickets, city_point: GeoPoint, sharing: SharingCatalogue) -> None:
    ticket = receive_call(hotline, city_point, command_id=None)
    event = StreamReader(STREAMS[Stream.HOTLINE], hotline).read(0, 10).events[0]
    city_wide = event.message(sharing, Recipient.city_wide())
    police = event.message(sharing, Recipient.department_feed("police"))
    water = event.message(sharing, Recipient.department_feed("water"))
    assert city_wide["schema_version"] == SCHEMA_VERSION
    assert city_wide["event_id"] == f"{ticket}:1" and city_wide["position"] == 1
    assert city_wide["trigger"] == "created" and city_wide["stream"] == "hotline"
    assert city_wide["actor"] == OPERATOR.as_dict()
    assert city_wide["data"]["location"] == city_point.to_geojson()
    assert city_wide["context"]["status"] == "received"
    for message in (city_wide, water):
        assert "caller_name" not in message["data"]
        assert "caller_phone" not in message["data"]
        assert "possible_duplicates" not in message["data"]
    assert police["data"]["caller_name"] == "Zhang San"
    assert police["data"]["caller_phone"] == "13812345678"
    assert "possible_duplicates" not in police["data"]
    json.dumps(police)


def test_routing_sends_an_event_to_each_department_once_and_to_each_webhook(
        subscriptions: Subscriptions, incidents: Incidents, city_point: GeoPoint,
        people: Any, sharing: SharingCatalogue) -> None:
    def subscribe(department: str, delivery: Delivery, **filters: Any) -> str:
        return str(subscriptions.subscribe(
            department=department, name=f"{department} incidents",
            filter=SubscriptionFilter(stream=Stream.INCIDENTS, **filters),
            triggers=["created"], delivery=delivery, actor=people.admin))

    kafka = Delivery(kind=DeliveryKind.KAFKA)
    hook = Delivery(kind=DeliveryKind.WEBHOOK, url="https://fire.example/hook",
                    secret="fire-brigade-secret-1")
    fires = subscribe("fire", kafka, categories=frozenset({"fire"}))
    serious = subscribe("fire", kafka, levels=frozenset({"I", "II"}))
    hooked = subscribe("fire", hook)
    subscribe("water", kafka, levels=frozenset({"I"}))
    incidents.report(category="accident-disaster", incident_type="fire", title="Warehouse",
                     location=city_point, source="hotline", level="II", actor=DISPATCHER)
    event = StreamReader(STREAMS[Stream.INCIDENTS], incidents).read(0, 10).events[0]
    routes = route(event, subscriptions.all(), None, sharing)
    assert set(routes.departments) == {"fire"}  # water wants level I only
    assert sorted(routes.departments["fire"]) == sorted([fires, serious])
    assert [str(s.id) for s in routes.webhooks] == [hooked]
