"""Request-line building for the Apideck API: path templates and deepObject query strings.

Two properties matter here and are tested:

- a path parameter is always exactly one path segment: it is percent-encoded with nothing left
  "safe" (so ``/``, ``?``, ``#``, ``%`` are escaped), and values that would still be read as a
  different path (empty, ``.``, ``..``) or that carry control characters are refused before anything
  is sent. A hostile id can never change which endpoint a request reaches.
- query parameters follow the contract's ``style: deepObject, explode: true``:
  ``{"filter": {"email": "a@b"}}`` becomes ``filter[email]=a%40b``. Booleans are ``true``/``false``,
  ``None`` values are dropped, keys and values are percent-encoded, the brackets stay literal.
"""

from __future__ import annotations

import datetime as _dt
import enum
import re
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote

__all__ = [
    "ArgumentError",
    "check_header_value",
    "encode_query",
    "encode_segment",
    "expand_path",
    "query_pairs",
]

# C0 controls, DEL and C1 controls: never acceptable in an id or a header value.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")
MAX_ID_LENGTH = 2048
# The longest query string sent (encoded): API gateways refuse request lines much past 8 KB, and
# httpx2 refuses URLs past 64 KB with an error that names no argument.
MAX_QUERY_LENGTH = 8000
# Top-level parameters whose value is a comma-separated list: their commas stay literal.
_COMMA_LISTS = frozenset({"fields"})


class ArgumentError(ValueError):
    """A value that cannot be put on the wire safely. `argument` names the offending parameter."""

    def __init__(self, argument: str, reason: str) -> None:
        super().__init__(f"{argument}: {reason}")
        self.argument = argument
        self.reason = reason


def _describe(value: str) -> str:
    """A printable, bounded rendering of a refused value (control characters made visible)."""
    shown = value if len(value) <= 60 else value[:57] + "..."
    return repr(shown)


def encode_segment(name: str, value: Any) -> str:
    """Percent-encode one path parameter as a single segment, refusing values that are unsafe."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ArgumentError(name, f"must be a string id, got {type(value).__name__}")
    text = str(value)
    if not text.strip():
        raise ArgumentError(name, "is empty; pass the record's id as returned by the API")
    if text in {".", ".."}:
        raise ArgumentError(name, f"{_describe(text)} is not a valid id (it would change the request path)")
    if _CONTROL.search(text):
        raise ArgumentError(name, f"{_describe(text)} contains control characters; ids never do")
    if len(text) > MAX_ID_LENGTH:
        raise ArgumentError(name, f"is {len(text)} characters long; ids are at most {MAX_ID_LENGTH}")
    return quote(text, safe="")


def expand_path(template: str, params: Mapping[str, Any] | None) -> str:
    """Fill `/crm/contacts/{id}` from `params`; every placeholder must be given, nothing else may be."""
    given = dict(params or {})
    names = _PLACEHOLDER.findall(template)
    missing = [n for n in names if given.get(n) is None]
    if missing:
        raise ArgumentError(missing[0], "is required")
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise ArgumentError(unknown[0], f"is not a parameter of {template}")
    return _PLACEHOLDER.sub(lambda m: encode_segment(m.group(1), given[m.group(1)]), template)


def check_header_value(name: str, value: str) -> str:
    """Refuse header values that could split or smuggle headers (CR, LF, NUL, other controls)."""
    if not isinstance(value, str):
        raise ArgumentError(name, f"must be a string, got {type(value).__name__}")
    if _CONTROL.search(value):
        raise ArgumentError(name, "contains control characters (CR/LF are never allowed in a header)")
    try:
        value.encode("ascii")
    except UnicodeEncodeError:
        raise ArgumentError(name, "contains non-ASCII characters, which HTTP headers cannot carry") from None
    if value != value.strip():
        raise ArgumentError(name, "has leading or trailing whitespace")
    return value


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, enum.Enum):
        return _scalar(value.value)
    if isinstance(value, _dt.datetime | _dt.date | _dt.time):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _plain(value: Any) -> Any:
    """Pydantic models become dicts (by alias, unset and None fields left out)."""
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(by_alias=True, exclude_none=True, mode="json")
    return value


def query_pairs(query: Mapping[str, Any] | None) -> Iterator[tuple[str, str]]:
    """The (unencoded) key/value pairs of a query, deepObject-expanded, in insertion order."""

    def walk(key: str, value: Any) -> Iterator[tuple[str, str]]:
        value = _plain(value)
        if value is None:
            return
        if isinstance(value, Mapping):
            for sub, item in value.items():
                yield from walk(f"{key}[{sub}]", item)
        elif isinstance(value, list | tuple | set | frozenset):
            items = [_scalar(v) for v in value if v is not None]
            if items:  # comma-separated, as the contract's `fields` expects
                yield key, ",".join(items)
        else:
            yield key, _scalar(value)

    for name, value in (query or {}).items():
        yield from walk(str(name), value)


def encode_query(query: Mapping[str, Any] | None) -> str:
    """`{"filter": {"email": "a@b"}, "limit": 50}` -> `filter[email]=a%40b&limit=50`.

    Nested mappings expand as deepObject (`sort[by]=name`), lists are comma-joined, bool is
    `true`/`false`, None is dropped at every level. Keys and values are percent-encoded with
    nothing safe, so a `&`, `=`, `[` or `#` inside a user value cannot add or change a parameter.
    A query longer than `MAX_QUERY_LENGTH` raises ArgumentError naming its longest parameter.
    """
    out: list[str] = []
    sizes: dict[str, int] = {}

    def walk(prefix: str, value: Any, comma_list: bool) -> None:
        value = _plain(value)
        if value is None:
            return
        if isinstance(value, Mapping):
            for sub, item in value.items():
                walk(f"{prefix}[{quote(str(sub), safe='')}]", item, False)
        elif isinstance(value, list | tuple | set | frozenset):
            items = [_scalar(v) for v in value if v is not None]
            if items:
                out.append(f"{prefix}={quote(','.join(items), safe=',')}")
        else:
            out.append(f"{prefix}={quote(_scalar(value), safe=',' if comma_list else '')}")

    for name, value in (query or {}).items():
        key = str(name)
        before = len(out)
        walk(quote(key, safe=""), value, key in _COMMA_LISTS)
        sizes[key] = sum(len(part) + 1 for part in out[before:])
    encoded = "&".join(out)
    if len(encoded) > MAX_QUERY_LENGTH:
        longest = max(sizes, key=lambda k: sizes[k])
        raise ArgumentError(
            longest,
            f"is too long: {sizes[longest]} characters once encoded, and the whole query may be at most "
            f"{MAX_QUERY_LENGTH}; use shorter values",
        )
    return encoded
