"""Context control: a long thread's history is trimmed or summarised to `[context] max_tokens`.

Without it every run replays the whole thread, so the 200th turn costs ten times the 20th. With
it, a run keeps the newest turns that fit (at least `keep_recent_turns`), and either drops the rest
(`trim`) or replaces them with a short summary written by the release's model (`summarize`). The
choice is a `context` step of the run (what was dropped, and for a summary its tokens and cost),
so it is visible, costed, and replayed as is when the run resumes.
"""

from __future__ import annotations

from dataclasses import dataclass

from tether.agent.config import ContextSection
from tether.models.base import Message, ModelResponse, ToolSpec
from tether.models.tokens import TokenCounter

SUMMARY_PROMPT = (
    "Summarise the earlier part of this conversation for the assistant who continues it: the user's "
    "requests, facts established (names, numbers, ids, decisions) and anything still open. Be brief; "
    "write plain sentences, no preamble."
)
SUMMARY_PREFIX = "Summary of the earlier conversation: "


@dataclass(frozen=True)
class ContextPlan:
    """Which earlier turns (user + assistant pairs) a run keeps."""

    turns: int
    kept: int
    tokens_before: int
    tokens_after: int

    @property
    def dropped(self) -> int:
        return self.turns - self.kept

    def describe(self, strategy: str) -> str:
        done = "summarised" if strategy == "summarize" else "dropped"
        return (
            f"{done} the oldest {self.dropped} of {self.turns} earlier turns "
            f"({self.tokens_before} -> {self.tokens_after} tokens of history); kept the newest {self.kept}"
        )


class Largest:
    """The largest count of several counters: any model of the chain may read the history."""

    name = "largest"

    def __init__(self, counters: list[TokenCounter]) -> None:
        self.counters = counters

    def text(self, text: str) -> int:
        return max(counter.text(text) for counter in self.counters)

    def prompt(self, messages: list[Message], tools: list[ToolSpec]) -> int:
        return max(counter.prompt(messages, tools) for counter in self.counters)


def turns_of(history: list[Message]) -> list[list[Message]]:
    """Earlier runs as turns (a user message and the answer after it)."""
    turns: list[list[Message]] = []
    for message in history:
        if message.role == "user" or not turns:
            turns.append([message])
        else:
            turns[-1].append(message)
    return turns


def plan(history: list[Message], config: ContextSection, counter: TokenCounter) -> ContextPlan | None:
    """None when the history fits (or no limit is set); otherwise how many newest turns to keep."""
    if config.max_tokens is None or not history:
        return None
    turns = turns_of(history)
    sizes = [counter.prompt(turn, []) for turn in turns]
    total = sum(sizes)
    if total <= config.max_tokens:
        return None
    kept, used = 0, 0
    for size in reversed(sizes):
        if kept >= config.keep_recent_turns and used + size > config.max_tokens:
            break
        kept, used = kept + 1, used + size
    return ContextPlan(turns=len(turns), kept=kept, tokens_before=total, tokens_after=used)


def split(history: list[Message], chosen: ContextPlan) -> tuple[list[Message], list[Message]]:
    """(dropped messages, kept messages) for a plan."""
    turns = turns_of(history)
    cut = len(turns) - chosen.kept
    return [m for t in turns[:cut] for m in t], [m for t in turns[cut:] for m in t]


def summary_request(dropped: list[Message], config: ContextSection, counter: TokenCounter) -> list[Message]:
    """The summary call's messages: the newest dropped turns that fit `summary_input_tokens`."""
    chosen: list[list[Message]] = []
    used = 0
    for turn in reversed(turns_of(dropped)):
        size = counter.prompt(turn, [])
        if chosen and used + size > config.summary_input_tokens:
            break
        chosen.insert(0, turn)
        used += size
    transcript = "\n".join(f"{m.role}: {m.content}" for turn in chosen for m in turn)
    return [Message(role="system", content=SUMMARY_PROMPT), Message(role="user", content=transcript)]


def summary_message(text: str) -> Message:
    return Message(role="system", content=SUMMARY_PREFIX + text)


def fitted(history: list[Message], chosen: ContextPlan, summary: str | None) -> list[Message]:
    """The history a run sends: the kept turns, after the summary of the rest when there is one."""
    _, kept = split(history, chosen)
    return ([summary_message(summary)] if summary else []) + kept


def summary_text(response: ModelResponse) -> str:
    return response.content.strip()
