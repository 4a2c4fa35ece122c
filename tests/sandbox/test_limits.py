"""The sandbox's limits: seeded consumers, request body size, who can read its database file,
and which addresses `crm-mcp sandbox` serves on."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import http_clients
import httpx2
import pytest

from crm_mcp.cli import main
from crm_mcp.sandbox.app import DEFAULT_MAX_BODY_BYTES
from crm_mcp.sandbox.server import SandboxServer
from crm_mcp.sandbox.store import DEFAULT_MAX_CONSUMERS

from .contract import checked, validating_hook

HEADERS = {"Authorization": "Bearer k", "x-apideck-app-id": "app"}


def consumer(server: SandboxServer, name: str) -> httpx2.Client:
    headers = {**HEADERS, "x-apideck-consumer-id": name}
    return http_clients.sync_client(base_url=server.base_url, headers=headers,
                                    event_hooks={"response": [validating_hook]})


def test_only_so_many_consumers_get_a_seeded_copy() -> None:
    assert SandboxServer(db=":memory:").max_consumers == DEFAULT_MAX_CONSUMERS == 25
    with SandboxServer(db=":memory:", max_consumers=2) as server:
        for name in ("first", "second"):
            with consumer(server, name) as client:
                assert checked(client.get("/crm/companies/com_001"))["data"]["name"] == "Acme Corporation"
        with consumer(server, "third") as client:
            response = client.get("/crm/companies/com_001")
            assert response.status_code == 402
            assert checked(response) == {
                "status_code": 402,
                "error": "Payment Required",
                "type_name": "RequestLimitError",
                "message": "Consumer limit reached: this sandbox gives at most 2 consumers their own copy of the "
                "demo CRM; use the x-apideck-consumer-id of an existing consumer",
                "detail": "You have reached your limit of 2 consumers",
                "ref": "https://developers.apideck.com/errors#requestlimiterror",
            }
            assert client.post("/crm/notes", json={"title": "x"}).status_code == 402  # writes too
        with consumer(server, "first") as client:  # the seeded ones keep working
            assert client.get("/crm/contacts/con_0001").status_code == 200
        assert server.store is not None and server.store.count("third", "companies") == 0


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(db=":memory:") as server:
        yield server


def test_a_body_over_the_limit_is_a_413(sandbox: SandboxServer) -> None:
    assert DEFAULT_MAX_BODY_BYTES == 1024 * 1024
    padding = "x" * (DEFAULT_MAX_BODY_BYTES - 100)
    with consumer(sandbox, "bodies") as client:
        assert client.post("/crm/notes", json={"title": "fits", "content": padding[:-200]}).status_code == 201
        too_big = {"title": "too big", "content": padding + "x" * 200}

        def chunks() -> Iterator[bytes]:  # no Content-Length: the sandbox counts as it reads
            yield b'{"title": "streamed", "content": "'
            for _ in range(20):
                yield b"x" * 65536
            yield b'"}'

        for response in (
            client.post("/crm/notes", json=too_big),
            client.patch("/crm/notes/not_001", json=too_big),
            http_clients.post(  # (the contract hook cannot read a streamed request)
                f"{sandbox.base_url}/crm/notes",
                content=chunks(),
                headers={**client.headers, "content-type": "application/json"},
            ),
        ):
            assert response.status_code == 413
            body = response.json()
            assert body["type_name"] == "RequestTooLargeError" and body["status_code"] == 413
            limit = DEFAULT_MAX_BODY_BYTES
            assert body["message"] == f"Request body too large: the sandbox accepts at most {limit} bytes"
        titles = {n["title"] for n in checked(client.get("/crm/notes", params={"limit": 200}))["data"]}
        assert "fits" in titles and not titles & {"too big", "streamed"}


def test_the_database_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    db = tmp_path / "private" / "sandbox.db"
    with SandboxServer(db=db) as server, consumer(server, "owner") as client:
        assert client.post("/crm/notes", json={"title": "secret"}).status_code == 201
        files = [db, *db.parent.glob("sandbox.db-*")]  # the -wal and -shm files too
        assert len(files) >= 2
        for path in files:
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(db.parent.stat().st_mode) == 0o700


def test_the_sandbox_command_refuses_a_non_loopback_host(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sandbox", "--host", "0.0.0.0", "--db", ":memory:"]) == 2
    error = capsys.readouterr().err
    assert "refusing to serve on 0.0.0.0, which is not a loopback address" in error
    assert "--allow-remote" in error


@pytest.mark.slow  # a subprocess that binds every address
def test_allow_remote_serves_on_every_address(tmp_path: Path) -> None:
    with SandboxServer(db=":memory:") as probe:  # a free port
        port = probe.port
    command = ["sandbox", "--host", "0.0.0.0", "--port", str(port), "--allow-remote", "--db", str(tmp_path / "r.db")]
    proc = subprocess.Popen(
        [sys.executable, "-m", "crm_mcp", *command],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stderr is not None and f"http://0.0.0.0:{port}" in proc.stderr.readline()
        deadline = time.monotonic() + 10
        while True:
            try:
                response = http_clients.get(
                    f"http://127.0.0.1:{port}/crm/leads/lea_001", headers={**HEADERS, "x-apideck-consumer-id": "r"}
                )
                break
            except httpx2.ConnectError:
                assert time.monotonic() < deadline, "the sandbox did not start listening"
                time.sleep(0.05)
        assert checked(response)["data"]["name"] == "Tom Baker"
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
