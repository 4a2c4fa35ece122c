"""Benchmark of the telemetry hooks' own cost per tool call (crm_mcp.telemetry).

    python tools/bench_telemetry.py [--calls N]

One tool call costs our hooks one `traced_call` (the tool span and the call metrics) and one
`upstream_span` per HTTP attempt (the upstream span, the traceparent header, the latency
histogram). Both are timed around work that does nothing, so what is measured is the hooks alone,
in three fresh processes: no provider installed (the OpenTelemetry API's no-op: the SDK not
installed, or no OTEL_* exporter configured), and the SDK's providers as `configure()` installs
them (batch span processor, periodic metric reader) with an exporter that drops everything, with
and without a recording sampler. Compare with bench_server.py's per-call figures (milliseconds).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MODES = {
    "none": "no provider (API no-op: SDK absent or no exporter configured)",
    "sdk": "SDK providers, spans recorded and exported (to a drop exporter)",
    "sdk-unsampled": "SDK providers, OTEL_TRACES_SAMPLER=always_off",
}


def measure(mode: str, calls: int) -> dict[str, float]:
    """Run in the child: install the providers `mode` asks for, then time the hooks."""
    import anyio

    if mode != "none":
        from opentelemetry import metrics, trace
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, PeriodicExportingMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
        from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON

        class DropSpans(SpanExporter):
            def export(self, spans: Any) -> SpanExportResult:
                return SpanExportResult.SUCCESS

        class DropMetrics(MetricExporter):
            def export(self, metrics_data: Any, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
                return MetricExportResult.SUCCESS

            def force_flush(self, timeout_millis: float = 10_000) -> bool:
                return True

            def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
                return None

        provider = TracerProvider(sampler=ALWAYS_OFF if mode == "sdk-unsampled" else ALWAYS_ON)
        provider.add_span_processor(BatchSpanProcessor(DropSpans()))
        trace.set_tracer_provider(provider)
        metrics.set_meter_provider(MeterProvider(metric_readers=[PeriodicExportingMetricReader(DropMetrics())]))

    from crm_mcp import telemetry
    from crm_mcp.runtime import ToolResult

    class Tool:
        name = "get_contact"

    answer = ToolResult("ok", status=200, request_id="req_1")

    async def call(tool: Any) -> ToolResult:
        return answer

    traced = telemetry.traced_call(call)

    class Outcome:
        status = 200

    async def run() -> dict[str, float]:
        samples: dict[str, list[float]] = {"tool": [], "upstream": [], "bare": []}
        for i in range(calls + 200):  # the first 200: warm-up
            t0 = time.perf_counter()
            await call(Tool)
            t1 = time.perf_counter()
            await traced(Tool)
            t2 = time.perf_counter()
            headers = {"Accept": "application/json"}
            t3 = time.perf_counter()
            with telemetry.upstream_span("GET", "/crm/contacts/{id}", "127.0.0.1", 4010, headers) as done:
                done(Outcome)
            t4 = time.perf_counter()
            if i >= 200:
                samples["bare"].append(t1 - t0)
                samples["tool"].append(t2 - t1)
                samples["upstream"].append(t4 - t3)
        bare = statistics.median(samples["bare"])
        return {
            "tool": (statistics.median(samples["tool"]) - bare) * 1e6,
            "upstream": statistics.median(samples["upstream"]) * 1e6,
        }

    return anyio.run(run)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--child", choices=list(MODES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.calls)))
        return 0
    print(f"## telemetry hooks: median cost per call ({args.calls} calls, µs)\n")
    print("| providers | tool span + metrics | upstream span + traceparent + histogram | one call, one request |")
    print("|---|---|---|---|")
    for mode, label in MODES.items():
        out = subprocess.run(
            [sys.executable, __file__, "--child", mode, "--calls", str(args.calls)],
            check=True, capture_output=True, text=True, cwd=ROOT,
        ).stdout
        row = json.loads(out)
        print(f"| {label} | {row['tool']:.1f} | {row['upstream']:.1f} | {row['tool'] + row['upstream']:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
