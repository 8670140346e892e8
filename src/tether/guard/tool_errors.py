"""Tool errors: which words are Tether's own, and which came from the tool or the system behind it.

An exception's message is written by whoever the tool talked to (an upstream API, a database, a
file), so it is as untrusted as a tool result: an attacker who controls an upstream error can put
instructions in it. Tether's own fixed wording around it ("lookup_order failed: HTTPError:",
"timed out after 5s", a reviewer's rejection, an operator's refusal) is not data and stays plain,
so the model still learns plainly that the call failed. Everything else goes through the same
untrusted-data path as a tool result (`RunGuard.check_error`): control tokens neutralised,
instruction detector, spotlighting.

The wording matched here is what `runtime/tool_calls.py` and the loop write; text that matches
none of it is treated as data in full, so an unknown shape fails safe.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_FAILED = re.compile(r"(?P<fixed>\S+ failed: [A-Za-z_][\w.]*:) ?(?P<detail>.*)", re.DOTALL)
_FAILED_BARE = re.compile(r"\S+ failed: [A-Za-z_][\w.]*")
_TIMED_OUT = re.compile(r"\S+ timed out after [\d.]+(e[+-]?\d+)?s")
_REVIEWED = re.compile(r"\S+ was interrupted and not retried \(reviewer: .*\)", re.DOTALL)
_NOT_CALLED = re.compile(r"(?P<fixed>\S+ was not called:) ?(?P<detail>.*)", re.DOTALL)
"""A call Tether stopped: its reason can quote a tool's own precheck refusal, so it is read as data."""


@dataclass(frozen=True)
class ErrorText:
    """An error as the model reads it: Tether's `fixed` wording, then `detail` from outside."""

    fixed: str
    detail: str


def split_error(tool: str, error: str, *, ran: bool) -> ErrorText:
    """Split a failed tool step's error (`ran`: the tool's code was called at least once)."""
    if ran:
        if _TIMED_OUT.fullmatch(error) or _REVIEWED.fullmatch(error) or _FAILED_BARE.fullmatch(error):
            return ErrorText(error, "")
        failed = _FAILED.fullmatch(error)
        if failed is not None and error.startswith(f"{tool} failed:"):
            return ErrorText(failed.group("fixed"), failed.group("detail"))
        return ErrorText("", error)
    stopped = _NOT_CALLED.fullmatch(error)
    if stopped is not None and error.startswith(f"{tool} was not called:"):
        return ErrorText(stopped.group("fixed"), stopped.group("detail"))
    return ErrorText(error, "")  # refused by Tether before any tool code ran: its own words
