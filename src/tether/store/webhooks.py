"""Reads and writes of webhooks: endpoints, the event outbox, and deliveries.

`record_event` appends to the outbox inside the caller's transaction (a run's end, an approval,
an alert), so an event exists exactly when its state change committed. The relay (`fan_out`)
turns each event into one delivery per subscribed endpoint; senders `claim_due` deliveries with a
short claim that doubles as a lease, so a sender that dies mid-request is retried, never lost.
`Store.webhooks` hands one out.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import uuid
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Select, delete, exists, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from tether.store.aggregate import Aggregate
from tether.store.tables import WebhookDeliveryRow, WebhookEndpointRow, WebhookEventRow

DeliveryStatus = Literal["pending", "succeeded", "dead"]
OPERATOR_TENANT = "*"
"""The tenant of operator-level endpoints (they receive the matching events of every tenant) and of
events that belong to no tenant (rollout), which only operator-level endpoints receive."""
FROM_SETTINGS = "TETHER_ALERT_WEBHOOK_URL"
"""The description of the operator-level endpoint the setting keeps (one at a time)."""
Executor = AsyncConnection | AsyncSession


class WebhookEndpointRecord(BaseModel):
    model_config = ConfigDict(from_attributes=True, frozen=True)

    id: str
    tenant_id: str
    url: str
    secret: str
    events: list[str]
    run_id: str | None
    description: str | None
    created_by: str
    created_at: datetime
    disabled_at: datetime | None


class WebhookEventRecord(BaseModel):
    model_config = ConfigDict(from_attributes=True, frozen=True)

    id: str
    type: str
    tenant_id: str
    run_id: str | None
    data: dict[str, Any]
    created_at: datetime
    dispatched_at: datetime | None


class WebhookDeliveryRecord(BaseModel):
    model_config = ConfigDict(from_attributes=True, frozen=True)

    id: str
    event_id: str
    endpoint_id: str
    tenant_id: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    delivered_at: datetime | None


class Pruned(BaseModel):
    """What one prune deleted."""

    model_config = ConfigDict(frozen=True)

    deliveries: int = 0
    events: int = 0
    callbacks: int = 0
    """Per-run callback endpoints whose deliveries are all gone."""


_Pruneable = WebhookDeliveryRow | WebhookEventRow | WebhookEndpointRow
_PRUNE_BATCH = 500
"""Rows deleted per transaction: a big backlog is pruned in short writes, never one long lock."""


class DueDelivery(BaseModel):
    """A claimed delivery with everything needed to send it."""

    model_config = ConfigDict(frozen=True)

    delivery: WebhookDeliveryRecord
    endpoint: WebhookEndpointRecord
    event: WebhookEventRecord


def new_secret() -> str:
    """A signing secret in the Standard Webhooks form: `whsec_` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


async def record_event(
    executor: Executor,
    *,
    type: str,
    tenant_id: str,
    data: dict[str, Any],
    now: datetime,
    run_id: str | None = None,
) -> str:
    """Append an event to the outbox in the caller's transaction; its id is the stable event id
    receivers deduplicate on (the `webhook-id` header of every attempt of every delivery)."""
    values = event_values(type=type, tenant_id=tenant_id, data=data, now=now, run_id=run_id)
    await executor.execute(insert(WebhookEventRow).values(**values))
    return str(values["id"])


def event_values(
    *, type: str, tenant_id: str, data: dict[str, Any], now: datetime, run_id: str | None = None
) -> dict[str, Any]:
    """The outbox row of one event, with its new id (for callers that insert it themselves)."""
    return {
        "id": _id("evt"),
        "type": type,
        "tenant_id": tenant_id,
        "run_id": run_id,
        "data": data,
        "created_at": now,
    }


