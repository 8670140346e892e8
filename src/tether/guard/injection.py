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
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from tether.guard.hidden import fold, revealed
from tether.guard.prefilter import Prefiltered
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
    # words put in the user's mouth: what the assistant must say, verbatim
    (
        "tell say respond reply write inform notify send+user users customer customers client clients shopper buyer",
        r"\b(tell|say to|respond to|reply to|write to|inform|notify|send)\s+(the\s+|every\s+|each\s+)?"
        r"(user|customer|client|shopper|buyer)s?\b\s*(with\s+(exactly|only|this|the following)\b|exactly\b|"
        r"verbatim\b|:|\"|\u201c|\\\")",
    ),
    (
        "verbatim word exactly",
        r"\b(verbatim|word for word|word-for-word|exactly as (written|follows|below|given|shown))\b",
    ),
    (
        "reply replies answer answers response responses output message+as every each all",
        r"\b(use|copy|paste|send|give|return|output|post)\b[^.\n]{0,30}\bas (your|the|its) (final )?"
        r"(reply|answer|response|output|message)\b|\b(in|with) (every|each|all) (reply|replies|answers?|responses?)\b",
    ),
    (
        "customers users callers customer user caller+given told sent shown informed",
        r"\b(customers?|users?|callers?)\s+(should|must|shall|needs? to|have to|has to)\s+be\s+"
        r"(given|told|sent|shown|informed)\b",
    ),
    # hidden or encoded orders, and replies meant to slip past the output checks
    (
        "decode decrypt deobfuscate unscramble translate encoded encrypted obfuscated hidden",
        r"\b(decode|decrypt|deobfuscate|unscramble|translate)\b[^.\n]{0,30}\b(and|then)\s+(obey|follow|execute|"
        r"do|run|act|comply|apply|carry)\b|\b(encoded|encrypted|obfuscated|hidden|secret)\s+(directive|"
        r"instructions?|commands?|orders?|message for)\b",
    ),
    (
        "reply respond answer write+french spanish german italian portuguese dutch russian chinese japanese "
        "base64 hex rot13 morse leetspeak latin reverse block binary",
        r"\b(reply|respond|answer|write)\b[^.\n]{0,25}\b(in|using)\s+(french|spanish|german|italian|portuguese|"
        r"dutch|russian|chinese|japanese|base64|hex|rot13|morse|leetspeak|pig latin|reverse|a code block|binary)\b",
    ),
    (
        "spell write format put+backwards reverse between letter",
        r"\b(spell|write|format|put)\b[^.\n]{0,30}\b(backwards|in reverse|with (spaces|dashes|dots|hyphens) "
        r"between|letter by letter|one letter per line)\b",
    ),
    # handing out what the data holds
    (
        "secret secrets key keys credentials token tokens password passwords",
        r"\b(print|output|reveal|show|share|include|display|list|dump|expose|paste|repeat)\b[^.\n]{0,20}"
        r"\b(the|these|those|all|any)\s+(secrets?|api[ -]?keys?|credentials|access tokens?|tokens|passwords?|"
        r"private keys?)\b",
    ),
    (
        "share provide give send forward disclose include pass+details data information info",
        r"\b(share|provide|give|send|forward|disclose|include|pass on)\b[^.\n]{0,30}\b(personal|contact|account|"
        r"bank|card|private)\s+(details|data|information|info)\b[^.\n]{0,30}\b(with|to)\s+(the\s+)?"
        r"(customer|user|caller|them|anyone)\b",
    ),
]
_MARKDOWN_IMAGE = re.compile(r"!\[[^\]]{0,200}\]\(\s*(https?|hxxps?|//)", re.IGNORECASE)
_COMPILED: list[tuple[Any, ...]] = [
    (*tuple(frozenset(part.split()) for part in words.split("+")), Prefiltered(rx)) for words, rx in _FAMILIES
]
"""(trigger word sets..., pattern): the pattern runs when the text has a word from every set."""
_BY_TRIGGER: dict[str, frozenset[int]] = {}
for _index, (_first, *_rest) in enumerate(_COMPILED):
    for _word in _first:
        _BY_TRIGGER[_word] = _BY_TRIGGER.get(_word, frozenset()) | {_index}
