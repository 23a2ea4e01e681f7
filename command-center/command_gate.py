"""Authorisation at the door of every command route: a role that may not issue a command is
refused (403) before its body is read, so it learns nothing about what the body should hold
(validation answered first: a leader's `POST /plans {}` got a 422 listing the fields).

One table says which command each route issues (the permission table of `domain/permissions.py`
says who may issue it; the domain checks it again, with the department scope). The gate is an
ASGI middleware in front of the routes: it answers before FastAPI reads the body and resolves
the route's dependencies, so a malformed body, a malformed `If-Match` or an unknown query
parameter cannot answer first either. Authentication comes first of all (401 without a valid token).
`tests/e2e/test_authorization.py` checks that every command route of the app is listed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from fastapi import FastAPI, Request
from starlette.routing import compile_path
from starlette.types import ASGIApp, Receive, Scope, Send

from cityops.command_center.dependencies import bearer_scheme, current_actor
from cityops.command_center.errors import error_response
from cityops.command_center.routers.exercises import SCENARIO_ROLES
from cityops.command_center.routers.photos import UPLOAD_ROLES
from cityops.domain.actors import Actor, Role
from cityops.domain.errors import DomainError, NotPermitted
from cityops.domain.permissions import check_permitted, roles_for

ROUTE_COMMANDS: dict[tuple[str, str], str] = {
    # drills (the drill registry's commands)
    ("POST", "/drills"): "drill.start",
    ("POST", "/drills/{drill_id}/pause"): "drill.pause",
    ("POST", "/drills/{drill_id}/resume"): "drill.resume",
    ("POST", "/drills/{drill_id}/speed"): "drill.change-speed",
    ("POST", "/drills/{drill_id}/jump"): "drill.jump-forward",
    ("POST", "/drills/{drill_id}/participants"): "drill.invite",
    ("POST", "/drills/{drill_id}/finish"): "drill.finish",
    ("DELETE", "/drills/{drill_id}"): "drill.delete",
    # A bulk action is its single action, once per item. First: a path matches the first
    # template it fits, and /grid-cases/bulk/register also fits /grid-cases/{case_id}/...
    ("POST", "/grid-cases/bulk/{action}"): "grid-case.{action}",
    ("POST", "/hotline-tickets/bulk/{action}"): "ticket.{action}",
    # grid cases
    ("POST", "/grid-cases"): "grid-case.report",
    ("POST", "/grid-cases/{case_id}/register"): "grid-case.register",
    ("POST", "/grid-cases/{case_id}/reject"): "grid-case.reject",
    ("POST", "/grid-cases/{case_id}/dispatch"): "grid-case.dispatch",
    ("POST", "/grid-cases/{case_id}/return"): "grid-case.return-to-centre",
    ("POST", "/grid-cases/{case_id}/extension-requests"): "grid-case.request-extension",
    ("POST", "/grid-cases/{case_id}/extension-decision"): "grid-case.decide-extension",
    ("POST", "/grid-cases/{case_id}/return-review"): "grid-case.review-return",
    ("POST", "/grid-cases/{case_id}/suspension-requests"): "grid-case.request-suspension",
    ("POST", "/grid-cases/{case_id}/suspension-decision"): "grid-case.decide-suspension",
    ("POST", "/grid-cases/{case_id}/assign-verifier"): "grid-case.assign-verifier",
    ("POST", "/grid-cases/{case_id}/suspend"): "grid-case.suspend",
    ("POST", "/grid-cases/{case_id}/resume"): "grid-case.resume",
    ("POST", "/grid-cases/{case_id}/handle"): "grid-case.handle",
    ("POST", "/grid-cases/{case_id}/verify"): "grid-case.verify",
    ("POST", "/grid-cases/{case_id}/close"): "grid-case.close",
    # incidents
    ("POST", "/incidents"): "incident.report",
    ("POST", "/incidents/{incident_id}/verify"): "incident.verify",
    ("POST", "/incidents/{incident_id}/dismiss"): "incident.verify",
    ("POST", "/incidents/{incident_id}/respond"): "incident.respond",
    ("POST", "/incidents/{incident_id}/activate-plan"): "incident.activate-plan",
    ("POST", "/incidents/{incident_id}/level"): "incident.change-level",
    ("POST", "/incidents/{incident_id}/escalate"): "incident.change-level",
    ("POST", "/incidents/{incident_id}/de-escalate"): "incident.change-level",
    ("POST", "/incidents/{incident_id}/situation-reports"): "incident.add-situation-report",
    ("POST", "/incidents/{incident_id}/links"): "incident.link",
    ("POST", "/incidents/{incident_id}/unlink"): "incident.link",
    ("POST", "/incidents/{incident_id}/commander"): "incident.assign-commander",
    ("POST", "/incidents/{incident_id}/tasks"): "incident.assign-task",
    ("POST", "/incidents/{incident_id}/tasks/{task_id}/acknowledge"): "incident.task",
    ("POST", "/incidents/{incident_id}/tasks/{task_id}/complete"): "incident.task",
    ("POST", "/incidents/{incident_id}/tasks/{task_id}/cancel"): "incident.cancel-task",
    ("POST", "/incidents/{incident_id}/tasks/{task_id}/waive"): "incident.waive-task",
    ("POST", "/incidents/{incident_id}/resources"): "incident.assign-resource",
    ("POST", "/incidents/{incident_id}/resources/{resource_id}/release"):
        "incident.assign-resource",
    ("POST", "/incidents/{incident_id}/contain"): "incident.contain",
    ("POST", "/incidents/{incident_id}/flare-up"): "incident.contain",
    ("POST", "/incidents/{incident_id}/close"): "incident.close",
    ("POST", "/incidents/{incident_id}/review"): "incident.review",
    # contingency plans
    ("POST", "/plans"): "plan.define",
    ("POST", "/plans/{plan_id}/revise"): "plan.revise",
    ("POST", "/plans/{plan_id}/retire"): "plan.retire",
    # resources
    ("POST", "/resources"): "resource.register",
    ("POST", "/resources/{resource_id}/revise"): "resource.revise",
    ("POST", "/resources/{resource_id}/dispatch"): "resource.dispatch",
    ("POST", "/resources/{resource_id}/reassign"): "resource.reassign",
    ("POST", "/resources/{resource_id}/stand-down"): "resource.stand-down",
    ("POST", "/resources/{resource_id}/en-route"): "resource.report-en-route",
    ("POST", "/resources/{resource_id}/on-scene"): "resource.report-on-scene",
    ("POST", "/resources/{resource_id}/activate"): "resource.activate",
    ("POST", "/resources/{resource_id}/clear-scene"): "resource.clear-scene",
    ("POST", "/resources/{resource_id}/deactivate"): "resource.deactivate",
    ("POST", "/resources/{resource_id}/available"): "resource.report-available",
    ("POST", "/resources/{resource_id}/out-of-service"): "resource.take-out-of-service",
    ("POST", "/resources/{resource_id}/return-to-service"): "resource.return-to-service",
    ("POST", "/resources/{resource_id}/positions"): "resource.position",
    # hazard sources
    ("POST", "/hazard-sources"): "hazard.register",
    ("POST", "/hazard-sources/{source_id}/update"): "hazard.update",
    ("POST", "/hazard-sources/{source_id}/decommission"): "hazard.decommission",
    ("POST", "/hazard-sources/{source_id}/sensors"): "hazard.add-sensor",
    ("POST", "/hazard-sources/{source_id}/sensors/{sensor_id}/remove"): "hazard.remove-sensor",
    ("POST", "/hazard-sources/{source_id}/sensors/{sensor_id}/readings"): "hazard.reading",
    ("POST", "/hazard-sources/{source_id}/alarms/{alarm_id}/acknowledge"):
        "hazard.acknowledge-alarm",
    ("POST", "/hazard-sources/{source_id}/alarms/{alarm_id}/escalation"):
        "hazard.escalate-alarm",
    ("POST", "/hazard-sources/{source_id}/findings"): "hazard.record-finding",
    ("POST", "/hazard-sources/{source_id}/findings/{finding_id}/rectify"):
        "hazard.rectify-finding",
    # hotline tickets
    ("POST", "/hotline-tickets"): "ticket.receive",
    ("POST", "/hotline-tickets/{ticket_id}/answer"): "ticket.answer",
    ("POST", "/hotline-tickets/{ticket_id}/assign"): "ticket.assign",
    ("POST", "/hotline-tickets/{ticket_id}/accept"): "ticket.accept",
    ("POST", "/hotline-tickets/{ticket_id}/return"): "ticket.return",
    ("POST", "/hotline-tickets/{ticket_id}/return-review"): "ticket.review-return",
    ("POST", "/hotline-tickets/{ticket_id}/reply"): "ticket.reply",
    ("POST", "/hotline-tickets/{ticket_id}/callback"): "ticket.callback",
    ("POST", "/hotline-tickets/{ticket_id}/merge"): "ticket.merge",
    ("POST", "/hotline-tickets/{ticket_id}/convert-to-case"): "ticket.convert-to-case",
    ("POST", "/hotline-tickets/{ticket_id}/escalate-to-incident"):
        "ticket.escalate-to-incident",
    ("POST", "/hotline-tickets/{ticket_id}/close"): "ticket.close",
    # warnings
    ("POST", "/warnings"): "warning.draft",
    ("POST", "/warnings/{warning_id}/revise"): "warning.revise",
    ("POST", "/warnings/{warning_id}/approve"): "warning.approve",
    ("POST", "/warnings/{warning_id}/issue"): "warning.issue",
    ("POST", "/warnings/{warning_id}/update"): "warning.update",
    ("POST", "/warnings/{warning_id}/cancel"): "warning.cancel",
    ("POST", "/warnings/{warning_id}/discard"): "warning.discard",
    # after-action reviews
    ("POST", "/reviews"): "review.open",
    ("POST", "/reviews/{review_id}/summary"): "review.write-summary",
    ("POST", "/reviews/{review_id}/findings"): "review.record-finding",
    ("POST", "/reviews/{review_id}/findings/{finding_id}/withdraw"): "review.withdraw-finding",
    ("POST", "/reviews/{review_id}/improvements"): "review.plan-improvement",
    ("POST", "/reviews/{review_id}/improvements/{item_id}/done"):
        "review.complete-improvement",
    ("POST", "/reviews/{review_id}/improvements/{item_id}/verify"):
        "review.verify-improvement",
    ("POST", "/reviews/{review_id}/improvements/{item_id}/reopen"):
        "review.reopen-improvement",
    ("POST", "/reviews/{review_id}/improvements/{item_id}/drop"): "review.drop-improvement",
    ("POST", "/reviews/{review_id}/conclude"): "review.conclude",
    # exercises: evaluators rate, planners end
    ("POST", "/exercises/{exercise_id}/ratings"): "exercise.rate-objective",
    ("POST", "/exercises/{exercise_id}/end"): "exercise.end",
}
"""Which command each command route issues (`{name}`: the value of that path parameter)."""

BULK_ACTION_COMMANDS: dict[str, str] = {
    "grid-case.return-review": "grid-case.review-return",
    "grid-case.suspension-decision": "grid-case.decide-suspension",
    "ticket.return-review": "ticket.review-return",
}
"""Bulk actions named after their route rather than their command."""

SUBSCRIBER_ROLES = frozenset({Role.ADMIN, Role.DEPARTMENT_USER})
"""Who changes subscriptions: a department for itself, the admin for any (the subscription
checks the department: `cityops.feeds.subscription`)."""

ROUTE_ROLES: dict[tuple[str, str], frozenset[Role]] = {
    ("POST", "/photos"): UPLOAD_ROLES,
    ("POST", "/subscriptions"): SUBSCRIBER_ROLES,
    ("PUT", "/subscriptions/{subscription_id}"): SUBSCRIBER_ROLES,
    ("DELETE", "/subscriptions/{subscription_id}"): SUBSCRIBER_ROLES,
    ("POST", "/subscriptions/{subscription_id}/pause"): SUBSCRIBER_ROLES,
    ("POST", "/subscriptions/{subscription_id}/resume"): SUBSCRIBER_ROLES,
    ("POST", "/subscriptions/{subscription_id}/deliveries/{delivery_id}/redeliver"):
        SUBSCRIBER_ROLES,
    # Checking a scenario file is the planners' (it is what they would plan).
    ("POST", "/scenarios/validate"): SCENARIO_ROLES,
}
"""Routes whose roles are not a command of the permission table."""

OPEN_TO_ANY_ROLE = frozenset({
    ("POST", "/auth/login"),  # public
    ("POST", "/auth/password"),  # every user, about themselves
    ("POST", "/spatial/{layer}/within"),  # a question (a polygon is too long for a URL)
    ("POST", "/open311/v2/requests.{format}"),  # an Open311 client, by its API key
})
"""Non-GET routes that no role is refused (they check what they need themselves)."""

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class _Rule:
    method: str
    template: str
    pattern: re.Pattern[str]
    command: str | None
    roles: frozenset[Role] | None

    def decide(self, actor: Actor, params: Mapping[str, str]) -> None:
        """Raise `NotPermitted` unless the actor's role may call this route."""
        if self.command is not None:
            issued = self.command.format_map(params)
            issued = BULK_ACTION_COMMANDS.get(issued, issued)
            # An unknown bulk action is no command at all: its route refuses it (422).
            if roles_for(issued) is not None:
                check_permitted(issued, actor)
        elif self.roles is not None and actor.role not in self.roles:
            allowed = ", ".join(sorted(r.value for r in self.roles))
            raise NotPermitted(f"{actor.role.value} {actor.user_id} may not {self.method} "
                               f"{self.template}; allowed roles: {allowed}")


