"""Secrets in text: API keys and tokens, private keys, passwords, credentials in URLs.

Three detectors, cheapest gate first:

- *Known formats.* Provider key prefixes (OpenAI/Anthropic `sk-`, Stripe `sk_live_`/`rk_`/`pk_`,
  GitHub `ghp_`/`github_pat_`, Slack `xox?-`, AWS `AKIA`/`ASIA`, Google `AIza`, GitLab `glpat-`,
  SendGrid `SG.`, Hugging Face `hf_`, npm, PyPI, Shopify, DigitalOcean, Square, xAI), JWTs, plus
  detect-secrets' regex plugins that match a format rather than a keyword (AWS, Azure storage,
  basic-auth URLs, Discord, GitHub, GitLab, JWT, Mailchimp, npm, OpenAI, PyPI, SendGrid, Slack,
  Square, Stripe, Telegram, Twilio). They run per long token, never over the whole text: a secret
  is one unbroken token with a run of 20+ letters, digits, `_` or `-`, and ordinary text has
  few of those.
- *Named secrets.* A high-entropy token (detect-secrets' Shannon entropy) right after a word like
  key, secret, token, password or bearer; and a password-like value after "password"/"passcode".
- *Private key blocks* (`-----BEGIN ... PRIVATE KEY-----`), whole.

Left out of detect-secrets: its keyword plugin (it reads code assignments, not prose), the
entropy plugins as such (every long hex id would be a secret), the Artifactory, Cloudant, IBM and
SoftLayer plugins (loose patterns that match ordinary words), and the public-IP plugin.
"""

from __future__ import annotations

import re
from functools import lru_cache

from tether.guard.findings import Finding

