"""Departments' subscriptions to the feeds: a department user manages its own department's,
an administrator any department's; plus the shared-data catalogue, each subscription's
history and its webhook delivery log (with redelivery of dead letters)."""

from __future__ import annotations

import secrets
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from pydantic import Field

from cityops.command_center.areas import AreaIn
from cityops.command_center.dependencies import (
    CommandId,
    CurrentActor,
    PagingDep,
    SystemDep,
    page_body,
)
from cityops.command_center.drill_switch import drill_feeds
from cityops.command_center.history import event_history
from cityops.command_center.models.common import HistoryEntryPublic
from cityops.command_center.models.subscriptions import (
    NewSubscriptionPublic,
    RedeliveryPublic,
    SharingCataloguePublic,
    SubscriptionPublic,
    SubscriptionsPublic,
    WebhookDeliveriesPublic,
)
from cityops.command_center.schemas import Command
from cityops.command_center.versions import SeenVersion
from cityops.domain.actors import Actor, Role
from cityops.domain.commands import CommandContext
from cityops.domain.errors import InvalidValue, NotPermitted
from cityops.feeds.commands import (
    PauseSubscription,
    ResumeSubscription,
    ReviseSubscription,
    Subscribe,
    Unsubscribe,
)
from cityops.feeds.service import FeedService
from cityops.feeds.streams import Stream, Trigger
from cityops.feeds.subscription import (
    AreaFilter,
    Delivery,
    DeliveryKind,
    Subscription,
    SubscriptionFilter,
    SubscriptionStatus,
)
from cityops.feeds.webhooks import DeliveryState

router = APIRouter(prefix="/subscriptions", tags=["subscriptions"])

GENERATED_SECRET_BYTES = 32
OVERSIGHT_ROLES = frozenset({Role.ADMIN, Role.DISPATCHER, Role.LEADER})
"""Roles that may read every department's subscriptions (only admins change them)."""

def get_feeds(request: Request, _: SystemDep) -> FeedService:
    """The feeds of the system the request acts on: the app's (built by `create_app`), or,
    switched into a drill, the drill's own (its subscriptions, destinations, delivery log
    and CAP alerts: a drill's subscription is never a live one)."""
    drill = getattr(request.state, "drill", None)
    if drill is not None:
        return drill_feeds(request.app, drill)
    feeds: FeedService = request.app.state.feeds
    return feeds


FeedsDep = Annotated[FeedService, Depends(get_feeds)]


# --- bodies -------------------------------------------------------------------------------


class AreaFilterIn(Command):
    """Exactly one of: a grid code prefix, a bbox, a GeoJSON polygon."""

    grid_prefix: str | None = Field(default=None, examples=["D01-S02"])
    bbox: list[float] | None = Field(default=None, min_length=4, max_length=4,
                                     description="min_lon, min_lat, max_lon, max_lat")
    polygon: AreaIn | None = None

    def to_area(self) -> AreaFilter:
        return AreaFilter(grid_prefix=self.grid_prefix,
                          bbox=tuple(self.bbox) if self.bbox is not None else None,  # type: ignore[arg-type]
                          polygon=self.polygon.to_area() if self.polygon else None)


class FilterIn(Command):
    stream: Stream
    categories: list[str] = Field(default_factory=list, max_length=200,
                                  description="Category codes; empty = all")
    area: AreaFilterIn | None = None
    levels: list[str] = Field(default_factory=list, description="Incident levels I-IV")
    own_department: bool = Field(
        default=False, description="Only what is dispatched or assigned to the department")

    def to_filter(self) -> SubscriptionFilter:
        return SubscriptionFilter(stream=self.stream, categories=frozenset(self.categories),
                                  area=self.area.to_area() if self.area else None,
                                  levels=frozenset(self.levels),
                                  own_department=self.own_department)


class DeliveryIn(Command):
    kind: DeliveryKind = Field(description="kafka: the department's topic; webhook: HTTP")
    url: str | None = Field(default=None, description="Webhook URL")
    secret: str | None = Field(
        default=None, description="Webhook signing secret (16+ characters); when omitted "
        "one is generated and returned once (on a revision: the current one is kept)")


class SubscriptionIn(Command):
    department: str | None = Field(default=None,
                                   description="Default: the acting user's department")
    name: str = Field(min_length=1, max_length=200)
    filter: FilterIn
    triggers: list[Trigger] = Field(default_factory=lambda: list(Trigger), min_length=1)
    delivery: DeliveryIn


class SubscriptionRevision(Command):
    """The whole new configuration (the stream cannot change)."""

    name: str = Field(min_length=1, max_length=200)
    filter: FilterIn
    triggers: list[Trigger] = Field(min_length=1)
    delivery: DeliveryIn
    note: str = ""


