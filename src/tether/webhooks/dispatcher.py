"""The background sender: fans outbox events out to endpoints and sends due deliveries.

Runs in every worker process (`tether worker`, and the in-process worker of `tether serve`).
Delivery is at least once: a delivery is claimed for `claim_s` before it is sent, so a process
that dies mid-request leaves it due again; receivers deduplicate on `webhook-id`. Every
`TETHER_WEBHOOK_PRUNE_INTERVAL_S` it also deletes finished deliveries and events older than
`TETHER_WEBHOOK_RETENTION_DAYS` (the outbox would otherwise grow forever).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from datetime import timedelta

import httpx2

from tether.outages import OutageLog
from tether.settings import Settings
from tether.store.repository import Store
from tether.store.webhooks import OPERATOR_TENANT, DueDelivery, Pruned, WebhookDeliveryRecord
from tether.webhooks import signing
from tether.webhooks.backoff import Backoff
from tether.webhooks.destinations import DestinationPolicy, DestinationRefused

log = logging.getLogger("tether.webhooks")

USER_AGENT = "Tether-Webhooks/1"
_BATCH = 50
_ANYWHERE = DestinationPolicy(allow_private=True)


def envelope(event_id: str, type: str, timestamp: str, data: dict[str, object]) -> bytes:
    """The body every delivery of an event carries (Standard Webhooks' `type`, `timestamp`, `data`)."""
    document = {"id": event_id, "type": type, "timestamp": timestamp, "data": data}
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


class Dispatcher:
    def __init__(self, store: Store, settings: Settings, *, http: httpx2.AsyncClient | None = None) -> None:
        self.store = store
        self.policy = DestinationPolicy.of(settings.webhook_allow_private, settings.webhook_allow_cidrs)
        self._operator_url = settings.alert_webhook_url
        """The operator put this URL in the environment: it may be internal (an Alertmanager relay),
        like a network listed in TETHER_WEBHOOK_ALLOW_CIDRS. It is still resolved once and pinned."""
        self.backoff = Backoff(
            initial_s=settings.webhook_backoff_s,
            max_s=settings.webhook_backoff_max_s,
            max_attempts=settings.webhook_max_attempts,
        )
        self.poll_s = settings.webhook_poll_s
        self.retention = timedelta(days=settings.webhook_retention_days)
        self.prune_interval_s = settings.webhook_prune_interval_s
        self._pruned_at: float | None = None
        self.claim_s = settings.webhook_timeout_s * 3
        """A claimed delivery is due again after this long (its sender must have died)."""
        self._http = http or httpx2.AsyncClient(
            timeout=settings.webhook_timeout_s, follow_redirects=False, trust_env=False
        )
        self._owns_http = http is None
        self._outage = OutageLog(log, "sending webhooks")

    async def relay(self) -> int:
        """Fan every undispatched outbox event out to its endpoints; returns deliveries created."""
        return await self.store.webhooks.fan_out(await self.store.webhooks.pending_events(_BATCH))

    async def send_due(self) -> list[WebhookDeliveryRecord]:
        """Make one attempt at every due delivery (concurrently); returns their new state."""
        due = await self.store.webhooks.claim_due(limit=_BATCH, claim_s=self.claim_s)
        return list(await asyncio.gather(*(self.attempt(item) for item in due)))

    async def send_now(self, delivery_id: str) -> WebhookDeliveryRecord | None:
        """Attempt one delivery now if it is due (None: another sender holds it)."""
        due = await self.store.webhooks.claim_due(limit=1, claim_s=self.claim_s, only=delivery_id)
        return await self.attempt(due[0]) if due else None

    async def tick(self) -> list[WebhookDeliveryRecord]:
        await self.relay()
        return await self.send_due()

    async def prune_if_due(self) -> Pruned | None:
        """Apply the retention when the last prune of this process is `prune_interval_s` old (or
        none was made yet); None when it is not due."""
        now = time.monotonic()
        if self._pruned_at is not None and now - self._pruned_at < self.prune_interval_s:
            return None
        self._pruned_at = now
        pruned = await self.store.webhooks.prune(older_than=self.retention)
        if pruned.deliveries or pruned.events or pruned.callbacks:
            log.info(
                "pruned webhook history older than %s",
                self.retention,
                extra={
                    "deliveries": pruned.deliveries,
                    "events": pruned.events,
                    "callbacks": pruned.callbacks,
                },
            )
        return pruned

    async def attempt(self, due: DueDelivery) -> WebhookDeliveryRecord:
        """One signed POST; the outcome decides: delivered, due again after a backoff, or dead."""
        webhooks = self.store.webhooks
        endpoint, event = due.endpoint, due.event
        if endpoint.disabled_at is not None:
            return await webhooks.record_attempt(
                due.delivery.id, status="dead", status_code=None, error="the endpoint was removed"
            )
        body = envelope(event.id, event.type, event.created_at.isoformat(), event.data)
        status_code: int | None = None
        try:
            trusted = endpoint.tenant_id == OPERATOR_TENANT and endpoint.url == self._operator_url
            target = await (_ANYWHERE if trusted else self.policy).resolve(endpoint.url)
            headers = signing.headers(endpoint.secret, event.id, int(webhooks.now().timestamp()), body)
            headers.update({"host": target.host_header(), "user-agent": USER_AGENT})
            https = target.url.lower().startswith("https:")
            response = await self._http.post(
                target.connect_url(),
                content=body,
                headers=headers,
                extensions={"sni_hostname": target.host} if https else None,
            )
            status_code = response.status_code
            if 200 <= status_code < 300:
                return await webhooks.record_attempt(
                    due.delivery.id, status="succeeded", status_code=status_code, error=None
                )
            error = f"HTTP {status_code}: {response.text[:200]}"
        except DestinationRefused as exc:
            error = str(exc)
        except httpx2.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        attempts = due.delivery.attempts + 1
        retry_at = self.backoff.next_attempt(attempts, webhooks.now())
        if retry_at is None:
            log.warning(
                "webhook delivery dead after %d attempts",
                attempts,
                extra={"delivery_id": due.delivery.id, "endpoint_id": endpoint.id, "error": error},
            )
            return await webhooks.record_attempt(
                due.delivery.id, status="dead", status_code=status_code, error=error
            )
        return await webhooks.record_attempt(
            due.delivery.id, status="pending", status_code=status_code, error=error, next_attempt_at=retry_at
        )

    async def run_forever(self) -> None:
        """Relay and send until cancelled; a database outage is logged once and waited out."""
        try:
            while True:
                try:
                    busy = await self.tick()
                    await self.prune_if_due()
                except Exception as exc:
                    self._outage.failed(exc)
                    busy = []
                else:
                    self._outage.succeeded()
                if len(busy) < _BATCH:  # a full batch means more may be due: go again at once
                    await asyncio.sleep(self.poll_s)
        finally:
            await self.close()

    async def close(self) -> None:
        if self._owns_http:
            with contextlib.suppress(Exception):
                await self._http.aclose()
