"""The streams: which events make each, and which trigger each event type is."""

from __future__ import annotations

import pytest

from cityops.domain.errors import InvalidValue
from cityops.domain.gridcases.case import GridCase
from cityops.domain.hotline.ticket import HotlineTicket
from cityops.domain.incidents.incident import Incident
from cityops.domain.incidents.plans import ContingencyPlan
from cityops.domain.resources.resource import Resource
from cityops.feeds.streams import STREAMS, Stream, Trigger, iter_specs, stream_named


def triggers(stream: Stream) -> dict[str, Trigger]:
    spec = STREAMS[stream]
    return {cls.__name__: spec.trigger_of(cls) for cls in spec.event_classes()}


def test_each_stream_opens_with_exactly_one_created_event() -> None:
    for spec in iter_specs():
        created = [name for name, t in triggers(spec.stream).items() if t is Trigger.CREATED]
        assert len(created) == 1, spec.stream
        # every event class of the aggregate is a stream event: none is left out
        nested = {name for name, value in vars(spec.aggregate).items()
                  if isinstance(value, type) and name not in ("Event", "Created")
                  and "originator_version" in getattr(value, "__dataclass_fields__", {})}
        assert nested == set(triggers(spec.stream))


def test_closing_events_name_real_event_classes() -> None:
    for spec in iter_specs():
        assert spec.closing <= set(triggers(spec.stream)), spec.stream


@pytest.mark.parametrize(("stream", "event", "trigger"), [
    (Stream.GRID_CASES, "Reported", Trigger.CREATED),
    (Stream.GRID_CASES, "Dispatched", Trigger.UPDATED),
    (Stream.GRID_CASES, "Rejected", Trigger.CLOSED),
    (Stream.GRID_CASES, "Closed", Trigger.CLOSED),
    (Stream.INCIDENTS, "Reported", Trigger.CREATED),
    (Stream.INCIDENTS, "LevelChanged", Trigger.UPDATED),
    (Stream.INCIDENTS, "Dismissed", Trigger.CLOSED),
    (Stream.INCIDENTS, "Reviewed", Trigger.UPDATED),
    (Stream.HAZARDS, "AlarmRaised", Trigger.UPDATED),
    (Stream.HAZARDS, "Decommissioned", Trigger.CLOSED),
    (Stream.HOTLINE, "Received", Trigger.CREATED),
    (Stream.HOTLINE, "AnsweredAtFirstContact", Trigger.CLOSED),
    (Stream.HOTLINE, "MergedInto", Trigger.CLOSED),
    (Stream.HOTLINE, "Reopened", Trigger.UPDATED),
    (Stream.RESOURCES, "Registered", Trigger.CREATED),
    (Stream.RESOURCES, "TakenOutOfService", Trigger.UPDATED),
])
def test_event_types_map_to_the_triggers_of_the_domain_brief(
        stream: Stream, event: str, trigger: Trigger) -> None:
    assert triggers(stream)[event] is trigger


def test_streams_follow_the_applications_and_leave_plans_out() -> None:
    assert STREAMS[Stream.GRID_CASES].aggregate is GridCase
    assert STREAMS[Stream.HOTLINE].application == "hotline"
    assert STREAMS[Stream.INCIDENTS].aggregate is Incident
    assert not issubclass(ContingencyPlan, Incident)
    assert STREAMS[Stream.RESOURCES].aggregate is Resource
    assert "Closed" not in triggers(Stream.RESOURCES)
    assert HotlineTicket.Received in STREAMS[Stream.HOTLINE].event_classes()


def test_an_unknown_stream_name_is_a_clear_error() -> None:
    assert stream_named("hotline") is Stream.HOTLINE
    with pytest.raises(InvalidValue, match="unknown stream 'weather'; streams are grid-cases"):
        stream_named("weather")
