"""Failed authentication is limited per client (issue 10 item 4c): after N wrong API keys or failed
dashboard logins within a minute, that client gets 429 with Retry-After, even with a right key,
while other clients are unaffected. With Redis the count is shared by every API node."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from test_api import RW, bearer, issue
from ui_helpers import csrf_from

from tether.api.app import ServiceOptions, create_app
from tether.settings import Settings

WRONG = "tk_0123456789abcdef_notarealkeynotarealkeynotarealkey"
LIMIT = 5


@pytest.fixture(autouse=True)
def small_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TETHER_AUTH_FAILURES_PER_MINUTE", str(LIMIT))


@contextmanager
def node(project: Path, address: str) -> Iterator[TestClient]:
    """One API node, seen from a client at `address` (a fresh one per test: Redis outlives tests)."""
    app = create_app(ServiceOptions(project=project, settings=Settings()))
    with TestClient(app, client=(address, 40000), follow_redirects=False) as client:
        yield client


def _address() -> str:
    return f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"


def test_wrong_keys_are_limited_per_client(example_project: Path) -> None:
    good = issue("u1", "t1", RW)
    attacker, bystander = _address(), _address()
    with node(example_project, attacker) as client:
        for _ in range(LIMIT):
            assert client.get("/v1/runs", headers=bearer(WRONG)).status_code == 401
        limited = client.get("/v1/runs", headers=bearer(WRONG))
        assert limited.status_code == 429
        assert 0 < int(limited.headers["Retry-After"]) <= 60
        assert "too many failed authentications" in limited.json()["detail"]
        # Blocked before the key is checked: a right key from here does not get through either,
        # and guessing cannot go on. A request with no key at all is a plain 401, never counted.
        assert client.get("/v1/runs", headers=bearer(good)).status_code == 429
        assert client.get("/v1/runs").status_code == 401
    with node(example_project, bystander) as other:
        assert other.get("/v1/runs", headers=bearer(good)).status_code == 200


def test_failed_dashboard_logins_are_limited_too(example_project: Path) -> None:
    key = issue("ops", "t1", ["runs:read"])
    with node(example_project, _address()) as client:

        def attempt(with_key: str) -> int:
            form = client.get("/ui/login")
            answer = client.post(
                "/ui/login", data={"key": with_key, "csrf": csrf_from(form.text), "next": "/ui/health"}
            )
            if answer.status_code == 429:
                assert int(answer.headers["Retry-After"]) > 0
                assert "Too many failed logins" in answer.text
            return answer.status_code

        assert [attempt(WRONG) for _ in range(LIMIT)] == [401] * LIMIT
        assert attempt(WRONG) == 429
        assert attempt(key) == 429
        # The API shares the count: the same client's wrong keys are already over the limit.
        assert client.get("/v1/runs", headers=bearer(WRONG)).status_code == 429


def test_with_redis_every_node_shares_the_count(
    example_project: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TETHER_REDIS_URL", redis_url)
    attacker = _address()
    with node(example_project, attacker) as first, node(example_project, attacker) as second:
        for n in range(LIMIT):
            assert (first if n % 2 else second).get("/v1/runs", headers=bearer(WRONG)).status_code == 401
        assert first.get("/v1/runs", headers=bearer(WRONG)).status_code == 429
        assert second.get("/v1/runs", headers=bearer(WRONG)).status_code == 429
