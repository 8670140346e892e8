"""Attacker text in the answer: the final answer repeating suspect untrusted text of this run.

Marking and redacting tool results keep the model from *obeying* injected text; a model can still
*repeat* it (quote an upstream error to the user, pass on a "customer-facing summary", a phishing
line, a fake discount code). This check remembers, per run execution, the untrusted text that was
suspect: what the instruction detector flagged (each flagged sentence with the payload it dictates,
and decoded hidden text) and sentences that speak to the user like a lure (`injection.lures`).
Ordinary tool data is never remembered, so copying facts from tool results is never flagged.

The answer is compared by word shingles: every `min_words`-word window of the suspect text goes
into a set, and the answer's windows are looked up in it (one pass over the answer, set lookups;
words are Unicode-folded and lower-cased, so case, punctuation, look-alike letters and zero-width
splits do not hide a copy). Distinctive tokens of suspect text (codes like `STAFF-90-OFF`, mixed
letters and digits) count on their own, unless the user's own messages or the clean part of the
same data also hold them. Encoded runs in the answer (base64, hex...) are decoded and compared too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import accumulate, compress
from operator import add

from tether.guard.hidden import fold, revealed

REMOVED = "[text from an untrusted source removed by Tether]"
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_TOKEN = re.compile(
    r"(?<![\w-])(?:(?=[\w-]*\d)(?=[\w-]*[A-Za-z])[A-Za-z0-9][\w-]{4,}[A-Za-z0-9]"
    r"|[A-Z]{2,}(?:-[A-Z0-9]{2,})+)(?![\w-])"
)
_NOT_ALNUM = str.maketrans({chr(c): " " for c in range(128) if not chr(c).isalnum()})
"""ASCII text split into the same words as `_WORD` by C-level calls (translate, split)."""
MAX_REMEMBERED_CHARS = 20_000
"""Suspect text kept per execution (more is cut: the check's cost stays bounded)."""


@dataclass(frozen=True)
class Echo:
    """One repeated span of the answer: where, and whose text it repeats."""

    start: int
    end: int
    source: str


def _words(text: str) -> list[tuple[str, int, int]]:
    """(folded lower-case word, start, end) for every word of `text`, offsets in `text`."""
    if text.isascii():
        lowered = text.lower()
        return [(lowered[m.start() : m.end()], m.start(), m.end()) for m in _WORD.finditer(text)]
    return [(fold(m.group(0)).lower(), m.start(), m.end()) for m in _WORD.finditer(text)]


@dataclass
class EchoGuard:
    """The suspect untrusted text of one run execution, and the check of an answer against it."""

    min_words: int = 6
    _windows: dict[tuple[str, ...], str] = field(default_factory=dict)
    _starts: set[str] = field(default_factory=set)
    _vocabulary: set[str] = field(default_factory=set)
    """Every word of a remembered window: an answer window can match only where all its words are
    in here, which one C-level pass (a byte per word) and `bytes.find` locate."""
    _tokens: dict[str, str] = field(default_factory=dict)
    _kept: int = 0

    def __bool__(self) -> bool:
        return bool(self._windows or self._tokens)

    def remember(
        self, source: str, suspect: Iterable[str], context: str = "", *, tokens: bool = True
    ) -> None:
        """Keep `suspect` texts found in `context` (the whole untrusted text they came from).

        `tokens=False` keeps only word windows: for text suspect as a whole (the classifier's
        verdict), whose ids and codes are as likely to be facts as the attacker's."""
        texts = [t for t in suspect if t and t.strip()]
        for text in texts:
            if self._kept >= MAX_REMEMBERED_CHARS:
                return
            text = text[: MAX_REMEMBERED_CHARS - self._kept]
            self._kept += len(text)
            folded = fold(text)
            words = (
                folded.lower().translate(_NOT_ALNUM).split()  # the same split as `_words`, in C
                if folded.isascii()
                else [w for w, _, _ in _words(folded)]
            )
            for i in range(len(words) - self.min_words + 1):
                self._windows.setdefault(tuple(words[i : i + self.min_words]), source)
                self._starts.add(words[i])
            if len(words) >= self.min_words:
                self._vocabulary.update(words)
            for token in _TOKEN.findall(text) if tokens else ():
                # a token the clean part of the same data also holds is a fact, not the attacker's
                if context.count(token) <= sum(t.count(token) for t in texts):
                    self._tokens.setdefault(token.lower(), source)

    def find(
        self, answer: str, user_texts: Sequence[str] = (), *, words: list[str] | None = None
    ) -> list[Echo]:
        """The spans of `answer` that repeat remembered suspect text (the user's own words excepted).

        `words` (`findings.words_of(answer.lower())`) may be passed in when another check already
        split the answer; it is used only for an ASCII answer (where it is this check's split too)."""
        if not self:
            return []
        found: list[Echo] = []
        said = " ".join(user_texts).lower()
        if self._windows:
            found += self._repeated_windows(answer, said, words)
        if self._tokens and (not answer.isascii() or self._any_token_in(answer.lower())):
            for token in _TOKEN.finditer(answer):
                source = self._tokens.get(token.group(0).lower())
                if source is not None and token.group(0).lower() not in said:
                    found.append(Echo(token.start(), token.end(), source))
        for run in revealed(answer):  # an answer in base64, hex... to slip past
            if self.find(run.text, user_texts):
                found.append(Echo(run.start, run.end, "encoded in the answer"))
        return _merged(found)

    def _any_token_in(self, lowered: str) -> bool:
        """Whether a remembered token occurs in the (ASCII, lowercased) answer at all: substring
        tests in C, so the token regex, slow on long text, runs only when it can find one."""
        return any(token in lowered for token in self._tokens)

    def _repeated_windows(self, answer: str, said: str, split: list[str] | None = None) -> list[Echo]:
        """Windows of the answer found in the suspect set. Only positions whose word starts some
        suspect window are looked at, and only where the next `min_words` words all occur in suspect
        text (a run of ones in a byte-per-word mask, found by `bytes.find`): all in C, so an answer
        that shares only common words with the suspect text costs no Python-level loop."""
        ascii_answer = answer.isascii()
        words = (
            (answer.lower().translate(_NOT_ALNUM).split() if split is None else split)
            if ascii_answer
            else [w for w, _, _ in _words(answer)]
        )
        size = self.min_words
        known = bytes(map(self._vocabulary.__contains__, words))
        run = b"\x01" * size
        found: list[Echo] = []
        index = known.find(run)
        if index == -1:
            return found
        starts = bytes(map(self._starts.__contains__, words))
        bounds: tuple[list[int], list[int]] | None = None
        user_windows: set[tuple[str, ...]] | None = None
        while index != -1:
            if not starts[index]:
                index = known.find(run, index + 1)
                continue
            window = tuple(words[index : index + size])
            source = self._windows.get(window)
            if source is not None:
                if user_windows is None:
                    user = [w for w, _, _ in _words(said)]
                    user_windows = {tuple(user[j : j + size]) for j in range(len(user) - size + 1)}
                if window not in user_windows:
                    if bounds is None:
                        bounds = _bounds(answer, words) if ascii_answer else _unicode_bounds(answer)
                    found.append(Echo(bounds[0][index], bounds[1][index + size - 1], source))
            index = known.find(run, index + 1)
        return found


def _bounds(answer: str, words: list[str]) -> tuple[list[int], list[int]]:
    """Start and end offsets of the words of an ASCII answer (`words`, its `_NOT_ALNUM` split),
    computed by C-level iteration: the translated text split on single spaces keeps an empty
    string per extra separator, so each piece starts one past the previous one's end."""
    pieces = answer.translate(_NOT_ALNUM).split(" ")
    offsets = accumulate(map((1).__add__, map(len, pieces)), initial=0)
    starts = list(compress(offsets, pieces))
    return starts, list(map(add, starts, map(len, words)))


def _unicode_bounds(answer: str) -> tuple[list[int], list[int]]:
    """Start and end offsets of the words of any answer (`_WORD` matches, as `_words` splits)."""
    spans = [m.span() for m in _WORD.finditer(answer)]
    return [s for s, _ in spans], [e for _, e in spans]


def _merged(found: list[Echo]) -> list[Echo]:
    merged: list[Echo] = []
    for echo in sorted(found, key=lambda e: e.start):
        if merged and echo.start <= merged[-1].end + 1:
            last = merged[-1]
            merged[-1] = Echo(last.start, max(last.end, echo.end), last.source)
        else:
            merged.append(echo)
    return merged


def redact(text: str, echoes: Sequence[Echo]) -> str:
    """`text` with every echoed span replaced by a short notice."""
    pieces: list[str] = []
    last = 0
    for echo in echoes:
        pieces += [text[last : echo.start], REMOVED]
        last = echo.end
    pieces.append(text[last:])
    return "".join(pieces)
