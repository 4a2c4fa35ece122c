"""Helpers for the security tests (tests/security/): a blocking MCP client session, hypothesis
strategies for every tool's arguments (valid and invalid) built from the published input schema and
the pydantic argument model, leak checks, a recording transport, an HTTP server in a thread, and a
scripted upstream (a real HTTP server on loopback that answers as a test tells it to)."""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx2
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import strategies as st
from mcp.client import Client
from mcp_support import CUSTOM_SCHEMA, SEED_IDS, text_of
from pydantic import ValidationError

import crm_mcp
from crm_mcp.client import tls_context
from crm_mcp.config import Settings
from crm_mcp.operations import Operation, operation
from crm_mcp.render import FRAME
from crm_mcp.server import build_server
from crm_mcp.tool_args import args_model, with_consumer_arguments
from crm_mcp.tools import Tool, operation_tools

# What a result must never show: a traceback, a source location, the validation library, our paths.
INTERNAL_MARKERS = (
    "Traceback",
    'File "',
    "pydantic",
    "/work/",
    "site-packages",
    "crm_mcp/",
    ".py\"",
    ".py,",
    "errors.pydantic.dev",
    "line ",  # as in 'File "x.py", line 12'
)
_LINE_N = re.compile(r"\bline \d+\b")
# A module path of ours (as a traceback or a repr shows it: crm_mcp.runtime, crm_mcp.sandbox.store);
# not any "crm_mcp." text: Hypothesis draws values from the code's own string constants (such as the
# telemetry attribute "crm_mcp.tool.status"), and an earlier example may have stored one in a record.
_MODULE_PATH = re.compile(
    r"\bcrm_mcp\.(?:" + "|".join(sorted(p.stem for p in Path(crm_mcp.__file__).parent.glob("*.py"))
                            + [d.name for d in Path(crm_mcp.__file__).parent.iterdir() if (d / "__init__.py").exists()])
    + r")\b"
)


def internal_details(text: str) -> list[str]:
    """The internal-detail markers found in `text` (empty when clean)."""
    found = [m for m in INTERNAL_MARKERS if m != "line " and m in text]
    if _LINE_N.search(text):
        found.append("line <n>")
    if _MODULE_PATH.search(text):
        found.append("crm_mcp.<module>")
    return found


def names_field(text: str, field: str) -> bool:
    """Whether an error message names `field` as the argument at fault: 'Invalid arguments for t: field: ...'
    (or 'field.sub: ...' for a nested value), or the client's 'Invalid argument `field` ...'."""
    return f"`{field}`" in text or re.search(rf"(?:: |; ){re.escape(field)}[.:]", text) is not None


def result_blob(result: Any) -> str:
    """Everything a tool result carries to the agent: text content and structured content."""
    structured = json.dumps(result.structured_content, ensure_ascii=False) if result.structured_content else ""
    return text_of(result) + "\n" + structured


# ----------------------------------------------------------------------------- a blocking session


class BlockingSession:
    """A real MCP client session (in memory) run in a background event loop, callable from sync code
    (so that hypothesis drives it example by example without an event loop per example)."""

    def __init__(self, portal: BlockingPortal, client: Client):
        self.portal = portal
        self.client = client

    def call(self, name: str, arguments: dict[str, Any] | None = None) -> Any:
        return self.portal.call(self.client.call_tool, name, arguments)

    def list_tools(self) -> Any:
        return self.portal.call(self.client.list_tools)


@contextmanager
def blocking_session(settings: Settings, *, transport: Any = None) -> Iterator[BlockingSession]:
    """`Client(build_server(settings), raise_exceptions=False)` open in a portal for the block."""
    with ExitStack() as stack:
        portal = stack.enter_context(start_blocking_portal(backend="asyncio"))
        server = build_server(settings, transport=transport)
        client = stack.enter_context(portal.wrap_async_context_manager(Client(server, raise_exceptions=False)))
        yield BlockingSession(portal, client)


