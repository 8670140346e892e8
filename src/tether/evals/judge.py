"""LLM-as-judge: a rubric, the run's transcript and a judge model give a score from 0 to 1.

The judge model is configured in `tether.toml` (`[evals] judge_model`) and called through the same
`models` layer as the agent. Its prompt is a versioned file (the project's `prompts/judge.md`, or
the one packaged with Tether) whose SHA-256 is stored with every eval run.

`scripted:judge` is the offline judge: a deterministic keyword-overlap scorer written as a
scripted policy. It is not a language model and says so in its reasons; it measures how much of
the rubric's vocabulary the reply uses, and penalises words the rubric negates ("does not
promise a delivery date").
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from tether.agent.config import ProjectConfig
from tether.agent.project import AgentDefinition
from tether.models.base import ChatModel, Message, ModelError
from tether.models.pricing import Pricer
from tether.models.routing import FallbackChain
from tether.models.scripted import Policy, ScriptedModel, ScriptedTurn
from tether.runtime.models import build_client, pricer_for

PACKAGED_PROMPT = Path(__file__).with_name("prompts") / "judge.md"
SCRIPTED_JUDGE = "scripted:judge"

RUBRIC_HEADER = "## Rubric"
REPLY_HEADER = "## Agent reply"


@dataclass(frozen=True)
class JudgePrompt:
    text: str
    source: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


def load_prompt(project: Path, config: ProjectConfig) -> JudgePrompt:
    """The project's judge prompt file when it exists, else the packaged one."""
    candidate = project / config.evals.judge_prompt
    if candidate.is_file():
        return JudgePrompt(candidate.read_text(encoding="utf-8"), str(candidate))
    return JudgePrompt(PACKAGED_PROMPT.read_text(encoding="utf-8"), f"packaged:{PACKAGED_PROMPT.name}")


@dataclass(frozen=True)
class Verdict:
    score: float
    reason: str
    cost_usd: float
    input_tokens: int = 0
    output_tokens: int = 0
    """The judge's own usage (online evaluation reports it apart from the agent's)."""


class Judge:
    """Scores a transcript against a rubric with the configured judge model."""

    def __init__(self, model: ChatModel, prompt: JudgePrompt, pricer: Pricer) -> None:
        self.model = model
        self.prompt = prompt
        self.pricer = pricer

    @property
    def reference(self) -> str:
        return self.model.name

    async def score(self, *, rubric: str, transcript: str, reply: str) -> Verdict:
        content = (
            f"{RUBRIC_HEADER}\n{rubric.strip()}\n\n{transcript.strip()}\n\n{REPLY_HEADER}\n{reply.strip()}\n"
        )
        messages = [Message(role="system", content=self.prompt.text), Message(role="user", content=content)]
        try:
            response = await self.model.chat(messages, [], max_output_tokens=400)
        except ModelError as exc:
            return Verdict(0.0, f"judge model failed: {exc}", 0.0)
        cost = self.pricer.cost(response.reference or self.model.name, response.usage)
        verdict = _parse(response.content, cost)
        usage = response.usage
        return dataclasses.replace(
            verdict, input_tokens=usage.input_tokens, output_tokens=usage.output_tokens
        )


def _parse(content: str, cost: float) -> Verdict:
    match = re.search(r"\{.*\}", content, re.DOTALL)
    try:
        data = json.loads(match.group(0) if match else content)
        score = float(data["score"])
    except (ValueError, KeyError, TypeError):
        return Verdict(0.0, f"judge reply is not the JSON asked for: {content[:200]!r}", cost)
    return Verdict(min(1.0, max(0.0, score)), str(data.get("reason", "")), cost)


