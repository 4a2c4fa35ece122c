"""tools/bench_load.py's CPU table, from given figures (no servers): the floors' rows and the line
that sets crm-mcp's own code against the sandbox."""

from __future__ import annotations

from types import SimpleNamespace

from bench_support import load_tool


def _result(floor: str | None, workers: int, server_s: float, sandbox_s: float) -> SimpleNamespace:
    load = SimpleNamespace(cpu=(server_s, sandbox_s, 0.0), calls=1000, wall=2.0)
    return SimpleNamespace(load=load, floor=floor, workers=workers)


def test_the_table_gives_each_server_and_what_crm_mcp_adds_to_the_relaying_sdk() -> None:
    bench = load_tool("bench_load")
    text = bench.cpu_table([_result(None, 1, 1.2, 0.8), _result(None, 2, 1.3, 0.8),
                            _result("sdk", 1, 0.3, 0.0), _result("relay", 1, 0.9, 0.85)])
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in text.splitlines() if line.startswith("| ") and "workers" not in line}
    assert rows["1"] == ["500.0", "1.20", "0.80", "1.50"]
    assert rows["2"] == ["500.0", "1.30", "0.80", "1.62"]
    assert rows["SDK alone, 1"] == ["500.0", "0.30", "-", "-"]
    assert rows["SDK relaying, 1"] == ["500.0", "0.90", "0.85", "1.06"]
    assert text.endswith("0.30 ms/call, 0.37x the sandbox's CPU per call")  # (1.2 - 0.9) / 0.8


def test_without_the_relaying_floor_there_is_no_such_line() -> None:
    bench = load_tool("bench_load")
    text = bench.cpu_table([_result(None, 1, 1.2, 0.8), _result("sdk", 1, 0.3, 0.0)])
    assert "own code" not in text and "| SDK alone, 1 |" in text
