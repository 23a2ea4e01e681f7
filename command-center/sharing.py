"""The sharing policy on the command centre's read paths: every answer of a stream's router
passes through it for the user who asked, so no route (present or added later) can show a
field the catalogue does not share with that user's role and department.

The policy is `cityops.domain.sharing` (loaded at start-up as `CitySystem.sharing`); a
withheld field is absent from the answer (docs/sharing.md).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from fastapi import Request, Response
from fastapi.routing import APIRoute

from cityops.domain.actors import Actor
from cityops.domain.sharing import SharingPolicy, Viewer, without_keys
from cityops.domain.warnings.warning import as_sent

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
    "warnings": "warnings",
    "warning-areas": "warnings",
}
"""The stream whose documents each read-model map layer (and live layer) shows."""

WARNING_LAYERS = frozenset({"warnings", "warning-areas"})
PREPARATION_FIELD = "draft"
"""The catalogue field of a warning's content under preparation: who may not see it sees
each warning as it went out (`as_sent`)."""


@dataclass(frozen=True)
class DocumentView:
    """How one viewer sees the documents of one layer or route: without the keys the
    catalogue withholds from them and, for warnings whose preparation they may not see, as
    the warnings went out (an issued warning stays issued while an update is prepared)."""

    hidden: frozenset[str] = frozenset()
    as_sent: bool = False

    def __bool__(self) -> bool:
        return bool(self.hidden) or self.as_sent

    def apply(self, doc: dict[str, Any]) -> dict[str, Any]:
        """`doc` as the viewer sees it (a new dict when anything changes)."""
        if self.as_sent:
            doc = as_sent(doc)
        shown: dict[str, Any] = without_keys(doc, self.hidden) if self.hidden else doc
        return shown


def warning_view(system: SharingSource, actor: Actor) -> DocumentView:
    """How `actor` sees a warning's document (REST, `/ws`), by the sharing catalogue."""
    viewer = Viewer.of(actor)
    return DocumentView(system.sharing.withheld_keys("warnings", viewer),
                        as_sent=not system.sharing.allows("warnings", PREPARATION_FIELD,
                                                          viewer))


def hidden_by_layer(system: SharingSource, actor: Actor) -> dict[str, DocumentView]:
    """How `actor` sees the documents of each read-model layer."""
    viewer = Viewer.of(actor)
    views = {layer: DocumentView(system.sharing.withheld_keys(stream, viewer))
             for layer, stream in LAYER_STREAMS.items()}
    warnings = warning_view(system, actor)
    for layer in WARNING_LAYERS:
        views[layer] = warnings
    return views


def check_map_layers(system: SharingSource, layers: Iterable[Any]) -> None:
    """Map layers, OGC collections and exports show the same flat properties to everyone
    who may read the layer: refuse to start when one of them is not shared unconditionally
    (a layer must not publish a conditional field to all)."""
    for layer in layers:
        stream = LAYER_STREAMS.get(layer.id)
        if stream is not None:
            system.sharing.check_published(stream, (p.name for p in layer.properties),
                                           f"map layer {layer.id}")
