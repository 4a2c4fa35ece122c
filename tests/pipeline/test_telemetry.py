"""OpenTelemetry (crm_mcp.telemetry): spans and metrics read from the OTel SDK's in-memory
exporters, through real MCP client sessions (in memory and over HTTP) against the sandbox over
real HTTP; and `configure()` exporting over OTLP to a receiver run by the test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import http_clients
import pytest
from mcp.client import Client
from mcp_support import sandbox_settings, serve_in_thread, text_of
from opentelemetry import metrics, propagate, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from crm_mcp import telemetry
from crm_mcp.client import RetryPolicy
from crm_mcp.http import build_http_app
from crm_mcp.sandbox.server import SandboxServer
from crm_mcp.server import build_server

pytestmark = pytest.mark.anyio

# A W3C trace context as a client that traces would send it in a request's _meta.
CLIENT_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN_ID = "00f067aa0ba902b7"
CLIENT_TRACEPARENT = f"00-{CLIENT_TRACE_ID}-{CLIENT_SPAN_ID}-01"


@pytest.fixture(scope="module")
def otel() -> Iterator[tuple[InMemorySpanExporter, InMemoryMetricReader]]:
    """The SDK's providers with in-memory exporters, for this module's tests only. OTel installs a
    provider once per process; left installed, it would turn telemetry on for every test that runs
    after these in the same process (a `traceparent` on their upstream requests). So the API's
    globals are put back afterwards, as OpenTelemetry's own test utilities do."""
    spans, reader = InMemorySpanExporter(), InMemoryMetricReader()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    trace.set_tracer_provider(provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    assert trace.get_tracer_provider() is provider, "another tracer provider was installed first"
    yield spans, reader
    from opentelemetry.metrics import _internal as metrics_internal
    from opentelemetry.util._once import Once

    trace._TRACER_PROVIDER_SET_ONCE = Once()
    trace._TRACER_PROVIDER = None
    metrics_internal._METER_PROVIDER_SET_ONCE = Once()
    metrics_internal._METER_PROVIDER = None


@pytest.fixture
def spans(otel: tuple[InMemorySpanExporter, InMemoryMetricReader]) -> InMemorySpanExporter:
    otel[0].clear()
    return otel[0]


@pytest.fixture
def reader(otel: tuple[InMemorySpanExporter, InMemoryMetricReader]) -> InMemoryMetricReader:
    return otel[1]


def named(spans: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in spans.get_finished_spans() if s.name == name]


def one(spans: InMemorySpanExporter, name: str) -> ReadableSpan:
    found = named(spans, name)
    assert len(found) == 1, [s.name for s in spans.get_finished_spans()]
    return found[0]


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def traceparent_of(span: ReadableSpan) -> str:
    ctx = span.get_span_context()
    assert ctx is not None
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


def points(reader: InMemoryMetricReader, name: str) -> dict[tuple[str, ...], float]:
    """A metric's data points by their attribute values: a counter's sum, a histogram's count."""
    found: dict[tuple[str, ...], float] = {}
    data = reader.get_metrics_data()
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name == name:
                    for dp in metric.data.data_points:
                        key = tuple(str(v) for v in (dp.attributes or {}).values())
                        found[key] = getattr(dp, "value", None) or dp.count  # type: ignore[union-attr]
    return found


async def test_tool_and_upstream_spans_nest_under_the_sdk_request_span(
    spans: InMemorySpanExporter, sandbox_server: SandboxServer
) -> None:
    settings = sandbox_settings(sandbox_server)
    async with Client(build_server(settings)) as client:
        result = await client.call_tool("get_contact", {"id": "con_0001"})
    assert not result.is_error, text_of(result)

    request = one(spans, "tools/call get_contact")  # the SDK's span of the MCP request
    tool = one(spans, "execute_tool get_contact")
    upstream = one(spans, "GET /crm/contacts/{id}")  # the route template, not /crm/contacts/con_0001
    assert request.kind == SpanKind.SERVER and tool.kind == SpanKind.INTERNAL and upstream.kind == SpanKind.CLIENT
    assert parent_of(tool) == request.context.span_id
    assert parent_of(upstream) == tool.context.span_id
    assert request.context.trace_id == tool.context.trace_id == upstream.context.trace_id

    assert tool.attributes is not None and upstream.attributes is not None
    assert tool.attributes[telemetry.TOOL] == "get_contact"
    assert tool.attributes[telemetry.STATUS] == "200"
    assert str(tool.attributes[telemetry.REQUEST_ID]).startswith("req_")
    assert float(tool.attributes["crm_mcp.tool.duration_ms"]) > 0  # type: ignore[arg-type]
    assert tool.status.status_code == StatusCode.UNSET
    assert {k: v for k, v in upstream.attributes.items() if k != "server.port"} == {
        "http.request.method": "GET",
        "url.template": "/crm/contacts/{id}",
        "server.address": "127.0.0.1",
        "http.response.status_code": 200,
    }
    # the sandbox received the upstream span's trace context
    # (the names of users the card points to come from one cached list_users read: not this request)
    seen = [r for r in sandbox_server.faults.requests
            if r.consumer == settings.consumer_id and r.path.startswith("/crm/contacts")]
    assert [(r.path, r.traceparent) for r in seen] == [("/crm/contacts/con_0001", traceparent_of(upstream))]


async def test_a_client_traceparent_in_meta_becomes_the_trace_over_http(
    spans: InMemorySpanExporter, sandbox_server: SandboxServer
) -> None:
    """A client that traces sends its context in the request's _meta (the SDK's client does, from
    the span current where it calls): the whole server side joins that trace."""
    settings = sandbox_settings(sandbox_server)
    app = build_http_app(build_server(settings), settings, host="127.0.0.1", port=0, token=None)
    agent = trace.get_tracer("test-agent")
    with serve_in_thread(app) as port:
        async with Client(f"http://127.0.0.1:{port}/mcp") as client:
            remote = propagate.extract({"traceparent": CLIENT_TRACEPARENT})
            with agent.start_as_current_span("agent turn", context=remote):
                result = await client.call_tool("list_contacts", {"limit": 2})
    assert not result.is_error, text_of(result)

    sent = one(spans, "MCP send tools/call list_contacts")  # the client's span, whose context went in _meta
    request = one(spans, "tools/call list_contacts")
    tool = one(spans, "execute_tool list_contacts")
    upstream = one(spans, "GET /crm/contacts")
    assert parent_of(request) == sent.context.span_id
    assert parent_of(tool) == request.context.span_id and parent_of(upstream) == tool.context.span_id
    assert {f"{s.context.trace_id:032x}" for s in (sent, request, tool, upstream)} == {CLIENT_TRACE_ID}
    seen = [r for r in sandbox_server.faults.requests
            if r.consumer == settings.consumer_id and r.path.startswith("/crm/contacts")]
    assert [r.traceparent for r in seen] == [traceparent_of(upstream)]


async def test_a_raw_traceparent_in_meta_parents_the_request_span(
    spans: InMemorySpanExporter, sandbox_server: SandboxServer
) -> None:
    """A client with no OpenTelemetry at all, writing `_meta.traceparent` itself (stateless HTTP,
    protocol 2025-11-25): the SDK's request span takes it as its parent, ours follow."""
    settings = sandbox_settings(sandbox_server)
    app = build_http_app(build_server(settings), settings, host="127.0.0.1", port=0, token=None)
    body = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {
        "name": "get_company", "arguments": {"id": "com_001"}, "_meta": {"traceparent": CLIENT_TRACEPARENT}}}
    headers = {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-11-25"}
    with serve_in_thread(app) as port:
        async with http_clients.async_client() as http:
            answer = await http.post(f"http://127.0.0.1:{port}/mcp", json=body, headers=headers)
    assert answer.status_code == 200, answer.text
    assert "com_001" in answer.text

    request = one(spans, "tools/call get_company")
    tool = one(spans, "execute_tool get_company")
    assert (f"{request.context.trace_id:032x}", f"{parent_of(request):016x}") == (CLIENT_TRACE_ID, CLIENT_SPAN_ID)
    assert parent_of(tool) == request.context.span_id
    assert f"{one(spans, 'GET /crm/companies/{id}').context.trace_id:032x}" == CLIENT_TRACE_ID


async def test_each_attempt_is_a_span_and_failures_are_marked(
    spans: InMemorySpanExporter, sandbox_server: SandboxServer
) -> None:
    settings = sandbox_settings(sandbox_server)
    retry = RetryPolicy(max_attempts=3, base_delay=0.001, max_delay=0.01)
    sandbox_server.faults.fail(503, methods={"GET"}, path="/crm/users")
    try:
        async with Client(build_server(settings, client_options={"retry": retry})) as client:
            retried = await client.call_tool("list_users", {"limit": 1})
            missing = await client.call_tool("get_user", {"id": "usr_missing"})
    finally:
        sandbox_server.faults.clear()
    assert not retried.is_error and missing.is_error

    tool = one(spans, "execute_tool list_users")
    attempts = named(spans, "GET /crm/users")
    assert [a.attributes["http.response.status_code"] for a in attempts if a.attributes] == [503, 200]
    assert [parent_of(a) for a in attempts] == [tool.context.span_id] * 2
    assert attempts[0].status.status_code == StatusCode.ERROR and attempts[1].status.status_code == StatusCode.UNSET

    failed = one(spans, "execute_tool get_user")
    assert failed.status.status_code == StatusCode.ERROR
    assert failed.attributes is not None and failed.attributes["error.type"] == "404"
    lookup = one(spans, "GET /crm/users/{id}")
    assert lookup.attributes is not None and lookup.attributes["error.type"] == "404"


async def test_metrics_count_calls_errors_and_latency(
    spans: InMemorySpanExporter, reader: InMemoryMetricReader, sandbox_server: SandboxServer
) -> None:
    def counts() -> tuple[dict[tuple[str, ...], float], ...]:
        return tuple(points(reader, n) for n in ("crm_mcp.tool.calls", "crm_mcp.tool.errors", "crm_mcp.tool.duration"))

    before = counts()
    async with Client(build_server(sandbox_settings(sandbox_server))) as client:
        for _ in range(2):
            assert not (await client.call_tool("list_notes", {"limit": 1})).is_error
        assert (await client.call_tool("get_note", {"id": "not_missing"})).is_error
        assert (await client.call_tool("list_notes", {"limit": 999})).is_error  # invalid arguments
    after = counts()

    def delta(i: int, key: tuple[str, ...]) -> float:
        return after[i].get(key, 0) - before[i].get(key, 0)

    ok, missing, invalid = ("list_notes", "200"), ("get_note", "404"), ("list_notes", "invalid-arguments")
    assert [delta(0, k) for k in (ok, missing, invalid)] == [2, 1, 1]  # calls
    assert [delta(1, k) for k in (ok, missing, invalid)] == [0, 1, 1]  # errors
    assert [delta(2, k) for k in (ok, missing, invalid)] == [2, 1, 1]  # latency samples
    upstream = points(reader, "http.client.request.duration")
    assert upstream[("GET", "/crm/notes/{id}", "127.0.0.1", "404", "404")] >= 1


async def test_no_argument_value_or_secret_reaches_any_attribute(
    spans: InMemorySpanExporter, reader: InMemoryMetricReader, sandbox_server: SandboxServer
) -> None:
    settings = sandbox_settings(sandbox_server)
    private = ("Zebulon", "Quixotic", "zeb.q@private.example", "+1 415 555 0142", "con_nosuch_77", settings.api_key)
    async with Client(build_server(settings)) as client:
        created = await client.call_tool("create_contact", {
            "first_name": "Zebulon", "last_name": "Quixotic",
            "emails": [{"email": "zeb.q@private.example", "type": "work"}],
            "phone_numbers": [{"number": "+1 415 555 0142", "type": "mobile"}]})
        assert not created.is_error, text_of(created)
        assert (await client.call_tool("get_contact", {"id": "con_nosuch_77"})).is_error
        found = await client.call_tool("list_contacts", {"filter": {"email": "zeb.q@private.example"}})
        assert "Zebulon" in text_of(found)
        assert (await client.call_tool("update_contact", {"id": "con_nosuch_77", "title": "Quixotic"})).is_error

    recorded = spans.get_finished_spans()
    assert {"execute_tool create_contact", "POST /crm/contacts", "GET /crm/contacts"} <= {s.name for s in recorded}
    everything = json.dumps(
        [[s.name, dict(s.attributes or {}), [dict(e.attributes or {}) for e in s.events], s.status.description]
         for s in recorded], default=str)
    everything += json.dumps(reader.get_metrics_data().to_json())  # type: ignore[union-attr]
    assert [p for p in private if p in everything] == []


def test_configure_does_nothing_without_an_exporter_asked_for() -> None:
    assert telemetry.configure({}) is False
    disabled = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_SDK_DISABLED": "true"}
    assert telemetry.configure(disabled) is False
    assert telemetry.configure({"OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none"}) is False


def run_python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("APIDECK_", "OTEL_", "CRM_MCP_"))}
    return subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True,
                          timeout=60)


