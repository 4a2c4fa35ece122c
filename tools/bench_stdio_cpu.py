"""CPU time per tool call of the stdio server process, paired between code trees.

    python tools/bench_stdio_cpu.py --code /path/to/main-checkout --code . [--tool list20] [--calls N] [--rounds R]

Wall-clock figures on a shared machine move with the load; the CPU time a server process spends
per call moves much less. For each `--code` tree one `python -m crm_mcp` runs over stdio (that
tree's package first on its path), all against one sandbox CRM (in-memory, its own process).
This program speaks JSON-RPC to them as the SDK's client does (the 2026-07-28 envelope), warms
each up, then takes R rounds of N calls per server, in alternating order, and reads each server's
user + system CPU time from /proc before and after every round (Linux only). It prints, per tree,
the median over rounds of the CPU milliseconds per call, each round's figure, and the median
round trip; and whether every tree answered the same (results compared without their `_meta`).

Tools: `list20` (list_contacts limit 20), `get` (get_contact con_0001), `email` (list_contacts
filtered by email), `floor` (a get_contact without its id: argument validation fails, no HTTP).
To profile one server instead, give `--profile FILE`: it runs under cProfile (`pstats` reads FILE).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any, cast

ROOT = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientInfo": {"name": "bench", "version": "0"},
    "io.modelcontextprotocol/clientCapabilities": {},
}
CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "list20": ("list_contacts", {"limit": 20}),
    "get": ("get_contact", {"id": "con_0001"}),
    "email": ("list_contacts", {"filter": {"email": "jane.doe@acme.example"}}),
    "floor": ("get_contact", {}),
}
SANDBOX = """
import time
from crm_mcp.sandbox.server import SandboxServer
sandbox = SandboxServer(db=":memory:")
sandbox.start()
print(sandbox.base_url, flush=True)
time.sleep(86400)
"""


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` (all its threads), from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


class StdioServer:
    """`python -m crm_mcp` of one code tree, spoken to line by line."""

    def __init__(self, code: Path, env: dict[str, str], profile: str | None):
        profiler = ["-m", "cProfile", "-o", profile] if profile else []
        self.proc = subprocess.Popen(
            [sys.executable, *profiler, "-m", "crm_mcp"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env={**env, "PYTHONPATH": str(code)}, cwd=code,
        )
        self.next_id = 0
        self.request("server/discover", {"_meta": META})
        self.request("tools/list", {"_meta": META})

    def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self.next_id += 1
        stdin, stdout = cast(IO[bytes], self.proc.stdin), cast(IO[bytes], self.proc.stdout)
        stdin.write(json.dumps({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params}).encode()
                    + b"\n")
        stdin.flush()
        while True:
            line = stdout.readline()
            if not line:
                raise SystemExit(f"the server closed stdout (exit status {self.proc.wait()})")
            message: dict[str, Any] = json.loads(line)
            if message.get("id") == self.next_id:
                return message

    def close(self) -> None:
        cast(IO[bytes], self.proc.stdin).close()
        try:
            self.proc.wait(120)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--code", action="append", type=Path, help="a code tree (repeat; default: this checkout)")
    parser.add_argument("--tool", choices=sorted(CASES), default="list20")
    parser.add_argument("--calls", type=int, default=400, help="calls per round and server (default 400)")
    parser.add_argument("--rounds", type=int, default=8, help="rounds per server (default 8)")
    parser.add_argument("--warmup", type=int, default=30, help="warm-up calls per server (default 30)")
    parser.add_argument("--profile", help="run the (single) server under cProfile, its stats written to this file")
    args = parser.parse_args(argv)
    trees = [p.resolve() for p in (args.code or [ROOT])]
    if args.profile and len(trees) != 1:
        parser.error("--profile takes one --code tree")
    sandbox = subprocess.Popen([sys.executable, "-c", SANDBOX], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        base_url = cast(IO[str], sandbox.stdout).readline().strip()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("APIDECK_", "CRM_MCP_"))}
        env.update(APIDECK_API_KEY="bench-key", APIDECK_APP_ID="bench-app", APIDECK_CONSUMER_ID="bench-consumer",
                   APIDECK_BASE_URL=base_url)
        servers = [StdioServer(tree, env, args.profile) for tree in trees]
        name, arguments = CASES[args.tool]
        params = {"name": name, "arguments": arguments, "_meta": META}
        answers = []
        for server in servers:
            for _ in range(args.warmup):
                answer = server.request("tools/call", params)
            result = dict(answer["result"])
            result.pop("_meta", None)
            if result.get("isError") != (args.tool == "floor"):
                raise SystemExit(f"{name} {arguments}: unexpected answer {json.dumps(result)[:300]}")
            answers.append(json.dumps(result, sort_keys=True))
        cpu: list[list[float]] = [[] for _ in servers]
        wall: list[list[float]] = [[] for _ in servers]
        for round_ in range(args.rounds):
            order = list(range(len(servers)))[:: -1 if round_ % 2 else 1]
            for k in order:
                server, trips = servers[k], []
                before = cpu_seconds(server.proc.pid)
                for _ in range(args.calls):
                    started = time.perf_counter()
                    server.request("tools/call", params)
                    trips.append(time.perf_counter() - started)
                cpu[k].append((cpu_seconds(server.proc.pid) - before) / args.calls * 1000)
                wall[k].append(statistics.median(trips) * 1000)
        for server in servers:
            server.close()
    finally:
        sandbox.kill()
        sandbox.wait()
    print(f"## stdio server CPU per call: {args.tool} ({name} {json.dumps(arguments)}), {args.rounds} rounds of "
          f"{args.calls} calls per server; load average {os.getloadavg()[0]:.2f} at the end\n")
    print("| code | CPU ms per call (median of rounds) | each round | round trip ms (median) |")
    print("|---|---|---|---|")
    for tree, c, w in zip(trees, cpu, wall, strict=True):
        rounds = " ".join(f"{x:.2f}" for x in c)
        print(f"| {tree} | {statistics.median(c):.3f} | {rounds} | {statistics.median(w):.3f} |")
    same = len(set(answers)) == 1
    print(f"\nSame answer from every tree: {'yes' if same else 'NO'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
