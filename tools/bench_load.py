"""Load benchmark of the MCP server over streamable HTTP: concurrent clients, then a memory soak.

    python tools/bench_load.py [--clients 50] [--calls 40] [--soak 5000] [--mode auto|legacy] [--workers 1,2] [--floor]

Set-up. The sandbox CRM (in-memory database) runs as a subprocess (`python -m crm_mcp sandbox`), or
in this process with `--sandbox-inprocess`; the MCP server runs as a subprocess
(`python -m crm_mcp serve --http --port <free>`) pointed at it through the APIDECK_* variables (one
shared consumer). Everything listens on 127.0.0.1 only, on free ports.

1. Load. `--clients` MCP clients (each its own HTTP connection pool) connect, wait until all are
   connected, then each makes `--calls` tool calls back to back, all clients at once. The clients
   are the load generator's own (`--driver raw`, the default): tools/call in the protocol's
   stateless era (2026-07-28) over one keep-alive aiohttp connection each, the answer parsed and
   checked, nothing more. The SDK's client (`--driver sdk`) spends about as much CPU per call as the
   server itself; on 2 cores, 20 of them leave the server part of a core, and calls per second then
   measure the clients. The mix, by call index modulo 10: 50% list (contacts, companies,
   opportunities by company), 30% get (seed contact/company, and the note this client created
   last), 20% create (a note). Every call must
   succeed (no exception, no `isError`, a create returns an id): errors are counted and the first
   few printed. Printed: calls, errors, p50/p90/p99/max latency, throughput, and the server's
   RSS and peak RSS (VmRSS / VmHWM from /proc/<pid>/status).
2. Soak. `--soak` more calls (same mix) from `--soak-clients` workers (the SDK's clients), each
   reconnecting with a fresh MCP session every `--session-calls` calls (so session set-up and tear-down are soaked
   too). The server's VmRSS is sampled every `--sample-every` calls (default: soak/50). Printed:
   first/last/max RSS, the least-squares slope after warm-up (KiB per 1,000 calls, over the 2nd to
   4th quarters of the samples) and the verdict: "flat" means the mean RSS of the last quarter of
   samples is within 10% of the mean of the second quarter (the first quarter is warm-up).

3. Workers and CPU. `--workers 1,2` (the default) runs the load phase once per worker count
   (`crm-mcp serve --http --workers N`; the soak runs with the first count only) and ends with a
   table: calls per second, and CPU per call of the server (all its processes) and of the sandbox,
   with their ratio. On a shared machine CPU per call is the honest measure, not calls per second.

4. Floors. `--floor` runs the load phase twice more, against the MCP SDK alone (`tools/sdk_floor.py`):
   - answering every call at once with a fixed page (the SDK's stateless HTTP app, no tool code, no
     upstream): its row in the CPU table is the server CPU per call that no code of ours can remove;
   - relaying every call as its tool's one API request, then answering with the same fixed page
     (`--upstream`: no validation, rendering, log line or journal): the least any tool server on this
     SDK pays to stand between the client and the API, against the same sandbox work.

Before/after. `--against DIR --pairs N` does the comparison itself: N load phases of this checkout
alternating with N of the checkout DIR (one worker, no soak; the same sandbox code and clients),
then a table per pair (calls/s, server CPU per call, server/sandbox) and the median of the pairs'
ratios. On a machine whose speed drifts, the ratio within a pair is the figure to read:

    python tools/bench_load.py --clients 20 --calls 150 --against /work/wt/baseline --pairs 8

`--code DIR --server-python PY` runs the MCP server from another checkout and virtualenv (the
sandbox and the clients stay the same), e.g. alternately by hand:

    python tools/bench_load.py --clients 20 --calls 50 --soak 0 --workers 1 \
        --code /work/wt/baseline --server-python /work/main/.venv/bin/python
    python tools/bench_load.py --clients 20 --calls 50 --soak 0 --workers 1

Profile. `--profile-server FILE` runs the server under pyinstrument (`pip install pyinstrument`;
wall-clock samples in the server's own process, about double its CPU) and writes the call tree:

    python tools/bench_load.py --clients 20 --calls 50 --soak 0 --workers 1 --profile-server /tmp/http.txt

With a `.prof` file, cProfile instead, timed by the CPU clock of the event loop's thread (deterministic,
with call counts, though an async function counts a call per resumption; read with `python -m pstats FILE`).
py-spy samples the CPU of the running server without touching it (`py-spy record -p <pid> -f raw`).
Over stdio, the same profiler wraps the server a client starts:
`python -m pyinstrument -r text -o /tmp/stdio.txt -m crm_mcp` as the client's command.

Exit status 0 when there were no errors and the memory stayed flat, 1 otherwise. Every call has a
timeout (`--call-timeout`), every phase a deadline; the child processes are stopped on exit.
`run_benchmark(...)` is the core, used by tests/integration/test_load.py at a reduced size.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

import anyio  # noqa: E402
import httpx2  # noqa: E402
from mcp.client import Client  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402

HOST = "127.0.0.1"
API_KEY = "bench-load-key"
APP_ID = "bench-load-app"
CONSUMER_ID = "bench-load-consumer"
FLAT_TOLERANCE = 0.10
MAX_ERRORS_SHOWN = 5
START_TIMEOUT = 30.0
Floor = Literal["sdk", "relay"] | None  # the SDK alone answering at once, or relaying (tools/sdk_floor.py)

# the environment of the child processes: no APIDECK_* of our own shell, no proxies (127.0.0.1 only)
_DROP = ("APIDECK_", "CRM_MCP_")
_PROXIES = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}
CLEAN_ENV = {
    k: v for k, v in os.environ.items() if not k.startswith(_DROP) and k.lower() not in _PROXIES
}


# ----------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[Any] | None, timeout: float = START_TIMEOUT) -> None:
    """Until something accepts on 127.0.0.1:port; fails if `proc` exits or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process {proc.args!r} exited with {proc.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.5):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"nothing listening on {HOST}:{port} after {timeout:.0f} s")
        time.sleep(0.05)