class PauseIn(Command):
    reason: str = Field(min_length=1)


class ResumeIn(Command):
    note: str = ""


# --- helpers ------------------------------------------------------------------------------


def _delivery(body: DeliveryIn, current: Delivery | None = None) -> tuple[Delivery, str | None]:
    """The delivery asked for, and a secret generated for it (to return once)."""
    if body.kind is DeliveryKind.KAFKA:
        return Delivery(kind=DeliveryKind.KAFKA, url=body.url, secret=body.secret), None
    if body.secret is not None:
        return Delivery(kind=DeliveryKind.WEBHOOK, url=body.url, secret=body.secret), None
    if current is not None and current.secret is not None:
        return Delivery(kind=DeliveryKind.WEBHOOK, url=body.url, secret=current.secret), None
    generated = secrets.token_urlsafe(GENERATED_SECRET_BYTES)
    return Delivery(kind=DeliveryKind.WEBHOOK, url=body.url, secret=generated), generated


def _may_read(actor: Actor, department: str) -> None:
    if actor.role in OVERSIGHT_ROLES:
        return
    if actor.role is Role.DEPARTMENT_USER and actor.department == department:
        return
    raise NotPermitted(f"{actor.role.value} {actor.user_id} may not see the subscriptions "
                       f"of {department}")


def _readable(feeds: FeedService, subscription_id: UUID, actor: Actor) -> Subscription:
    subscription = feeds.subscriptions.subscription(subscription_id)
    _may_read(actor, subscription.department)
    return subscription


def _with_secret(summary: dict[str, Any], secret: str | None) -> dict[str, Any]:
    if secret is not None:
        summary["secret"] = secret
        summary["secret_note"] = "shown once: keep it to verify X-CityOps-Signature"
    return summary


# --- routes -------------------------------------------------------------------------------


@router.get("/catalogue", response_model=SharingCataloguePublic)
def shared_data_catalogue(feeds: FeedsDep, _: CurrentActor) -> dict[str, Any]:
    """The shared-data catalogue: each feed's scope, update frequency and the sharing class
    of every field (shared, conditional on a named condition, not shared)."""
    return feeds.catalogue.as_dict()


@router.post("", status_code=201, response_model=NewSubscriptionPublic,
             response_model_exclude_unset=True)
def subscribe(body: SubscriptionIn, feeds: FeedsDep, actor: CurrentActor,
              command_id: CommandId) -> dict[str, Any]:
    """Subscribe a department to the events of one stream that match a filter."""
    department = body.department or actor.department
    if not department:
        raise InvalidValue("give the department the subscription is for")
    delivery, generated = _delivery(body.delivery)
    subscription_id = feeds.subscriptions.subscribe(Subscribe(
        department=department, subscription_name=body.name, filter=body.filter.to_filter(),
        triggers=tuple(body.triggers), delivery=delivery,
    ), CommandContext(actor=actor, command_id=command_id)).subject
    summary = feeds.subscriptions.subscription(subscription_id).summary()
    return _with_secret(summary, generated)


@router.get("", response_model=SubscriptionsPublic,
             response_model_exclude_unset=True)
def list_subscriptions(
    feeds: FeedsDep, actor: CurrentActor, paging: PagingDep,
    department: Annotated[str | None, Query(description="Department code")] = None,
    status: Annotated[SubscriptionStatus | None, Query()] = None,
    stream: Annotated[Stream | None, Query()] = None,
) -> dict[str, Any]:
    """Subscriptions, oldest first: a department user sees its own department's."""
    if actor.role not in OVERSIGHT_ROLES:
        department = department or actor.department
        if department is None:
            raise NotPermitted(f"{actor.role.value} {actor.user_id} may not see "
                               "subscriptions")
    if department is not None:
        _may_read(actor, department)
    found = [s for s in feeds.subscriptions.all(department)
             if (status is None or s.status is status)
             and (stream is None or s.filter.stream is stream)]
    page = found[paging.offset:paging.offset + paging.limit]
    return page_body([s.summary() for s in page], len(found), paging)


@router.get("/{subscription_id}", response_model=SubscriptionPublic,
             response_model_exclude_unset=True)
def get_subscription(subscription_id: UUID, feeds: FeedsDep,
                     actor: CurrentActor) -> dict[str, Any]:
    """One subscription (never its webhook secret)."""
    return _readable(feeds, subscription_id, actor).summary()


@router.put("/{subscription_id}", response_model=NewSubscriptionPublic,
            response_model_exclude_unset=True)
