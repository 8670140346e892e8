"""Webhooks: a tenant's endpoints, their deliveries, test sends and replays (admin scope)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query

from tether.api.auth import Caller
from tether.api.deps import State, require
from tether.api.schemas import Problem
from tether.api.webhook_schemas import CreateWebhook, DeliveryOut, WebhookOut
from tether.webhooks import service

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])

Admin = Annotated[Caller, Depends(require("admin"))]
_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": Problem} for code in (400, 401, 403, 404, 429)}


@router.post("", status_code=201, response_model=WebhookOut, responses=_ERRORS)
async def create_webhook(body: CreateWebhook, state: State, caller: Admin) -> WebhookOut:
    """Subscribe a URL to events of the caller's tenant; the answer carries its signing secret."""
    try:
        endpoint = await service.subscribe(
            state.store,
            state.settings,
            tenant_id=caller.tenant_id,
            url=body.url,
            events=body.events,
            created_by=caller.user_id,
            description=body.description,
        )
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None
    return WebhookOut.of(endpoint, with_secret=True)


@router.get("", response_model=list[WebhookOut], responses=_ERRORS)
async def list_webhooks(state: State, caller: Admin, include_removed: bool = False) -> list[WebhookOut]:
    """The tenant's endpoints (per-run callbacks are not listed here)."""
    endpoints = await state.store.webhooks.list_endpoints(
        tenant_id=caller.tenant_id, include_disabled=include_removed
    )
    return [WebhookOut.of(endpoint) for endpoint in endpoints]


@router.get("/deliveries", response_model=list[DeliveryOut], responses=_ERRORS)
async def list_deliveries(
    state: State,
    caller: Admin,
    webhook_id: Annotated[str | None, Query(max_length=40)] = None,
    status: Literal["pending", "succeeded", "dead"] | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[DeliveryOut]:
    """The tenant's deliveries, newest first; `status=dead` lists the dead letters."""
    rows = await state.store.webhooks.list_deliveries(
        tenant_id=caller.tenant_id, endpoint_id=webhook_id, status=status, limit=limit
    )
    return [DeliveryOut.of(delivery, event_type) for delivery, event_type in rows]


@router.post(
    "/deliveries/{delivery_id}/replay", status_code=202, response_model=DeliveryOut, responses=_ERRORS
)
async def replay_delivery(delivery_id: str, state: State, caller: Admin) -> DeliveryOut:
    """Send a delivery again (a dead letter, or one already delivered) with fresh retries."""
    try:
        delivery = await state.store.webhooks.replay(delivery_id, tenant_id=caller.tenant_id)
    except LookupError:
        raise HTTPException(404, f"no delivery {delivery_id!r}") from None
    return DeliveryOut.of(delivery)


@router.get("/{webhook_id}", response_model=WebhookOut, responses=_ERRORS)
async def get_webhook(webhook_id: str, state: State, caller: Admin) -> WebhookOut:
    try:
        endpoint = await state.store.webhooks.get_endpoint(webhook_id, tenant_id=caller.tenant_id)
    except LookupError:
        raise HTTPException(404, f"no webhook {webhook_id!r}") from None
    return WebhookOut.of(endpoint, with_secret=True)


@router.delete("/{webhook_id}", response_model=WebhookOut, responses=_ERRORS)
async def remove_webhook(webhook_id: str, state: State, caller: Admin) -> WebhookOut:
    """Stop sending to an endpoint; its deliveries stay listed, pending ones are dead-lettered."""
    try:
        endpoint = await state.store.webhooks.disable_endpoint(webhook_id, tenant_id=caller.tenant_id)
    except LookupError:
        raise HTTPException(404, f"no webhook {webhook_id!r}") from None
    return WebhookOut.of(endpoint)


@router.post("/{webhook_id}/test", status_code=202, response_model=DeliveryOut, responses=_ERRORS)
async def test_webhook(webhook_id: str, state: State, caller: Admin) -> DeliveryOut:
    """Queue a signed `webhook.test` delivery to this endpoint; follow it in the deliveries list."""
    try:
        endpoint = await state.store.webhooks.get_endpoint(webhook_id, tenant_id=caller.tenant_id)
    except LookupError:
        raise HTTPException(404, f"no webhook {webhook_id!r}") from None
    if endpoint.disabled_at is not None:
        raise HTTPException(400, f"webhook {webhook_id} was removed")
    delivery = await service.send_test(state.store, endpoint, sent_by=caller.user_id)
    return DeliveryOut.of(delivery, "webhook.test")
