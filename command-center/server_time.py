"""The server's time for the pages: they count deadlines and supervision lights down from
it, never from the browser's clock alone (a browser's clock may be wrong, and the demo or a
drill runs on a clock of its own).

A reading is the system's time and its rate (seconds of it per real second). `GET /clock`
answers one, and the live push carries one in its `welcome`, `snapshot` and `position`
messages, so a page resynchronises every few seconds."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from cityops.command_center.dependencies import SystemDep
from cityops.domain.clock import Clock, rate_of

router = APIRouter(tags=["operations"])


class ClockReading(BaseModel):
    """The server's time now."""

    model_config = ConfigDict(extra="forbid")

    server_time: str = Field(description="The system's time now (ISO 8601, UTC)",
                             examples=["2025-03-14T09:26:53.589793+00:00"])
    clock_rate: float = Field(description="Seconds of the system's time per real second: "
                                          "1, or the speed of the demo's or a drill's clock")


def clock_reading(clock: Clock) -> dict[str, Any]:
    """`clock` now, with its rate, as the API and the live push send it."""
    return {"server_time": clock().isoformat(), "clock_rate": rate_of(clock)}


@router.get("/clock", response_model=ClockReading)
def server_clock(system: SystemDep) -> dict[str, Any]:
    """The system's time now: what the pages count deadlines and lights from."""
    return clock_reading(system.clock)
