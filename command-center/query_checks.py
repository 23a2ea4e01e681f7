"""Query parameters a route does not take are refused, naming them, on every route: they used
to be ignored, so a typo or a filter the route does not have (`GET /grid-cases?q=manhole`)
answered the whole list as if it had been applied. Invalid values of enumerated parameters
are refused by their types (`Literal` or `Enum` in the routes' signatures).

One app-wide dependency compares the request's query parameters with those the matched
route declares (its own and its dependencies'); an unknown one is a validation error, so it
answers as every validation error of the route does: 422 with the app's error body, 400 in
the OGC API's form on `/ogc` (OGC API Features, /req/core/query-param-unknown). Routes
that take open-ended parameters check them themselves: the feature routes (a layer's
property filters) and Open311 (GeoReport v2's own error list), with `unknown_parameters`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.requests import HTTPConnection

SELF_CHECKED_PREFIXES = ("/open311/",)
"""Routes that check every query parameter themselves, in their protocol's error form."""

SELF_CHECKED_ROUTES = frozenset({
    "/ogc/collections/{collection_id}/items",  # + the collection's property filters
    "/spatial/{layer}/features",  # + the layer's property filters
    "/spatial/{layer}/radius",  # + the layer's property filters
    "/spatial/{layer}/nearest",  # + the layer's property filters
    "/spatial/{layer}/within",  # + the layer's property filters
    "/exports/{name}",  # + the layer's property filters
})
"""Routes whose other parameters are a layer's property filters, checked by the route
against the layer (an unknown one is refused there, naming it)."""

PAGES = frozenset({"/", "/dashboard", "/login", "/field", "/drill-room"})
"""The HTML pages: their query (`/login?next=...`) belongs to their own scripts."""

_DECLARED: dict[int, frozenset[str]] = {}


def declared_query_parameters(route: APIRoute) -> frozenset[str]:
    """The query parameters `route` takes (aliases, as they appear in a URL)."""
    names = _DECLARED.get(id(route))
    if names is None:
        names = frozenset(_query_aliases(route.dependant))
        _DECLARED[id(route)] = names
    return names


def _query_aliases(dependant: Any) -> Iterable[str]:
    for param in dependant.query_params:
        yield param.alias
    for sub in dependant.dependencies:
        yield from _query_aliases(sub)


def unknown_parameters(given: Iterable[str], known: Collection[str]) -> list[str]:
    """The names in `given` that are not in `known`, each once, in the order given."""
    return list(dict.fromkeys(name for name in given if name not in known))


async def refuse_unknown_query_parameters(request: HTTPConnection) -> None:
    """Refuse (422) the query parameters the matched route does not take (a WebSocket route
    takes none but its own: it is left alone). Asynchronous, as every cheap dependency:
    one written `def` is run in a worker thread, a hop per request and route."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or not request.query_params:
        return
    path = route.path_format
    if (path in SELF_CHECKED_ROUTES or path in PAGES
            or path.startswith(SELF_CHECKED_PREFIXES)):
        return
    known = declared_query_parameters(route)
    unknown = unknown_parameters(request.query_params.keys(), known)
    if unknown:
        accepted = ", ".join(sorted(known)) or "none"
        errors: list[dict[str, Any]] = [
            {"type": "unknown_parameter", "loc": ("query", name),
             "msg": f"unknown query parameter (this route takes: {accepted})",
             "input": request.query_params.get(name)}
            for name in unknown]
        raise RequestValidationError(errors)


def install_query_checks(app: FastAPI) -> None:
    """Refuse unknown query parameters on every route; call it before the routers are
    included (FastAPI copies app-wide dependencies into each route as it is added)."""
    app.router.dependencies.append(Depends(refuse_unknown_query_parameters))
