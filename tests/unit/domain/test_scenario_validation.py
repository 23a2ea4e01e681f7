"""A scenario file (the exercise's master scenario events list) is checked whole before
anything starts: every problem is listed with its line in one `ScenarioInvalid` (bad YAML,
a missing field, an unknown category, a place outside the city, an offset out of order, an
unknown objective kind...), and a valid file reads into exactly what it says.

The city here is a small stand-in (a square city, a few named places, one hazard source
and two resources) over the real catalogue: no map is loaded."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cityops.domain.actors import Actor, Role
from cityops.domain.catalogue import Catalogue, Urgency
from cityops.domain.exercises.scenario import (
    HazardSourceRef,
    HotlineCall,
    IncidentFilter,
    IncidentReport,
    InjectKind,
    InspectorReport,
    ObjectiveKind,
    ResourceOutOfService,
    ResourceRef,
    Scenario,
    ScenarioInvalid,
    ScenarioProblem,
    ScenarioReference,
    SensorReading,
    SensorRef,
    StartKind,
    parse_duration_text,
    parse_scenario,
)
from cityops.domain.geometry import GeoPoint


class SquareCity:
    """A city from lon 118.70 to 118.90 and lat 32.00 to 32.10, with three named places."""

    PLACES = {"central avenue": GeoPoint(118.80, 32.05),
              "jinhe fine chemicals plant": GeoPoint(118.83, 32.04),
              "far shore": GeoPoint(119.50, 32.05)}

    def place(self, name: str) -> GeoPoint | None:
        return self.PLACES.get(name.casefold())

    def places_like(self, name: str) -> list[str]:
        return [p for p in self.PLACES if p.startswith(name.casefold()[:3])]

    def in_city(self, point: GeoPoint) -> bool:
        return 118.70 <= point.lon <= 118.90 and 32.00 <= point.lat <= 32.10

    def hazard_source(self, name_or_id: str) -> HazardSourceRef | None:
        source = HazardSourceRef("HS-01", "Jinhe Fine Chemicals Plant", {
            "HS-01-GAS-01": SensorRef("HS-01-GAS-01", "high", 20.0, 40.0, "%LEL")})
        return source if name_or_id in ("HS-01", "Jinhe Fine Chemicals Plant") else None

    def resource(self, call_sign: str) -> ResourceRef | None:
        return {"FE-03": ResourceRef("FE-03", "fire-engine", "fire"),
                "DP-02": ResourceRef("DP-02", "drainage-pump-truck", "water")}.get(call_sign)


CATALOGUE = Catalogue.load()


@pytest.fixture(scope="module")
def reference() -> ScenarioReference:
    return ScenarioReference(catalogue=CATALOGUE, city=SquareCity())


def parse(text: str, reference: ScenarioReference) -> Scenario:
    return parse_scenario(textwrap.dedent(text).lstrip("\n"), reference)


def problems(text: str, reference: ScenarioReference) -> list[tuple[int, str]]:
    with pytest.raises(ScenarioInvalid) as refused:
        parse(text, reference)
    return [(p.line, p.message) for p in refused.value.problems]


VALID = """
version: 1
title: Chlorine leak
description: A valve fails at the tank farm.
start: empty
objectives:
  - id: verify-leak
    kind: incident-verified
    description: Level II leak verified within 10 minutes
    incident: {category: accident-disaster, type: hazmat-leak, level: II}
    within: 10m
  - id: first-engine
    kind: resource-on-scene
    incident: {type: hazmat-leak}
    resource_kind: fire-engine
    since: gas-alarm
    within: "0:12"
