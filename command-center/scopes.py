"""What a department user may see: their department's scope, the one place that decides it
for lists, single items, histories, map layers, exports and statistics.

A department user sees grid cases dispatched to their department, hotline tickets routed to
it, its own resources, and the incidents that gave it a task (or that they reported
themselves). Everyone else who is logged in sees the whole city. Hazard sources, contingency
plans, the catalogue and the city's own map layers are shared with every department (they
are what a department needs to prepare and respond). Out of scope reads as absent: a direct
get answers 404 exactly as for an id that does not exist, and lists leave it out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any
from uuid import UUID

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from cityops.command_center.dependencies import (
    CommandCentreSystem,
    CurrentActor,
    SystemDep,
    current_actor,
)
from cityops.domain.actors import Actor, Role
from cityops.domain.errors import NotFound, NotPermitted
from cityops.domain.sharing import SharingPolicy, Viewer
from cityops.domain.warnings.content import Scope
from cityops.projections.spatial import Feature, FeaturePage, FeatureQuery

DEPARTMENT_LAYERS = frozenset({"grid-cases", "resources", "hotline-tickets"})
"""Map layers whose features belong to one department (their `department` filter)."""
INCIDENT_LAYERS = frozenset({"incidents", "incident-areas"})
"""Map layers of incidents: in a department's scope when it has a task there."""
WARNING_LAYERS = frozenset({"warnings", "warning-areas"})
"""Map layers of warnings: in a department's scope once issued (a restricted one only
where the catalogue's restricted-warnings condition names the department)."""
RESTRICTED_ALERT_FIELD = "restricted_alert"
"""The warnings feed's field of a restricted alert: who may receive it (docs/sharing.md)."""
SCOPE_DOCUMENT_KEYS = frozenset({"department", "tasks", "reported_by", "sequence",
                                 "scope"})
"""The document keys the scope of a map feature is decided by (`feature_in_scope`)."""
DEPARTMENT_TABLES = frozenset({"rm_grid_cases", "rm_resources", "rm_tickets"})
SCOPED_KINDS = {"grid case": "department", "resource": "department",
                "hotline ticket": "department"}


def scope_of(actor: Actor) -> str | None:
    """The department an actor is confined to (None: the whole city)."""
    return actor.department if actor.role is Role.DEPARTMENT_USER else None


def incident_in_scope(doc: dict[str, Any], actor: Actor) -> bool:
    department = scope_of(actor)
    if department is None:
        return True
    return (doc.get("reported_by") == actor.user_id
            or any(t.get("department") == department for t in doc.get("tasks") or []))


def warning_scopes(actor: Actor, sharing: SharingPolicy) -> tuple[str, ...]:
    """The warning scopes a department user may see: public ones, and restricted ones where
    the sharing catalogue lets their department receive a restricted alert (the rule their
    CAP documents follow, so that a screen never shows what the feed withholds)."""
    if sharing.allows("warnings", RESTRICTED_ALERT_FIELD, Viewer.of(actor)):
        return (Scope.PUBLIC.value, Scope.RESTRICTED.value)
    return (Scope.PUBLIC.value,)


def warning_in_scope(doc: dict[str, Any], actor: Actor, sharing: SharingPolicy) -> bool:
    """A department sees a warning once it has been issued (a draft or an approval not yet
    sent out stays in the centre: an alarm nobody approved must not travel), and a
    restricted one only if it may receive it."""
    return scope_of(actor) is None or (bool(doc.get("sequence"))
                                       and doc.get("scope") in warning_scopes(actor, sharing))


def warning_filters(actor: Actor, sharing: SharingPolicy) -> dict[str, tuple[Any, ...]]:
    """`warning_in_scope` as the warning layers' and table's filters (for a department)."""
    return {"issued": (True,), "scope": warning_scopes(actor, sharing)}


