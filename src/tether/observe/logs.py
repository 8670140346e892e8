"""Structured logs: structlog on top of the standard library, configured once per process.

JSON lines in production, readable colour on a terminal. Every line, whether it came from
structlog or from a library's standard `logging` call, goes through one redaction step first, so
API keys, bearer tokens and configured secret values never reach a log.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Iterable, Mapping
from typing import Any, Literal, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

LogFormat = Literal["auto", "json", "console"]

REDACTED = "[REDACTED]"
_API_KEY = re.compile(r"\b(tk_[0-9a-f]{16}_)[A-Za-z0-9_-]+")
_BEARER = re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]{8,}")
_URL_PASSWORD = re.compile(r"(://[^:/@\s]+:)[^@\s]+(@)")
_SECRET_KEYS = re.compile(r"(?i)(authorization|api[_-]?key|password|secret|token|cookie)$")
_SECRET_ENV = re.compile(r"(?i)(_API_KEY|_TOKEN|_SECRET|_PASSWORD)$")
_MIN_SECRET = 6  # shorter values would redact ordinary words


class Redactor:
    """A structlog processor that scrubs secrets from every string in an event, keys included."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = sorted({s for s in secrets if len(s) >= _MIN_SECRET}, key=len, reverse=True)

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        text = _API_KEY.sub(rf"\1{REDACTED}", text)
        text = _BEARER.sub(rf"\1{REDACTED}", text)
        return _URL_PASSWORD.sub(rf"\1{REDACTED}\2", text)

    def clean(self, value: Any) -> Any:
        """Scrub a value the way a log field is scrubbed (spans with captured content use this too)."""
        return self._clean(value)

    def _clean(self, value: Any, depth: int = 0) -> Any:
        if isinstance(value, str):
            return self.scrub(value)
        if depth > 5:
            return value
        if isinstance(value, Mapping):
            return {
                k: REDACTED if isinstance(k, str) and _SECRET_KEYS.search(k) else self._clean(v, depth + 1)
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [self._clean(v, depth + 1) for v in value]
        if isinstance(value, int | float | bool) or value is None:
            return value
        return self.scrub(str(value))

    def __call__(self, logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
        cleaned: EventDict = {}
        for key, value in event.items():
            if key.startswith("_"):  # structlog's own bookkeeping (the stdlib record, the logger)
                cleaned[key] = value
            elif _SECRET_KEYS.search(key):
                cleaned[key] = REDACTED
            else:
                cleaned[key] = self._clean(value)
        return cleaned


def secrets_from_environment(
    environ: Mapping[str, str] | None = None, extra_names: Iterable[str] = ()
) -> list[str]:
    """Values of variables that hold secrets: `*_API_KEY`, `*_TOKEN`, `*_SECRET`, `*_PASSWORD`, and
    the ones named in `extra_names` (`TETHER_LOG_SECRET_ENV`, or a provider's `api_key_env`)."""
    env = os.environ if environ is None else environ
    wanted = set(extra_names)
    return [value for name, value in env.items() if value and (name in wanted or _SECRET_ENV.search(name))]


def secret_env_names(spec: str) -> list[str]:
    """The variable names of `TETHER_LOG_SECRET_ENV` (comma-separated)."""
    return [name.strip() for name in spec.split(",") if name.strip()]


def route_structlog_to_stdlib() -> None:
    """Until `configure_logging` runs, send structlog events to standard logging (never to stdout).

    Unconfigured, structlog prints to stdout, which would corrupt `--json` output; the standard
    library instead drops INFO lines unless a handler is installed, as a library should.
    """
    if structlog.is_configured():
        return
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.filter_by_level,
            Redactor(),
            structlog.processors.KeyValueRenderer(key_order=["event"], sort_keys=True),
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


def configure_logging(
    *,
    fmt: LogFormat = "auto",
    level: str = "INFO",
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> Redactor:
    """Route structlog and the standard library through one handler on the root logger.

    Safe to call again (tests do): it replaces the handler it installed before.
    """
    target = stream or sys.stderr
    as_json = fmt == "json" or (fmt == "auto" and not target.isatty())
    redactor = Redactor(secrets)
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Processor = (
        structlog.processors.JSONRenderer(default=str)
        if as_json
        else structlog.dev.ConsoleRenderer(colors=target.isatty())
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,  # tracebacks become text, so they are redacted too
            redactor,
            renderer,
        ],
    )
    handler = logging.StreamHandler(target)
    handler.setFormatter(formatter)
    handler.set_name("tether")
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "tether"]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    return redactor
