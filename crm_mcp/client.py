"""Async client for the Apideck CRM unified API.

One `ApideckClient` per server holds one transport (one connection pool: httpx2's own, or in HTTP
serving aiohttp's; `crm_mcp.upstream`). `call()` runs one operation of the generated table: it
builds the request line (single-segment path parameters, deepObject query), sets the contract's
headers, sends, retries what is safe to retry, and turns an error answer into a typed
`crm_mcp.errors.CrmError`.

Retry rules (`RetryPolicy`):

- GET, DELETE and PATCH (merge-PATCH is idempotent in effect) are retried on 408, 429, 500, 502,
  503, 504 and on connection errors and timeouts, with exponential backoff and full jitter
  (``random() * min(max_delay, base_delay * 2**(n-1))``), honouring ``Retry-After`` (seconds or an
  HTTP date, or the body's detail), for at most `max_attempts` attempts and `total_timeout` seconds.
- POST (a create) is retried only when the failure proves the request was not processed: a
  connection that could not be opened (ConnectError / ConnectTimeout / PoolTimeout), 429, or 503
  with Retry-After. Any failure after the request may have reached the API (read timeout, dropped
  connection, 408, 500, 502, 504, other 5xx) raises `UncertainWriteError` at once.
- Cancellation of the caller's cancel scope is never shielded: it interrupts the HTTP exchange
  or the backoff sleep immediately, and closes the connection (the upstream sees the request go).

Bounds (an upstream may be slow, hostile or broken):

- Time: every attempt has one deadline for connecting, waiting for a free connection, sending
  and reading the whole body (`read_timeout`, and never past the call's `total_timeout`), so an
  upstream that trickles a byte at a time cannot hold a call. The pool is sized so that slow calls
  do not starve others, and a wait for a connection counts against the same deadline.
- Size: a body is streamed (and decoded: gzip, deflate) and reading stops past `max_response_bytes`
  decoded bytes; a body nested deeper than `MAX_JSON_DEPTH` is refused. A create whose answer
  cannot be read is an `UncertainWriteError`.
"""

from __future__ import annotations

import json
import logging
import random as _random
import ssl
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from functools import cache
from types import TracebackType
from typing import Any, Literal, Self

import anyio
import httpx2
from pydantic_core import from_json, to_jsonable_python

from crm_mcp import __version__, telemetry
from crm_mcp.credentials import Credentials
from crm_mcp.error_decoding import decode_error, request_id_from
from crm_mcp.errors import (
    CallContext,
    ConfigurationError,
    CrmError,
    InvalidArgumentError,
    InvalidResponseError,
    NetworkError,
    RequestTimeoutError,
    ResponseTooLargeError,
    UncertainWriteError,
)
from crm_mcp.generated.operations import OPERATIONS, Operation
from crm_mcp.querystring import ArgumentError, check_header_value, encode_query, expand_path
from crm_mcp.redaction import redact
from crm_mcp.upstream import (
    ACCEPT_ENCODING,
    Answer,
    Httpx2Transport,
    Inflate,
    Request,
    TargetRewritten,
    Timeouts,
    Transport,
    UnsupportedEncoding,
)

__all__ = [
    "DEFAULT_BASE_URL",
    "RETRYABLE_STATUSES",
    "ApiResponse",
    "ApideckClient",
    "Credentials",
    "RetryPolicy",
]

logger = logging.getLogger("crm_mcp.client")

DEFAULT_BASE_URL = "https://unify.apideck.com"
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "PATCH"})
# A page of 200 full records is well under 1 MB; decoding 4 MB of small JSON objects takes ~100 MB.
MAX_RESPONSE_BYTES = 4 * 1024 * 1024
MAX_JSON_DEPTH = 64  # deeper answers are refused: nothing in the contract nests past ~6 levels
# Enough connections that a burst of slow upstream calls leaves room for the others. No cap on idle
# ones in either pool (aiohttp's has none): each is closed after keepalive_expiry.
DEFAULT_LIMITS = httpx2.Limits(max_connections=128, keepalive_expiry=30)