def in_scope(kind: str, doc: dict[str, Any], actor: Actor, sharing: SharingPolicy) -> bool:
    """Whether `actor` may see a document of `kind` (an aggregate's KIND)."""
    department = scope_of(actor)
    if department is None:
        return True
    if kind == "incident":
        return incident_in_scope(doc, actor)
    if kind == "warning":
        return warning_in_scope(doc, actor, sharing)
    field = SCOPED_KINDS.get(kind)
    return field is None or doc.get(field) == department


def visible(kind: str, aggregate_id: UUID | str, doc: dict[str, Any],
            actor: Actor, sharing: SharingPolicy) -> dict[str, Any]:
    """`doc` if `actor` may see it, else `NotFound` as for an id that does not exist."""
    if not in_scope(kind, doc, actor, sharing):
        raise NotFound(kind, aggregate_id)
    return doc


# --- read-model lists -----------------------------------------------------------------------


class OutOfScope(Exception):
    """A list filter asks for another department's items: the answer is an empty page."""


def scoped_filters(table: str, filters: dict[str, Any], actor: Actor) -> dict[str, Any]:
    """`filters` narrowed to the actor's department on a department-owned table; raises
    `OutOfScope` when they ask for another department."""
    department = scope_of(actor)
    if department is None or table not in DEPARTMENT_TABLES:
        return filters
    asked = filters.get("department")
    if asked is not None and asked != department:
        raise OutOfScope(table)
    return {**filters, "department": department}


def layer_scope_where(layer_id: str, dialect: str, actor: Actor,
                      sharing: SharingPolicy) -> list[tuple[str, list[Any]]]:
    """The SQL condition keeping a layer's rows in the actor's scope, for the layers whose
    scope is in the document (incidents, warnings)."""
    if layer_id in WARNING_LAYERS:
        if scope_of(actor) is None:
            return []
        scopes = warning_scopes(actor, sharing)
        return [("issued = %s", [True]),
                (f"scope IN ({', '.join(['%s'] * len(scopes))})", list(scopes))]
    return incident_scope_where(dialect, actor)


def incident_scope_where(dialect: str, actor: Actor) -> list[tuple[str, list[Any]]]:
    """The SQL condition (for `ReadModels.page`'s `extra_where`) keeping the incidents in
    the actor's scope: a task for their department, or reported by them."""
    department = scope_of(actor)
    if department is None:
        return []
    if dialect == "postgres":
        clause = ("(doc->'tasks' @> jsonb_build_array(jsonb_build_object('department', "
                  "%s::text)) OR doc->>'reported_by' = %s)")
    else:
        clause = ("(EXISTS (SELECT 1 FROM json_each(doc, '$.tasks') AS task WHERE "
                  "json_extract(task.value, '$.department') = %s) "
                  "OR json_extract(doc, '$.reported_by') = %s)")
    return [(clause, [department, actor.user_id])]


# --- map layers -----------------------------------------------------------------------------


def feature_in_scope(layer_id: str, feature: Feature, actor: Actor,
                     sharing: SharingPolicy) -> bool:
    if scope_of(actor) is None:
        return True
    if layer_id in INCIDENT_LAYERS:
        return incident_in_scope(feature.doc, actor)
    if layer_id in WARNING_LAYERS:
        return warning_in_scope(feature.doc, actor, sharing)
    if layer_id in DEPARTMENT_LAYERS:
        return bool(feature.doc.get("department") == scope_of(actor))
    return True


