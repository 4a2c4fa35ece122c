"""Typed errors of the Apideck CRM API, decoded from its error bodies, each with an agent-facing message.

Apideck answers failures with ``{status_code, error, type_name, message, detail, ref, downstream_errors}``.
`decode_error` turns such an answer into one of the classes below (by ``type_name`` first, then by
HTTP status), and every class knows what an agent should do next (`CrmError.agent_message`).

Everything built from upstream text goes through `redact` when the error is made: an upstream (or a
connector behind it) may echo the ``Authorization`` header or the API key, and such text must never
reach an agent, a log or a result. The error objects do not keep the secrets they redacted.
"""

from __future__ import annotations

import datetime as _dt
import email.utils
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, ClassVar
from urllib.parse import quote

__all__ = [
    "REDACTED",
    "AuthenticationError",
    "CallContext",
    "ConfigurationError",
    "ConflictError",
    "ConnectionSetupError",
    "ConnectorCredentialsError",
    "ConnectorDisabledError",
    "ConnectorError",
    "ConnectorExecutionError",
    "ConnectorRateLimitError",
    "ConnectorUnsupportedError",
    "CrmError",
    "InvalidArgumentError",
    "InvalidCursorError",
    "InvalidResponseError",
    "NetworkError",
    "NotFoundError",
    "PaginationNotSupportedError",
    "PermissionDeniedError",
    "PlanLimitError",
    "RateLimitError",
    "RequestTimeoutError",
    "RequestValidationError",
    "UncertainWriteError",
    "UnsupportedFiltersError",
    "UnsupportedSortFieldError",
    "UpstreamError",
    "decode_error",
    "parse_retry_after",
    "redact",
    "redact_obj",
    "request_id_from",
]

REDACTED = "[REDACTED]"
MIN_SECRET_LENGTH = 3
_SNIPPET = 300  # longest piece of upstream text quoted in an agent message

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


# --------------------------------------------------------------------------------------- redaction


def _variants(secret: str) -> set[str]:
    """Forms in which an echoed secret may appear: as is, URL-encoded, JSON-escaped."""
    forms = {secret, quote(secret, safe=""), quote(secret, safe="/"), json.dumps(secret)[1:-1]}
    return {f for f in forms if len(f) >= MIN_SECRET_LENGTH}


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """`text` with every known secret (and anything that looks like a credential) replaced by [REDACTED].

    Known secrets are matched case-insensitively and in their URL-encoded and JSON-escaped forms;
    bearer tokens and ``authorization: ...`` / ``api_key=...`` pairs are redacted even when the secret
    is not known (an upstream may echo another tenant's or a connector's token).
    """
    if not isinstance(text, str):
        text = str(text)
    forms: set[str] = set()
    for secret in secrets:
        if secret and len(secret) >= MIN_SECRET_LENGTH:
            forms |= _variants(secret)
    for form in sorted(forms, key=len, reverse=True):
        text = re.sub(re.escape(form), REDACTED, text, flags=re.IGNORECASE)
    text = _HEADERISH.sub(lambda m: m.group(1) + m.group(2) + REDACTED, text)
    text = _BEARER.sub(lambda m: m.group(1) + " " + REDACTED, text)
    return text


def redact_obj(value: Any, secrets: Iterable[str | None] = ()) -> Any:
    """`redact` applied to every string (keys too) inside a JSON-like value."""
    secrets = tuple(secrets)
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, Mapping):
        return {
            redact(str(k), secrets): REDACTED if _SENSITIVE_KEY.match(str(k)) and v else redact_obj(v, secrets)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact_obj(v, secrets) for v in value]
    return value


def _clip(text: str, limit: int = _SNIPPET) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ------------------------------------------------------------------------------------ call context


@dataclass(frozen=True, slots=True)
class CallContext:
    """What the client knew about the call that failed; used only to write better messages.

    Holds no credentials.
    """

    tool_name: str | None = None  # e.g. "get_contact"
    method: str | None = None
    resource: str | None = None  # e.g. "contacts"
    singular: str | None = None  # e.g. "contact"
    record_id: str | None = None  # the `{id}` of the path, when there is one
    list_tool: str | None = None  # e.g. "list_contacts", to suggest a lookup
    filters: tuple[str, ...] = ()  # filter keys that were sent
    sort_by: str | None = None
    cursor_sent: bool = False
    service_id: str | None = None  # the service asked for (header), if any
    base_url: str | None = None
    check_hint: str | None = None  # for uncertain writes: how to look for the record
    after_uncertain_attempt: bool = False  # an earlier attempt of this idempotent call got no answer

    @property
    def what(self) -> str:
        return f"`{self.tool_name}`" if self.tool_name else "the request"

    @property
    def thing(self) -> str:
        return self.singular or "record"