@pytest.mark.slow  # a real server or subprocess, seconds of set-up: with the slow tests
def test_without_the_sdk_configure_says_how_to_get_it_and_tracing_stays_a_no_op() -> None:
    code = """
import logging, sys
sys.modules["opentelemetry.sdk"] = None  # as if unified-crm-mcp[otel] were not installed
logging.basicConfig(level=logging.INFO)
from opentelemetry import trace
from crm_mcp import telemetry
print(telemetry.configure())
print(type(trace.get_tracer_provider()).__name__)
"""
    done = run_python(code, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "ProxyTracerProvider"]
    assert "install unified-crm-mcp[otel]" in done.stderr


@pytest.mark.slow  # a subprocess (its own OTel globals), seconds of set-up: with the slow tests
def test_the_sdk_request_span_waits_for_a_provider_installed_after_the_server_was_built() -> None:
    """Without a provider the SDK's span middleware is stepped over (`telemetry.RequestSpans`); a
    provider installed while the server runs gets the request span from the next call on."""
    code = """
import anyio
from mcp.client import Client
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from crm_mcp.config import Settings
from crm_mcp.server import build_server
from crm_mcp.telemetry import RequestSpans

server = build_server(Settings(api_key="k", app_id="a", consumer_id="c", base_url="http://127.0.0.1:9"))
print(sum(isinstance(m, RequestSpans) for m in server.middleware))

async def main():
    async with Client(server) as client:
        first = await client.call_tool("get_contact", {})  # fails validation: no upstream request
        spans = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(spans))
        trace.set_tracer_provider(provider)
        second = await client.call_tool("get_contact", {})
    print(first.is_error, second.is_error)
    print(sorted(s.name for s in spans.get_finished_spans()))

anyio.run(main)
"""
    done = run_python(code, {})
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["1", "True True", "['execute_tool get_contact', 'tools/call get_contact']"]


