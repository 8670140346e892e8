"""National identity numbers: which one a nearby word names, and python-stdnum's check for it.

Most national ids are bare digit runs that look like any order or account number, so they count
only with a keyword naming them just before the number ("SSN", "PESEL", "codice fiscale", "ID
number"...), and then only when the id's own check (python-stdnum: length, dates, check digits)
passes. Two exceptions: a US SSN-shaped number after an SSN keyword counts even when stdnum rejects
it (a "never issued" area or a known public sample is still someone's number in that sentence),
and a generic "passport number" or "driver's licence" keyword takes any id-like token (those have
no check digits).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from importlib import import_module

SSN = "ssn"
PHONE = "phone"
CARD = "card"
DOCUMENT = "document"
"""Context kinds that are not a stdnum module: SSN-shaped numbers, phones, cards, passports."""

_STDNUM: dict[str, tuple[str, ...]] = {
    "ssn": ("us.ssn",),
    "social security": ("us.ssn", "fr.nir", "ch.ssn", "at.vnr"),
    "itin": ("us.itin",),
    "sin": ("ca.sin",),
    "social insurance": ("ca.sin",),
    "dni": ("es.dni",),
    "nie": ("es.nie",),
    "nif": ("es.nif", "pt.nif"),
    "nir": ("fr.nir",),
    "insee": ("fr.nir",),
    "sécurité sociale": ("fr.nir",),
    "securite sociale": ("fr.nir",),
    "steuer-id": ("de.idnr",),
    "steuerid": ("de.idnr",),
    "idnr": ("de.idnr",),
    "steueridentifikationsnummer": ("de.idnr",),
    "codice fiscale": ("it.codicefiscale",),
    "bsn": ("nl.bsn",),
    "burgerservicenummer": ("nl.bsn",),
    "rijksregisternummer": ("be.nn",),
    "numéro national": ("be.nn",),
    "niss": ("be.nn",),
    "pesel": ("pl.pesel",),
    "personnummer": ("se.personnummer", "dk.cpr"),
    "cpr": ("dk.cpr",),
    "hetu": ("fi.hetu",),
    "henkilötunnus": ("fi.hetu",),
    "fødselsnummer": ("no.fodselsnummer",),
    "fodselsnummer": ("no.fodselsnummer",),
    "tfn": ("au.tfn",),
    "tax file number": ("au.tfn",),
    "aadhaar": ("in_.aadhaar",),
    "aadhar": ("in_.aadhaar",),
    "pan": ("in_.pan",),
    "cpf": ("br.cpf",),
    "curp": ("mx.curp",),
    "pps": ("ie.pps",),
    "ppsn": ("ie.pps",),
    "ahv": ("ch.ssn",),
    "avs": ("ch.ssn",),
    "nhs": ("gb.nhs",),
    "svnr": ("at.vnr",),
    "resident identity": ("cn.ric",),
    "身份证": ("cn.ric",),
    "south african id": ("za.idnr",),
    "cartão de cidadão": ("pt.cc",),
}
_GENERIC = (
    "us.ssn",
    "ca.sin",
    "es.dni",
    "es.nie",
    "fr.nir",
    "de.idnr",
    "it.codicefiscale",
    "nl.bsn",
    "be.nn",
    "pl.pesel",
    "se.personnummer",
    "dk.cpr",
    "fi.hetu",
    "no.fodselsnummer",
    "in_.aadhaar",
    "br.cpf",
    "mx.curp",
    "ie.pps",
    "ch.ssn",
    "cn.ric",
    "za.idnr",
)
"""What a keyword naming no country ("national id", "tax id", "personal number") is checked against."""

for _word in (
    "national id",
    "national identity",
    "national number",
    "id number",
    "identity number",
    "id card",
    "identity card",
    "personal number",
    "personal id",
    "tax id",
    "taxpayer id",
):
    _STDNUM[_word] = _GENERIC

_OTHER: dict[str, str] = {
    "ssn": SSN,
    "social security": SSN,
    "ss#": SSN,
    "passport": DOCUMENT,
    "driver's license": DOCUMENT,
    "drivers license": DOCUMENT,
    "driver's licence": DOCUMENT,
    "driving licence": DOCUMENT,
    "phone": PHONE,
    "tel": PHONE,
    "telephone": PHONE,
    "mobile": PHONE,
    "cell": PHONE,
    "call": PHONE,
    "fax": PHONE,
    "whatsapp": PHONE,
    "sms": PHONE,
    "contact": PHONE,
    "card": CARD,
    "visa": CARD,
    "mastercard": CARD,
    "amex": CARD,
    "credit": CARD,
    "debit": CARD,
}
_WORDS = re.compile(r"[^\W\d_]+(?:'s)?#?")
_PHRASES: dict[str, tuple[str, ...]] = {}
"""Each keyword phrase under its first word, so a context window is tokenised once."""
for _phrase in (*_STDNUM, *_OTHER):
    _first = _WORDS.findall(_phrase)[0]
    _PHRASES[_first] = (*_PHRASES.get(_first, ()), _phrase)
_SPLIT = str.maketrans({chr(c): " " for c in range(128) if not chr(c).isalnum()})
_PHRASE_WORDS = tuple({frozenset(p.translate(_SPLIT).split()) for p in (*_STDNUM, *_OTHER)})
_ANY_PHRASE_WORD = frozenset().union(*_PHRASE_WORDS)


def any_keyword(words: set[str]) -> bool:
    """Some keyword phrase has all its words in the text's vocabulary: only then can a number
    have a keyword before it (checked once per text, not per number)."""
    return not words.isdisjoint(_ANY_PHRASE_WORD) and any(phrase <= words for phrase in _PHRASE_WORDS)


WINDOW = 32
"""How far before a number its keyword may stand (characters)."""

LETTER_KEYWORDS: dict[str, tuple[str, ...]] = {
    "codice fiscale": ("fiscale",),
    "curp": ("curp",),
    "pan": ("pan",),
    "hetu": ("hetu",),
    "henkilötunnus": ("henkilötunnus",),
    "nie": ("nie",),
    "dni": ("dni",),
    "nif": ("nif",),
    "pps": ("pps",),
    "passport": ("passport",),
    "driver's licen": ("license", "licence"),
    "drivers licen": ("license", "licence"),
    "driving licen": ("licence", "license"),
}
"""Keywords of ids that may start with letters or hold few digits, found in the text itself,
and the words whose presence (in the text's vocabulary) makes the search worth it."""


@lru_cache(maxsize=4096)
def _kinds(window: str) -> frozenset[str]:
    found: set[str] = set()
    for word in _WORDS.findall(window):
        for phrase in _PHRASES.get(word, ()):
            if phrase == word or phrase in window:
                found.add(phrase)
    return frozenset(found)


def context(lowered: str, shapes: str, start: int) -> frozenset[str]:
    """The keyword phrases in the few characters before `start` of the lowercased text.

    The window stops after an earlier number (`shapes` has digits as "0"), so the windows of a
    table or a JSON list repeat, and their answers come from the cache."""
    floor = max(0, start - WINDOW)
    cut = shapes.rfind("0", floor, start - 8) if start - 8 > floor else -1
    window = lowered[cut + 1 if cut != -1 else floor : start]
    return _kinds(window) if window else frozenset()


def kinds(phrases: frozenset[str]) -> set[str]:
    """The context kinds (`SSN`, `PHONE`, `CARD`, `DOCUMENT`) the phrases name."""
    return {_OTHER[p] for p in phrases if p in _OTHER}


@lru_cache(maxsize=64)
def _validator(name: str) -> Callable[[str], bool]:
    module = import_module(f"stdnum.{name}")
    check: Callable[[str], bool] = module.is_valid
    return check


@lru_cache(maxsize=4096)
def named_id(value: str, phrases: frozenset[str]) -> bool:
    """`value` passes the check of an id one of the phrases names."""
    modules = {m for p in phrases for m in _STDNUM.get(p, ())}
    return any(_validator(m)(value) for m in sorted(modules))


_SSN_SHAPE = re.compile(r"\d{3}([- ]?)\d{2}\1\d{4}")
_DOCUMENT = re.compile(r"(?=[A-Z]{0,3}\d)[A-Z0-9]{6,12}")


def ssn_shaped(value: str) -> bool:
    return _SSN_SHAPE.fullmatch(value) is not None


def valid_ssn(value: str) -> bool:
    return _validator("us.ssn")(value)


def document(value: str) -> bool:
    """A passport or licence number: 6-12 capitals and digits, mostly digits."""
    compact = value.replace(" ", "").replace("-", "").upper()
    return _DOCUMENT.fullmatch(compact) is not None and sum(c.isdigit() for c in compact) >= 5


_LEAD = re.compile(
    r"(?:[^\w\n]{0,3}(?:number|num|nr|no|code|card|is|was|on file|of the customer)\b\.?){0,3}[^\w\n]{0,3}",
    re.IGNORECASE,
)
_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")


def _follows(text: str, end: int) -> list[tuple[int, int]]:
    """Candidate spans right after a keyword ending at `end`: one to six space-separated parts."""
    lead = _LEAD.match(text, end)
    position = lead.end() if lead is not None else end
    spans: list[tuple[int, int]] = []
    for _ in range(6):
        part = _PART.match(text, position)
        if part is None:
            break
        spans.append((spans[0][0] if spans else part.start(), part.end()))
        if part.end() >= len(text) or text[part.end()] != " ":
            break
        position = part.end() + 1
    return spans[::-1]  # the longest first


def keyword_ids(text: str, lowered: str, words: set[str]) -> list[tuple[int, int]]:
    """Ids that may start with letters (codice fiscale, CURP, PAN, NIE, passports...): found from
    their keyword forward, since a digit scan would miss them."""
    found: list[tuple[int, int]] = []
    for keyword, triggers in LETTER_KEYWORDS.items():
        if words.isdisjoint(triggers):
            continue
        at = lowered.find(keyword)
        while at != -1:
            end = at + len(keyword)
            if (at == 0 or not lowered[at - 1].isalpha()) and (
                keyword.endswith("licen") or end == len(lowered) or not lowered[end].isalpha()
            ):
                phrase = frozenset(p for p in _phrases_at(lowered, at, keyword))
                if keyword.endswith("licen"):
                    end = lowered.find(" ", end) if lowered.find(" ", end) != -1 else len(lowered)
                for start, stop in _follows(text, end):
                    value = text[start:stop]
                    if (phrase and named_id(value, phrase)) or (
                        (keyword in ("passport",) or keyword.endswith("licen")) and document(value)
                    ):
                        found.append((start, stop))
                        break
            at = lowered.find(keyword, at + 1)
    return found


def _phrases_at(lowered: str, at: int, keyword: str) -> tuple[str, ...]:
    return tuple(
        p for p in _PHRASES.get(keyword.split()[0], ()) if lowered.startswith(p, at) and p in _STDNUM
    )
