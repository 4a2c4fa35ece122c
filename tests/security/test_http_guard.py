"""The streamable HTTP transport's guards, over real HTTP (uvicorn in a thread).

Loopback by default; a non-loopback bind without a token is refused; with a token, requests
without it or with a wrong one get 401 and with it succeed (raw requests and a real MCP client);
foreign Origin -> 403 and foreign Host -> 421 (the SDK's DNS-rebinding protection); a body over
MAX_BODY_BYTES -> 413; the token is compared with hmac.compare_digest."""

from __future__ import annotations

import hmac
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import anyio
import http_clients
import httpx2
import pytest
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_support import serve_in_thread, text_of
from security_support import new_consumer, settings_for

import crm_mcp.http as crm_http
from crm_mcp.config import ConfigError, settings_from_env
from crm_mcp.http import MAX_BODY_BYTES, BearerTokenGuard, build_http_app
from crm_mcp.server import build_server

TOKEN = "tok_9f2c41d0e7b84a55c03e6d1b27f8a94e"  # 36 characters: long enough for a public bind
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}},
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def layers(app: Any) -> list[type]:
    """The classes of an app's middleware chain, outermost first."""
    found: list[type] = []
    while app is not None and len(found) < 20:
        found.append(type(app))
        app = getattr(app, "app", None)
    return found


# ----------------------------------------------------------------------------- bind address


def test_serve_http_binds_loopback_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    from crm_mcp import cli

    for argv in (["--http"], ["serve", "--http"]):
        args = cli.build_parser().parse_args(argv)
        assert args.host == "127.0.0.1", argv
    # and `crm-mcp serve --http` really hands 127.0.0.1 to uvicorn
    import uvicorn

    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(kw, app=app))
    monkeypatch.setattr(cli, "configure_logging", lambda level: None)
    for name in ("APIDECK_API_KEY", "APIDECK_APP_ID", "APIDECK_CONSUMER_ID", "APIDECK_BASE_URL",
                 "APIDECK_SERVICE_ID", crm_http.TOKEN_ENV):
        monkeypatch.delenv(name, raising=False)
    assert cli.main(["serve", "--http"]) == 0
    assert seen["host"] == "127.0.0.1"
    assert BearerTokenGuard not in layers(seen["app"])  # loopback: no token needed


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "10.0.0.1", "8.8.8.8", "example.com",
                                  "127.0.0.1.nip.io", "localhost.evil.example", "", "[::]"])
@pytest.mark.parametrize("token", [None, ""])
def test_non_loopback_without_a_token_is_refused(sandbox_server: Any, host: str, token: str | None) -> None:
    settings = settings_for(sandbox_server.base_url, "x")
    with pytest.raises(ConfigError, match="token"):
        build_http_app(build_server(settings), settings, host=host, port=8000, token=token)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.2"])
def test_loopback_without_a_token_is_allowed(sandbox_server: Any, host: str) -> None:
    settings = settings_for(sandbox_server.base_url, "x")
    app = build_http_app(build_server(settings), settings, host=host, port=8000, token=None)
    assert BearerTokenGuard not in layers(app)


def test_non_loopback_with_a_token_is_guarded(sandbox_server: Any) -> None:
    settings = settings_for(sandbox_server.base_url, "x")
    app = build_http_app(build_server(settings), settings, host="0.0.0.0", port=8000, token=TOKEN)
    assert BearerTokenGuard in layers(app)


# ----------------------------------------------------------------------------- a guarded server


@pytest.fixture(scope="module")
def guarded(sandbox_server: Any) -> Iterator[str]:
    """The MCP server over streamable HTTP with a bearer token; yields its URL."""
    settings = settings_for(sandbox_server.base_url, new_consumer("sec-http"))
    app = build_http_app(build_server(settings), settings, host="127.0.0.1", port=0, token=TOKEN)
    with serve_in_thread(app) as port:
        yield f"http://127.0.0.1:{port}/mcp"