# Transport failures that happen before a single byte of the request is sent.
_NOT_SENT = (httpx2.ConnectError, httpx2.ConnectTimeout, httpx2.PoolTimeout, httpx2.UnsupportedProtocol)
# Transport failures that no retry can fix.
_FATAL_TRANSPORT = (httpx2.UnsupportedProtocol, httpx2.LocalProtocolError)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When and how long to retry. `random`, `sleep` and `clock` are injectable for tests."""

    max_attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 8.0
    total_timeout: float = 60.0  # bound on the whole call: all attempts and waits
    random: Callable[[], float] = _random.random
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep
    clock: Callable[[], float] = time.monotonic

    def backoff(self, retry_number: int) -> float:
        """Full-jitter delay before retry `retry_number` (1 for the first retry)."""
        cap = min(self.max_delay, self.base_delay * (2 ** max(0, retry_number - 1)))
        return max(0.0, min(1.0, self.random())) * cap

    @classmethod
    def never(cls) -> RetryPolicy:
        return cls(max_attempts=1)


@dataclass(frozen=True, slots=True)
class ApiResponse:
    status: int
    body: dict[str, Any]
    request_id: str | None
    elapsed_ms: float
    attempts: int


class _Attempt:
    """Outcome of one failed attempt.

    `retryable`: trying again is safe and may help. `maybe_processed`: the request may have reached
    the API and been applied although no (successful) answer came back.
    """

    __slots__ = ("error", "maybe_processed", "retryable")

    def __init__(self, error: CrmError, *, retryable: bool, maybe_processed: bool = False) -> None:
        self.error = error
        self.retryable = retryable
        self.maybe_processed = maybe_processed


class ApideckClient:
    """Async Apideck CRM client: one per server, shared by all tool calls (and tenants)."""

    def __init__(
        self,
        api_key: str,
        app_id: str,
        consumer_id: str | None,
        service_id: str | None = None,
        base_url: str = DEFAULT_BASE_URL,
        retry: RetryPolicy | None = None,
        transport: httpx2.AsyncBaseTransport | Transport | None = None,
        *,
        pool: Literal["httpx2", "aiohttp"] = "httpx2",
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        write_timeout: float = 30.0,
        pool_timeout: float | None = None,
        limits: httpx2.Limits | None = None,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
    ) -> None:
        self._credentials = Credentials(api_key or "", app_id or "", consumer_id or None, service_id or None)
        self._base_url = _check_base_url(base_url)
        origin = httpx2.URL(self._base_url)  # parsed once, not per call
        self._base_path = origin.raw_path.rstrip(b"/")
        self._host, self._port = origin.host, origin.port  # for telemetry
        self._retry = retry or RetryPolicy()
        self._timeout = httpx2.Timeout(
            connect=connect_timeout, read=read_timeout, write=write_timeout, pool=pool_timeout
        )
        self._max_response_bytes = max_response_bytes
        self._user_agent = f"crm-mcp/{__version__}"
        limits = limits or DEFAULT_LIMITS
        # an http:// API (the sandbox, a local proxy) needs no CA bundle (20-40 ms to load)
        verify = tls_context() if self._base_url.startswith("https:") else no_tls_context()
        if transport is None and pool == "aiohttp":
            # HTTP serving (crm_mcp.cli): less than half the CPU per request of httpx2's own pool, but
            # ~90 ms to import, which a desktop server (stdio) would pay at start-up or first call
            from crm_mcp.upstream_transport import AiohttpTransport

            transport = AiohttpTransport(
                ssl_context=verify,
                max_connections=limits.max_connections or 0,  # 0: no limit, as None in httpx2
                keepalive_expiry=limits.keepalive_expiry,
            )
        elif transport is None:
            transport = Httpx2Transport(base_url=self._base_url, verify=verify, limits=limits)
        elif isinstance(transport, httpx2.AsyncBaseTransport):  # the tests' hook at the HTTP boundary
            transport = Httpx2Transport(transport)
        # Neither transport follows a redirect (the credentials never go to another origin) or keeps cookies.
        self._transport: Transport = transport

    # -- lifecycle

    @property
    def base_url(self) -> str:
        return self._base_url

    @property
    def retry(self) -> RetryPolicy:
        return self._retry

    async def aclose(self) -> None:
        await self._transport.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"ApideckClient(base_url={self._base_url!r}, consumer_id={self._credentials.consumer_id!r})"

    # -- calls

    async def call(
        self,
        op: Operation,
        *,
        path_params: Mapping[str, str] | None = None,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        consumer_id: str | None = None,
        service_id: str | None = None,
        credentials: Credentials | None = None,
        timeout: float | None = None,
    ) -> ApiResponse:
        """Run `op` and return the decoded answer, or raise a `CrmError` subclass.

        `credentials` replaces the client's credentials for this call (per-request tenants);
        `consumer_id` / `service_id` override the consumer and service of whichever credentials
        are used. `timeout` overrides the read timeout (the deadline) of each attempt.
        """
        creds = self._resolve(credentials, consumer_id, service_id)
        secrets = (creds.api_key, creds.app_id, self._credentials.api_key, self._credentials.app_id)
        ctx = _context(op, path_params, query, creds, self._base_url)
        try:
            path = expand_path(op.path, path_params)
            self._check_query(op, query)
            qs = encode_query(query)
            headers = self._headers(creds)
            content = self._content(op, body)
        except ArgumentError as exc:
            raise InvalidArgumentError(exc.argument, exc.reason, context=ctx) from None
        self._check_credentials(creds, ctx)
        url = self._base_url + path + (f"?{qs}" if qs else "")
        expected_target = (self._base_path + path.encode("ascii")) + (
            f"?{qs}".encode("ascii") if qs else b""
        )
        return await self._run(op, url, expected_target, headers, content, ctx, secrets, body, timeout)

    async def pages(
        self,
        op: Operation,
        *,
        query: Mapping[str, Any] | None = None,
        max_pages: int | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ApiResponse]:
        """Yield the pages of a list operation, following `meta.cursors.next` until it is null."""
        if "cursor" not in op.query_params:
            raise ValueError(f"{op.tool_name} is not paginated")
        params = dict(query or {})
        seen: set[str] = set()
        count = 0
        while True:
            page = await self.call(op, query=params, **kwargs)
            yield page
            count += 1
            meta = page.body.get("meta")
            cursors = meta.get("cursors") if isinstance(meta, Mapping) else None
            nxt = cursors.get("next") if isinstance(cursors, Mapping) else None
            if not nxt or not isinstance(nxt, str) or nxt in seen or (max_pages is not None and count >= max_pages):
                return
            seen.add(nxt)
            params["cursor"] = nxt

    # -- internals

    def _resolve(self, credentials: Credentials | None, consumer_id: str | None, service_id: str | None) -> Credentials:
        base = credentials or self._credentials
        return Credentials(
            api_key=base.api_key,
            app_id=base.app_id,
            consumer_id=consumer_id or base.consumer_id,
            service_id=service_id or base.service_id,
        )

    @staticmethod
    def _check_credentials(creds: Credentials, ctx: CallContext) -> None:
        missing = [
            name
            for name, value in (
                ("APIDECK_API_KEY", creds.api_key),
                ("APIDECK_APP_ID", creds.app_id),
                ("APIDECK_CONSUMER_ID", creds.consumer_id),
            )
            if not value
        ]
        if missing:
            raise ConfigurationError(
                f"No Apideck {' / '.join(missing)} is configured, so {ctx.what} cannot be sent.", context=ctx
            )

    def _headers(self, creds: Credentials) -> dict[str, str]:
        return api_headers(creds, self._user_agent)

    @staticmethod
    def _check_query(op: Operation, query: Mapping[str, Any] | None) -> None:
        for key, value in (query or {}).items():
            if value is not None and key not in op.query_params:
                allowed = ", ".join(op.query_params) or "none"
                raise ArgumentError(str(key), f"is not a query parameter of {op.tool_name} (allowed: {allowed})")

    @staticmethod
    def _content(op: Operation, body: Any) -> bytes | None:
        if body is None:
            return None
        if op.body_model is None:
            raise ArgumentError("body", f"{op.tool_name} takes no request body")
        if hasattr(body, "model_dump"):
            body = body.model_dump(by_alias=True, exclude_unset=True, mode="json")
        if not isinstance(body, Mapping):
            raise ArgumentError("body", f"must be an object, got {type(body).__name__}")
        try:
            data = to_jsonable_python(body)
        except Exception as exc:  # pydantic_core raises its own error for unknown types
            raise ArgumentError("body", f"cannot be encoded as JSON ({exc})") from None
        return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    async def _run(
        self,
        op: Operation,
        url: str,
        expected_target: bytes,
        headers: dict[str, str],
        content: bytes | None,
        ctx: CallContext,
        secrets: tuple[str, ...],
        body: Any,
        timeout: float | None,
    ) -> ApiResponse:
        policy = self._retry
        method = op.method.upper()
        is_write = method not in IDEMPOTENT_METHODS
        started = policy.clock()
        wall_start = time.perf_counter()
        attempt = 0
        had_no_answer = False  # an earlier attempt may have been processed without us seeing the answer
        while True:
            attempt += 1
            budget = policy.total_timeout - (policy.clock() - started)
            deadline = max(0.001, min(budget, timeout if timeout is not None else self._timeout.read or budget))
            request = Request(method, url, expected_target, headers, content, self._attempt_timeout(deadline))
            t0 = time.perf_counter()
            # telemetry: a span, its traceparent sent in `headers`
            with telemetry.upstream_span(method, op.path, self._host, self._port, headers) as traced:
                outcome = await self._attempt(request, ctx, secrets, had_no_answer, deadline)
                traced(outcome)
            if isinstance(outcome, ApiResponse):
                elapsed_ms = (time.perf_counter() - wall_start) * 1000
                logger.debug(
                    "%s %s -> %s in %.0f ms (attempt %d, request-id %s)",
                    method, op.path, outcome.status, (time.perf_counter() - t0) * 1000, attempt, outcome.request_id,
                )  # fmt: skip
                return replace(outcome, elapsed_ms=elapsed_ms, attempts=attempt)
            error = outcome.error
            error.attempts = attempt
            error.elapsed_s = time.perf_counter() - wall_start
            if is_write and outcome.maybe_processed:
                raise _uncertain(op, error, ctx, body, attempt)
            had_no_answer = had_no_answer or outcome.maybe_processed
            if not outcome.retryable:
                if attempt > 1:
                    error.gave_up = f"(after {attempt} attempts)"
                raise error
            if attempt >= policy.max_attempts:
                error.gave_up = f"Gave up after {attempt} attempts in {_secs(policy.clock() - started)}."
                raise error
            wait = error.retry_after if error.retry_after is not None else policy.backoff(attempt)
            elapsed = policy.clock() - started
            if elapsed + wait > policy.total_timeout:
                why = (
                    f"the server asked to wait {_secs(wait)}, beyond the {_secs(policy.total_timeout)} retry time bound"
                    if error.retry_after is not None
                    else f"the {_secs(policy.total_timeout)} retry time bound was reached"
                )
                error.gave_up = (
                    f"Stopped after {attempt} attempt{'s' if attempt > 1 else ''} in {_secs(elapsed)}: {why}."
                )
                raise error
            logger.info("%s %s failed (%s); retry %d in %.2f s", method, op.path, error.kind, attempt, wait)
            await policy.sleep(wait)

    def _attempt_timeout(self, deadline: float) -> Timeouts:
        """The transport's per-phase timeouts, none past the attempt's deadline (a wait for a free
        connection has no bound of its own unless `pool_timeout` was given)."""

        def bound(value: float | None) -> float:
            return deadline if value is None else min(value, deadline)

        return Timeouts(
            connect=bound(self._timeout.connect),
            read=deadline,
            write=bound(self._timeout.write),
            pool=bound(self._timeout.pool),
        )

    async def _attempt(
        self,
        request: Request,
        ctx: CallContext,
        secrets: tuple[str, ...],
        had_no_answer: bool,
        deadline: float,
    ) -> ApiResponse | _Attempt:
        """One exchange, all of it (connection, request, the whole body) within `deadline` seconds."""
        is_write = request.method not in IDEMPOTENT_METHODS
        undecodable: str | None = None
        with anyio.move_on_after(deadline) as scope:
            try:
                answer = await self._transport.send(request)
                try:
                    raw = await self._read(answer)
                except (UnsupportedEncoding, zlib.error) as exc:
                    raw, undecodable = b"", str(exc) or type(exc).__name__
                finally:
                    await answer.aclose()
            except httpx2.TransportError as exc:
                return _transport_failure(exc, ctx, secrets)
            except TargetRewritten:  # defence in depth: the URL must be exactly ours
                raise InvalidArgumentError("path", "the request path would be rewritten; refusing to send",
                                           context=ctx) from None
        if scope.cancelled_caught:
            late = RequestTimeoutError(f"timed out: no complete answer within {_secs(deadline)}", context=ctx)
            return _Attempt(late, retryable=True, maybe_processed=True)
        status = answer.status
        headers = answer.headers
        if undecodable is not None and 200 <= status < 300:
            garbled = InvalidResponseError(f"its body could not be decoded ({undecodable})", status=status,
                                           request_id=request_id_from(headers, secrets), context=ctx, secrets=secrets)
            return _Attempt(garbled, retryable=False, maybe_processed=True)
        if raw is None:
            too_big = ResponseTooLargeError(
                f"more than {self._max_response_bytes:,} bytes, the most this server reads; reading stopped there",
                status=status,
                request_id=request_id_from(headers, secrets),
                context=ctx,
            )
            return _Attempt(too_big, retryable=False, maybe_processed=200 <= status < 300)

        if 200 <= status < 300:
            return _success(status, raw, headers, ctx, secrets)
        if had_no_answer:
            ctx = replace(ctx, after_uncertain_attempt=True)
        error = decode_error(status, raw, headers, context=ctx, secrets=secrets)
        # 429, and 503 with Retry-After, prove the request was turned away before being processed.
        not_processed = status == 429 or (status == 503 and error.retry_after is not None)
        maybe_processed = not not_processed and (status == 408 or (status >= 500 and status != 501))
        if is_write:
            return _Attempt(error, retryable=not_processed, maybe_processed=maybe_processed)
        return _Attempt(error, retryable=status in RETRYABLE_STATUSES, maybe_processed=maybe_processed)

    async def _read(self, answer: Answer) -> bytes | None:
        """The whole body, decoded, or None as soon as it grows past the configured maximum (the
        rest is never read, nor inflated). Raises UnsupportedEncoding or zlib.error for a body
        that cannot be decoded."""
        decoder = Inflate(answer.headers.get("content-encoding"))
        chunks: list[bytes] = []
        room = self._max_response_bytes
        async for chunk in answer.chunks():
            out = decoder.feed(chunk, room)
            if out is None:
                return None
            room -= len(out)
            chunks.append(out)
        tail = decoder.end()
        if len(tail) > room:
            return None
        chunks.append(tail)
        return b"".join(chunks)


def api_headers(creds: Credentials, user_agent: str) -> dict[str, str]:
    """The headers of every API request for `creds` (raises ArgumentError for a value that cannot
    be a header)."""
    headers = {
        "Authorization": f"Bearer {check_header_value('api_key', creds.api_key)}",
        "x-apideck-app-id": check_header_value("app_id", creds.app_id),
        "x-apideck-consumer-id": check_header_value("consumer_id", creds.consumer_id or ""),
        "Content-Type": "application/json",
        "Accept": "application/json",
        "Accept-Encoding": ACCEPT_ENCODING,  # what `Inflate` decodes
        "User-Agent": user_agent,
    }
    if creds.service_id:
        headers["x-apideck-service-id"] = check_header_value("service_id", creds.service_id)
    return headers


def load_pool(pool: Literal["httpx2", "aiohttp"]) -> None:
    """Imports the connection pool's own modules ahead of the first `ApideckClient` (httpx2's pool:
    httpcore2, 15-20 ms; aiohttp's is imported where HTTP serving makes its client)."""
    if pool == "httpx2":
        import httpcore2  # noqa: F401