# ------------------------------------------------------------------------------------ base class


class CrmError(Exception):
    """An Apideck call that failed. `str(error)` is the agent-facing message."""

    kind: ClassVar[str] = "error"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        type_name: str | None = None,
        detail: Any = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        service: str | None = None,
        downstream_errors: Sequence[Mapping[str, Any]] | None = None,
        context: CallContext | None = None,
        secrets: Iterable[str | None] = (),
    ) -> None:
        secrets = tuple(secrets)  # used here only, never stored
        self.message = redact(message, secrets)
        self.status = status
        self.type_name = type_name
        self.detail = redact_obj(detail, secrets)
        self.request_id = request_id
        self.retry_after = retry_after
        self.service = redact(service, secrets) if service else None
        self.downstream_errors: list[Any] = (
            [redact_obj(e, secrets) for e in downstream_errors] if downstream_errors else []
        )
        self.context = context or CallContext()
        self.attempts = 1
        self.elapsed_s: float | None = None
        self.gave_up: str | None = None  # why retrying stopped, when it did
        super().__init__(self.message)

    # -- agent-facing text

    def advice(self) -> str:
        """What happened and what to do; subclasses override."""
        status = f"HTTP {self.status} " if self.status else ""
        kind = f"{self.type_name}: " if self.type_name else ""
        return f"{self.context.what} failed ({status}{kind}{_clip(self.message)})."

    def agent_message(self) -> str:
        advice = self.advice()
        if advice.startswith("the "):  # "the connector ..." at the start of a sentence
            advice = "The " + advice[4:]
        parts = [advice]
        if self.gave_up:
            parts.append(self.gave_up)
        if self.request_id:
            parts.append(f"(request-id {self.request_id})")
        return " ".join(parts)

    def __str__(self) -> str:
        return self.agent_message()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (for structured tool errors and logs); already redacted."""
        out: dict[str, Any] = {"kind": self.kind, "error": type(self).__name__, "message": self.agent_message()}
        for key in ("status", "type_name", "request_id", "retry_after", "service"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.detail is not None:
            out["detail"] = self.detail
        if self.downstream_errors:
            out["downstream_errors"] = self.downstream_errors
        if self.attempts > 1:
            out["attempts"] = self.attempts
        return out

    # -- helpers for subclasses

    def _service_name(self) -> str:
        return self.service or self.context.service_id or "the connector"

    def _upstream_text(self) -> str:
        """The upstream's message and detail, compact."""
        bits = [_clip(self.message)] if self.message else []
        detail = summarize_detail(self.detail)
        if detail and detail not in self.message:
            bits.append(detail)
        return _clip(" — ".join(bits), 2 * _SNIPPET)


# ------------------------------------------------------------------------------------ local errors


class InvalidArgumentError(CrmError):
    """An argument refused before anything was sent (unsafe id, header value with CR/LF, ...)."""

    kind = "invalid_argument"

    def __init__(self, argument: str, reason: str, *, context: CallContext | None = None) -> None:
        super().__init__(f"{argument}: {reason}", context=context)
        self.argument = argument
        self.reason = reason

    def advice(self) -> str:
        return (
            f"Invalid argument `{self.argument}` for {self.context.what}: {self.reason}. "
            "Nothing was sent; fix the argument and call again."
        )


class ConfigurationError(CrmError):
    """The server is not configured to call Apideck (missing credentials, bad base URL)."""

    kind = "configuration"

    def advice(self) -> str:
        return f"{self.message} This is a server configuration problem; retrying will not help."


# ---------------------------------------------------------------------------------- request errors


class RequestValidationError(CrmError):
    """400/422: the request does not fit the endpoint (detail says which field and why)."""

    kind = "invalid_request"

    def advice(self) -> str:
        status = self.status or 400
        return (
            f"{self.context.what} was rejected as invalid (HTTP {status}): {self._upstream_text()}. "
            "Fix the named field(s) and call again; do not repeat the same request."
        )


class UnsupportedFiltersError(RequestValidationError):
    kind = "unsupported_filter"

    def advice(self) -> str:
        sent = ", ".join(f"filter[{f}]" for f in self.context.filters)
        which = f" (sent: {sent})" if sent else ""
        return (
            f"{self._service_name()} does not support the filter(s) used{which}: {self._upstream_text()}. "
            "Call again without the unsupported filter(s) and narrow the results yourself "
            "(e.g. from the listed fields or with pass_through)."
        )


