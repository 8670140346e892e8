"""Seeing inside runs: OpenTelemetry traces, Prometheus metrics, structured logs and alerts."""

from tether.observe.logs import route_structlog_to_stdlib

route_structlog_to_stdlib()