def build_judge(project: Path, config: ProjectConfig, agent: AgentDefinition) -> Judge:
    """The judge `[evals]` configures, resolving a project judge policy inside the release's code."""
    reference = config.evals.judge_model
    if reference.startswith("scripted:"):
        policy: Policy = (
            agent.resolve(config.evals.judge_policy) if config.evals.judge_policy else overlap_judge
        )
        model: ChatModel = ScriptedModel(reference, policy)
    else:
        model = build_client(reference, config, agent.resolve)
    chain = FallbackChain([model], retries=config.model.retries, backoff_s=0.5)
    return Judge(chain, load_prompt(project, config), pricer_for(config))


# --------------------------------------------------------------------------- the scripted judge

_WORD = re.compile(r"[a-z0-9][a-z0-9'-]*")
_NEGATION = re.compile(r"\b(not|never|no|without|nor|avoid(?:s|ing)?)\b")
_CLAUSE_END = re.compile(r"[.;,:!?]|\b(and|but|or|while|yet)\b")
_STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "been",
        "being",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "each",
        "for",
        "from",
        "had",
        "has",
        "have",
        "how",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "may",
        "might",
        "must",
        "of",
        "on",
        "or",
        "our",
        "out",
        "reply",
        "replies",
        "response",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "to",
        "too",
        "under",
        "up",
        "very",
        "was",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "will",
        "with",
        "would",
        "you",
        "your",
        "agent",
        "customer",
        "user",
        "says",
        "said",
        "tells",
        "mentions",
        "gives",
        "given",
    ]
)


def _stem(word: str) -> str:
    for suffix in ("ing", "ies", "es", "ed", "s"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def _terms(text: str) -> list[str]:
    return [
        _stem(w) for w in _WORD.findall(text.lower()) if w not in _STOPWORDS and (len(w) > 2 or w.isdigit())
    ]


def rubric_terms(rubric: str) -> tuple[set[str], set[str]]:
    """(wanted, forbidden): words the reply should use, and words in a negated clause it should not."""
    wanted: set[str] = set()
    forbidden: set[str] = set()
    for sentence in re.split(r"(?<=[.;!?])\s+", rubric.lower()):
        position = 0
        for negation in _NEGATION.finditer(sentence):
            wanted.update(_terms(sentence[position : negation.start()]))
            end = _CLAUSE_END.search(sentence, negation.end())
            stop = end.start() if end else len(sentence)
            forbidden.update(_terms(sentence[negation.end() : stop]))
            position = stop
        wanted.update(_terms(sentence[position:]))
    return wanted - forbidden, forbidden


def overlap_score(rubric: str, reply: str) -> tuple[float, str]:
    wanted, forbidden = rubric_terms(rubric)
    said = set(_terms(reply))
    found = sorted(wanted & said)
    missing = sorted(wanted - said)
    violated = sorted(forbidden & said)
    coverage = len(found) / len(wanted) if wanted else 1.0
    penalty = len(violated) / len(forbidden) if forbidden else 0.0
    score = round(coverage * (1 - penalty), 4)
    reason = (
        f"scripted overlap judge (not a language model): {len(found)}/{len(wanted)} rubric terms present"
        + (f"; missing {', '.join(missing[:8])}" if missing else "")
        + (f"; negated terms present: {', '.join(violated[:8])}" if violated else "")
    )
    return score, reason


def overlap_judge(turn: ScriptedTurn) -> str:
    """The `scripted:judge` policy: scores the overlap of the rubric and the reply in the judge message."""
    text = turn.user_input
    rubric = _section(text, RUBRIC_HEADER)
    reply = _section(text, REPLY_HEADER, last=True)
    score, reason = overlap_score(rubric, reply)
    return json.dumps({"score": score, "reason": reason})


def _section(text: str, header: str, *, last: bool = False) -> str:
    """The text under `header`: up to the next `## ` header, or to the end for the last section."""
    start = text.rfind(header) if last else text.find(header)
    if start < 0:
        return ""
    body = text[start + len(header) :]
    end = -1 if last else body.find("\n## ")
    return body if end < 0 else body[:end]
