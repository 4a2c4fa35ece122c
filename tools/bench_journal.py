"""Benchmark the write journal's own cost per write and print a markdown table.

    python tools/bench_journal.py [--writes 300] [--pg-url postgresql://...]

"Own cost" is what journaling adds to a write, excluding the upstream calls (the GET of the
record's state before an update, the duplicate lookups before a create, the write itself):

- update: `after_write` of an update whose state before is already read (one INSERT);
- create: the retry-window claim of `before_write` (one upsert) plus `after_write` (the INSERT and
  the window's update: one statement on PostgreSQL, one transaction on SQLite).

SQLite runs on a file in a temporary directory (WAL, synchronous=NORMAL: what the server uses).
PostgreSQL runs on `--pg-url`, or on a server started here as for the tests, with fsync on (as in
production; the journal's connections commit asynchronously, see crm_mcp.journal.postgres).
Targets (issue 13): median <= 1 ms (SQLite), <= 3 ms (PostgreSQL).

Then the upstream requests each kind of write makes through a real MCP client session (in memory)
against the sandbox CRM, read from the sandbox's request log: a write makes at most one extra read
(the record's state before an update or delete) plus, for a create, the duplicate lookups; a
`dry_run` preview makes no write at all. Reads of the users and pipelines lists, which name the
owners and stages an answer shows (`crm_mcp.names`: once per tenant and consumer every 5 minutes,
shared with every other call), are counted apart: the consumer here is fresh, so its first write
that shows an owner or a stage reads one.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the tests' PostgreSQL launcher

from crm_mcp.client import ApiResponse
from crm_mcp.journal.factory import scope_for
from crm_mcp.journal.postgres import PostgresJournal
from crm_mcp.journal.sqlite import SqliteJournal
from crm_mcp.journal.store import JournalStore
from crm_mcp.journal.writes import PendingWrite, WriteJournal, retry_key
from crm_mcp.operations import operation
from crm_mcp.sandbox.seed import build_seed

TARGETS_MS = {"SQLite": 1.0, "PostgreSQL": 3.0}
RETENTION = timedelta(days=7)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def timed(rounds: int, one: Callable[[int], Awaitable[None]]) -> list[float]:
    for i in range(10):  # warm up: connections, statement caches, the first purge
        await one(-1 - i)
    times = []
    for i in range(rounds):
        started = time.perf_counter()
        await one(i)
        times.append((time.perf_counter() - started) * 1000)
    return times


async def bench(store: JournalStore, rounds: int) -> dict[str, list[float]]:
    journal = WriteJournal(store, secrets=("bench-secret-key",))
    scope = scope_for("bench-app", "bench-secret-key", f"bench-{uuid.uuid4().hex[:8]}")
    jane = next(c for c in build_seed()["contacts"] if c["id"] == "con_0001")
    update_op, create_op = operation("update_contact"), operation("create_contact")
    created = ApiResponse(status=201, body={"data": {"id": "con_9999"}}, request_id=None, elapsed_ms=0, attempts=1)
    updated = ApiResponse(status=200, body={"data": {"id": "con_0001"}}, request_id=None, elapsed_ms=0, attempts=1)

    async def update(i: int) -> None:
        body = {"title": f"Title {i}", "department": "Operations"}
        pending = PendingWrite(update_op, scope, {"id": "con_0001"}, body, jane)
        await journal.after_write(pending, updated)

    async def create(i: int) -> None:
        body = {"first_name": "Bench", "last_name": f"Person {i}", "emails": [{"email": f"b{i}@bench.example"}]}
        key = retry_key(scope, create_op, {}, body)
        assert await store.claim_retry(key, window=journal.retry_window) is None
        await journal.after_write(PendingWrite(create_op, scope, {}, body, None, key), created)

    return {"update": await timed(rounds, update), "create": await timed(rounds, create)}


@contextmanager
def postgres(url: str | None) -> Iterator[str | None]:
    if url:
        yield url
        return
    from journal.postgres_server import find_bindir, postgres_server

    bindir = find_bindir()
    if bindir is None:
        yield None
        return
    with postgres_server(bindir, durable=True) as started:
        yield started


# (tool, arguments, whether it is a dry_run preview)
UPSTREAM_CASES: list[tuple[str, dict[str, object], bool]] = [
    ("update_contact", {"id": "con_0001", "title": "COO"}, False),
    ("delete_note", {"id": "not_001"}, False),
    ("create_contact", {"first_name": "Bench", "last_name": "Upstream",
                        "emails": [{"email": "bench.upstream@example.com", "type": "work"}],
                        "phone_numbers": [{"number": "+44 20 0000 0000", "type": "mobile"}]}, False),
    ("update_opportunity", {"id": "opp_001", "pipeline_stage_id": "stg_nb_negotiation"}, False),
    ("create_note", {"title": "Bench", "content": "Upstream"}, False),
    ("update_contact", {"id": "con_0001", "title": "CFO", "dry_run": True}, True),
    ("delete_contact", {"id": "con_0002", "dry_run": True}, True),
    ("create_lead", {"name": "Bench Preview", "dry_run": True}, True),
]
WRITE_METHODS = ("POST", "PATCH", "PUT", "DELETE")


NAMES_LISTS = ("/crm/users", "/crm/pipelines")  # the lists crm_mcp.names reads


def upstream_requests() -> list[tuple[str, bool, int, int, int, int, str, bool]]:
    """(tool, preview, reads, writes, duplicate lookups, names lists, the bound, within it) per case,
    from the sandbox's request log of a fresh consumer."""
    import dataclasses

    from mcp.client import Client

    from crm_mcp.config import Settings
    from crm_mcp.journal.duplicates import CRITERIA
    from crm_mcp.operations import operation
    from crm_mcp.sandbox.seed import BASE_TIME
    from crm_mcp.sandbox.server import SandboxServer
    from crm_mcp.server import build_server

    rows: list[tuple[str, bool, int, int, int, int, str, bool]] = []
    with tempfile.TemporaryDirectory() as tmp, SandboxServer(db=":memory:", now=BASE_TIME, max_consumers=None) as sb:
        consumer = f"bench-{uuid.uuid4().hex[:8]}"
        settings = dataclasses.replace(
            Settings(api_key="bench-key", app_id="bench-app", consumer_id=consumer, base_url=sb.base_url),
            journal_path=str(Path(tmp) / "journal.db"),
        )

        async def run() -> None:
            async with Client(build_server(settings)) as client:
                for tool, arguments, preview in UPSTREAM_CASES:
                    seen = len(sb.faults.requests)
                    result = await client.call_tool(tool, dict(arguments))
                    assert not result.is_error, (tool, result.content)
                    new = [r for r in sb.faults.requests[seen:] if r.consumer == consumer]
                    written = sum(r.method in WRITE_METHODS for r in new)
                    names = sum(r.method == "GET" and r.path in NAMES_LISTS for r in new)
                    reads = len(new) - written - names
                    op = operation(tool)
                    lookups = 0
                    if op.action == "create" and not preview:  # one list call per criterion with a filter
                        lookups = sum(1 for c in CRITERIA.get(op.resource, ()) if c.filter)
                    allowed_reads = (1 if op.action in ("update", "delete") else 0) + lookups
                    bounded = written == 0 if preview else (written == 1 and reads <= allowed_reads)
                    bound = "no write" if preview else f"1 write, <= {allowed_reads} reads"
                    rows.append((tool, preview, reads, written, lookups, names, bound, bounded))

        anyio.run(run)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=300)
    parser.add_argument("--pg-url", default=None, help="an existing PostgreSQL (default: start one)")
    args = parser.parse_args(argv)

    results: list[tuple[str, str, list[float]]] = []
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        stores: list[tuple[str, JournalStore]] = [("SQLite", SqliteJournal(tmp / "journal.db", retention=RETENTION))]
        pg_url = stack.enter_context(postgres(args.pg_url))
        if pg_url:
            stores.append(("PostgreSQL", PostgresJournal(pg_url, retention=RETENTION)))
        for name, store in stores:

            async def run(store: JournalStore = store) -> dict[str, list[float]]:
                async with store:
                    return await bench(store, args.writes)

            for kind, times in anyio.run(run).items():
                results.append((name, kind, times))

    print(f"journal cost per write, {args.writes} writes each ({platform.python_implementation()} "
          f"{platform.python_version()}, {platform.machine()})\n")  # fmt: skip
    print("| store | write | median ms | p95 ms | target (median) | ok |")
    print("|---|---|---:|---:|---:|---|")
    failed = False
    for name, kind, times in results:
        median = statistics.median(times)
        ok = median <= TARGETS_MS[name]
        failed |= not ok
        print(f"| {name} | {kind} | {median:.3f} | {percentile(times, 0.95):.3f} | <= {TARGETS_MS[name]:g} ms | "
              f"{'yes' if ok else 'NO'} |")  # fmt: skip
    if not any(name == "PostgreSQL" for name, _, _ in results):
        print("\nPostgreSQL: not measured (not installed; pass --pg-url or apt-get install postgresql)")

    print("\nupstream requests per write, through an MCP session against the sandbox (its request log)\n")
    print("| tool | preview | reads | writes | of the reads: duplicate lookups | names lists (cached) | bound | ok |")
    print("|---|---|---:|---:|---:|---:|---|---|")
    for tool, preview, reads, written, lookups, names, bound, bounded in upstream_requests():
        failed |= not bounded
        print(f"| {tool} | {'yes' if preview else 'no'} | {reads} | {written} | {lookups} | {names} | {bound} | "
              f"{'yes' if bounded else 'NO'} |")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
