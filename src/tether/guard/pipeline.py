"""The guard pipeline of one run execution: the checks at the four points of the loop.

The loop calls in at input, before each tool call, on each tool result and on the output, and
records every decision that is not `allow` as a step (and every decision as a span). This module
decides; it never writes to the store, so it can be tested and benchmarked on its own.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tether.agent.config import GuardSection
from tether.agent.tools import Tool, ToolContext
from tether.guard.classifier import InstructionClassifier
from tether.guard.decisions import Action, Decision, strictest
from tether.guard.echo import EchoGuard
from tether.guard.echo import redact as redact_echoes
from tether.guard.findings import words_of
from tether.guard.injection import MAX_FRAGMENTS, REMOVED, InstructionDetector, dangling, lures, phishing
from tether.guard.leaks import PromptGuard
from tether.guard.limits import argument_problems, calls_over_limit
from tether.guard.marking import Spotlight
from tether.guard.pii import CallerData, others, redact
from tether.guard.provenance import Sources, judge_write
from tether.guard.tool_errors import split_error
from tether.guard.urls import outside_links, redact_links
from tether.models.base import Message, ModelResponse, ToolCall

BLOCKED_ANSWER = (
    "I'm sorry, I can't share that answer. A safety check stopped it; please rephrase your request "
    "or ask for a human colleague."
)
ESCALATED_ANSWER = "I've passed this to a human colleague, who will follow up with you."


@dataclass(frozen=True)
class RunFacts:
    """Who the run acts for, as authenticated (the `identity` provenance source)."""

    user_id: str
    tenant_id: str
    thread_id: str | None


@dataclass
class ResultCheck:
    """A tool result as the model will read it, and what the guards decided about it."""

    text: str
    decisions: list[Decision] = field(default_factory=list)


UserTexts = Callable[[], Sequence[str]]
"""What the user wrote in this run (their own personal data stays), built only when needed."""


class RunGuard:
    """Guards one execution of one run with `policy` (already tightened by operator overrides)."""

    def __init__(
        self,
        policy: GuardSection,
        tools: dict[str, Tool],
        instructions: str,
        facts: RunFacts,
        classifier: InstructionClassifier | None = None,
    ) -> None:
        self.policy = policy
        self.on = policy.enabled
        self.tools = tools
        self.instructions = instructions
        self.facts = facts
        self.spotlight = Spotlight.fresh(policy.marking)
        self.prompt = PromptGuard.for_prompt(instructions, policy.leak_min_words)
        self.detector = InstructionDetector(tools)
        self.classifier = classifier if policy.enabled else None
        self.tainted_by: str | None = None
        """Why a tool result of this run was flagged (later writes then need a human)."""
        self._stored: dict[str, str] = {}
        """Texts already redacted for storage in this execution (span content repeats them per call)."""
        self.fragments: list[str] = []
        """Unfinished sentences of earlier untrusted text (a split instruction's first half)."""
        self.echo = EchoGuard(policy.echo_min_words)
        """The suspect untrusted text this execution has read (the answer must not repeat it)."""

    def stable_view(self, text: str) -> str:
        """`text` with this execution's secrets (the marking key, the canary) replaced by fixed
        placeholders: what response caches key on, so the same request from two runs is one entry."""
        if not self.on:
            return text
        return text.replace(self.spotlight.key, "KEY").replace(self.prompt.canary, "CANARY")

    # -- the system prompt ------------------------------------------------------------------

    def system_prompt(self) -> str:
        if not self.on:
            return self.instructions
        parts = [self.instructions]
        if self.policy.mark_tool_results:
            parts.append(self.spotlight.explanation())
        parts.append(self.prompt.instruction())
        return "\n\n".join(parts)

    # -- input ----------------------------------------------------------------------------------

    def check_input(self, text: str) -> Decision:
        if not self.on or self.policy.input_injection == "allow":
            return Decision("pipeline", "input", "allow")
        finding = self.detector.scan(text)
        if finding is None:
            return Decision("pipeline", "input", "allow")
        return Decision(
            "injection",
            "input",
            self.policy.input_injection,
            "the message reads like an attempt to change the agent's rules: " + ", ".join(finding.reasons),
            text=finding.redacted,
        )

    # -- tool calls -----------------------------------------------------------------------------

    def limit_response(self, calls: list[ToolCall]) -> tuple[list[ToolCall], Decision | None]:
        """At most `max_tool_calls_per_response` calls of one model answer run; the rest are dropped."""
        cap = self.policy.max_tool_calls_per_response
        if not self.on or len(calls) <= cap:
            return calls, None
        return calls[:cap], Decision(
            "tool_call_limit",
            "tool_call",
            "block",
            f"the model asked for {len(calls)} tool calls in one answer; only the first {cap} were kept",
        )

    async def check_call(
        self,
        call: ToolCall,
        tool: Tool,
        *,
        calls_so_far: int,
        user_texts: Sequence[str],
        tool_results: Sequence[tuple[str, str]],
        context: ToolContext,
    ) -> Decision:
        """Limits, argument policies, the tool's precheck, then provenance for writes."""
        if not self.on:
            return Decision("pipeline", "tool_call", "allow")
        over = calls_over_limit(tool, calls_so_far, self.policy)
        if over is not None:
            return Decision("tool_call_limit", "tool_call", "block", over)
        arguments = tool.validate(call.arguments)
        problems = argument_problems(tool, arguments)
        if not problems and tool.precheck is not None:
            refusal = tool.precheck(arguments, context)
            if inspect.isawaitable(refusal):
                refusal = await refusal
            if refusal:
                problems.append(str(refusal))
        if problems:
            return Decision("argument_policy", "tool_call", "block", "; ".join(problems))
        if not tool.is_write or self.policy.provenance == "allow":
            return Decision("pipeline", "tool_call", "allow")
        verdict = judge_write(
            arguments,
            tool.decisive,
            tool.intent,
            Sources(
                user=tuple(user_texts),
                identity=tuple(
                    v for v in (self.facts.user_id, self.facts.tenant_id, self.facts.thread_id) if v
                ),
                config=self.instructions,
                tool_results=tuple(tool_results),
            ),
            tainted_by=self.tainted_by if self.policy.escalate_writes_after_injection else None,
        )
        details = tuple((o.name, o.describe()) for o in verdict.origins)
        if not verdict.problems:
            return Decision("provenance", "tool_call", "allow", details=details)
        action: Action = self.policy.provenance if self.policy.provenance != "redact" else "escalate"
        return Decision("provenance", "tool_call", action, "; ".join(verdict.problems), details=details)

    # -- tool results ---------------------------------------------------------------------------

    def check_result(
        self, tool: str, text: str, *, classified: str | None = None, what: str = "result"
    ) -> ResultCheck:
        """What the model reads of a tool result: instruction-like text handled, then marked.

        `classified` is the classifier's reason when it flagged this result (see `classify`).
        Suspect text (flagged, or a lure addressed to the user) is remembered for the echo check.
        """
        if not self.on:
            return ResultCheck(text)
        check = ResultCheck(text)
        finding = self.detector.scan(text)
        if finding is None and self.fragments:
            finding = self.detector.scan_joined(self.fragments, text)
        self.fragments = [*self.fragments, *dangling(text)][-MAX_FRAGMENTS:]
        if finding is not None:
            self.echo.remember(tool, finding.suspect, text)
        elif classified:
            self.echo.remember(tool, [text], text, tokens=False)
        self.echo.remember(tool, lures(text, self.detector), text)
        reasons = finding.reasons if finding is not None else (classified,) if classified else ()
        if reasons:
            reason = f"the {what} of {tool} holds instruction-like text: " + ", ".join(reasons)
            action = self.policy.result_injection
            if action == "allow":  # the model reads the instruction: every later write needs a human
                self.tainted_by = f"{tool}: " + ", ".join(reasons)
            check.decisions.append(Decision("injection", "tool_result", action, reason))
            if action == "redact":
                check.text = finding.redacted if finding is not None else REMOVED
            elif action in ("block", "escalate"):
                check.text = "[tool result withheld by Tether]"
        if self.policy.mark_tool_results:
            check.text = self.spotlight.wrap(tool, check.text)
        return check

    def check_error(self, tool: str, error: str, *, ran: bool, classified: str | None = None) -> ResultCheck:
        """What the model reads of a failed tool step: Tether's own wording plain, and whatever came
        from the tool or its upstream (an exception's message, a precheck refusal) through the same
        untrusted-data path as a result (`check_result`)."""
        parts = split_error(tool, error, ran=ran)
        if not self.on or not parts.detail:
            return ResultCheck(f"error: {error}")
        check = self.check_result(tool, parts.detail, classified=classified, what="error")
        fixed = f"error: {parts.fixed}" if parts.fixed else "error:"
        check.text = f"{fixed}\n{check.text}" if self.policy.mark_tool_results else f"{fixed} {check.text}"
        return check

    async def classify(self, text: str) -> str | None:
        """The classifier's second opinion on a result the heuristics passed (None: no classifier)."""
        if self.classifier is None or self.detector.screen(text):
            return None
        return await self.classifier.flags(text)

    # -- output ---------------------------------------------------------------------------------

    def check_output(self, text: str, user_texts: Sequence[str]) -> list[Decision]:
        """Leaks, exfiltration links, phishing and others' personal data in the final answer.

        Redactions compose (each guard sees the text the previous one left); the strictest action
        decides what happens to the run (see `strictest`).
        """
        if not self.on:
            return [Decision("pipeline", "output", "allow")]
        decisions: list[Decision] = []
        original, lowered = text, text.lower()
        words = words_of(lowered)  # shared by the leak and personal-data checks while text is unchanged
        leak = self.prompt.leak(text, lowered, words)
        if leak is not None:
            decisions.append(Decision("system_prompt_leak", "output", self.policy.system_prompt_leak, leak))
        links = outside_links(text, self.policy.allowed_hosts)
        if links:
            text = redact_links(text, links) if self.policy.exfiltration == "redact" else text
            hosts = ", ".join(sorted({link.host for link in links}))
            decisions.append(
                Decision("exfiltration", "output", self.policy.exfiltration, f"links to {hosts}", text=text)
            )
        lure = phishing(text)
        if lure is not None:
            decisions.append(Decision("phishing", "output", self.policy.phishing, lure))
        echoes = self.echo.find(text, user_texts, words=words if text is original else None)
        if echoes:
            text = redact_echoes(text, echoes) if self.policy.attacker_text == "redact" else text
            sources = ", ".join(sorted({e.source for e in echoes}))
            decisions.append(
                Decision(
                    "attacker_text",
                    "output",
                    self.policy.attacker_text,
                    f"the answer repeats suspect untrusted text from {sources} ({len(echoes)} span(s))",
                    text=text,
                )
            )
        caller = CallerData([*user_texts, self.facts.user_id], self.policy.allowed_pii)
        found = (
            others(text, caller, lowered=lowered, words=words) if text is original else others(text, caller)
        )
        if found:
            text = redact(text, found) if self.policy.pii == "redact" else text
            kinds = ", ".join(sorted({f.kind for f in found}))
            decisions.append(
                Decision(
                    "pii", "output", self.policy.pii, f"personal data not the caller's: {kinds}", text=text
                )
            )
        return decisions or [Decision("pipeline", "output", "allow")]

    def sanitize(self, text: str) -> str:
        """Tool output quoted to the user without a model in between (the budget-exhausted summary):
        instruction-like text, outside links and others' personal data cut out, nothing blocked."""
        if not self.on:
            return text
        finding = self.detector.scan(text)
        text = finding.redacted if finding is not None else text
        echoes = self.echo.find(text)
        text = redact_echoes(text, echoes) if echoes else text
        links = outside_links(text, self.policy.allowed_hosts)
        text = redact_links(text, links) if links else text
        found = others(text, CallerData([self.facts.user_id], self.policy.allowed_pii))
        return redact(text, found) if found else text

    def stored_message(self, message: dict[str, Any], user_texts: UserTexts) -> dict[str, Any]:
        """A model message as stored: its text redacted of others' personal data if `redact_stored`.

        `user_texts` (the stored-redaction methods all take it) is asked only when something is
        redacted: with `redact_stored` off, the default, the loop's hot path builds nothing."""
        content = message.get("content")
        if not (self.on and self.policy.redact_stored) or not isinstance(content, str) or not content:
            return message
        return {**message, "content": self.redact_stored(content, user_texts)}

    def redact_stored(self, text: str, user_texts: UserTexts) -> str:
        """`text` with others' personal data redacted, when the policy asks for it in stored steps."""
        if not (self.on and self.policy.redact_stored):
            return text
        done = self._stored.get(text)
        if done is None:
            found = others(text, CallerData([*user_texts(), self.facts.user_id], self.policy.allowed_pii))
            done = self._stored[text] = redact(text, found) if found else text
        return done

    def stored_messages(self, messages: list[Message], user_texts: UserTexts) -> list[Message]:
        """The messages as span content may record them: redacted like stored steps (each text is
        scanned once per execution), or the same list when `redact_stored` is off."""
        if not (self.on and self.policy.redact_stored):
            return messages
        return [
            m.model_copy(update={"content": self.redact_stored(m.content, user_texts)}) if m.content else m
            for m in messages
        ]

    def stored_response(self, response: ModelResponse, user_texts: UserTexts) -> ModelResponse:
        """A model response as its span records it (the loop acts on the original)."""
        if not (self.on and self.policy.redact_stored) or not response.content:
            return response
        return response.model_copy(update={"content": self.redact_stored(response.content, user_texts)})


def final_text(decisions: list[Decision], original: str) -> tuple[Action, str, Decision | None]:
    """The action on the answer and the text to give: the last redaction, or a refusal."""
    winner = strictest(decisions)
    if winner is None:
        return "allow", original, None
    if winner.action == "block":
        return "block", BLOCKED_ANSWER, winner
    if winner.action == "escalate":
        return "escalate", ESCALATED_ANSWER, winner
    redacted = [d.text for d in decisions if d.action == "redact" and d.text is not None]
    return "redact", redacted[-1] if redacted else original, winner


def as_dict(decision: Decision) -> dict[str, Any]:
    """The step arguments a decision is recorded with (details apart, so no argument name can clash)."""
    recorded: dict[str, Any] = {"stage": decision.stage, "action": decision.action}
    if decision.details:
        recorded["details"] = dict(decision.details)
    return recorded
