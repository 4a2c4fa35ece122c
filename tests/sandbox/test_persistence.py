"""A file database survives a restart; `crm-mcp sandbox` starts, says where, and serves."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import http_clients
import httpx2
import pytest
from net_support import free_port

from crm_mcp.sandbox.server import SandboxServer, default_db_path

from .contract import check_response, validating_hook

HEADERS = {"Authorization": "Bearer k", "x-apideck-app-id": "app", "x-apideck-consumer-id": "persistent"}
HOOKS = {"response": [validating_hook]}  # every response is checked against the contract


def client_for(server: SandboxServer) -> httpx2.Client:
    return http_clients.sync_client(base_url=server.base_url, headers=HEADERS, event_hooks=HOOKS)


@pytest.mark.slow  # a real server or subprocess, seconds of set-up: with the slow tests
def test_acknowledged_writes_survive_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "nested" / "sandbox.db"
    with SandboxServer(db=db) as server, client_for(server) as client:
        created = client.post("/crm/contacts", json={"first_name": "Persisted", "emails": [{"email": "p@x.example"}]})
        assert created.status_code == 201
        new_id = created.json()["data"]["id"]
        patch = {"name": "Acme Corporation", "description": "changed"}
        assert client.patch("/crm/companies/com_001", json=patch).status_code == 200
        assert client.delete("/crm/contacts/con_0005").status_code == 200
        schema = client.post("/crm/custom-object-schemas", json={"name": "ticket"}).json()["data"]["id"]
        obj = client.post(f"/crm/custom-objects/{schema}", json={"name": "T-1"}).json()["data"]["id"]
    assert db.exists()
    with SandboxServer(db=db) as server, client_for(server) as client:
        assert client.get(f"/crm/contacts/{new_id}").json()["data"]["first_name"] == "Persisted"
        assert client.get("/crm/companies/com_001").json()["data"]["description"] == "changed"
        assert client.get("/crm/contacts/con_0005").status_code == 404  # not re-seeded
        assert client.get(f"/crm/custom-objects/{schema}/{obj}").json()["data"]["name"] == "T-1"
        newest: dict[str, Any] = {"limit": 2, "sort[direction]": "desc"}  # insertion order, newest first
        assert client.get("/crm/contacts", params=newest).json()["data"][0]["id"] == new_id
        later = client.post("/crm/contacts", json={"first_name": "Later"}).json()["data"]["id"]
        assert [r["id"] for r in client.get("/crm/contacts", params=newest).json()["data"]] == [later, new_id]


@pytest.mark.anyio
async def test_async_context_manager() -> None:
    async with (
        SandboxServer(db=":memory:") as server,
        http_clients.async_client(base_url=server.base_url, headers=HEADERS) as client,
    ):
        assert (await client.get("/crm/pipelines")).status_code == 200
    with pytest.raises(RuntimeError):
        server.base_url  # noqa: B018


def test_default_database_is_in_the_user_data_directory() -> None:
    path = default_db_path()
    assert path.name == "sandbox.db" and "crm-mcp" in str(path)
    assert SandboxServer.embedded().db == str(path)


@pytest.mark.slow
def test_run_sandbox_from_the_command_line(tmp_path: Path) -> None:
    port = free_port()
    db = tmp_path / "cli.db"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "crm_mcp", "sandbox", "--port", str(port), "--db", str(db)],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert f"http://127.0.0.1:{port}" in line and str(db) in line
        deadline = time.monotonic() + 10
        while True:
            try:
                response = http_clients.get(f"http://127.0.0.1:{port}/crm/leads/lea_001", headers=HEADERS)
                break
            except httpx2.ConnectError:
                assert time.monotonic() < deadline, "the sandbox did not start listening"
                time.sleep(0.05)
        check_response(response)
        assert response.json()["data"]["name"] == "Tom Baker"
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    assert db.exists()
