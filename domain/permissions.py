"""Which roles may issue which command: one table keyed by the command classes, checked for
every command (by `CityApplication.handle`, and at the door by the command centre's gate)."""

from __future__ import annotations

from cityops.domain.accounts.commands import (
    AddDepartment,
    AddUser,
    ChangePassword,
    DisableUser,
    EnableUser,
    IssueApiKey,
    RenameDepartment,
    RenameUser,
    ResetPassword,
    RetireDepartment,
    RevokeApiKey,
    SetDepartment,
    SetRole,
)
from cityops.domain.actors import Actor, Role
from cityops.domain.commands import Command, command_class
from cityops.domain.drills.commands import (
    ChangeDrillSpeed,
    DeleteDrill,
    FinishDrill,
    InviteDrillParticipants,
    JumpDrillForward,
    PauseDrill,
    ResumeDrill,
    StartDrill,
)
from cityops.domain.errors import NotPermitted
from cityops.domain.exercises.commands import (
    EndExercise,
    PlanExercise,
    RateObjective,
    RecordInjectDelivery,
)
from cityops.domain.gridcases.commands import (
    AssignCaseVerifier,
    CloseCase,
    DecideCaseExtension,
    DecideCaseSuspension,
    DispatchCase,
    HandleCase,
    RegisterCase,
    RejectCase,
    ReportCase,
    RequestCaseExtension,
    RequestCaseSuspension,
    ResumeCase,
    ReturnCaseToCentre,
    ReviewCaseReturn,
    SuspendCase,
    VerifyCase,
)
from cityops.domain.hazards.commands import (
    AcknowledgeAlarm,
    AddSensor,
    DecommissionHazardSource,
    RecordAlarmEscalation,
    RecordFinding,
    RecordReading,
    RectifyFinding,
    RegisterHazardSource,
    RemoveSensor,
    UpdateHazardSource,
)
from cityops.domain.hotline.commands import (
    AcceptTicket,
    AnswerTicket,
    AssignTicket,
    CallBackCaller,
    CloseTicket,
    ConvertTicketToCase,
    EscalateTicketToIncident,
    MergeTicket,
    ReceiveTicket,
    ReplyToCaller,
    ReturnTicket,
    ReviewTicketReturn,
)
from cityops.domain.incidents.commands import (
    AcknowledgeTask,
    ActivatePlan,
    AddSituationReport,
    AssignCommander,
    AssignResourceToIncident,
    AssignTask,
    CancelTask,
    ChangeIncidentLevel,
    CloseIncident,
    CompleteTask,
    ContainIncident,
    DeescalateIncident,
    DefinePlan,
    DismissIncident,
    EscalateIncident,
    FlareUpIncident,
    LinkToIncident,
    RecordResourceArrival,
    RecordResourceDeparture,
    ReleaseResourceFromIncident,
    ReportIncident,
    RespondToIncident,
    RetirePlan,
    ReviewIncident,
    RevisePlan,
    UnlinkFromIncident,
    VerifyIncident,
    WaiveTask,
)
from cityops.domain.resources.commands import (
    ActivateResource,
    ClearScene,
    DeactivateResource,
    DispatchResource,
    DispatchToOpenIncident,
    ReassignResource,
    ReassignToOpenIncident,
    RegisterResource,
    ReportAvailable,
    ReportEnRoute,
    ReportOnScene,
    ReportPosition,
    ReturnToService,
    ReviseResource,
    StandDownResource,
    TakeOutOfService,
)
from cityops.domain.reviews.commands import (
    CompleteImprovement,
    ConcludeReview,
    DropImprovement,
    OpenReview,
    PlanImprovement,
    RecordReviewFinding,
    ReopenImprovement,
    VerifyImprovement,
    WithdrawReviewFinding,
    WriteReviewSummary,
)
from cityops.domain.warnings.commands import (
    ApproveWarning,
    CancelWarning,
    DiscardWarningDraft,
    DraftWarning,
    DraftWarningUpdate,
    IssueWarning,
    ReviseWarningDraft,
)