def assert_serving(session: BlockingSession) -> None:
    """The server still answers a normal call normally."""
    page = session.call("list_users", {"limit": 2})
    assert not page.is_error, text_of(page)
    assert "usr_" in text_of(page)
    assert FRAME in text_of(page).splitlines()[0]


# ----------------------------------------------------------------------------- tool schemas


def tools() -> tuple[Tool, ...]:
    """The operation tools as a server of `settings_for` (per-call consumers on) lists them."""
    return tuple(replace(t, input_schema=with_consumer_arguments(t.input_schema)) for t in operation_tools())


# The attacks run with per-call consumer switching on (`settings_for`), its arguments the riskiest
# (they choose the tenant); off, the default, refuses them outright (tests/registry/test_schemas.py).
def full_schema(op: Operation) -> dict[str, Any]:
    """The argument model's own JSON schema (with types, bounds, $defs): what validation enforces."""
    return args_model(op, True).model_json_schema(by_alias=True)


def accepts(op: Operation, arguments: dict[str, Any]) -> bool:
    try:
        args_model(op, True).model_validate(arguments)
    except ValidationError:
        return False
    return True


def _resolve(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = defs[schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def json_types(schema: dict[str, Any], defs: dict[str, Any]) -> set[str] | None:
    """The JSON types a schema accepts (None: any value). 'enum' stands for a closed string set."""
    schema = _resolve(schema, defs)
    if "anyOf" in schema or "oneOf" in schema:
        out: set[str] = set()
        for sub in schema.get("anyOf") or schema.get("oneOf"):
            kinds = json_types(sub, defs)
            if kinds is None:
                return None
            out |= kinds
        return out
    if "enum" in schema:
        return {"enum"}
    if "const" in schema:
        return {"enum"}
    kind = schema.get("type")
    if kind is None:
        return None
    kinds = set(kind) if isinstance(kind, list) else {kind}
    if "number" in kinds:
        kinds.add("integer")  # an int is a valid number (strict mode included)
    return kinds


# Text that is safe in every string field: printable, no control characters.
SAFE_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zl", "Zp")), max_size=12
)


def value_strategy(schema: dict[str, Any], defs: dict[str, Any], depth: int = 0) -> st.SearchStrategy[Any]:
    """Values valid for `schema` (a pydantic JSON schema), small and JSON-safe."""
    schema = _resolve(schema, defs)
    if depth > 4:
        return st.none()
    if "anyOf" in schema or "oneOf" in schema:
        subs = [s for s in (schema.get("anyOf") or schema.get("oneOf")) if _resolve(s, defs).get("type") != "null"]
        return st.one_of([value_strategy(s, defs, depth) for s in subs]) if subs else st.none()
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "const" in schema:
        return st.just(schema["const"])
    kind = schema.get("type")
    if kind == "string":
        if "pattern" in schema:
            return st.from_regex(schema["pattern"], fullmatch=True).filter(lambda s: len(s) <= 40)
        low = schema.get("minLength", 0)
        return st.text(
            alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")),
            min_size=low,
            max_size=min(schema.get("maxLength", 20), max(low, 20)),
        )
    if kind == "integer":
        return st.integers(min_value=schema.get("minimum", -1000), max_value=schema.get("maximum", 100_000))
    if kind == "number":
        low, high = schema.get("minimum", -1e9), schema.get("maximum", 1e9)
        return st.floats(min_value=low, max_value=high, allow_nan=False, allow_infinity=False) | st.integers(
            min_value=int(low), max_value=int(high)
        )
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "array":
        items = schema.get("items", {})
        return st.lists(value_strategy(items, defs, depth + 1), max_size=min(schema.get("maxItems", 3), 3))
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        required = set(schema.get("required", []))
        fixed = {k: value_strategy(v, defs, depth + 1) for k, v in props.items() if k in required}
        optional = {k: value_strategy(v, defs, depth + 1) for k, v in props.items() if k not in required}
        extra = schema.get("additionalProperties")
        if not props and isinstance(extra, dict):
            return st.dictionaries(st.from_regex(r"[a-z_]{1,8}", fullmatch=True),
                                   value_strategy(extra, defs, depth + 1), max_size=2)
        return st.fixed_dictionaries(fixed, optional=optional)
    return SAFE_TEXT | st.integers(min_value=-1000, max_value=1000) | st.booleans()  # any value


def path_id_strategy(op: Operation, name: str) -> st.SearchStrategy[str]:
    if name == "object_id":
        return st.just(CUSTOM_SCHEMA)
    seed = SEED_IDS.get(op.resource)
    plain = st.from_regex(r"[A-Za-z0-9_-]{1,24}", fullmatch=True)
    return (st.just(seed) | plain) if seed else plain


# Arguments the valid strategy leaves out: they choose the tenant and connector (tested separately).
TENANT_ARGS = ("consumer_id", "service_id")


def valid_arguments(op: Operation) -> st.SearchStrategy[dict[str, Any]]:
    """Arguments the tool's model accepts, drawn from its schema (path ids from the seed or plain)."""
    schema = full_schema(op)
    defs = schema.get("$defs", {})
    props = {k: v for k, v in schema.get("properties", {}).items() if k not in TENANT_ARGS}
    required = set(schema.get("required", []))
    fixed: dict[str, st.SearchStrategy[Any]] = {}
    optional: dict[str, st.SearchStrategy[Any]] = {}
    for name, sub in props.items():
        strategy = path_id_strategy(op, name) if name in op.path_params else value_strategy(sub, defs)
        (fixed if name in required else optional)[name] = strategy
    return st.fixed_dictionaries(fixed, optional=optional).filter(lambda a: accepts(op, a))


# Values of every JSON type, to put where the schema wants another.
WRONG_VALUES: dict[str, list[Any]] = {
    "string": ["text", "", "x" * 300],
    "integer": [7, -1, 10**12],
    "number": [2.5],
    "boolean": [True, False],
    "array": [["a", 1], []],
    "object": [{"k": "v"}, {}],
    "null": [None],
}
HOSTILE_IDS = ["..", ".", "../users", "a/b", "a\\b", "", "x" * 300, "a\x00b", "a\r\nb", "con_0001/../../users"]
HOSTILE_HEADER_VALUES = ["a\r\nx-apideck-consumer-id: other", "a\nb", "\x00", "", "x" * 300]


def _wrong_values(sub: dict[str, Any], defs: dict[str, Any]) -> list[Any]:
    kinds = json_types(sub, defs)
    if kinds is None:
        return []
    out = [v for kind, values in WRONG_VALUES.items() if kind not in kinds for v in values if v is not None]
    resolved = _resolve(sub, defs)
    for alt in resolved.get("anyOf", [resolved]):
        alt = _resolve(alt, defs)
        if "enum" in alt:
            out.append("not-one-of-the-values")
        if "maximum" in alt:
            out.append(alt["maximum"] + 1)
        if "minimum" in alt:
            out.append(alt["minimum"] - 1)
        if "maxLength" in alt:
            out.append("y" * (alt["maxLength"] + 1))
        if "pattern" in alt:
            out.append("no spaces allowed here!")
        if alt.get("type") == "array" and "maxItems" in alt:
            out.append(["a"] * (alt["maxItems"] + 1))
        if alt.get("type") == "array" and alt.get("items"):
            out.extend([[v] for v in _wrong_values(alt["items"], defs)[:2]])
    return out


def invalid_arguments(op: Operation) -> st.SearchStrategy[tuple[dict[str, Any], str]]:
    """(arguments, the field they get wrong): one mutation of valid arguments — an unknown argument,
    a required one left out, a value of the wrong type or out of bounds, a hostile id or header value."""
    schema = full_schema(op)
    defs = schema.get("$defs", {})
    props = schema.get("properties", {})
    required = list(schema.get("required", []))
    base = valid_arguments(op)

    mutations: list[st.SearchStrategy[tuple[dict[str, Any], str]]] = []
    unknown = st.from_regex(r"[a-z][a-z_]{2,15}", fullmatch=True).filter(lambda n: n not in props)
    mutations.append(st.tuples(base, unknown, value_strategy({}, defs)).map(lambda t: ({**t[0], t[1]: t[2]}, t[1])))
    if required:
        mutations.append(
            st.tuples(base, st.sampled_from(required)).map(
                lambda t: ({k: v for k, v in t[0].items() if k != t[1]}, t[1])
            )
        )
    wrong = [
        (name, value)
        for name, sub in props.items()
        if name not in op.path_params
        for value in _wrong_values(sub, defs)
    ]
    mutations.append(st.tuples(base, st.sampled_from(wrong)).map(lambda t: ({**t[0], t[1][0]: t[1][1]}, t[1][0])))
    # the schema-derived guesses are kept only when the model refuses them (a field may accept anything);
    # hostile ids and header values are invalid whatever the model says
    hostile = [(name, value) for name in op.path_params for value in HOSTILE_IDS]
    hostile += [(name, value) for name in TENANT_ARGS for value in HOSTILE_HEADER_VALUES]
    definite = st.tuples(base, st.sampled_from(hostile)).map(lambda t: ({**t[0], t[1][0]: t[1][1]}, t[1][0]))
    return st.one_of(st.one_of(mutations).filter(lambda t: not accepts(op, t[0])), definite)


# ----------------------------------------------------------------------------- HTTP and sandbox


class RecordingTransport(httpx2.AsyncBaseTransport):
    """Sends over real HTTP and records every request exactly as it went out."""

    def __init__(self) -> None:
        self.inner = httpx2.AsyncHTTPTransport(verify=tls_context())
        self.requests: list[httpx2.Request] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        await request.aread()
        self.requests.append(request)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def tenant_headers(consumer: str, api_key: str = "sandbox-test-key") -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}", "x-apideck-app-id": "test-app", "x-apideck-consumer-id": consumer}