@cache
def tls_context() -> ssl.SSLContext:
    """httpx's default TLS settings, built once per process: building them loads the CA bundle
    (40-80 ms here), which every client (one per server, one per tenant) would pay again."""
    return httpx2.create_ssl_context()


@cache
def no_tls_context() -> ssl.SSLContext:
    """For an http:// API (the sandbox, a local proxy): no https request is ever made, so no CA
    bundle is loaded (20-40 ms on the first call); were one made, this context trusts no
    certificate and it fails."""
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


def _secs(value: float) -> str:
    return f"{value:.1f} s" if value < 10 else f"{value:.0f} s"


def _check_base_url(base_url: str) -> str:
    try:
        url = httpx2.URL(base_url)
    except httpx2.InvalidURL:
        raise ConfigurationError(f"APIDECK_BASE_URL {base_url!r} is not a valid URL.") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ConfigurationError(f"APIDECK_BASE_URL {base_url!r} must be an http(s) URL with a host.")
    if url.query or url.fragment or url.userinfo:
        raise ConfigurationError("APIDECK_BASE_URL must not contain credentials, a query or a fragment.")
    return str(url).rstrip("/")


def _success(
    status: int, raw: bytes, headers: Mapping[str, str], ctx: CallContext, secrets: tuple[str, ...]
) -> ApiResponse | _Attempt:
    """The decoded answer, or an attempt that failed because the answer cannot be read (which, for
    a create, means it may have been applied)."""
    request_id = request_id_from(headers, secrets)

    def unreadable(why: str) -> _Attempt:
        error = InvalidResponseError(why, status=status, request_id=request_id, context=ctx, secrets=secrets)
        return _Attempt(error, retryable=False, maybe_processed=True)

    if not raw.strip():
        body: Any = {}
    else:
        try:
            body = decode_json(raw)
        except (ValueError, RecursionError):  # RecursionError: nested deeper than the decoder goes
            ctype = headers.get("content-type", "no content type").split(";")[0]
            snippet = redact(raw[:4096].decode("utf-8", "replace"), secrets)[:120]  # redact, then cut
            return unreadable(f"{len(raw)} bytes of {ctype}, not JSON, starting {snippet!r}")
    if not isinstance(body, dict):
        return unreadable(f"the JSON body is a {type(body).__name__}, not an object")
    # a body holds at least one `{` or `[` per level: with no more than MAX_JSON_DEPTH of them in all
    # (most single records) it cannot be too deep, and the walk is skipped
    if raw.count(b"{") + raw.count(b"[") > MAX_JSON_DEPTH and _nested_deeper(body, MAX_JSON_DEPTH):
        return unreadable(f"the JSON body is nested deeper than {MAX_JSON_DEPTH} levels")
    return ApiResponse(
        status=status,
        body=body,
        request_id=request_id,
        elapsed_ms=0.0,
        attempts=1,
    )


