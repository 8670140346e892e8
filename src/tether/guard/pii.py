"""Personal data and secrets in text: find them, and redact those that are not the caller's own.

The detectors live in their own modules: `numbers` (payment cards with Luhn, phones with
`phonenumbers` - Google's libphonenumber -, IBANs and national ids with `python-stdnum`),
`national_ids` (which id a keyword before a number names), and `secrets` (provider key formats,
`detect-secrets`' format plugins and entropy measure, private keys, passwords). E-mail addresses
are found here. Each detector is gated by a check done in C (a digit, an `@`, a long token), so
text without any of them costs almost nothing. Presidio was left out: its analyzer pulls spaCy
language models, far too heavy for a check that runs on every answer.

A value counts as the caller's when it appears in what the caller wrote (this run's message and the
thread's earlier ones) or in their identity; `allowed` values (a shop's public address) never count.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from tether.guard.findings import Finding, vocabulary
from tether.guard.numbers import find_numbers
from tether.guard.secrets import find_secrets

__all__ = ["REDACTED", "CallerData", "Finding", "find_pii", "others", "redact"]

_LOCAL_PUNCTUATION = frozenset("._+-")
"""With letters and digits of any script (internationalised addresses), what a local part holds."""
_DOMAIN = re.compile(r"[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})+")
_NON_DIGIT = re.compile(r"\D")
REDACTED = "[{kind} redacted by Tether]"


def _digits(value: str) -> str:
    return _NON_DIGIT.sub("", value)


def _emails(text: str) -> list[Finding]:
    """Addresses around each `@`: the domain is matched first (cheap, and absent for a lone `@`),
    then the local part is walked back character by character."""
    found: list[Finding] = []
    at = text.find("@")
    while at != -1:
        domain = _DOMAIN.match(text, at + 1)
        if domain is not None:
            start, floor = at, max(0, at - 64)
            while start > floor and (text[start - 1] in _LOCAL_PUNCTUATION or text[start - 1].isalnum()):
                start -= 1
            if start < at:
                found.append(Finding("email", start, domain.end(), text[start : domain.end()]))
        at = text.find("@", at + 1)
    return found


def _has_digit(text: str) -> bool:
    return any(digit in text for digit in "0123456789")


def find_pii(
    text: str, *, region: str = "US", lowered: str | None = None, words: list[str] | None = None
) -> list[Finding]:
    """Every personal-data value or secret in `text` (overlaps resolved: the earliest, then the
    longest, wins). `lowered` and `words` (`text.lower()` and its `words_of`) may be passed in when
    another check already computed them."""
    found: list[Finding] = _emails(text) if "@" in text else []
    lowered = text.lower() if lowered is None else lowered
    vocab = vocabulary(lowered, words)
    if _has_digit(text):
        found += find_numbers(text, lowered, vocab, region)
    found += find_secrets(text, lowered, vocab)
    if len(found) < 2:
        return found
    found.sort(key=lambda f: (f.start, -f.end))
    kept: list[Finding] = []
    for finding in found:
        if not kept or finding.start >= kept[-1].end:
            kept.append(finding)
    return kept


def _key(finding: Finding) -> str:
    return (
        finding.value.lower()
        if finding.kind in ("email", "secret")
        else _digits(finding.value) or finding.value.lower()
    )


class CallerData:
    """What counts as the caller's own data, in the normalised form findings are compared in."""

    def __init__(self, texts: Iterable[str], allowed: Iterable[str] = ()) -> None:
        self._text = "\n".join(texts).lower()
        self._digits = _digits(self._text)
        self._allowed = {a.lower() for a in allowed} | {_digits(a) for a in allowed if _digits(a)}

    def owns(self, finding: Finding) -> bool:
        key = _key(finding)
        if key in self._allowed or finding.value.lower() in self._allowed:
            return True
        if finding.kind in ("email", "secret"):
            return key in self._text
        return bool(key) and key in self._digits


def others(
    text: str, caller: CallerData, *, lowered: str | None = None, words: list[str] | None = None
) -> list[Finding]:
    """Personal data in `text` that is not the caller's."""
    return [f for f in find_pii(text, lowered=lowered, words=words) if not caller.owns(f)]


def redact(text: str, findings: list[Finding]) -> str:
    for finding in sorted(findings, key=lambda f: f.start, reverse=True):
        text = text[: finding.start] + REDACTED.format(kind=finding.kind) + text[finding.end :]
    return text
