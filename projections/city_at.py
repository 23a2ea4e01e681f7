"""The whole city at an instant, layer by layer: how many items in each state, the newest of
them, and the key figures (supervision lights as they stood, on the business calendar). One
function for now and for any past instant: the CLI's `cityops history at` prints it and
`bench/time_travel.py` times it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from cityops.projections.as_of import past_store
from cityops.projections.statistics import CityStatistics
from cityops.projections.views import ReadModels

LAYERS: dict[str, str] = {
    "grid-cases": "rm_grid_cases",
    "incidents": "rm_incidents",
    "plans": "rm_plans",
    "hazard-sources": "rm_hazard_sources",
    "hotline-tickets": "rm_tickets",
    "resources": "rm_resources",
    "warnings": "rm_warnings",
}
"""The layers of the city, by the names the API gives them, and their read models."""


def city_at(system: Any, instant: datetime | None, layers: Sequence[str] = tuple(LAYERS),
            newest: int = 20) -> dict[str, Any]:
    """The city at `instant` (None: now): per layer, the count per state and the `newest`
    items; the key figures at that time."""
    unknown = [name for name in layers if name not in LAYERS]
    if unknown:
        raise KeyError(f"no layer {', '.join(unknown)}; the layers: {', '.join(LAYERS)}")
    if instant is None:
        store = system.read_models.store
        moment = system.clock()
    else:
        store = past_store(system, instant)
        moment = instant
    read_models = ReadModels(store, list(system.read_models.tables.values()))
    answer: dict[str, Any] = {"at": moment.isoformat(), "past": instant is not None,
                              "layers": {}}
    for name in layers:
        table = LAYERS[name]
        with store.transaction() as txn:
            txn.execute(f"SELECT status, count(*) FROM {table} GROUP BY status "
                        "ORDER BY status")
            states = {str(status): int(count) for status, count in txn.fetchall()}
        page = read_models.page(table, limit=newest)
        answer["layers"][name] = {"total": page.total, "by_status": states,
                                  "newest": page.items}
    answer["key_figures"] = CityStatistics(store, tallied=instant is None) \
        .key_figures(moment).as_dict()
    return answer
