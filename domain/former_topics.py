"""Where the stored classes used to live: an event is stored with its class's topic (module
path and name) and outlives the code, so a class that moves keeps answering to its former
topics (the library's `register_topic`), and a read that filters by topic asks for both."""

from __future__ import annotations

import importlib
import inspect
import threading

from eventsourcing.domain import Aggregate, DomainEvent
from eventsourcing.utils import get_topic, register_topic

FORMER_MODULES: dict[str, tuple[str, ...]] = {
    # Moved into one folder per bounded context (a module could hold several aggregates).
    "cityops.domain.gridcase": ("cityops.domain.gridcases.case",),
    "cityops.domain.incident": ("cityops.domain.incidents.incident",
                                "cityops.domain.incidents.plans"),
    "cityops.domain.hazard": ("cityops.domain.hazards.source",),
    "cityops.domain.hotline": ("cityops.domain.hotline.ticket",),
    "cityops.domain.resource": ("cityops.domain.resources.resource",),
    "cityops.domain.accounts": ("cityops.domain.accounts.account",),
}
"""Former module -> the modules its stored classes live in now."""

_registered = threading.Event()
_lock = threading.Lock()
_former: dict[type, list[str]] = {}


def _stored_classes(module_name: str) -> list[type]:
    """The aggregates and module-level events a module defines (nested events are found
    through their aggregate's topic)."""
    module = importlib.import_module(module_name)
    return [cls for _, cls in inspect.getmembers(module, inspect.isclass)
            if cls.__module__ == module_name and issubclass(cls, (Aggregate, DomainEvent))]


def register_former_topics() -> None:
    """Make every former topic resolve to its class (once per process; idempotent)."""
    if _registered.is_set():
        return
    with _lock:
        if _registered.is_set():
            return
        for former, modules in FORMER_MODULES.items():
            for module_name in modules:
                for cls in _stored_classes(module_name):
                    topic = f"{former}:{cls.__qualname__}"
                    register_topic(topic, cls)
                    _former.setdefault(cls, []).append(topic)
        _registered.set()


def stored_topics(cls: type) -> tuple[str, ...]:
    """Every topic under which events of `cls` may be stored: its own and its former ones
    (for reads that select notifications by topic)."""
    register_former_topics()
    own = get_topic(cls)
    outer, _, nested = cls.__qualname__.partition(".")
    formers: list[str] = []
    for owner, topics in _former.items():
        if owner.__qualname__ == outer and owner.__module__ == cls.__module__:
            formers += [f"{t}.{nested}" if nested else t for t in topics]
    return (own, *formers)
