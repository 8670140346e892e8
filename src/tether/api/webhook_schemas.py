"""Request and response bodies of `/v1/webhooks` (kept apart from api/schemas.py, which is shared)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from tether.api.schemas import _In
from tether.store.webhooks import WebhookDeliveryRecord, WebhookEndpointRecord
from tether.webhooks.events import EVENT_TYPES


class CreateWebhook(_In):
    url: str = Field(min_length=1, max_length=2000, description="Where to POST deliveries (http or https).")
    events: list[str] = Field(
        min_length=1,
        max_length=50,
        description=f"Event types, families like `run.*`, or `*`. Types: {', '.join(EVENT_TYPES)}.",
    )
    description: str | None = Field(default=None, max_length=500)


class WebhookOut(BaseModel):
    webhook_id: str
    url: str
    events: list[str]
    description: str | None
    created_by: str
    created_at: datetime
    disabled_at: datetime | None
    secret: str | None = Field(
        default=None,
        description="The `whsec_` signing secret (Standard Webhooks); shown on creation and on GET by id.",
    )

    @classmethod
    def of(cls, endpoint: WebhookEndpointRecord, *, with_secret: bool = False) -> WebhookOut:
        return cls(
            webhook_id=endpoint.id,
            url=endpoint.url,
            events=endpoint.events,
            description=endpoint.description,
            created_by=endpoint.created_by,
            created_at=endpoint.created_at,
            disabled_at=endpoint.disabled_at,
            secret=endpoint.secret if with_secret else None,
        )


class DeliveryOut(BaseModel):
    delivery_id: str
    event_id: str = Field(description="Also the `webhook-id` header: the same on every attempt and replay.")
    event_type: str | None = None
    webhook_id: str
    status: Literal["pending", "succeeded", "dead"]
    attempts: int
    next_attempt_at: datetime
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None

    @classmethod
    def of(cls, delivery: WebhookDeliveryRecord, event_type: str | None = None) -> DeliveryOut:
        return cls(
            delivery_id=delivery.id,
            event_id=delivery.event_id,
            event_type=event_type,
            webhook_id=delivery.endpoint_id,
            status=delivery.status,
            attempts=delivery.attempts,
            next_attempt_at=delivery.next_attempt_at,
            last_status_code=delivery.last_status_code,
            last_error=delivery.last_error,
            created_at=delivery.created_at,
            delivered_at=delivery.delivered_at,
        )
