"""Which roles may issue which command: one table, checked for every command."""

from __future__ import annotations

from cityops.domain.actors import Actor, Role
from cityops.domain.errors import NotPermitted

_R = Role
CENTRE = frozenset({_R.DISPATCHER, _R.ADMIN})
FIELD = frozenset({_R.INSPECTOR, _R.DISPATCHER, _R.HOTLINE_OPERATOR, _R.SYSTEM, _R.ADMIN})
DEPARTMENT = frozenset({_R.DEPARTMENT_USER, _R.DISPATCHER, _R.ADMIN})
HOTLINE = frozenset({_R.HOTLINE_OPERATOR, _R.DISPATCHER, _R.ADMIN})
SENSORS = frozenset({_R.SYSTEM, _R.DISPATCHER, _R.ADMIN})
PLANNING = frozenset({_R.PLANNER, _R.DISPATCHER, _R.ADMIN})
INSPECTION = frozenset({_R.INSPECTOR, _R.DISPATCHER, _R.ADMIN})

COMMAND_ROLES: dict[str, frozenset[Role]] = {
    # grid cases
    "grid-case.report": FIELD,
    "grid-case.register": CENTRE,
    "grid-case.reject": CENTRE,
    "grid-case.dispatch": CENTRE,
    "grid-case.return-to-centre": DEPARTMENT,
    "grid-case.request-extension": DEPARTMENT,
    "grid-case.decide-extension": CENTRE,
    # The centre reviews every return: accept (dispatch elsewhere) or reject (send it back).
    "grid-case.review-return": CENTRE,
    # Suspension stops the supervision clock: a department asks, only the centre decides.
    "grid-case.request-suspension": DEPARTMENT,
    "grid-case.decide-suspension": CENTRE,
    "grid-case.suspend": CENTRE,
    # Resuming only starts the clock again, so the department may do it too.
    "grid-case.resume": CENTRE | {_R.DEPARTMENT_USER},
    "grid-case.handle": DEPARTMENT,
    "grid-case.verify": INSPECTION,
    "grid-case.assign-verifier": CENTRE,
    "grid-case.close": CENTRE,
    # incidents
    "incident.report": FIELD | {_R.DEPARTMENT_USER},
    "incident.verify": CENTRE,
    "incident.respond": CENTRE,
    "incident.activate-plan": CENTRE,
    "incident.change-level": CENTRE,
    "incident.add-situation-report": CENTRE | {_R.DEPARTMENT_USER, _R.INSPECTOR},
    "incident.link": CENTRE | {_R.HOTLINE_OPERATOR, _R.SYSTEM},
    "incident.assign-commander": CENTRE,
    # department users move only their own department's tasks (checked by the incident)
    "incident.task": CENTRE | {_R.DEPARTMENT_USER},
    "incident.assign-task": CENTRE,
    "incident.cancel-task": CENTRE,
    # the centre waives a task for the incident's commander, so that it may close
    "incident.waive-task": CENTRE,
    "incident.assign-resource": CENTRE,
    # whoever made a resource leave an incident (its crew, the centre) records that there too
    "incident.record-resource-departure": CENTRE | {_R.DEPARTMENT_USER, _R.SYSTEM},
    "incident.contain": CENTRE,
    "incident.close": CENTRE,
    "incident.review": PLANNING,
    # contingency plans
    "plan.define": PLANNING,
    "plan.revise": PLANNING,
    "plan.retire": PLANNING,
    # hazard sources
    "hazard.register": PLANNING | {_R.DEPARTMENT_USER},
    "hazard.update": PLANNING | {_R.DEPARTMENT_USER},
    "hazard.decommission": PLANNING | {_R.DEPARTMENT_USER},
    "hazard.add-sensor": PLANNING | {_R.DEPARTMENT_USER},
    "hazard.remove-sensor": PLANNING | {_R.DEPARTMENT_USER},
    "hazard.reading": SENSORS,
    "hazard.acknowledge-alarm": CENTRE,
    # A coordinator (system) records the escalation once it has created the incident.
    "hazard.escalate-alarm": CENTRE | {_R.SYSTEM},
    "hazard.record-finding": INSPECTION | {_R.DEPARTMENT_USER},
    "hazard.rectify-finding": INSPECTION | {_R.DEPARTMENT_USER},
    # hotline tickets
    "ticket.receive": HOTLINE | {_R.SYSTEM},
    "ticket.answer": HOTLINE,
    "ticket.assign": HOTLINE,
    "ticket.accept": DEPARTMENT,
    "ticket.return": DEPARTMENT,
    "ticket.review-return": HOTLINE,
    "ticket.reply": DEPARTMENT,
    "ticket.callback": HOTLINE,
    "ticket.merge": HOTLINE,
    # A coordinator (system) records the hand-over once it has created the case or incident.
    "ticket.convert-to-case": HOTLINE | {_R.SYSTEM},
    "ticket.escalate-to-incident": HOTLINE | {_R.SYSTEM},
    "ticket.close": HOTLINE,
    # The ticket follow-up records what became of the case or incident a ticket became.
    "ticket.follow-linked-work": frozenset({_R.SYSTEM}),
    # resources
    "resource.register": PLANNING | {_R.DEPARTMENT_USER},
    "resource.revise": PLANNING | {_R.DEPARTMENT_USER},
    "resource.dispatch": CENTRE,
    "resource.reassign": CENTRE,
    "resource.stand-down": CENTRE,
    # status reports from crews' terminals (system), their department, or the centre
    "resource.report-en-route": CENTRE | {_R.DEPARTMENT_USER, _R.SYSTEM},
    "resource.report-on-scene": CENTRE | {_R.DEPARTMENT_USER, _R.SYSTEM},
    "resource.clear-scene": CENTRE | {_R.DEPARTMENT_USER, _R.SYSTEM},
    "resource.report-available": CENTRE | {_R.DEPARTMENT_USER, _R.SYSTEM},
    "resource.activate": CENTRE | {_R.DEPARTMENT_USER},
    "resource.deactivate": CENTRE | {_R.DEPARTMENT_USER},
    "resource.take-out-of-service": CENTRE | {_R.DEPARTMENT_USER},
    "resource.return-to-service": CENTRE | {_R.DEPARTMENT_USER},
    "resource.position": CENTRE | {_R.DEPARTMENT_USER, _R.SYSTEM},
    # warnings: the duty officers of the centre draft, approve, issue, update and cancel;
    # approval of a public warning is by a second person (checked by the warning), and the
    # leader stays read-only. Departments read the warnings issued, they never issue one.
    "warning.draft": CENTRE,
    "warning.revise": CENTRE,
    "warning.approve": CENTRE,
    "warning.issue": CENTRE,
    "warning.update": CENTRE,
    "warning.cancel": CENTRE,
    "warning.discard": CENTRE,
}


COMMAND_HINTS: dict[tuple[str, Role], str] = {
    ("grid-case.suspend", _R.DEPARTMENT_USER):
        "a department asks for a suspension (grid-case.request-suspension) and the centre "
        "approves or refuses it",
}
"""What to do instead, said with the refusal of a command a role used to be allowed."""


def check_permitted(command: str, actor: Actor) -> None:
    """Raise `NotPermitted` unless the actor's role may issue `command`."""
    allowed = COMMAND_ROLES.get(command)
    if allowed is None:
        raise NotPermitted(f"command {command!r} is not a known command")
    if actor.role not in allowed:
        roles = ", ".join(sorted(r.value for r in allowed))
        hint = COMMAND_HINTS.get((command, actor.role))
        raise NotPermitted(
            f"{actor.role.value} {actor.user_id} may not {command}; allowed roles: {roles}"
            + (f"; {hint}" if hint else "")
        )