def stop_process(proc: subprocess.Popen[Any], timeout: float = 10.0, interrupt: bool = False) -> None:
    """Stop one child we started (by its own handle): SIGTERM (SIGINT with `interrupt`: uvicorn
    re-raises SIGTERM after shutting down, which kills a profiler before it writes), then SIGKILL
    after `timeout`."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT) if interrupt else proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)


# `python -c` this, then the arguments of `python -m crm_mcp`: cProfile with `time.thread_time` as its
# clock, so a thread preempted inside a system call (a loopback send that wakes the sandbox) is not
# charged for the time others ran; the stats are written on exit (SIGINT).
_CPU_PROFILE = """\
import cProfile, runpy, sys, time
profiler = cProfile.Profile(time.thread_time)
sys.argv = ["crm_mcp", *sys.argv[1:]]
profiler.enable()
try:
    runpy.run_module("crm_mcp", run_name="__main__", alter_sys=True)
finally:
    profiler.disable()
    profiler.dump_stats({out!r})
"""


def mcp_server_command(port: int, log_level: str = "info", *, workers: int = 1,
                       profile: Path | None = None, python: str = sys.executable, floor: Floor = None) -> list[str]:
    """`profile`: run the server under a profiler (same process), its report written there on exit: cProfile's
    stats for a `.prof` file (deterministic, with call counts), else pyinstrument's text call tree.
    `floor`: the SDK alone (tools/sdk_floor.py) instead of crm-mcp, answering every call at once ("sdk")
    or relaying it as its tool's one API request ("relay")."""
    if floor:
        return [python, str(ROOT / "tools" / "sdk_floor.py"), "--host", HOST, "--port", str(port),
                *(["--upstream"] if floor == "relay" else [])]
    if profile is None:
        entry = ["-m", "crm_mcp"]
    elif profile.suffix == ".prof":  # cProfile timed by the event loop thread's CPU clock, not the wall clock
        entry = ["-c", _CPU_PROFILE.format(out=str(profile))]
    else:
        entry = ["-m", "pyinstrument", "-r", "text", "-o", str(profile), "-m", "crm_mcp"]
    return [python, *entry, "serve", "--http", "--host", HOST, "--port", str(port),
            "--log-level", log_level, *(["--workers", str(workers)] if workers != 1 else [])]


def mcp_server_env(sandbox_url: str, consumer: str = CONSUMER_ID, *, code: Path = ROOT,
                   journal: Path | None = None) -> dict[str, str]:
    """`journal`: the write journal's file, one per run (the user's own journal would answer a
    create of an earlier run, within its retry window, with a record its sandbox no longer has)."""
    return {
        **CLEAN_ENV,
        **({"CRM_MCP_JOURNAL_PATH": str(journal)} if journal is not None else {}),
        "APIDECK_API_KEY": API_KEY,
        "APIDECK_APP_ID": APP_ID,
        "APIDECK_CONSUMER_ID": consumer,
        "APIDECK_BASE_URL": sandbox_url,
        "PYTHONPATH": os.pathsep.join(p for p in (str(code), os.environ.get("PYTHONPATH", "")) if p),
    }


@contextlib.contextmanager
def started(command: list[str], env: dict[str, str], port: int, log_path: Path,
            cwd: Path = ROOT, interrupt: bool = False) -> Iterator[subprocess.Popen[Any]]:
    """A child process whose stderr (and stdout) go to `log_path`, ready once `port` accepts."""
    with log_path.open("wb") as log:
        proc = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=cwd)
    try:
        wait_for_port(port, proc)
        yield proc
    finally:
        stop_process(proc, interrupt=interrupt)


