"""The token estimate every list cell is costed with (`crm_mcp.render.values.estimate_tokens`):
the same count as its plain definition, piece by piece, on any text."""

from __future__ import annotations

import random
import re

import pytest

from crm_mcp.render import estimate_tokens
from crm_mcp.sandbox.seed import build_seed
from crm_mcp.tokens import count_tokens

_PIECES = re.compile(r" ?[^\W\d_]+|\d{1,3}| ?[^\w\s]|_| +")


def by_definition(text: str) -> int:
    """Each piece one token; a word of ASCII letters one more per 7 letters, of other letters one
    per letter beyond the first."""
    total = 0
    for piece in _PIECES.findall(text):
        total += 1
        word = piece.strip()
        if word.isalpha():
            total += len(word) // 7 if word.isascii() else len(word) - 1
    return total


ALPHABET = [*"abcdefghijklmnopqrstuvwxyzABCXYZ0123456789", *" " * 6, "_", "-", ".", "@", "|", "\n", "\t",
            "é", "ü", "ß", "Ж", "щ", "中", "文", "²", "½", "…", "—", "٣", "😀", "\u200b", "'", '"']


@pytest.mark.parametrize("seed", range(4))
def test_the_estimate_counts_as_its_definition_on_random_text(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(2500):
        text = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 60)))
        assert estimate_tokens(text) == by_definition(text), repr(text)


def test_the_estimate_counts_as_its_definition_on_the_seed_records() -> None:
    seed = build_seed()
    texts = [str(value) for rows in seed.values() if isinstance(rows, list) for row in rows if isinstance(row, dict)
             for value in row.values()]
    assert len(texts) > 1000
    for text in texts:
        assert estimate_tokens(text) == by_definition(text), repr(text)
    # and it stays an over-estimate of the real tokenizer's count on CRM text as a whole
    joined = "\n".join(texts)
    assert estimate_tokens(joined) >= count_tokens(joined)


def test_every_pair_of_ascii_characters_is_cut_into_the_same_pieces() -> None:
    """ASCII text goes through ASCII character classes (faster); every ASCII character, controls
    and Unicode's ASCII whitespace (\x1c-\x1f) among them, is cut as the Unicode pattern cuts it."""
    from crm_mcp.render.values import _ASCII_PIECES

    every = [chr(i) for i in range(128)]
    for a in every:
        for b in every:
            assert _ASCII_PIECES.findall(a + b) == _PIECES.findall(a + b), repr(a + b)


@pytest.mark.parametrize("seed", range(4))
def test_an_ascii_text_is_cut_into_the_same_pieces(seed: int) -> None:
    from crm_mcp.render.values import _ASCII_PIECES

    rng = random.Random(seed)
    every = [chr(i) for i in range(128)]
    for _ in range(2500):
        text = "".join(rng.choice(every) for _ in range(rng.randint(0, 40)))
        assert _ASCII_PIECES.findall(text) == _PIECES.findall(text), repr(text)
        assert estimate_tokens(text) == by_definition(text), repr(text)


@pytest.mark.parametrize("seed", range(2))
def test_the_estimate_of_lines_is_the_sum_of_theirs(seed: int) -> None:
    """What a list relies on to cost a column in one pass, or to drop one from half its cells: no
    piece reaches over a line break, ASCII lines mixed with others included."""
    rng = random.Random(seed)
    for _ in range(1500):
        lines = ["".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 20))) for _ in range(rng.randint(1, 6))]
        cut = rng.randint(0, len(lines))
        assert estimate_tokens("\n".join(lines)) == sum(estimate_tokens(line) for line in lines), repr(lines)
        head, tail = "\n".join(lines[:cut]), "\n".join(lines[cut:])
        assert estimate_tokens("\n".join(lines)) == estimate_tokens(head) + estimate_tokens(tail), repr(lines)
