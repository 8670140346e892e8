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
    worker_id: str = Field(
        default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
    )
