"""The drill registry's application: every command on drills, in one place, recorded in the
registry's own event store (never the live city's: `cityops.drills` gives it its own SQLite
file or PostgreSQL schema)."""

from __future__ import annotations

from collections.abc import Mapping
from uuid import UUID

from cityops.domain.application import CityApplication, Clock, UnitOfWork
from cityops.domain.commands import handles
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
from cityops.domain.drills.drill import Drill
from cityops.domain.errors import IllegalTransition
from cityops.domain.former_topics import stored_topics

PAGE = 1000


class Drills(CityApplication):
    """Starts, steers and deletes drills (the registry of the drill room)."""

    name = "drills"

    def __init__(self, env: Mapping[str, str] | None = None, *, clock: Clock) -> None:
        super().__init__(env, clock=clock)

    # --- queries ------------------------------------------------------------------------

    def drill(self, drill_id: UUID) -> Drill:
        return self.load(Drill, drill_id)

    def drill_ids(self) -> list[UUID]:
        """Every drill ever started, oldest first (deleted ones too)."""
        ids: list[UUID] = []
        start = 0
        topics = stored_topics(Drill.Started)
        while True:
            page = self.recorder.select_notifications(start=start, limit=PAGE, topics=topics,
                                                      inclusive_of_start=False)
            ids += [UUID(str(n.originator_id)) for n in page]
            if len(page) < PAGE:
                return ids
            start = page[-1].id

    def drills(self) -> list[Drill]:
        return [self.drill(i) for i in self.drill_ids()]

    # --- handlers -------------------------------------------------------------------------

    @handles(StartDrill)
    def start(self, command: StartDrill, uow: UnitOfWork) -> list[Drill]:
        if uow.exists(command.drill_id):
            raise IllegalTransition(Drill.KIND, command.drill_id, "already started", "start")
        return [Drill.start(drill_id=command.drill_id, name=command.title,
                            window_from=command.window_from, window_to=command.window_to,
                            speed=command.speed, scenario=command.scenario,
                            participants=list(command.participants), actor=uow.actor,
                            at=uow.now, scenario_text=command.scenario_text)]

    @handles(PauseDrill)
    def pause(self, command: PauseDrill, uow: UnitOfWork) -> list[Drill]:
        drill = uow.load(Drill, command.drill_id)
        drill.pause(drill_time=command.drill_time, actor=uow.actor, at=uow.now)
        return [drill]

    @handles(ResumeDrill)
    def resume(self, command: ResumeDrill, uow: UnitOfWork) -> list[Drill]:
        drill = uow.load(Drill, command.drill_id)
        drill.resume(actor=uow.actor, at=uow.now)
        return [drill]

    @handles(ChangeDrillSpeed)
    def change_speed(self, command: ChangeDrillSpeed, uow: UnitOfWork) -> list[Drill]:
        drill = uow.load(Drill, command.drill_id)
        drill.change_speed(speed=command.speed, actor=uow.actor, at=uow.now)
        return [drill]

    @handles(JumpDrillForward)
    def jump_forward(self, command: JumpDrillForward, uow: UnitOfWork) -> list[Drill]:
        drill = uow.load(Drill, command.drill_id)
        drill.jump_forward(to=command.to, current=command.current, actor=uow.actor,
                           at=uow.now)
        return [drill]

    @handles(InviteDrillParticipants)
    def invite(self, command: InviteDrillParticipants, uow: UnitOfWork) -> list[Drill]:
        drill = uow.load(Drill, command.drill_id)
        drill.invite(users=list(command.users), actor=uow.actor, at=uow.now)
        return [drill]

    @handles(FinishDrill)
    def finish(self, command: FinishDrill, uow: UnitOfWork) -> list[Drill]:
        drill = uow.load(Drill, command.drill_id)
        drill.finish(drill_time=command.drill_time, actor=uow.actor, at=uow.now)
        return [drill]

    @handles(DeleteDrill)
    def delete(self, command: DeleteDrill, uow: UnitOfWork) -> list[Drill]:
        drill = uow.load(Drill, command.drill_id)
        drill.delete(actor=uow.actor, at=uow.now)
        return [drill]
