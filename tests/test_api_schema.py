"""Schema-driven fuzzing of the HTTP API with schemathesis: whatever a client sends, no 5xx.

The cases come from the OpenAPI document the app publishes. Each operation gets a fresh service
(embedded worker, admin key) driven through FastAPI's `TestClient`, so the lifespan runs and an
exception escaping the app fails the case instead of being turned into a quiet 500.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
)

from tether.api.app import ServiceOptions, create_app
from tether.api.auth import issue_key
from tether.settings import Settings
from tether.store.repository import Store

CHECKS = [
    not_a_server_error,
    # Answers the document describes must look as it says (statuses it omits are not checked here).
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]

schema = schemathesis.openapi.from_dict(create_app(ServiceOptions(project=Path("."))).openapi())


def _admin_key() -> str:
    async def create() -> str:
        store = await Store.open(os.environ["TETHER_DATABASE_URL"])
        try:
            _, plaintext = await issue_key(store, user_id="fuzz", tenant_id="t1", scopes=["admin"])
        finally:
            await store.close()
        return plaintext

    return asyncio.run(create())


@pytest.fixture
def service(example_project: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[TestClient, str]]:
    # Generous limits: the fuzzer should reach the handlers, not the rate limiter.
    monkeypatch.setenv("TETHER_REQUESTS_PER_MINUTE_PER_KEY", "100000")
    monkeypatch.setenv("TETHER_RUNS_PER_MINUTE_PER_USER", "100000")
    app = create_app(
        ServiceOptions(project=example_project, embedded_worker_concurrency=2, settings=Settings())
    )
    with TestClient(app) as client:
        yield client, _admin_key()


def _send(client: TestClient, case: schemathesis.Case, key: str) -> httpx.Response:
    """The generated request, with a valid key, sent through the TestClient."""
    kwargs: dict[str, Any] = case.as_transport_kwargs(
        base_url=str(client.base_url), headers={"Authorization": f"Bearer {key}"}
    )
    if "data" in kwargs:  # requests' name for a raw body
        kwargs["content"] = kwargs.pop("data")
    if not kwargs.get("cookies"):
        kwargs.pop("cookies", None)
    return client.request(**kwargs)


@schema.parametrize()
@settings(
    max_examples=20,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_generated_request_gets_a_server_error(
    case: schemathesis.Case, service: tuple[TestClient, str]
) -> None:
    client, key = service
    response = _send(client, case, key)
    case.validate_response(response, checks=CHECKS)
