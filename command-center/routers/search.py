"""Search: grid cases, hotline tickets and incidents by their text, address and ids, within
what the person searching may see (the same scopes as the lists); and the city's gazetteer
(districts, streets, communities, cells, landmarks, schools, hospitals, shelters, hazard
sources) by name, with a point and a bounding box to place the map."""

from __future__ import annotations

import functools
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Query

from cityops.command_center.dependencies import CommandCentreSystem, CurrentActor, SystemDep
from cityops.command_center.models.search import PlacesPublic, SearchResultsPublic
from cityops.command_center.scopes import (
    LOGGED_IN,
    OutOfScope,
    incident_scope_where,
    scoped_filters,
)
from cityops.command_center.sharing import shared_for
from cityops.command_center.time_travel import ReadSystem
from cityops.domain.actors import Actor
from cityops.maps.gazetteer import Gazetteer
from cityops.projections.search import (
    GRID_CASES,
    HOTLINE_TICKETS,
    INCIDENTS,
    MAX_QUERY_LENGTH,
    SearchQuery,
    SearchTarget,
    parse_query,
    search,
)
from cityops.projections.views import Page, case_light

router = APIRouter(prefix="/search", tags=["search"], dependencies=[LOGGED_IN])

MAX_RESULTS = 100
SearchText = Annotated[str, Query(min_length=1, max_length=MAX_QUERY_LENGTH,
                                  description="Words, a place of the city, an id or a grid "
                                              "code, e.g. `burst pipe Reservoir Road`")]


class SearchKind(StrEnum):
    """What a search looks in."""

    GRID_CASES = "grid-cases"
    HOTLINE_TICKETS = "hotline-tickets"
    INCIDENTS = "incidents"


@functools.cache
def _gazetteer(city: Any) -> Gazetteer:
    return Gazetteer.of_city(city)


def gazetteer_of(system: CommandCentreSystem) -> Gazetteer:
    """The gazetteer of the system's city (built on first use, then kept: the map never
    changes while a process runs)."""
    return _gazetteer(system.city)


def _locate(system: CommandCentreSystem) -> Any:
    def cells(docs: list[dict[str, Any]]) -> list[str | None]:
        points = [(d.get("location") or {}).get("coordinates") or [None, None] for d in docs]
        located = [i for i, p in enumerate(points) if p[0] is not None]
        found: list[str | None] = [None] * len(docs)
        if located:
            where = system.city.map.locate_many([points[i][0] for i in located],
                                                [points[i][1] for i in located])
            for i, location in zip(located, where, strict=True):
                found[i] = location.cell_code if location is not None else None
        return found

    return cells


def _hits(page: Page) -> dict[str, Any]:
    return {"data": page.items, "count": page.total}


def _department_hits(system: CommandCentreSystem, target: SearchTarget, query: SearchQuery,
                     actor: Actor, limit: int) -> Page:
    try:
        filters = scoped_filters(target.table, {}, actor)
    except OutOfScope:
        return Page(items=[], total=0)
    return search(system.read_models, target, query, filters=filters, extra_where=[],
                  limit=limit, offset=0, locate=_locate(system))


@router.get("", response_model=SearchResultsPublic, response_model_exclude_unset=True)
def search_items(
    system: ReadSystem,
    actor: CurrentActor,
    q: SearchText,
    kind: Annotated[list[SearchKind] | None, Query(description="Where to look (default: "
                                                   "everywhere)")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_RESULTS, description="Matches of each kind")]
    = 10,
) -> dict[str, Any]:
    """Find grid cases, hotline tickets and incidents by description, place and id (as
    they stood at `as_of`, if given)."""
    kinds = set(kind or SearchKind)
    query = parse_query(q, gazetteer_of(system))
    result: dict[str, Any] = {
        "query": q, "words": list(query.words),
        "places": [c.place.as_dict() for c in query.places],
        "grid_cases": None, "hotline_tickets": None, "incidents": None,
    }
    if SearchKind.GRID_CASES in kinds:
        page = _department_hits(system, GRID_CASES, query, actor, limit)
        now = system.grid_cases.clock()
        items = []
        for doc in page.items:
            light = case_light(doc, now)
            items.append({**doc, "light": light.value if light else None})
        result["grid_cases"] = {"data": shared_for(system, "grid-cases", items, actor),
                                "count": page.total}
    if SearchKind.HOTLINE_TICKETS in kinds:
        page = _department_hits(system, HOTLINE_TICKETS, query, actor, limit)
        result["hotline_tickets"] = {
            "data": shared_for(system, "hotline", page.items, actor),
            "count": page.total}
    if SearchKind.INCIDENTS in kinds:
        page = search(system.read_models, INCIDENTS, query, filters={},
                      extra_where=incident_scope_where(system.read_models.store.dialect, actor),
                      limit=limit, offset=0, locate=_locate(system))
        result["incidents"] = shared_for(system, "incidents", _hits(page), actor)
    return result


@router.get("/places", response_model=PlacesPublic)
def search_places(
    system: SystemDep,
    q: SearchText,
    limit: Annotated[int, Query(ge=1, le=MAX_RESULTS, description="How many")] = 10,
) -> dict[str, Any]:
    """Find the city's named places (areas, cells, landmarks, facilities) by name."""
    places = gazetteer_of(system).find(q, limit)
    return {"data": [place.as_dict() for place in places], "count": len(places)}
