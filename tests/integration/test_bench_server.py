"""tools/bench_server.py's part 1 at a reduced size, and the SDK-alone server it compares with."""

from __future__ import annotations

import anyio
import pytest
from bench_support import load_tool


def test_the_sdk_alone_server_skips_what_crm_mcp_skips() -> None:
    """The floor answers as crm-mcp does: it gives the SDK a `get_tool_input_schema` that finds no
    Mcp-Param-* declaration, so no tools/list runs inside an HTTP tools/call (it did, about 45% of
    the floor's CPU, which crm-mcp never paid); and its request spans wait for a provider."""
    from crm_mcp.config import Settings
    from crm_mcp.server import build_server
    from crm_mcp.telemetry import RequestSpans

    floor = load_tool("sdk_floor")
    server = floor.build(rows=3)
    assert server.get_tool_input_schema is not None
    assert all(server.get_tool_input_schema(name) is None for name in floor.TOOLS)
    ours = build_server(Settings(api_key="k", app_id="a", consumer_id="c", base_url="http://127.0.0.1:9"))
    assert [type(m) for m in server.middleware] == [type(m) for m in ours.middleware] == [RequestSpans]


@pytest.mark.slow  # four server processes and a sandbox process
def test_part_one_times_a_lean_client_and_reports_both_targets(capsys: pytest.CaptureFixture[str]) -> None:
    bench = load_tool("bench_server")
    with bench.sandbox_process() as base_url:
        found = anyio.run(bench.bench_calls, base_url, 3, 1, "auto", backend="asyncio")
    labels = [case[0] for case in bench.CASES]
    assert set(found["target"]) == {*labels, "floors"}
    for label in labels:
        target, detail = found["target"][label], found["breakdown"][label]
        assert len(target["mcp"]) == len(target["http"]) == 3
        assert {"mcp", "http", "sdk", "runtime", "inproc", "server_runtime"} <= set(detail)
        assert all(t > 0 for t in target["mcp"] + target["http"])
    assert len(found["breakdown"]["floors"]["sdk_alone_sdk"]) == 3
    pooled_ok, list_ok = bench.report_calls(found, 3, 1)
    out = capsys.readouterr().out
    assert "| all calls above (pooled) |" in out and "the SDK client's share" in out
    pooled = float(out.split("| all calls above (pooled) |")[1].split("|")[5])
    assert pooled_ok == (pooled <= bench.OVERHEAD_TARGET_MS)
    assert isinstance(list_ok, bool)
