"""Decoding Apideck's failed answers into the typed errors of `crm_mcp.errors`.

The class is chosen by the body's `type_name` first, then by HTTP status; `Retry-After` (seconds
or an HTTP date, or the body's own hints) and the request id are read from the answer.
"""

from __future__ import annotations

import datetime as _dt
import email.utils
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from crm_mcp.errors import (
    AuthenticationError,
    CallContext,
    ConflictError,
    ConnectionSetupError,
    ConnectorCredentialsError,
    ConnectorDisabledError,
    ConnectorExecutionError,
    ConnectorRateLimitError,
    ConnectorUnsupportedError,
    CrmError,
    InvalidCursorError,
    NotFoundError,
    PaginationNotSupportedError,
    PermissionDeniedError,
    PlanLimitError,
    RateLimitError,
    RequestValidationError,
    UnsupportedFiltersError,
    UnsupportedSortFieldError,
    UpstreamError,
    _clip,
)
from crm_mcp.redaction import redact

__all__ = ["decode_error", "error_class", "parse_retry_after", "request_id_from"]


_BY_TYPE: dict[str, type[CrmError]] = {
    "RequestValidationError": RequestValidationError,
    "RequestHeadersValidationError": RequestValidationError,
    "RequestBodyValidationError": RequestValidationError,
    "InvalidStateError": RequestValidationError,
    "UnsupportedFiltersError": UnsupportedFiltersError,
    "UnsupportedSortFieldError": UnsupportedSortFieldError,
    "InvalidCursorError": InvalidCursorError,
    "PaginationNotSupportedError": PaginationNotSupportedError,
    "EntityNotFoundError": NotFoundError,
    "UnauthorizedError": AuthenticationError,
    "RequestLimitError": PlanLimitError,
    "ConnectorExecutionError": ConnectorExecutionError,
    "ConnectorCredentialsError": ConnectorCredentialsError,
    "OAuthCredentialsNotFoundError": ConnectorCredentialsError,
    "OAuthRedirectUriError": ConnectorCredentialsError,
    "OAuthInvalidStateError": ConnectorCredentialsError,
    "OAuthCodeExchangeError": ConnectorCredentialsError,
    "ConnectionNotFoundError": ConnectionSetupError,
    "IntegrationNotFoundError": ConnectionSetupError,
    "ConnectionSettingsError": ConnectionSetupError,
    "ConnectorNotFoundError": ConnectionSetupError,
    "ConnectorDisabledError": ConnectorDisabledError,
    "ConnectorRateLimitError": ConnectorRateLimitError,
    "OAuthConnectorError": ConnectorUnsupportedError,
    "MappingError": ConnectorUnsupportedError,
    "ConnectorMappingNotFoundError": ConnectorUnsupportedError,
    "ConnectorResponseMappingNotFoundError": ConnectorUnsupportedError,
    "ConnectorOperationMappingNotFoundError": ConnectorUnsupportedError,
    "ConnectorWorkflowMappingError": ConnectorUnsupportedError,
    "ConnectorOperationUnsupportedError": ConnectorUnsupportedError,
}


def _class_for_status(status: int) -> type[CrmError]:
    if status in (400, 422):
        return RequestValidationError
    if status == 401:
        return AuthenticationError
    if status == 402:
        return PlanLimitError
    if status == 403:
        return PermissionDeniedError
    if status == 404:
        return NotFoundError
    if status == 409:
        return ConflictError
    if status == 429:
        return RateLimitError
    if status == 501:
        return ConnectorUnsupportedError
    if status >= 500 or status == 408:
        return UpstreamError
    return CrmError


def error_class(status: int, type_name: str | None) -> type[CrmError]:
    """The class for an error answer: the contract's `type_name` when known, else the HTTP status."""
    cls = _BY_TYPE.get(type_name or "")
    if cls is None:
        return _class_for_status(status)
    if cls is AuthenticationError and status == 403:
        return PermissionDeniedError
    return cls


_NOT_ID = re.compile(r"[^A-Za-z0-9._:/+=\[\]\-]")


def request_id_from(headers: Mapping[str, str], secrets: Iterable[str | None] = ()) -> str | None:
    """The answer's request id, for logs and support: redacted, then kept to plain characters
    (anything else becomes `?`: it is the upstream's text) and shortened."""
    for name in ("x-apideck-request-id", "request-id", "x-request-id"):
        value = headers.get(name)
        if value:
            return _clip(_NOT_ID.sub("?", redact(value, secrets)), 120)
    return None


MAX_RETRY_AFTER = 3600.0  # a longer wait asked by the upstream is told as an hour at most


def _wait(seconds: float) -> float | None:
    """A wait the upstream asked for, made sane: none when not a finite number, else 0..MAX_RETRY_AFTER."""
    if not math.isfinite(seconds):
        return None
    return min(MAX_RETRY_AFTER, max(0.0, seconds))