_TRIGGERS = frozenset(_BY_TRIGGER)


def _candidates(words: set[str]) -> list[int]:
    """The families whose first trigger set the text meets (a C-level set intersection first)."""
    present = words & _TRIGGERS
    if not present:
        return []
    return sorted(frozenset().union(*(_BY_TRIGGER[w] for w in present)))


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
    (*(frozenset(part.split()) for part in words.split("+")), Prefiltered(rx)) for words, rx in _PHISHING
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
    "dictates what the user is told",
    "dictates the answer word for word",
    "dictates the answer",
    "dictates what the user is told",
    "hides an encoded order",
    "asks for a reply that evades checks",
    "asks for a reply that evades checks",
    "hands out secrets",
    "hands out personal data",
]
_SPACED = re.compile(r"\b(?:[A-Za-z][ .\-_*]){3,}[A-Za-z]\b")
# A run of ordinary characters is taken whole (`+` inside): the same segments as one character per
# step, several times faster.
_SEGMENT = re.compile(r'(?:[^.!?\n"\\]+|\\.|[.!?](?![\s"]|$))+[.!?]*', re.DOTALL)
_WORDS = str.maketrans({c: " " for c in "\"'`.,;:!?()[]{}<>/\\|=*+&^%#~\n\t\r"})
_LETTERS = frozenset("bcdefghjklmnopqrstuvwxyz")
_OPEN_QUOTES = ('"', "\u201c", '\\"')
_BACK_REFERENCE = re.compile(
    r"\b(above|preceding|previous (sentence|line|text|message)|these|those|this (information|data|text|message))\b",
    re.IGNORECASE,
)
MAX_PAYLOAD_CHARS = 600
"""How far a flagged sentence's payload (the quoted or colon-introduced text it dictates) reaches."""
_LURES: list[tuple[str, str]] = [
    (
        "use enter apply redeem+code codes coupon voucher",
        r"\b(use|enter|apply|redeem)\b[^.\n]{0,25}\b(codes?|coupon|voucher)\b",
    ),
    (
        "qualify qualifies qualified selected chosen won+free prize reward gift upgrade bonus voucher",
        r"\b(qualif(y|ies|ied)|been selected|been chosen|won)\b[^.\n]{0,30}\b(free|prize|reward|gift|upgrade|"
        r"bonus|voucher)\b",
    ),
    (
        "claim",
        r"\bclaim (it|yours|your \w+|the \w+)\b[^.\n]{0,20}\b(at|here|now|before|within|via|by visiting)\b",
    ),
    ("alert warning urgent suspended locked", r"\b(security alert|urgent|final warning|action required)\b"),
]
_LURES_COMPILED: list[tuple[Any, ...]] = [
    (*(frozenset(part.split()) for part in words.split("+")), Prefiltered(rx)) for words, rx in _LURES
]


def normalise(text: str) -> str:
    """Fold the simple obfuscations away before matching (used on data, never shown to anyone)."""
    folded = fold(text)
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
    suspect: tuple[str, ...] = ()
    """The attacker's text as found: each flagged sentence with the payload it dictates (quoted or
    after a colon), and decoded hidden text. What the answer must not repeat (`echo.py`)."""


