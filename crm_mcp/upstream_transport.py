"""The API client's transport for HTTP serving: aiohttp's connection pool (`crm_mcp.upstream`).

aiohttp's pool and C-parsed HTTP/1.1 cost less than half the CPU per request of httpx2's own
(which also probes every idle connection with a poll() on each request): 310-390 against
700-800 µs here. It is not used over stdio: importing it takes ~90 ms.

What it keeps of the other transport's behaviour:
- the attempt's timeouts: `connect` (opening a connection), `pool` (a free connection, and
  opening it), `read` (between two reads of the answer); aiohttp has no write timeout, and the
  client's own deadline (a cancel scope around the whole exchange) is the bound that matters;
- errors as httpx2's exception types, so retry rules see the same kinds: a connection that could
  not be opened is `ConnectError` / `ConnectTimeout` (nothing sent), a connection lost on the
  way is `RemoteProtocolError` / `ReadError` (maybe processed), a slow answer `ReadTimeout`;
  aiohttp itself retries nothing but an idempotent request on a kept-alive connection the server
  had closed;
- a streamed body: closing the answer before its end closes the connection (never reused
  half-read), so a cancelled or oversized read leaves nothing behind;
- no redirects, no cookies; the body as received (the client decodes a content encoding);
- the request line exactly as the client built it (`encoded=True`: yarl re-encodes nothing);
- proxies from the environment (HTTPS_PROXY, NO_PROXY, ...), looked up once per origin.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncIterator, Mapping
from functools import cache

import aiohttp
import httpx2
from aiohttp.helpers import BasicAuth, get_env_proxy_for_url
from yarl import URL

from crm_mcp.upstream import Answer, Request, TargetRewritten

log = logging.getLogger("crm_mcp.upstream")

_CHUNK = 64 * 1024


class _Answer:
    __slots__ = ("_response", "headers", "status")

    def __init__(self, response: aiohttp.ClientResponse):
        self._response = response
        self.status = response.status
        self.headers: Mapping[str, str] = response.headers  # a case-insensitive multidict

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_chunked(_CHUNK):
                yield chunk
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _mapped(exc, reading=True) from exc

    async def aclose(self) -> None:
        if self._response.content.at_eof():
            self._response.release()  # read to the end: the connection goes back to the pool
        else:
            self._response.close()  # half-read: the connection is closed, never reused


class AiohttpTransport:
    """Sends through one aiohttp session (one connection pool), created on first use inside the
    running event loop (and again in another loop: a session belongs to one)."""

    def __init__(self, *, ssl_context: ssl.SSLContext, max_connections: int, keepalive_expiry: float | None):
        self._ssl = ssl_context
        self._max_connections = max_connections
        self._keepalive_expiry = keepalive_expiry
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _client_session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            self._loop = loop
            connector = aiohttp.TCPConnector(
                limit=self._max_connections, keepalive_timeout=self._keepalive_expiry, ssl=self._ssl
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=False,  # decoded by the client, within its size bound
                trust_env=False,  # proxies: `_env_proxy`, looked up once per origin (not in a thread per request)
                cookie_jar=aiohttp.DummyCookieJar(),
                skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept", "Content-Type"),
            )
        return self._session

    async def send(self, request: Request) -> Answer:
        url = URL(request.url, encoded=True)
        if url.raw_path_qs.encode("ascii", "replace") != request.target:
            raise TargetRewritten(request.target.decode("ascii", "replace"))
        timeouts = request.timeouts
        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=timeouts.pool,  # waiting for a free connection, and opening it
            sock_connect=timeouts.connect,
            sock_read=timeouts.read,
        )
        proxy, proxy_auth = _env_proxy(url.scheme, url.host or "", url.port)
        try:
            response = await self._client_session().request(
                request.method,
                url,
                headers=request.headers,
                data=request.content,
                timeout=timeout,
                allow_redirects=False,
                proxy=proxy,
                proxy_auth=proxy_auth,
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _mapped(exc, reading=False) from exc
        return _Answer(response)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


@cache
def _env_proxy(scheme: str, host: str, port: int | None) -> tuple[URL | None, BasicAuth | None]:
    """The proxy the environment sets for an origin (HTTPS_PROXY, NO_PROXY, ...), read once per origin."""
    try:
        return get_env_proxy_for_url(URL.build(scheme=scheme, host=host, port=port))
    except LookupError:
        return None, None


def _mapped(exc: BaseException, *, reading: bool) -> httpx2.TransportError:
    """aiohttp's error as the httpx2 error of the same meaning (see the module's docstring)."""
    message = str(exc) or type(exc).__name__
    log.debug("upstream transport error %s: %s", type(exc).__name__, message)
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx2.ConnectTimeout(message)
    if isinstance(exc, aiohttp.ServerTimeoutError | TimeoutError):
        return httpx2.ReadTimeout(message)
    if isinstance(exc, aiohttp.ClientConnectorError):  # the connection could not be opened: nothing sent
        return httpx2.ConnectError(message)
    if isinstance(exc, aiohttp.InvalidURL):
        return httpx2.UnsupportedProtocol(message)
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError | aiohttp.ClientResponseError):
        return httpx2.RemoteProtocolError(message)
    return httpx2.ReadError(message) if reading else httpx2.RemoteProtocolError(message)
