"""The stdio transport, without a worker thread per line or a task per direction.

The SDK's `stdio_server` reads and writes the pipes through `anyio.wrap_file`, which hands
every read, write and flush to a worker thread: three thread hops per tool call, ~0.5 ms on a
busy machine, paid by every call a desktop client makes; and it passes each message through a
reader task and a writer task, each behind a memory stream (two more task switches per call).
When stdin and stdout are pipes (as they are under every MCP client), this module serves the
server's read and write streams itself, on the event loop's own pipe transports: the server's
read loop parses the next line of stdin when it asks for a message, and a response is written to
stdout by the task that sends it (one write per message; `drain` holds it back only when the
pipe is full). It keeps the SDK transport's protections and its wire format: fd 0 and 1 are
claimed as the SDK does (stray prints go to stderr, never onto the wire), a line that is no
JSON-RPC message reaches the server as the exception it raised, a message is written as the
SDK writes it. Anything else (a file, a terminal on an odd platform, an event loop without pipe
support) falls back to the SDK's own transport unchanged.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import stat
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any

import anyio
import mcp_types as types
from anyio.abc import AsyncResource
from mcp.shared.message import SessionMessage

log = logging.getLogger("crm_mcp.stdio")

_LINE_LIMIT = 64 * 1024 * 1024  # one JSON-RPC message per line; generous, but bounded
_CHUNK = 64 * 1024
INVALID_REQUEST = -32600


def event_loop_options() -> dict[str, Any]:
    """anyio's asyncio backend options: uvloop where it is installed (the `fast` extra; not on
    Windows), a loop written in C (measured over HTTP: about 5% less server CPU per call than
    asyncio's own); asyncio's otherwise. HTTP mode gets the same from uvicorn, which picks uvloop
    by itself."""
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return {}
    return {"use_uvloop": True}


class _PipeLines:
    """`async for line in ...` over an asyncio StreamReader, as the SDK's transport reads stdin.

    A line longer than `limit` is held no further than the limit (and one read): it is skipped to
    its end, logged, and, when its start shows a request id, answered with a JSON-RPC error
    through `reply`; the next line is read as usual (asyncio's own `readline` would raise and end
    the server)."""

    def __init__(self, reader: asyncio.StreamReader, reply: Callable[[bytes], None], limit: int = _LINE_LIMIT):
        self._reader = reader
        self._reply = reply
        self._limit = limit
        self._buffer = bytearray()
        self._scanned = 0  # bytes of the buffer already searched for a newline
        self._eof = False

    def __aiter__(self) -> _PipeLines:
        return self

    async def __anext__(self) -> str:
        while True:
            end = self._buffer.find(b"\n", self._scanned)
            if end >= 0:
                line = bytes(self._buffer[: end + 1])
                del self._buffer[: end + 1]
                self._scanned = 0
                if len(line) > self._limit:  # it all arrived at once: refuse it whole
                    self._refuse(line[:1024], len(line))
                    continue
                return line.decode("utf-8", errors="replace")
            self._scanned = len(self._buffer)
            if self._eof:
                if not self._buffer:
                    raise StopAsyncIteration
                line = bytes(self._buffer)
                self._buffer.clear()
                self._scanned = 0
                return line.decode("utf-8", errors="replace")
            if len(self._buffer) > self._limit:
                await self._skip_overlong_line()
                continue
            chunk = await self._reader.read(_CHUNK)
            if chunk:
                self._buffer += chunk
            else:
                self._eof = True

    async def _skip_overlong_line(self) -> None:
        start = bytes(self._buffer[:1024])
        skipped = len(self._buffer)
        self._buffer.clear()
        self._scanned = 0
        while True:
            chunk = await self._reader.read(_CHUNK)
            if not chunk:
                self._eof = True
                break
            end = chunk.find(b"\n")
            if end >= 0:
                skipped += end + 1
                self._buffer += chunk[end + 1 :]
                break
            skipped += len(chunk)
        self._refuse(start, skipped)

    def _refuse(self, start: bytes, size: int) -> None:
        """Log a skipped over-long message and answer it when its `start` shows its id."""
        request_id = _leading_id(start)
        log.warning("stdin: skipped a message of %d bytes, over the limit of %d bytes for one message",
                    size, self._limit)
        if request_id is not None:
            error = {"code": INVALID_REQUEST,
                     "message": f"message refused: longer than {self._limit} bytes, the limit for one message"}
            self._reply(b'{"jsonrpc":"2.0","id":' + request_id + b',"error":' + json.dumps(error).encode() + b"}\n")


# the request id at the start of a message as clients write it: {"jsonrpc":"2.0","id":..., or {"id":...,
_LEADING_ID = re.compile(rb'\A\s*\{\s*(?:"jsonrpc"\s*:\s*"2\.0"\s*,\s*)?"id"\s*:\s*(-?\d{1,18}|"[^"\\]{0,200}")\s*,')


def _leading_id(start: bytes) -> bytes | None:
    """The JSON text of the id a message starts with, or None when its start shows none."""
    found = _LEADING_ID.match(start)
    return found.group(1) if found else None


class _Messages(AsyncResource):  # `async with` closes it (aclose)
    """The server's read stream: the JSON-RPC message on the next line of stdin, parsed when the
    server asks for it; a line that does not parse comes as the exception it raised (as from the
    SDK's transport)."""

    def __init__(self, lines: _PipeLines):
        self._lines = lines
        self._closed = False

    async def receive(self) -> SessionMessage | Exception:
        if self._closed:
            raise anyio.ClosedResourceError
        try:
            line = await self._lines.__anext__()
        except StopAsyncIteration:
            raise anyio.EndOfStream from None
        try:
            return SessionMessage(types.jsonrpc_message_adapter.validate_json(line, by_name=False))
        except Exception as exc:
            return exc

    def __aiter__(self) -> _Messages:
        return self

    async def __anext__(self) -> SessionMessage | Exception:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def aclose(self) -> None:
        self._closed = True


class _Replies(AsyncResource):
    """The server's write stream: each message written to stdout as one line by the task that sends
    it, as the SDK's transport writes it; a pipe that is gone is a broken stream (the server drops
    what it still had to say, as it does when a client disconnects)."""

    def __init__(self, writer: asyncio.StreamWriter):
        self._writer = writer
        self._closed = False

    async def send(self, item: SessionMessage) -> None:
        if self._closed:
            raise anyio.ClosedResourceError
        line = item.message.model_dump_json(by_alias=True, exclude_unset=True) + "\n"
        try:
            if self._writer.is_closing():
                raise ConnectionResetError("stdout is closed")
            self._writer.write(line.encode("utf-8"))
            await self._writer.drain()
        except OSError as exc:  # BrokenPipeError, ConnectionResetError: the client is gone
            raise anyio.BrokenResourceError from exc

    async def aclose(self) -> None:
        self._closed = True


def _is_pipe(fd: int) -> bool:
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


@asynccontextmanager
async def fast_stdio_server(*, use_sdk: bool = False) -> AsyncIterator[Any]:
    """Like `mcp.server.stdio.stdio_server()`, on the event loop's pipe transports when it can
    (`use_sdk`, the CRM_MCP_SDK_STDIO setting: the SDK's own transport instead)."""
    from mcp.server import stdio as sdk_stdio

    claim = getattr(sdk_stdio, "_claim_fd", None)  # private in the SDK: fall back if it goes away
    usable = sys.platform != "win32" and _is_pipe(0) and _is_pipe(1)
    if claim is None or not usable or use_sdk:
        async with sdk_stdio.stdio_server() as streams:
            yield streams
        return
    stdin_buffer, restore_stdin = claim(0, sys.stdin, "rb", sdk_stdio._open_stdin_diversion)
    stdout_buffer, restore_stdout = claim(1, sys.stdout, "wb", sdk_stdio._open_stdout_diversion)
    try:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), stdin_buffer)
        transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, stdout_buffer)
        writer = asyncio.StreamWriter(transport, protocol, None, loop)
        yield _Messages(_PipeLines(reader, writer.write)), _Replies(writer)
        if not transport.is_closing():
            with suppress(OSError):  # the client closed its end first
                await writer.drain()
        transport.close()
    finally:
        if restore_stdout is not None:
            restore_stdout()
        if restore_stdin is not None:
            restore_stdin()
