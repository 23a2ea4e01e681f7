"""The sharing policy on the command centre's read paths: every answer of a stream's router
passes through it for the user who asked, so no route (present or added later) can show a
field the catalogue does not share with that user's role and department.

The policy is `cityops.domain.sharing` (loaded at start-up as `CitySystem.sharing`); a
withheld field is absent from the answer (docs/sharing.md).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, Protocol

from fastapi import Request, Response
from fastapi.routing import APIRoute

from cityops.domain.actors import Actor
from cityops.domain.sharing import SharingPolicy, Viewer

JSON_TYPES = ("application/json", "application/geo+json")


class SharingSource(Protocol):
    """What the read paths need of the system here: its sharing policy."""

    @property
    def sharing(self) -> SharingPolicy: ...


def viewer_of(request: Request) -> Viewer:
    """Who an answer is for: the logged-in user (`current_actor` notes them on the request),
    else the public, who see only what is shared with everyone."""
    actor = getattr(request.state, "actor", None)
    return Viewer.of(actor) if isinstance(actor, Actor) else Viewer.city_wide()


def shared_for(system: SharingSource, stream: str, data: Any, actor: Actor | None) -> Any:
    """`data` of `stream` as `actor` (None: the public) may see it."""
    viewer = Viewer.of(actor) if actor is not None else Viewer.city_wide()
    return system.sharing.document(stream, data, viewer)


def shared_route(stream: str) -> type[APIRoute]:
    """The `route_class` of a stream's router: its JSON answers (2xx) pass through the
    sharing policy for the user who asked."""

    class SharedRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def shared_handler(request: Request) -> Response:
                response = await handler(request)
                return apply_policy(request, response, stream)

            return shared_handler

    SharedRoute.__name__ = SharedRoute.__qualname__ = f"SharedRoute[{stream}]"
    return SharedRoute


def apply_policy(request: Request, response: Response, stream: str) -> Response:
    """`response` with what its viewer may not see removed (a JSON success only: errors,
    files and streams carry no document)."""
    body = getattr(response, "body", None)
    media = (response.media_type or response.headers.get("content-type", "")).split(";")[0]
    if not isinstance(body, bytes) or not body or not 200 <= response.status_code < 300 \
            or media not in JSON_TYPES:
        return response
    system: SharingSource = request.app.state.system
    viewer = viewer_of(request)
    if not system.sharing.withheld_keys(stream, viewer):
        return response
    data = system.sharing.document(stream, json.loads(body), viewer)
    # Written as Starlette's JSONResponse writes it.
    response.body = json.dumps(data, ensure_ascii=False, allow_nan=False,
                               separators=(",", ":")).encode()
    response.headers["content-length"] = str(len(response.body))
    return response


LAYER_STREAMS: dict[str, str] = {
    "grid-cases": "grid-cases",
    "incidents": "incidents",
    "incident-areas": "incidents",
    "hazard-sources": "hazards",
    "hazard-zones": "hazards",
    "resources": "resources",
    "hotline-tickets": "hotline",
}
"""The stream whose documents each read-model map layer (and live layer) shows."""


def hidden_by_layer(system: SharingSource, actor: Actor) -> dict[str, frozenset[str]]:
    """The document keys `actor` may not see, for each read-model layer."""
    viewer = Viewer.of(actor)
    return {layer: system.sharing.withheld_keys(stream, viewer)
            for layer, stream in LAYER_STREAMS.items()}


def check_map_layers(system: SharingSource, layers: Iterable[Any]) -> None:
    """Map layers, OGC collections and exports show the same flat properties to everyone
    who may read the layer: refuse to start when one of them is not shared unconditionally
    (a layer must not publish a conditional field to all)."""
    for layer in layers:
        stream = LAYER_STREAMS.get(layer.id)
        if stream is not None:
            system.sharing.check_published(stream, (p.name for p in layer.properties),
                                           f"map layer {layer.id}")
