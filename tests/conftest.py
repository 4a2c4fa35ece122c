"""Shared fixtures: a running sandbox CRM and an HTTP client for it."""

from __future__ import annotations

import sys
from pathlib import Path

# This machine's environment sets PYTHONDONTWRITEBYTECODE: with no bytecode cache, every test run
# compiled the package and rewrote the assertions of every test module again, in each xdist
# worker (2-3 s of the inner loop each). The tests keep their bytecode under .pytest_cache
# (ignored by git), out of the tree; the servers they start as subprocesses are not affected.
if sys.dont_write_bytecode:
    sys.dont_write_bytecode = False
    sys.pycache_prefix = str(Path(__file__).resolve().parent.parent / ".pytest_cache" / "pycache")

import uuid
from collections.abc import Iterator

import http_clients
import httpx2
import pytest

from crm_mcp.sandbox.seed import BASE_TIME
from crm_mcp.sandbox.server import SandboxServer


@pytest.fixture(scope="session", autouse=True)
def journal_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The write journal (crm_mcp.journal) of every server a test starts, stdio subprocesses too,
    lives in a temporary data directory, never in the user's own."""
    import os

    old = os.environ.get("XDG_DATA_HOME")
    os.environ["XDG_DATA_HOME"] = str(tmp_path_factory.mktemp("data-home"))
    yield
    if old is None:
        os.environ.pop("XDG_DATA_HOME", None)
    else:
        os.environ["XDG_DATA_HOME"] = old


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    """Async tests (`@pytest.mark.anyio`) run on asyncio, as the server does."""
    return "asyncio"


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[SandboxServer]:
    """The sandbox CRM over real HTTP (in-memory database), shared by the session. Its clock is
    pinned (the seed's dates are those of `seed.BASE_TIME`), and every test seeds a consumer of its
    own, so the consumer cap is off."""
    with SandboxServer(db=":memory:", now=BASE_TIME, max_consumers=None) as server:
        yield server


@pytest.fixture
def sandbox_headers() -> dict[str, str]:
    """Valid Apideck headers for a fresh consumer, who starts with the full demo CRM."""
    return {
        "Authorization": "Bearer sandbox-test-key",
        "x-apideck-app-id": "test-app",
        "x-apideck-consumer-id": f"test-{uuid.uuid4().hex[:12]}",
    }


@pytest.fixture
def sandbox_client(sandbox_server: SandboxServer, sandbox_headers: dict[str, str]) -> Iterator[httpx2.Client]:
    """An httpx2 client for the sandbox with valid headers; every response it receives is
    checked against the contract (openapi-core), and the server's faults are cleared after."""
    from sandbox.contract import validating_hook

    sandbox_server.faults.clear()
    with http_clients.sync_client(
        base_url=sandbox_server.base_url,
        headers=sandbox_headers,
        event_hooks={"response": [validating_hook]},
    ) as client:
        yield client
    sandbox_server.faults.clear()
