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

_LOCAL = re.compile(r"[\w.+-]{1,64}$")
_DOMAIN = re.compile(r"[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})+")
_RUN = re.compile(r"\d[\d \-().]{5,}\d")
"""Digit runs with separators: the candidates for cards, phones and ids (a fast character-class scan)."""
_SSN = re.compile(r"\d{3}-\d{2}-\d{4}")
_IBAN = re.compile(r"[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}")
_NINO = re.compile(r"[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]")
_DNI = re.compile(r"\d{8}-?[A-HJ-NP-TV-Z]")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}|\d{1,2}[./-]\d{1,2}[./-]\d{2,4}")
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
    by_flags: dict[int, list[str]] = {}
    plugins: list[type] = list(get_mapping_from_secret_type_to_class().values())
    for plugin in plugins:
        if issubclass(plugin, RegexBasedDetector) and plugin.__name__ not in skipped:
            for pattern in plugin().denylist:
                by_flags.setdefault(pattern.flags, []).append(pattern.pattern)
    # One pass per flag set instead of one per pattern.
    return tuple(re.compile("|".join(f"(?:{p})" for p in group), flags) for flags, group in by_flags.items())


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


def _phone(raw: str, region: str) -> bool:
    import phonenumbers

    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return False
    # Validating against the number's main region only: `is_valid_number` tries every region that
    # shares the country code (25 for +1), which compiles hundreds of patterns per call.
    main = phonenumbers.region_code_for_country_code(number.country_code or 0)
    return bool(phonenumbers.is_valid_number_for_region(number, main))


def _bounded(text: str, start: int, end: int) -> bool:
    """The match is a whole token (no letter or digit glued to either side)."""
    return (start == 0 or not text[start - 1].isalnum()) and (end == len(text) or not text[end].isalnum())


def _emails(text: str) -> list[Finding]:
    found: list[Finding] = []
    for at in re.finditer("@", text):
        local = _LOCAL.search(text, max(0, at.start() - 64), at.start())
        domain = _DOMAIN.match(text, at.end())
        if local is not None and domain is not None:
            found.append(Finding("email", local.start(), domain.end(), text[local.start() : domain.end()]))
    return found


def _numbers(text: str, region: str) -> list[Finding]:
    """Cards (Luhn), US SSNs, Spanish DNIs and phone numbers (libphonenumber) among the digit runs."""
    found: list[Finding] = []
    if sum(map(text.count, "0123456789")) < 6:  # every number checked here has at least 6 digits
        return found
    for run in _RUN.finditer(text):
        start, end = run.span()
        raw = run.group(0)
        if start > 0 and text[start - 1] in "+(":
            start -= 1
            raw = text[start:end]
        digits = _digits(raw)
        if not _bounded(text, start, end):
            continue  # part of a longer token: a tracking or reference number, not a person's number
        if _SSN.fullmatch(raw):
            if _ssn(raw):
                found.append(Finding("national id", start, end, raw))
        elif 13 <= len(digits) <= 19 and _card(raw):
            found.append(Finding("payment card", start, end, raw))
        elif 7 <= len(digits) <= 15 and not _DATE.fullmatch(raw.strip("()+")) and _phone(raw, region):
            found.append(Finding("phone", start, end, raw))
    for rx, kind in ((_DNI, "national id"), (_NINO, "national id"), (_IBAN, "IBAN")):
        for m in rx.finditer(text):
            if _bounded(text, *m.span()) and (rx is not _IBAN or _iban(m.group(0))):
                found.append(Finding(kind, m.start(), m.end(), m.group(0)))
    return found


_WRAPPERS = "\"'`,;:()[]{}<>"


def _may_hold_secrets(text: str) -> bool:
    """Every secret format is a long unbroken token, a PEM block or a URL with credentials."""
    if "BEGIN" in text or "://" in text:
        return True
    words = text.split()
    if max(map(len, words), default=0) < 20:  # the common case, decided without a Python-level loop
        return False
    return any(len(word.strip(_WRAPPERS)) >= 20 for word in words if len(word) >= 20)


def find_pii(text: str, *, region: str = "US") -> list[Finding]:
    """Every personal-data value or secret in `text` (overlaps resolved: first found wins)."""
    found: list[Finding] = _emails(text) if "@" in text else []
    found += _numbers(text, region)
    for pattern in _secret_patterns() if _may_hold_secrets(text) else ():
        for m in pattern.finditer(text):
            start, end = m.span()
            found.append(Finding("secret", start, end, text[start:end]))
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
