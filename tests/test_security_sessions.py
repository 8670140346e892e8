"""Dashboard sessions cannot be forged from a database read, and logging out ends them on the
server (issue 10 items 3 and 4b); the session secret is configured, or generated into a private
file, and a server on a shared database refuses to start without one."""

from __future__ import annotations

import hashlib
import hmac
import stat
import time
from pathlib import Path

import pytest
from conftest import Cli
from fastapi.testclient import TestClient
from itsdangerous import URLSafeTimedSerializer
from test_ui_pages import issue, login, serve, set_session
from ui_helpers import csrf_from, write_shop_project

from tether.agent.config import ConfigError
from tether.api.app import ServiceOptions, create_app
from tether.api.session_secret import SECRET_FILE
from tether.settings import Settings
from tether.ui import session as sessions


@pytest.fixture
def shop(tmp_path: Path, cli: Cli) -> Path:
    """The shop agent released as v2 (what `serve` runs)."""
    project = write_shop_project(tmp_path / "shop")
    cli("release", "create", "--project", project, "--version", "v2")
    return project


def _key_hash(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def test_cookies_made_from_what_the_database_holds_are_refused(shop: Path, isolated_env: Path) -> None:
    key = issue("ops", "default", ["admin"])
    key_id, key_hash = "key_" + key.split("_")[1], _key_hash(key)  # both are in the keys table
    with serve(shop, workers=0) as client:
        login(client, key)
        assert client.get("/ui/health").status_code == 200
        # The old scheme: an HMAC keyed by the stored key hash (no secret configured).
        message = f"{key_id}.{int(time.time())}"
        mac = hmac.new((key_hash + "|").encode(), f"session|{message}".encode(), hashlib.sha256)
        set_session(client, f"{message}.{mac.hexdigest()}")
        assert client.get("/ui/health").status_code == 303
        # The new format, signed with anything the database holds.
        for guess in (key_hash, key_id, ""):
            forged = URLSafeTimedSerializer(guess, salt="tether.ui.session").dumps({"sid": key_id})
            set_session(client, forged)
            assert client.get("/ui/health").status_code == 303

    secret_file = isolated_env / SECRET_FILE  # beside the SQLite database, private to the server
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert len(secret_file.read_text().strip()) >= 32


def test_the_generated_secret_survives_a_restart(shop: Path) -> None:
    key = issue("ops", "default", ["runs:read"])
    with serve(shop, workers=0) as client:
        login(client, key)
        cookie = next(c.value for c in client.cookies.jar if c.name == sessions.SESSION_COOKIE)
    with serve(shop, workers=0) as client:
        client.cookies.set(sessions.SESSION_COOKIE, cookie, path="/ui")
        assert client.get("/ui/health").status_code == 200


def test_logout_ends_the_session_on_the_server(shop: Path) -> None:
    key = issue("ops", "default", ["runs:read"])
    with serve(shop, workers=0) as client:
        login(client, key)
        cookie = next(c.value for c in client.cookies.jar if c.name == sessions.SESSION_COOKIE)
        token = csrf_from(client.get("/ui/health").text)
        assert client.post("/ui/logout", data={"csrf": token}).status_code == 303
        client.cookies.set(sessions.SESSION_COOKIE, cookie, path="/ui")  # a copy kept by an attacker
        assert client.get("/ui/health").status_code == 303
        login(client, key)  # a new login is a new session
        assert client.get("/ui/health").status_code == 200


def test_a_secret_file_others_can_read_is_refused(shop: Path, isolated_env: Path) -> None:
    path = isolated_env / SECRET_FILE
    path.write_text("x" * 40)
    path.chmod(0o644)
    options = ServiceOptions(project=shop, release="v2", settings=Settings())
    with pytest.raises(ConfigError, match="chmod 600"), TestClient(create_app(options)):
        pass


def test_a_configured_secret_is_used_and_must_be_long_enough(
    shop: Path, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TETHER_UI_SESSION_SECRET", "short")
    with pytest.raises(ConfigError, match="too short"):
        ServiceOptions(project=shop, release="v2", settings=Settings()).resolve_session_secret()
    monkeypatch.setenv("TETHER_UI_SESSION_SECRET", "a-long-enough-configured-secret")
    with serve(shop, workers=0) as client:
        assert client.get("/healthz").status_code == 200
    assert not (isolated_env / SECRET_FILE).exists()


def test_api_on_postgresql_refuses_to_start_without_a_shared_secret(
    cli: Cli, example_project: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TETHER_DATABASE_URL", postgres_url)
    monkeypatch.delenv("TETHER_UI_SESSION_SECRET", raising=False)
    result = cli("api", "--project", str(example_project), "--port", "1", expect=2)
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.output
    assert "TETHER_UI_SESSION_SECRET is not set" in lines[0] and "postgresql" in lines[0]
    assert "Traceback" not in result.output
