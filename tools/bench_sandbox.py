"""Benchmark the sandbox CRM over real HTTP and print a markdown table.

    python tools/bench_sandbox.py [--rounds 50]

Starts a SandboxServer on a file database in a temporary directory (so commits hit the disk),
then times list pages of 200 records (plain, filtered, sorted), a full cursor walk of the 200
seeded contacts, and single gets, creates and updates, with one httpx2 client (keep-alive).
Latency is per request (per walk for the walk); records/s counts records returned or written.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx2

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from crm_mcp.sandbox.server import SandboxServer

HEADERS = {"Authorization": "Bearer bench", "x-apideck-app-id": "bench", "x-apideck-consumer-id": "bench"}


def measure(rounds: int, fn: Callable[[], int]) -> tuple[list[float], int]:
    fn()  # warm up
    times: list[float] = []
    records = 0
    for _ in range(rounds):
        started = time.perf_counter()
        records += fn()
        times.append(time.perf_counter() - started)
    return times, records


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp, SandboxServer(db=Path(tmp) / "bench.db") as server:
        client = httpx2.Client(base_url=server.base_url, headers=HEADERS, timeout=30)

        def page(params: dict[str, str | int], path: str = "/crm/contacts") -> Callable[[], int]:
            def run() -> int:
                response = client.get(path, params=params)
                response.raise_for_status()
                return len(response.json()["data"])

            return run

        def walk() -> int:
            params: dict[str, str | int] = {"limit": 20}
            total = 0
            while True:
                body = client.get("/crm/contacts", params=params).json()
                total += len(body["data"])
                if not body["meta"]["cursors"]["next"]:
                    return total
                params["cursor"] = body["meta"]["cursors"]["next"]

        def get() -> int:
            client.get("/crm/contacts/con_0001").raise_for_status()
            return 1

        counter = iter(range(10**9))

        def create() -> int:
            n = next(counter)
            body = {"name": f"Bench {n}", "first_name": "Bench", "emails": [{"email": f"bench{n}@x.example"}]}
            response = client.post("/crm/leads", json=body)
            response.raise_for_status()
            return 1

        def update() -> int:
            client.patch("/crm/contacts/con_0002", json={"title": f"Title {next(counter)}"}).raise_for_status()
            return 1

        client.get("/crm/users").raise_for_status()  # seed the consumer before timing
        scenarios: list[tuple[str, Callable[[], int], int]] = [
            ("list contacts, limit=200", page({"limit": 200}), args.rounds),
            ("list activities, limit=200", page({"limit": 200}, "/crm/activities"), args.rounds),
            ("list contacts, filter[email]=acme", page({"limit": 200, "filter[email]": "acme"}), args.rounds),
            ("list contacts, filter[name]=an", page({"limit": 200, "filter[name]": "an"}), args.rounds),
            (
                "list opportunities, filter[status]=open",
                page({"limit": 200, "filter[status]": "open"}, "/crm/opportunities"),
                args.rounds,
            ),
            (
                "list contacts, sort[by]=name desc",
                page({"limit": 200, "sort[by]": "name", "sort[direction]": "desc"}),
                args.rounds,
            ),
            (
                "list opportunities, sort[by]=monetary_amount",
                page({"limit": 200, "sort[by]": "monetary_amount"}, "/crm/opportunities"),
                args.rounds,
            ),
            ("cursor walk, 200 contacts, limit=20 (10 pages)", walk, max(10, args.rounds // 5)),
            ("get contact", get, args.rounds * 4),
            ("create lead (file DB commit)", create, args.rounds * 2),
            ("update contact (PATCH, file DB commit)", update, args.rounds * 2),
        ]
        system = f"Python {platform.python_version()}, {os.cpu_count()} CPUs, {platform.system()}"
        print(f"Sandbox benchmark: {system}, SQLite file DB, one keep-alive httpx2 client\n")
        print("| scenario | requests | p50 ms | p95 ms | records/s |")
        print("|---|---:|---:|---:|---:|")
        for name, fn, rounds in scenarios:
            times, records = measure(rounds, fn)
            rate = records / sum(times)
            p50, p95 = percentile(times, 0.5) * 1000, percentile(times, 0.95) * 1000
            print(f"| {name} | {rounds} | {p50:.1f} | {p95:.1f} | {rate:,.0f} |")
        client.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
