"""The instruction detector: does text that should be data try to instruct the model?

Fast heuristics always run. One combined regular expression screens the whole text first (most
tool results are clean, and that pass costs a few microseconds per KB); only a hit is looked at
segment by segment, so that `redact` can cut out just the instruction-like sentences and leave the
data around them. Segments are split at sentence ends, line breaks and JSON string quotes, so a
redacted JSON result stays valid JSON.

Text is normalised before matching (Unicode NFKC, zero-width characters dropped, letter-spaced
words like "i g n o r e" joined, case folded), so simple obfuscations do not slip past. The
patterns describe families of attack (overriding instructions, claiming a role, directing tools,
sending data out, keeping secrets from the user, extracting the prompt, dictating the answer,
phishing, control tokens), not known strings. A model-based second opinion is optional
(`classifier.py`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tether.guard.tokens import control_token_spans, has_control_tokens

REMOVED = "[instruction-like text removed by Tether]"

_OBJ = r"(instructions?|rules|prompts?|guidelines|directions|directives|context|programming|polic(y|ies)|constraints)"
_AI = "ai assistant agent model llm chatbot bot"
_FAMILIES: list[tuple[str, str]] = [
    # (trigger words, pattern): a pattern runs only on text that has one of its trigger words
    # overriding what the model was told
    (
        "ignore ignoring disregard forget override overrule bypass skip",
        rf"\b(ignore|ignoring|disregard|forget|override|overrule|bypass|skip)\b[^.\n]{{0,40}}\b{_OBJ}\b",
    ),
    (
        "instruction instructions rules prompt guidelines directives directions",
        rf"\b(new|updated|revised|real|actual|hidden|secret|following)\s+(system\s+)?{_OBJ}\b\s*[:\-]",
    ),
    (
        "now act pretend roleplay",
        r"\b(you are now|you're now|from now on,? you|act as (an?|the)|pretend (to be|you are)|roleplay as)\b",
    ),
    (
        "system admin developer root",
        r"\b(system|admin|developer|root)\s*(message|prompt|override|update|notice|command|mode)\b",
    ),
    (
        _AI,
        r"\b(attention|note|message|instructions?|hey|dear|important)\b[^.\n]{0,12}"
        r"\b(ai|assistant|agent|model|llm|chatbot|bot)\b\s*[:,!-]",
    ),
    (
        _AI,
        r"\b(ai|assistant|agent|model|llm|chatbot)\s*(must|should|shall|needs? to|has to|is required to)\b",
    ),
    # sending data out or planting links
    (
        "send post forward email e-mail upload transmit exfiltrate leak submit+http https hxxp hxxps www @",
        r"\b(send|post|forward|email|e-mail|upload|transmit|exfiltrate|leak|submit)\b[^.\n]{0,60}"
        r"\b(to|at|via)\b\s*(https?|hxxps?|www\b|[\w.+-]+@)",
    ),
    (
        "link url image img markdown pixel",
        r"\b(include|add|append|insert|embed|render|show)\b[^.\n]{0,40}\b(link|url|image|img|markdown|pixel)\b",
    ),
    # keeping it from the user
    (
        "tell inform mention notify reveal alert let",
        r"\b(do not|don't|dont|never)\s+(tell|inform|mention|notify|reveal|alert|let)\b[^.\n]{0,20}"
        r"\b(user|customer|human|anyone|them)\b",
    ),
    (
        "without",
        r"\bwithout\s+(telling|informing|asking|notifying|alerting|approval|confirmation|checking)\b",
    ),
    # extracting the prompt
    (
        "prompt instructions rules",
        r"\b(reveal|print|repeat|output|show|display|leak|dump|recite)\b[^.\n]{0,30}"
        r"\b(system prompt|your (instructions|prompt|rules)|hidden (instructions|prompt)|initial prompt)\b",
    ),
    # dictating the answer
    ("respond reply answer", r"\b(respond|reply|answer)\s+(only\s+)?(with|by saying)\b"),
    (
        "answer response reply output",
        r"\byour (final )?(answer|response|reply|output)\s+(must|should|shall|will)\b",
    ),
    ("user customer+tell say inform", r"\b(tell|say to|inform)\s+the\s+(user|customer)\s+(that|to)\b"),
    # acting with the tools
    (
        "tool tools function api action",
        r"\b(call|invoke|use|run|execute|trigger|perform)\b[^.\n]{0,20}\b(tool|function|api|action)\b",
    ),
    (
        "refund refunds+issue process approve grant send make+$ usd immediately now right without",
        r"\b(issue|process|approve|grant|send|make)\b[^.\n]{0,25}\b(full\s+)?refund\b[^.\n]{0,30}"
        r"(\$|usd|immediately|now|right away|without)",
    ),
    # the user's or the operator's authority claimed by data
    (
        "user customer operator owner admin+authorized authorised approved asked wants instructed permitted",
        r"\b(the )?(user|customer|operator|owner|admin)\s+(has\s+)?(already\s+)?(authori[sz]ed|approved|asked|wants|"
        r"instructed|permitted)\s+(you|the assistant|the agent|this)\b",
    ),
    # faking the end of the data, or hiding instructions in markup
    (
        "end close+data document context output result results input",
        r"\b(end|close) of (the )?(tool )?(data|document|context|output|results?|input)\b",
    ),
    ("<!--", r"<!--[^>]{0,300}\b(assistant|ai|model|agent|instruction|instructions|ignore|prompt)\b"),
    # the same overrides in other common languages
    (
        "ignora ignorez ignoriere ignoriert ignorar vergiss olvida oublie oubliez dimentica",
        r"\b(ignora|ignorez|ignoriere|ignoriert|ignorar|vergiss|olvida|oublie[zr]?|dimentica)\b[^.\n]{0,40}"
        r"\b(instrucciones|instructions|anweisungen|istruzioni|instruções|regeln|reglas|règles|regole|consignes)\b",
    ),
    (
        "immediately+refund transfer wire pay delete cancel approve",
        r"\bimmediately\b[^.\n]{0,30}\b(refund|transfer|wire|pay|delete|cancel|approve)\b",
    ),
]
_MARKDOWN_IMAGE = re.compile(r"!\[[^\]]{0,200}\]\(\s*(https?|hxxps?|//)", re.IGNORECASE)
_COMPILED: list[tuple[Any, ...]] = [
    (*tuple(frozenset(part.split()) for part in words.split("+")), re.compile(rx)) for words, rx in _FAMILIES
]
"""(trigger word sets..., pattern): the pattern runs when the text has a word from every set."""
_PHISHING: list[tuple[str, str]] = [
    (
        "verify confirm validate update re-enter reenter provide send+password passcode pin credentials login "
        "card cvv cvc security bank ssn social",
        r"\b(verify|confirm|validate|update|re-?enter|provide|send)\b[^.\n]{0,25}\b(your|the)\b[^.\n]{0,15}"
        r"\b(password|passcode|pin|credentials|login|card (number|details)|cvv|cvc|security code|"
        r"bank (details|account)|ssn|social security)\b",
    ),
    (
        "click tap visit go log login sign signin+here link below http https hxxp hxxps www",
        r"\b(click|tap|visit|go to|log ?in at|sign ?in at)\b[^.\n]{0,20}\b(here|this link|the link|below|https?|hxxps?|www)\b",
    ),
    (
        "suspended locked closed frozen terminated",
        r"\b(account|payment|card)\s+(will be|has been|is)\s+(suspended|locked|closed|frozen|terminated)\b",
    ),
    (
        "bitcoin crypto cryptocurrency western gift+send wire transfer",
        r"\b(send|wire|transfer)\b[^.\n]{0,30}\b(bitcoin|crypto(currency)?|western union|gift card codes?)\b",
    ),
]
_PHISHING_COMPILED: list[tuple[Any, ...]] = [
    (*(frozenset(part.split()) for part in words.split("+")), re.compile(rx)) for words, rx in _PHISHING
]
_NAMES = [
    "overrides instructions",
    "announces new instructions",
    "assigns the model a role",
    "claims system authority",
    "addresses the AI",
    "tells the AI what it must do",
    "sends data out",
    "plants a link or image",
    "hides something from the user",
    "acts without asking",
    "extracts the prompt",
    "dictates the answer",
    "dictates the answer",
    "dictates what the user is told",
    "directs a tool",
    "demands a refund",
    "claims the user's or operator's authority",
    "fakes the end of the data",
    "hides instructions in markup",
    "overrides instructions (another language)",
    "demands an urgent action",
]
_ZERO_WIDTH = re.compile("[\u00ad\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")
_SPACED = re.compile(r"\b(?:[A-Za-z][ .\-_*]){3,}[A-Za-z]\b")
_SEGMENT = re.compile(r'(?:[^.!?\n"\\]|\\.|[.!?](?![\s"]|$))+[.!?]*', re.DOTALL)
_WORDS = str.maketrans({c: " " for c in "\"'`.,;:!?()[]{}<>/\\|=*+&^%#~\n\t\r"})
_LETTERS = frozenset("bcdefghjklmnopqrstuvwxyz")


def normalise(text: str) -> str:
    """Fold the simple obfuscations away before matching (used on data, never shown to anyone)."""
    folded = text if text.isascii() else _ZERO_WIDTH.sub("", unicodedata.normalize("NFKC", text))
    if len(set(folded.lower().split()) & _LETTERS) >= 4 and _SPACED.search(folded):
        folded = _SPACED.sub(lambda m: re.sub(r"[ .\-_*]", "", m.group(0)), folded)
    return folded


def _words(folded: str) -> tuple[set[str], bool]:
    """The lower-cased words of the text, and whether it holds letter-spaced words to join."""
    words = set(folded.lower().translate(_WORDS).split())
    if "@" in folded:
        words.add("@")
    if "$" in folded:
        words.add("$")
    if "<!--" in folded:
        words.add("<!--")
    spaced = len(words & _LETTERS) >= 4 and _SPACED.search(folded) is not None
    return words, spaced


@dataclass(frozen=True)
class Finding:
    """Instruction-like text found; `redacted` is the text with those segments cut out."""

    reasons: tuple[str, ...]
    redacted: str


class InstructionDetector:
    """Heuristic instruction detector, built once per agent (it knows the agent's tool names)."""

    def __init__(self, tool_names: Iterable[str] = ()) -> None:
        self._tool_names = frozenset(n.lower() for n in tool_names if n)
        names = sorted({re.escape(n.lower()) for n in tool_names if n}, key=len, reverse=True)
        self._tools = (
            re.compile(r"\b(" + "|".join(names) + r")\b\s*(\(|with\b|for\b|using\b|on\b)") if names else None
        )

    def _prepare(self, text: str) -> tuple[str, set[str]]:
        folded = text if text.isascii() else _ZERO_WIDTH.sub("", unicodedata.normalize("NFKC", text))
        words, spaced = _words(folded)
        if spaced:
            folded = _SPACED.sub(lambda m: re.sub(r"[ .\\-_*]", "", m.group(0)), folded)
            words, _ = _words(folded)
        return folded, words

    def _hits(self, text: str, *, first: bool = False) -> list[str]:
        folded, words = self._prepare(text)
        reasons: list[str] = []
        lowered = folded.lower()
        for index, family in enumerate(_COMPILED):
            *triggers, rx = family
            if all(not t.isdisjoint(words) for t in triggers) and rx.search(lowered):
                reasons.append(_NAMES[index])
                if first:
                    return reasons
        if "![" in folded and _MARKDOWN_IMAGE.search(lowered):
            reasons.append("markdown image to a URL")
        if self._tool_names and not self._tool_names.isdisjoint(words):
            assert self._tools is not None
            if self._tools.search(lowered):
                reasons.append("directs one of the agent's tools")
        if has_control_tokens(folded, words):
            reasons.append("chat-template control tokens")
        return reasons

    def screen(self, text: str) -> bool:
        """True when the text may hold instructions (cheap; a False is final)."""
        return bool(self._hits(text, first=True))

    def _spans(self, folded: str, words: set[str]) -> list[tuple[int, int, str]]:
        """(start, end, reason) of every instruction-like match in already folded text."""
        lowered = folded.lower()
        spans: list[tuple[int, int, str]] = []
        for index, family in enumerate(_COMPILED):
            *triggers, rx = family
            if all(not t.isdisjoint(words) for t in triggers):
                spans += [(m.start(), m.end(), _NAMES[index]) for m in rx.finditer(lowered)]
        if "![" in folded:
            spans += [
                (m.start(), m.end(), "markdown image to a URL") for m in _MARKDOWN_IMAGE.finditer(lowered)
            ]
        if self._tools is not None and not self._tool_names.isdisjoint(words):
            spans += [
                (m.start(), m.end(), "directs one of the agent's tools")
                for m in self._tools.finditer(lowered)
            ]
        if has_control_tokens(folded, words):
            spans += [(a, b, "chat-template control tokens") for a, b in control_token_spans(folded)]
        return spans

    def scan(self, text: str) -> Finding | None:
        """The instruction-like segments of `text`, or None when it reads as plain data."""
        if not self.screen(text):
            return None
        folded, words = self._prepare(text)
        if folded != text:  # offsets moved (Unicode folding, joined letters): judge segment by segment
            return self._scan_segments(text)
        spans = self._spans(folded, words)
        reasons = tuple(dict.fromkeys(reason for _, _, reason in spans))
        pieces: list[str] = []
        last = 0
        for segment in _SEGMENT.finditer(text):
            start, end = segment.span()
            if any(a < end and start < b for a, b, _ in spans):
                pieces += [text[last:start], REMOVED]
                last = end
        if not pieces:
            return Finding(reasons=reasons or ("instruction across sentences",), redacted=REMOVED)
        pieces.append(text[last:])
        return Finding(reasons=reasons, redacted="".join(pieces))

    def _scan_segments(self, text: str) -> Finding:
        reasons: list[str] = []
        pieces: list[str] = []
        last = 0
        for segment in _SEGMENT.finditer(text):
            hits = self._hits(segment.group(0))
            if hits:
                reasons.extend(hits)
                pieces += [text[last : segment.start()], REMOVED]
                last = segment.end()
        if not reasons:  # the instruction spans segments: treat the whole text as instruction-like
            return Finding(reasons=("instruction across sentences",), redacted=REMOVED)
        pieces.append(text[last:])
        return Finding(reasons=tuple(dict.fromkeys(reasons)), redacted="".join(pieces))


def phishing(text: str) -> str | None:
    """Why an answer reads like phishing (asks for credentials, urgent links...), or None."""
    folded, words = _DETECTOR._prepare(text)
    lowered = folded.lower()
    for family in _PHISHING_COMPILED:
        *triggers, rx = family
        if all(not t.isdisjoint(words) for t in triggers):
            found = rx.search(lowered)
            if found is not None:
                return f"asks the user to act on: {found.group(0)!r}"
    return None


_DETECTOR = InstructionDetector()
