"""CRM values written as short, safe inline text: escaping, dates, nested emails/phones/addresses.

Every CRM string goes through `quote()`: a string that could break the frame (a line break, `|`,
a quote, a backslash, markup (`<`, `>`: a tag such as `</function_results>` must read as data),
a control, invisible or bidirectional character, edge whitespace, nothing or a lone "-") is
written as a JSON string literal, everything else as is.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

CELL_CHARS = 60  # a longer string in a list cell is shortened with "…"
PRIMARY_ONLY = frozenset({"emails", "phone_numbers", "addresses", "websites"})  # a list cell shows one of these
_TYPED_LISTS = ("emails", "phone_numbers", "websites")

_INVISIBLE = r"\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff"
_UNSAFE_CHAR = re.compile(rf'[\x00-\x1f{_INVISIBLE}|"\\<>]')
_JSON_MISSES = re.compile(f"[{_INVISIBLE}]")
_ISO = re.compile(r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2})(:\d{2})?(\.\d+)?(Z|[+-]\d{2}:?\d{2})?$")
_EVENT_TIME = re.compile(r"_datetime$|^start_|^end_")  # fields whose time of day matters in a list
# A token estimate counts pieces: a word (a run of letters, with the space before it), up to three
# digits, a sign (with the space before it), "_", a run of spaces; a word of ASCII letters takes one
# token more per 7 letters, one of other letters one per letter. No piece reaches over a line break,
# so the estimate of "\n".join(texts) is the sum of theirs (`views` costs a column in one pass).
_PIECES = re.compile(r" ?[^\W\d_]+|\d{1,3}| ?[^\w\s]|_| +")
# The same pieces of an ASCII text, in ASCII classes (Unicode's whitespace among them is \x1c-\x1f
# too): a third faster than Unicode categories, and most CRM text is ASCII.
_ASCII_PIECES = re.compile(r" ?[A-Za-z]+|[0-9]{1,3}| ?[^A-Za-z0-9_ \t\n\r\x0b\x0c\x1c-\x1f]|_| +")


def estimate_tokens(text: str) -> int:
    """o200k tokens, estimated without the tokenizer (render stays cheap to import): about 1.1x
    the true count on CRM text, rarely under it for a line and not for a page."""
    if text.isascii():
        pieces = _ASCII_PIECES.findall(text)
        total = len(pieces)
        for piece in pieces:  # longer than 6: letters (after at most one space), or a run of spaces
            if len(piece) > 6 and piece[-1] != " ":
                total += (len(piece) - (piece[0] == " ")) // 7
        return total
    pieces = _PIECES.findall(text)
    total = len(pieces)
    # only a long or a non-ASCII word takes more than one token
    for piece in [p for p in pieces if len(p) > 6 or not p.isascii()]:
        word = piece.strip()
        if word.isalpha():
            total += len(word) // 7 if word.isascii() else len(word) - 1
    return total


def quote(text: str, limit: int | None = None) -> str:
    """A CRM string made safe to write inline; shortened to `limit` characters with "…" first."""
    if limit is not None and len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    if text and text != "-" and not text[0].isspace() and not text[-1].isspace() and not _UNSAFE_CHAR.search(text):
        return text
    return _JSON_MISSES.sub(lambda m: f"\\u{ord(m.group()):04x}", json.dumps(text, ensure_ascii=False))


_PLAIN_ID = re.compile(r"^[A-Za-z0-9_.@+=\-]+$")


def quote_id(text: str) -> str:
    """An id written where it starts a line: plain ids as they are, anything else (spaces,
    colons, markup — ids of some resources are chosen by whoever creates them) quoted, so that
    an id cannot pass for a line of the server's own."""
    return text if _PLAIN_ID.match(text) else json.dumps(text, ensure_ascii=True)


def is_empty(value: Any) -> bool:
    """None, "", and lists and objects of nothing but those."""
    kind = type(value)  # JSON's own types first: this runs for every cell of every row
    if kind is str:
        return not value
    if kind is dict:
        return all(map(is_empty, value.values()))
    if kind is list:
        return all(map(is_empty, value))
    if value is None or value == "" or value == [] or value == {}:
        return True
    if isinstance(value, list):
        return all(map(is_empty, value))
    if isinstance(value, Mapping):
        return all(map(is_empty, value.values()))
    return False


def get_path(record: Mapping[str, Any], path: str) -> Any:
    """A field by dot path (`addresses.city`); through a list it collects from every element."""
    value: Any = record
    for part in path.split("."):
        if isinstance(value, list):
            value = [v.get(part) for v in value if isinstance(v, Mapping)]
        elif isinstance(value, Mapping):
            value = value.get(part)
        else:
            return None
    return value


def _date(text: str, field: str, short: bool) -> str | None:
    """ISO datetimes without noise: in a list the day (unless the time is the point), else to the minute."""
    m = _ISO.match(text)
    if not m:
        return None
    day, hm, sec, _frac, tz = m.groups()
    if short and not _EVENT_TIME.search(field):
        return day
    zone = "Z" if tz in (None, "Z", "+00:00", "+0000") else tz
    return f"{day}T{hm}{'' if sec in (None, ':00') else sec}{zone}"


def scalar(value: Any, field: str = "", *, short: bool = False) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int | float):
        return str(value)
    text = str(value)
    return _date(text, field, short) or quote(text, CELL_CHARS if short else None)


def _phone(p: Mapping[str, Any]) -> str:
    number = str(p.get("number") or "")
    parts = []
    if not number.startswith("+"):
        if p.get("country_code"):
            parts.append("+" + str(p["country_code"]).lstrip("+"))
        if p.get("area_code") and not number.startswith(str(p["area_code"])):
            parts.append(str(p["area_code"]))
    parts.append(number)
    if p.get("extension"):
        parts.append("ext " + str(p["extension"]))
    return quote(" ".join(x for x in parts if x))


