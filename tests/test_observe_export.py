"""A collector that is down never slows a run: bounded exit, one warning, not one per retry.

The CLI tests run `tether run` as a real process (its logging set up by `main`, as a user sees it)
against an address that refuses connections and one that accepts them and never answers.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from conftest import ProjectFactory
from observe_agent import POLICY, PRICES, TOOLS
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from tether.observe.tracing import Tracing


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def silent_collector() -> Iterator[str]:
    """Accepts connections (the kernel's backlog does) and never answers a request."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


def _tether_run(project: Path, endpoint: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """`tether run --json` in its own process; returns the run and the JSON log lines on stderr."""
    env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "TETHER_LOG_FORMAT": "json"}
    env.pop("OTEL_EXPORTER_OTLP_TIMEOUT", None)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tether",
            "run",
            "--project",
            str(project),
            "--user",
            "u1",
            "--json",
            'lookup {"order": "5"}',
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,  # a hang fails the test instead of the suite
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert len(lines) == len(done.stderr.splitlines()), done.stderr  # nothing but log lines
    return json.loads(done.stdout), lines


def _project(make_project: ProjectFactory) -> Path:
    return make_project(tools=TOOLS, policy=POLICY, name="obs-agent", extra=PRICES)


def test_a_refusing_collector_costs_one_warning(make_project: ProjectFactory) -> None:
    run, lines = _tether_run(_project(make_project), f"http://127.0.0.1:{_free_port()}")
    assert run["status"] == "succeeded"
    warnings = [line for line in lines if line["level"] in ("warning", "error")]
    assert len(warnings) == 1, warnings  # not one per retry and batch, as the SDK logs them
    assert warnings[0]["logger"] == "tether.observe.export"
    assert "OTLP trace export to http://127.0.0.1:" in warnings[0]["event"]


def test_a_silent_collector_costs_one_warning_and_a_bounded_exit(
    make_project: ProjectFactory, silent_collector: str
) -> None:
    run, lines = _tether_run(_project(make_project), silent_collector)
    assert run["status"] == "succeeded"
    warnings = [line for line in lines if line["level"] in ("warning", "error")]
    assert len(warnings) == 1, warnings
    assert "did not finish within 1s at exit" in warnings[0]["event"]


class _StuckExporter(SpanExporter):
    """An export that blocks until released: a collector that never answers."""

    def __init__(self) -> None:
        self.exporting = threading.Event()
        self.release = threading.Event()
        self.shut_down = threading.Event()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.exporting.set()
        self.release.wait(120)
        return SpanExportResult.FAILURE

    def shutdown(self) -> None:
        self.shut_down.set()


def test_closing_tracing_does_not_wait_for_a_stuck_export() -> None:
    stuck = _StuckExporter()
    tracing = Tracing(exporter=stuck, flush_timeout_s=0.2)
    tracing.tracer("agent").start_span("work").end()
    try:
        assert tracing.shutdown() is False  # returned although the export is still in flight
        assert stuck.exporting.is_set() and not stuck.release.is_set()
        assert stuck.shut_down.is_set()  # told to stop retrying
        assert tracing.otlp is not None and tracing.otlp.exporter.warnings == 1
    finally:
        stuck.release.set()


def test_otlp_export_timeout_is_tethers_unless_the_otel_variable_sets_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TIMEOUT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", raising=False)

    def timeout_of(tracing: Tracing) -> float:
        assert tracing.otlp is not None
        return float(tracing.otlp.exporter.inner._client._timeout)  # type: ignore[attr-defined]

    assert timeout_of(Tracing(export_timeout_s=5.0)) == 5.0  # the SDK's own default is 10 s
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "7")
    assert timeout_of(Tracing(export_timeout_s=5.0)) == 7.0
