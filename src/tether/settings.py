"""Process-level settings from the environment (`TETHER_*`); agent behaviour lives in tether.toml."""

from __future__ import annotations

import os
import socket
import uuid
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TETHER_", extra="ignore")

    database_url: str | None = None
    lease_seconds: float = Field(default=30.0, gt=0)
    model_backoff_s: float = Field(default=0.5, ge=0)
    data_dir: str | None = None
    redis_url: str | None = None
    requests_per_minute_per_key: int = Field(default=600, gt=0)
    runs_per_minute_per_user: int = Field(default=60, gt=0)
    auth_failures_per_minute: int = Field(default=20, gt=0)
    """Wrong API keys and failed dashboard logins one client may make per minute before getting 429."""
    api_key_cache_s: float = Field(default=30.0, ge=0)
    """How long an API process trusts a verified key without reading it again (0: read on every
    request). A revocation empties every process's cache within the live-configuration bound."""
    user_daily_budget_usd: float | None = Field(default=None, gt=0)
    tenant_monthly_budget_usd: float | None = Field(default=None, gt=0)
    max_input_chars: int = Field(default=32_000, gt=0)
    max_body_bytes: int = Field(default=1_000_000, gt=0)
    http_header_timeout_s: float = Field(default=10.0, gt=0)
    """A client must send a whole request line and headers within this many seconds, or is cut off."""
    http_keep_alive_s: int = Field(default=5, gt=0)
    """An idle keep-alive connection is closed after this many seconds (uvicorn's timeout_keep_alive)."""
    worker_poll_s: float = Field(default=0.2, gt=0)
    live_poll_s: float = Field(default=0.25, gt=0)
    """How often every process checks whether deployments, controls or flags changed (without Redis,
    a change reaches every node within this plus one reload)."""
    worker_fresh_s: float = Field(default=30.0, gt=0)
    """/readyz needs a worker heartbeat at most this old."""
    worker_grace_s: float = Field(default=30.0, gt=0)
    """On SIGTERM a worker exits within this long; calls still running by then are abandoned."""
    ui_session_secret: str | None = None
    """Signs dashboard sessions; required (the same value on every API node) unless the database is SQLite."""
    four_eyes: bool = True
    """High-risk tool calls need an approver other than the run's own key and user."""
    ui_session_hours: float = Field(default=12.0, gt=0)
    """How long a dashboard login lasts."""
    # Observability (docs/observability.md)
    tracing: bool = True
    """Record an OpenTelemetry trace per run (stored, and exported if OTEL_EXPORTER_OTLP_ENDPOINT is set)."""
    trace_content: bool = False
    """Record message text, tool arguments and tool results on spans (redacted like logs). Off: none."""
    trace_content_max_chars: int = Field(default=8_000, gt=0)
    """Longer captured values are cut to this many characters."""
    trace_project: str | None = None
    """The `openinference.project.name` resource attribute; unset: the agent's name."""
    otlp_timeout_s: float = Field(default=5.0, gt=0)
    """Longest one OTLP export may take, retries included (OTEL_EXPORTER_OTLP_TIMEOUT wins when set)."""
    otlp_flush_timeout_s: float = Field(default=1.0, ge=0)
    """How long a process waits at exit for OTLP to send what is queued before it drops the rest."""
    metrics_access: Literal["key", "localhost", "open"] = "key"
    """Who may read GET /metrics: a key with the admin or metrics scope, loopback clients, or anyone."""
    alert_webhook_url: str | None = None
    """An operator-level webhook endpoint: every tenant's `alert.*` and every `rollout.*` event is
    delivered here from the outbox, signed, retried and replayable (docs/webhooks.md)."""
    alert_webhook_secret: str | None = None
    """The `whsec_...` secret deliveries to `alert_webhook_url` are signed with; unset: generated
    once and shown by `tether webhook list --tenant '*' --json`."""
    operator_tenant: str = Field(default="default", min_length=1, max_length=200)
    """Operator keys of this tenant are global operators (every scope of every control); operator
    keys of any other tenant set and clear controls only for their own tenant."""
    alert_interval_s: float = Field(default=60.0, gt=0)
    """How often the API process evaluates the alert rules."""
    rollout_interval_s: float = Field(default=5.0, gt=0)
    """How often API processes and workers look at canaries in progress (one acts at a time)."""
    log_format: Literal["auto", "json", "console"] = "auto"
    """auto: JSON lines unless stderr is a terminal."""
    log_level: str | None = None
    """Unset: INFO for `tether serve`, `api` and `worker`, WARNING for one-shot commands."""
    log_secret_env: str = ""
    """Comma-separated environment variables whose values are scrubbed from logs (beyond *_API_KEY etc.)."""
    # Webhooks (docs/webhooks.md)
    webhook_allow_private: bool = False
    """Let webhooks reach loopback, private and link-local addresses (off: refused, even after DNS)."""
    webhook_allow_cidrs: str = ""
    """Comma-separated addresses or CIDRs webhooks may reach although internal (e.g. 10.1.2.0/24)."""
    webhook_max_attempts: int = Field(default=10, ge=1, le=50)
    """Attempts per delivery before it is dead-lettered (replay sends it again)."""
    webhook_backoff_s: float = Field(default=5.0, gt=0)
    """First retry delay; doubles each attempt, plus up to as much again of random jitter."""
    webhook_backoff_max_s: float = Field(default=3600.0, gt=0)
    """Longest wait between two attempts."""
    webhook_timeout_s: float = Field(default=10.0, gt=0)
    """A receiver must answer within this long, or the attempt fails and is retried."""
    webhook_poll_s: float = Field(default=1.0, gt=0)
    """How often a worker looks for new events and due deliveries."""
    webhook_retention_days: float = Field(default=30.0, gt=0)
    """Delivered and dead deliveries (and their events) older than this are deleted by workers."""
    webhook_prune_interval_s: float = Field(default=3600.0, gt=0)
    """How often a worker prunes old webhook deliveries and events."""
    # Online evaluation (docs/online-evaluation.md)
    online_eval_poll_s: float = Field(default=2.0, gt=0)
    """How often a worker looks for finished production runs to sample and score."""
    worker_id: str = Field(
        default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
    )