class WebhookStore(Aggregate):
    # -- endpoints ------------------------------------------------------------------------------

    async def add_endpoint(
        self,
        *,
        tenant_id: str,
        url: str,
        events: list[str],
        created_by: str,
        description: str | None = None,
        run_id: str | None = None,
    ) -> WebhookEndpointRecord:
        row = WebhookEndpointRow(
            id=_id("whe"),
            tenant_id=tenant_id,
            url=url,
            secret=new_secret(),
            events=sorted(set(events)),
            run_id=run_id,
            description=description,
            created_by=created_by,
            created_at=self._now(),
        )
        async with self._writes.begin() as session:
            session.add(row)
        return WebhookEndpointRecord.model_validate(row)

    async def get_endpoint(self, endpoint_id: str, *, tenant_id: str | None = None) -> WebhookEndpointRecord:
        async with self._sessions() as session:
            row = await session.get(WebhookEndpointRow, endpoint_id)
        if row is None or (tenant_id is not None and row.tenant_id != tenant_id):
            raise LookupError(f"no webhook endpoint {endpoint_id!r}")
        return WebhookEndpointRecord.model_validate(row)

    async def list_endpoints(
        self, *, tenant_id: str | None = None, include_disabled: bool = False, include_callbacks: bool = False
    ) -> list[WebhookEndpointRecord]:
        query = select(WebhookEndpointRow).order_by(WebhookEndpointRow.created_at, WebhookEndpointRow.id)
        if tenant_id is not None:
            query = query.where(WebhookEndpointRow.tenant_id == tenant_id)
        if not include_disabled:
            query = query.where(WebhookEndpointRow.disabled_at.is_(None))
        if not include_callbacks:
            query = query.where(WebhookEndpointRow.run_id.is_(None))
        async with self._sessions() as session:
            rows = (await session.scalars(query)).all()
        return [WebhookEndpointRecord.model_validate(row) for row in rows]

    async def disable_endpoint(
        self, endpoint_id: str, *, tenant_id: str | None = None
    ) -> WebhookEndpointRecord:
        """Stop sending to an endpoint; its deliveries stay listed (and pending ones are not sent)."""
        await self.get_endpoint(endpoint_id, tenant_id=tenant_id)
        async with self._writes.begin() as session:
            await session.execute(
                update(WebhookEndpointRow)
                .where(WebhookEndpointRow.id == endpoint_id, WebhookEndpointRow.disabled_at.is_(None))
                .values(disabled_at=self._now())
            )
        return await self.get_endpoint(endpoint_id)

    async def keep_operator_endpoint(
        self, *, url: str | None, events: list[str], secret: str | None
    ) -> WebhookEndpointRecord | None:
        """Make the operator-level endpoint of `TETHER_ALERT_WEBHOOK_URL` match the setting: one
        endpoint for that URL (its id derived from the URL, so processes starting together agree),
        subscribed to `events`, signed with `secret` when one is given; an endpoint a previous
        value of the setting made is removed. With no URL, that endpoint is removed."""
        now = self._now()
        endpoint_id = "whe_op_" + hashlib.sha256(url.encode()).hexdigest()[:24] if url else None
        async with self._writes.begin() as session:
            await session.execute(
                update(WebhookEndpointRow)
                .where(
                    WebhookEndpointRow.tenant_id == OPERATOR_TENANT,
                    WebhookEndpointRow.description == FROM_SETTINGS,
                    WebhookEndpointRow.id != (endpoint_id or ""),
                    WebhookEndpointRow.disabled_at.is_(None),
                )
                .values(disabled_at=now)
            )
        if url is None or endpoint_id is None:
            return None
        try:
            async with self._writes.begin() as session:
                session.add(
                    WebhookEndpointRow(
                        id=endpoint_id,
                        tenant_id=OPERATOR_TENANT,
                        url=url,
                        secret=secret or new_secret(),
                        events=sorted(set(events)),
                        run_id=None,
                        description=FROM_SETTINGS,
                        created_by="settings",
                        created_at=now,
                    )
                )
        except IntegrityError:  # it exists (made earlier, or by a process starting at the same time)
            changes: dict[str, Any] = {"events": sorted(set(events)), "disabled_at": None}
            if secret:
                changes["secret"] = secret
            async with self._writes.begin() as session:
                await session.execute(
                    update(WebhookEndpointRow).where(WebhookEndpointRow.id == endpoint_id).values(changes)
                )
        return await self.get_endpoint(endpoint_id)

    # -- events and fan-out ---------------------------------------------------------------------

    async def publish(
        self, *, type: str, tenant_id: str, data: dict[str, Any], run_id: str | None = None
    ) -> str:
        """Record an event in a transaction of its own (for callers with no state change to share one
        with, such as `tether webhook test`)."""
        async with self._writes.begin() as session:
            return await record_event(
                session, type=type, tenant_id=tenant_id, data=data, now=self._now(), run_id=run_id
            )

    async def send_test(self, endpoint_id: str, data: dict[str, Any]) -> WebhookDeliveryRecord:
        """A `webhook.test` event addressed to one endpoint, whatever it subscribed to."""
        endpoint = await self.get_endpoint(endpoint_id)
        now = self._now()
        async with self._writes.begin() as session:
            event_id = await record_event(
                session, type="webhook.test", tenant_id=endpoint.tenant_id, data=data, now=now
            )
            await session.execute(
                update(WebhookEventRow).where(WebhookEventRow.id == event_id).values(dispatched_at=now)
            )
            delivery = _new_delivery(event_id, endpoint.id, endpoint.tenant_id, now)
            await session.execute(insert(WebhookDeliveryRow).values(delivery))
        return await self.get_delivery(delivery["id"])

    async def pending_events(self, limit: int = 100) -> list[WebhookEventRecord]:
        query = (
            select(WebhookEventRow)
            .where(WebhookEventRow.dispatched_at.is_(None))
            .order_by(WebhookEventRow.created_at, WebhookEventRow.id)
            .limit(limit)
        )
        async with self._sessions() as session:
            rows = (await session.scalars(query)).all()
        return [WebhookEventRecord.model_validate(row) for row in rows]

    async def fan_out(self, events: list[WebhookEventRecord]) -> int:
        """Create one pending delivery per endpoint subscribed to each event, in one transaction;
        delete the events nobody wants. Returns the deliveries created.

        The conditional update takes each event once even with several relays running: an event
        another relay took first is skipped here."""
        if not events:
            return 0
        now = self._now()
        async with self._writes.begin() as session:
            taken = await session.execute(
                update(WebhookEventRow)
                .where(
                    WebhookEventRow.id.in_([e.id for e in events]), WebhookEventRow.dispatched_at.is_(None)
                )
                .values(dispatched_at=now)
                .returning(WebhookEventRow.id)
            )
            mine = set(taken.scalars().all())
            tenants = {e.tenant_id for e in events if e.id in mine}
            if not tenants:
                return 0
            query = select(WebhookEndpointRow).where(
                WebhookEndpointRow.tenant_id.in_([*tenants, OPERATOR_TENANT]),
                WebhookEndpointRow.disabled_at.is_(None),
            )
            endpoints = list((await session.scalars(query)).all())
            deliveries: list[dict[str, Any]] = []
            unwanted: list[str] = []
            for event in (e for e in events if e.id in mine):
                wanted = [
                    endpoint
                    for endpoint in endpoints
                    if endpoint.tenant_id in (event.tenant_id, OPERATOR_TENANT)
                    and endpoint.run_id in (None, event.run_id)
                    and _subscribed(endpoint.events, event.type)
                ]
                if not wanted:
                    unwanted.append(event.id)
                # An operator-level delivery belongs to the operator tenant: never listed (nor
                # replayable) by the tenant whose event it carries.
                deliveries += [_new_delivery(event.id, e.id, e.tenant_id, now) for e in wanted]
            if unwanted:
                await session.execute(delete(WebhookEventRow).where(WebhookEventRow.id.in_(unwanted)))
            if deliveries:
                await session.execute(insert(WebhookDeliveryRow), deliveries)
        return len(deliveries)

    async def get_event(self, event_id: str) -> WebhookEventRecord:
        async with self._sessions() as session:
            row = await session.get(WebhookEventRow, event_id)
        if row is None:
            raise LookupError(f"no webhook event {event_id!r}")
        return WebhookEventRecord.model_validate(row)

    # -- deliveries -----------------------------------------------------------------------------

    async def claim_due(self, *, limit: int, claim_s: float, only: str | None = None) -> list[DueDelivery]:
        """Pending deliveries whose time has come, each pushed `claim_s` into the future as it is taken:
        no other sender takes it meanwhile, and if this one dies it is due again afterwards.
        `only` claims that one delivery (`tether webhook test` sends its own at once).

        One conditional UPDATE takes the batch; a delivery another sender took in between no longer
        matches it, so it is never sent twice at once."""
        now = self._now()
        query = (
            select(WebhookDeliveryRow.id)
            .where(WebhookDeliveryRow.status == "pending", WebhookDeliveryRow.next_attempt_at <= now)
            .order_by(WebhookDeliveryRow.next_attempt_at)
            .limit(limit)
        )
        if only is not None:
            query = query.where(WebhookDeliveryRow.id == only)
        async with self._sessions() as session:
            candidates = list((await session.scalars(query)).all())
        if not candidates:
            return []
        async with self._writes.begin() as session:
            taken = await session.execute(
                update(WebhookDeliveryRow)
                .where(
                    WebhookDeliveryRow.id.in_(candidates),
                    WebhookDeliveryRow.status == "pending",
                    WebhookDeliveryRow.next_attempt_at <= now,
                )
                .values(next_attempt_at=now + timedelta(seconds=claim_s), updated_at=now)
                .returning(WebhookDeliveryRow.id)
            )
            claimed = set(taken.scalars().all())
        if not claimed:
            return []
        rows = (
            select(WebhookDeliveryRow, WebhookEndpointRow, WebhookEventRow)
            .join(WebhookEndpointRow, WebhookEndpointRow.id == WebhookDeliveryRow.endpoint_id)
            .join(WebhookEventRow, WebhookEventRow.id == WebhookDeliveryRow.event_id)
            .where(WebhookDeliveryRow.id.in_(claimed))
            .order_by(WebhookDeliveryRow.created_at)
        )
        async with self._sessions() as session:
            found = (await session.execute(rows)).all()
        return [
            DueDelivery(
                delivery=WebhookDeliveryRecord.model_validate(delivery),
                endpoint=WebhookEndpointRecord.model_validate(endpoint),
                event=WebhookEventRecord.model_validate(event),
            )
            for delivery, endpoint, event in found
        ]

    async def record_attempt(
        self,
        delivery_id: str,
        *,
        status: DeliveryStatus,
        status_code: int | None,
        error: str | None,
        next_attempt_at: datetime | None = None,
    ) -> WebhookDeliveryRecord:
        """Store one attempt's outcome: delivered, due again at `next_attempt_at`, or dead."""
        now = self._now()
        values: dict[str, Any] = {
            "status": status,
            "attempts": WebhookDeliveryRow.attempts + 1,
            "last_status_code": status_code,
            "last_error": error,
            "updated_at": now,
        }
        if status == "succeeded":
            values["delivered_at"] = now
        if next_attempt_at is not None:
            values["next_attempt_at"] = next_attempt_at
        async with self._writes.begin() as session:
            row = (
                await session.execute(
                    update(WebhookDeliveryRow)
                    .where(WebhookDeliveryRow.id == delivery_id)
                    .values(values)
                    .returning(*WebhookDeliveryRow.__table__.columns)
                )
            ).one()
        return WebhookDeliveryRecord.model_validate(row._mapping)

    async def get_delivery(self, delivery_id: str, *, tenant_id: str | None = None) -> WebhookDeliveryRecord:
        async with self._sessions() as session:
            row = await session.get(WebhookDeliveryRow, delivery_id)
        if row is None or (tenant_id is not None and row.tenant_id != tenant_id):
            raise LookupError(f"no webhook delivery {delivery_id!r}")
        return WebhookDeliveryRecord.model_validate(row)

    async def list_deliveries(
        self,
        *,
        tenant_id: str | None = None,
        endpoint_id: str | None = None,
        status: DeliveryStatus | None = None,
        limit: int = 100,
    ) -> list[tuple[WebhookDeliveryRecord, str]]:
        """Deliveries newest first, each with its event type."""
        query = (
            select(WebhookDeliveryRow, WebhookEventRow.type)
            .join(WebhookEventRow, WebhookEventRow.id == WebhookDeliveryRow.event_id)
            .order_by(WebhookDeliveryRow.created_at.desc(), WebhookDeliveryRow.id.desc())
            .limit(limit)
        )
        if tenant_id is not None:
            query = query.where(WebhookDeliveryRow.tenant_id == tenant_id)
        if endpoint_id is not None:
            query = query.where(WebhookDeliveryRow.endpoint_id == endpoint_id)
        if status is not None:
            query = query.where(WebhookDeliveryRow.status == status)
        async with self._sessions() as session:
            rows = (await session.execute(query)).all()
        return [(WebhookDeliveryRecord.model_validate(row[0]), str(row[1])) for row in rows]

    async def replay(self, delivery_id: str, *, tenant_id: str | None = None) -> WebhookDeliveryRecord:
        """Send a delivery again now, with a fresh set of retries (same event id: receivers dedupe)."""
        await self.get_delivery(delivery_id, tenant_id=tenant_id)
        now = self._now()
        async with self._writes.begin() as session:
            await session.execute(
                update(WebhookDeliveryRow)
                .where(WebhookDeliveryRow.id == delivery_id)
                .values(status="pending", attempts=0, next_attempt_at=now, updated_at=now)
            )
        return await self.get_delivery(delivery_id)

    # -- retention ------------------------------------------------------------------------------

    async def prune(self, *, older_than: timedelta) -> Pruned:
        """Delete what is finished and older than `older_than`: delivered and dead deliveries (by
        their last attempt), then dispatched events no delivery refers to any more, then per-run
        callback endpoints left with no delivery. Pending deliveries and their events are never
        touched, however old; a dead letter pruned here can no longer be replayed."""
        before = self._now() - older_than
        done = WebhookDeliveryRow.status.in_(("succeeded", "dead"))
        deliveries = await self._delete_batches(
            WebhookDeliveryRow,
            select(WebhookDeliveryRow.id).where(done, WebhookDeliveryRow.updated_at < before),
            WebhookDeliveryRow.id,
        )
        referenced = exists().where(WebhookDeliveryRow.event_id == WebhookEventRow.id)
        events = await self._delete_batches(
            WebhookEventRow,
            select(WebhookEventRow.id).where(
                WebhookEventRow.dispatched_at.is_not(None),
                WebhookEventRow.dispatched_at < before,
                ~referenced,
            ),
            WebhookEventRow.id,
        )
        used = exists().where(WebhookDeliveryRow.endpoint_id == WebhookEndpointRow.id)
        callbacks = await self._delete_batches(
            WebhookEndpointRow,
            select(WebhookEndpointRow.id).where(
                WebhookEndpointRow.run_id.is_not(None), WebhookEndpointRow.created_at < before, ~used
            ),
            WebhookEndpointRow.id,
        )
        return Pruned(deliveries=deliveries, events=events, callbacks=callbacks)

    async def _delete_batches(
        self, table: type[_Pruneable], ids: Select[str], column: InstrumentedAttribute[str]
    ) -> int:
        total = 0
        while True:
            async with self._writes.begin() as session:
                batch = list((await session.scalars(ids.limit(_PRUNE_BATCH))).all())
                if batch:
                    await session.execute(delete(table).where(column.in_(batch)))
            total += len(batch)
            if len(batch) < _PRUNE_BATCH:
                return total


def _subscribed(events: list[Any], type: str) -> bool:
    """`*` takes everything; `run.*` every run event; otherwise the exact type."""
    family = type.split(".", 1)[0] + ".*"
    return any(pattern in ("*", family, type) for pattern in events)


def _new_delivery(event_id: str, endpoint_id: str, tenant_id: str, now: datetime) -> dict[str, Any]:
    return {
        "id": _id("whd"),
        "event_id": event_id,
        "endpoint_id": endpoint_id,
        "tenant_id": tenant_id,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
        "updated_at": now,
    }