def address(a: Mapping[str, Any], *, short: bool) -> str:
    """`1 Main St, Suite 2, San Francisco, CA 94105, US`; in a list only `San Francisco, US`."""
    city, state, postal, country = (a.get(k) for k in ("city", "state", "postal_code", "country"))
    if short:
        place = [str(x) for x in (city or state, country) if x]
        return ", ".join(quote(x) for x in place) if place else quote(str(a.get("string") or a.get("line1") or ""), 40)
    lines = [a.get(f"line{i}") for i in range(1, 6)]
    if a.get("street_number") and lines[0] and str(a["street_number"]) not in str(lines[0]):
        lines[0] = f"{a['street_number']} {lines[0]}"
    region = " ".join(str(x) for x in (state, postal) if x)
    parts = [str(x) for x in (*lines, city, region, country) if x]
    text = ", ".join(quote(x) for x in parts) if parts else quote(str(a.get("string") or ""))
    extras = [f"{k} {scalar(a[k])}" for k in ("county", "contact_name", "phone_number", "email") if a.get(k)]
    return "; ".join([text, *extras])


def _typed(value: str, kind: Any) -> str:
    return f"{value} ({quote(str(kind))})" if kind else value


def _option(option: Mapping[str, Any]) -> str:
    value, label = str(option.get("value") or ""), str(option.get("label") or "")
    same = label.lower() in ("", value.lower(), value.replace("_", " ").lower())
    return quote(value) if same else f"{quote(value)}={quote(label)}"


def _schema_field(item: Mapping[str, Any]) -> str:
    """A custom object schema's field definition: `status (fld_status): select, required, options a, b`."""
    get = item.get
    name = quote(str(get("name") or get("id") or ""))
    about = [quote(str(get("type") or "")), "required" if get("required") else ""]
    about.append(f"default {scalar(get('default_value'))}" if not is_empty(get("default_value")) else "")
    options = [o for o in get("options") or [] if isinstance(o, Mapping)]
    about.append("options " + ", ".join(_option(o) for o in options) if options else "")
    about.append(quote(str(get("description"))) if get("description") else "")
    label = f"{name} ({quote(str(get('id')))})" if get("id") and get("id") != get("name") else name
    return f"{label}: " + ", ".join(x for x in about if x)


def item(field: str, element: Any, *, short: bool) -> str:
    """One element of a nested field, written readably."""
    if type(element) is not dict and not isinstance(element, Mapping):  # a dict skips the ABC check
        return scalar(element, field, short=short)
    get = element.get
    if field in ("emails", "websites", "social_links"):
        text = quote(str(get("email" if field == "emails" else "url") or ""))
        return text if short else _typed(text, get("type"))
    if field == "phone_numbers":
        return _phone(element) if short else _typed(_phone(element), get("type"))
    if field in ("addresses", "location_address"):
        return address(element, short=short)
    if field == "stages":  # pipeline stages: the id is what an opportunity update needs
        win = "" if short or get("win_probability") is None else f", {scalar(get('win_probability'))}%"
        return f"{quote(str(get('name') or ''))} ({quote(str(get('id') or ''))}{win})"
    if field == "attendees":
        who = quote(str(get("name") or get("email_address") or get("id") or ""))
        notes = [quote(str(element[k])) for k in ("email_address", "status") if get(k) and element[k] != get("name")]
        notes += ["organizer"] if get("is_organizer") else []
        notes += [f"{k} {quote(str(element[k]))}" for k in ("contact_id", "user_id") if get(k)]
        return f"{who} ({', '.join(notes)})" if notes else who
    if field == "fields" and "value" in element and "type" not in element:  # a custom object's values
        return f"{quote(str(get('name') or ''))}={value('value', get('value'), short=short)}"
    if field == "fields":  # a custom object schema's field definitions
        return quote(str(get("name") or get("id") or "")) if short else _schema_field(element)
    if set(element) <= {"id", "name"} and get("name"):
        return _typed(quote(str(element["name"])), get("id"))
    pairs = (f"{quote(str(k))}={value(str(k), v, short=short)}" for k, v in element.items() if not is_empty(v))
    return ", ".join(pairs)


def _primary(items: list[Any]) -> Any:
    """The first non-empty item typed "primary", else the first non-empty one (None: none is)."""
    first = None
    for v in items:
        if is_empty(v):
            continue
        if (type(v) is dict or isinstance(v, Mapping)) and v.get("type") == "primary":
            return v
        if first is None:
            first = v
    return first


def value(field: str, raw: Any, *, short: bool = False, card: bool = False) -> str:
    """A field's value on one line. `short`: a list cell (the primary or first email, phone, address);
    `card`: a record card, which leaves out the type of a lone email, phone or website."""
    if type(raw) is str:  # most values: `scalar`'s way with a string, without its type tests
        return _date(raw, field, short) or quote(raw, CELL_CHARS if short else None)
    if isinstance(raw, list):
        if short and not card and field in PRIMARY_ONLY:  # a list cell: the one item it shows
            chosen = _primary(raw)
            return "" if chosen is None else item(field, chosen, short=True)
        items = [v for v in raw if not is_empty(v)]
        if card and len(items) == 1 and field in _TYPED_LISTS:
            short = True
        if short and field in PRIMARY_ONLY:
            chosen = _primary(items)
            items = [] if chosen is None else [chosen]
        nested = field not in PRIMARY_ONLY and any(isinstance(v, Mapping) for v in items)
        return ("; " if nested else ", ").join(item(field, v, short=short) for v in items)
    if type(raw) is dict or isinstance(raw, Mapping):
        return item(field, raw, short=short)
    return scalar(raw, field, short=short)
