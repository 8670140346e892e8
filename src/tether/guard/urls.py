"""Exfiltration: links, images and URLs in an answer that point outside the allow-list.

A model turned by injected text can leak data by rendering a markdown image whose URL carries the
data (the browser fetches it without a click), or by handing the user a link. Found here: markdown
images and links, reference-style link definitions, HTML `src`/`href`, autolinks, bare URLs with any
scheme, `www.` hosts, and the common obfuscations: `hxxp`, `h**p`, `[.]`, `(.)`, `[dot]`, ` dot `,
spaces around dots, and host names followed by a path. E-mail addresses are personal data, not
links (see `pii.py`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

_DOT = r"(?:\s*(?:\.|\[\.\]|\(\.\)|\{\.\}|\[dot\]|\(dot\)|\{dot\})\s*|\s+dot\s+)"
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOST = rf"{_LABEL}(?:{_DOT}{_LABEL})+"
_SCHEME = r"(?:h(?:tt|xx|\*\*|XX|TT)ps?|ftp|wss?|file|data|javascript)\s*(?::|\[:\]|\(:\))\s*//"
_PATTERN = re.compile(
    rf"!?\[[^\]\n]{{0,300}}\]\(\s*<?(?P<md>[^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)"  # ![alt](url), [text](url)
    rf"|^\s*\[[^\]\n]+\]:\s*<?(?P<ref>\S+?)>?\s*$"  # [ref]: url
    rf"|(?:src|href|action|srcset|background)\s*=\s*[\"']?(?P<attr>[^\"'\s>]+)"  # HTML attributes
    rf"|(?P<url>{_SCHEME}(?:\[\.\]|\[dot\]|\[:\]|[^\s<>\"')\]])+)"  # scheme://...
    rf"|(?P<www>\bwww{_DOT}{_HOST}(?:/[^\s<>\"')\]]*)?)"  # www.host
    rf"|(?<![@\w.])(?P<path>{_HOST}/[^\s<>\"')\]]*)"  # host/path without a scheme
    rf"|(?<![@\w.])(?P<obf>{_LABEL}(?:\s*(?:\[\.\]|\(\.\)|\{{\.\}}|\[dot\]|\(dot\)|\{{dot\}})\s*|\s+dot\s+){_LABEL}"
    rf"(?:{_DOT}{_LABEL})*)",  # evil[.]com, evil dot com
    re.IGNORECASE | re.MULTILINE,
)
_TLDS = frozenset(
    [
        "com",
        "net",
        "org",
        "io",
        "co",
        "ai",
        "app",
        "dev",
        "info",
        "biz",
        "me",
        "xyz",
        "site",
        "online",
        "top",
        "ru",
        "cn",
        "de",
        "uk",
        "fr",
        "us",
        "ly",
        "gg",
        "to",
        "cc",
        "tk",
        "ml",
        "ga",
        "cf",
        "gq",
        "pw",
        "ws",
        "link",
        "click",
        "live",
        "shop",
        "store",
        "cloud",
        "page",
        "sh",
        "so",
        "tv",
        "eu",
        "nl",
        "es",
        "it",
        "pl",
        "br",
        "in",
        "jp",
        "kr",
        "au",
        "ca",
        "ch",
    ]
)
REMOVED = "[link removed by Tether]"


@dataclass(frozen=True)
class Link:
    start: int
    end: int
    host: str
    text: str


def host_of(raw: str) -> str:
    """The lower-case host a (possibly obfuscated) URL or host text points at ('' if none)."""
    text = re.sub(
        r"\s*(?:\[\.\]|\(\.\)|\{\.\}|\[dot\]|\(dot\)|\{dot\})\s*|\s+dot\s+|\s*\.\s*", ".", raw.strip()
    )
    text = re.sub(r"^h(?:xx|\*\*|tt)p", "http", text, flags=re.IGNORECASE)
    text = re.sub(r"\[:\]|\(:\)", ":", text)
    if text.lower().startswith(("data:", "javascript:")):
        return text.split(":", 1)[0].lower()
    if "//" not in text.split("/", 1)[0] and not re.match(r"^[a-z][a-z0-9+.-]*://", text, re.IGNORECASE):
        text = "//" + text
    try:
        host = urlsplit(text).hostname or ""
    except ValueError:
        return ""
    return host.strip(".").lower()


def find_links(text: str) -> list[Link]:
    """Every link-like thing in `text`, with the host it points at."""
    links: list[Link] = []
    for match in _PATTERN.finditer(text):
        kind = match.lastgroup or ""
        raw = match.group(kind)
        if raw.startswith(("#", "/", "mailto:")) and not raw.startswith("//"):
            continue  # in-page anchors and relative paths go nowhere new; mailto is PII's business
        host = host_of(raw)
        if kind in ("path", "obf") and host.rsplit(".", 1)[-1] not in _TLDS:
            continue  # "e.g. 1.5/2" or "file.txt/..." is not a host
        if host:
            links.append(Link(match.start(), match.end(), host, match.group(0)))
    return links


def allowed(host: str, allowed_hosts: Iterable[str]) -> bool:
    return any(host == h or host.endswith("." + h) for h in (a.lower().strip(".") for a in allowed_hosts))


def outside_links(text: str, allowed_hosts: Iterable[str]) -> list[Link]:
    hosts = list(allowed_hosts)
    return [link for link in find_links(text) if not allowed(link.host, hosts)]


def redact_links(text: str, links: list[Link]) -> str:
    for link in sorted(links, key=lambda item: item.start, reverse=True):
        text = text[: link.start] + REMOVED + text[link.end :]
    return text
