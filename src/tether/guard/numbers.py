"""Personal numbers among the digits of a text: payment cards, phones, IBANs and national ids.

The text is first mapped to a few symbols (digit, separator, letter, other) with `str.translate`,
and the candidates are found on that map by patterns that start with a literal, which the
regular-expression engine finds with a fast substring search instead of trying every position.
ISO dates are left out there already; other dates, times, IPv4 addresses and amounts are matched
as whole tokens by one more pass over each candidate and skipped, so they never merge with a
neighbour into a phone-shaped run. Numbers glued to a word (`SKU-40000`, `INV-2026-00123`,
`run_8f3a0001`, a tracking number) are parts of identifiers, not someone's number.

Only what is left is validated: Luhn for cards (python-stdnum), libphonenumber for phones, stdnum
for IBANs and ids, each cached by value. Bare digit runs (no separators, no `+`) are so often
order, account or record ids that they count as a phone or a national id only with a keyword just
before them (see `national_ids`); a formatted phone number or a valid SSN counts anywhere.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

from tether.guard import national_ids as ids
from tether.guard.findings import Finding

_SCAN = re.compile(
    r"\d{1,2}[./-]\d{1,2}[./-](?:\d{4}|\d{2})(?![\d./-])"  # day/month/year
    r"|\d{1,2}:\d{2}(?::\d{2})?(?:[.,]\d+)?"  # times
    r"|\d{1,3}(?:\.\d{1,3}){3}(?![\d.])"  # IPv4 addresses
    r"|\d+[.,]\d{1,2}(?![\d.,])"  # amounts
    r"|(?P<run>[+(]?\d(?:[ ./()-]{0,2}\d){5,})"
)
"""Skipped shapes first: at a given position the first alternative that matches wins."""


def _symbol(c: str) -> str:
    if c.isdigit():
        return "0"
    if c in " ./()+":
        return "."
    if c == "-":
        return "-"
    if c.isalpha() or c == "_":
        return "a"
    return " "


_SHAPES = str.maketrans({chr(c): _SYMBOL for c in range(128) if (_SYMBOL := _symbol(chr(c))) != chr(c)})
"""Digits to 0, separators to '.' (dash kept as '-'), letters to 'a', anything else to ' '."""
_MIN_DIGITS = 7
"""No number looked for here has fewer digits (the NINO, with 6, has its own pass)."""
_REGION = re.compile(
    r"0(?<![0-]0)(?!000-00-00)"  # the first digit of a run (no retries inside one), not an ISO date
    r"[.-]{0,3}0[.-]{0,3}0[.-]{0,3}0[.-]{0,3}0[.-]{0,3}0[.-]{0,3}0"  # at least 7 digits,
    r"(?:[.-]{0,3}0)*+"  # then up to the last digit
)
"""A run of digits and separators. It starts with a literal, so the engine jumps from digit to
digit in C instead of trying every position."""
_CAPITALS = str.maketrans(
    {
        chr(c): "0" if chr(c).isdigit() else "A" if chr(c).isupper() else "a" if chr(c).isalpha() else " "
        for c in range(33, 128)
    }
)
"""Capitals to A, digits to 0: IBANs and NINOs start where "AA00" or "AA 00" is found."""
_SEPARATORS = str.maketrans("", "", " ./()-+")
_SSN_DASHED = re.compile(r"\d{3}-\d{2}-\d{4}")
_LETTER_LED = re.compile(
    r"(?P<nino>[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D])"
    r"|(?P<iban>[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30})"
)
_IIN = "23456"
"""First digits of card numbers (2 Mastercard/Mir, 3 Amex/JCB/Diners, 4 Visa, 5 Mastercard, 6 Discover)."""


@lru_cache(maxsize=4096)
def _luhn(digits: str) -> bool:
    from stdnum import luhn

    return len(set(digits)) > 1 and bool(luhn.is_valid(digits))


@lru_cache(maxsize=1024)
def _iban(value: str) -> bool:
    from stdnum import iban

    return bool(iban.is_valid(value))


@lru_cache(maxsize=1024)
def _dni_or_nie(value: str) -> bool:
    from stdnum.es import dni, nie

    return bool(dni.is_valid(value) or nie.is_valid(value))


@lru_cache(maxsize=4096)
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


def _dni_or_nie_at(text: str, start: int, end: int) -> tuple[int, int] | None:
    """The span of a Spanish DNI (`12345678Z`) or NIE (`X1234567L`) a glued digit run belongs to."""
    if not 7 <= end - start <= 8 or not text[start:end].isdigit():
        return None
    first = start - 1 if start > 0 and text[start - 1] in "XYZxyz" else start
    last = end + 1 if end < len(text) and text[end].isalpha() else end
    if last == end or (first > 0 and text[first - 1].isalnum()):
        return None
    if (last == len(text) or not text[last].isalnum()) and _dni_or_nie(text[first:last]):
        return first, last
    return None


def _letter_led(text: str, shapes: str) -> list[Finding]:
    """IBANs and UK National Insurance numbers: they start with two capitals and two digits."""
    found: list[Finding] = []
    for needle in ("AA00", "AA 00"):
        at = shapes.find(needle)
        while at != -1:
            if at == 0 or shapes[at - 1] not in "Aa0":
                match = _LETTER_LED.match(text, at)
                end = match.end() if match is not None else 0
                if match is not None and (end == len(text) or not text[end].isalnum()):
                    if match.lastgroup == "nino":
                        found.append(Finding("national id", at, end, match.group(0)))
                    elif _iban(match.group(0)):
                        found.append(Finding("IBAN", at, end, match.group(0)))
            at = shapes.find(needle, at + 1)
    return found


def find_numbers(text: str, lowered: str, words: set[str], region: str) -> list[Finding]:
    """Cards, phones, IBANs and national ids among the digit runs of `text`."""
    found: list[Finding] = []
    shapes = text.translate(_SHAPES)
    length = len(text)
    keywords: bool | None = None  # a keyword phrase somewhere in the text: decided when first needed
    for candidate in _REGION.finditer(shapes):
        first, last = candidate.span()
        digits = shapes.count("0", first, last)
        if (first > 0 and shapes[first - 1] == "a") or (last < length and shapes[last] == "a"):
            span = _dni_or_nie_at(text, first, last)
            if span is not None:
                found.append(Finding("national id", span[0], span[1], text[span[0] : span[1]]))
            continue  # glued to a word: run_8f3a0001, 1Z999AA10123456784, unless a DNI or NIE
        bare = digits == last - first and (first == 0 or text[first - 1] != "+")
        if bare and digits < 9:
            continue  # a bare 7-8 digit number: no id or whole phone number is that short
        if keywords is None:
            keywords = ids.any_keyword(words)
        if bare and not keywords and not 15 <= digits <= 19:
            continue  # without a keyword in the text, only a card can be a bare run
        if first > 0 and text[first - 1] in "-/#" and first > 1 and text[first - 2].isalnum():
            continue  # SKU-4000123, INV-2026-00123: the tail of an identifier
        if first > 0 and text[first - 1] in "+(":
            first -= 1
        # A bare run has no dates or amounts inside it to skip.
        spans: Iterable[tuple[int, int]] = (
            ((first, last),) if bare else (m.span("run") for m in _SCAN.finditer(text, first, last))
        )
        for start, end in spans:
            if start < 0:
                continue  # a date, time, address or amount
            if text[start] == "(" and ")" not in text[start:end]:
                start += 1
            elif start > 0 and text[start - 1] == "(" and text[start:end].find(")") in range(3, 5):
                start -= 1  # "(415) 555-0199": the opening bracket belongs to the number
            kind = _classify(text[start:end], lowered, shapes if keywords else "", start, region)
            if kind is not None:
                found.append(Finding(kind, start, end, text[start:end]))
    capitals = text.translate(_CAPITALS)
    found += _letter_led(text, capitals)
    if "A0" in capitals or "0A" in capitals:  # ids with letters: codice fiscale, CURP, PAN, NIE...
        found += [Finding("national id", s, e, text[s:e]) for s, e in ids.keyword_ids(text, lowered, words)]
    return found


def _classify(raw: str, lowered: str, shapes: str, start: int, region: str) -> str | None:
    """What a free-standing digit run is, if it is personal: id, card, phone, or None (`shapes`
    is empty when no keyword occurs in the text, so none is looked for)."""
    digits = raw if raw.isdigit() else raw.translate(_SEPARATORS)
    if not digits.isdigit():
        return None
    count = len(digits)
    formatted = count != len(raw)
    if formatted and _SSN_DASHED.fullmatch(raw) is not None and ids.valid_ssn(raw):
        return "national id"
    if 15 <= count <= 19 and digits[0] in _IIN and _luhn(digits):
        return "payment card"
    if formatted and 7 <= count <= 15 and _phone(raw, region):
        return "phone"
    if (count < 9 and not formatted) or not shapes:
        return None  # a bare 7-8 digit number (no id or whole phone number is that short), or no keyword
    phrases = ids.context(lowered, shapes, start)
    if not phrases:
        return None
    kinds = ids.kinds(phrases)
    if ids.SSN in kinds and ids.ssn_shaped(raw):
        return "national id"  # SSN-shaped after an SSN keyword, even if stdnum says never issued
    if ids.CARD in kinds and 12 <= count <= 19 and _luhn(digits):
        return "payment card"
    if ids.PHONE in kinds and 7 <= count <= 15 and _phone(raw, region):
        return "phone"
    if ids.named_id(raw, phrases) or (ids.DOCUMENT in kinds and ids.document(raw)):
        return "national id"
    return None
