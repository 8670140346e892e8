"""The published OpenAPI document is generated from the code and must not drift from it."""

from __future__ import annotations

import json
from pathlib import Path

from tether.api.app import ServiceOptions, create_app

PUBLISHED = Path(__file__).resolve().parents[1] / "docs" / "openapi.json"


def test_published_openapi_document_matches_the_code() -> None:
    generated = create_app(ServiceOptions(project=Path("."))).openapi()
    published = json.loads(PUBLISHED.read_text())
    assert published == json.loads(json.dumps(generated)), (
        "docs/openapi.json is stale: run `tether openapi --output docs/openapi.json`"
    )


def test_every_route_but_health_requires_a_key() -> None:
    document = create_app(ServiceOptions(project=Path("."))).openapi()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            secured = bool(operation.get("security"))
            assert secured == (path not in ("/healthz", "/readyz")), f"{method.upper()} {path}"
