"""Request dependencies shared by the routers: the system, the acting user, the idempotency
key, paging and bounding boxes (each validating with its own clear error)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Protocol

from fastapi import Depends, Header, HTTPException, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from cityops.command_center.auth import Authenticator, NotAuthenticated
from cityops.domain.accounts.application import Accounts
from cityops.domain.actors import Actor
from cityops.domain.application import actor_scoped_command_id
from cityops.domain.catalogue import Catalogue
from cityops.domain.clock import Clock
from cityops.domain.commands import CommandHandlers
from cityops.domain.coordination import CityOperations
from cityops.domain.exercises.application import Exercises
from cityops.domain.gridcases.application import GridCases
from cityops.domain.hazards.application import HazardSources
from cityops.domain.hotline.application import HotlineTickets
from cityops.domain.incidents.application import Incidents
from cityops.domain.resources.application import Resources
from cityops.domain.reviews.application import Reviews
from cityops.domain.reviews.norms import ResponseNorms
from cityops.domain.sharing import SharingPolicy
from cityops.domain.warnings.application import Warnings
from cityops.projections.generations import ReadModelGenerations
from cityops.projections.photos import PhotoStore
from cityops.projections.spatial import SpatialQueries
from cityops.projections.statistics import CityStatistics
from cityops.projections.views import BBox, ReadModels
from cityops.settings import Settings

if TYPE_CHECKING:
    from cityops.maps.city import City

MAX_PAGE = 500
MAX_OFFSET = 1_000_000_000
"""The most items a page may skip: more than any list holds, and far below the 64-bit
integers SQLite and PostgreSQL take (a larger offset was a 500)."""


class CommandCentreSystem(Protocol):
    """What the command centre's routers use of the system: the applications they command,
    the read models, spatial queries and statistics they answer from, and what decides who
    sees what. The composition root (app/bootstrap.py) builds a `CitySystem`, which has all
    of it; the routers never import it."""

    settings: Settings
    catalogue: Catalogue
    sharing: SharingPolicy
    city: City
    grid_cases: GridCases
    incidents: Incidents
    hazards: HazardSources
    hotline: HotlineTickets
    resources: Resources
    warnings: Warnings
    reviews: Reviews
    response_norms: ResponseNorms
    exercises: Exercises
    accounts: Accounts
    read_models: ReadModels
    spatial: SpatialQueries
    statistics: CityStatistics
    photos: PhotoStore
    generations: ReadModelGenerations

    @property
    def clock(self) -> Clock:
        """The system's one clock (what time it is in the city, simulated or not)."""

    @property
    def operations(self) -> CityOperations:
        """The commands that span two streams."""

    @property
    def commands(self) -> CommandHandlers:
        """The one entry point of every command value (`domain/commands.py`)."""

    def wake_projections(self) -> None:
        """Have this process's projection followers look for new events now."""


async def get_system(
    request: Request,
    drill: Annotated[str | None, Header(
        alias="X-CityOps-Drill",
        description="Act in this drill (its id; \"live\" or absent: the live city), for "
        "its planners and invited participants only; the pages send it as the "
        "`cityops_drill` cookie. Every answer from a drill carries this header back.")] = None,
) -> CommandCentreSystem:
    """The live system, or the drill's own when the request is switched into a drill
    (`drill_switch`: for its planners and invited participants only). Asynchronous: the
    live system is at hand, while a dependency written `def` is run in a worker thread
    (a hop per dependency and request was a sixth of the API process's time); admitting
    to a drill, which may open it, is the part run in a worker thread."""
    from cityops.command_center.drill_switch import (
        admitted_system,
        drill_id_of,
        requested_drill,
    )

    drill_id = drill_id_of(drill) if drill is not None else requested_drill(request)
    if drill_id is None:
        system: CommandCentreSystem = request.app.state.system
        return system
    drill_system: CommandCentreSystem = await run_in_threadpool(
        admitted_system, request.app, drill_id, request.headers.get("authorization"))
    request.state.drill = str(drill_id)
    return drill_system