def decode_json(raw: bytes) -> Any:
    """An answer's JSON, through pydantic-core's parser (Rust: a 20-contact page in ~60% of
    json.loads' time). What it refuses (a byte-order mark, UTF-16, a lone surrogate, nesting past
    its limit, or not JSON at all) is decoded, or refused, by json.loads, so what is read and what
    is not stays exactly json's (and both keep the last of duplicate keys)."""
    try:
        return from_json(raw, cache_strings="keys")  # CRM values are not kept in its string cache
    except ValueError:
        return json.loads(raw)


def _nested_deeper(value: dict[str, Any] | list[Any], limit: int) -> bool:
    """Whether a decoded JSON object or array nests objects or arrays more than `limit` levels deep.
    Every answer goes through here: only containers are kept per level, by exact type (JSON decodes
    to dict and list only), which takes a third of the time of a walk that checks with isinstance."""
    level: list[Any] = [value]
    for _ in range(limit):
        deeper: list[Any] = []
        add = deeper.append
        for item in level:
            for child in item.values() if type(item) is dict else item:
                if type(child) is dict or type(child) is list:
                    add(child)
        if not deeper:
            return False
        level = deeper
    return True


# What went wrong, by the exact class of the transport failure (others: "timed out", "network error").
_FAILED_PHASE: dict[type[httpx2.TransportError], str] = {
    httpx2.ConnectTimeout: "connecting timed out",
    httpx2.ReadTimeout: "the answer timed out",
    httpx2.WriteTimeout: "sending the request timed out",
    httpx2.PoolTimeout: "no free connection in the pool in time",
    httpx2.ConnectError: "connection failed",
    httpx2.ReadError: "the connection broke while reading the answer",
    httpx2.WriteError: "the connection broke while sending",
    httpx2.RemoteProtocolError: "the server closed the connection without a complete answer",
}


