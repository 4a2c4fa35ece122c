"""OpenTelemetry: a span per tool call and per upstream HTTP request, and call metrics.

The `mcp` SDK opens a SERVER span per MCP request (`tools/call <name>`), parented on the
`traceparent` a client sends in the request's `_meta`. Ours nest under it:

- `execute_tool <tool>` (`traced_call`, around `crm_mcp.runtime.call_tool`): the tool, its status,
  duration and the API's request id; never an argument value or a secret;
- `<METHOD> <route template>` (`upstream_span`, around each HTTP attempt of `crm_mcp.client`), e.g.
  `GET /crm/contacts/{id}`: method, route template (never the concrete URL: it holds ids and filter
  values), status; its context goes to the upstream in the W3C `traceparent` header;
- metrics: `crm_mcp.tool.calls` and `crm_mcp.tool.errors` (counters) and `crm_mcp.tool.duration`
  (histogram, seconds) by tool and status; `http.client.request.duration` for upstream requests.

Everything goes through the OpenTelemetry API (a dependency of `mcp`). Until a tracer or meter
provider is installed the hooks step aside at once (`_off`): telemetry left unconfigured costs a
call about 5 µs, recorded and exported about 100 µs (tools/bench_telemetry.py). `configure()` installs
the SDK's providers, exporting over OTLP, when the optional SDK is installed
(`unified-crm-mcp[otel]`) and the standard OTEL_* variables ask for an exporter; the SDK itself
reads the rest of them (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, OTEL_EXPORTER_OTLP_HEADERS,
...). A provider installed by someone else (`opentelemetry-instrument`, a test) is used as it is.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Concatenate, NamedTuple, ParamSpec, TypeVar

from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from crm_mcp import __version__

log = logging.getLogger("crm_mcp.telemetry")

SERVICE_NAME = "crm-mcp"  # unless OTEL_SERVICE_NAME says otherwise
TOOL = "gen_ai.tool.name"  # the GenAI semantic conventions' name for it (the SDK's span uses it too)
STATUS = "crm_mcp.tool.status"  # ok, an HTTP status, invalid-arguments, internal-error, input-required, ...
REQUEST_ID = "crm_mcp.upstream.request_id"  # the API's request id of the call's last answer

_tracer = trace.get_tracer("crm_mcp", __version__)
# Only the W3C trace context goes upstream: baggage a client sent in _meta is its own data, not
# something to hand to a third party's API.
_upstream_propagator = TraceContextTextMapPropagator()


class _Instruments(NamedTuple):
    calls: Any
    errors: Any
    duration: Any
    upstream_duration: Any


@functools.cache
def _instruments() -> _Instruments:
    """The call metrics, created on first use: the metrics API is imported only by a server that
    records them (a few ms of start-up otherwise)."""
    from opentelemetry import metrics

    meter = metrics.get_meter("crm_mcp", __version__)
    return _Instruments(
        meter.create_counter("crm_mcp.tool.calls", unit="{call}", description="Tool calls"),
        meter.create_counter("crm_mcp.tool.errors", unit="{call}", description="Tool calls that failed"),
        meter.create_histogram("crm_mcp.tool.duration", unit="s", description="Tool call duration"),
        meter.create_histogram(
            "http.client.request.duration", unit="s", description="Upstream (Apideck API) request duration"
        ),
    )


# Read once: `_off` runs several times per call, and os.environ.get costs as much as the rest of it.
_METER_PROVIDER_NAMED = bool(os.environ.get("OTEL_PYTHON_METER_PROVIDER"))


def _metrics_off() -> bool:
    """No meter provider installed. Installing one takes importing the metrics API, or naming one in
    OTEL_PYTHON_METER_PROVIDER (which the API reads itself): without either, none can be."""
    if "opentelemetry.metrics" not in sys.modules and not _METER_PROVIDER_NAMED:
        return True
    from opentelemetry import metrics

    try:  # the API's stand-in until a meter provider is set (not exported by name)
        from opentelemetry.metrics._internal import _ProxyMeterProvider as unset
    except ImportError:  # moved in some later API: never step aside, the API's no-op still applies
        return False
    return isinstance(metrics.get_meter_provider(), unset)


def _off() -> bool:
    """No provider installed (the SDK is absent or not configured): nothing would be recorded."""
    return isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider) and _metrics_off()


# ------------------------------------------------------------------------------------- MCP requests

class RequestSpans:
    """The SDK's own span middleware (a `SERVER` span per MCP request, which it installs on every
    `Server`), run only while a provider is installed. Until then its span records nothing and
    our hooks step aside, so nothing reads the context it sets: skipping it saves each request the
    work of a span nobody sees (its attributes, the `_meta` trace context, the context switch:
    ~2.5% of a tool call's CPU over HTTP). Checked per request, so a provider installed later
    still gets every span."""

    def __init__(self, sdk_middleware: Any):
        self._sdk_middleware = sdk_middleware

    async def __call__(self, ctx: Any, call_next: Callable[[Any], Awaitable[Any]]) -> Any:
        if _off():
            return await call_next(ctx)
        return await self._sdk_middleware(ctx, call_next)


def skip_idle_request_spans(middleware: list[Any]) -> list[Any]:
    """A server's middleware list with the SDK's span middleware wrapped in `RequestSpans`."""
    try:
        from mcp.server._otel import OpenTelemetryMiddleware
    except ImportError:  # moved in a later SDK: left as it is, spans cost what they cost
        return middleware
    return [RequestSpans(m) if type(m) is OpenTelemetryMiddleware else m for m in middleware]


# ---------------------------------------------------------------------------------------- tool calls

P = ParamSpec("P")
R = TypeVar("R")


def traced_call(call_tool: Callable[Concatenate[Any, P], Awaitable[R]]) -> Callable[Concatenate[Any, P], Awaitable[R]]:
    """Wraps `runtime.call_tool(tool, arguments, run, ...)`: a span and the metrics per call."""

    @functools.wraps(call_tool)
    async def traced(tool: Any, *args: P.args, **kwargs: P.kwargs) -> R:
        if _off():
            return await call_tool(tool, *args, **kwargs)
        started = time.perf_counter()
        with _tracer.start_as_current_span(
            f"execute_tool {tool.name}", kind=SpanKind.INTERNAL,
            attributes={TOOL: tool.name, "gen_ai.operation.name": "execute_tool"},
        ) as span:
            result = await call_tool(tool, *args, **kwargs)
            seconds = time.perf_counter() - started
            _record_call(span, tool.name, result, seconds)
            return result

    return traced


def _record_call(span: trace.Span, tool: str, result: Any, seconds: float) -> None:
    failed = bool(getattr(result, "is_error", False))
    status = getattr(result, "status", None)
    if not hasattr(result, "is_error"):  # the delete confirmation's question, not a ToolResult
        status = "input-required"
    status = str(status if status is not None else ("error" if failed else "ok"))
    labels = {TOOL: tool, STATUS: status}
    instruments = _instruments()
    instruments.calls.add(1, labels)
    if failed:
        instruments.errors.add(1, labels)
    instruments.duration.record(seconds, labels)
    if not span.is_recording():
        return
    span.set_attribute(STATUS, status)
    span.set_attribute("crm_mcp.tool.duration_ms", round(seconds * 1000, 3))
    request_id = getattr(result, "request_id", None)
    if request_id:
        span.set_attribute(REQUEST_ID, request_id)
    if failed:
        span.set_attribute("error.type", status)
        span.set_status(StatusCode.ERROR)


# ---------------------------------------------------------------------------------- upstream requests

@contextmanager
def upstream_span(method: str, route: str, host: str, port: int | None,
                  headers: dict[str, str]) -> Iterator[Callable[[Any], None]]:
    """A CLIENT span around one HTTP exchange with the API (`host`, `port`), whose `traceparent` it
    puts in the request's `headers`; `route` is the operation's path template. Yields
    `done(outcome)`, to be given the exchange's outcome (an `ApiResponse`, or a failed attempt
    with its `error`)."""
    if _off():
        yield _ignore
        return
    started = time.perf_counter()
    labels: dict[str, Any] = {"http.request.method": method, "url.template": route, "server.address": host}
    with _tracer.start_as_current_span(f"{method} {route}", kind=SpanKind.CLIENT, attributes=labels) as span:
        _upstream_propagator.inject(headers)  # W3C traceparent (and tracestate) of this span
        if port is not None and span.is_recording():
            span.set_attribute("server.port", port)
        found: dict[str, Any] = {}

        def done(outcome: Any) -> None:
            error = getattr(outcome, "error", None)
            status = getattr(error if error is not None else outcome, "status", None)
            if status is not None:
                found["http.response.status_code"] = status
            if error is not None:  # an error status, else what failed (a timeout, a broken connection)
                found["error.type"] = str(status) if status is not None and status >= 400 else type(error).__name__

        yield done
        _instruments().upstream_duration.record(time.perf_counter() - started, {**labels, **found})
        if span.is_recording():
            span.set_attributes(found)
            if "error.type" in found:
                span.set_status(StatusCode.ERROR)


def _ignore(outcome: Any) -> None:
    return None


# ------------------------------------------------------------------------------------- configuration

_NONE = "none"


def configure(env: Mapping[str, str] | None = None) -> bool:
    """Install the OTel SDK's tracer and meter providers when OTEL_* asks for an exporter (an OTLP
    endpoint, or OTEL_TRACES_EXPORTER / OTEL_METRICS_EXPORTER of `otlp` or `console`). Returns
    whether it did. Without the SDK installed it logs how to get it and changes nothing."""
    env = os.environ if env is None else env
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    endpoint = any(env.get(f"OTEL_EXPORTER_OTLP{s}_ENDPOINT") for s in ("", "_TRACES", "_METRICS"))
    traces = _exporter_name(env, "OTEL_TRACES_EXPORTER", endpoint)
    metric = _exporter_name(env, "OTEL_METRICS_EXPORTER", endpoint)
    if traces == _NONE and metric == _NONE:
        return False
    protocol = env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf").strip().lower()
    if protocol != "http/protobuf":
        log.warning("OTEL_EXPORTER_OTLP_PROTOCOL=%s: only http/protobuf is shipped (port 4318); using it", protocol)
    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return False  # someone installed one already (e.g. opentelemetry-instrument): use it
    try:
        from opentelemetry import metrics
        from opentelemetry.exporter.otlp.proto.http import Compression  # noqa: F401  (the extra's exporter)
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import OTEL_SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning("OTEL_* variables ask for telemetry but the OpenTelemetry SDK is not installed: "
                    "install unified-crm-mcp[otel]. Telemetry stays off.")
        return False
    named = env.get(OTEL_SERVICE_NAME) or "service.name=" in env.get("OTEL_RESOURCE_ATTRIBUTES", "")
    attributes = {} if named else {"service.name": SERVICE_NAME}
    resource = Resource.create({**attributes, "service.version": __version__})
    if traces != _NONE:
        provider = TracerProvider(resource=resource)
        provider.add_span_processor(BatchSpanProcessor(_span_exporter(traces)))
        trace.set_tracer_provider(provider)
    if metric != _NONE:
        reader = PeriodicExportingMetricReader(_metric_exporter(metric))
        metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=[reader]))
    log.info("OpenTelemetry on: traces to %s, metrics to %s", traces, metric)
    return True


def _exporter_name(env: Mapping[str, str], variable: str, endpoint: bool) -> str:
    """`otlp`, `console` or `none`: what `variable` names (its first entry), else otlp when an
    endpoint is set. Other exporters are not shipped: said in the log, and treated as none."""
    given = env.get(variable, "").split(",")[0].strip().lower()
    name = given or ("otlp" if endpoint else _NONE)
    if name not in ("otlp", "console", _NONE):
        log.warning("%s=%s is not supported here (otlp, console or none); no export for it", variable, given)
        return _NONE
    return name


def _span_exporter(name: str) -> Any:
    if name == "console":  # stderr: in stdio mode stdout carries only protocol messages
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter(out=sys.stderr)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def _metric_exporter(name: str) -> Any:
    if name == "console":
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

        return ConsoleMetricExporter(out=sys.stderr)
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    return OTLPMetricExporter()