def post(url: str, *, body: Any = INITIALIZE, headers: dict[str, str] | None = None, **kw: Any) -> httpx2.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    with http_clients.sync_client(timeout=5) as http:
        return http.post(url, content=content, headers={**MCP_HEADERS, **(headers or {})}, **kw)


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer wrong", f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", f"Bearer  {TOKEN}",
     TOKEN, f"Basic {TOKEN}", f"Token {TOKEN}", f"Bearer {TOKEN.upper()}", f"Bearer {'x' * len(TOKEN)}"],
)
def test_requests_without_the_token_get_401(guarded: str, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    answer = post(guarded, headers=headers)
    assert answer.status_code == 401, answer.text
    assert answer.headers.get("www-authenticate") == "Bearer"
    assert TOKEN not in answer.text


def test_every_method_needs_the_token(guarded: str) -> None:
    with http_clients.sync_client(timeout=5) as http:
        for method in ("GET", "DELETE", "PUT", "OPTIONS"):
            assert http.request(method, guarded, headers=MCP_HEADERS).status_code == 401, method
        assert http.get(guarded.rsplit("/", 1)[0] + "/anything").status_code == 401


def test_requests_with_the_token_succeed(guarded: str) -> None:
    answer = post(guarded, headers=auth())
    assert answer.status_code == 200, answer.text
    assert answer.json()["result"]["serverInfo"]["name"] == "crm-mcp"


def _client(url: str, token: str | None, statuses: list[int] | None = None) -> Client:
    headers = auth(token) if token is not None else {}
    seen = statuses if statuses is not None else []

    async def record(response: httpx2.Response) -> None:
        seen.append(response.status_code)

    http = http_clients.async_client(headers=headers, timeout=10, event_hooks={"response": [record]})
    return Client(streamable_http_client(url, http_client=http))


def test_a_real_client_with_the_token_works(guarded: str) -> None:
    statuses: list[int] = []

    async def run() -> None:
        async with _client(guarded, TOKEN, statuses) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            assert {"list_users", "create_contact"} <= names
            page = await client.call_tool("list_users", {"limit": 2})
            assert not page.is_error, text_of(page)
            assert "usr_" in text_of(page)

    anyio.run(run)
    assert statuses and 401 not in statuses


@pytest.mark.parametrize("token", [None, "wrong-token", TOKEN[:-1]])
def test_a_real_client_without_the_right_token_is_turned_away(guarded: str, token: str | None) -> None:
    statuses: list[int] = []
    listed: list[Any] = []

    async def run() -> None:
        with anyio.fail_after(10):
            async with _client(guarded, token, statuses) as client:
                listed.append(await client.list_tools())

    with pytest.raises(Exception):  # noqa: B017 - the SDK's error (an MCPError in a group) says little
        anyio.run(run)
    assert listed == []
    assert statuses and set(statuses) == {401}, statuses


# ----------------------------------------------------------------------------- Origin and Host


@pytest.mark.parametrize("origin", ["http://evil.example", "https://attacker.test:8443", "null",
                                    "http://127.0.0.1.evil.example", "http://localhost.evil.example:80"])
def test_a_foreign_origin_is_refused(guarded: str, origin: str) -> None:
    answer = post(guarded, headers={**auth(), "Origin": origin})
    assert answer.status_code == 403, answer.text


def test_a_local_origin_is_accepted(guarded: str) -> None:
    port = httpx2.URL(guarded).port
    for origin in (f"http://127.0.0.1:{port}", f"http://localhost:{port}"):
        answer = post(guarded, headers={**auth(), "Origin": origin})
        assert answer.status_code == 200, (origin, answer.text)


@pytest.mark.parametrize("host", ["evil.example", "evil.example:80", "127.0.0.1.evil.example", "attacker.test:1234"])
def test_a_foreign_host_is_refused(guarded: str, host: str) -> None:
    answer = post(guarded, headers={**auth(), "Host": host})
    assert answer.status_code in (421, 403), answer.text  # the SDK answers 421 Misdirected Request today


def test_a_foreign_host_without_the_token_is_still_401(guarded: str) -> None:
    assert post(guarded, headers={"Host": "evil.example"}).status_code == 401


# ----------------------------------------------------------------------------- body size


def _padded(size: int) -> bytes:
    """A JSON-RPC tools/list request of exactly `size` bytes."""
    shell = json.dumps({"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {"_meta": {"pad": ""}}})
    pad = size - len(shell.encode())
    assert pad >= 0
    return shell.replace('"pad": ""', '"pad": "' + "p" * pad + '"').encode()


def test_a_body_over_the_limit_is_refused(guarded: str) -> None:
    answer = post(guarded, body=_padded(MAX_BODY_BYTES + 1), headers=auth())
    assert answer.status_code == 413, answer.text[:200]
    answer = post(guarded, body=_padded(8 * MAX_BODY_BYTES), headers=auth())
    assert answer.status_code == 413


def test_a_streamed_body_over_the_limit_is_refused(guarded: str) -> None:
    """No Content-Length (chunked): the limit holds on the bytes actually read."""
    data = _padded(2 * MAX_BODY_BYTES)

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(data), 65536):
            yield data[start : start + 65536]

    with http_clients.sync_client(timeout=5) as http:
        answer = http.post(guarded, content=chunks(), headers={**MCP_HEADERS, **auth()})
    assert "content-length" not in {k.lower() for k in answer.request.headers}
    assert answer.status_code == 413, answer.text[:200]


def test_a_body_within_the_limit_is_served(guarded: str) -> None:
    initialize = post(guarded, headers=auth())
    assert initialize.status_code == 200
    answer = post(guarded, body=_padded(MAX_BODY_BYTES - 1024), headers=auth())
    assert answer.status_code != 413, answer.text[:200]


# ----------------------------------------------------------------------------- constant-time comparison


def test_the_guard_compares_the_token_with_hmac_compare_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(crm_http.hmac, "compare_digest", spy)
    reached: list[str] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        reached.append(scope["path"])
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    guard = BearerTokenGuard(inner, TOKEN)

    async def request(headers: list[tuple[bytes, bytes]]) -> int:
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {"type": "http", "method": "POST", "path": "/mcp", "headers": headers}
        await guard(scope, receive, send)
        return next(m["status"] for m in sent if m["type"] == "http.response.start")

    async def run() -> None:
        assert await request([]) == 401
        assert await request([(b"authorization", b"Bearer nope")]) == 401
        assert await request([(b"authorization", b"Bearer " + TOKEN.encode() + b"!")]) == 401
        assert reached == []
        assert await request([(b"authorization", f"Bearer {TOKEN}".encode())]) == 204
        assert reached == ["/mcp"]

    anyio.run(run)
    # every request, even one with no header or a wrong length, went through compare_digest
    assert len(compared) == 4
    assert all(expected == f"Bearer {TOKEN}".encode() for _, expected in compared)
    assert [given for given, _ in compared] == [
        b"", b"Bearer nope", b"Bearer " + TOKEN.encode() + b"!", f"Bearer {TOKEN}".encode()
    ]


# ----------------------------------------------------------------------------- configuration that cannot trap the user


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("APIDECK_", "CRM_MCP_"))}
    return subprocess.run([sys.executable, "-m", "crm_mcp", *args], env={**clean, **env},
                          capture_output=True, text=True, timeout=60)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("token", "rule"),
    [("short-token-of-31-characters-xx", "at least 32 characters"),
     (f" {TOKEN}", "leading or trailing whitespace"),
     (f"{TOKEN}\n", "leading or trailing whitespace")],
)
def test_a_weak_token_stops_a_public_bind_at_start_up(token: str, rule: str) -> None:
    done = run_cli("serve", "--http", "--host", "0.0.0.0", "--port", "0", env={crm_http.TOKEN_ENV: token})
    assert done.returncode == 2, done.stderr
    assert "crm-mcp: configuration error: CRM_MCP_HTTP_TOKEN" in done.stderr
    assert rule in done.stderr
    assert token.strip() not in done.stderr  # the message never repeats the token