def _transport_failure(exc: httpx2.TransportError, ctx: CallContext, secrets: tuple[str, ...]) -> _Attempt:
    detail = str(exc).strip() or type(exc).__name__

    def text(otherwise: str) -> str:  # "the answer timed out", not "the answer timed out: timed out"
        phase = _FAILED_PHASE.get(type(exc), otherwise)
        return phase if detail.lower().rstrip(".") in phase else f"{phase} ({detail.rstrip('.')})"

    if isinstance(exc, httpx2.TimeoutException):
        error: CrmError = RequestTimeoutError(text("timed out"), context=ctx, secrets=secrets)
    elif isinstance(exc, httpx2.UnsupportedProtocol):
        error = ConfigurationError(f"APIDECK_BASE_URL uses an unsupported protocol ({detail}).", context=ctx)
    else:
        error = NetworkError(text("network error"), context=ctx, secrets=secrets)
    if isinstance(exc, _FATAL_TRANSPORT):
        return _Attempt(error, retryable=False)
    return _Attempt(error, retryable=True, maybe_processed=not isinstance(exc, _NOT_SENT))


def _uncertain(op: Operation, cause: CrmError, ctx: CallContext, body: Any, attempts: int) -> UncertainWriteError:
    if isinstance(cause, InvalidResponseError):
        what = f"its answer (HTTP {cause.status}) could not be read: {cause.message}"
    elif cause.status is not None:
        what = f"the API answered HTTP {cause.status}" + (f" ({redact(cause.message)[:160]})" if cause.message else "")
    else:
        what = cause.message
    ctx = replace(ctx, check_hint=_check_hint(op, body))
    error = UncertainWriteError(
        what,
        status=cause.status,
        type_name=cause.type_name,
        request_id=cause.request_id,
        service=cause.service,
        context=ctx,
    )
    error.attempts = attempts
    error.elapsed_s = cause.elapsed_s
    error.__cause__ = cause
    return error


