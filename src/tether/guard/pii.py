"""Personal data and secrets in text: find them, and redact those that are not the caller's own.

Libraries doing the checking: `phonenumbers` (Google's libphonenumber: finds and validates phone
numbers in text), `python-stdnum` (Luhn for payment cards, IBAN check digits, US SSN rules) and
`detect-secrets` (Yelp's secret patterns: cloud keys, tokens, private keys, JWTs...; its regular
expressions are collected once, on first use, so importing Tether stays fast). E-mail addresses and
the number shapes are found with regular expressions here. Presidio was left out: its analyzer pulls
spaCy language models, far too heavy for a check that runs on every answer.

A value counts as the caller's when it appears in what the caller wrote (this run's message and the
thread's earlier ones) or in their identity; `allowed` values (a shop's public address) never count.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})+")
_CARD = re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
_SSN = re.compile(r"(?<![\d-])\d{3}-\d{2}-\d{4}(?![\d-])")
_NINO = re.compile(r"\b[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b")
_DNI = re.compile(r"\b\d{8}-?[A-HJ-NP-TV-Z]\b")
_PHONE = re.compile(
    r"(?<![\w./-])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{2,5}\)[\s.-]?)?\d{2,5}(?:[\s.-]\d{2,5}){1,4}(?![\w/-])"
    r"|(?<![\w./-])\+?\d{10,13}(?![\w/-])"
)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}|\d{1,2}[./-]\d{1,2}[./-]\d{2,4}")
_SECRET_HINT = re.compile(r"[\w+/=.-]{20,}|BEGIN|://|AccountKey")
REDACTED = "[{kind} redacted by Tether]"


@dataclass(frozen=True)
class Finding:
    kind: str
    start: int
    end: int
    value: str


@lru_cache(maxsize=1)
def _secret_patterns() -> tuple[re.Pattern[str], ...]:
    """detect-secrets' regular expressions for known secret formats (not the entropy guessers)."""
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
    from detect_secrets.plugins.base import RegexBasedDetector

    skipped = {"IPPublicDetector", "KeywordDetector"}
    patterns: list[re.Pattern[str]] = []
    plugins: list[type] = list(get_mapping_from_secret_type_to_class().values())
    for plugin in plugins:
        if issubclass(plugin, RegexBasedDetector) and plugin.__name__ not in skipped:
            patterns.extend(plugin().denylist)
    return tuple(patterns)


def _digits(value: str) -> str:
    return re.sub(r"\D", "", value)


def _card(value: str) -> bool:
    from stdnum import luhn

    digits = _digits(value)
    return 13 <= len(digits) <= 19 and luhn.is_valid(digits) and len(set(digits)) > 1


def _iban(value: str) -> bool:
    from stdnum import iban

    return bool(iban.is_valid(value))


def _ssn(value: str) -> bool:
    from stdnum.us import ssn

    return bool(ssn.is_valid(value))


def _phones(text: str, region: str) -> list[Finding]:
    """Phone-shaped runs validated by libphonenumber (its own matcher costs milliseconds per answer)."""
    found: list[Finding] = []
    for match in _PHONE.finditer(text):
        raw = match.group(0)
        if _DATE.fullmatch(raw) or not 7 <= len(_digits(raw)) <= 15:
            continue
        import phonenumbers

        try:
            number = phonenumbers.parse(raw, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            found.append(Finding("phone", match.start(), match.end(), raw))
    return found


def find_pii(text: str, *, region: str = "US") -> list[Finding]:
    """Every personal-data value or secret in `text` (overlaps resolved: first found wins)."""
    found: list[Finding] = []
    if "@" in text:
        found += [Finding("email", m.start(), m.end(), m.group(0)) for m in _EMAIL.finditer(text)]
    found += [
        Finding("payment card", m.start(), m.end(), m.group(0))
        for m in _CARD.finditer(text)
        if _card(m.group(0))
    ]
    found += [
        Finding("IBAN", m.start(), m.end(), m.group(0)) for m in _IBAN.finditer(text) if _iban(m.group(0))
    ]
    found += [
        Finding("national id", m.start(), m.end(), m.group(0))
        for m in _SSN.finditer(text)
        if _ssn(m.group(0))
    ]
    found += [Finding("national id", m.start(), m.end(), m.group(0)) for m in _NINO.finditer(text)]
    found += [Finding("national id", m.start(), m.end(), m.group(0)) for m in _DNI.finditer(text)]
    for pattern in _secret_patterns() if _SECRET_HINT.search(text) else ():
        for m in pattern.finditer(text):
            start, end = m.span()
            found.append(Finding("secret", start, end, text[start:end]))
    taken = [(f.start, f.end) for f in found]
    found += [p for p in _phones(text, region) if not any(s < p.end and p.start < e for s, e in taken)]
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


def others(text: str, caller: CallerData) -> list[Finding]:
    """Personal data in `text` that is not the caller's."""
    return [f for f in find_pii(text) if not caller.owns(f)]


def redact(text: str, findings: list[Finding]) -> str:
    for finding in sorted(findings, key=lambda f: f.start, reverse=True):
        text = text[: finding.start] + REDACTED.format(kind=finding.kind) + text[finding.end :]
    return text