_R = Role
CENTRE = frozenset({_R.DISPATCHER, _R.ADMIN})
FIELD = frozenset({_R.INSPECTOR, _R.DISPATCHER, _R.HOTLINE_OPERATOR, _R.SYSTEM, _R.ADMIN})
DEPARTMENT = frozenset({_R.DEPARTMENT_USER, _R.DISPATCHER, _R.ADMIN})
HOTLINE = frozenset({_R.HOTLINE_OPERATOR, _R.DISPATCHER, _R.ADMIN})
SENSORS = frozenset({_R.SYSTEM, _R.DISPATCHER, _R.ADMIN})
PLANNING = frozenset({_R.PLANNER, _R.DISPATCHER, _R.ADMIN})
INSPECTION = frozenset({_R.INSPECTOR, _R.DISPATCHER, _R.ADMIN})
ADMIN_ONLY = frozenset({_R.ADMIN})
DRILL_PLANNERS = frozenset({_R.PLANNER, _R.ADMIN})
ANY_ROLE = frozenset(Role)

COMMAND_ROLES: dict[type[Command] | str, frozenset[Role]] = {
    # grid cases
    ReportCase: FIELD,
    RegisterCase: CENTRE,
    RejectCase: CENTRE,
    DispatchCase: CENTRE,
    ReturnCaseToCentre: DEPARTMENT,
    RequestCaseExtension: DEPARTMENT,
    DecideCaseExtension: CENTRE,
    # The centre reviews every return: accept (dispatch elsewhere) or reject (send it back).
    ReviewCaseReturn: CENTRE,
    # Suspension stops the supervision clock: a department asks, only the centre decides.
    RequestCaseSuspension: DEPARTMENT,
    DecideCaseSuspension: CENTRE,
    SuspendCase: CENTRE,
    # Resuming only starts the clock again, so the department may do it too.
    ResumeCase: CENTRE | {_R.DEPARTMENT_USER},
    HandleCase: DEPARTMENT,
    VerifyCase: INSPECTION,
    AssignCaseVerifier: CENTRE,
    CloseCase: CENTRE,
    # hotline tickets
    ReceiveTicket: HOTLINE | {_R.SYSTEM},
    AnswerTicket: HOTLINE,
    AssignTicket: HOTLINE,
    AcceptTicket: DEPARTMENT,
    ReturnTicket: DEPARTMENT,
    ReviewTicketReturn: HOTLINE,
    ReplyToCaller: DEPARTMENT,
    CallBackCaller: HOTLINE,
    MergeTicket: HOTLINE,
    # A coordinator (system) records the hand-over once it has created the case or incident.
    ConvertTicketToCase: HOTLINE | {_R.SYSTEM},
    EscalateTicketToIncident: HOTLINE | {_R.SYSTEM},
    CloseTicket: HOTLINE,
    # The ticket follow-up records what became of the case or incident a ticket became.
    "ticket.follow-linked-work": frozenset({_R.SYSTEM}),
    # accounts, departments and API keys: the administrator's (the CLI acts as admin)
    AddUser: ADMIN_ONLY,
    SetRole: ADMIN_ONLY,
    SetDepartment: ADMIN_ONLY,
    RenameUser: ADMIN_ONLY,
    DisableUser: ADMIN_ONLY,
    EnableUser: ADMIN_ONLY,
    ResetPassword: ADMIN_ONLY,
    # every user, about themselves (the handler checks whose password it is)
    ChangePassword: ANY_ROLE,
    AddDepartment: ADMIN_ONLY,
    RenameDepartment: ADMIN_ONLY,
    RetireDepartment: ADMIN_ONLY,
    IssueApiKey: ADMIN_ONLY,
    RevokeApiKey: ADMIN_ONLY,
    # incidents
    ReportIncident: FIELD | {_R.DEPARTMENT_USER},
    VerifyIncident: CENTRE,
    DismissIncident: CENTRE,
    RespondToIncident: CENTRE,
    ActivatePlan: CENTRE,
    ChangeIncidentLevel: CENTRE,
    EscalateIncident: CENTRE,
    DeescalateIncident: CENTRE,
    AddSituationReport: CENTRE | {_R.DEPARTMENT_USER, _R.INSPECTOR},
    LinkToIncident: CENTRE | {_R.HOTLINE_OPERATOR, _R.SYSTEM},
    UnlinkFromIncident: CENTRE | {_R.HOTLINE_OPERATOR, _R.SYSTEM},
    AssignCommander: CENTRE,
    # department users move only their own department's tasks (checked by the incident)
    AcknowledgeTask: CENTRE | {_R.DEPARTMENT_USER},
    CompleteTask: CENTRE | {_R.DEPARTMENT_USER},
    AssignTask: CENTRE,
    CancelTask: CENTRE,
    # the centre waives a task for the incident's commander, so that it may close
    WaiveTask: CENTRE,
    AssignResourceToIncident: CENTRE,
    ReleaseResourceFromIncident: CENTRE,
    RecordResourceArrival: CENTRE,
    # whoever made a resource leave an incident (its crew, the centre) records that there too
    RecordResourceDeparture: CENTRE | {_R.DEPARTMENT_USER, _R.SYSTEM},
    ContainIncident: CENTRE,
    FlareUpIncident: CENTRE,
    CloseIncident: CENTRE,
    ReviewIncident: PLANNING,
    # contingency plans
    DefinePlan: PLANNING,
    RevisePlan: PLANNING,
    RetirePlan: PLANNING,
    # hazard sources
    RegisterHazardSource: PLANNING | {_R.DEPARTMENT_USER},
    UpdateHazardSource: PLANNING | {_R.DEPARTMENT_USER},
    DecommissionHazardSource: PLANNING | {_R.DEPARTMENT_USER},
    AddSensor: PLANNING | {_R.DEPARTMENT_USER},
    RemoveSensor: PLANNING | {_R.DEPARTMENT_USER},
    RecordReading: SENSORS,
    AcknowledgeAlarm: CENTRE,
    # A coordinator (system) records the escalation once it has created the incident.
    RecordAlarmEscalation: CENTRE | {_R.SYSTEM},
    RecordFinding: INSPECTION | {_R.DEPARTMENT_USER},
    RectifyFinding: INSPECTION | {_R.DEPARTMENT_USER},
    # The feeds' subscription commands add their rows (`feeds/commands.py`, through
    # `add_command_roles`): the domain imports no adapter.
    # resources
    RegisterResource: PLANNING | {_R.DEPARTMENT_USER},
    ReviseResource: PLANNING | {_R.DEPARTMENT_USER},
    DispatchResource: CENTRE,
    DispatchToOpenIncident: CENTRE,
    ReassignResource: CENTRE,
    ReassignToOpenIncident: CENTRE,
    StandDownResource: CENTRE,
    # status reports from crews' terminals (system), their department, or the centre
    ReportEnRoute: CENTRE | {_R.DEPARTMENT_USER, _R.SYSTEM},
    ReportOnScene: CENTRE | {_R.DEPARTMENT_USER, _R.SYSTEM},
    ClearScene: CENTRE | {_R.DEPARTMENT_USER, _R.SYSTEM},
    ReportAvailable: CENTRE | {_R.DEPARTMENT_USER, _R.SYSTEM},
    ActivateResource: CENTRE | {_R.DEPARTMENT_USER},
    DeactivateResource: CENTRE | {_R.DEPARTMENT_USER},
    TakeOutOfService: CENTRE | {_R.DEPARTMENT_USER},
    ReturnToService: CENTRE | {_R.DEPARTMENT_USER},
    ReportPosition: CENTRE | {_R.DEPARTMENT_USER, _R.SYSTEM},
    # warnings: the duty officers of the centre draft, approve, issue, update and cancel;
    # approval of a public warning is by a second person (checked by the warning), and the
    # leader stays read-only. Departments read the warnings issued, they never issue one.
    DraftWarning: CENTRE,
    ReviseWarningDraft: CENTRE,
    ApproveWarning: CENTRE,
    IssueWarning: CENTRE,
    DraftWarningUpdate: CENTRE,
    CancelWarning: CENTRE,
    DiscardWarningDraft: CENTRE,
    # after-action reviews: the planners' (with the centre's duty officers and admins), who
    # write the findings and follow the improvement plan up; leaders read them
    OpenReview: PLANNING,
    WriteReviewSummary: PLANNING,
    RecordReviewFinding: PLANNING,
    WithdrawReviewFinding: PLANNING,
    PlanImprovement: PLANNING,
    CompleteImprovement: PLANNING,
    ReopenImprovement: PLANNING,
    VerifyImprovement: PLANNING,
    DropImprovement: PLANNING,
    ConcludeReview: PLANNING,
    # exercises: planners plan them from a scenario file (or the drill room, as the system,
    # plans the scenario a planner started a drill with); the drill's controller records the
    # injects it sent; evaluators (planners, never the players in the centre) rate the
    # objectives.
    PlanExercise: frozenset({_R.PLANNER, _R.SYSTEM, _R.ADMIN}),
    RecordInjectDelivery: frozenset({_R.PLANNER, _R.SYSTEM, _R.ADMIN}),
    RateObjective: frozenset({_R.PLANNER, _R.ADMIN}),
    EndExercise: frozenset({_R.PLANNER, _R.SYSTEM, _R.ADMIN}),
    # drills: planners start and steer them (participants act inside, not on the drill)
    StartDrill: DRILL_PLANNERS,
    # the drill room pauses the drills that were running when the server stopped
    PauseDrill: DRILL_PLANNERS | {_R.SYSTEM},
    ResumeDrill: DRILL_PLANNERS,
    ChangeDrillSpeed: DRILL_PLANNERS,
    JumpDrillForward: DRILL_PLANNERS,
    InviteDrillParticipants: DRILL_PLANNERS,
    FinishDrill: DRILL_PLANNERS,
    DeleteDrill: DRILL_PLANNERS,
}


