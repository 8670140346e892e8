"""The secret that signs dashboard sessions: configured, or generated once and kept private.

With `TETHER_UI_SESSION_SECRET` set, every API process signs with it. Without it:

- on SQLite (the embedded shape: `tether serve`, or `tether api` on the same machine and file), a
  random secret is generated on first start and kept in `ui-session-secret` beside the database
  file, readable by its owner only (0600), so every process sharing that database shares it;
- on any other database (PostgreSQL), API processes may run on several machines, which cannot
  share a local file: the server refuses to start until the secret is configured.

The secret never lives in the database, so reading the database is not enough to forge a session.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from sqlalchemy.engine import make_url

from tether.agent.config import ConfigError

ENV = "TETHER_UI_SESSION_SECRET"
SECRET_FILE = "ui-session-secret"
MIN_LENGTH = 16


def resolve(configured: str | None, database_url: str) -> str:
    """The session secret for a server on this database, or a `ConfigError` saying what to set."""
    if configured is not None:
        if len(configured.strip()) < MIN_LENGTH:
            raise ConfigError(f"{ENV} is too short: use at least {MIN_LENGTH} random characters")
        return configured
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        raise ConfigError(
            f"{ENV} is not set: on {url.get_backend_name()} several API processes may serve the "
            f"dashboard, so set the same random value on every one (for example the output of "
            f"`python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
        )
    if not url.database or url.database == ":memory:":
        return secrets.token_urlsafe(32)  # a private in-memory database: one process, one secret
    return _from_file(Path(url.database).parent / SECRET_FILE)


def _from_file(path: Path) -> str:
    """Read the generated secret, or create it (0600, exclusively, so racing processes agree)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_private(path)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(secrets.token_urlsafe(32))
    return _read_private(path)


def _read_private(path: Path) -> str:
    info = path.lstat()
    if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
        raise ConfigError(f"{path} must be a regular file owned by this user; delete it to make a new one")
    if info.st_mode & 0o077:
        raise ConfigError(
            f"{path} is readable or writable by others (mode {stat.S_IMODE(info.st_mode):o}); "
            f"run `chmod 600 {path}` or delete it to make a new one"
        )
    secret = path.read_text(encoding="utf-8").strip()
    if len(secret) < MIN_LENGTH:
        raise ConfigError(f"{path} holds no usable secret; delete it to make a new one")
    return secret
