"""The drill registry: a drill started with the planner's own scenario file keeps its text in
the drill's events, and drills stored before that read as shipped-scenario drills."""

from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

import pytest

from cityops.domain.actors import Actor, Role
from cityops.domain.commands import CommandContext
from cityops.domain.drills.application import Drills
from cityops.domain.drills.commands import StartDrill
from cityops.domain.drills.drill import Drill
from cityops.domain.errors import InvalidValue

from .conftest import POPO, START, FixedClock, as_stored_by_version_1

PLANNER = CommandContext(actor=Actor("planner-1", Role.PLANNER))
SCENARIO = "version: 1\ntitle: Our own leak\n"


def start(**given: object) -> StartDrill:
    return StartDrill(drill_id=uuid4(), title="Drill", window_from=START - timedelta(hours=2),
                      window_to=START - timedelta(hours=1), speed=10.0, **given)  # type: ignore[arg-type]


def test_a_drill_keeps_the_text_of_the_planners_own_scenario() -> None:
    app = Drills(POPO, clock=FixedClock(START))
    command = start(scenario="our-leak", scenario_text=SCENARIO)
    app.handle(command, PLANNER)
    drill = app.drill(command.drill_id)
    assert (drill.scenario, drill.scenario_text) == ("our-leak", SCENARIO)
    assert drill.summary()["own_scenario"] is True
    shipped = start(scenario="typhoon")
    app.handle(shipped, PLANNER)
    assert app.drill(shipped.drill_id).summary()["own_scenario"] is False


@pytest.mark.parametrize(("given", "expected"), [
    ({"scenario_text": SCENARIO}, r"needs a name \(scenario\)"),
    ({"scenario": "x", "scenario_text": "  \n"}, "scenario_text is empty"),
    ({"scenario": "x", "scenario_text": "#" * (1024 * 1024 + 1)}, "larger than"),
])
def test_a_scenario_file_without_a_name_or_text_is_refused(
        given: dict[str, str], expected: str) -> None:
    with pytest.raises(InvalidValue, match=expected):
        start(**given)


def test_a_drill_started_before_own_scenarios_reads_as_a_shipped_one() -> None:
    """`Started` stored as version 1 had no scenario text."""
    app = Drills(POPO, clock=FixedClock(START))
    command = start(scenario="typhoon")
    app.handle(command, PLANNER)
    [started] = list(app.events.get(command.drill_id))
    upcast = as_stored_by_version_1(app, started, "scenario_text")
    assert isinstance(upcast, Drill.Started)
    assert (upcast.scenario, upcast.scenario_text) == ("typhoon", None)