# --------------------------------------------------------------------------------- call context

_LOOKUP_PREFERENCE = ("email", "name", "title", "last_name", "first_name", "phone_number", "subject")


def _list_op(op: Operation) -> Operation | None:
    for candidate in OPERATIONS:
        if candidate.resource == op.resource and candidate.action == "list":
            return candidate
    return None


def _context(
    op: Operation,
    path_params: Mapping[str, Any] | None,
    query: Mapping[str, Any] | None,
    creds: Credentials,
    base_url: str,
) -> CallContext:
    from crm_mcp.operations import resource

    try:
        singular = resource(op.resource).singular
    except KeyError:
        singular = op.resource.rstrip("s")
    params = dict(path_params or {})
    record_id = params.get("id")
    if record_id is None and op.path_params:
        record_id = params.get(op.path_params[-1])
    query = query or {}
    flt = query.get("filter")
    filters = tuple(str(k) for k, v in flt.items() if v is not None) if isinstance(flt, Mapping) else ()
    sort = query.get("sort")
    sort_by = sort.get("by") if isinstance(sort, Mapping) else None
    list_op = _list_op(op)
    return CallContext(
        tool_name=op.tool_name,
        method=op.method.upper(),
        resource=op.resource,
        singular=singular,
        record_id=None if record_id is None else str(record_id),
        list_tool=list_op.tool_name if list_op else None,
        filters=filters,
        sort_by=str(sort_by) if sort_by is not None else None,
        cursor_sent=bool(query.get("cursor")),
        service_id=creds.service_id,
        base_url=base_url,
    )