def proc_memory_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process in KiB, from /proc/<pid>/status."""
    rss = hwm = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
        elif line.startswith("VmHWM:"):
            hwm = int(line.split()[1])
    return rss, hwm


def proc_cpu_seconds(pid: int | None) -> float:
    """user + system CPU time of a process (this one for None), from /proc/<pid>/stat."""
    if pid is None:
        return time.process_time()
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    """`pid` and its live descendants (the server's worker processes with --workers N)."""
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
    return tree


def tree_cpu_seconds(pid: int) -> float:
    total = 0.0
    for member in process_tree(pid):
        with contextlib.suppress(OSError):
            total += proc_cpu_seconds(member)
    return total


def tree_memory_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) summed over `pid` and its descendants."""
    rss = hwm = 0
    for member in process_tree(pid):
        with contextlib.suppress(OSError):
            r, h = proc_memory_kib(member)
            rss, hwm = rss + r, hwm + h
    return rss, hwm


@dataclass
class Stack:
    mcp_url: str
    sandbox_url: str
    server_pid: int
    sandbox_pid: int | None  # None: the sandbox runs in this process
    server_log: Path

    def cpu(self) -> tuple[float, float, float]:
        """CPU seconds so far of (the MCP server, the sandbox, this process with the clients).

        With `--sandbox-inprocess` the sandbox's CPU is counted in this process and shown as nan."""
        sandbox = proc_cpu_seconds(self.sandbox_pid) if self.sandbox_pid else float("nan")
        return tree_cpu_seconds(self.server_pid), sandbox, proc_cpu_seconds(None)

    def logged_tool_calls(self) -> int:
        return sum(1 for line in self.server_log.read_text(errors="replace").splitlines() if " tool=" in line)


@contextlib.contextmanager
def running_stack(*, sandbox_inprocess: bool = False, log_level: str = "info", workers: int = 1,
                  code: Path = ROOT, profile: Path | None = None, python: str = sys.executable,
                  floor: Floor = None) -> Iterator[Stack]:
    """The sandbox CRM and the MCP server (HTTP subprocess) pointed at it."""
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp, contextlib.ExitStack() as stack:
        sandbox_pid: int | None
        if sandbox_inprocess:
            from crm_mcp.sandbox.server import SandboxServer

            sandbox = stack.enter_context(SandboxServer(db=":memory:"))
            sandbox_url, sandbox_pid = sandbox.base_url, None
        else:
            sandbox_port = free_port()
            command = [sys.executable, "-m", "crm_mcp", "sandbox", "--host", HOST, "--port", str(sandbox_port),
                       "--db", ":memory:"]
            env = {**CLEAN_ENV, "PYTHONPATH": str(ROOT)}
            proc = stack.enter_context(started(command, env, sandbox_port, Path(tmp) / "sandbox.log"))
            sandbox_url, sandbox_pid = f"http://{HOST}:{sandbox_port}", proc.pid
        port = free_port()
        server_log = Path(tmp) / "server.log"
        env = mcp_server_env(sandbox_url, code=code, journal=Path(tmp) / "journal.db")
        server = stack.enter_context(
            started(mcp_server_command(port, log_level, workers=workers, profile=profile, python=python, floor=floor),
                    env, port, server_log, cwd=code, interrupt=profile is not None)
        )
        try:
            yield Stack(f"http://{HOST}:{port}/mcp", sandbox_url, server.pid, sandbox_pid, server_log)
        except BaseException:
            tail = server_log.read_text(errors="replace").splitlines()[-20:]
            print("--- server log (last lines) ---\n" + "\n".join(tail), file=sys.stderr)
            raise


# ----------------------------------------------------------------------------- the calls


def call_for(client_no: int, i: int, last_note: str | None) -> tuple[str, dict[str, Any]]:
    """The i-th call of a client: 50% list, 30% get, 20% create (and every 10 calls, a get of the
    note this client created at the start of those 10)."""
    k = i % 10
    if k in (0, 5):
        return "create_note", {"title": f"bench c{client_no} #{i}", "content": "Load benchmark note."}
    if k in (1, 4, 8):
        return "list_contacts", {"limit": 5}
    if k == 2:
        return "list_companies", {"limit": 5}
    if k == 6:
        return "list_opportunities", {"limit": 5, "filter": {"company_id": "com_001"}}
    if k == 3:
        return "get_contact", {"id": "con_0001"}
    if k == 9:
        return "get_company", {"id": "com_001"}
    return ("get_note", {"id": last_note}) if last_note else ("get_contact", {"id": "con_0002"})


def text_of(result: Any) -> str:
    return "\n".join(getattr(c, "text", "") for c in result.content)


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)  # seconds, successful and failed calls
    errors: int = 0
    messages: list[str] = field(default_factory=list)
    by_tool: dict[str, int] = field(default_factory=dict)

    def error(self, message: str) -> None:
        self.errors += 1
        if len(self.messages) < MAX_ERRORS_SHOWN:
            self.messages.append(message[:300])