def revise_subscription(subscription_id: UUID, body: SubscriptionRevision, feeds: FeedsDep,
                        actor: CurrentActor, command_id: CommandId,
                        seen: SeenVersion) -> dict[str, Any]:
    """Replace the filter, triggers and delivery (from now on)."""
    current = _readable(feeds, subscription_id, actor)
    delivery, generated = _delivery(body.delivery, current.delivery)
    feeds.subscriptions.handle(ReviseSubscription(
        subscription_id=subscription_id, subscription_name=body.name,
        filter=body.filter.to_filter(), triggers=tuple(body.triggers), delivery=delivery,
        note=body.note,
    ), CommandContext(actor=actor, command_id=command_id, seen_versions=seen))
    return _with_secret(feeds.subscriptions.subscription(subscription_id).summary(), generated)


@router.post("/{subscription_id}/pause", response_model=SubscriptionPublic,
             response_model_exclude_unset=True)
def pause_subscription(subscription_id: UUID, body: PauseIn, feeds: FeedsDep,
                       actor: CurrentActor, command_id: CommandId,
                       seen: SeenVersion) -> dict[str, Any]:
    """Stop matching events until resumed (events of the pause are not delivered later)."""
    feeds.subscriptions.handle(
        PauseSubscription(subscription_id=subscription_id, reason=body.reason),
        CommandContext(actor=actor, command_id=command_id, seen_versions=seen))
    return feeds.subscriptions.subscription(subscription_id).summary()


@router.post("/{subscription_id}/resume", response_model=SubscriptionPublic,
             response_model_exclude_unset=True)
def resume_subscription(subscription_id: UUID, body: ResumeIn, feeds: FeedsDep,
                        actor: CurrentActor, command_id: CommandId,
                        seen: SeenVersion) -> dict[str, Any]:
    """Match events again from now on."""
    feeds.subscriptions.handle(
        ResumeSubscription(subscription_id=subscription_id, note=body.note),
        CommandContext(actor=actor, command_id=command_id, seen_versions=seen))
    return feeds.subscriptions.subscription(subscription_id).summary()


@router.delete("/{subscription_id}", response_model=SubscriptionPublic,
             response_model_exclude_unset=True)
def remove_subscription(
    subscription_id: UUID, feeds: FeedsDep, actor: CurrentActor, command_id: CommandId,
    seen: SeenVersion,
    reason: Annotated[str, Query(min_length=1, description="Why it ends")],
) -> dict[str, Any]:
    """End a subscription for good (it stays on record with its history)."""
    feeds.subscriptions.handle(
        Unsubscribe(subscription_id=subscription_id, reason=reason),
        CommandContext(actor=actor, command_id=command_id, seen_versions=seen))
    return feeds.subscriptions.subscription(subscription_id).summary()


@router.get("/{subscription_id}/history", response_model=list[HistoryEntryPublic])
def subscription_history(subscription_id: UUID, feeds: FeedsDep,
                         actor: CurrentActor) -> list[dict[str, Any]]:
    """Who subscribed, changed, paused or ended it, and when (secrets withheld)."""
    _readable(feeds, subscription_id, actor)
    entries = event_history(feeds.subscriptions.events.get(subscription_id))
    for entry in entries:
        delivery = entry["facts"].get("delivery")
        if isinstance(delivery, dict) and delivery.get("secret") is not None:
            entry["facts"]["delivery"] = {**delivery, "secret": "(withheld)"}
    return entries


@router.get("/{subscription_id}/deliveries", response_model=WebhookDeliveriesPublic)
def webhook_deliveries(
    subscription_id: UUID, feeds: FeedsDep, actor: CurrentActor, paging: PagingDep,
    state: Annotated[DeliveryState | None, Query(description="e.g. dead-lettered")] = None,
) -> dict[str, Any]:
    """The webhook delivery log, newest first: state, attempts with status codes or errors,
    and the reason of a dead letter."""
    _readable(feeds, subscription_id, actor)
    rows, total = feeds.delivery_log.deliveries(subscription_id, state=state,
                                                limit=paging.limit, offset=paging.offset)
    return page_body(rows, total, paging)


@router.post("/{subscription_id}/deliveries/{delivery_id}/redeliver",
             response_model=RedeliveryPublic)
def redeliver(subscription_id: UUID, delivery_id: UUID, feeds: FeedsDep,
              actor: CurrentActor) -> dict[str, Any]:
    """Send a dead-lettered delivery again, with a fresh set of attempts."""
    subscription = _readable(feeds, subscription_id, actor)
    if not (actor.role is Role.ADMIN or (actor.role is Role.DEPARTMENT_USER
                                         and actor.department == subscription.department)):
        raise NotPermitted(f"{actor.role.value} {actor.user_id} may not redeliver")
    feeds.delivery_log.redeliver(subscription_id, str(delivery_id), now=feeds.clock())
    return {"delivery_id": str(delivery_id), "state": DeliveryState.PENDING.value}