def _rules() -> list[_Rule]:
    rules = []
    for (method, template), command in ROUTE_COMMANDS.items():
        rules.append(_Rule(method, template, compile_path(template)[0], command, None))
    for (method, template), roles in ROUTE_ROLES.items():
        rules.append(_Rule(method, template, compile_path(template)[0], None, roles))
    return rules


class CommandGate:
    """ASGI middleware: the gate in front of the routes of the tables above. A middleware,
    not a dependency, so that it answers before FastAPI reads the body (a malformed JSON body
    is refused while the body is read, before any dependency runs)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.rules = _rules()

    def rule_for(self, method: str, path: str) -> tuple[_Rule, dict[str, str]] | None:
        for rule in self.rules:
            if rule.method == method:
                match = rule.pattern.match(path)
                if match is not None:
                    return rule, match.groupdict()
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in SAFE_METHODS:
            path = scope["path"]
            root = scope.get("root_path", "")
            if root and path.startswith(root):
                path = path[len(root):]
            found = self.rule_for(scope["method"], path)
            if found is not None:
                rule, params = found
                try:
                    request = Request(scope, receive)
                    credentials = await bearer_scheme(request)
                    actor = await current_actor(request, credentials)
                    rule.decide(actor, params)
                except DomainError as error:
                    await error_response(error)(scope, receive, send)
                    return
        await self.app(scope, receive, send)


def install_command_gate(app: FastAPI) -> None:
    """Put the gate in front of the app's command routes."""
    app.add_middleware(CommandGate)


def ungated_command_routes(app: FastAPI) -> list[tuple[str, str]]:
    """Non-GET routes of `app` that the gate does not know (each must be listed above)."""
    known = set(ROUTE_COMMANDS) | set(ROUTE_ROLES) | OPEN_TO_ANY_ROLE
    return sorted((method.upper(), path)
                  for path, operations in app.openapi()["paths"].items()
                  for method in operations
                  if method.upper() not in SAFE_METHODS
                  and (method.upper(), path) not in known)