_RETRY_KEYS_S = ("retry_after", "retryafter", "retry-after", "retry_after_seconds", "retry_in", "reset_in")
_RETRY_KEYS_MS = ("retry_after_ms", "cooldown_remaining_ms", "retryafterms")


def _from_body(body: Any, now: _dt.datetime) -> float | None:
    found: list[float] = []

    def walk(value: Any, depth: int) -> None:
        if depth > 5 or found:
            return
        if isinstance(value, Mapping):
            for key, item in value.items():
                k = str(key).lower()
                number = _number(item)
                if number is not None and k in _RETRY_KEYS_S:
                    found.append(number)
                    return
                if number is not None and k in _RETRY_KEYS_MS:
                    # Apideck uses retry_after_ms both as a duration and as an epoch-ms timestamp.
                    ms = number - now.timestamp() * 1000 if number > 1e12 else number
                    found.append(ms / 1000)
                    return
            for item in value.values():
                walk(item, depth + 1)
        elif isinstance(value, list):
            for item in value:
                walk(item, depth + 1)

    walk(body, 0)
    return _wait(found[0]) if found else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def parse_retry_after(headers: Mapping[str, str], body: Any = None, *, now: _dt.datetime | None = None) -> float | None:
    """Seconds to wait, from `Retry-After` (seconds or HTTP date), `RateLimit-Reset`, or the body's detail;
    at most `MAX_RETRY_AFTER`, and None for a value that is no finite number (`nan`, `inf`)."""
    now = now or _dt.datetime.now(_dt.UTC)
    value = headers.get("retry-after")
    if value:
        value = value.strip()
        number = _number(value)
        if number is not None:
            return _wait(number)
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            when = None
        if when is not None:
            if when.tzinfo is None:
                when = when.replace(tzinfo=_dt.UTC)
            return _wait((when - now).total_seconds())
    for name in ("ratelimit-reset", "x-ratelimit-reset"):
        number = _number(headers.get(name) or "")
        if number is not None:
            # An epoch timestamp when large, a delta in seconds otherwise.
            return _wait(number - now.timestamp() if number > 1e9 else number)
    if isinstance(body, Mapping):
        return _from_body(body.get("detail", body), now)
    return None


@dataclass(slots=True)
class _Decoded:
    type_name: str | None = None
    message: str = ""
    detail: Any = None
    service: str | None = None
    downstream: list[Any] = field(default_factory=list)
    body: Any = None


def _decode_body(
    status: int, content: bytes | str | Any, content_type: str, secrets: tuple[str | None, ...]
) -> _Decoded:
    """The parts of an error body. Text shortened here is redacted first (`secrets`)."""
    reason = _reason(status)
    if isinstance(content, bytes | str):
        text = content.decode("utf-8", "replace") if isinstance(content, bytes) else content
        if not text.strip():
            return _Decoded(message=reason)
        try:
            body = json.loads(text)
        except (ValueError, RecursionError):  # RecursionError: nested deeper than the decoder goes
            kind = content_type.split(";")[0].strip() or "no content type"
            return _Decoded(message=f"{reason}; the body is not JSON ({kind}): {_clip(redact(text, secrets), 200)}")
    else:
        body = content
    if not isinstance(body, Mapping):
        shown = _clip(redact(json.dumps(body, default=str), secrets), 200)
        return _Decoded(message=f"{reason}: {shown}", body=body)
    message = body.get("message") or body.get("error") or reason
    type_name = body.get("type_name")
    downstream = body.get("downstream_errors")
    service = body.get("service")
    return _Decoded(
        type_name=type_name if isinstance(type_name, str) else None,
        message=message if isinstance(message, str) else json.dumps(message, default=str),
        detail=body.get("detail"),
        service=service if isinstance(service, str) else None,
        downstream=list(downstream) if isinstance(downstream, list) else [],
        body=body,
    )


def _reason(status: int) -> str:
    try:
        return f"{HTTPStatus(status).phrase}"
    except ValueError:
        return f"HTTP {status}"


def decode_error(
    status: int,
    content: bytes | str | Any,
    headers: Mapping[str, str] | None = None,
    *,
    context: CallContext | None = None,
    secrets: Iterable[str | None] = (),
) -> CrmError:
    """The typed error for an error answer. `content` is the raw body (or already-decoded JSON)."""
    headers = headers or {}
    secrets = tuple(secrets)
    decoded = _decode_body(status, content, headers.get("content-type", ""), secrets)
    cls = error_class(status, decoded.type_name)
    wants_wait = status in (429, 503) or issubclass(cls, RateLimitError)
    retry_after = parse_retry_after(headers, decoded.body) if wants_wait else None
    return cls(
        decoded.message,
        status=status,
        type_name=decoded.type_name,
        detail=decoded.detail,
        request_id=request_id_from(headers, secrets),
        retry_after=retry_after,
        service=decoded.service,
        downstream_errors=decoded.downstream,
        context=context,
        secrets=secrets,
    )