class UnsupportedSortFieldError(RequestValidationError):
    kind = "unsupported_sort"

    def advice(self) -> str:
        by = f" by `{self.context.sort_by}`" if self.context.sort_by else ""
        return (
            f"{self._service_name()} does not support sorting{by}: {self._upstream_text()}. "
            "Call again without `sort`, or sort by another field (created_at or updated_at are the most widely "
            "supported)."
        )


class InvalidCursorError(RequestValidationError):
    kind = "invalid_cursor"

    def advice(self) -> str:
        again = f"Call {self.context.list_tool or self.context.what}" if self.context.list_tool else "Call again"
        return (
            f"The pagination cursor is not valid (expired, altered, or from another list or connector): "
            f"{self._upstream_text()}. {again} without `cursor` to start from the first page, and only pass "
            "cursors exactly as returned in the previous page's next cursor."
        )


class PaginationNotSupportedError(RequestValidationError):
    kind = "pagination_unsupported"

    def advice(self) -> str:
        return (
            f"{self._service_name()} does not support pagination for this list: {self._upstream_text()}. "
            "Call again without `limit` and `cursor`."
        )


class NotFoundError(CrmError):
    """404: no such record (or route)."""

    kind = "not_found"

    def advice(self) -> str:
        ctx = self.context
        if ctx.record_id is not None:
            head = f"No {ctx.thing} with id `{_clip(ctx.record_id, 80)}` exists (HTTP 404 from {ctx.what})."
            if ctx.after_uncertain_attempt and ctx.method == "DELETE":
                head += (
                    " An earlier attempt of this delete got no answer and has most likely already deleted it; "
                    "treat the delete as done."
                )
            look = f" Check the id: find the right one with {ctx.list_tool}." if ctx.list_tool else " Check the id."
            return head + look
        return f"Not found (HTTP 404 from {ctx.what}): {self._upstream_text()}."


class ConflictError(CrmError):
    kind = "conflict"

    def advice(self) -> str:
        return (
            f"{self.context.what} conflicts with the current state of the {self.context.thing} (HTTP 409): "
            f"{self._upstream_text()}. Fetch the current record and retry with up-to-date values."
        )


# -------------------------------------------------------------------------------- account errors


class AuthenticationError(CrmError):
    """401: the Apideck credentials were refused. Never repeats them."""

    kind = "unauthorized"

    def advice(self) -> str:
        return (
            f"Apideck refused the credentials (HTTP {self.status or 401}"
            f"{': ' + _clip(self.message, 120) if self.message else ''}). Check that APIDECK_API_KEY and "
            "APIDECK_APP_ID are the API key and app id of the same Apideck application, and that "
            "APIDECK_CONSUMER_ID names a consumer of that application. This is a configuration problem: "
            "retrying will not help; tell the user."
        )


class PermissionDeniedError(CrmError):
    """403: the credentials are valid but not allowed to do this."""

    kind = "forbidden"

    def advice(self) -> str:
        return (
            f"Apideck denied access to {self.context.what} (HTTP 403"
            f"{': ' + _clip(self.message, 160) if self.message else ''}). The API key, app (APIDECK_APP_ID) or "
            "consumer is not allowed to use this; do not repeat the request. Ask the user to check the "
            "application's access to the CRM API and the consumer's connection."
        )


class PlanLimitError(CrmError):
    """402: the Apideck plan's request limit is reached (RequestLimitError)."""

    kind = "plan_limit"

    def advice(self) -> str:
        return (
            f"The Apideck plan's limit is reached (HTTP 402: {self._upstream_text()}). Further calls will fail "
            "until the plan is upgraded or the period resets; stop and tell the user."
        )


class RateLimitError(CrmError):
    """429: too many requests (Apideck's limit)."""

    kind = "rate_limited"

    def _wait(self) -> str:
        if self.retry_after is not None:
            return f"Wait {_seconds(self.retry_after)} before calling again"
        return "Wait a little (e.g. 30 seconds) before calling again"

    def advice(self) -> str:
        return f"Rate limited by Apideck (HTTP 429). {self._wait()}, and avoid bursts of calls."


# ------------------------------------------------------------------------------ connector errors


class ConnectorError(CrmError):
    """An error raised by the downstream connector (HubSpot, Salesforce, ...)."""

    kind = "connector_error"

    def _downstream(self) -> str:
        lines = []
        for err in self.downstream_errors[:5]:
            if not isinstance(err, Mapping):
                lines.append(_clip(str(err), 160))
                continue
            code = err.get("code")
            msg = err.get("message") or ""
            det = err.get("detail")
            text = f"{code}: {msg}" if code else str(msg)
            if det:
                text += f" ({det})"
            lines.append(_clip(text, 200))
        if len(self.downstream_errors) > 5:
            lines.append(f"and {len(self.downstream_errors) - 5} more")
        return " Downstream errors: " + "; ".join(lines) + "." if lines else ""