COMMAND_HINTS: dict[tuple[type[Command] | str, Role], str] = {
    (SuspendCase, _R.DEPARTMENT_USER):
        "a department asks for a suspension (grid-case.request-suspension) and the centre "
        "approves or refuses it",
}
"""What to do instead, said with the refusal of a command a role used to be allowed."""



def add_command_roles(rows: dict[type[Command], frozenset[Role]]) -> None:
    """Add the rows of commands handled outside the domain (the feeds' subscriptions) to the
    one table; a command has one row."""
    for command, roles in rows.items():
        if COMMAND_ROLES.get(command, roles) != roles:
            raise TypeError(f"{command.__qualname__} already has another row")
        COMMAND_ROLES[command] = roles

def _key(command: type[Command] | str) -> type[Command] | str:
    """The table's key of a command given by its class or by its name."""
    if isinstance(command, str):
        return command_class(command) or command
    return command


def _name(command: type[Command] | str) -> str:
    return command if isinstance(command, str) else command.name


def roles_for(command: type[Command] | str) -> frozenset[Role] | None:
    """The roles that may issue `command` (its class, or its name); None: no such command."""
    return COMMAND_ROLES.get(_key(command))


def check_permitted(command: type[Command] | str, actor: Actor) -> None:
    """Raise `NotPermitted` unless the actor's role may issue `command`."""
    key = _key(command)
    allowed = COMMAND_ROLES.get(key)
    if allowed is None:
        raise NotPermitted(f"command {_name(command)!r} is not a known command")
    if actor.role not in allowed:
        if allowed == ADMIN_ONLY:
            raise NotPermitted(f"{actor.role.value} {actor.user_id} may not {_name(command)}; "
                               "only an admin may")
        roles = ", ".join(sorted(r.value for r in allowed))
        hint = COMMAND_HINTS.get((key, actor.role))
        raise NotPermitted(
            f"{actor.role.value} {actor.user_id} may not {_name(command)}; allowed roles: "
            f"{roles}" + (f"; {hint}" if hint else "")
        )
