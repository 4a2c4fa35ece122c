"""Scale-out: stateless streamable HTTP, so replicas behind a plain round-robin load balancer (no
session affinity) serve the same client. Two `crm-mcp serve --http` processes on two ports share
one CRM (the test sandbox, same consumer); one MCP client's HTTP requests alternate between them,
including a create on one replica followed by a get of the new id on the other. Both protocol modes."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import http_clients
import httpx2
import pytest
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_support import text_of
from net_support import free_port

from crm_mcp.sandbox.server import SandboxServer

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
START_TIMEOUT = 30.0
CALL_TIMEOUT = 30.0
_PROXIES = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}
CLEAN_ENV = {
    k: v for k, v in os.environ.items()
    if not k.startswith(("APIDECK_", "CRM_MCP_")) and k.lower() not in _PROXIES
}


def wait_for_port(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    import socket

    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"replica on {port} exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"replica on {port} did not listen within {START_TIMEOUT:.0f} s:\n{log.read_text()}")
        time.sleep(0.05)


@dataclass
class Replica:
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    def tool_lines(self) -> list[str]:
        return [line for line in self.log.read_text(errors="replace").splitlines() if " tool=" in line]


@contextmanager
def replica(port: int, env: dict[str, str], log: Path) -> Iterator[Replica]:
    command = [sys.executable, "-m", "crm_mcp", "serve", "--http", "--host", HOST, "--port", str(port),
               "--log-level", "info"]
    with log.open("wb") as out:
        proc = subprocess.Popen(command, env=env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    try:
        wait_for_port(port, proc, log)
        yield Replica(port, proc, log)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


@dataclass
class Cluster:
    replicas: list[Replica]
    consumer: str
    sandbox: SandboxServer

    @property
    def url(self) -> str:  # the address the client is given; the balancer picks the replica
        return f"http://{HOST}:{self.replicas[0].port}/mcp"


@pytest.fixture(scope="module")
def cluster(sandbox_server: SandboxServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    consumer = f"scale-out-{uuid.uuid4().hex[:8]}"
    env = {
        **CLEAN_ENV,
        "APIDECK_API_KEY": "scale-out-key",
        "APIDECK_APP_ID": "scale-out-app",
        "APIDECK_CONSUMER_ID": consumer,
        "APIDECK_BASE_URL": sandbox_server.base_url,
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
    }
    logs = tmp_path_factory.mktemp("replicas")
    with ExitStack() as stack:
        # started one after the other: each takes a free port right before binding it
        replicas = [stack.enter_context(replica(free_port(), env, logs / f"replica{i}.log")) for i in range(2)]
        yield Cluster(replicas, consumer, sandbox_server)


@dataclass
class Routed:
    method: str  # HTTP method
    rpc: str  # JSON-RPC method of a POST ("" otherwise)
    tool: str  # tool name of a tools/call
    port: int
    status: int


@dataclass
class RoundRobin(httpx2.AsyncBaseTransport):
    """A load balancer in a transport: each request goes to the next replica, Host header untouched
    (as a balancer forwards it). POSTs and other requests rotate separately, so that consecutive
    JSON-RPC calls always alternate whatever the client does in the background (GET streams)."""

    ports: list[int]
    inner: httpx2.AsyncHTTPTransport = field(default_factory=lambda: httpx2.AsyncHTTPTransport(trust_env=False))
    routed: list[Routed] = field(default_factory=list)
    _turns: dict[bool, int] = field(default_factory=lambda: {True: 0, False: 0})

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        post = request.method == "POST"
        port = self.ports[self._turns[post] % len(self.ports)]
        self._turns[post] += 1
        rpc = tool = ""
        if post:
            body = json.loads(await request.aread() or b"{}")
            if isinstance(body, dict):
                rpc = str(body.get("method", ""))
                tool = str((body.get("params") or {}).get("name", "")) if rpc == "tools/call" else ""
        request.url = request.url.copy_with(port=port)
        response = await self.inner.handle_async_request(request)
        self.routed.append(Routed(request.method, rpc, tool, port, response.status_code))
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


@asynccontextmanager
async def balanced_client(cluster: Cluster, mode: str) -> Any:
    balancer = RoundRobin([r.port for r in cluster.replicas])
    async with (
        http_clients.async_client(transport=balancer, timeout=CALL_TIMEOUT, trust_env=False) as http,
        Client(streamable_http_client(cluster.url, http_client=http), mode=mode) as client,  # type: ignore[arg-type]
    ):
        yield client, balancer


async def call(client: Any, tool: str, arguments: dict[str, Any]) -> Any:
    with anyio.fail_after(CALL_TIMEOUT):
        result = await client.call_tool(tool, arguments)
    assert not result.is_error, f"{tool}: {text_of(result)}"
    return result


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_one_client_alternating_between_two_replicas(cluster: Cluster, mode: str) -> None:
    a, b = (r.port for r in cluster.replicas)
    logged_before = [len(r.tool_lines()) for r in cluster.replicas]
    sandbox_before = cluster.sandbox.faults.count(consumer=cluster.consumer)
    async with balanced_client(cluster, mode) as (client, balancer):
        with anyio.fail_after(CALL_TIMEOUT):
            tools = (await client.list_tools()).tools
        assert len(tools) == 56  # 50 operations + 3 workflow tools + 3 journal tools
        # create / get-by-id / update / get pairs: each write lands on one replica and is read on the other
        # (period 3 over strict alternation, so both directions occur)
        notes: list[tuple[str, str]] = []
        for i in range(4):
            title = f"Scale-out {mode} note {i} {uuid.uuid4().hex[:6]}"
            made = await call(client, "create_note", {"title": title, "content": f"written in round {i}"})
            note_id = made.structured_content["id"]
            found = await call(client, "get_note", {"id": note_id})
            assert title in text_of(found)
            await call(client, "list_contacts", {"limit": 2, "filter": {"email": "jane.doe@acme.example"}})
            notes.append((note_id, title))
        company = await call(client, "create_company", {"name": f"Scale-out {mode} Ltd"})
        company_id = company.structured_content["id"]
        await call(client, "update_company", {"id": company_id, "industry": "Aerospace"})
        updated = await call(client, "get_company", {"id": company_id})
        assert "Aerospace" in text_of(updated)
        # every note is visible through both replicas
        for note_id, title in notes:
            for _ in range(2):
                assert title in text_of(await call(client, "get_note", {"id": note_id}))

    calls = [r for r in balancer.routed if r.rpc == "tools/call"]
    assert all(r.status in (200, 202) for r in balancer.routed if r.method == "POST"), balancer.routed
    assert all(r.status == 200 for r in balancer.routed if r.rpc in ("initialize", "tools/list", "tools/call"))
    assert {r.port for r in calls} == {a, b}
    # consecutive calls went to different replicas, in particular each create and the get that followed it
    assert all(x.port != y.port for x, y in itertools.pairwise(calls))
    pairs = [(x, y) for x, y in itertools.pairwise(calls) if x.tool == "create_note"]
    assert len(pairs) == 4 and all(y.tool == "get_note" and x.port != y.port for x, y in pairs)
    assert {x.port for x, _ in pairs} == {a, b}  # creates on both replicas, each read on the other
    # both replicas did the work (their own logs), against the one shared CRM consumer
    deadline = time.monotonic() + 5
    while True:
        served = [len(r.tool_lines()) - before for r, before in zip(cluster.replicas, logged_before, strict=True)]
        if sum(served) >= len(calls) or time.monotonic() > deadline:
            break
        await anyio.sleep(0.05)
    expected = [sum(1 for r in calls if r.port == rep.port) for rep in cluster.replicas]
    assert served == expected, (served, expected)
    assert all(n > 0 for n in served)
    assert cluster.sandbox.faults.count(consumer=cluster.consumer) - sandbox_before >= len(calls)
