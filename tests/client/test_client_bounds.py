"""The client's bounds against a real slow, endless or careless upstream (a server on loopback):
one deadline per call that covers the whole body, the upstream request closed when the caller goes
away, slow calls that do not starve others, a byte budget on every answer, and a list page cut to
what was asked."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from mcp.client import Client
from mcp_support import text_of
from security_support import UpstreamHandler, loopback_upstream, settings_for

from crm_mcp import errors as E
from crm_mcp.client import MAX_RESPONSE_BYTES, ApideckClient, RetryPolicy
from crm_mcp.operations import operation
from crm_mcp.server import build_server

pytestmark = pytest.mark.anyio

LIST_CONTACTS = operation("list_contacts")
LIST_USERS = operation("list_users")
KEY, APP, CONSUMER = "sk_bounds_key_0123456789", "app-bounds", "consumer-bounds"


class Trickle:
    """Answers 200 with a promised body, then sends one byte every `interval` seconds (for at most
    `seconds`); records how many requests are being trickled and when each connection went away."""

    def __init__(self, interval: float = 0.2, seconds: float = 30.0) -> None:
        self.interval, self.seconds = interval, seconds
        self.active = 0
        self.gone: list[float] = []
        self.lock = threading.Lock()

    def __call__(self, handler: UpstreamHandler) -> None:
        if handler.path.startswith("/crm/users"):  # the unrelated, quick call
            handler.reply(200, json.dumps({"data": [{"id": "usr_1", "name": "Quick"}], "meta": {}}))
            return
        handler.send_response(200)
        handler.send_header("content-type", "application/json")
        handler.send_header("content-length", "100000")
        handler.end_headers()
        with self.lock:
            self.active += 1
        try:
            end = time.monotonic() + self.seconds
            while time.monotonic() < end:
                handler.wfile.write(b" ")
                handler.wfile.flush()
                time.sleep(self.interval)
        except OSError:  # the client closed the connection
            with self.lock:
                self.gone.append(time.monotonic())
        finally:
            with self.lock:
                self.active -= 1


@pytest.fixture
def trickle() -> Iterator[tuple[Trickle, str]]:
    answer = Trickle()
    with loopback_upstream(answer) as server:
        yield answer, f"http://127.0.0.1:{server.server_port}"


@pytest.mark.slow  # waits out real deadlines: run alone, with the timing-bound tests
async def test_a_trickling_upstream_cannot_hold_a_call_past_its_deadline(
    trickle: tuple[Trickle, str], pool: str
) -> None:
    """One byte every 0.2 s never trips a per-chunk read timeout of 1 s; the attempt's deadline
    (1 s) and the call's (2 s) still end the call."""
    answer, base_url = trickle
    retry = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.01, total_timeout=2.0)
    async with ApideckClient(KEY, APP, CONSUMER, base_url=base_url, retry=retry, read_timeout=1.0, pool=pool) as client:
        t0 = time.monotonic()
        with pytest.raises(E.RequestTimeoutError) as info:
            await client.call(LIST_CONTACTS)
        elapsed = time.monotonic() - t0
    assert 1.9 < elapsed < 4.0, elapsed  # two 1 s deadlines; an unbounded read would take 30 s
    assert "no complete answer within 1.0 s" in str(info.value)
    assert info.value.attempts == 2  # 1 s each: the call's 2 s allow two
    await anyio.sleep(0.5)
    assert len(answer.gone) == 2  # each attempt's connection was closed at its deadline


@pytest.mark.slow  # waits out real deadlines: run alone, with the timing-bound tests
async def test_an_unreadable_create_after_the_deadline_is_uncertain(trickle: tuple[Trickle, str], pool: str) -> None:
    _, base_url = trickle
    async with ApideckClient(KEY, APP, CONSUMER, base_url=base_url, read_timeout=0.8, pool=pool) as client:
        with pytest.raises(E.UncertainWriteError) as info:
            await client.call(operation("create_contact"), body={"first_name": "Ada"})
    assert info.value.attempts == 1 and "no complete answer within 0.8 s" in str(info.value)


@pytest.mark.slow  # waits out real deadlines: run alone, with the timing-bound tests
async def test_a_caller_that_goes_away_closes_the_upstream_request(trickle: tuple[Trickle, str], pool: str) -> None:
    answer, base_url = trickle
    async with ApideckClient(KEY, APP, CONSUMER, base_url=base_url, pool=pool) as client:
        with anyio.move_on_after(0.6) as scope:
            await client.call(LIST_CONTACTS)
        cancelled_at = time.monotonic()
        assert scope.cancelled_caught
        for _ in range(40):  # the upstream notices at its next write (every 0.2 s)
            if answer.gone:
                break
            await anyio.sleep(0.05)
    assert answer.gone and answer.gone[0] - cancelled_at < 1.0


