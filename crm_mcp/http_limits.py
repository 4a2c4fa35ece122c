"""HTTP mode against slow and idle clients: deadlines for the request head, the body and the answer.

uvicorn bounds what it can: concurrent connections (`limit_concurrency`, 503 beyond it), idle
kept-alive connections (`timeout_keep_alive`) and the wait for calls in flight on SIGTERM
(`timeout_graceful_shutdown`). It has no deadline for a request head: a client that opens a
connection and sends nothing, or a header a byte at a time, holds it forever; and its httptools
protocol (the C parser, a fraction of h11's CPU per request) no limit on the head's size.
`guarded_protocol` adds both to it; `ReadBodyWithin` and `AnswerWithin` (ASGI middleware) bound
the body and the answer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from typing import Any

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from crm_mcp.config import Settings

log = logging.getLogger("crm_mcp.http")

MAX_HEAD_BYTES = 16 * 1024  # request line and headers; 400 beyond it


def jsonrpc_error_body(code: int, message: str) -> bytes:
    """A JSON-RPC error with a null id (these answers come from outside the MCP session, which
    parses the request): the SDK's client shows the message as its request's error."""
    return json.dumps({"jsonrpc": "2.0", "id": None, "error": {"code": code, "message": message}}).encode()


async def send_error(send: Send, status: int, message: str, *, headers: list[tuple[bytes, bytes]] | None = None,
                     code: int = -32600) -> None:
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"connection", b"close"), *(headers or [])],
    })
    await send({"type": "http.response.body", "body": jsonrpc_error_body(code, message)})


# A refusal sent while the client is still sending its body, followed by closing the connection,
# makes the kernel reset it (unread data in the socket), and the reset can destroy the refusal
# before the client reads it. So a refusal first reads and discards what is left of the body,
# within these bounds ("lingering close"); past them, the client is abusive and may see a reset.
DRAIN_BYTES = 16 * 1024 * 1024
DRAIN_SECONDS = 2.0


async def drain_body(receive: Receive) -> None:
    """Read and discard the rest of a request's body, within DRAIN_BYTES and DRAIN_SECONDS."""
    read = 0
    with anyio.move_on_after(DRAIN_SECONDS):
        while read <= DRAIN_BYTES:
            message = await receive()
            if message["type"] != "http.request":
                return
            read += len(message.get("body", b""))
            if not message.get("more_body", False):
                return


class _GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol (llhttp, a C parser), with two bounds on the request head:

    - a deadline: a connection that has not sent a complete request head within `head_timeout`
      seconds of opening or of its previous answer (nothing at all, or a partial header) is closed.
      Checked when the timer fires, so a request being served is never cut;
    - a size: a head still incomplete past MAX_HEAD_BYTES gets 400 and the connection is closed
      (llhttp itself sets no limit)."""

    head_timeout: float = 10.0
    _head_timer: asyncio.TimerHandle | None = None
    # bytes received since the request began (the parser's message-begin) until its head completed;
    # None while no head is being received. Counted by whole reads: a read that carries the end of
    # a pipelined body and the next head counts both.
    _head_bytes: int | None = 0
    _refused = False  # a 400 was sent: what still arrives is read and dropped until the close

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self._arm_head_deadline()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        super().data_received(data)
        if self._head_bytes is not None and self.parser is not None and not self.transport.is_closing():
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                log.info("refused a request whose head is larger than %d bytes", MAX_HEAD_BYTES)
                self.send_400_response("Request head too large.")

    def send_400_response(self, msg: str) -> None:
        """uvicorn's 400 (an oversized head, or no HTTP at all), closed lingering: closed at once
        with the client's bytes still arriving, the kernel resets the connection, and a reset can
        discard the 400 before the client has read it. So the answer is sent with the end of our
        side (FIN), and what the client still sends is dropped for up to DRAIN_SECONDS, until it
        closes its side."""
        if self._refused:
            return
        self._refused = True
        defaults = self.server_state.default_headers
        self.transport.write(b"".join([
            STATUS_LINE[400],
            *(name + b": " + value + b"\r\n" for name, value in defaults),
            b"content-type: text/plain; charset=utf-8\r\n",
            b"content-length: %d\r\n" % len(msg),
            b"connection: close\r\n\r\n",
            msg.encode("ascii"),
        ]))
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self.loop.call_later(DRAIN_SECONDS, self.transport.close)
        else:
            self.transport.close()

    def on_message_begin(self) -> None:
        self._head_bytes = 0
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._head_bytes = None
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)

    def _arm_head_deadline(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        self._head_timer = self.loop.call_later(self.head_timeout, self._head_deadline_passed)

    def _head_deadline_passed(self) -> None:
        self._head_timer = None
        waiting_for_head = self.cycle is None or self.cycle.response_complete
        if waiting_for_head and not self.transport.is_closing():
            log.info("closed a connection that sent no complete request within %gs", self.head_timeout)
            self.transport.close()


def guarded_protocol(seconds: float) -> type[HttpToolsProtocol]:
    """The HTTP protocol class for uvicorn with a `seconds` request-head deadline."""
    return type("GuardedHttpToolsProtocol", (_GuardedProtocol,), {"head_timeout": seconds})


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's own settings: the limits it enforces itself, and no `server` header."""
    return {
        "server_header": False,  # says nothing about what runs here
        "http": guarded_protocol(settings.header_timeout),
        "limit_concurrency": settings.max_connections,
        "timeout_keep_alive": math.ceil(settings.idle_timeout),
        # on SIGTERM: stop accepting, let calls in flight finish; none outlives the request timeout
        "timeout_graceful_shutdown": math.ceil(settings.request_timeout),
    }


class ReadBodyWithin:
    """ASGI middleware: the whole request body within `seconds` (408 otherwise) and `max_bytes`
    (413 otherwise), read before the app runs and handed to it unchanged."""

    def __init__(self, app: ASGIApp, *, seconds: float, max_bytes: int):
        self.app = app
        self.seconds = seconds
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body = bytearray()
        message: Message = {"type": "http.request", "more_body": True}  # nothing arrived yet
        with anyio.move_on_after(self.seconds):
            while True:
                message = await receive()
                if message["type"] != "http.request":  # the client went away
                    return
                body += message.get("body", b"")
                if len(body) > self.max_bytes:
                    if message.get("more_body", False):
                        await drain_body(receive)
                    await send_error(send, 413, f"request body larger than {self.max_bytes} bytes")
                    return
                if not message.get("more_body", False):
                    break
        if message["type"] != "http.request" or message.get("more_body", False):
            log.info("refused a request whose body took more than %gs", self.seconds)
            await send_error(send, 408, f"the request body did not arrive within {self.seconds:g} seconds")
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class AnswerWithin:
    """ASGI middleware: a request not answered within `seconds` is cancelled and gets 504 with a
    JSON-RPC error saying so (an answer already under way is left to finish)."""

    def __init__(self, app: ASGIApp, *, seconds: float):
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        with anyio.CancelScope(deadline=anyio.current_time() + self.seconds) as deadline:

            async def tracking_send(message: Message) -> None:
                nonlocal started
                started = True
                deadline.deadline = math.inf  # an answer under way is not cut off
                await send(message)

            await self.app(scope, receive, tracking_send)
        if deadline.cancelled_caught and not started:
            log.warning("a request was not answered within %gs (CRM_MCP_REQUEST_TIMEOUT)", self.seconds)
            await send_error(send, 504, f"no answer within {self.seconds:g} seconds (the server's time bound "
                             "for a request); the call was cancelled, but a write may have been applied", code=-32603)
