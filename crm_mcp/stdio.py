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
import logging
import os
import stat
import sys
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

log = logging.getLogger("crm_mcp.stdio")

_LINE_LIMIT = 64 * 1024 * 1024  # one JSON-RPC message per line; generous, but bounded


class _PipeLines:
    """`async for line in ...` over an asyncio StreamReader, as the SDK's transport reads stdin."""

    def __init__(self, reader: asyncio.StreamReader):
        self._reader = reader

    def __aiter__(self) -> _PipeLines:
        return self

    async def __anext__(self) -> str:
        line = await self._reader.readline()
        if not line:
            raise StopAsyncIteration
        return line.decode("utf-8", errors="replace")


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
        reader = asyncio.StreamReader(limit=_LINE_LIMIT)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), stdin_buffer)
        transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, stdout_buffer)
        writer = asyncio.StreamWriter(transport, protocol, None, loop)
        context: AbstractAsyncContextManager[Any] = sdk_stdio.stdio_server(
            stdin=_PipeLines(reader),  # type: ignore[arg-type]
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