SystemDep = Annotated[CommandCentreSystem, Depends(get_system)]


bearer_scheme = HTTPBearer(
    auto_error=False, scheme_name="bearer", bearerFormat="CityOps login token",
    description="The `access_token` of `POST /auth/login`, sent as "
                "`Authorization: Bearer <token>`.",
)


def get_authenticator(request: Request) -> Authenticator:
    auth: Authenticator = request.app.state.auth
    return auth


async def current_actor(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Actor:
    """Who is acting: the user of the bearer token (401 without a valid one), checked once
    per request (the command gate asks first, and the route takes its answer). The token is
    checked on the event loop; an account not in the authenticator's cache is read from its
    store in a worker thread."""
    if credentials is None:
        raise NotAuthenticated("log in first: send Authorization: Bearer <token> "
                               "(the access_token of POST /auth/login)")
    token = credentials.credentials
    known: tuple[str, Actor] | None = getattr(request.state, "authenticated", None)
    if known is None or known[0] != token:
        auth = get_authenticator(request)
        claims = auth.claims(token)
        account = auth.cached_account(claims)
        if account is None:
            account = await run_in_threadpool(auth.account, claims)
        known = (token, account.actor())
        request.state.authenticated = known
    # The sharing policy applied to the response needs to know who it is for.
    request.state.actor = known[1]
    return known[1]


CurrentActor = Annotated[Actor, Depends(current_actor)]


async def idempotency_key(
    idempotency_key: Annotated[
        str | None,
        Header(description="Client-supplied command id: repeating it changes nothing"),
    ] = None,
) -> str | None:
    if idempotency_key is not None and not (0 < len(idempotency_key) <= 200):
        raise HTTPException(status_code=422, detail="Idempotency-Key must be 1-200 characters")
    return idempotency_key


IdempotencyKey = Annotated[str | None, Depends(idempotency_key)]
"""The request's `Idempotency-Key` as sent (for a route that hands it on to other routes)."""


async def command_id(key: IdempotencyKey, actor: CurrentActor) -> str | None:
    """The command id of the request's `Idempotency-Key`: the key scoped to the user who
    sends it, so that another user's same key is another command, never a replay."""
    return actor_scoped_command_id(actor, key) if key is not None else None


CommandId = Annotated[str | None, Depends(command_id)]


class Paging:
    def __init__(
        self,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Page size")] = 50,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Items to skip")] = 0,
    ) -> None:
        self.limit = limit
        self.offset = offset


PagingDep = Annotated[Paging, Depends(Paging)]


def bbox_query(
    bbox: Annotated[
        str | None,
        Query(description="min_lon,min_lat,max_lon,max_lat in WGS84",
              examples=["118.7,32.0,118.9,32.1"]),
    ] = None,
) -> BBox | None:
    """Parse and check a bounding box; an impossible one is refused with its own error."""
    if bbox is None:
        return None
    parts = bbox.split(",")
    if len(parts) != 4:
        raise HTTPException(status_code=422,
                            detail="bbox must be four numbers: min_lon,min_lat,max_lon,max_lat")
    try:
        min_lon, min_lat, max_lon, max_lat = (float(p) for p in parts)
    except ValueError:
        raise HTTPException(status_code=422, detail="bbox values must be numbers") from None
    if not (-180 <= min_lon <= 180 and -180 <= max_lon <= 180):
        raise HTTPException(status_code=422, detail="bbox longitudes must be within -180..180")
    if not (-90 <= min_lat <= 90 and -90 <= max_lat <= 90):
        raise HTTPException(status_code=422, detail="bbox latitudes must be within -90..90")
    if min_lon > max_lon or min_lat > max_lat:
        raise HTTPException(status_code=422, detail="bbox minimum is greater than its maximum")
    return BBox(min_lon, min_lat, max_lon, max_lat)


BBoxDep = Annotated[BBox | None, Depends(bbox_query)]


def page_body(items: list[dict[str, Any]], total: int, paging: Paging) -> dict[str, Any]:
    return {"data": items, "count": total, "limit": paging.limit, "offset": paging.offset}
