"""Load: the core of tools/bench_load.py at a reduced size (CI). Concurrent HTTP MCP clients against
the server as a subprocess: zero errors, every call logged by the server, memory flat over a soak."""

from __future__ import annotations

from types import ModuleType

import pytest
from bench_support import load_tool

pytestmark = pytest.mark.slow


def load_bench() -> ModuleType:
    return load_tool("bench_load")


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_bench()


def test_concurrent_clients_and_soak_reduced_size(bench: ModuleType) -> None:
    result = bench.run_benchmark(clients=10, calls=10, soak=500, soak_clients=5, session_calls=25,
                                 sample_every=10, deadline=120.0)
    print(bench.report(result, "auto"))  # shown with -s, or on failure
    load, soak = result.load, result.soak
    assert load.driver == "raw" and load.calls == 100
    assert load.tally.errors == 0, load.tally.messages
    assert load.tally.by_tool["create_note"] == 20 and load.tally.by_tool["get_note"] == 10
    assert soak is not None and soak.calls == 500
    assert soak.tally.errors == 0, soak.tally.messages
    assert len(soak.samples) >= 50
    assert soak.flat, (f"{soak.growth:+.1%}", soak.samples)
    assert load.hwm_kib > 0 and soak.hwm_kib >= load.hwm_kib
    # the server saw each call (one `tool=` log line per call) and nothing more
    assert result.logged_tool_calls == 600
    assert result.ok


def test_the_sdk_clients_drive_the_same_load(bench: ModuleType) -> None:
    """`--driver sdk`: the load phase with the SDK's own clients answers the same, without error."""
    result = bench.run_benchmark(clients=4, calls=10, soak=0, deadline=120.0, driver="sdk")
    load = result.load
    assert load.driver == "sdk" and load.calls == 40
    assert load.tally.errors == 0, load.tally.messages
    assert load.tally.by_tool["create_note"] == 8 and load.tally.by_tool["get_note"] == 4
    assert result.logged_tool_calls == 40 and result.ok


def test_the_sdk_floor_answers_the_same_mix(bench: ModuleType) -> None:
    """`--floor`: the SDK alone (tools/sdk_floor.py) takes the same calls, without error and without the
    sandbox (nothing goes upstream); its row in the CPU table says so."""
    result = bench.run_benchmark(clients=4, calls=10, soak=0, deadline=120.0, floor="sdk")
    load = result.load
    assert load.calls == 40 and load.tally.errors == 0, load.tally.messages
    assert load.tally.by_tool["create_note"] == 8 and load.tally.by_tool["get_note"] == 4
    assert result.logged_tool_calls == 0  # not crm-mcp: no tool= lines
    server, sandbox, _ = load.cpu
    assert server > 0 and sandbox < server
    assert "| SDK alone, 1 |" in bench.cpu_table([result])


def test_the_relaying_floor_sends_each_call_upstream(bench: ModuleType) -> None:
    """`--floor`'s second server relays each call as its tool's API request: the sandbox does the
    work (a create gives the sandbox's own id, which the next get_note reads back), and its row
    gives both CPUs and their ratio."""
    result = bench.run_benchmark(clients=4, calls=10, soak=0, deadline=120.0, floor="relay")
    load = result.load
    assert load.calls == 40 and load.tally.errors == 0, load.tally.messages
    assert load.tally.by_tool["create_note"] == 8 and load.tally.by_tool["get_note"] == 4
    assert result.logged_tool_calls == 0
    server, sandbox, _ = load.cpu
    assert server > 0 and sandbox > 0
    row = next(line for line in bench.cpu_table([result]).splitlines() if line.startswith("| SDK relaying, 1 |"))
    assert float(row.split("|")[-2]) > 0  # server/sandbox


def test_a_comparison_alternates_the_two_trees_and_gives_the_median_ratio(bench: ModuleType) -> None:
    """`--against DIR --pairs N`: each pair runs this tree then DIR, and the table gives each pair's
    figures and the median ratio of calls per second (here a tree against itself)."""
    pairs = bench.compare(bench.ROOT, bench.ROOT, pairs=2, clients=3, calls=10, deadline=120.0)
    assert len(pairs) == 2
    for mine, theirs in pairs:
        assert mine.load.calls == theirs.load.calls == 30
        assert mine.errors == theirs.errors == 0
    text = bench.pairs_table(pairs, bench.ROOT, bench.ROOT)
    rows = [line for line in text.splitlines() if line.startswith("| 1 |") or line.startswith("| 2 |")]
    assert len(rows) == 2
    median = float(text.split("median of the pairs: ")[1].split(" ")[0])
    ratios = [float(row.split("|")[4]) for row in rows]
    assert median == pytest.approx(sum(ratios) / 2, abs=0.011) and all(r > 0 for r in ratios)
    assert "errors: 0" in text


def test_flatness_verdict(bench: ModuleType) -> None:
    def soak(values: list[int]) -> object:
        return bench.SoakResult(calls=len(values) * 10, tally=bench.Tally(), wall=1.0,
                                samples=[(i * 10, v) for i, v in enumerate(values)], hwm_kib=max(values),
                                cpu=(0.0, 0.0, 0.0))

    warm_then_flat = soak([50_000, 70_000, *[80_000 + (i % 3) * 100 for i in range(38)]])
    assert warm_then_flat.flat and abs(warm_then_flat.slope_kib_per_1k) < 100
    leaking = soak([80_000 + i * 800 for i in range(40)])  # +800 KiB per 10 calls
    assert not leaking.flat and leaking.growth > 0.10
    assert leaking.slope_kib_per_1k == pytest.approx(80_000)
    assert not soak([80_000, 80_000]).flat  # too few samples to tell