@contextlib.asynccontextmanager
async def mcp_client(url: str, mode: str, timeout: float) -> Any:
    async with (
        httpx2.AsyncClient(timeout=timeout, trust_env=False) as http,
        Client(streamable_http_client(url, http_client=http), mode=mode) as client,
    ):
        yield client


RAW_PROTOCOL = "2026-07-28"
RAW_META = {
    "io.modelcontextprotocol/protocolVersion": RAW_PROTOCOL,
    "io.modelcontextprotocol/clientInfo": {"name": "bench-load", "version": "0"},
    "io.modelcontextprotocol/clientCapabilities": {},
}


@dataclass
class RawText:
    text: str


@dataclass
class RawResult:
    """A tools/call result as `one_call` reads it (the attributes of the SDK's CallToolResult)."""

    is_error: bool
    structured_content: dict[str, Any] | None
    content: list[RawText]


class RawClient:
    """A load generator's MCP client: tools/call in the protocol's stateless era (2026-07-28, every
    request carries its own `_meta`), over one keep-alive connection (aiohttp), the answer parsed
    as JSON and checked, and nothing more. The SDK's client spends about as much CPU per call as
    the server: on 2 cores, 20 of them in this process leave the server part of one core, and
    calls per second then measure the clients (`--driver sdk` still runs them)."""

    def __init__(self, url: str, timeout: float):
        import aiohttp

        self._url = url
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1),
                                              timeout=aiohttp.ClientTimeout(total=timeout))
        self._next_id = 0

    async def call_tool(self, tool: str, arguments: dict[str, Any]) -> RawResult:
        self._next_id += 1
        body = json.dumps({"jsonrpc": "2.0", "id": self._next_id, "method": "tools/call",
                           "params": {"name": tool, "arguments": arguments, "_meta": RAW_META}})
        headers = {"content-type": "application/json", "accept": "application/json, text/event-stream",
                   "mcp-protocol-version": RAW_PROTOCOL, "mcp-method": "tools/call", "mcp-name": tool}
        async with self._session.post(self._url, data=body.encode(), headers=headers) as response:
            payload = await response.read()
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {payload[:200]!r}")
        message = json.loads(payload)
        if message.get("id") != self._next_id or "result" not in message:
            raise RuntimeError(f"not the answer to request {self._next_id}: {payload[:200]!r}")
        result = message["result"]
        return RawResult(bool(result.get("isError")), result.get("structuredContent"),
                         [RawText(c.get("text", "")) for c in result.get("content") or []])

    async def aclose(self) -> None:
        await self._session.close()


@contextlib.asynccontextmanager
async def load_client(url: str, mode: str, driver: str, timeout: float) -> Any:
    """The client of one load-phase worker: the SDK's (`sdk`) or the load generator's own (`raw`)."""
    if driver == "sdk":
        async with mcp_client(url, mode, timeout) as client:
            yield client
        return
    client = RawClient(url, timeout)
    try:
        yield client
    finally:
        await client.aclose()


async def one_call(client: Any, tool: str, arguments: dict[str, Any], tally: Tally, timeout: float) -> str | None:
    """Make one call, record its latency; return the created id for a create, else None."""
    started_at = time.perf_counter()
    try:
        with anyio.fail_after(timeout):
            result = await client.call_tool(tool, arguments)
    except Exception as exc:
        tally.latencies.append(time.perf_counter() - started_at)
        tally.error(f"{tool}: {type(exc).__name__}: {exc}")
        return None
    tally.latencies.append(time.perf_counter() - started_at)
    tally.by_tool[tool] = tally.by_tool.get(tool, 0) + 1
    if result.is_error:
        tally.error(f"{tool}: isError: {text_of(result)}")
        return None
    if tool.startswith("create_"):
        created = (result.structured_content or {}).get("id")
        if not created:
            tally.error(f"{tool}: no id in the result: {text_of(result)}")
        return created
    return None


# ----------------------------------------------------------------------------- phases


@dataclass
class LoadResult:
    clients: int
    calls_per_client: int
    tally: Tally
    wall: float  # seconds, first call to last answer
    connect_p50: float
    rss_kib: int
    hwm_kib: int
    cpu: tuple[float, float, float]  # CPU seconds in the phase: server, sandbox, clients
    driver: str = "raw"

    @property
    def calls(self) -> int:
        return len(self.tally.latencies)