def _first_value(body: Mapping[str, Any], field_name: str) -> str | None:
    """The value a list filter `field_name` should take to find the record `body` describes."""
    value = body.get(field_name)
    if isinstance(value, str) and value.strip():
        return value
    plural = {"email": ("emails", "email"), "phone_number": ("phone_numbers", "number")}.get(field_name)
    if plural:
        items = body.get(plural[0])
        if isinstance(items, list) and items and isinstance(items[0], Mapping):
            item = items[0].get(plural[1])
            if isinstance(item, str) and item.strip():
                return item
    return None


def _check_hint(op: Operation, body: Any) -> str | None:
    """How to look for the record an uncertain create may have made, e.g. `with list_contacts filter {...}`."""
    list_op = _list_op(op)
    if list_op is None:
        return None
    from crm_mcp.operations import model

    if hasattr(body, "model_dump"):
        body = body.model_dump(by_alias=True, exclude_unset=True, mode="json")
    body = body if isinstance(body, Mapping) else {}
    filter_fields: list[str] = []
    if list_op.filter_model:
        try:
            filter_fields = list(model(list_op.filter_model).model_fields)
        except (KeyError, AttributeError):
            filter_fields = []
    ordered = [f for f in _LOOKUP_PREFERENCE if f in filter_fields] + [
        f for f in filter_fields if f not in _LOOKUP_PREFERENCE and not f.endswith("_since")
    ]
    args = ""
    if list_op.path_params:
        args = " (" + ", ".join(f"{p}={body.get(p)!r}" if body.get(p) else p for p in list_op.path_params) + ")"
    for name in ordered:
        value = _first_value(body, name)
        if value is not None:
            shown = json.dumps({name: value[:100]}, ensure_ascii=False)
            return f"with {list_op.tool_name}{args} filter {shown}"
    if list_op.sort_model:
        try:
            sortable = model(list_op.sort_model).model_fields.get("by")
        except (KeyError, AttributeError):
            sortable = None
        if sortable is not None and "created_at" in str(sortable.annotation):
            return f'with {list_op.tool_name}{args} sort {{"by": "created_at", "direction": "desc"}} (newest first)'
    return f"with {list_op.tool_name}{args}, looking for the values you sent"
