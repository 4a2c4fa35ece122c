"""`crm-mcp serve --http --workers N`: N processes serving one listening socket.

The parent builds the server and the app once, binds the socket, then forks the workers; each runs
its own event loop, API client and connections, and the kernel spreads new connections over them.
Serving is stateless, so any worker can answer any request. What the workers share they inherit
from the fork: the tool list, and the key that seals delete confirmations (`crm_mcp.confirm`), so a
confirmation asked by one worker is accepted by another without CRM_MCP_REQUEST_STATE_KEY (set it
only when the replicas run on several machines or must survive a restart).

The parent only supervises: SIGTERM or SIGINT is passed to every worker (each finishes its calls
in flight, as a single process does); a worker that dies on its own is logged and replaced.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from typing import Any

log = logging.getLogger("crm_mcp.workers")

RESPAWN_PAUSE = 1.0  # seconds between replacing a worker and the next; a crash loop stays slow


def serve_forked(config: Any, workers: int) -> int:
    """Serve uvicorn's `config` from `workers` forked processes until SIGTERM/SIGINT; 0 when all
    stopped cleanly, else 1."""
    import uvicorn

    sock = config.bind_socket()
    stopping: list[int] = []

    def spawn() -> int:
        pid = os.fork()
        if pid == 0:  # the worker: default signal handling (uvicorn installs its own), serve, exit
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            code = 0
            try:
                uvicorn.Server(config).run(sockets=[sock])
            except BaseException:
                log.exception("worker %d failed", os.getpid())
                code = 1
            finally:
                os._exit(code)
        return pid

    def stop(signum: int, _frame: Any) -> None:
        stopping.append(signum)
        for pid in children:
            with contextlib.suppress(ProcessLookupError):  # it has just exited
                os.kill(pid, signum)

    children: set[int] = set()
    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        children.update(spawn() for _ in range(workers))
        failed = False
        while children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            if pid not in children:
                continue
            children.discard(pid)
            code = os.waitstatus_to_exitcode(status)
            if stopping:
                failed = failed or code not in (0, -signal.SIGTERM, -signal.SIGINT)
                continue
            log.warning("worker %d exited (%d); starting another", pid, code)
            time.sleep(RESPAWN_PAUSE)
            if not stopping:
                children.add(spawn())
        return 1 if failed else 0
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        sock.close()

