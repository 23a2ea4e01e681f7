"""Warnings as the API answers them: a warning's document (`Warning.summary()`, also its
read-model row) with the content in force and, for the centre, the content under
preparation; each message it sent; and the CAP 1.2 alerts the feed process wrote of them."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from cityops.command_center.models.common import (
    Number,
    PagePublic,
    PolygonPublic,
    Public,
    Timestamp,
    Uuid,
    withheld,
)
from cityops.domain.warnings.content import (
    AdminLevel,
    AlertStatus,
    Certainty,
    LevelKind,
    MessageType,
    OriginKind,
    Scope,
    Urgency,
)
from cityops.domain.warnings.warning import WarningStatus


class WarningTextPublic(Public):
    """The words of the warning in one language (one CAP `info` block)."""

    language: Literal["zh-CN", "en-US"]
    headline: str
    description: str
    instruction: str = Field(description="What people must do")
    event: str = Field(description="The event in this language (may be empty)")


class CirclePublic(Public):
    """A circle of the area: its centre [longitude, latitude] and radius in kilometres."""

    centre: list[Number]
    radius_km: Number


class CirclePointPublic(Public):
    """A circle in GeoJSON: its centre as a Point, with its radius (GeoJSON has no
    circles)."""

    type: Literal["Point"]
    coordinates: list[Number]
    radius_km: Number


AreaPartPublic = Annotated[PolygonPublic | CirclePointPublic,
                           Field(discriminator="type")]
"""One part of a warning's area in GeoJSON: a polygon (one ring, no holes), or a circle
as a point with its radius."""


class AreaCollectionPublic(Public):
    """The warning's whole area as a GeoJSON GeometryCollection (WGS84)."""

    type: Literal["GeometryCollection"]
    geometries: list[AreaPartPublic]


class AdminAreaPublic(Public):
    """A district, street or community of the unit grid that the area touches."""

    level: AdminLevel
    code: str
    name: str


class WarningAreaPublic(Public):
    """Where the warning applies: polygons and circles, and the administrative areas they
    touch."""

    description: str
    geometry: AreaCollectionPublic
    polygons: list[PolygonPublic]
    circles: list[CirclePublic]
    admin_areas: list[AdminAreaPublic]
    crs: str


class WarningOriginPublic(Public):
    """What the warning was drafted from: an incident, a hazard source's alarm, or nothing."""

    kind: OriginKind
    incident_id: Uuid | None
    hazard_source_id: Uuid | None
    alarm_id: Uuid | None
    title: str


class WarningContentPublic(Public):
    """What a warning says: its event, level, urgency and certainty, the words in each
    language, when it applies, to whom and where (docs/cap.md maps it to CAP)."""

    category: str
    event_type: str
    level: str = Field(description="red, orange, yellow, blue or I-IV")
    level_kind: LevelKind
    level_rank: int = Field(description="1 the most severe (red, I) to 4")
    urgency: Urgency
    certainty: Certainty
    texts: list[WarningTextPublic] = Field(description="One per language: zh-CN and en-US")
    onset: Timestamp
    expires: Timestamp
    contact: str
    scope: Scope
    restriction: str = Field(description="Who may receive a restricted warning")
    area: WarningAreaPublic
    origin: WarningOriginPublic


class SentMessagePublic(Public):
    """A message the warning sent, in its document's list."""

    identifier: str = Field(description="Its CAP identifier")
    sequence: int
    msg_type: MessageType
    sent: Timestamp
    issued_by: str
    approved_by: str | None = withheld("Who approved what went out (null: a cancellation).")


class WarningStepPublic(Public):
    """A step of the warning's workflow: what was done, by whom in what role, and when."""

    step: str = Field(description="drafted, revised, approved, issued, update drafted, "
                      "updated, cancelled or discarded")
    by: str
    role: str
    at: Timestamp
    note: str


class WarningPublic(Public):
    """A warning as its reader may see it; `status` says `expired` once an issued warning's
    expiry has passed. Who may not see a warning's preparation sees it as it went out."""

    id: Uuid
    version: int = Field(description="Also the answer's ETag; send it as If-Match")
    status: WarningStatus
    recorded_status: WarningStatus
    alert_status: AlertStatus
    drill_id: str | None
    scope: Scope | None
    headline: str | None
    level: str | None
    event_type: str | None
    expires: Timestamp | None
    origin: WarningOriginPublic | None
    content: WarningContentPublic | None = Field(description="What is in force (null: "
                                                 "never issued)")
    draft: WarningContentPublic | None = withheld("The content under preparation.")
    authors: list[str] | None = withheld("Who wrote the content under preparation.")
    drafted_by: str
    drafted_at: Timestamp
    approved_by: str | None = withheld()
    approved_at: Timestamp | None = withheld()
    sequence: int = Field(description="How many messages went out")
    notices: list[SentMessagePublic]
    issued_at: Timestamp | None
    last_sent_at: Timestamp | None
    cancelled_at: Timestamp | None
    cancelled_by: str | None
    cancel_reason: str | None
    discarded_at: Timestamp | None
    steps: list[WarningStepPublic]


class WarningsPublic(PagePublic[WarningPublic]):
    """A page of warnings, newest first."""


class NoticeReferencePublic(Public):
    """An earlier message a message replaces (CAP `references`)."""

    sender: str
    identifier: str
    sent: Timestamp


class WarningNoticePublic(Public):
    """One message the warning sent out (alert, update or cancel) with all it carried."""

    warning_id: Uuid
    identifier: str
    sequence: int
    msg_type: MessageType
    sent: Timestamp
    sender: str
    sender_name: str
    status: AlertStatus
    references: list[NoticeReferencePublic]
    note: str
    drill_id: str | None
    issued_by: str
    approved_by: str | None
    content: WarningContentPublic


class CapAlertPublic(Public):
    """One CAP alert a warning sent (the document is at `url`)."""

    identifier: str
    warning_id: Uuid
    sequence: int
    msg_type: Literal["Alert", "Update", "Cancel"]
    status: Literal["Actual", "Exercise"] = Field(description="Exercise: a drill's")
    scope: Literal["Public", "Restricted"]
    sent: Timestamp
    onset: Timestamp
    expires: Timestamp
    headline: str
    drill_id: str | None
    held: bool = Field(description="An exercise alert of another drill: never published "
                       "from this system")
    signed: bool
    url: str


class CapAlertsPublic(Public):
    """Every CAP alert of a warning the user may see, oldest first."""

    data: list[CapAlertPublic]
    count: int
