"""Query string parsing: the parameters an operation declares, and nothing else.

`filter[...]`, `sort[...]` and `pass_through[...]` are deepObject parameters; `limit` is an
integer from 1 to 200 (default 20); `raw` a boolean; `cursor` and `fields` strings. A parameter
the operation does not declare is a 400 that names it, so client bugs surface in tests.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from crm_mcp.operations import Operation
from crm_mcp.sandbox.errors import bad_request

__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "Params", "parse_params"]

DEFAULT_LIMIT = 20
MAX_LIMIT = 200
_KEY = re.compile(r"^([A-Za-z_][A-Za-z0-9_-]*)((?:\[[^\[\]]*\])*)$")
_DEEP = ("filter", "sort", "pass_through")


@dataclass
class Params:
    limit: int = DEFAULT_LIMIT
    cursor: str | None = None
    raw: bool = False
    fields: str | None = None
    filter: dict[str, str] = field(default_factory=dict)
    sort: dict[str, str] = field(default_factory=dict)


def _limit(value: str) -> int:
    text = value.strip()
    if not re.fullmatch(r"[+-]?\d+", text):
        raise bad_request(
            f"Invalid limit {value!r}: must be an integer from 1 to {MAX_LIMIT}",
            detail={"limit": value, "rule": f"integer, 1..{MAX_LIMIT}"},
        )
    number = int(text)
    if not 1 <= number <= MAX_LIMIT:
        raise bad_request(
            f"Invalid limit {number}: must be from 1 to {MAX_LIMIT}",
            detail={"limit": value, "rule": f"integer, 1..{MAX_LIMIT}"},
        )
    return number


def _bool(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0", ""):
        return False
    raise bad_request(f"Invalid {name} {value!r}: must be true or false")


def parse_params(op: Operation, items: Iterable[tuple[str, str]]) -> Params:
    params = Params()
    seen: set[str] = set()
    accepted = ", ".join(op.query_params) or "none"
    for key, value in items:
        match = _KEY.match(key)
        base = match.group(1) if match else key
        if base not in op.query_params:
            raise bad_request(
                f"Unknown query parameter '{key}' for {op.tool_name}; accepted parameters: {accepted}",
                detail={"parameter": key, "accepted": list(op.query_params)},
            )
        assert match is not None
        subkeys = re.findall(r"\[([^\[\]]*)\]", match.group(2))
        if base in _DEEP:
            if base == "pass_through":
                continue  # accepted and ignored: there is no downstream to pass it to
            if len(subkeys) != 1 or not subkeys[0]:
                raise bad_request(
                    f"Invalid query parameter '{key}': write {base} as {base}[name]=value",
                    detail={"parameter": key},
                )
            target = params.filter if base == "filter" else params.sort
            if subkeys[0] in target:
                raise bad_request(f"Query parameter '{key}' is given more than once", detail={"parameter": key})
            target[subkeys[0]] = value
            continue
        if subkeys:
            raise bad_request(f"Invalid query parameter '{key}': {base} takes a plain value", detail={"parameter": key})
        if base in seen:
            raise bad_request(f"Query parameter '{base}' is given more than once", detail={"parameter": base})
        seen.add(base)
        if base == "limit":
            params.limit = _limit(value)
        elif base == "raw":
            params.raw = _bool("raw", value)
        elif base == "cursor":
            params.cursor = value or None
        elif base == "fields":
            params.fields = value
    return params