_PREFIXED = re.compile(
    r"(?<![A-Za-z0-9_-])(?:"
    r"sk-[A-Za-z0-9_-]{20,}"
    r"|(?:sk|rk|pk)_(?:live|test|prod)_[A-Za-z0-9]{10,}"
    r"|(?:sk|rk|pk)-(?:live|test|prod)-[A-Za-z0-9]{10,}"
    r"|gh[pousr]_[A-Za-z0-9]{30,}"
    r"|github_pat_[A-Za-z0-9_]{30,}"
    r"|xox[abposre]-[A-Za-z0-9-]{10,}"
    r"|(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA|ABIA|ACCA)[0-9A-Z]{16}"
    r"|AIza[0-9A-Za-z_-]{30,}"
    r"|gl(?:pat|dt|rt|ft|soat|cbt)-[A-Za-z0-9_-]{20,}"
    r"|SG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}"
    r"|hf_[A-Za-z0-9]{30,}"
    r"|npm_[A-Za-z0-9]{30,}"
    r"|pypi-[A-Za-z0-9_-]{50,}"
    r"|shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}"
    r"|dop_v1_[a-f0-9]{64}"
    r"|sq0(?:atp|csp)-[A-Za-z0-9_-]{22,}"
    r"|xai-[A-Za-z0-9]{40,}"
    r"|eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"
    r")"
)
_PLUGINS = (
    "AWSKeyDetector",
    "AzureStorageKeyDetector",
    "BasicAuthDetector",
    "DiscordBotTokenDetector",
    "GitHubTokenDetector",
    "GitLabTokenDetector",
    "JwtTokenDetector",
    "MailchimpDetector",
    "NpmDetector",
    "OpenAIDetector",
    "PypiTokenDetector",
    "SendGridDetector",
    "SlackDetector",
    "SquareOAuthDetector",
    "StripeDetector",
    "TelegramBotTokenDetector",
    "TwilioKeyDetector",
)
_URL_PASSWORD = re.compile(r"(?<=://)[^\s:/@]+:[^\s:/@]+(?=@)")
_ALNUM = str.maketrans({chr(c): "a" if chr(c).isalnum() or chr(c) in "_-" else " " for c in range(128)})
_RUN = "a" * 20
_WRAPPERS = "\"'`,;()[]{}<>"
_NAMING = ("key", "secret", "token", "bearer", "credential", "auth", "passw", "pwd")
"""Words that name the token after them as a secret (lowercase stems)."""
_ENTROPY = 3.0
_PASSWORD_WORDS = ("password", "passwd", "passcode", "passphrase", "pwd")
_NAMING_WORDS = frozenset(
    {
        *("key", "keys", "apikey", "secretkey", "privatekey", "accesskey"),
        *("secret", "secrets", "token", "tokens", "authtoken", "accesstoken", "apitoken"),
        *("bearer", "credential", "credentials", "auth", "authorization"),
        *("password", "passwords", "passwd", "passcode", "passphrase", "pwd"),
    }
)
"""Words (as `findings.vocabulary` splits them) that make the named-value search worth running."""
_PASSWORD_VALUE = re.compile(
    r"(?:\s*(?:is|was|=|:|->)\s*|\s*[:=]?\s+)[\"'`]?([^\s\"'`]{6,64})", re.IGNORECASE
)
_PEM = re.compile(
    r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----(?:.*?-----END[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----)?",
    re.DOTALL,
)


@lru_cache(maxsize=1)
def _plugin_patterns() -> tuple[re.Pattern[str], ...]:
    """detect-secrets' format plugins, one alternation per flag set (read once, on first use)."""
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class

    by_flags: dict[int, list[str]] = {}
    plugins: list[type] = list(get_mapping_from_secret_type_to_class().values())
    for plugin in plugins:
        if plugin.__name__ in _PLUGINS:
            for pattern in plugin().denylist:
                by_flags.setdefault(pattern.flags, []).append(pattern.pattern)
    return tuple(re.compile("|".join(f"(?:{p})" for p in group), flags) for flags, group in by_flags.items())


@lru_cache(maxsize=1)
def _entropy_of() -> object:
    from detect_secrets.plugins.high_entropy_strings import Base64HighEntropyString

    return Base64HighEntropyString()


def entropy(value: str) -> float:
    """Shannon entropy of `value` over the base64 alphabet (detect-secrets' measure)."""
    plugin = _entropy_of()
    measured: float = plugin.calculate_shannon_entropy(value)  # type: ignore[attr-defined]
    return measured


def _mixed(token: str) -> bool:
    """Letters and digits both: every key format has them; words and plain numbers do not."""
    return any(c.isdigit() for c in token) and any(c.isalpha() for c in token)


@lru_cache(maxsize=8192)
def _known(token: str) -> tuple[int, int] | None:
    """Where a known secret format sits inside `token` (None if nowhere)."""
    match = _PREFIXED.search(token)
    if match is not None:
        return match.span()
    for pattern in _plugin_patterns():
        match = pattern.search(token)
        if match is not None:
            return match.span()
    return None


def _named(lowered: str, start: int, token: str) -> bool:
    """A long random-looking token right after a word that names it a secret."""
    window = lowered[max(0, start - 32) : start + min(len(token), 24)]
    return any(word in window for word in _NAMING) and entropy(token) >= _ENTROPY


def _tokens(text: str) -> list[tuple[int, str]]:
    """(position, token) of the whitespace-separated tokens that hold a run of 20 letters and
    digits: every key format without a keyword has one, and ordinary text rarely does. The runs
    are found with one substring search on the text mapped to two symbols."""
    shapes = text.translate(_ALNUM)
    at = shapes.find(_RUN)
    found: list[tuple[int, str]] = []
    while at != -1:
        start = at
        while start > 0 and not text[start - 1].isspace():
            start -= 1
        end = shapes.find(" ", at)
        end = len(text) if end == -1 else end
        while end < len(text) and not text[end].isspace():
            end += 1
        token = text[start:end]
        stripped = token.strip(_WRAPPERS)
        found.append((start + token.index(stripped), stripped))
        at = shapes.find(_RUN, end)
    return found


_NAMED_VALUE = re.compile(
    r"[\w-]{0,12}[\"']?\s*(?:is|was|=|:|->)?\s*[\"'`]?([A-Za-z0-9+/_.=-]{16,200})", re.IGNORECASE
)


def _named_values(text: str, lowered: str) -> list[Finding]:
    """A random-looking token of 16+ characters right after "key", "secret", "token"... (shorter
    than the 20-character runs `_tokens` finds by themselves)."""
    found: list[Finding] = []
    for word in _NAMING:
        at = lowered.find(word)
        while at != -1:
            value = _NAMED_VALUE.match(text, at + len(word))
            if value is not None:
                token = value.group(1).rstrip(".")
                if _mixed(token) and entropy(token) >= _ENTROPY:
                    found.append(Finding("secret", value.start(1), value.start(1) + len(token), token))
            at = lowered.find(word, at + 1)
    return found


def _passwords(text: str, lowered: str) -> list[Finding]:
    found: list[Finding] = []
    for word in _PASSWORD_WORDS:
        at = lowered.find(word)
        while at != -1:
            end = at + len(word)
            while end < len(lowered) and lowered[end].isalpha():  # "passwords", "pwd's"
                end += 1
            value = _PASSWORD_VALUE.match(text, end)
            if value is not None:
                secret = value.group(1).rstrip(".,;:!?)")
                if len(secret) >= 6 and not secret.isalpha() and not secret.startswith(("http", "[")):
                    start = value.start(1)
                    found.append(Finding("secret", start, start + len(secret), secret))
            at = lowered.find(word, at + 1)
    return found


def find_secrets(text: str, lowered: str, words: set[str]) -> list[Finding]:
    """Every secret in `text` (`lowered` is `text.lower()` and `words` its vocabulary, shared with
    the other detectors)."""
    found: list[Finding] = []
    for at, token in _tokens(text):
        span = _known(token)
        if span is not None:
            start, end = at + span[0], at + span[1]
            found.append(Finding("secret", start, end, text[start:end]))
        elif _mixed(token) and _named(lowered, at, token):
            found.append(Finding("secret", at, at + len(token), token))
    if "://" in text and "@" in text:
        found += [Finding("secret", m.start(), m.end(), m.group(0)) for m in _URL_PASSWORD.finditer(text)]
    if not _NAMING_WORDS.isdisjoint(words):
        found += _named_values(text, lowered)
    if "PRIVATE KEY" in text:
        found += [Finding("secret", m.start(), m.end(), m.group(0)) for m in _PEM.finditer(text)]
    if "pass" in lowered or "pwd" in lowered:
        found += _passwords(text, lowered)
    return found
