"""Context cost in o200k tokens, counted offline with the `bpe-openai` tokenizer.

Used by `crm-mcp tools`, the token-budget tests and the benchmarks. The tokenizer loads in
under a second on first use, so nothing on the serving path imports this module. It is an
optional extra (`unified-crm-mcp[tokens]`, 75 MB): a plain install serves without it.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

INSTALL_HINT = "pip install 'unified-crm-mcp[tokens]'"


class TokenizerMissing(RuntimeError):
    """`bpe-openai` is not installed; the message says how to install it."""


@cache
def _encoding() -> Any:
    try:
        import bpe_openai
    except ImportError as exc:
        raise TokenizerMissing(
            f"counting tokens needs the optional bpe-openai tokenizer, which is not installed: {INSTALL_HINT}"
        ) from exc
    return bpe_openai.get_encoding("o200k_base")


def count_tokens(text: str) -> int:
    """o200k tokens of `text`."""
    return len(_encoding().encode(text))


def compact_json(value: Any) -> str:
    """JSON as a client sends it on the wire: no spaces, non-ASCII kept."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def json_tokens(value: Any) -> int:
    """o200k tokens of the compact JSON of `value`."""
    return count_tokens(compact_json(value))