@pytest.mark.parametrize("token", ["x" * 31, "\t" + "x" * 40, "x" * 40 + " ", "   "])
def test_weak_tokens_are_configuration_errors(sandbox_server: Any, token: str) -> None:
    settings = settings_for(sandbox_server.base_url, "x")
    with pytest.raises(ConfigError, match=r"at least 32 characters|whitespace"):
        build_http_app(build_server(settings), settings, host="0.0.0.0", port=8000, token=token)


def test_a_token_with_whitespace_is_refused_on_loopback_too(sandbox_server: Any) -> None:
    """No client can send it (HTTP strips header values), so every request would get 401."""
    settings = settings_for(sandbox_server.base_url, "x")
    with pytest.raises(ConfigError, match="whitespace"):
        build_http_app(build_server(settings), settings, host="127.0.0.1", port=8000, token=TOKEN + " ")
    app = build_http_app(build_server(settings), settings, host="127.0.0.1", port=8000, token="short")
    assert BearerTokenGuard in layers(app)  # a short token is the user's choice on loopback


@pytest.mark.parametrize(
    ("variable", "value"),
    [("CRM_MCP_REQUEST_TIMEOUT", "soon"), ("CRM_MCP_REQUEST_TIMEOUT", "0"), ("CRM_MCP_UPSTREAM_TIMEOUT", "nan"),
     ("CRM_MCP_HTTP_HEADER_TIMEOUT", "-1"), ("CRM_MCP_HTTP_BODY_TIMEOUT", "inf"),
     ("CRM_MCP_HTTP_MAX_CONNECTIONS", "0"), ("CRM_MCP_HTTP_IDLE_TIMEOUT", "1e9")],
)
def test_http_limits_out_of_range_are_configuration_errors(variable: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"^{variable} must be a number from "):
        settings_from_env({variable: value})


def test_http_limits_are_read_from_the_environment() -> None:
    settings = settings_from_env({
        "CRM_MCP_REQUEST_TIMEOUT": "45", "CRM_MCP_UPSTREAM_TIMEOUT": "7.5", "CRM_MCP_HTTP_HEADER_TIMEOUT": "3",
        "CRM_MCP_HTTP_BODY_TIMEOUT": "12", "CRM_MCP_HTTP_IDLE_TIMEOUT": "4", "CRM_MCP_HTTP_MAX_CONNECTIONS": "250",
        "CRM_MCP_ALLOWED_HOSTS": "crm.example.com:443, crm.internal:8000", crm_http.TOKEN_ENV: f" {TOKEN}",
    })
    assert (settings.request_timeout, settings.upstream_timeout, settings.header_timeout, settings.body_timeout,
            settings.idle_timeout, settings.max_connections) == (45.0, 7.5, 3.0, 12.0, 4.0, 250)
    assert settings.allowed_hosts == ("crm.example.com:443", "crm.internal:8000")
    assert settings.http_token == f" {TOKEN}"  # as given, so that the whitespace rule can see it
    assert TOKEN not in repr(settings)
    defaults = settings_from_env({})
    assert (defaults.request_timeout, defaults.upstream_timeout, defaults.max_connections) == (120.0, 30.0, 1000)