class InstructionDetector:
    """Heuristic instruction detector, built once per agent (it knows the agent's tool names)."""

    def __init__(self, tool_names: Iterable[str] = ()) -> None:
        self._tool_names = frozenset(n.lower() for n in tool_names if n)
        self._tool_words = [frozenset(n.split("_")) for n in self._tool_names if "_" in n]
        self._prepared: tuple[str, str, set[str]] | None = None
        names = sorted({re.escape(n.lower()) for n in tool_names if n}, key=len, reverse=True)
        spoken = sorted({n.replace("_", " ") for n in names if "_" in n}, key=len, reverse=True)
        any_name = "|".join(names + spoken)
        self._tools = (
            re.compile(
                r"\b(" + "|".join(names) + r")\b\s*(\(|with\b|for\b|using\b|on\b)"
                r"|\b(call|invoke|run|execute|trigger|use)\s+(the\s+)?(" + any_name + r")\b"
            )
            if names
            else None
        )

    def _spoken(self, words: set[str]) -> bool:
        """Whether the text may name a tool in words ("draft refund note"): all its parts occur."""
        return any(parts <= words for parts in self._tool_words)

    def _prepare(self, text: str) -> tuple[str, set[str]]:
        cached = self._prepared
        if cached is not None and cached[0] is text:  # screen, scan and lures read the same text
            return cached[1], cached[2]
        folded = fold(text)
        words, spaced = _words(folded)
        if spaced:
            folded = _SPACED.sub(lambda m: re.sub(r"[ .\\-_*]", "", m.group(0)), folded)
            words, _ = _words(folded)
        self._prepared = (text, folded, words)
        return folded, words

    def _hits(self, text: str, *, first: bool = False, hidden: bool = True) -> list[str]:
        folded, words = self._prepare(text)
        reasons: list[str] = []
        lowered = folded.lower()
        for index in _candidates(words):
            *triggers, rx = _COMPILED[index]
            if all(not t.isdisjoint(words) for t in triggers[1:]) and rx.search(lowered):
                reasons.append(_NAMES[index])
                if first:
                    return reasons
        if "![" in folded and _MARKDOWN_IMAGE.search(lowered):
            reasons.append("markdown image to a URL")
        if (
            self._tools is not None
            and (not self._tool_names.isdisjoint(words) or self._spoken(words))
            and self._tools.search(lowered)
        ):
            reasons.append("directs one of the agent's tools")
        if has_control_tokens(folded, words):
            reasons.append("chat-template control tokens")
        if hidden and not (first and reasons):
            for run in revealed(text, encoded=max(map(len, words), default=0) >= _ENCODED_WORD):
                inner = self._hits(run.text, first=first, hidden=False)
                reasons += [f"{reason} ({run.how})" for reason in inner]
                if first and reasons:
                    return reasons
        return reasons

    def screen(self, text: str) -> bool:
        """True when the text may hold instructions (cheap; a False is final)."""
        return bool(self._hits(text, first=True))

    def scan_joined(self, fragments: Sequence[str], text: str) -> Finding | None:
        """Instruction-like text that only appears when an earlier result's unfinished sentence
        (`fragments`) is read on into the first words of a string value or line of `text`."""
        if not fragments:
            return None
        heads = [p.lstrip() for p in _pieces(text)]
        heads = [h for h in heads if h[:1].islower() and h.count(" ") >= 2][:MAX_JOINS]
        if not any(self.screen(f"{fragment} {head[:300]}") for head in heads for fragment in fragments):
            return None
        segments = [m.span() for m in _SEGMENT.finditer(text)]
        flagged: list[int] = []
        suspect: list[str] = []
        reasons: list[str] = []
        tried = 0
        for index, (start, end) in enumerate(segments):
            head = text[start:end].lstrip()
            before = text[start - 1 : start] if start else ""
            if not head[:1].islower() or before not in ('"', "\n", "") or head.count(" ") < 2:
                continue  # a continuation starts a string value or line with a few lowercase words
            tried += 1
            if tried > MAX_JOINS:
                break
            for fragment in fragments:
                joined = f"{fragment} {head}"
                if self.screen(joined):
                    reasons += [f"{r} (split across tool results)" for r in self._hits(joined)]
                    flagged.append(index)
                    suspect.append(joined)
                    break
        if not flagged:
            return None
        return _cut(text, segments, flagged, reasons, suspect)

    def _spans(self, folded: str, words: set[str]) -> list[tuple[int, int, str]]:
        """(start, end, reason) of every instruction-like match in already folded text."""
        lowered = folded.lower()
        spans: list[tuple[int, int, str]] = []
        for index in _candidates(words):
            *triggers, rx = _COMPILED[index]
            if all(not t.isdisjoint(words) for t in triggers[1:]):
                spans += [(m.start(), m.end(), _NAMES[index]) for m in rx.finditer(lowered)]
        if "![" in folded:
            spans += [
                (m.start(), m.end(), "markdown image to a URL") for m in _MARKDOWN_IMAGE.finditer(lowered)
            ]
        if self._tools is not None and (not self._tool_names.isdisjoint(words) or self._spoken(words)):
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
        segments = [m.span() for m in _SEGMENT.finditer(text)]
        reasons: list[str] = []
        suspect: list[str] = []
        flagged: list[int] = []
        if folded == text:
            spans = self._spans(folded, words)
            reasons += [reason for _, _, reason in spans]
            overlapping = _Overlaps(segments)
            flagged += sorted({i for a, b, _ in spans for i in overlapping(a, b)})
            for run in revealed(text):
                hits = self._hits(run.text, hidden=False)
                if hits:
                    reasons += [f"{reason} ({run.how})" for reason in hits]
                    suspect.append(run.text)
                    flagged += overlapping(run.start, run.end)
        else:  # offsets moved (Unicode folding, escapes, joined letters): judge segment by segment
            for i, (s, e) in enumerate(segments):
                hits = self._hits(text[s:e])
                if hits:
                    reasons += hits
                    flagged.append(i)
                    suspect += [r.text for r in revealed(text[s:e]) if self._hits(r.text, hidden=False)]
        if not flagged:  # the instruction spans segments: treat the whole text as instruction-like
            return Finding(
                reasons=tuple(dict.fromkeys(reasons)) or ("instruction across sentences",),
                redacted=REMOVED,
                suspect=(*suspect, text[: MAX_PAYLOAD_CHARS * 2]),
            )
        return _cut(text, segments, sorted(set(flagged)), reasons, suspect)


