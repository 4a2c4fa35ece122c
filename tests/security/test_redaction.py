"""Known secrets leave a text in every case and look-alike form the case-insensitive pattern
matches, with or without the cheap pre-check that spares nearly every result the regex search."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from crm_mcp.redaction import REDACTED, _variants, redact

SECRETS = ("sk_live_Ab3s9kI", "app-7Kq")


def by_pattern_alone(text: str, secrets: tuple[str, ...]) -> str:
    """What redact() did before the pre-check: the one case-insensitive pattern over every form."""
    forms = set().union(*(_variants(s) for s in secrets))
    pattern = re.compile("|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True)), re.IGNORECASE)
    return pattern.sub(REDACTED, text)


# the secrets' characters in both cases, the four non-ASCII characters IGNORECASE matches to ASCII
# ones (İ ı ſ K), other non-ASCII letters and the separators of a rendered table
pieces = st.sampled_from([*SECRETS, *(s.upper() for s in SECRETS), "sk_live_", "ab3", "app-7", "7kq"])
characters = st.sampled_from([*"skliveabSKLIVEAB39_-7qQKk %|\n\"\\é漢ß", "\u0130", "\u0131", "\u017f", "\u212a"])


LOOK_ALIKE = {"s": "\u017f", "k": "\u212a", "i": "\u0131", "I": "\u0130"}


@st.composite
def disguised(draw: st.DrawFn) -> str:
    """A secret with some letters in the other case or swapped for their look-alike."""
    secret = draw(st.sampled_from(SECRETS))
    how = draw(st.lists(st.sampled_from(["same", "case", "alike"]), min_size=len(secret), max_size=len(secret)))
    return "".join(c.swapcase() if h == "case" else LOOK_ALIKE.get(c, c) if h == "alike" else c
                   for c, h in zip(secret, how, strict=True))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(pieces, characters, disguised()), max_size=40))
def test_the_pre_check_never_changes_what_is_redacted(parts: list[str]) -> None:
    text = "".join(parts)
    assert redact(text, SECRETS, patterns=False) == by_pattern_alone(text, SECRETS)


def test_look_alikes_and_other_cases_of_a_secret_are_redacted() -> None:
    for text in ("SK_LIVE_AB3S9KI", "\u017fk_live_ab3\u017f9ki", "sk_live_Ab3s9\u212aI", "sk_l\u0131ve_Ab3s9k\u0130",
                 "Renée: sk_live_Ab3s9kI", "SK_live_ab3S9KI"):
        assert "ab3" not in redact(text, SECRETS, patterns=False).lower(), text


def test_a_text_without_a_secret_comes_back_whole() -> None:
    for text in ("con_0001 | Jane Doe | jane@acme.example", "Renée Wilson | 漢字 | \u0130stanbul", ""):
        assert redact(text, SECRETS, patterns=False) == text


def test_a_secret_outside_ascii_is_still_redacted_by_the_pattern() -> None:
    assert redact("key: clé-secrète-42!", ("clé-secrète-42",), patterns=False) == f"key: {REDACTED}!"
    assert redact("key: CLÉ-SECRÈTE-42", ("clé-secrète-42",), patterns=False) == f"key: {REDACTED}"