class ConnectorExecutionError(ConnectorError):
    kind = "connector_execution"

    def advice(self) -> str:
        status = f" (HTTP {self.status})" if self.status else ""
        retry = (
            " This may be temporary: try again later."
            if self.status is None or self.status >= 500
            else " Fix the request according to the connector's message; do not repeat it unchanged."
        )
        return (
            f"{self._service_name()} failed to execute {self.context.what}{status}: {self._upstream_text()}."
            f"{self._downstream()}{retry}"
        )


class ConnectorCredentialsError(ConnectorError):
    """The consumer's connection to the connector is not (or no longer) authorized."""

    kind = "connector_credentials"

    def advice(self) -> str:
        return (
            f"The connection to {self._service_name()} is not authorized for this consumer "
            f"({self.type_name or 'ConnectorCredentialsError'}: {self._upstream_text()}). The user must "
            f"(re)authorize {self._service_name()} in Apideck Vault; retrying will not help."
        )


class ConnectionSetupError(ConnectorError):
    """No usable integration/connection: unknown service id, missing settings, integration not added."""

    kind = "connection_setup"

    def advice(self) -> str:
        return (
            f"There is no working {self._service_name()} connection for this application and consumer "
            f"({self.type_name or 'error'}: {self._upstream_text()}). Check the service id "
            "(APIDECK_SERVICE_ID or the service_id argument) and the connection's settings in Apideck Vault; "
            "retrying will not help."
        )


class ConnectorDisabledError(ConnectorError):
    kind = "connector_disabled"

    def advice(self) -> str:
        return (
            f"The {self._service_name()} connector is disabled ({self._upstream_text()}). Ask the user to enable "
            "it in Apideck, or use another service_id; retrying now will not help."
        )


class ConnectorRateLimitError(ConnectorError, RateLimitError):
    kind = "connector_rate_limited"

    def advice(self) -> str:
        return (
            f"{self._service_name()} is rate limiting requests ({self._upstream_text()}). {self._wait()}; "
            "these limits are the connector's own, so slow down and avoid bursts."
        )


class ConnectorUnsupportedError(ConnectorError):
    """The connector does not implement this operation or mapping (MappingError, 501, ...)."""

    kind = "connector_unsupported"

    def advice(self) -> str:
        return (
            f"{self._service_name()} does not support {self.context.what} as asked "
            f"({self.type_name or 'HTTP ' + str(self.status)}: {self._upstream_text()}). Do not retry; use "
            "another operation or fewer fields."
        )


# --------------------------------------------------------------------------- server and transport


class UpstreamError(CrmError):
    """5xx: Apideck or the connector failed."""

    kind = "upstream_failure"

    def advice(self) -> str:
        how = (
            "The request was not processed (the service asked to come back later), so it is safe to try again later."
            if self.status == 503 and self.retry_after is not None
            else "Try again later."
        )
        wait = f" Wait at least {_seconds(self.retry_after)}." if self.retry_after is not None else ""
        return (
            f"Apideck or the connector failed to answer {self.context.what} (HTTP {self.status}"
            f"{': ' + self._upstream_text() if self.message else ''}). {how}{wait}"
        )


class NetworkError(CrmError):
    """The API could not be reached, or the connection broke."""

    kind = "network"

    def advice(self) -> str:
        where = f" at {self.context.base_url}" if self.context.base_url else ""
        return (
            f"Could not reach the Apideck API{where} for {self.context.what}: {_clip(self.message, 160)}. "
            "Check the network and APIDECK_BASE_URL, then try again later."
        )


class RequestTimeoutError(NetworkError):
    kind = "timeout"

    def advice(self) -> str:
        return (
            f"The Apideck API did not answer {self.context.what} in time: {_clip(self.message, 160)}. Try again "
            "later, or ask for less (a smaller limit, fewer fields)."
        )


class InvalidResponseError(CrmError):
    """A success status whose body is not a JSON object (a proxy page, a truncated answer, ...)."""

    kind = "invalid_response"

    def advice(self) -> str:
        if self.context.method in {"POST", "PATCH", "DELETE"}:
            return (
                f"{self.context.what} was accepted (HTTP {self.status}) but its answer could not be read "
                f"({_clip(self.message, 200)}). The change was most likely applied: check with "
                f"{self.context.list_tool or 'a read'} before doing it again."
            )
        return (
            f"The API answered {self.context.what} with HTTP {self.status} but a body that could not be read "
            f"({_clip(self.message, 200)}). This may be a proxy or a wrong APIDECK_BASE_URL; try again later."
        )