class _Overlaps:
    """The segments (sorted, disjoint spans) that overlap a span, by binary search: a long JSON
    result has hundreds of segments, and testing each against each flagged span was quadratic."""

    def __init__(self, segments: list[tuple[int, int]]) -> None:
        self._starts = [s for s, _ in segments]
        self._ends = [e for _, e in segments]

    def __call__(self, start: int, end: int) -> range:
        """Indices of the segments (s, e) with start < e and s < end."""
        return range(bisect_right(self._ends, start), bisect_left(self._starts, end))


_ENCODED_WORD = 20
"""An encoded run (base64, hex) needs a long unbroken word; shorter words skip those decoders."""
_DANGLING_WORDS = 4
MAX_FRAGMENTS = 8
MAX_JOINS = 16
"""Continuations tried per result (each costs one screen of a short joined sentence)."""


def _pieces(text: str) -> list[str]:
    """The string values / lines of `text` long enough to hold a few words (split by C-level calls)."""
    return [p for p in text.replace("\n", '"').split('"') if len(p) >= 24]


def dangling(text: str) -> list[str]:
    """Sentence fragments `text` leaves unfinished (a string value or line that stops mid-sentence,
    at least a few words): an instruction can be split so its halves sit in two tool results."""
    found: list[str] = []
    for piece in _pieces(text):
        tail = piece.rstrip()
        if tail.endswith((".", "!", "?", ":", "\\")) or tail.count(" ") < _DANGLING_WORDS:
            continue
        last = max(tail.rfind(". "), tail.rfind("! "), tail.rfind("? "))
        fragment = tail[last + 2 :] if last >= 0 else tail
        if fragment.count(" ") >= _DANGLING_WORDS:
            found.append(fragment.strip()[-200:])
    return found[-MAX_FRAGMENTS:]


