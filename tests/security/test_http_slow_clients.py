"""HTTP mode against slow, idle and flooding clients, over real sockets to a real uvicorn server.

The server runs as `crm-mcp serve --http` runs it (`build_http_app` under uvicorn with
`uvicorn_options(settings)`), token-protected, with short deadlines so the tests are quick:
a connection that sends nothing or a partial request head is closed after the head deadline; a
body that trickles in gets 408 after the body deadline; `GET /mcp` (an endless event stream in
the SDK's stateless mode) gets 405 with `Allow: POST`, and 401 before that without the token;
beyond the connection cap a request gets 503 until the idle connections are closed. Meanwhile an
authenticated MCP call still answers promptly. Then: the request deadline (504) and the upstream
timeout, `GET /health`, and the Host rules of an all-addresses bind."""

from __future__ import annotations

import dataclasses
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import anyio
import http_clients
import pytest
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_support import serve_in_thread, text_of
from security_support import new_consumer, settings_for

from crm_mcp.config import Settings
from crm_mcp.http import build_http_app
from crm_mcp.http_limits import MAX_HEAD_BYTES, uvicorn_options
from crm_mcp.server import build_server

# These tests wait out real timeouts (seconds each): slow, so CI runs them with no other worker
# competing with their deadlines.
pytestmark = pytest.mark.slow

