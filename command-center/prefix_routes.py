"""Requests under a router's own prefix go straight to that router, not through every router
included before it.

The app tries its routes in the order they were included, and with this FastAPI each
included router matches by trying each of its routes: a request to `/ogc/...` (included
after about a hundred routes) spent milliseconds being matched, and as long again for each
`request.url_for`, which walks the routes the same way. The routers keep their place (the
OpenAPI document lists them in that order, and URLs are built from them); an entry at the
front of the route list hands a request whose path lies under the prefix to its router
first. It is only installed for a prefix no other route can match, so every request ends
up where it did before.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import BaseRoute, Match, NoMatchFound
from starlette.types import Receive, Scope, Send


class PrefixFirst(BaseRoute):
    """Hands the requests under `prefix` to `route` (an included router) before the routes
    in front of it are tried."""

    def __init__(self, prefix: str, route: BaseRoute) -> None:
        self.prefix = prefix
        self.route = route

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        """The router's own match, for a path under the prefix; no match otherwise."""
        if scope["type"] != "http":
            return Match.NONE, {}
        path: str = scope["path"]
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root):]
        if path != self.prefix and not path.startswith(self.prefix + "/"):
            return Match.NONE, {}
        return self.route.matches(scope)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """As the router handles it."""
        await self.route.handle(scope, receive, send)

    def url_path_for(self, name: str, /, **path_params: Any) -> Any:
        """Names are found at the router's own place in the list."""
        raise NoMatchFound(name, path_params)


def serve_prefix_first(app: FastAPI, router: APIRouter) -> None:
    """Put `router` (already included in `app`, with a prefix) in front for its paths;
    refuses a prefix that another route could also match."""
    prefix = router.prefix
    if not prefix:
        raise ValueError("a router without a prefix cannot be served first")
    mine = {id(r) for r in router.routes}
    for context in iter_route_contexts(app.router.routes):
        if id(context.original_route) in mine or isinstance(context.original_route,
                                                            PrefixFirst):
            continue
        path = context.path_format or ""
        first = path.split("/")[1] if path.startswith("/") else path
        if path == prefix or path.startswith(prefix + "/") or "{" in first:
            raise ValueError(f"{path} (not of the router) could match a path under {prefix}")
    included = [r for r in app.router.routes if getattr(r, "original_router", None) is router]
    if len(included) != 1:
        raise ValueError(f"the router of {prefix} is not included in the app once")
    app.router.routes.insert(0, PrefixFirst(prefix, included[0]))


def named_routes(router: APIRouter) -> Mapping[str, APIRoute]:
    """The router's routes by name (the first of a name, as `url_for` finds them)."""
    named: dict[str, APIRoute] = {}
    for route in router.routes:
        if isinstance(route, APIRoute):
            named.setdefault(route.name, route)
    return named
