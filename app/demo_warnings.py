"""The demo day's warning: the gas leak at the LPG depot gets a public warning, drafted by
the duty officer from the incident over the depot's impact zone, approved by a second
person (the duty chief), issued; widened when the leak spreads towards a school and the
level is raised; cancelled once the leak is isolated. Through the warning desk's commands,
as the dashboard sends them: command values handed to `system.commands.handle`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from cityops.bootstrap import CitySystem
from cityops.domain.actors import Actor
from cityops.domain.commands import CommandContext
from cityops.domain.warnings.commands import (
    ApproveWarning,
    CancelWarning,
    DraftWarning,
    DraftWarningUpdate,
    DrawnArea,
    IssueWarning,
    WarningCommand,
)
from cityops.domain.warnings.content import (
    Certainty,
    OriginKind,
    Urgency,
    WarningCircle,
    WarningText,
)

WARNING_HOURS = 6
"""How long the gas-leak warning runs unless cancelled."""
WIDENING = 2.0
"""How much the update widens the warning's circle."""
CONTACT = "City service hotline 12345"


def gas_leak_texts(spreading: bool) -> tuple[WarningText, ...]:
    """The warning's words in Chinese and English."""
    if spreading:
        return (
            WarningText(language="zh-CN", event="燃气泄漏",
                        headline="液化气站燃气泄漏扩散 请立即远离",
                        description="液化气站泄漏扩散 影响范围扩大至周边学校",
                        instruction="关闭门窗 熄灭明火 听从现场人员指挥撤离"),
            WarningText(language="en-US", event="Gas leak",
                        headline="Gas leak at the LPG depot spreading: leave the area",
                        description="The leak at the LPG depot is spreading downwind; the "
                        "area now includes the school nearby.",
                        instruction="Close windows, put out open flames and follow the "
                        "responders' instructions to leave."),
        )
    return (
        WarningText(language="zh-CN", event="燃气泄漏", headline="液化气站燃气泄漏 请远离",
                    description="液化气站发生燃气泄漏 消防和危化品救援队伍正在处置",
                    instruction="关闭门窗 不要使用明火 远离该区域"),
        WarningText(language="en-US", event="Gas leak",
                    headline="Gas leak at the LPG depot: stay away",
                    description="Gas is leaking at the LPG depot; fire and hazmat teams are "
                    "on their way.",
                    instruction="Close windows, use no open flame and keep away from the "
                    "area."),
    )


@dataclass
class GasLeakWarning:
    """The steps of the gas leak's warning, each a command of one person."""

    system: CitySystem
    drafter: Actor
    approver: Actor
    incident_id: UUID
    hazard_source_id: UUID
    warning_id: UUID | None = None
    steps: int = 0
    """Commands sent so far: each gets its own command id, derived from the incident."""

    def _circle(self, widen: float = 1.0) -> DrawnArea:
        source = self.system.hazards.source(self.hazard_source_id)
        radius_km = (source.impact_radius_m or 500.0) / 1000 * widen
        return DrawnArea(circles=(WarningCircle(centre=source.location, radius_km=radius_km),))

    def _expires(self, now: datetime) -> datetime:
        return now + timedelta(hours=WARNING_HOURS)

    def _act(self, command: WarningCommand, actor: Actor) -> UUID:
        """One person's command, as the dashboard sends it, with a command id derived from
        the incident and the step: the same demo day gives the same warning id on every run
        and back end (as its cases and incidents), and a step sent twice is one step."""
        self.steps += 1
        command_id = f"demo:gas-leak-warning:{self.incident_id}:{self.steps}"
        return self.system.commands.handle(
            command, CommandContext(actor=actor, command_id=command_id)).subject

    def draft(self) -> None:
        """The duty officer drafts a public warning from the incident over the depot's
        impact zone."""
        now = self.system.clock()
        self.warning_id = self._act(DraftWarning(
            origin=OriginKind.INCIDENT, incident_id=self.incident_id, level="orange",
            urgency=Urgency.IMMEDIATE, certainty=Certainty.OBSERVED,
            texts=gas_leak_texts(spreading=False), expires=self._expires(now),
            contact=CONTACT, area=self._circle()), self.drafter)

    def approve(self) -> None:
        """A second person (the duty chief) approves it."""
        assert self.warning_id is not None
        self._act(ApproveWarning(warning_id=self.warning_id,
                                 note="Checked with the fire brigade"), self.approver)

    def issue(self) -> None:
        assert self.warning_id is not None
        self._act(IssueWarning(warning_id=self.warning_id), self.drafter)

    def widen(self) -> None:
        """The leak spreads towards a school: the area is widened and the level raised."""
        assert self.warning_id is not None
        now = self.system.clock()
        self._act(DraftWarningUpdate(
            warning_id=self.warning_id, level="red", texts=gas_leak_texts(spreading=True),
            expires=self._expires(now), contact=CONTACT, area=self._circle(WIDENING),
            reason="The leak spreads downwind; a school is inside the zone"), self.drafter)

    def cancel(self) -> None:
        assert self.warning_id is not None
        self._act(CancelWarning(
            warning_id=self.warning_id, reason="The leak is isolated; no further danger"),
            self.drafter)
