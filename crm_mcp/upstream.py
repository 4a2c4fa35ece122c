"""What the API client asks of an HTTP transport: one exchange, with no HTTP library's request and
response objects in between.

`ApideckClient` (crm_mcp.client) builds the request itself (method, encoded URL, headers, body,
the attempt's timeouts) and reads the answer as a status, case-insensitive headers and the body's
chunks as they arrived (a content encoding is decoded by the client, `Inflate`, so every transport
answers alike and the size bound counts decoded bytes). Two transports implement it:

- `Httpx2Transport`: any httpx2 transport. httpx2's own connection pool (httpcore2) serves stdio,
  where aiohttp's import (~90 ms) would land on start-up or the first call; the tests hand the
  client an httpx2 `MockTransport` (or a wrapper of one) to answer at the HTTP boundary.
- `crm_mcp.upstream_transport.AiohttpTransport`: aiohttp's pool, for HTTP serving.

An httpx2 request and response cost about 100 µs of CPU per call (URL parsing, header models, the
client's auth, redirect and cookie layers); the pools underneath are unchanged.

Errors: a transport raises httpx2's exception types (`httpx2.ConnectError`, `ReadTimeout`, ...),
the vocabulary of the client's retry rules, and `TargetRewritten` when its URL parser would send
another path or query than the client built.
"""

from __future__ import annotations

import ssl
import urllib.request
import zlib
from collections.abc import AsyncIterator, Mapping
from typing import Protocol
from urllib.parse import urlsplit

import httpx2

# The encodings `Inflate` decodes: what the client asks for (Accept-Encoding).
ACCEPT_ENCODING = "gzip, deflate"


# Plain classes, not dataclasses: this module is imported at start-up, where a dataclass costs ~0.5 ms.
class Timeouts:
    """Seconds per phase of one attempt: opening a connection, waiting for a free one (and opening
    it), sending, and between two reads of the answer; none past the attempt's deadline."""

    __slots__ = ("connect", "pool", "read", "write")

    def __init__(self, connect: float, pool: float, write: float, read: float):
        self.connect, self.pool, self.write, self.read = connect, pool, write, read

    def as_dict(self) -> dict[str, float]:
        return {"connect": self.connect, "pool": self.pool, "write": self.write, "read": self.read}


class Request:
    """One request as the client built it."""

    __slots__ = ("content", "headers", "method", "target", "timeouts", "url")

    def __init__(self, method: str, url: str, target: bytes, headers: dict[str, str], content: bytes | None,
                 timeouts: Timeouts):
        self.method = method
        self.url = url  # absolute and already percent-encoded
        self.target = target  # its path and query exactly as built: what must go on the request line
        self.headers = headers
        self.content = content
        self.timeouts = timeouts


class Answer(Protocol):
    """An answer whose body is still to be read."""

    status: int
    headers: Mapping[str, str]  # case-insensitive

    def chunks(self) -> AsyncIterator[bytes]:
        """The body as sent (a content encoding not decoded), chunk by chunk."""
        ...

    async def aclose(self) -> None:
        """Give the connection back (the whole body read) or close it (read only in part)."""
        ...


class Transport(Protocol):
    async def send(self, request: Request) -> Answer: ...

    async def aclose(self) -> None: ...


class TargetRewritten(Exception):
    """The transport's URL parser would send a path or query other than the one the client built."""


class UnsupportedEncoding(ValueError):
    """A content encoding the client did not ask for and cannot decode."""


# ----------------------------------------------------------------------------------- httpx2


class _Httpx2Answer:
    __slots__ = ("_response", "headers", "status")

    def __init__(self, response: httpx2.Response):
        self._response = response
        self.status = response.status_code
        self.headers: Mapping[str, str] = response.headers

    async def chunks(self) -> AsyncIterator[bytes]:
        stream = self._response.stream
        if not isinstance(stream, httpx2.AsyncByteStream):
            raise TypeError("the httpx2 transport answered with a synchronous stream")
        async for chunk in stream:
            yield chunk

    async def aclose(self) -> None:
        await self._response.aclose()


class Httpx2Transport:
    """Sends through an httpx2 transport: `inner` (the tests' hook), else httpx2's own pool with
    these TLS settings and limits, through the proxy the environment names for `base_url`."""

    def __init__(self, inner: httpx2.AsyncBaseTransport | None = None, *, base_url: str = "",
                 verify: ssl.SSLContext | None = None, limits: httpx2.Limits | None = None):
        if inner is None:
            inner = httpx2.AsyncHTTPTransport(
                verify=verify if verify is not None else True,
                limits=limits or httpx2.Limits(),
                proxy=env_proxy(base_url),
            )
        self._inner = inner

    async def send(self, request: Request) -> Answer:
        sent = httpx2.Request(request.method, request.url, headers=request.headers, content=request.content,
                              extensions={"timeout": request.timeouts.as_dict()})
        if sent.url.raw_path != request.target:  # defence in depth: the URL must be exactly ours
            raise TargetRewritten(request.target.decode("ascii", "replace"))
        return _Httpx2Answer(await self._inner.handle_async_request(sent))

    async def aclose(self) -> None:
        await self._inner.aclose()


def env_proxy(base_url: str) -> str | None:
    """The proxy the environment names for `base_url` (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, and
    NO_PROXY to bypass it; lower case too), read once when the client is made."""
    parts = urlsplit(base_url)
    if not parts.hostname:
        return None
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    # the environment's NO_PROXY only (urllib's proxy_bypass also asks macOS and Windows settings)
    bypass = getattr(urllib.request, "proxy_bypass_environment", urllib.request.proxy_bypass)
    if not proxy or bypass(parts.hostname, proxies):
        return None
    return proxy


# -------------------------------------------------------------------------------- decoding


class Inflate:
    """Decodes a body sent with `Content-Encoding` gzip, deflate (zlib-wrapped or raw) or none,
    never producing more than the caller has room for (a small body cannot inflate past the
    client's size bound)."""

    def __init__(self, encoding: str | None):
        self._encoding = (encoding or "identity").strip().lower()
        if self._encoding == "gzip" or self._encoding == "x-gzip":
            self._zlib: zlib._Decompress | None = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif self._encoding == "deflate":
            self._zlib = zlib.decompressobj()
        elif self._encoding in ("identity", ""):
            self._zlib = None
        else:
            raise UnsupportedEncoding(f"content encoding {self._encoding!r}, which was not asked for")
        self._first = True

    def feed(self, chunk: bytes, room: int) -> bytes | None:
        """The decoded bytes of `chunk`, or None when they would be more than `room`. Raises
        zlib.error for a body that is not what its encoding says."""
        if self._zlib is None:
            return chunk if len(chunk) <= room else None
        if self._first and self._encoding == "deflate":
            self._first = False
            try:
                return self._bounded(chunk, room)
            except zlib.error:  # a raw deflate stream, without the zlib header (servers send both)
                self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
        return self._bounded(chunk, room)

    def _bounded(self, chunk: bytes, room: int) -> bytes | None:
        assert self._zlib is not None
        out = self._zlib.decompress(chunk, room + 1)
        return None if len(out) > room or self._zlib.unconsumed_tail else out

    def end(self) -> bytes:
        return b"" if self._zlib is None else self._zlib.flush()
