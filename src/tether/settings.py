"""Process-level settings from the environment (`TETHER_*`); agent behaviour lives in tether.toml."""

from __future__ import annotations

import os
import socket
import uuid

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
    user_daily_budget_usd: float | None = Field(default=None, gt=0)
    tenant_monthly_budget_usd: float | None = Field(default=None, gt=0)
    max_input_chars: int = Field(default=32_000, gt=0)
    max_body_bytes: int = Field(default=1_000_000, gt=0)
    worker_poll_s: float = Field(default=0.2, gt=0)
    worker_fresh_s: float = Field(default=30.0, gt=0)
    """/readyz needs a worker heartbeat at most this old."""
    worker_id: str = Field(
        default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
    )