def new_consumer(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def settings_for(base_url: str, consumer: str, api_key: str = "test-secret-key") -> Settings:
    return Settings(api_key=api_key, app_id="test-app", consumer_id=consumer, base_url=base_url, per_call_consumer=True)


def operation_of(tool: Tool) -> Operation:
    return tool.operation or operation(tool.name)


# ----------------------------------------------------------------------------- a scripted upstream


class UpstreamHandler(BaseHTTPRequestHandler):
    """One request to a `LoopbackUpstream`: its `answer` writes the response, as it likes."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are written apart: no 40 ms delayed-ACK stall
    server: LoopbackServer

    def _any(self) -> None:
        size = int(self.headers.get("content-length") or 0)
        self.body = self.rfile.read(size) if size else b""
        self.server.seen.append((self.command, self.path))
        self.server.answer(self)

    do_GET = do_POST = do_PATCH = do_DELETE = _any

    def reply(self, status: int, body: bytes | str, headers: dict[str, str] | None = None) -> None:
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        for name, value in {"content-type": "application/json", **(headers or {})}.items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # the base class names it `format`
        pass


class LoopbackServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, answer: Callable[[UpstreamHandler], None]) -> None:
        super().__init__(("127.0.0.1", 0), UpstreamHandler)
        self.answer = answer
        self.seen: list[tuple[str, str]] = []


@contextmanager
def loopback_upstream(answer: Callable[[UpstreamHandler], None]) -> Iterator[LoopbackServer]:
    """A real HTTP server on 127.0.0.1 in a thread, answering every request with `answer(handler)`;
    its base URL is `f"http://127.0.0.1:{server.server_port}"`."""
    server = LoopbackServer(answer)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
