"""Events stored before a class moved still load: the domain modules moved into one folder
per bounded context (and the plans out of the incident module), and stored events keep the
topics they were written with."""

from __future__ import annotations

from dataclasses import replace

import pytest
from eventsourcing.utils import resolve_topic

from cityops.domain.application import CityApplication
from cityops.domain.former_topics import FORMER_MODULES, register_former_topics, stored_topics
from cityops.domain.gridcases.case import GridCase
from cityops.domain.incidents.incident import Incident
from cityops.domain.incidents.plans import REGISTRY_ID, ContingencyPlan, PlanRegistry

IN_MEMORY = {"PERSISTENCE_MODULE": "eventsourcing.popo"}


def test_former_topics_resolve_to_the_moved_classes() -> None:
    register_former_topics()
    assert resolve_topic("cityops.domain.gridcase:GridCase.Reported") is GridCase.Reported
    assert resolve_topic("cityops.domain.incident:Incident") is Incident
    assert resolve_topic("cityops.domain.incident:ContingencyPlan.Defined") is (
        ContingencyPlan.Defined)


def test_every_former_module_names_modules_that_exist() -> None:
    register_former_topics()
    for former, modules in FORMER_MODULES.items():
        assert modules, former
        for module in modules:
            assert resolve_topic(module).__name__ == module


def test_an_event_stored_under_its_former_topic_loads_and_is_selected_by_topic() -> None:
    old = CityApplication(env=IN_MEMORY)
    registry = PlanRegistry.open()
    old.save(registry)
    stored = old.recorder.select_events(REGISTRY_ID)
    assert stored[0].topic == "cityops.domain.incidents.plans:PlanRegistry.Opened"
    before_the_move = [replace(e, topic=e.topic.replace("cityops.domain.incidents.plans",
                                                        "cityops.domain.incident"))
                       for e in stored]

    app = CityApplication(env=IN_MEMORY)
    app.recorder.insert_events(before_the_move)
    loaded = app.repository.get(REGISTRY_ID)
    assert isinstance(loaded, PlanRegistry)
    assert loaded.entries == {}
    notifications = app.recorder.select_notifications(
        1, 10, topics=stored_topics(PlanRegistry.Opened))
    assert [n.originator_id for n in notifications] == [REGISTRY_ID]


@pytest.mark.parametrize("cls", [GridCase.Reported, PlanRegistry.Opened, Incident])
def test_stored_topics_name_the_current_topic_first(cls: type) -> None:
    topics = stored_topics(cls)
    assert topics[0] == f"{cls.__module__}:{cls.__qualname__}"
    assert len(topics) == 2