def scoped_features(layer_id: str, query: FeatureQuery, actor: Actor, sharing: SharingPolicy,
                    run: Callable[[FeatureQuery], FeaturePage]) -> FeaturePage:
    """Run a feature query of a layer for `actor`: narrowed to their department where the
    layer has one, filtered (then paged here) on incident layers."""
    department = scope_of(actor)
    if department is not None and layer_id in WARNING_LAYERS:
        return run(replace(query, where=_narrowed(query.where,
                                                  warning_filters(actor, sharing))))
    if department is None or (layer_id not in DEPARTMENT_LAYERS
                              and layer_id not in INCIDENT_LAYERS):
        return run(query)
    if layer_id in DEPARTMENT_LAYERS:
        asked = query.where.get("department")
        if asked is not None and department not in asked:
            return FeaturePage(features=[], matched=0)
        return run(replace(query, where={**query.where, "department": (department,)}))
    # Incidents carry their departments in their tasks, not in a column: take every match
    # (a department's incidents are few) and page after filtering.
    every = run(replace(query, limit=None, offset=0))
    mine = [f for f in every.features if incident_in_scope(f.doc, actor)]
    end = None if query.limit is None else query.offset + query.limit
    return FeaturePage(features=mine[query.offset:end], matched=len(mine))


def require_citywide(actor: Actor, what: str) -> None:
    """Refuse city-wide figures to a department user (they read their own department's)."""
    if scope_of(actor) is not None:
        raise NotPermitted(f"{what} covers the whole city; a department user reads the "
                           "figures of their own department (/statistics/departments, "
                           "/statistics/hotline)")


# --- the guard of a router's items ------------------------------------------------------------


def scope_guard(param: str, kind: str,
                load: Callable[[CommandCentreSystem, UUID], dict[str, Any]]) -> Any:
    """A router dependency: every request needs a login, and a department user's request
    about an item (path parameter `param`) outside their scope answers 404 before anything
    is read or done."""

    def in_scope(system: CommandCentreSystem, aggregate_id: UUID, actor: Actor) -> None:
        try:
            doc = load(system, aggregate_id)
        except NotFound:
            return  # the route answers 404 itself
        visible(kind, aggregate_id, doc, actor, system.sharing)

    async def check(request: Request, system: SystemDep, actor: CurrentActor) -> None:
        # Asynchronous: only a department user's request reads the item, in a worker
        # thread; the others pass without the hop a `def` dependency costs.
        raw = request.path_params.get(param)
        if scope_of(actor) is None or raw is None:
            return
        try:
            aggregate_id = UUID(str(raw))
        except ValueError:
            return  # the route itself refuses a malformed id
        await run_in_threadpool(in_scope, system, aggregate_id, actor)

    return Depends(check)


LOGGED_IN = Depends(current_actor)
"""The router dependency of routers whose every route needs a login and nothing more."""


def scoped_nearest(layer_id: str, query: FeatureQuery, n: int, actor: Actor,
                   sharing: SharingPolicy, run: Callable[[FeatureQuery, int], list[Feature]],
                   most: int) -> list[Feature]:
    """The `n` nearest features of a layer that `actor` may see. On incident layers a
    department user's are picked from the `most` nearest of all (the nearest questions'
    own limit): their incidents farther out than that are not offered."""
    department = scope_of(actor)
    if department is not None and layer_id in WARNING_LAYERS:
        return run(replace(query, where=_narrowed(query.where,
                                                  warning_filters(actor, sharing))), n)
    if department is None or (layer_id not in DEPARTMENT_LAYERS
                              and layer_id not in INCIDENT_LAYERS):
        return run(query, n)
    if layer_id in DEPARTMENT_LAYERS:
        asked = query.where.get("department")
        if asked is not None and department not in asked:
            return []
        return run(replace(query, where={**query.where, "department": (department,)}), n)
    return [f for f in run(query, most) if incident_in_scope(f.doc, actor)][:n]


def _narrowed(where: Mapping[str, Sequence[Any]],
              scope: Mapping[str, Sequence[Any]]) -> dict[str, Sequence[Any]]:
    """A feature query's filters within `scope`: what it asked for that the scope allows
    (a filter asking only for what the scope excludes matches nothing)."""
    narrowed: dict[str, Sequence[Any]] = dict(where)
    for name, allowed in scope.items():
        asked = where.get(name)
        narrowed[name] = allowed if asked is None else tuple(v for v in asked if v in allowed)
    return narrowed
