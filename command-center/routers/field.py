"""What a grid inspector needs on patrol: the cells assigned to them (from the city's map),
the handled cases in those cells waiting for their verification on site, and the mobile
field page itself."""

from __future__ import annotations

from typing import Any

import shapely
from fastapi import APIRouter, HTTPException
from fastapi.responses import HTMLResponse, JSONResponse

from cityops.command_center.dependencies import CurrentActor, PagingDep, SystemDep, page_body
from cityops.command_center.feature_requests import GEOJSON
from cityops.command_center.models.grid_cases import VerificationTasksPublic
from cityops.command_center.models.spatial import GeoJSONResponse, InspectorCellsPublic
from cityops.command_center.routers.pages import page
from cityops.command_center.sharing import shared_route
from cityops.command_center.time_travel import ReadSystem
from cityops.domain.actors import Actor, Role
from cityops.domain.errors import NotPermitted
from cityops.domain.gridcases.case import CaseStatus
from cityops.maps.citymap import CityMap, Inspector
from cityops.projections.tables import doc_text
from cityops.projections.views import Page, ReadModels, case_light

router = APIRouter(prefix="/field", tags=["field"], route_class=shared_route("grid-cases"))


def _inspector(actor: Actor, city_map: CityMap) -> Inspector:
    """The city map's inspector who is acting (their user name is their inspector id)."""
    if actor.role is not Role.INSPECTOR:
        raise NotPermitted(f"{actor.role.value} {actor.user_id} has no assigned grid cells: "
                           "only grid inspectors patrol cells")
    inspector = city_map.inspectors.get(actor.user_id)
    if inspector is None:
        raise HTTPException(
            status_code=404,
            detail=f"inspector {actor.user_id} is not one of the inspectors of "
                   f"{city_map.name}'s map, so no cells are assigned to them (an inspector's "
                   "user name must be their inspector id in the city's inspectors.json)")
    return inspector


def _cell_codes(city_map: CityMap, inspector_id: str) -> list[str]:
    cells = city_map.cells
    return sorted(str(c) for c in cells.loc[cells["inspector"] == inspector_id, "code"])


def verification_tasks(read_models: ReadModels, inspector_id: str, cells: list[str],
                       limit: int, offset: int) -> Page:
    """The handled cases that `inspector_id` is to verify: in their `cells` and assigned to
    nobody else, or assigned to them by the centre; the most urgent first."""
    assigned = doc_text(read_models.store.dialect, "assigned_verifier")
    in_cells = f"grid_cell IN ({', '.join(['%s'] * len(cells))})" if cells else "1 = 0"
    return read_models.page(
        "rm_grid_cases",
        filters={"status": [CaseStatus.HANDLED.value]},
        extra_where=[(f"(({assigned} IS NULL AND {in_cells}) OR {assigned} = %s)",
                      [*cells, inspector_id])],
        order_by="red_at ASC", limit=limit, offset=offset,
    )


@router.get("", response_class=HTMLResponse)
def field_page(system: SystemDep) -> HTMLResponse:
    """The inspector's mobile page: report, assigned cells, verification tasks."""
    return page("field.html", system.settings.tile_url)


@router.get("/me/cells", response_class=GeoJSONResponse, response_model=InspectorCellsPublic)
def my_cells(system: SystemDep, actor: CurrentActor) -> JSONResponse:
    """The unit grid cells the logged-in inspector patrols, as a GeoJSON FeatureCollection
    (WGS84), with who they are and the communities they cover."""
    city_map: CityMap = system.city.map
    inspector = _inspector(actor, city_map)
    cells = city_map.cells
    mine = cells[cells["inspector"] == inspector.id].sort_values("code")
    features = [
        {
            "type": "Feature",
            "id": str(row.code),
            "geometry": shapely.geometry.mapping(row.geometry),
            "properties": {"code": str(row.code), "community": str(row.community),
                           "street": str(row.street), "district": str(row.district),
                           "area_m2": round(float(row.area_m2), 1)},
        }
        for row in mine.itertuples()
    ]
    body: dict[str, Any] = {
        "type": "FeatureCollection",
        "inspector": {"id": inspector.id, "name": inspector.name,
                      "district": inspector.district,
                      "communities": list(inspector.communities)},
        "numberMatched": len(features),
        "features": features,
    }
    if len(mine):
        body["bbox"] = [round(float(v), 7) for v in mine.total_bounds]
    return JSONResponse(body, media_type=GEOJSON)


@router.get("/me/tasks", response_model=VerificationTasksPublic)
def my_tasks(system: ReadSystem, actor: CurrentActor, paging: PagingDep) -> dict[str, Any]:
    """The handled cases that wait for the logged-in inspector's verification on site: those
    in their cells, unless the centre assigned another inspector, and those the centre
    assigned to them (`assigned_to_me`), the most urgent deadline first; each with its
    supervision light and `verify_by` (the deadline of the verification); with `as_of`, as
    they stood then."""
    city_map: CityMap = system.city.map
    inspector = _inspector(actor, city_map)
    page_ = verification_tasks(system.read_models, inspector.id,
                               _cell_codes(city_map, inspector.id), paging.limit, paging.offset)
    now = system.grid_cases.clock()
    items = []
    for doc in page_.items:
        light = case_light(doc, now)
        items.append({**doc, "light": light.value if light else None,
                      "verify_by": doc.get("stage_deadline"),
                      "assigned_to_me": doc.get("assigned_verifier") == inspector.id})
    return page_body(items, page_.total, paging)
