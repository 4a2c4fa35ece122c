"""The stdio transport, without a worker thread per line.

The SDK's `stdio_server` reads and writes the pipes through `anyio.wrap_file`, which hands
every read, write and flush to a worker thread: three thread hops per tool call, ~0.5 ms on a
busy machine, paid by every call a desktop client makes. When stdin and stdout are pipes (as
they are under every MCP client), this module gives the SDK's `stdio_server` async streams
built on the event loop's own pipe transports instead, and keeps its protections: fd 0 and 1
are claimed as the SDK does (stray prints go to stderr, never onto the wire). Anything else (a
file, a terminal on an odd platform, an event loop without pipe support) falls back to the
SDK's own transport unchanged.
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
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

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


class _PipeWriter:
    """`await write(text)` / `await flush()` over an asyncio StreamWriter."""

    def __init__(self, writer: asyncio.StreamWriter):
        self._writer = writer

    async def write(self, text: str) -> None:
        self._writer.write(text.encode("utf-8"))

    async def flush(self) -> None:
        await self._writer.drain()


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
        context: AbstractAsyncContextManager[Any] = sdk_stdio.stdio_server(
            stdin=_PipeLines(reader, writer.write),  # type: ignore[arg-type]
            stdout=_PipeWriter(writer),  # type: ignore[arg-type]
        )
        async with context as streams:
            yield streams
        await writer.drain()
        transport.close()
    finally:
        if restore_stdout is not None:
            restore_stdout()
        if restore_stdin is not None:
            restore_stdin()
