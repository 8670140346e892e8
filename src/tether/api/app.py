"""The FastAPI application: state built in the lifespan, routers mounted, errors made into clean JSON."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, DBAPIError

from tether.api.body_limit import BodyLimitMiddleware
from tether.api.deps import ServiceState
from tether.api.disconnects import ClientDisconnects
from tether.api.embedded_worker import ThreadedWorker, WorkerThreadOptions
from tether.api.errors import database_unavailable
from tether.api.key_cache import VerifiedKeys
from tether.api.limits import Limiter
from tether.api.live_link import LinkedLiveConfig
from tether.api.routes import (
    approvals,
    controls,
    cost,
    experiments,
    flags,
    health,
    incidents,
    observe,
    online_eval,
    releases,
    runs,
    threads,
    webhooks,
)
from tether.api.routes import rollout as rollout_routes
from tether.api.session_secret import resolve as resolve_session_secret
from tether.incidents.service import alert_hook, rollback_hook
from tether.observe.alerts import AlertEvaluator, rules_for
from tether.observe.http import AccessLog
from tether.observe.service import Telemetry
from tether.rollout.controller import CanaryController
from tether.rollout.events import RollbackHook, on_rollback, remove_rollback_hook
from tether.rollout.releases import snapshot_of, working_copy_release
from tether.rollout.service import Rollout
from tether.rollout.wiring import install as install_rollout
from tether.runtime.notify import notifier_for
from tether.runtime.service import Runtime
from tether.settings import Settings
from tether.store import db
from tether.store.faults import is_transient
from tether.store.repository import ConflictError, NotFoundError, Store

log = logging.getLogger("tether.api")


@dataclass(frozen=True)
class ServiceOptions:
    """How to run the service: which project and release, and whether a worker runs in-process."""

    project: Path
    release: str | None = None
    embedded_worker_concurrency: int = 0
    settings: Settings = field(default_factory=Settings)
    session_secret: str | None = None
    """Signs dashboard sessions; resolved at startup when not given (see `resolve_session_secret`)."""

    def resolve_session_secret(self) -> str:
        """The configured or generated session secret, or a `ConfigError` saying what to set.

        `tether serve`/`api` call this before starting the server, so a refusal is one clear line.
        """
        return resolve_session_secret(self.settings.ui_session_secret, self.database_url)

    @property
    def database_url(self) -> str:
        return self.settings.database_url or db.default_url(self.project)

    @property
    def data_dir(self) -> Path:
        return Path(self.settings.data_dir) if self.settings.data_dir else self.project / "data"


def create_app(options: ServiceOptions) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings = options.settings
        session_secret = options.session_secret or options.resolve_session_secret()
        notifier = notifier_for(settings.redis_url)
        await notifier.start()
        store = await Store.open(options.database_url, on_event=notifier.publish)
        worker: ThreadedWorker | None = None
        telemetry = Telemetry(store, settings)
        app.state.telemetry = telemetry
        alert_task: asyncio.Task[None] | None = None
        canary_task: asyncio.Task[None] | None = None
        live: LinkedLiveConfig | None = None
        incident_on_rollback: RollbackHook | None = None
        try:
            release = (
                await store.get_release(options.release)
                if options.release
                else await working_copy_release(store, options.project)
            )
            telemetry.prepare(release)  # its counters exist at 0 before the first run, for rate()
            # The embedded worker has a live configuration of its own: changes made here reach it at once.
            live = LinkedLiveConfig(store, redis_url=settings.redis_url, poll_s=settings.live_poll_s)
            runtime = Runtime(
                store, settings, data_dir=options.data_dir, observer=telemetry.observer, live=live
            )
            config = snapshot_of(release).parsed_config()
            decider = install_rollout(runtime)  # flags and experiment arms of every run submitted here
            # Registered before the first load, so the deployment is in force for the first request.
            rollout = Rollout(store, live)
            rollout.experiments = decider.claims  # experiments between releases split the live share
            incident_on_rollback = on_rollback(rollback_hook(store))  # a rollback opens an incident
            keys = VerifiedKeys(store, live, ttl_s=settings.api_key_cache_s)  # before the first load
            await live.start()
            alerts = AlertEvaluator(
                store,
                rules_for(config),
                budgets=config.budget_alerts,
                on_fire=alert_hook(store),  # a firing alert opens an incident (once across API nodes)
            )
            alert_task = asyncio.create_task(alerts.run_forever(settings.alert_interval_s))
            canary_task = asyncio.create_task(
                CanaryController(rollout, owner=settings.worker_id).run_forever(settings.rollout_interval_s)
            )
            limiter = Limiter(
                requests_per_minute_per_key=settings.requests_per_minute_per_key,
                runs_per_minute_per_user=settings.runs_per_minute_per_user,
                user_daily_budget_usd=settings.user_daily_budget_usd,
                tenant_monthly_budget_usd=settings.tenant_monthly_budget_usd,
                redis_url=settings.redis_url,
                auth_failures_per_minute=settings.auth_failures_per_minute,
            )
            if options.embedded_worker_concurrency > 0:
                # On its own thread and loop, so creates never wait behind its step work here.
                worker = ThreadedWorker(
                    WorkerThreadOptions(
                        database_url=options.database_url,
                        settings=settings,
                        project=options.project,
                        data_dir=options.data_dir,
                        concurrency=options.embedded_worker_concurrency,
                    ),
                    telemetry=telemetry,
                    notifier=notifier,
                )
                await worker.start()
                live.follow(worker.refresh_live)
            app.state.tether = ServiceState(
                store,
                runtime,
                release,
                settings,
                limiter,
                notifier,
                worker,
                session_secret,
                rollout,
                keys,
            )
            yield
        finally:
            if incident_on_rollback is not None:
                remove_rollback_hook(incident_on_rollback)
            if worker is not None:
                if live is not None:
                    live.unfollow(worker.refresh_live)
                await worker.stop()
            for task in (alert_task, canary_task):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            if live is not None:
                await live.close()
            await telemetry.close()
            await notifier.close()
            await store.close()

    app = FastAPI(
        title="Tether",
        version="1",
        summary="Run LLM agents in production: durable runs, approvals, budgets.",
        lifespan=lifespan,
    )
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=options.settings.max_body_bytes)
    app.add_middleware(AccessLog)
    app.add_middleware(ClientDisconnects)  # added last, so it wraps the others: a closed stream is no error
    routers = (runs, approvals, threads, releases, health, observe, cost, webhooks, online_eval)
    for module in (*routers, rollout_routes, flags, experiments, controls, incidents):
        app.include_router(module.router)
    # The operator dashboard (/ui/), behind the same API keys. Imported here: ui builds on api.
    from tether.ui import mount as mount_dashboard

    mount_dashboard(app)

    @app.exception_handler(NotFoundError)
    async def not_found(_: Request, exc: NotFoundError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(ConflictError)
    async def conflict(_: Request, exc: ConflictError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        # Only where and why: echoing the input back could be huge, or not even representable in JSON.
        errors = [
            {"loc": list(error.get("loc", ())), "msg": str(error.get("msg", "")), "type": error.get("type")}
            for error in exc.errors()
        ]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(DataError)
    async def unstorable(request: Request, exc: DataError) -> JSONResponse:
        log.warning("database refused a value on %s %s: %s", request.method, request.url.path, exc.orig)
        detail = "a value in this request cannot be stored or searched"
        return JSONResponse({"detail": detail}, status_code=400)

    @app.exception_handler(DBAPIError)
    async def database_error(request: Request, exc: DBAPIError) -> JSONResponse:
        # Handled here rather than by the catch-all below, which Starlette re-raises into the
        # server's log after answering: a traceback per request during an outage.
        if is_transient(exc):  # an outage, not a bug: tell the client to come back
            return database_unavailable(exc)
        log.error("database error on %s %s", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"detail": "internal error; the server log has the details"}, status_code=500)

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> JSONResponse:
        if is_transient(exc):  # an outage, not a bug: tell the client to come back
            return database_unavailable(exc)
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal error; the server log has the details"}, status_code=500)

    return app