async def run_load(stack: Stack, *, clients: int, calls: int, mode: str, call_timeout: float,
                   deadline: float, driver: str = "raw") -> LoadResult:
    tally = Tally()
    connect_times: list[float] = []
    connected = 0
    all_connected = anyio.Event()
    go_time: list[float] = []
    cpu_before = stack.cpu()

    async def worker(no: int) -> None:
        nonlocal connected
        t0 = time.perf_counter()
        made = 0
        try:
            async with load_client(stack.mcp_url, mode, driver, call_timeout) as client:
                connect_times.append(time.perf_counter() - t0)
                connected += 1
                if connected == clients:
                    go_time.append(time.perf_counter())
                    all_connected.set()
                with anyio.fail_after(START_TIMEOUT):
                    await all_connected.wait()
                last_note: str | None = None
                for i in range(calls):
                    tool, arguments = call_for(no, i, last_note)
                    created = await one_call(client, tool, arguments, tally, call_timeout)
                    made += 1
                    if created:
                        last_note = created
        except Exception as exc:  # a failed connect or close: one error, plus one per call not made
            tally.error(f"client {no}: {type(exc).__name__}: {exc}")
            tally.errors += calls - made

    with anyio.fail_after(deadline):
        async with anyio.create_task_group() as tg:
            for no in range(clients):
                tg.start_soon(worker, no)
    end = time.perf_counter()
    rss, hwm = tree_memory_kib(stack.server_pid)
    wall = end - go_time[0] if go_time else float("nan")
    cpu = tuple(b - a for a, b in zip(cpu_before, stack.cpu(), strict=True))
    connect_p50 = statistics.median(connect_times) if connect_times else float("nan")
    return LoadResult(clients, calls, tally, wall, connect_p50, rss, hwm, cpu, driver)  # type: ignore[arg-type]