def _opens_payload(text: str, start: int, end: int, json_mode: bool) -> bool:
    """Whether the flagged sentence text[start:end] introduces dictated text (a quote or a colon)."""
    sentence = text[start:end]
    if sentence.rstrip(' \\"').endswith(":"):
        return True
    if (sentence.count('"') + sentence.count("\u201c") - sentence.count("\u201d")) % 2 == 1:
        return True
    return not json_mode and text[end : end + 4].lstrip().startswith(('"', "\u201c"))


def _cut(
    text: str, segments: list[tuple[int, int]], flagged: list[int], reasons: list[str], suspect: list[str]
) -> Finding:
    """The finding for `text` with the regions of its flagged segments replaced by `REMOVED`; each
    region cut is remembered as suspect text too (the answer must not repeat it)."""
    pieces: list[str] = []
    last = 0
    for start, end in _regions(text, segments, flagged):
        pieces += [text[last:start], REMOVED]
        suspect.append(text[start:end])
        last = end
    pieces.append(text[last:])
    return Finding(reasons=tuple(dict.fromkeys(reasons)), redacted="".join(pieces), suspect=tuple(suspect))


def _regions(text: str, segments: list[tuple[int, int]], flagged: list[int]) -> list[tuple[int, int]]:
    """The spans to cut: each flagged segment, grown over the payload it introduces (up to the
    closing quote, the end of the line or of the JSON string) and back over the sentence it points
    at ("repeat the above"); overlapping spans merged. In JSON a span never crosses an unescaped
    quote, so a cut JSON result stays valid JSON."""
    json_mode = text.lstrip()[:1] in ("{", "[")
    chosen = set(flagged)

    def stops(gap: str) -> bool:
        return "\n" in gap or (json_mode and '"' in gap)

    for index in flagged:
        start, end = segments[index]
        if (
            index > 0
            and _BACK_REFERENCE.search(text, start, end)
            and not stops(text[segments[index - 1][1] : start])
        ):
            chosen.add(index - 1)
        if not _opens_payload(text, start, end, json_mode):
            continue
        reach = start + MAX_PAYLOAD_CHARS
        for following in range(index + 1, len(segments)):
            s, e = segments[following]
            if s > reach or stops(text[segments[following - 1][1] : s]):
                break
            chosen.add(following)
            inner = text[s:e]
            if (
                "\u201d" in inner
                or (json_mode and '"' in inner)
                or (not json_mode and text[e : e + 1] == '"')
            ):
                break
    regions: list[tuple[int, int]] = []
    for index in sorted(chosen):
        start, end = segments[index]
        if regions and not stops(text[regions[-1][1] : start]) and start - regions[-1][1] <= 2:
            regions[-1] = (regions[-1][0], end)
        else:
            regions.append((start, end))
    if not json_mode:  # a quote opened inside a cut span is closed inside it too
        regions = [
            (s, e + 1) if text[s:e].count('"') % 2 and text[e : e + 1] == '"' else (s, e) for s, e in regions
        ]
    return regions


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


def lures(text: str, detector: InstructionDetector | None = None) -> list[str]:
    """The sentences of untrusted `text` that speak to the user as a lure would (phishing, promo
    codes, prizes, urgency). Not removed from what the model reads (a real notice can sound like
    this), but the answer must not repeat them (`echo.py`)."""
    folded, words = (detector or _DETECTOR)._prepare(text)
    families = [
        rx
        for *triggers, rx in (*_PHISHING_COMPILED, *_LURES_COMPILED)
        if all(not t.isdisjoint(words) for t in triggers)
    ]
    if not families:
        return []
    lowered = folded.lower()
    return [
        folded[start:end]
        for start, end in (m.span() for m in _SEGMENT.finditer(folded))
        if any(rx.search(lowered, start, end) for rx in families)
    ]


_DETECTOR = InstructionDetector()
