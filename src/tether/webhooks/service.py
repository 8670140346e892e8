"""What the CLI, the API and the workers do with webhooks, in one place so they agree."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from tether.settings import Settings
from tether.store.repository import Store
from tether.store.webhooks import WebhookDeliveryRecord, WebhookEndpointRecord
from tether.webhooks import signing
from tether.webhooks.destinations import DestinationPolicy, DestinationRefused
from tether.webhooks.dispatcher import Dispatcher
from tether.webhooks.events import CALLBACK_EVENTS, OPERATOR_ALERT_EVENTS, validate_patterns


def policy_of(settings: Settings) -> DestinationPolicy:
    return DestinationPolicy.of(settings.webhook_allow_private, settings.webhook_allow_cidrs)


async def subscribe(
    store: Store,
    settings: Settings,
    *,
    tenant_id: str,
    url: str,
    events: list[str],
    created_by: str,
    description: str | None = None,
) -> WebhookEndpointRecord:
    """Add an endpoint after checking its events and its destination (ValueError says what is wrong).

    The destination is checked now so a mistake is seen at once, and again at every delivery."""
    patterns = validate_patterns(events)
    await policy_of(settings).resolve(url)
    return await store.webhooks.add_endpoint(
        tenant_id=tenant_id, url=url, events=patterns, created_by=created_by, description=description
    )


async def add_callback(
    store: Store, settings: Settings, *, tenant_id: str, url: str, run_id: str, created_by: str
) -> WebhookEndpointRecord:
    """The per-run callback of `POST /v1/runs`: an endpoint for that run's events only.

    Stored before the run itself, so not even an instant worker can end the run unseen."""
    await policy_of(settings).resolve(url)
    return await store.webhooks.add_endpoint(
        tenant_id=tenant_id,
        url=url,
        events=list(CALLBACK_EVENTS),
        created_by=created_by,
        run_id=run_id,
        description=f"callback of {run_id}",
    )


async def send_test(store: Store, endpoint: WebhookEndpointRecord, *, sent_by: str) -> WebhookDeliveryRecord:
    return await store.webhooks.send_test(
        endpoint.id, {"endpoint_id": endpoint.id, "message": "a test delivery", "sent_by": sent_by}
    )


async def keep_alert_endpoint(store: Store, settings: Settings) -> WebhookEndpointRecord | None:
    """The operator-level endpoint `TETHER_ALERT_WEBHOOK_URL` names, made to match the settings
    (removed when the setting is unset); a malformed URL or secret is a startup error naming it."""
    url, secret = settings.alert_webhook_url, settings.alert_webhook_secret
    if url:
        try:
            policy_of(settings).parse(url)
        except DestinationRefused as exc:
            raise ValueError(f"TETHER_ALERT_WEBHOOK_URL: {exc}") from None
    if secret:
        try:
            signing.sign(secret, "check", 0, b"")
        except ValueError as exc:  # binascii.Error is a ValueError too
            raise ValueError(f"TETHER_ALERT_WEBHOOK_SECRET must be whsec_ and base64 ({exc})") from None
    return await store.webhooks.keep_operator_endpoint(
        url=url or None, events=list(OPERATOR_ALERT_EVENTS), secret=secret or None
    )


@contextlib.asynccontextmanager
async def dispatching(store: Store, settings: Settings) -> AsyncIterator[Dispatcher]:
    """Run a dispatcher in the background for as long as the block lasts (a worker's lifetime),
    after making the operator-level alert endpoint match the settings."""
    await keep_alert_endpoint(store, settings)
    dispatcher = Dispatcher(store, settings)
    task = asyncio.create_task(dispatcher.run_forever())
    try:
        yield dispatcher
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
