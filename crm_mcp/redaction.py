"""Keeping secrets out of everything the server writes: agent messages, logs, results.

An upstream (or a connector behind it) may echo the `Authorization` header or the API key in an
error body; `redact` removes every known secret (in its plain, URL-encoded and JSON-escaped
forms) and anything that looks like a credential even when the secret is not known.

Redact first, then shorten: a text cut before redaction may keep most of a secret that the
redaction no longer recognises. Successful results (CRM data) are redacted with
``patterns=False``: only the known secrets go, so that a note saying "basic plan" stays whole.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any
from urllib.parse import quote

__all__ = ["REDACTED", "redact", "redact_obj"]

REDACTED = "[REDACTED]"
MIN_SECRET_LENGTH = 3

# Credentials that appear without us knowing the secret: "Bearer xyz", "Authorization: ...",
# "x-apideck-app-id: ...", "api_key=...".
_BEARER = re.compile(r"(?i)\b(bearer|basic)(\s+|%20|\+)[A-Za-z0-9._~+/=\-:]{4,}")
_SENSITIVE_KEY = re.compile(
    r"(?i)^(authorization|proxy-authorization|x-apideck-app-id|x-api-key|api[_-]?key|apikey|access[_-]?token"
    r"|refresh[_-]?token|client[_-]?secret|secret|password|cookie|set-cookie)$"
)
_HEADERISH = re.compile(
    r"""(?ix)
    (["']?\b(?:authorization|proxy-authorization|x-apideck-app-id|x-api-key|api[_-]?key|apikey
       |access[_-]?token|refresh[_-]?token|client[_-]?secret|secret|password)\b["']?)
    (\s*[:=]\s*["']?)
    ((?:bearer\s+|basic\s+)?[^\s"',;&}\]]+)
    """
)


def _variants(secret: str) -> set[str]:
    """Forms in which an echoed secret may appear: as is, URL-encoded, JSON-escaped."""
    forms = {secret, quote(secret, safe=""), quote(secret, safe="/"), json.dumps(secret)[1:-1]}
    return {f for f in forms if len(f) >= MIN_SECRET_LENGTH}


# The only characters outside ASCII that re.IGNORECASE matches to an ASCII character (every code
# point checked): İ and ı to i, ſ to s, the Kelvin sign to k. İ is also the only character whose
# lower() is two characters long, so it is mapped first.
_ASCII_LOOKALIKE = re.compile("[\u0130\u0131\u017f\u212a]")
_TO_ASCII = str.maketrans({"\u0130": "i", "\u0131": "i", "\u017f": "s", "\u212a": "k"})


class _Known:
    """One pattern for every form of the known secrets, longest first; and, when every form is
    ASCII, those forms folded, to tell cheaply that a text holds none of them."""

    __slots__ = ("folded", "pattern")

    def __init__(self, forms: set[str]):
        self.pattern = re.compile("|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True)),
                                  re.IGNORECASE)
        self.folded = tuple(f.lower() for f in forms) if all(f.isascii() for f in forms) else None

    def sub(self, text: str) -> str:
        # The pattern matches exactly where the folded text holds a folded form (the case of an
        # ASCII letter, or a look-alike above, is all IGNORECASE adds to a literal): a text that
        # holds none, as nearly every result does, skips the regex search (~50 µs for 2 KB).
        if self.folded is not None:
            folded = text if text.isascii() or not _ASCII_LOOKALIKE.search(text) else text.translate(_TO_ASCII)
            folded = folded.lower()
            if not any(form in folded for form in self.folded):
                return text
        return self.pattern.sub(REDACTED, text)


@lru_cache(maxsize=64)
def _known(secrets: frozenset[str]) -> _Known | None:
    forms: set[str] = set()
    for secret in secrets:
        if len(secret) >= MIN_SECRET_LENGTH:
            forms |= _variants(secret)
    return _Known(forms) if forms else None


def redact(text: str, secrets: Iterable[str | None] = (), *, patterns: bool = True) -> str:
    """`text` with every known secret (and anything that looks like a credential) replaced by [REDACTED].

    Known secrets are matched case-insensitively and in their URL-encoded and JSON-escaped forms;
    with `patterns`, bearer tokens and ``authorization: ...`` / ``api_key=...`` pairs are redacted
    even when the secret is not known (an upstream may echo another tenant's or a connector's token).
    """
    if not isinstance(text, str):
        text = str(text)
    known = _known(frozenset(s for s in secrets if s))
    if known is not None:
        text = known.sub(text)
    if patterns:
        text = _HEADERISH.sub(lambda m: m.group(1) + m.group(2) + REDACTED, text)
        text = _BEARER.sub(lambda m: m.group(1) + " " + REDACTED, text)
    return text


def redact_obj(value: Any, secrets: Iterable[str | None] = (), *, patterns: bool = True) -> Any:
    """`redact` applied to every string (keys too) inside a JSON-like value; with `patterns`, the
    value of a credential-like key (``password``, ``api_key``, ...) is redacted whole."""
    secrets = tuple(secrets)
    if isinstance(value, str):
        return redact(value, secrets, patterns=patterns)
    if isinstance(value, Mapping):
        return {
            redact(str(k), secrets, patterns=patterns): REDACTED
            if patterns and _SENSITIVE_KEY.match(str(k)) and v
            else redact_obj(v, secrets, patterns=patterns)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact_obj(v, secrets, patterns=patterns) for v in value]
    return value
