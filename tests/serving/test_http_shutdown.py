"""SIGTERM in HTTP mode, on a real `crm-mcp serve --http` subprocess: the server stops taking new
connections at once and lets a call in flight finish (its upstream answer slowed by the test
sandbox's fault plan), then exits."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import http_clients
import httpx2
import pytest
from net_support import free_port
from security_support import new_consumer

pytestmark = pytest.mark.slow

UPSTREAM_DELAY = 3.0
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
CALL = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "list_users", "arguments": {"limit": 2}}}


def wait_healthy(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        try:
            if http_clients.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx2.TransportError:
            time.sleep(0.1)
    raise AssertionError("the server did not answer /health")


def test_sigterm_lets_a_call_in_flight_finish_and_takes_no_new_ones(sandbox_server: Any) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APIDECK_", "CRM_MCP_"))}
    env.update(APIDECK_API_KEY="shutdown-test-key", APIDECK_APP_ID="test-app",
               APIDECK_CONSUMER_ID=new_consumer("shutdown"), APIDECK_BASE_URL=sandbox_server.base_url)
    proc = subprocess.Popen([sys.executable, "-m", "crm_mcp", "serve", "--http", "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    answers: list[httpx2.Response] = []
    try:
        wait_healthy(url, proc)
        sandbox_server.faults.slow(UPSTREAM_DELAY, methods={"GET"}, path="/crm/users")
        seen = sandbox_server.faults.count(method="GET", path="/crm/users")

        def call() -> None:
            with http_clients.sync_client(timeout=30) as http:
                answers.append(http.post(f"{url}/mcp", content=json.dumps(CALL), headers=MCP_HEADERS))

        in_flight = threading.Thread(target=call)
        in_flight.start()
        deadline = time.monotonic() + 20
        while sandbox_server.faults.count(method="GET", path="/crm/users") == seen:  # upstream reached
            assert time.monotonic() < deadline, "the call never reached the sandbox"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        refused_after = None
        deadline = time.monotonic() + UPSTREAM_DELAY - 0.5
        while refused_after is None and time.monotonic() < deadline:
            try:
                http_clients.get(f"{url}/health", timeout=0.5)
                time.sleep(0.05)
            except httpx2.TransportError:  # connection refused: no new calls
                refused_after = time.monotonic()
        assert refused_after is not None, "the server still took new connections after SIGTERM"
        assert in_flight.is_alive()  # ...while the call in flight was still waiting for its answer
        in_flight.join(30)
        proc.wait(timeout=30)
    finally:
        sandbox_server.faults.clear()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert len(answers) == 1 and answers[0].status_code == 200, answers
    result = answers[0].json()["result"]
    assert result["isError"] is False
    assert "usr_" in result["content"][0]["text"]
    assert proc.returncode in (0, -signal.SIGTERM)
