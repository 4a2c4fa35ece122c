"""`crm-mcp serve --http --workers 2` on a real subprocess: two worker processes serve MCP sessions
against the sandbox, a worker that dies is replaced while the other keeps serving, and SIGTERM
stops them all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import http_clients
import httpx2
import pytest
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from net_support import free_port
from security_support import new_consumer

pytestmark = pytest.mark.slow


def workers_of(pid: int) -> set[int]:
    return {int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


def wait_for_workers(proc: subprocess.Popen[bytes], url: str, count: int,
                     other_than: frozenset[int] = frozenset()) -> set[int]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        workers = workers_of(proc.pid) - other_than
        try:
            healthy = http_clients.get(f"{url}/health", timeout=1).status_code == 200
        except httpx2.TransportError:
            healthy = False
        if healthy and len(workers) >= count:
            return workers
        time.sleep(0.1)
    raise AssertionError(f"{count} workers did not come up")


async def sessions(url: str, count: int) -> list[str]:
    """`count` MCP sessions at once, each on its own connection: get_contact con_0001, list_companies."""
    texts: list[str] = []

    async def one() -> None:
        async with (http_clients.async_client(timeout=30, trust_env=False) as http,
                    Client(streamable_http_client(f"{url}/mcp", http_client=http)) as client):
            for name, args in (("get_contact", {"id": "con_0001"}), ("list_companies", {"limit": 2})):
                result: Any = await client.call_tool(name, args)
                assert not result.is_error, result.content
                texts.append(result.content[0].text)

    async with anyio.create_task_group() as tg:
        for _ in range(count):
            tg.start_soon(one)
    return texts


def test_two_workers_serve_replace_a_dead_one_and_stop_on_sigterm(sandbox_server: Any) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APIDECK_", "CRM_MCP_"))}
    env.update(APIDECK_API_KEY="workers-test-key", APIDECK_APP_ID="test-app",
               APIDECK_CONSUMER_ID=new_consumer("workers"), APIDECK_BASE_URL=sandbox_server.base_url)
    proc = subprocess.Popen([sys.executable, "-m", "crm_mcp", "serve", "--http", "--port", str(port), "--workers", "2"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        workers = wait_for_workers(proc, url, 2)
        assert len(workers) == 2
        texts = anyio.run(sessions, url, 8)
        assert len(texts) == 16
        assert sum("Jane Doe" in t for t in texts) == 8  # the seed's con_0001
        companies = [t for t in texts if "Jane Doe" not in t]
        assert len(companies) == 8 and all("com_001 | Acme Corporation" in t for t in companies)

        dead = sorted(workers)[0]
        os.kill(dead, signal.SIGKILL)
        replaced = wait_for_workers(proc, url, 2, other_than=frozenset({dead}))
        assert dead not in replaced and len(replaced) == 2
        assert sum("Jane Doe" in t for t in anyio.run(sessions, url, 4)) == 4

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        for pid in replaced:
            assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        stderr = proc.stderr.read().decode() if proc.stderr else ""
    assert "2 worker processes" in stderr
    assert "exited (-9); starting another" in stderr


def test_workers_need_http() -> None:
    done = subprocess.run([sys.executable, "-m", "crm_mcp", "serve", "--workers", "2"], capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 2
    assert "more than 1 only with --http" in done.stderr