TOKEN = "tok_5b1e0c9d7a2f4e8b9c3d6a1f0e7b2c4d"  # 36 characters
HEAD_SECONDS = 1.0
BODY_SECONDS = 1.0
PROMPT = 5.0  # an authenticated call under attack answers within this (a loaded 2-core machine)
INITIALIZE = {
    "jsonrpc": "2.0", "id": 1, "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}},
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def limited(settings: Settings, **limits: Any) -> Settings:
    defaults = {"header_timeout": HEAD_SECONDS, "body_timeout": BODY_SECONDS, "idle_timeout": 1.0,
                "max_connections": 500, "request_timeout": 30.0}
    return dataclasses.replace(settings, **{**defaults, **limits})


def serve(settings: Settings, *, host: str = "127.0.0.1") -> Any:
    """The app as run_http builds it, with `host` as the bind address it was built for (the socket
    itself is always 127.0.0.1 here)."""
    app = build_http_app(build_server(settings), settings, host=host, port=8000, token=TOKEN)
    return serve_in_thread(app, **uvicorn_options(settings))


@pytest.fixture(scope="module")
def sandbox_settings(sandbox_server: Any) -> Settings:
    return settings_for(sandbox_server.base_url, new_consumer("sec-slow"))


@pytest.fixture(scope="module")
def port(sandbox_settings: Settings) -> Iterator[int]:
    with serve(limited(sandbox_settings)) as bound:
        yield bound


def raw(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def read_until_closed(sock: socket.socket, within: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and how long that took.
    Raises TimeoutError if it is still open after `within` seconds."""
    started = time.monotonic()
    data = b""
    sock.settimeout(within)
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data, time.monotonic() - started
        data += chunk
        sock.settimeout(max(0.01, within - (time.monotonic() - started)))


def head(method: str, *, token: str | None = TOKEN, extra: str = "") -> bytes:
    lines = [f"{method} /mcp HTTP/1.1", "Host: 127.0.0.1", "Accept: application/json, text/event-stream",
             "Content-Type: application/json"]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    return ("\r\n".join(lines) + "\r\n" + extra + "\r\n").encode()


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def authenticated_call(port: int) -> tuple[str, float]:
    """A real MCP client with the token lists users; returns its text and the time it took."""
    started = time.monotonic()
    texts: list[str] = []

    async def run() -> None:
        http = http_clients.async_client(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
        async with Client(streamable_http_client(f"http://127.0.0.1:{port}/mcp", http_client=http)) as client:
            page = await client.call_tool("list_users", {"limit": 2})
            assert not page.is_error, text_of(page)
            texts.append(text_of(page))

    anyio.run(run)
    return texts[0], time.monotonic() - started


# ----------------------------------------------------------------------------- streams


def test_get_on_the_endpoint_is_refused_not_an_endless_stream(port: int) -> None:
    with http_clients.sync_client(timeout=5) as http:
        answer = http.get(f"http://127.0.0.1:{port}/mcp",
                          headers={"Accept": "text/event-stream", "Authorization": f"Bearer {TOKEN}"})
        assert answer.status_code == 405, answer.text
        assert answer.headers["allow"] == "POST"
        assert "POST" in answer.json()["error"]["message"]
        # authentication comes first: without the token nothing is said about methods
        assert http.get(f"http://127.0.0.1:{port}/mcp", headers={"Accept": "text/event-stream"}).status_code == 401
        for method in ("DELETE", "PUT", "PATCH"):
            refused = http.request(method, f"http://127.0.0.1:{port}/mcp", headers={"Authorization": f"Bearer {TOKEN}"})
            assert refused.status_code == 405, method


def test_a_stream_flood_holds_nothing_open(port: int) -> None:
    flood = [raw(port) for _ in range(300)]
    try:
        for sock in flood:
            sock.sendall(head("GET", extra="Accept: text/event-stream\r\n"))
        for sock in flood:
            response, _ = read_until_closed(sock, within=10)  # answered and closed, not streamed
            assert status_of(response) == 405, response[:200]
            assert b"\r\nallow: post\r\n" in response.lower()
        text, took = authenticated_call(port)
        assert "usr_" in text and took < PROMPT, took
    finally:
        for sock in flood:
            sock.close()


# ----------------------------------------------------------------------------- slow and idle clients


def test_idle_and_partial_heads_are_closed_while_calls_are_served(port: int) -> None:
    idle = [raw(port) for _ in range(40)]
    partial = [raw(port) for _ in range(40)]
    try:
        for sock in partial:
            sock.sendall(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ")  # never finished
        text, took = authenticated_call(port)
        assert "usr_" in text and took < PROMPT, took
        for sock in idle + partial:
            sent, _ = read_until_closed(sock, within=HEAD_SECONDS + PROMPT)
            assert sent == b""  # closed without an answer: no request ever arrived
    finally:
        for sock in idle + partial:
            sock.close()


def test_a_header_sent_a_byte_at_a_time_is_cut_off(port: int) -> None:
    sock = raw(port)
    started = time.monotonic()
    try:
        with pytest.raises(OSError):  # BrokenPipe or ConnectionReset once the server closed it
            for byte in head("POST") * 50:
                sock.sendall(bytes([byte]))
                time.sleep(0.05)
                assert time.monotonic() - started < HEAD_SECONDS + PROMPT, "the server never closed it"
    finally:
        sock.close()


def test_an_oversized_request_head_gets_400_and_the_connection_closes(port: int) -> None:
    """A head that grows past MAX_HEAD_BYTES without ending is refused at once (not buffered until
    the head deadline), while a large body after a normal head is not counted as head."""
    sock = raw(port)
    try:
        sock.sendall(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        for number in range(MAX_HEAD_BYTES // 1000 + 2):  # one header line of ~1 KB at a time, never ending
            sock.sendall(f"X-Padding-{number}: {'p' * 1000}\r\n".encode())
        time.sleep(0.2)  # refused by now; what the client still sends must not reset the answer away
        sock.sendall(b"X-Late: " + b"p" * 8000 + b"\r\n")
        response, took = read_until_closed(sock, within=PROMPT)
        assert status_of(response) == 400 and b"Request head too large" in response, response[:200]
        assert took < HEAD_SECONDS, took  # refused on size, not by the head deadline
    finally:
        sock.close()
    body = json.dumps({**INITIALIZE, "padding": "p" * (4 * MAX_HEAD_BYTES)}).encode()
    sock = raw(port)
    try:  # the head and a body four times the head limit in one write: answered (the token is checked first)
        sock.sendall(head("POST", token=None, extra=f"Content-Length: {len(body)}\r\n") + body)
        response, _ = read_until_closed(sock, within=PROMPT)
        assert status_of(response) == 401, response[:200]
    finally:
        sock.close()


def test_pipelined_requests_with_large_bodies_are_not_taken_for_large_heads(port: int) -> None:
    """Only a request's head counts against MAX_HEAD_BYTES: two requests sent back to back, each
    with a body four times the limit, both get their answer (401: no token)."""
    body = json.dumps({**INITIALIZE, "padding": "p" * (4 * MAX_HEAD_BYTES)}).encode()
    one = head("POST", token=None, extra=f"Content-Length: {len(body)}\r\n") + body
    sock = raw(port)
    try:
        sock.sendall(one + one)
        response, _ = read_until_closed(sock, within=PROMPT)  # closed by the 1 s idle timeout
        assert response.count(b"HTTP/1.1 401") == 2, response[:300]
        assert b"Request head too large" not in response
    finally:
        sock.close()


def test_a_slow_body_gets_408_while_calls_are_served(port: int) -> None:
    body = json.dumps(INITIALIZE).encode()
    slow = [raw(port) for _ in range(20)]
    try:
        for number, sock in enumerate(slow):  # half send part of the body, half none of it
            sock.sendall(head("POST", extra=f"Content-Length: {len(body)}\r\n") + body[: 10 * (number % 2)])
        text, took = authenticated_call(port)
        assert "usr_" in text and took < PROMPT, took
        for sock in slow:  # the rest of the body never comes
            response, _ = read_until_closed(sock, within=BODY_SECONDS + PROMPT)
            assert status_of(response) == 408, response[:200]
            assert b"did not arrive within 1 seconds" in response
    finally:
        for sock in slow:
            sock.close()


def test_a_slow_body_without_the_token_is_refused_before_it_is_read(port: int) -> None:
    sock = raw(port)
    try:
        sock.sendall(head("POST", token=None, extra="Content-Length: 100000\r\n") + b'{"jsonrpc"')
        response, _ = read_until_closed(sock, within=HEAD_SECONDS + PROMPT)
        assert status_of(response) == 401, response[:200]
    finally:
        sock.close()


def test_the_connection_cap_holds_and_frees_up(sandbox_settings: Settings) -> None:
    with serve(limited(sandbox_settings, max_connections=10, header_timeout=1.5)) as capped:
        idle = [raw(capped) for _ in range(10)]
        try:
            time.sleep(0.2)
            with http_clients.sync_client(timeout=5) as http:
                url = f"http://127.0.0.1:{capped}/mcp"
                headers = {**MCP_HEADERS, "Authorization": f"Bearer {TOKEN}"}
                assert http.post(url, json=INITIALIZE, headers=headers).status_code == 503
                for sock in idle:  # the idle ones are closed at the head deadline...
                    read_until_closed(sock, within=1.5 + PROMPT)
                answer = http.post(url, json=INITIALIZE, headers=headers)  # ...and the server serves again
                assert answer.status_code == 200, answer.text
        finally:
            for sock in idle:
                sock.close()


# ----------------------------------------------------------------------------- request and upstream time bounds


def test_a_request_past_the_request_timeout_gets_504(sandbox_server: Any, sandbox_settings: Settings) -> None:
    sandbox_server.faults.slow(4.0, methods={"GET"}, path="/crm/users")
    try:
        with serve(limited(sandbox_settings, request_timeout=1.0)) as bounded:
            call = {"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                    "params": {"name": "list_users", "arguments": {"limit": 2}}}
            started = time.monotonic()
            with http_clients.sync_client(timeout=10) as http:
                answer = http.post(f"http://127.0.0.1:{bounded}/mcp", json=call,
                                   headers={**MCP_HEADERS, "Authorization": f"Bearer {TOKEN}"})
            took = time.monotonic() - started
    finally:
        sandbox_server.faults.clear()
    assert answer.status_code == 504, answer.text
    assert "no answer within 1 seconds" in answer.json()["error"]["message"]
    assert took < 3.0, took


def test_the_upstream_timeout_bounds_each_upstream_wait(sandbox_server: Any, sandbox_settings: Settings) -> None:
    settings = dataclasses.replace(sandbox_settings, upstream_timeout=0.5)
    sandbox_server.faults.slow(3.0, times=10, methods={"GET"}, path="/crm/users")
    try:
        async def run() -> Any:
            async with Client(build_server(settings)) as client:
                return await client.call_tool("list_users", {"limit": 2})

        started = time.monotonic()
        result = anyio.run(run)
        took = time.monotonic() - started
    finally:
        sandbox_server.faults.clear()
    assert result.is_error
    assert "timed out" in text_of(result)
    assert took < 3.0 * 4, took  # four attempts of 0.5 s and their backoff, never one 3 s wait each


# ----------------------------------------------------------------------------- health and Host


def test_health_answers_without_token_or_host_check(port: int) -> None:
    with http_clients.sync_client(timeout=5) as http:
        for host in ("10.1.2.3:8000", "10.1.2.3", "evil.example"):
            answer = http.get(f"http://127.0.0.1:{port}/health", headers={"Host": host})
            assert answer.status_code == 200
            assert answer.content == b'{"status":"ok"}'
            assert answer.headers["content-type"] == "application/json"
            assert "server" not in answer.headers  # nothing about what runs here


def test_an_all_addresses_bind_serves_the_machines_addresses(sandbox_settings: Settings) -> None:
    settings = limited(dataclasses.replace(sandbox_settings, allowed_hosts=("crm.example.com:443",)))
    with serve(settings, host="0.0.0.0") as bound, http_clients.sync_client(timeout=5) as http:
        url = f"http://127.0.0.1:{bound}/mcp"
        headers = {**MCP_HEADERS, "Authorization": f"Bearer {TOKEN}"}
        for host in ("192.168.1.10:8000", "10.0.0.7:8000", "[fe80::1]:8000", "127.0.0.1:8000", "crm.example.com:443"):
            answer = http.post(url, json=INITIALIZE, headers={**headers, "Host": host})
            assert answer.status_code == 200, (host, answer.text)
        for host in ("evil.example:8000", "192.168.1.10.nip.io:8000", "crm.example.com:8443"):
            answer = http.post(url, json=INITIALIZE, headers={**headers, "Host": host})
            assert answer.status_code == 421, (host, answer.text)
            assert "CRM_MCP_ALLOWED_HOSTS" in answer.json()["error"]["message"]
