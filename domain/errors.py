"""The domain's own errors: they say what is wrong in the domain's words and know nothing
of HTTP or Kafka (the command centre and ingest map them to status codes and dead letters).
"""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error the domain raises on purpose."""


class InvalidValue(DomainError, ValueError):
    """A value given to a command is not acceptable (unknown code, bad number, bad geometry)."""


class IllegalTransition(DomainError):
    """A command is not allowed in the aggregate's current state; nothing was recorded."""

    def __init__(self, kind: str, aggregate_id: object, state: str, attempted: str) -> None:
        self.kind = kind
        self.aggregate_id = aggregate_id
        self.state = state
        self.attempted = attempted
        super().__init__(
            f"cannot {attempted} {kind} {aggregate_id}: it is {state}"
        )


class OpenTasksRemain(IllegalTransition):
    """An incident cannot be closed while tasks are open: each must first be done, cancelled
    or waived with a reason (the refusal names them, so figures of work done stay true)."""

    def __init__(self, kind: str, aggregate_id: object, state: str,
                 open_tasks: tuple[tuple[str, str, str, str], ...]) -> None:
        self.open_tasks = open_tasks
        """(task id, department, description, status) of each open task."""
        count = len(open_tasks)
        listed = "; ".join(f"{department}: {description!r} ({status}, task {task_id})"
                           for task_id, department, description, status in open_tasks)
        tasks = "1 task is" if count == 1 else f"{count} tasks are"
        super().__init__(
            kind, aggregate_id,
            f"{state} and {tasks} still open ({listed}); each must be done, cancelled or "
            "waived with a reason first",
            "close",
        )


class NotFound(DomainError, LookupError):
    """No aggregate of that kind has that id."""

    def __init__(self, kind: str, aggregate_id: object) -> None:
        self.kind = kind
        self.aggregate_id = aggregate_id
        super().__init__(f"{kind} {aggregate_id} does not exist")


class ConcurrencyConflict(DomainError):
    """Someone else changed the aggregate since it was read: the loser must reload and retry."""

    def __init__(self, kind: str, aggregate_id: object, attempted: str) -> None:
        self.kind = kind
        self.aggregate_id = aggregate_id
        self.attempted = attempted
        super().__init__(
            f"cannot {attempted} {kind} {aggregate_id}: it was changed by someone else "
            "at the same time; reload it and try again"
        )


class StaleVersion(ConcurrencyConflict):
    """The user acted on a version of an aggregate they saw, and it has moved on since: the
    command is refused rather than overwrite changes they never saw (they said which version
    they saw, say with `If-Match`)."""

    def __init__(self, kind: str, aggregate_id: object, *, seen: int, current: int,
                 changes: tuple[str, ...] = (), unlisted: int = 0) -> None:
        self.kind = kind
        self.aggregate_id = aggregate_id
        self.attempted = "change"
        self.seen = seen
        self.current = current
        self.changes = changes
        """What happened since `seen`, oldest first ("Registered by duty-zhao at ...")."""
        self.unlisted = unlisted
        """How many later changes `changes` leaves out (to keep the message short)."""
        if seen < current:
            listed = ", ".join(changes) + (f", and {unlisted} more" if unlisted else "")
            since = f" ({listed})" if listed else ""
            what = (f"{kind} {aggregate_id} changed since you opened it: version {seen} -> "
                    f"{current}{since}")
        else:
            what = (f"{kind} {aggregate_id} is at version {current}, not at version {seen} "
                    "that you say you saw")
        DomainError.__init__(self, f"{what}; reload it and try again")


class CommandIdReused(DomainError):
    """A client reused a command id for a different command: refused, not silently ignored."""

    def __init__(self, command_id: str, first: str, second: str) -> None:
        self.command_id = command_id
        what = f"{first} with other arguments" if first == second else first
        super().__init__(
            f"command id {command_id!r} was already used for {what}; it cannot be reused "
            f"for this {second}"
        )


class NotPermitted(DomainError):
    """The actor's role or department does not allow this command."""


class CatalogueError(DomainError):
    """A reference data file (categories, departments, calendar...) is missing or invalid."""
