"""Departments' subscriptions as the API answers them: the subscription (never its webhook
secret, except once when it is made), its webhook deliveries, and the shared-data
catalogue (which field of which feed is shared with whom)."""

from __future__ import annotations

from pydantic import Field

from cityops.command_center.models.common import (
    AreaPublic,
    Number,
    PagePublic,
    Public,
    Timestamp,
    Uuid,
    sometimes,
)
from cityops.feeds.streams import Stream, Trigger
from cityops.feeds.subscription import DeliveryKind, SubscriptionStatus
from cityops.feeds.webhooks import DeliveryState


class AreaFilterPublic(Public):
    """Where: one of a grid-code prefix, a WGS84 bbox or a polygon."""

    grid_prefix: str = sometimes("Grid code prefix")
    bbox: list[Number] = sometimes("min lon, min lat, max lon, max lat")
    polygon: AreaPublic = sometimes("A polygon (GeoJSON)")


class FilterPublic(Public):
    """Which events of the stream match."""

    stream: Stream
    categories: list[str]
    area: AreaFilterPublic | None
    levels: list[str]
    own_department: bool


class DeliveryPublic(Public):
    """How events reach the department (never the webhook secret)."""

    kind: DeliveryKind
    url: str | None
    secret_fingerprint: str | None


class ActivePeriodPublic(Public):
    start: Timestamp
    end: Timestamp | None


class SubscriptionPublic(Public):
    """A subscription of a department to one stream's events."""

    id: Uuid
    version: int
    department: str
    name: str
    status: SubscriptionStatus
    filter: FilterPublic
    triggers: list[Trigger]
    delivery: DeliveryPublic
    subscribed_at: Timestamp
    subscribed_by: str
    revisions: int
    active_periods: list[ActivePeriodPublic]
    ended_at: Timestamp | None
    end_reason: str | None


class NewSubscriptionPublic(SubscriptionPublic):
    """A subscription as made or revised: with a webhook secret generated now, that secret
    (shown once)."""

    secret: str = sometimes("The webhook secret generated now (shown once)")
    secret_note: str = sometimes("Keep the secret to verify X-CityOps-Signature")


class SubscriptionsPublic(PagePublic[SubscriptionPublic]):
    """A page of subscriptions."""


class DeliveryAttemptPublic(Public):
    attempt: int
    url: str
    started_at: Number = Field(description="Unix time, seconds")
    duration_ms: Number
    status_code: int | None
    error: str | None
    outcome: str


class WebhookDeliveryPublic(Public):
    """One event's delivery to a webhook, with its attempts."""

    delivery_id: str
    subscription_id: Uuid
    department: str
    event_id: str
    event_type: str
    stream: str
    aggregate_id: str
    position: int
    state: DeliveryState
    attempts: int
    retry_from: int
    next_attempt_at: Number = Field(description="Unix time, seconds")
    created_at: Number = Field(description="Unix time, seconds")
    finished_at: Number | None = Field(description="Unix time, seconds")
    last_status: int | None
    last_error: str | None
    attempt_log: list[DeliveryAttemptPublic]


class WebhookDeliveriesPublic(PagePublic[WebhookDeliveryPublic]):
    """A page of webhook deliveries."""


class RedeliveryPublic(Public):
    delivery_id: Uuid
    state: DeliveryState


class CentrePublic(Public):
    description: str
    roles: list[str]
    departments: list[str]


class ConditionPublic(Public):
    description: str
    departments: list[str]
    roles: list[str]


class FeedPublic(Public):
    title: str
    scope: str
    update_frequency: str
    fields: dict[str, str] = Field(description="Field -> `shared`, "
                                   "`conditional:<condition>` or `not-shared`")


class SharingCataloguePublic(Public):
    """The shared-data catalogue."""

    version: int
    centre: CentrePublic
    conditions: dict[str, ConditionPublic]
    feeds: dict[str, FeedPublic]
