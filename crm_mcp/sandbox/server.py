"""Running the sandbox: `run_sandbox` for `crm-mcp sandbox`, `SandboxServer` for tests and for
embedding in the MCP server.

    with SandboxServer(db=":memory:") as sandbox:
        httpx2.get(f"{sandbox.base_url}/crm/contacts", headers=...)
        sandbox.faults.fail(503)

    async with SandboxServer() as sandbox:   # the default database in the user data directory
        ...
"""

from __future__ import annotations

import socket
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn
from anyio import to_thread
from starlette.applications import Starlette

from crm_mcp.sandbox.app import create_app
from crm_mcp.sandbox.faults import FaultPlan, quiet_dropped_connections
from crm_mcp.sandbox.store import DEFAULT_MAX_CONSUMERS, Store

__all__ = ["SandboxServer", "default_db_path", "run_sandbox"]


def default_db_path() -> Path:
    """`sandbox.db` in the user's data directory (created on first use)."""
    from platformdirs import user_data_dir

    return Path(user_data_dir("crm-mcp")) / "sandbox.db"


def _resolve_db(db: str | Path | None) -> str:
    return str(default_db_path() if db is None else db)


def _config(app: Starlette, **kwargs: Any) -> uvicorn.Config:
    return uvicorn.Config(
        app, lifespan="off", log_level="warning", access_log=False, timeout_graceful_shutdown=2, **kwargs
    )


class SandboxServer:
    """The sandbox app under uvicorn on 127.0.0.1, on a free port, in a background thread.

    `base_url` (e.g. "http://127.0.0.1:53121"), `app`, `faults` and `store` are available once
    started. `db=None` means the default database file; tests pass ":memory:" or a tmp file.
    `now` pins the time the seed's dates are relative to (None: the clock when each consumer is
    seeded; tests pin it, e.g. to `seed.BASE_TIME`); `max_consumers` caps the seeded consumers
    (None: no cap).
    """

    def __init__(
        self,
        *,
        db: str | Path | None = None,
        api_key: str | None = None,
        seed: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
        now: datetime | None = None,
        max_consumers: int | None = DEFAULT_MAX_CONSUMERS,
    ) -> None:
        self.db = _resolve_db(db)
        self.api_key = api_key
        self.seed = seed
        self.now = now
        self.max_consumers = max_consumers
        self.host = host
        self.port = port
        self.faults = FaultPlan()
        self.app: Starlette | None = None
        self.store: Store | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @classmethod
    def embedded(cls, db: str | Path | None = None) -> SandboxServer:
        """The sandbox the MCP server embeds when no credentials are configured: the default
        database in the user data directory (seeded on first use), any API key accepted."""
        return cls(db=db)

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the sandbox server is not running")
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> SandboxServer:
        if self._server is not None:
            return self
        quiet_dropped_connections()
        self.store = Store(self.db, seed=self.seed, now=self.now, max_consumers=self.max_consumers)
        self.app = create_app(api_key=self.api_key, faults=self.faults, store=self.store)
        # proto=IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on sockets that say they are TCP
        # (without it every response waits ~40 ms for a delayed ACK)
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        server = uvicorn.Server(_config(self.app))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="crm-sandbox", daemon=True)
        thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                server.should_exit = True
                sock.close()
                self.store.close()
                raise RuntimeError("the sandbox server did not start")
            time.sleep(0.005)
        self._server, self._thread, self._socket = server, thread, sock
        return self

    def stop(self, timeout: float = 10.0) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.should_exit = True
        thread.join(timeout)
        if self._socket is not None:
            self._socket.close()
        if self.store is not None:
            self.store.close()
        self._server, self._thread, self._socket = None, None, None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def __aenter__(self) -> SandboxServer:
        return await to_thread.run_sync(self.start)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await to_thread.run_sync(self.stop)


def run_sandbox(
    host: str = "127.0.0.1", port: int = 4010, db: str | Path | None = None, *, allow_remote: bool = False
) -> int:
    """Serve the sandbox until interrupted (`crm-mcp sandbox`). It accepts any API key, so it
    binds a non-loopback address only when `allow_remote` says so (exit code 2 otherwise)."""
    from crm_mcp.http import is_loopback

    if not (is_loopback(host) or allow_remote):
        print(
            f"crm-mcp sandbox: refusing to serve on {host}, which is not a loopback address: the sandbox accepts "
            "any API key, so anyone who can reach it can read and change its data. Use --host 127.0.0.1, or "
            "add --allow-remote to serve it on this address anyway.",
            file=sys.stderr,
        )
        return 2
    path = _resolve_db(db)
    quiet_dropped_connections()
    store = Store(path)
    app = create_app(store=store)
    print(f"crm-mcp sandbox: serving the Apideck CRM API at http://{host}:{port} (database: {path})", file=sys.stderr)
    try:
        uvicorn.Server(_config(app, host=host, port=port)).run()
    except KeyboardInterrupt:
        pass
    finally:
        store.close()
    return 0