@dataclass
class SoakResult:
    calls: int
    tally: Tally
    wall: float
    samples: list[tuple[int, int]]  # (calls done, VmRSS KiB)
    hwm_kib: int
    cpu: tuple[float, float, float]

    def quarter_means(self) -> tuple[float, float]:
        values = [rss for _, rss in self.samples]
        n = len(values)
        q = max(1, n // 4)
        second = values[q: 2 * q] or values
        last = values[n - q:] or values
        return statistics.fmean(second), statistics.fmean(last)

    @property
    def growth(self) -> float:
        """Last-quarter mean over second-quarter mean, minus one."""
        second, last = self.quarter_means()
        return last / second - 1.0

    @property
    def flat(self) -> bool:
        return len(self.samples) >= 4 and self.growth <= FLAT_TOLERANCE

    @property
    def slope_kib_per_1k(self) -> float:
        """Least-squares slope of RSS over calls after warm-up (2nd-4th quarters), KiB per 1,000 calls."""
        points = self.samples[len(self.samples) // 4:]
        if len(points) < 2:
            return float("nan")
        xs = [x for x, _ in points]
        ys = [y for _, y in points]
        mx, my = statistics.fmean(xs), statistics.fmean(ys)
        var = sum((x - mx) ** 2 for x in xs)
        if var == 0:
            return float("nan")
        return sum((x - mx) * (y - my) for x, y in points) / var * 1000.0


async def run_soak(stack: Stack, *, total: int, workers: int, session_calls: int, sample_every: int, mode: str,
                   call_timeout: float, deadline: float) -> SoakResult:
    tally = Tally()
    samples: list[tuple[int, int]] = [(0, tree_memory_kib(stack.server_pid)[0])]
    claimed = 0
    done = 0

    def claim() -> int | None:
        nonlocal claimed
        if claimed >= total:
            return None
        claimed += 1
        return claimed - 1

    async def worker(no: int) -> None:
        nonlocal done
        last_note: str | None = None
        while claimed < total:
            try:
                async with mcp_client(stack.mcp_url, mode, call_timeout) as client:
                    for _ in range(session_calls):
                        i = claim()
                        if i is None:
                            return
                        tool, arguments = call_for(no, i, last_note)
                        created = await one_call(client, tool, arguments, tally, call_timeout)
                        if created:
                            last_note = created
                        done += 1
                        if done % sample_every == 0:
                            samples.append((done, tree_memory_kib(stack.server_pid)[0]))
            except Exception as exc:
                tally.error(f"soak worker {no}: {type(exc).__name__}: {exc}")

    started_at = time.perf_counter()
    cpu_before = stack.cpu()
    with anyio.fail_after(deadline):
        async with anyio.create_task_group() as tg:
            for no in range(workers):
                tg.start_soon(worker, 1000 + no)
    wall = time.perf_counter() - started_at
    if samples[-1][0] != done:
        samples.append((done, tree_memory_kib(stack.server_pid)[0]))
    cpu = tuple(b - a for a, b in zip(cpu_before, stack.cpu(), strict=True))
    return SoakResult(done, tally, wall, samples, tree_memory_kib(stack.server_pid)[1], cpu)  # type: ignore[arg-type]


@dataclass
class BenchmarkResult:
    load: LoadResult
    soak: SoakResult | None
    logged_tool_calls: int
    sandbox_hwm_kib: int | None
    workers: int = 1
    floor: Floor = None  # the SDK alone (tools/sdk_floor.py), not crm-mcp

    @property
    def errors(self) -> int:
        return self.load.tally.errors + (self.soak.tally.errors if self.soak else 0)

    @property
    def ok(self) -> bool:
        return self.errors == 0 and (self.soak is None or self.soak.flat)


def run_benchmark(*, clients: int = 50, calls: int = 40, soak: int = 5000, soak_clients: int = 10,
                  session_calls: int = 50, sample_every: int | None = None, mode: str = "auto",
                  call_timeout: float = 30.0, sandbox_inprocess: bool = False, log_level: str = "info",
                  deadline: float = 900.0, workers: int = 1, code: Path = ROOT,
                  profile: Path | None = None, python: str = sys.executable, driver: str = "raw",
                  floor: Floor = None) -> BenchmarkResult:
    """Start the stack (the server with `workers` processes, from the checkout `code`; `floor`: the
    SDK alone, tools/sdk_floor.py, answering at once or relaying), run the load phase then the soak,
    stop the stack."""
    every = sample_every or max(1, soak // 50)
    with running_stack(sandbox_inprocess=sandbox_inprocess, log_level=log_level, workers=workers, code=code,
                       profile=profile, python=python, floor=floor) as stack:
        load = anyio.run(lambda: run_load(stack, clients=clients, calls=calls, mode=mode, call_timeout=call_timeout,
                                          deadline=deadline, driver=driver))
        soak_result = None
        if soak > 0:
            soak_result = anyio.run(lambda: run_soak(
                stack, total=soak, workers=soak_clients, session_calls=session_calls, sample_every=every,
                mode=mode, call_timeout=call_timeout, deadline=deadline))
        sandbox_hwm = proc_memory_kib(stack.sandbox_pid)[1] if stack.sandbox_pid else None
        time.sleep(0.2)  # let the server's last log lines reach the file
        logged = stack.logged_tool_calls()
    return BenchmarkResult(load, soak_result, logged, sandbox_hwm, workers, floor)


# ----------------------------------------------------------------------------- report


def percentile(values: Sequence[float], q: float) -> float:
    data = sorted(values)
    if not data:
        return float("nan")
    pos = (len(data) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(v: Any) -> str:
        return f"{v:.1f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---:" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def mib(kib: int) -> float:
    return kib / 1024.0


def cpu_line(cpu: tuple[float, float, float], wall: float, calls: int) -> str:
    server, sandbox, clients = cpu
    per_call = server / calls * 1000.0 if calls else float("nan")
    return (f"CPU seconds in the phase ({wall:.1f} s wall): server {server:.1f} ({per_call:.1f} ms/call, "
            f"{server / wall:.0%} of a core), sandbox {sandbox:.1f}, clients (this process) {clients:.1f}")


def report(result: BenchmarkResult, mode: str) -> str:
    load, soak = result.load, result.soak
    lat = [x * 1000.0 for x in load.tally.latencies]
    clients = "the SDK's clients, mode=" + mode if load.driver == "sdk" else "the load generator's own clients"
    out = [f"## Load: {load.clients} clients x {load.calls_per_client} calls ({clients})", ""]
    out.append(table(
        ["clients", "calls", "errors", "p50 ms", "p90 ms", "p99 ms", "max ms", "calls/s", "connect p50 ms",
         "server RSS MiB", "server peak RSS MiB"],
        [[load.clients, load.calls, load.tally.errors, percentile(lat, 50), percentile(lat, 90), percentile(lat, 99),
          max(lat, default=float("nan")), load.calls / load.wall if load.wall else float("nan"),
          load.connect_p50 * 1000.0 if load.driver == "sdk" else "-",  # the raw clients do not connect first
          mib(load.rss_kib), mib(load.hwm_kib)]],
    ))
    out.append("")
    out.append(cpu_line(load.cpu, load.wall, load.calls))
    out.append("calls by tool: " + ", ".join(f"{k} {v}" for k, v in sorted(load.tally.by_tool.items())))
    if soak is not None:
        slat = [x * 1000.0 for x in soak.tally.latencies]
        second, last = soak.quarter_means()
        rss = [r for _, r in soak.samples]
        out += ["", f"## Soak: {soak.calls} calls, RSS sampled {len(soak.samples)} times", ""]
        out.append(table(
            ["calls", "errors", "p50 ms", "p99 ms", "calls/s", "first MiB", "last MiB", "max MiB",
             "Q2 mean MiB", "Q4 mean MiB", "Q4/Q2", "slope KiB/1k calls", "peak RSS MiB", "flat"],
            [[soak.calls, soak.tally.errors, percentile(slat, 50), percentile(slat, 99),
              soak.calls / soak.wall if soak.wall else float("nan"), mib(rss[0]), mib(rss[-1]), mib(max(rss)),
              mib(int(second)), mib(int(last)), f"{soak.growth:+.1%}", soak.slope_kib_per_1k, mib(soak.hwm_kib),
              "yes" if soak.flat else "NO"]],
        ))
        out.append("")
        out.append(cpu_line(soak.cpu, soak.wall, soak.calls))
        out.append("RSS samples (calls:MiB): " + " ".join(f"{n}:{mib(r):.1f}" for n, r in soak.samples))
    out.append("")
    made = load.calls + (soak.calls if soak else 0)
    out.append(f"server logged {result.logged_tool_calls} tool calls for {made} calls made")
    if result.sandbox_hwm_kib is not None:
        out.append(f"sandbox process peak RSS {mib(result.sandbox_hwm_kib):.1f} MiB")
    messages = load.tally.messages + (soak.tally.messages if soak else [])
    if messages:
        out += ["", "first errors:", *(f"- {m}" for m in messages)]
    out += ["", f"result: {'OK' if result.ok else 'FAILED'} (errors {result.errors}"
            + (f", memory {'flat' if soak.flat else 'GROWING'}" if soak else "") + ")"]
    return "\n".join(out)


@dataclass
class PerCall:
    """A load phase's figures: calls per second, CPU ms per call of server and sandbox, and their ratio."""

    rate: float
    server_ms: float
    sandbox_ms: float
    share: float


def per_call(result: BenchmarkResult) -> PerCall:
    server, sandbox, _ = result.load.cpu
    n = result.load.calls or 1
    rate = result.load.calls / result.load.wall if result.load.wall else float("nan")
    return PerCall(rate, server / n * 1000.0, sandbox / n * 1000.0, server / sandbox if sandbox else float("nan"))


def cpu_table(results: Sequence[BenchmarkResult]) -> str:
    """Per worker count, the load phase's calls per second and CPU per call of server and sandbox."""
    rows = []
    for r in results:
        f = per_call(r)
        label = {"sdk": "SDK alone, 1", "relay": "SDK relaying, 1"}.get(r.floor or "", r.workers)
        if r.floor == "sdk":  # no upstream: the sandbox's CPU is not the floor's to compare with
            rows.append([label, f.rate, f"{f.server_ms:.2f}", "-", "-"])
            continue
        rows.append([label, f.rate, f"{f.server_ms:.2f}", f"{f.sandbox_ms:.2f}", f"{f.share:.2f}"])
    text = table(["workers", "calls/s", "server CPU ms/call", "sandbox CPU ms/call", "server/sandbox"], rows)
    ours = next((per_call(r) for r in results if r.floor is None and r.workers == 1), None)
    relay = next((per_call(r) for r in results if r.floor == "relay"), None)
    if ours is not None and relay is not None:
        own = ours.server_ms - relay.server_ms
        text += (f"\n\ncrm-mcp's own code (server CPU beyond the SDK relaying the same calls, one worker): "
                 f"{own:.2f} ms/call, {own / ours.sandbox_ms:.2f}x the sandbox's CPU per call")
    return text


def compare(code: Path, against: Path, *, pairs: int, clients: int, calls: int, mode: str = "auto",
            call_timeout: float = 30.0, deadline: float = 900.0, python: str = sys.executable,
            driver: str = "raw") -> list[tuple[BenchmarkResult, BenchmarkResult]]:
    """`pairs` load phases of `code`, each followed by one of `against` (one worker, no soak)."""
    def one(tree: Path) -> BenchmarkResult:
        return run_benchmark(clients=clients, calls=calls, soak=0, mode=mode, call_timeout=call_timeout,
                             deadline=deadline, code=tree, python=python, driver=driver)

    results = []
    for no in range(pairs):
        results.append((one(code), one(against)))
        print(f"pair {no + 1} of {pairs} done", file=sys.stderr, flush=True)
    return results


def pairs_table(pairs: Sequence[tuple[BenchmarkResult, BenchmarkResult]], code: Path, against: Path) -> str:
    """Per pair: calls/s, server CPU per call and server/sandbox of each side, and the ratio of calls/s;
    then the medians."""
    rows, ratios = [], []
    for no, (mine, theirs) in enumerate(pairs, 1):
        a, b = per_call(mine), per_call(theirs)
        ratios.append(a.rate / b.rate)
        rows.append([no, a.rate, b.rate, f"{a.rate / b.rate:.2f}", f"{a.server_ms:.2f}", f"{b.server_ms:.2f}",
                     f"{a.share:.2f}", f"{b.share:.2f}"])
    errors = sum(r.errors for pair in pairs for r in pair)
    return "\n".join([
        f"## {code} against {against}: {len(pairs)} alternating pairs", "",
        table(["pair", "calls/s", "calls/s (against)", "ratio", "server CPU ms/call", "(against)",
               "server/sandbox", "(against)"], rows), "",
        f"calls/s ratio, median of the pairs: {statistics.median(ratios):.2f} (range {min(ratios):.2f}-"
        f"{max(ratios):.2f}); errors: {errors}",
    ])


def machine_line() -> str:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{platform.python_implementation()} {platform.python_version()}, {usable} usable CPUs, {platform.system()}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--clients", type=int, default=50, help="concurrent MCP clients in the load phase")
    parser.add_argument("--calls", type=int, default=40, help="calls per client in the load phase")
    parser.add_argument("--soak", type=int, default=5000, help="calls in the soak (0: no soak)")
    parser.add_argument("--soak-clients", type=int, default=10, help="concurrent workers in the soak")
    parser.add_argument("--session-calls", type=int, default=50, help="soak calls per MCP session")
    parser.add_argument("--sample-every", type=int, default=None, help="sample RSS every N soak calls")
    parser.add_argument("--mode", default="auto", choices=["auto", "legacy"],
                        help="MCP client protocol mode (the SDK's clients: --driver sdk, and the soak)")
    parser.add_argument("--driver", default="raw", choices=["raw", "sdk"],
                        help="the load phase's clients: the load generator's own (raw, default) or the SDK's")
    parser.add_argument("--call-timeout", type=float, default=30.0, help="seconds per call")
    parser.add_argument("--deadline", type=float, default=900.0, help="seconds per phase")
    parser.add_argument("--sandbox-inprocess", action="store_true", help="run the sandbox in this process")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                        help="the MCP server's log level (info logs a line per call, as deployed)")
    parser.add_argument("--workers", default="1,2",
                        help="server worker processes (serve --http --workers N); a list runs the load once per "
                             "count, the soak with the first (default 1,2)")
    parser.add_argument("--code", type=Path, default=ROOT,
                        help="run the MCP server from this checkout (before/after comparisons; default: this one)")
    parser.add_argument("--server-python", default=sys.executable,
                        help="the interpreter (virtualenv) the MCP server runs with (default: this one)")
    parser.add_argument("--against", type=Path, default=None, metavar="DIR",
                        help="compare with the checkout DIR: --pairs load phases of each, alternating (one worker, "
                             "no soak), and the median ratio of the pairs")
    parser.add_argument("--pairs", type=int, default=5, help="alternating pairs with --against (default 5)")
    parser.add_argument("--floor", action="store_true",
                        help="also run the load phase against the SDK alone (tools/sdk_floor.py), answering every "
                             "call at once, then relaying each as its tool's one API request: the server CPU per "
                             "call no tool code can remove, and what relaying alone adds")
    parser.add_argument("--profile-server", type=Path, default=None, metavar="FILE",
                        help="run the server under a profiler and write its report to FILE: cProfile stats for "
                             "FILE.prof, else pyinstrument's text call tree")
    args = parser.parse_args(argv)
    try:
        worker_counts = [int(w) for w in args.workers.split(",")]
    except ValueError:
        parser.error("--workers takes counts separated by commas, e.g. 1,2")
    if (args.clients < 1 or args.calls < 1 or args.soak < 0 or args.soak_clients < 1 or args.session_calls < 1
            or any(w < 1 for w in worker_counts)):
        parser.error("sizes must be positive")
    print(f"# crm-mcp HTTP load benchmark\n\n{machine_line()}, load average {os.getloadavg()[0]:.2f}\n",
          flush=True)
    if args.against is not None:
        if args.pairs < 1:
            parser.error("--pairs must be positive")
        pairs = compare(args.code, args.against, pairs=args.pairs, clients=args.clients, calls=args.calls,
                        mode=args.mode, call_timeout=args.call_timeout, deadline=args.deadline,
                        python=args.server_python, driver=args.driver)
        print(pairs_table(pairs, args.code, args.against))
        print(f"\nload average {os.getloadavg()[0]:.2f}")
        return 0 if all(a.ok and b.ok for a, b in pairs) else 1
    results = []
    for no, workers in enumerate(worker_counts):
        result = run_benchmark(
            clients=args.clients, calls=args.calls, soak=args.soak if no == 0 else 0, soak_clients=args.soak_clients,
            session_calls=args.session_calls, sample_every=args.sample_every, mode=args.mode,
            call_timeout=args.call_timeout, sandbox_inprocess=args.sandbox_inprocess, log_level=args.log_level,
            deadline=args.deadline, workers=workers, code=args.code, profile=args.profile_server,
            python=args.server_python, driver=args.driver,
        )
        print(f"# {workers} worker{'s' if workers > 1 else ''}\n\n{report(result, args.mode)}\n", flush=True)
        results.append(result)
    floors: tuple[tuple[Floor, str], ...] = (("sdk", "the SDK alone"),
                                             ("relay", "the SDK alone, relaying each call upstream"))
    for floor, title in floors if args.floor else ():
        result = run_benchmark(
            clients=args.clients, calls=args.calls, soak=0, mode=args.mode, call_timeout=args.call_timeout,
            sandbox_inprocess=args.sandbox_inprocess, deadline=args.deadline, python=args.server_python,
            driver=args.driver, floor=floor,
        )
        print(f"# {title} (tools/sdk_floor.py)\n\n{report(result, args.mode)}\n", flush=True)
        results.append(result)
    print(f"## CPU per call (load phase, same mix)\n\n{cpu_table(results)}\n\nload average {os.getloadavg()[0]:.2f}")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
