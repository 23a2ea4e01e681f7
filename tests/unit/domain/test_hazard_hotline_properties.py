"""Properties of hazard sources and hotline tickets under random sequences of commands: they
never leave their state enums, never break their invariants, record a hazard event only on a
threshold crossing, and rebuild from their stored events to exactly the same state."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from cityops.domain.actors import Actor, Role
from cityops.domain.catalogue import Catalogue
from cityops.domain.duplicates import OpenReport
from cityops.domain.errors import IllegalTransition
from cityops.domain.geometry import GeoPoint
from cityops.domain.hazards.application import HazardSources
from cityops.domain.hazards.catalogue import HazardCatalogue
from cityops.domain.hazards.source import (
    AlarmLevel,
    HazardSource,
    HazardStatus,
    ReadingEffect,
    ThresholdDirection,
    open_alarms,
)
from cityops.domain.hotline.application import HotlineTickets
from cityops.domain.hotline.ticket import TERMINAL, HotlineTicket, Satisfaction, TicketStatus

POPO = {"PERSISTENCE_MODULE": "eventsourcing.popo"}
START = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
HAZARD_CATALOGUE = HazardCatalogue.load()
CATALOGUE = Catalogue.load()
PLANNER = Actor("planner-1", Role.PLANNER)
GATEWAY = Actor("sensor-gateway", Role.SYSTEM)
DUTY = Actor("duty-1", Role.DISPATCHER)
PROPERTIES = settings(max_examples=150, deadline=None,
                      suppress_health_check=[HealthCheck.too_slow])


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


class RememberingHazards(HazardSources):
    """Keeps the live aggregates it saves, to compare them with ones rebuilt from storage."""

    def save(self, *objs: Any, **kwargs: Any) -> Any:
        self.saved = getattr(self, "saved", {}) | {o.id: o for o in objs}
        return super().save(*objs, **kwargs)


class RememberingHotline(HotlineTickets):
    """Keeps the live aggregates it saves, to compare them with ones rebuilt from storage."""

    def save(self, *objs: Any, **kwargs: Any) -> Any:
        self.saved = getattr(self, "saved", {}) | {o.id: o for o in objs}
        return super().save(*objs, **kwargs)


def stored(app: HazardSources | HotlineTickets) -> int:
    return int(app.recorder.max_notification_id() or 0)


# --- hazard sources --------------------------------------------------------------------------


def reference_level(direction: ThresholdDirection, warning: float, alarm: float, band: float,
                    current: AlarmLevel, value: float) -> AlarmLevel:
    """The alarm level as the domain brief states it, written independently of `assess`."""
    if direction is ThresholdDirection.HIGH:
        enters_alarm = value >= alarm
        keeps_alarm = value >= alarm - band * abs(alarm)
        enters_warning = value >= warning
        keeps_warning = value >= warning - band * abs(warning)
    else:
        enters_alarm = value <= alarm
        keeps_alarm = value <= alarm + band * abs(alarm)
        enters_warning = value <= warning
        keeps_warning = value <= warning + band * abs(warning)
    if enters_alarm or (current is AlarmLevel.ALARM and keeps_alarm):
        return AlarmLevel.ALARM
    if enters_warning or (current is not AlarmLevel.NORMAL and keeps_warning):
        return AlarmLevel.WARNING
    return AlarmLevel.NORMAL


@st.composite
def sensors(draw: st.DrawFn) -> dict[str, Any]:
    direction = draw(st.sampled_from(ThresholdDirection))
    low = draw(st.floats(min_value=-50, max_value=100, allow_nan=False))
    gap = draw(st.floats(min_value=0.5, max_value=50, allow_nan=False))
    warning, alarm = (low, low + gap) if direction is ThresholdDirection.HIGH else (
        low + gap, low)
    deadband = draw(st.sampled_from([0.0, 0.02, 0.05, 0.2]))
    return {"direction": direction, "warning": warning, "alarm": alarm, "deadband": deadband}


def hazard_steps(sensor: dict[str, Any]) -> st.SearchStrategy[list[tuple[str, float, int, int]]]:
    warning, alarm, band = sensor["warning"], sensor["alarm"], sensor["deadband"]
    edges = [warning, alarm, warning - band * abs(warning), warning + band * abs(warning),
             alarm - band * abs(alarm), alarm + band * abs(alarm)]
    span = abs(alarm - warning)
    values = st.one_of(
        st.sampled_from(edges),
        st.floats(min_value=min(warning, alarm) - 2 * span,
                  max_value=max(warning, alarm) + 2 * span, allow_nan=False),
    )
    # Mostly readings (kinds 0-7), sometimes an acknowledgement (8) or an escalation (9).
    step = st.tuples(st.integers(0, 9), values, st.integers(min_value=-120, max_value=600),
                     st.integers(0, 5))
    kinds = {8: "acknowledge", 9: "escalate"}
    return st.lists(step.map(lambda s: (kinds.get(s[0], "reading"), *s[1:])),
                    min_size=5, max_size=60)


def check_hazard_invariants(source: HazardSource) -> None:
    assert source.status in set(HazardStatus)
    assert source.alarm_count == len(source.alarms)
    open_ = open_alarms(source)
    assert len({a.sensor_id for a in open_}) == len(open_)
    for sensor_id, level in source.levels.items():
        assert level in set(AlarmLevel)
        open_here = [a for a in open_ if a.sensor_id == sensor_id]
        assert (level is not AlarmLevel.NORMAL) == bool(open_here)
        if open_here:
            assert open_here[0].level is level
            assert source.open_alarm_ids[sensor_id] == open_here[0].alarm_id
    for alarm in source.alarms.values():
        assert alarm.raised_at <= alarm.changed_at
        assert alarm.level in (AlarmLevel.WARNING, AlarmLevel.ALARM)
        assert not (alarm.level is AlarmLevel.ALARM and alarm.peak_level is AlarmLevel.WARNING)


@PROPERTIES
@given(data=st.data(), sensor=sensors())
def test_hazard_alarms_follow_the_thresholds_and_only_crossings_are_recorded(
        data: st.DataObject, sensor: dict[str, Any]) -> None:
    clock = Clock()
    app = RememberingHazards(POPO, catalogue=HAZARD_CATALOGUE, clock=clock)
    source_id = app.register(hazard_type="chemical-storage", name="Tank farm",
                             owner_name="Harbour Chemicals", owner_contact="+86 21 5555 0199",
                             grade=1, location=GeoPoint(121.5, 31.2), actor=PLANNER)
    app.add_sensor(source_id, sensor_id="S-1", kind="liquid-level", unit="m", actor=PLANNER,
                   **sensor)
    level, last_crossing = AlarmLevel.NORMAL, START
    measured = START
    for step in data.draw(hazard_steps(sensor)):
        before = stored(app)
        source = app.source(source_id)
        kind, value, seconds, pick = step
        if kind == "reading":
            clock.now += timedelta(seconds=max(seconds, 0))
            measured = min(measured + timedelta(seconds=seconds), clock.now)
            outcome = app.record_reading(source_id, "S-1", value, measured, actor=GATEWAY)
            if measured <= last_crossing:
                assert outcome.effect is ReadingEffect.OUT_OF_ORDER
            else:
                expected = reference_level(sensor["direction"], sensor["warning"],
                                           sensor["alarm"], sensor["deadband"], level, value)
                assert outcome.level is expected
                assert outcome.effect.recorded == (expected is not level)
                if expected is not level:
                    level, last_crossing = expected, measured
            assert stored(app) - before == (1 if outcome.effect.recorded else 0)
            event(f"reading {outcome.effect.value}")
        else:
            alarms = list(source.alarms)
            if not alarms:
                continue
            alarm_id = alarms[pick % len(alarms)]
            try:
                if kind == "acknowledge":
                    app.acknowledge_alarm(source_id, alarm_id, actor=DUTY)
                else:
                    app.escalate_alarm(source_id, alarm_id, actor=DUTY)
            except IllegalTransition:
                assert stored(app) == before
        check_hazard_invariants(app.source(source_id))
    source = app.source(source_id)
    assert source.levels["S-1"] is level
    assert app.repository.get(source_id).summary() == app.saved[source_id].summary()


# --- hotline tickets -------------------------------------------------------------------------


class NoOpenTickets:
    def open_reports_near(self, point: GeoPoint, radius_m: float,
                          since: datetime) -> list[OpenReport]:
        return []


class EverywhereD01:
    def locate_cell(self, point: GeoPoint) -> str | None:
        return "D01-S01-C01-001"


Step = tuple[str, int, int, str]
TICKET_COMMANDS: dict[str, Callable[[HotlineTickets, UUID, UUID, str], object]] = {
    "answer": lambda app, t, o, s: app.answer_at_first_contact(t, answer="a", actor=DUTY),
    "assign": lambda app, t, o, s: app.assign(t, actor=DUTY),
    "assign to water": lambda app, t, o, s: app.assign(t, department="water", actor=DUTY),
    "accept": lambda app, t, o, s: app.accept(t, actor=DUTY),
    "return": lambda app, t, o, s: app.return_to_centre(t, reason="not ours", actor=DUTY),
    "reply": lambda app, t, o, s: app.reply(t, reply="done", actor=DUTY),
    "call back": lambda app, t, o, s: app.call_back(t, satisfaction=s, actor=DUTY),
    "merge": lambda app, t, o, s: app.merge_into(t, o, actor=DUTY),
    "convert": lambda app, t, o, s: app.convert_to_case(t, actor=DUTY),
    "escalate": lambda app, t, o, s: app.escalate_to_incident(t, actor=DUTY),
    "close": lambda app, t, o, s: app.close_ticket(t, actor=DUTY),
}
# The main lifecycle is weighted up, so that random sequences get past the side exits.
WEIGHTED = [*TICKET_COMMANDS, "assign", "accept", "accept", "accept", "reply", "reply", "reply",
            "call back", "call back", "close"]
ticket_steps = st.lists(st.tuples(
    # Ticket 0 gets most commands, so that it goes deep into its lifecycle.
    st.sampled_from(WEIGHTED), st.sampled_from([0, 0, 0, 1, 2]), st.integers(1, 2),
    st.sampled_from([s.value for s in Satisfaction]),
), min_size=10, max_size=60)


def check_ticket_invariants(tickets: list[HotlineTicket]) -> None:
    for ticket in tickets:
        assert ticket.status in set(TicketStatus)
        clock_runs = ticket.status in (TicketStatus.ASSIGNED, TicketStatus.ACCEPTED)
        assert (ticket.reply_clock is not None) == clock_runs
        if ticket.status in (TicketStatus.ASSIGNED, TicketStatus.ACCEPTED,
                             TicketStatus.REPLIED):
            assert ticket.department is not None
        if ticket.status is TicketStatus.RETURNED:
            assert ticket.department is None
        assert (ticket.merged_into is not None) == (ticket.status is TicketStatus.MERGED)
        if ticket.status is TicketStatus.TRANSFERRED:
            assert ticket.case_id is not None or ticket.incident_id is not None
        assert (ticket.closed_at is not None) == (ticket.status in TERMINAL)
        assert ticket.reopen_count <= ticket.callbacks
    # Every call is kept by exactly one ticket that is not merged away.
    calls = [c.ticket_id for t in tickets if t.status is not TicketStatus.MERGED
             for c in (t.first_call, *t.extra_calls)]
    assert sorted(calls) == sorted(t.id for t in tickets)


@PROPERTIES
@given(steps=ticket_steps, hours=st.lists(st.integers(0, 30), min_size=60, max_size=60),
       phones=st.lists(st.booleans(), min_size=3, max_size=3))
def test_hotline_tickets_stay_consistent_under_any_sequence_of_commands(
        steps: list[Step], hours: list[int], phones: list[bool]) -> None:
    clock = Clock()
    app = RememberingHotline(POPO, catalogue=CATALOGUE, locator=EverywhereD01(),
                         open_tickets=NoOpenTickets(), clock=clock)
    ids = [app.receive(channel="phone", ticket_type="complaint", topic="garbage",
                       description=f"call {n}", actor=DUTY,
                       caller_phone="13800138000" if phone else None,
                       location=GeoPoint(121.4, 31.2)) for n, phone in enumerate(phones)]
    for (command, index, offset, satisfaction), pause in zip(steps, hours, strict=False):
        clock.now += timedelta(hours=pause)
        ticket_id, other = ids[index], ids[(index + offset) % len(ids)]
        versions = [app.ticket(i).version for i in ids]
        try:
            TICKET_COMMANDS[command](app, ticket_id, other, satisfaction)
            event(f"{command} done")
        except IllegalTransition:
            assert [app.ticket(i).version for i in ids] == versions
        check_ticket_invariants([app.ticket(i) for i in ids])
    for ticket_id in ids:
        event(f"ends {app.ticket(ticket_id).status.value}")
        assert app.repository.get(ticket_id).summary() == app.saved[ticket_id].summary()