class UncertainWriteError(CrmError):
    """A create whose request may have reached the API, with no answer: it may or may not be applied."""

    kind = "uncertain_write"

    def advice(self) -> str:
        ctx = self.context
        check = ctx.check_hint or (
            f"with {ctx.list_tool} (newest first)" if ctx.list_tool else "by listing or searching the records"
        )
        return (
            f"{ctx.what} may have been applied: the request was sent, then {_clip(self.message, 200)}, so it is "
            f"unknown whether the {ctx.thing} was created. Do not call {ctx.what} again yet: first look for the "
            f"{ctx.thing} {check}, and create it only if it is missing, to avoid a duplicate."
        )


# -------------------------------------------------------------------------------------- decoding

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


def request_id_from(headers: Mapping[str, str]) -> str | None:
    for name in ("x-apideck-request-id", "request-id", "x-request-id"):
        value = headers.get(name)
        if value:
            return _clip(value, 120)
    return None


def summarize_detail(detail: Any, *, limit: int = 6) -> str:
    """A compact `field: why; field: why` rendering of a `detail` (string or object)."""
    if detail is None or detail == "" or detail == {}:
        return ""
    if isinstance(detail, str):
        return _clip(detail)
    pairs: list[str] = []

    def walk(path: str, value: Any) -> None:
        if len(pairs) > limit:
            return
        if isinstance(value, Mapping):
            for k, v in value.items():
                walk(f"{path}.{k}" if path else str(k), v)
        elif isinstance(value, list | tuple):
            if value and all(not isinstance(v, Mapping | list | tuple) for v in value):
                shown = ", ".join(_clip(str(v), 60) for v in value[:12]) + (", …" if len(value) > 12 else "")
                pairs.append(f"{path}: {shown}" if path else shown)
                return
            for v in value:
                walk(path, v)
        elif value is not None:
            pairs.append(f"{path}: {_clip(str(value), 120)}" if path else _clip(str(value), 120))

    walk("", detail)
    more = "; …" if len(pairs) > limit else ""
    return _clip("; ".join(pairs[:limit]) + more, 2 * _SNIPPET)


def _seconds(value: float) -> str:
    whole = max(1, round(value)) if value < 10 else round(value)
    return f"{whole} second{'s' if whole != 1 else ''}"


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
    return max(0.0, found[0]) if found else None


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
    """Seconds to wait, from `Retry-After` (seconds or HTTP date), `RateLimit-Reset`, or the body's detail."""
    now = now or _dt.datetime.now(_dt.UTC)
    value = headers.get("retry-after")
    if value:
        value = value.strip()
        number = _number(value)
        if number is not None:
            return max(0.0, number)
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            when = None
        if when is not None:
            if when.tzinfo is None:
                when = when.replace(tzinfo=_dt.UTC)
            return max(0.0, (when - now).total_seconds())
    for name in ("ratelimit-reset", "x-ratelimit-reset"):
        number = _number(headers.get(name) or "")
        if number is not None:
            # An epoch timestamp when large, a delta in seconds otherwise.
            return max(0.0, number - now.timestamp()) if number > 1e9 else max(0.0, number)
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


def _decode_body(status: int, content: bytes | str | Any, content_type: str) -> _Decoded:
    reason = _reason(status)
    if isinstance(content, bytes | str):
        text = content.decode("utf-8", "replace") if isinstance(content, bytes) else content
        if not text.strip():
            return _Decoded(message=reason)
        try:
            body = json.loads(text)
        except ValueError:
            kind = content_type.split(";")[0].strip() or "no content type"
            return _Decoded(message=f"{reason}; the body is not JSON ({kind}): {_clip(text, 200)}")
    else:
        body = content
    if not isinstance(body, Mapping):
        return _Decoded(message=f"{reason}: {_clip(json.dumps(body, default=str), 200)}", body=body)
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
    decoded = _decode_body(status, content, headers.get("content-type", ""))
    cls = error_class(status, decoded.type_name)
    wants_wait = status in (429, 503) or issubclass(cls, RateLimitError)
    retry_after = parse_retry_after(headers, decoded.body) if wants_wait else None
    return cls(
        decoded.message,
        status=status,
        type_name=decoded.type_name,
        detail=decoded.detail,
        request_id=request_id_from(headers),
        retry_after=retry_after,
        service=decoded.service,
        downstream_errors=decoded.downstream,
        context=context,
        secrets=secrets,
    )