@pytest.mark.slow  # waits out real deadlines: run alone, with the timing-bound tests
async def test_slow_upstream_reads_do_not_starve_an_unrelated_call(trickle: tuple[Trickle, str], pool: str) -> None:
    """32 calls stuck on a slow upstream; a quick call to another endpoint still answers at once
    (no wait for a free connection, no pool timeout)."""
    answer, base_url = trickle
    async with (
        ApideckClient(KEY, APP, CONSUMER, base_url=base_url, pool=pool) as client,
        anyio.create_task_group() as tg,
    ):
        for _ in range(32):
            tg.start_soon(client.call, LIST_CONTACTS)
        for _ in range(100):
            if answer.active == 32:
                break
            await anyio.sleep(0.05)
        assert answer.active == 32
        t0 = time.monotonic()
        with anyio.fail_after(5):
            quick = await client.call(LIST_USERS)
        elapsed = time.monotonic() - t0
        tg.cancel_scope.cancel()
    assert quick.body["data"][0]["name"] == "Quick" and quick.attempts == 1
    assert elapsed < 3.0, elapsed  # a pool wait would take 10 s or more (the old pool timeout)


# ------------------------------------------------------------------------------------------ size


class Endless:
    """A list answer that never ends: rows streamed until the client stops reading; counts the
    bytes it managed to send."""

    def __init__(self) -> None:
        self.sent = 0

    def __call__(self, handler: UpstreamHandler) -> None:
        handler.send_response(200)
        handler.send_header("content-type", "application/json")
        handler.send_header("connection", "close")
        handler.end_headers()
        chunk = b'{"data": [' + b'{"id": "con_x", "name": "Row"},' * 2000
        try:
            while self.sent < 400 * 1024 * 1024:
                handler.wfile.write(chunk)
                self.sent += len(chunk)
        except OSError:
            pass


@pytest.mark.slow  # a real server or subprocess, seconds of set-up: with the slow tests
async def test_reading_stops_at_the_byte_budget(pool: str) -> None:
    """An upstream that ignores `limit` and streams rows without end: the client reads at most its
    budget (4 MB) and stops; what the upstream could push is that plus the sockets' buffers."""
    endless = Endless()
    with loopback_upstream(endless) as server:
        base_url = f"http://127.0.0.1:{server.server_port}"
        async with ApideckClient(KEY, APP, CONSUMER, base_url=base_url, pool=pool) as client:
            with pytest.raises(E.ResponseTooLargeError) as info:
                await client.call(LIST_CONTACTS, query={"limit": 5})
        await anyio.sleep(0.3)
    assert MAX_RESPONSE_BYTES == 4 * 1024 * 1024
    assert endless.sent < MAX_RESPONSE_BYTES + 16 * 1024 * 1024, endless.sent
    assert "more than 4,194,304 bytes" in str(info.value) and "a smaller limit" in str(info.value)


def _rows(n: int) -> list[dict[str, Any]]:
    return [{"id": f"con_{i:04d}", "name": f"Person {i}"} for i in range(n)]


@pytest.mark.parametrize(("arguments", "asked"), [({"limit": 5}, 5), ({}, 20)])
async def test_a_page_with_more_rows_than_asked_is_cut_to_the_limit(arguments: dict[str, Any], asked: int) -> None:
    def careless(handler: UpstreamHandler) -> None:  # ignores `limit`: always 300 rows
        body = {"status_code": 200, "data": _rows(300), "meta": {"cursors": {"next": "c2"}}}
        handler.reply(200, json.dumps(body))

    with loopback_upstream(careless) as server:
        settings = settings_for(f"http://127.0.0.1:{server.server_port}", CONSUMER)
        async with Client(build_server(settings)) as client:
            result = await client.call_tool("list_contacts", arguments)
    text = text_of(result)
    assert not result.is_error, text
    assert f"con_{asked - 1:04d}" in text and f"con_{asked:04d}" not in text
    assert result.structured_content == {"count": asked, "next_cursor": "c2"}
    assert f"The API sent 300 rows for limit {asked}: {300 - asked} were cut." in text
    assert "narrow the list with filter" in text and 'cursor="c2"' in text