injects:
  - id: gas-alarm
    at: 3
    kind: sensor-reading
    hazard_source: Jinhe Fine Chemicals Plant
    sensor: HS-01-GAS-01
    value: 46
  - id: call
    at: 5m
    kind: hotline-call
    ticket_type: report
    topic: gas-smell
    description: Bleach smell near the plant
    place: [118.829, 32.0455]
    caller: {name: Li Na, phone: "13700002222"}
  - id: leak
    at: 6m
    kind: incident-report
    category: accident-disaster
    type: hazmat-leak
    level: II
    title: Chlorine leak
    place: Jinhe Fine Chemicals Plant
  - id: breakdown
    at: 10m
    kind: resource-out-of-service
    resource: FE-03
    reason: Pump failure
  - id: hydrant
    at: 1h2m30s
    kind: inspector-report
    actor: {user: insp-D02-01, role: inspector}
    category: C0106
    description: Hydrant without pressure
    place: {lon: 118.8305, lat: 32.0446}
    urgency: urgent
"""


def test_a_valid_scenario_reads_into_exactly_what_it_says(reference: ScenarioReference) -> None:
    scenario = parse(VALID, reference)
    assert scenario.title == "Chlorine leak" and scenario.start.kind is StartKind.EMPTY
    assert [(i.id, i.offset, i.kind) for i in scenario.injects] == [
        ("gas-alarm", timedelta(minutes=3), InjectKind.SENSOR_READING),
        ("call", timedelta(minutes=5), InjectKind.HOTLINE_CALL),
        ("leak", timedelta(minutes=6), InjectKind.INCIDENT_REPORT),
        ("breakdown", timedelta(minutes=10), InjectKind.RESOURCE_OUT_OF_SERVICE),
        ("hydrant", timedelta(hours=1, minutes=2, seconds=30), InjectKind.INSPECTOR_REPORT),
    ]
    reading, call, leak, breakdown, hydrant = (i.content for i in scenario.injects)
    assert reading == SensorReading("HS-01", "Jinhe Fine Chemicals Plant", "HS-01-GAS-01",
                                    46.0)
    assert isinstance(call, HotlineCall) and call.location == GeoPoint(118.829, 32.0455)
    assert (call.caller_name, call.caller_phone, call.channel.value) == (
        "Li Na", "13700002222", "phone")
    assert leak == IncidentReport("accident-disaster", "hazmat-leak", "II", "Chlorine leak",
                                  "", GeoPoint(118.83, 32.04))
    assert breakdown == ResourceOutOfService("FE-03", "Pump failure")
    assert hydrant == InspectorReport("C0106", "Hydrant without pressure",
                                      GeoPoint(118.8305, 32.0446), Urgency.URGENT)
    # Who sends each inject: the actor it names, else the role that sends it for real (a
    # breakdown: the resource's own department).
    actors = {i.id: i.actor for i in scenario.injects}
    assert actors["hydrant"] == Actor("insp-D02-01", Role.INSPECTOR)
    assert actors["gas-alarm"].role is Role.SYSTEM
    assert actors["breakdown"] == Actor("fire-desk", Role.DEPARTMENT_USER, "fire")
    verify, engine = scenario.objectives
    assert (verify.kind, verify.within, verify.incident) == (
        ObjectiveKind.INCIDENT_VERIFIED, timedelta(minutes=10),
        IncidentFilter("accident-disaster", "hazmat-leak", "II"))
    assert (engine.resource_kind, engine.since_inject, engine.since_offset, engine.within) == (
        "fire-engine", "gas-alarm", timedelta(minutes=3), timedelta(minutes=12))
    # Without a duration, the exercise lasts to the last inject plus the longest target.
    assert scenario.duration == timedelta(hours=1, minutes=14, seconds=30)
    assert len(scenario.digest) == 64


def test_due_injects_come_in_order_once(reference: ScenarioReference) -> None:
    scenario = parse(VALID, reference)
    assert scenario.due(timedelta(minutes=2)) == []
    assert [i.id for i in scenario.due(timedelta(minutes=6))] == ["gas-alarm", "call", "leak"]
    assert [i.id for i in scenario.due(timedelta(minutes=6), {"gas-alarm", "call"})] == ["leak"]
    assert [i.id for i in scenario.due(timedelta(days=1), {"gas-alarm"})] == [
        "call", "leak", "breakdown", "hydrant"]


def test_an_objective_survives_the_exercise_event_that_keeps_it(
        reference: ScenarioReference) -> None:
    from cityops.domain.exercises.scenario import Objective

    for objective in parse(VALID, reference).objectives:
        assert Objective.from_dict(objective.as_dict()) == objective


@pytest.mark.parametrize(("text", "expected"), [
    ("12", timedelta(minutes=12)), ("12m", timedelta(minutes=12)),
    ("1h30m", timedelta(minutes=90)), ("90s", timedelta(seconds=90)),
    ("0:45", timedelta(minutes=45)), ("1:02:03", timedelta(hours=1, minutes=2, seconds=3)),
    ("12 min", timedelta(minutes=12)), ("soon", None), ("", None), ("1:75", None),
])
def test_durations_are_written_in_minutes_or_units(text: str,
                                                   expected: timedelta | None) -> None:
    assert parse_duration_text(text) == expected


# --- every refusal, with its line ------------------------------------------------------------


def test_bad_yaml_is_refused_at_its_line(reference: ScenarioReference) -> None:
    assert problems("""
        version: 1
        title: Broken
        injects:
          - at: 5m
            kind: [unclosed
        """, reference) == [(6, "not valid YAML: expected ',' or ']', but got '<stream end>' "
                                "(while parsing a flow sequence)")]


def test_a_missing_field_is_refused_at_the_line_of_what_misses_it(
        reference: ScenarioReference) -> None:
    found = problems("""
        version: 1
        injects:
          - id: call
            kind: hotline-call
            ticket_type: report
            topic: gas-smell
          - id: leak
            at: 6m
            kind: incident-report
            category: accident-disaster
            type: hazmat-leak
            place: Central Avenue
        """, reference)
    assert found == [
        (1, "the scenario is missing the field 'title'"),
        (3, "inject 'call' is missing the field 'at'"),
        (3, "inject 'call' is missing the field 'description'"),
        (7, "inject 'leak' is missing the field 'title'"),
    ]


def test_an_unknown_category_is_refused_at_its_line(reference: ScenarioReference) -> None:
    found = problems("""
        version: 1
        title: Categories
        injects:
          - at: 1m
            kind: inspector-report
            category: Z9999
            description: something
            place: Central Avenue
          - at: 2m
            kind: incident-report
            category: alien-invasion
            type: landing
            title: x
            place: Central Avenue
          - at: 3m
            kind: incident-report
            category: natural-disaster
            type: hazmat-leak
            title: x
            place: Central Avenue
          - at: 4m
            kind: hotline-call
            ticket_type: rant
            topic: weather
            description: x
        """, reference)
    lines = [line for line, _ in found]
    assert lines == [6, 11, 18, 23, 24]
    assert found[0][1].startswith("unknown grid-case category 'Z9999' (known: ")
    assert found[1][1].startswith("unknown incident category 'alien-invasion'")
    assert found[2][1].startswith("unknown incident type of natural-disaster 'hazmat-leak'")
    assert found[3][1].startswith("unknown ticket type 'rant'")
    assert found[4][1].startswith("unknown hotline topic 'weather'")


def test_a_place_outside_the_city_or_not_in_its_gazetteer_is_refused_at_its_line(
        reference: ScenarioReference) -> None:
    found = problems("""
        version: 1
        title: Places
        injects:
          - at: 1m
            kind: inspector-report
            category: C0106
            description: x
            place: [121.47, 31.23]
          - at: 2m
            kind: inspector-report
            category: C0106
            description: x
            place: Far Shore
          - at: 3m
            kind: inspector-report
            category: C0106
            description: x
            place: Centrl Avenue
          - at: 4m
            kind: inspector-report
            category: C0106
            description: x
            place: [200, 32]
        """, reference)
    assert found == [
        (8, "inject 1's place [121.47, 31.23] is outside the city"),
        (13, "inject 2's place 'Far Shore' is outside the city"),
        (18, "inject 3's place 'Centrl Avenue' is not a place of the city's gazetteer; "
             "did you mean 'central avenue'?"),
        (23, "inject 4's place [200.0, 32.0] is not a longitude and latitude"),
    ]


def test_an_offset_out_of_order_is_refused_at_its_line(reference: ScenarioReference) -> None:
    found = problems("""
        version: 1
        title: Order
        injects:
          - id: first
            at: 10m
            kind: resource-out-of-service
            resource: FE-03
            reason: x
          - id: second
            at: 5m
            kind: resource-out-of-service
            resource: DP-02
            reason: x
          - id: third
            at: 1h
            kind: resource-out-of-service
            resource: DP-02
            reason: x
        """, reference)
    assert found == [(10, "inject 'second' at 0:05:00 is out of order: the inject before it "
                          "(line 5) is at 0:10:00; list injects by time")]


def test_an_unknown_objective_kind_and_bad_objectives_are_refused_at_their_lines(
        reference: ScenarioReference) -> None:
    found = problems("""
        version: 1
        title: Objectives
        objectives:
          - id: magic
            kind: telepathy
            within: 5m
          - id: engine
            kind: resource-on-scene
            within: 12m
          - id: engine
            kind: plan-activated
            within: soon
            since: nothing
            incident: {level: V}
        injects:
          - at: 1m
            kind: resource-out-of-service
            resource: FE-03
            reason: x
        """, reference)
    assert found[0][0] == 5
    assert found[0][1].startswith("unknown objective kind 'telepathy' (known: "
                                  "incident-verified, plan-activated, resource-on-scene, "
                                  "tasks-acknowledged)")
    assert found[1:] == [
        (7, "objective 'engine' is missing the field 'resource_kind'"),
        (10, "two objectives have the id 'engine'"),
        (12, "objective 'engine''s target 'within' 'soon' is not a duration (write minutes, "
             "12m, 1h30m, 90s or H:MM)"),
        (13, "objective 'engine' is measured since inject 'nothing', which the scenario does "
             "not have (give an inject's id, or 'report')"),
        (14, "unknown incident level 'V' (known: I, II, III, IV)"),
    ]


def test_every_problem_of_a_file_is_listed_at_once_and_nothing_is_half_read(
        reference: ScenarioReference) -> None:
    with pytest.raises(ScenarioInvalid) as refused:
        parse("""
            version: 1
            title: Many
            colour: red
            injects:
              - at: 5m
                kind: meteor
              - at: 2m
                kind: sensor-reading
                hazard_source: Jinhe Fine Chemicals Plant
                sensor: HS-01-GAS-99
                value: high
              - at: 3m
                kind: resource-out-of-service
                resource: FE-99
                reason: x
                crew: 4
            """, reference)
    error = refused.value
    # The third inject (3m) is out of order too: it comes before the first (5m).
    assert [p.line for p in error.problems] == [3, 6, 7, 10, 11, 12, 14, 16]
    assert error.problems[0] == ScenarioProblem(
        3, "the scenario has an unknown field 'colour' (known: description, duration, "
           "injects, objectives, start, title, version)")
    assert "inject 2 at 0:02:00 is out of order" in error.problems[2].message
    assert error.problems[3].message.startswith(
        "hazard source 'Jinhe Fine Chemicals Plant' has no sensor 'HS-01-GAS-99'")
    assert error.problems[4].message == "inject 2's value must be a number"
    assert "inject 3 at 0:03:00 is out of order" in error.problems[5].message
    assert error.problems[6].message.startswith("unknown resource 'FE-99'")
    assert error.problems[7].message.startswith("inject 3 (resource-out-of-service) has an "
                                                "unknown field 'crew'")
    assert str(error).startswith("the scenario is refused (8 problems): line 3: ")


def test_the_format_version_is_required_and_checked(reference: ScenarioReference) -> None:
    assert problems("title: x\ninjects: []\n", reference)[0] == (
        1, "the scenario is missing the field 'version'")
    assert problems("version: 2\ntitle: x\ninjects: []\n", reference) == [
        (1, "version '2' is not a scenario format this CityOps reads (version: 1)")]


@pytest.mark.parametrize(("text", "expected"), [
    ("", [(1, "the scenario file is empty")]),
    ("- a\n- b\n", [(1, "the scenario must be a mapping of fields")]),
    ("version: 1\ntitle: x\ninjects: []\n", [(3, "injects must list at least one inject")]),
    ("version: 1\ntitle: x\ntitle: y\ninjects: {}\n",
     [(3, "the scenario has the field 'title' twice"), (4, "injects must be a list")]),
    ("a: 1\n---\nb: 2\n", [(2, "not valid YAML: but found another document (expected a "
                              "single document in the stream)")]),
])
def test_files_that_are_no_scenario_at_all_are_refused(
        text: str, expected: list[tuple[int, str]], reference: ScenarioReference) -> None:
    assert problems(text, reference)[: len(expected)] == expected


def test_a_replayed_start_needs_a_window_with_time_zones_in_order(
        reference: ScenarioReference) -> None:
    inject = ("injects:\n  - at: 1m\n    kind: resource-out-of-service\n    resource: FE-03\n"
              "    reason: x\n")
    found = problems("version: 1\ntitle: x\nstart:\n  replay:\n    from: 2026-06-01T08:00:00\n"
                     "    to: 2026-06-01T07:00:00+08:00\n" + inject, reference)
    assert found == [(5, "the window's start '2026-06-01T08:00:00' has no time zone")]
    found = problems("version: 1\ntitle: x\nstart:\n  replay:\n"
                     "    from: 2026-06-01T08:00:00+08:00\n"
                     "    to: 2026-06-01T07:00:00+08:00\n" + inject, reference)
    assert found == [(6, "the replayed window ends before it starts")]
    assert problems("version: 1\ntitle: x\nstart: replay\n" + inject, reference)[0][0] == 3
    scenario = parse("version: 1\ntitle: x\nstart:\n  replay:\n"
                     "    from: 2026-06-01T08:00:00+08:00\n"
                     "    to: 2026-06-01T12:00:00+08:00\n" + inject, reference)
    assert scenario.start.kind is StartKind.REPLAY
    assert scenario.start.replay_from == datetime(2026, 6, 1, 0, 0, tzinfo=UTC)


def test_an_actor_is_checked_like_any_field(reference: ScenarioReference) -> None:
    found = problems("""
        version: 1
        title: Actors
        injects:
          - at: 1m
            kind: resource-out-of-service
            actor: {user: fire-desk, role: department-user}
            resource: FE-03
            reason: x
          - at: 2m
            kind: resource-out-of-service
            actor: {user: fire-desk, role: chief}
            resource: FE-03
            reason: x
        """, reference)
    assert found[0] == (6, "a department user needs a department")
    assert found[1][0] == 11 and found[1][1].startswith("unknown actor role 'chief'")


def test_a_file_that_is_not_utf8_is_refused_at_the_line_of_the_bad_bytes(
        reference: ScenarioReference) -> None:
    with pytest.raises(ScenarioInvalid) as refused:
        parse_scenario(b"version: 1\ntitle: caf\xe9\n", reference)
    assert [(p.line, p.message) for p in refused.value.problems] == [
        (2, "the file is not UTF-8 text")]


@pytest.mark.parametrize(("text", "expected"), [
    ("version: 2001-02-30\ntitle: x\n", (1, "version '2001-02-30' is not a valid value: day is "
                                            "out of range for month")),
    ("[" * 100_000, (1, "not valid YAML for a scenario: nested too deeply")),
    ("version: 1\ntitle: !!python/object:os.system x\n",
     (2, "title has the tag 'tag:yaml.org,2002:python/object:os.system', which a scenario "
         "does not take")),
    ("version: 1\ntitle: !!binary aGVsbG8=\n",
     (2, "title has the tag 'tag:yaml.org,2002:binary', which a scenario does not take")),
    ("version: 1\ntitle: x\nstart:\n  replay:\n    from: 2001-02-30T00:00:00Z\n    to: x\n",
     (5, "the window's start '2001-02-30T00:00:00Z' is not a valid value: day is out of range "
         "for month")),
    ("version: 1\ntitle:\n", (2, "title must not be empty")),
])
def test_values_yaml_cannot_or_must_not_construct_are_problems_not_crashes(
        text: str, expected: tuple[int, str], reference: ScenarioReference) -> None:
    assert expected in problems(text, reference)


def test_text_is_taken_as_written(reference: ScenarioReference) -> None:
    scenario = parse("""
        version: 1
        title: 2026-06-01
        description: yes
        injects:
          - at: 1m
            kind: resource-out-of-service
            resource: FE-03
            reason: no
        """, reference)
    assert (scenario.title, scenario.description) == ("2026-06-01", "yes")
    assert scenario.injects[0].content == ResourceOutOfService("FE-03", "no")


# --- whatever the file holds: a scenario or its problems, never a crash ----------------------

_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                     st.floats(allow_nan=True, allow_infinity=True),
                     st.text(max_size=20), st.sampled_from(
                         ["12m", "0:45", "1h30m", "E0503", "II", "natural-disaster", "typhoon",
                          "FE-03", "HS-01", "HS-01-GAS-01", "Central Avenue", "report",
                          "hotline-call", "incident-report", "sensor-reading",
                          "resource-out-of-service", "inspector-report", "incident-verified",
                          "resource-on-scene", "2026-06-01T08:00:00+08:00", "2001-02-30"]))
_FIELDS = st.sampled_from(["version", "title", "start", "injects", "objectives", "id", "at",
                           "kind", "place", "category", "type", "level", "resource",
                           "hazard_source", "sensor", "value", "within", "since", "incident",
                           "actor", "replay", "from", "to", "description", "reason", "other"])
_DOCUMENTS = st.recursive(
    _SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                      st.dictionaries(_FIELDS, inner, max_size=6)),
    max_leaves=30)


@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(document=st.dictionaries(_FIELDS, _DOCUMENTS, max_size=8), noise=st.text(max_size=8))
def test_any_document_is_a_scenario_or_problems_with_lines(
        document: dict[str, object], noise: str) -> None:
    import yaml

    reference = ScenarioReference(catalogue=CATALOGUE, city=SquareCity())
    text = yaml.safe_dump({"version": 1, **document}, allow_unicode=True) + noise
    try:
        parse_scenario(text, reference)
    except ScenarioInvalid as refused:
        assert refused.problems
        assert all(p.line >= 1 for p in refused.problems)


def test_a_reading_meant_to_cross_a_threshold_must_cross_it(
        reference: ScenarioReference) -> None:
    reading = ("version: 1\ntitle: x\ninjects:\n  - at: 1m\n    kind: sensor-reading\n"
               "    hazard_source: HS-01\n    sensor: HS-01-GAS-01\n    value: {value}\n"
               "    crosses: {crosses}\n")
    assert parse(reading.format(value=46, crosses="alarm"), reference).injects
    assert parse(reading.format(value=25, crosses="warning"), reference).injects
    assert parse(reading.format(value=5, crosses="normal"), reference).injects
    assert problems(reading.format(value=30, crosses="alarm"), reference) == [
        (8, "value 30 of HS-01-GAS-01 is warning, not alarm (warning at 20, alarm at 40 %LEL, "
            "rising)")]
    assert problems(reading.format(value=30, crosses="boiling"), reference)[0][0] == 9
