"""Everything observability one process runs, built once from the settings: tracing, metrics, the
run loop's observer and the /metrics rendering. Give `telemetry.observer` to the `Runtime`."""

from __future__ import annotations

import asyncio
from wsgiref.simple_server import WSGIServer

from opentelemetry.sdk.trace.export import SpanExporter

from tether.observe.content import ContentCapture
from tether.observe.logs import Redactor, secret_env_names, secrets_from_environment
from tether.observe.metrics import DatabaseGauges, Metrics
from tether.observe.observer import TelemetryObserver
from tether.observe.online_metrics import OnlineEvalGauges
from tether.observe.tracing import Tracing
from tether.settings import Settings
from tether.store.records import ReleaseRecord
from tether.store.repository import Store, utc_now


class Telemetry:
    def __init__(self, store: Store, settings: Settings, *, exporter: SpanExporter | None = None) -> None:
        self.metrics = Metrics()
        self.tracing = (
            Tracing(
                exporter=exporter,
                project=settings.trace_project,
                export_timeout_s=settings.otlp_timeout_s,
                flush_timeout_s=settings.otlp_flush_timeout_s,
            )
            if settings.tracing
            else None
        )
        content = (
            ContentCapture(
                Redactor(secrets_from_environment(extra_names=secret_env_names(settings.log_secret_env))),
                max_chars=settings.trace_content_max_chars,
            )
            if settings.trace_content
            else None
        )
        self.observer = TelemetryObserver(store, tracing=self.tracing, metrics=self.metrics, content=content)
        self.gauges = DatabaseGauges(store.telemetry)
        self.metrics.registry.register(self.gauges)
        self.online_gauges = OnlineEvalGauges(store)
        self.metrics.registry.register(self.online_gauges)
        self._server: WSGIServer | None = None

    def prepare(self, release: ReleaseRecord) -> None:
        """Create the release's known metric series at zero (call at start-up, before any run)."""
        self.metrics.prepare(release)

    async def render_metrics(self) -> bytes:
        """The Prometheus exposition: this process's counters plus deployment-wide gauges read now."""
        now = utc_now()
        await self.gauges.refresh(now)
        await self.online_gauges.refresh(now)
        return self.metrics.render()

    def serve_metrics(self, port: int, host: str = "127.0.0.1") -> None:
        """A plain /metrics endpoint for processes without the API (`tether worker --metrics-port`).

        It shows this process's counters; the gauges read from the database come from the API.
        """
        from prometheus_client import start_http_server

        self._server, _ = start_http_server(port, addr=host, registry=self.metrics.registry)

    async def close(self) -> None:
        """Store the spans still collected and send what OTLP has batched (bounded wait)."""
        await self.observer.flush()
        if self.tracing is not None:
            await asyncio.to_thread(self.tracing.shutdown)
        if self._server is not None:
            self._server.shutdown()
