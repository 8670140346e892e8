"""Where a write tool's argument values came from, and whether that is enough to run it unattended.

Sources, from trusted to not: `user` (what the caller wrote, in this run or earlier in the thread),
`identity` (the authenticated user, tenant and thread ids), `config` (the system prompt), and
`tool:NAME` (a tool result of this run, which may carry anyone's text). A value found in none of
them was composed by the model.

What it can see: literal values (ids, amounts, e-mail addresses...) and text copied from a tool
result (any run of `COPIED_WORDS` words). What it cannot see: a value the model derived rather than
copied (a sum, a translation, a paraphrase of injected text), or a value that happens to appear in
the user's message for another reason; so it is one layer among several, and declared decisive
arguments plus the `intent` check carry most of the weight.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

COPIED_WORDS = 8
"""A run of this many words of a tool result inside an argument counts as copied from it."""
TRUSTED = frozenset({"user", "identity", "config"})
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class Sources:
    """The texts a value may have come from, gathered once per tool call."""

    user: tuple[str, ...]
    identity: tuple[str, ...]
    config: str
    tool_results: tuple[tuple[str, str], ...]
    """(tool name, raw result) of this run, oldest first."""


@dataclass(frozen=True)
class ArgumentOrigin:
    name: str
    value: str
    sources: tuple[str, ...]
    copied_from: str | None = None
    """The tool whose result this (free-text) argument copies a long run of words from."""

    @property
    def trusted(self) -> bool:
        return not TRUSTED.isdisjoint(self.sources)

    def describe(self) -> str:
        where = ", ".join(self.sources) if self.sources else "composed by the model"
        copied = f"; copies text from tool:{self.copied_from}" if self.copied_from else ""
        return f"{self.name}={self.value}: {where}{copied}"


def _numbers(text: str) -> set[float]:
    found: set[float] = set()
    for raw in _NUMBER.findall(text):
        try:
            found.add(float(raw.replace(",", "")))
        except ValueError:
            continue
    return found


def _contains(text: str, value: str) -> bool:
    if not value:
        return False
    pattern = r"(?<![\w])" + re.escape(value) + r"(?![\w])"
    return re.search(pattern, text, re.IGNORECASE) is not None


def _copied(value: str, text: str) -> bool:
    words = _WORD.findall(value.lower())
    if len(words) < COPIED_WORDS:
        return False
    haystack = " ".join(_WORD.findall(text.lower()))
    return any(
        " ".join(words[i : i + COPIED_WORDS]) in haystack for i in range(len(words) - COPIED_WORDS + 1)
    )


def _scalars(value: Any) -> Iterable[Any]:
    if isinstance(value, dict):
        for item in value.values():
            yield from _scalars(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _scalars(item)
    else:
        yield value


def trace_argument(name: str, value: Any, sources: Sources) -> ArgumentOrigin:
    """Where one argument's value can be found."""
    named: list[tuple[str, str]] = [
        *(("user", t) for t in sources.user),
        *(("identity", t) for t in sources.identity),
        ("config", sources.config),
        *((f"tool:{tool}", text) for tool, text in sources.tool_results),
    ]
    found: list[str] = []
    copied: str | None = None
    for scalar in _scalars(value):
        if isinstance(scalar, bool) or scalar is None:
            continue
        if isinstance(scalar, int | float):
            found += [where for where, text in named if float(scalar) in _numbers(text)]
            continue
        text_value = str(scalar).strip()
        if len(_WORD.findall(text_value)) >= COPIED_WORDS:  # free text: look for copied runs
            for tool, result in sources.tool_results:
                if _copied(text_value, result):
                    copied = tool
            found += [where for where, text in named[: len(sources.user)] if _copied(text_value, text)]
            continue
        bare = text_value.lstrip("#").strip()
        found += [where for where, text in named if _contains(text, bare)]
    shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
    return ArgumentOrigin(name, shown, tuple(dict.fromkeys(found)), copied)


@dataclass(frozen=True)
class ProvenanceVerdict:
    origins: tuple[ArgumentOrigin, ...]
    problems: tuple[str, ...]


def judge_write(
    arguments: dict[str, Any],
    decisive: Iterable[str],
    intent: str | None,
    sources: Sources,
    *,
    tainted_by: str | None = None,
) -> ProvenanceVerdict:
    """Trace every argument; list why this write needs a human (no problems: it may run)."""
    origins = tuple(trace_argument(name, value, sources) for name, value in arguments.items())
    by_name = {o.name: o for o in origins}
    problems: list[str] = []
    for name in decisive:
        origin = by_name.get(name)
        if origin is not None and not origin.trusted:
            came = "only from tool results" if origin.sources else "from nowhere the user or system gave"
            problems.append(f"decisive argument {name} came {came}")
    # Copying facts from a tool result into a note is normal; it is shown, not judged. Copying from
    # a result that held instructions is judged through `tainted_by`.
    if intent is not None and not any(re.search(intent, text, re.IGNORECASE) for text in sources.user):
        problems.append("the user's request does not ask for this")
    if tainted_by is not None:
        problems.append(f"an earlier tool result held instructions ({tainted_by})")
    return ProvenanceVerdict(origins, tuple(problems))
