"""Drills: planners start a drill from a window of real history, pause, resume, change its
speed, jump it forward, invite participants, finish and delete it, and follow its progress.
Each command route builds the drill registry's command value and hands it, with its
`CommandContext`, to the drill room (`cityops.drills.DrillRoom.handle`), which records it
in the registry's own store and steers the drill's runner."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID, uuid4, uuid5

from fastapi import APIRouter, Depends, Request
from pydantic import Field

from cityops.command_center.dependencies import CommandId, CurrentActor
from cityops.command_center.drill_switch import room_of
from cityops.command_center.models.drills import DrillOfferPublic, DrillPublic, DrillsPublic
from cityops.command_center.schemas import Command
from cityops.domain.actors import Actor
from cityops.domain.application import COMMAND_NAMESPACE
from cityops.domain.commands import CommandContext
from cityops.domain.drills.commands import (
    ChangeDrillSpeed,
    DeleteDrill,
    FinishDrill,
    InviteDrillParticipants,
    JumpDrillForward,
    OnDrill,
    PauseDrill,
    ResumeDrill,
    StartDrill,
)
from cityops.domain.drills.drill import Drill
from cityops.domain.errors import NotFound
from cityops.domain.exercises.scenario import MAX_SCENARIO_BYTES
from cityops.drills import DrillRoom, DrillView

router = APIRouter(prefix="/drills", tags=["drills"])


def get_room(request: Request) -> DrillRoom:
    return room_of(request.app)


RoomDep = Annotated[DrillRoom, Depends(get_room)]

Speed = Annotated[float | Literal["max"] | str, Field(
    description="Drill seconds per real second, 1 to 100, or \"max\" (as fast as possible)")]


class DrillStartIn(Command):
    title: str = Field(default="Drill", min_length=1, max_length=200)
    window_from: datetime = Field(description="Start of the window of history (with a time "
                                  "zone); the city as it stood then is copied first")
    window_to: datetime = Field(description="End of the window (with a time zone), not in "
                                "the future")
    speed: Speed = 10.0
    scenario: str | None = Field(
        default=None, max_length=200,
        description="A shipped scenario's name (GET /scenarios), or with `scenario_text` the "
                    "name of the planner's own scenario file")
    scenario_text: str | None = Field(
        default=None, min_length=1, max_length=MAX_SCENARIO_BYTES,
        description="The YAML text of the planner's own scenario file (docs/scenarios.md), "
                    "checked against the city before the drill starts: 422 lists every "
                    "problem by line")
    participants: list[str] = Field(default_factory=list, max_length=500)


class DrillSpeedIn(Command):
    speed: Speed


class DrillJumpIn(Command):
    to: datetime = Field(description="The drill time to jump to (after the drill's clock, "
                         "within the window)")


class DrillInviteIn(Command):
    users: list[str] = Field(min_length=1, max_length=500)


def _view(room: DrillRoom, drill_id: UUID, actor: Actor) -> dict[str, Any]:
    view = room.view(drill_id)
    if not view.drill.may_take_part(actor):
        # Someone not in the drill does not learn that it exists.
        raise NotFound(Drill.KIND, drill_id)
    return view.summary()


def _run(room: DrillRoom, command: OnDrill, actor: Actor,
         command_id: str | None) -> dict[str, Any]:
    room.handle(command, CommandContext(actor=actor, command_id=command_id))
    return room.view(command.drill_id).summary()


@router.get("", response_model=DrillsPublic)
def list_drills(room: RoomDep, actor: CurrentActor) -> dict[str, Any]:
    """The drills the user may see: every drill for planners, the drills they were invited
    to otherwise (the dashboard's drill selector)."""
    data = [v.summary() for v in room.views(actor)]
    return {"data": data, "count": len(data)}


@router.get("/ready", response_model=list[DrillOfferPublic])
def ready_drills(room: RoomDep, actor: CurrentActor) -> list[dict[str, Any]]:
    """Drills offered ready to start (the demo's own morning), as the body to start them."""
    return [offer() for offer in room.offers]


@router.post("", status_code=201, response_model=DrillPublic)
def start_drill(body: DrillStartIn, room: RoomDep, actor: CurrentActor,
                command_id: CommandId) -> dict[str, Any]:
    """Start a drill: the window's history is replayed into the drill's own stores at its
    speed (the city as it stood at `window_from` first)."""
    drill_id = uuid5(COMMAND_NAMESPACE, f"drill:{command_id}") if command_id else uuid4()
    command = StartDrill(drill_id=drill_id, title=body.title, window_from=body.window_from,
                         window_to=body.window_to, speed=body.speed,  # type: ignore[arg-type]
                         scenario=body.scenario, participants=tuple(body.participants),
                         scenario_text=body.scenario_text)
    room.handle(command, CommandContext(actor=actor, command_id=command_id))
    return room.view(drill_id).summary()


@router.get("/{drill_id}", response_model=DrillPublic)
def get_drill(drill_id: UUID, room: RoomDep, actor: CurrentActor) -> dict[str, Any]:
    """A drill with its progress: the drill's clock, events replayed and skipped."""
    return _view(room, drill_id, actor)


@router.post("/{drill_id}/pause", response_model=DrillPublic)
def pause_drill(drill_id: UUID, room: RoomDep, actor: CurrentActor,
                command_id: CommandId) -> dict[str, Any]:
    """Pause a drill: its clock and replay stand still."""
    now = room.drill(drill_id).drill_time
    return _run(room, PauseDrill(drill_id=drill_id, drill_time=now), actor, command_id)


@router.post("/{drill_id}/resume", response_model=DrillPublic)
def resume_drill(drill_id: UUID, room: RoomDep, actor: CurrentActor,
                 command_id: CommandId) -> dict[str, Any]:
    """Resume a paused drill."""
    return _run(room, ResumeDrill(drill_id=drill_id), actor, command_id)


@router.post("/{drill_id}/speed", response_model=DrillPublic)
def change_drill_speed(drill_id: UUID, body: DrillSpeedIn, room: RoomDep,
                       actor: CurrentActor, command_id: CommandId) -> dict[str, Any]:
    """Change a drill's speed (1x to 100x, or max)."""
    return _run(room, ChangeDrillSpeed(drill_id=drill_id, speed=body.speed),  # type: ignore[arg-type]
                actor, command_id)


@router.post("/{drill_id}/jump", response_model=DrillPublic)
def jump_drill_forward(drill_id: UUID, body: DrillJumpIn, room: RoomDep,
                       actor: CurrentActor, command_id: CommandId) -> dict[str, Any]:
    """Jump a drill forward to a later drill time: the history up to it is replayed at
    once."""
    now = room.drill(drill_id).drill_time
    return _run(room, JumpDrillForward(drill_id=drill_id, to=body.to, current=now), actor,
                command_id)


@router.post("/{drill_id}/participants", response_model=DrillPublic)
def invite_participants(drill_id: UUID, body: DrillInviteIn, room: RoomDep,
                        actor: CurrentActor, command_id: CommandId) -> dict[str, Any]:
    """Invite users (dispatchers, department users, inspectors...) to act in the drill."""
    return _run(room, InviteDrillParticipants(drill_id=drill_id, users=tuple(body.users)),
                actor, command_id)


@router.post("/{drill_id}/finish", response_model=DrillPublic)
def finish_drill(drill_id: UUID, room: RoomDep, actor: CurrentActor,
                 command_id: CommandId) -> dict[str, Any]:
    """Finish a drill: it stops where it is and stays for review until deleted."""
    return _run(room, FinishDrill(drill_id=drill_id), actor, command_id)


@router.delete("/{drill_id}", response_model=DrillPublic)
def delete_drill(drill_id: UUID, room: RoomDep, actor: CurrentActor,
                 command_id: CommandId) -> dict[str, Any]:
    """Delete a drill: it stops, and its stores (folder or schema) are removed entirely."""
    room.handle(DeleteDrill(drill_id=drill_id), CommandContext(actor=actor,
                                                               command_id=command_id))
    return DrillView(room.registry.drill(drill_id), None).summary()