@pytest.fixture
def otlp_receiver() -> Iterator[tuple[str, list[tuple[str, bytes]]]]:
    """An OTLP/HTTP receiver: records each export's path and protobuf body, answers 200."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    received: list[tuple[str, bytes]] = []

    async def export(request: Request) -> Response:
        received.append((request.url.path, await request.body()))
        return Response(b"", media_type="application/x-protobuf")

    app = Starlette(routes=[Route("/v1/traces", export, methods=["POST"]),
                            Route("/v1/metrics", export, methods=["POST"])])
    with serve_in_thread(app) as port:
        yield f"http://127.0.0.1:{port}", received


@pytest.mark.slow  # a real server or subprocess, seconds of set-up: with the slow tests
def test_configure_exports_over_otlp_from_the_standard_variables(
    otlp_receiver: tuple[str, list[tuple[str, bytes]]],
) -> None:
    """`crm-mcp call` on the embedded sandbox, told by OTEL_* where to export: the spans and metrics
    arrive at the OTLP endpoint, under OTEL_SERVICE_NAME."""
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    endpoint, received = otlp_receiver
    done = run_python("from crm_mcp.cli import main; raise SystemExit(main(['call', 'list_users', '{}']))", {
        "CRM_MCP_SANDBOX_DB": ":memory:",
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_SERVICE_NAME": "crm-mcp-test",
    })
    assert done.returncode == 0, done.stderr
    traces = [ExportTraceServiceRequest.FromString(body) for path, body in received if path == "/v1/traces"]
    exported = {
        span.name: {a.key for a in span.attributes}
        for request in traces for rs in request.resource_spans
        if {a.key: a.value.string_value for a in rs.resource.attributes}["service.name"] == "crm-mcp-test"
        for ss in rs.scope_spans for span in ss.spans
    }
    assert exported.keys() == {"execute_tool list_users", "GET /crm/users"}
    assert {telemetry.TOOL, telemetry.STATUS} <= exported["execute_tool list_users"]
    series = [ExportMetricsServiceRequest.FromString(body) for path, body in received if path == "/v1/metrics"]
    names = {m.name for r in series for rm in r.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    assert {"crm_mcp.tool.calls", "crm_mcp.tool.duration", "http.client.request.duration"} <= names
