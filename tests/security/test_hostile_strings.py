"""Hostile strings in tool arguments cannot change a request's path, query keys, headers or tenant.

Tenant A calls the tools through a real MCP session whose API client sends through a recording
transport; every request that went out is checked exactly (raw path, query keys, header names and
values). Ids like '../users', '..', '%2e%2e', 'a/b'; consumer_id / service_id with CR/LF (header
injection) or naming tenant B with edge whitespace; very long strings; control characters. Tenant
B's records, and what the sandbox saw from B, are unchanged afterwards."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote

import http_clients
import httpx2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp_support import CUSTOM_SCHEMA, UPDATE_ARGS, text_of
from security_support import (
    BlockingSession,
    RecordingTransport,
    assert_serving,
    blocking_session,
    internal_details,
    names_field,
    new_consumer,
    settings_for,
    tenant_headers,
)
from sweeps import split_sweep

from crm_mcp.operations import OPERATIONS, Operation

HOSTILE_IDS = [
    "..", ".", "../users", "../../crm/users", "%2e%2e", "%2E%2E%2Fusers", "..%2f..%2fusers", "a/b", "a\\b",
    "con_0001/../../users", "?limit=200", "#top", "a%2Fb", "a;b=c", " ", "\u2028", "a\r\nX-Injected: 1",
    "a\x00b", "a\tb", "x" * 5000, "ü/../ü",
]
ALLOWED_HEADERS = {
    "host", "authorization", "x-apideck-app-id", "x-apideck-consumer-id", "x-apideck-service-id",
    "content-type", "accept", "user-agent", "accept-encoding", "connection", "content-length",
}
ID_TOOLS = [op for op in OPERATIONS if op.path_params and "id" in op.path_params]


@dataclass
class World:
    session: BlockingSession
    transport: RecordingTransport
    a: str
    b: str
    sandbox: Any
    b_snapshot: dict[str, Any]
    b_contact: str


def snapshot(base_url: str, consumer: str) -> dict[str, Any]:
    """Every record tenant `consumer` has, resource by resource (all pages)."""
    out: dict[str, Any] = {}
    with http_clients.sync_client(base_url=base_url, headers=tenant_headers(consumer)) as http:
        for op in OPERATIONS:
            if op.action != "list":
                continue
            path = op.path.replace("{object_id}", CUSTOM_SCHEMA)
            records: list[Any] = []
            params: dict[str, Any] = {"limit": 200}
            while True:
                page = http.get(path, params=params)
                assert page.status_code == 200, page.text
                body = page.json()
                records += body["data"]
                cursor = (body.get("meta") or {}).get("cursors", {}).get("next")
                if not cursor:
                    break
                params["cursor"] = cursor
            out[path] = sorted(records, key=lambda r: json.dumps(r, sort_keys=True))
    return out


@pytest.fixture(scope="module")
def world(sandbox_server: Any) -> Iterator[World]:
    a, b = new_consumer("sec-tenant-a"), new_consumer("sec-tenant-b")
    with http_clients.sync_client(base_url=sandbox_server.base_url, headers=tenant_headers(b)) as http:
        made = http.post("/crm/contacts", json={"first_name": "Bea", "last_name": "Tenant-B"})
        assert made.status_code == 201, made.text
        b_contact = made.json()["data"]["id"]
    transport = RecordingTransport()
    with blocking_session(settings_for(sandbox_server.base_url, a), transport=transport) as session:
        assert_serving(session)  # tenant A is seeded
        yield World(session, transport, a, b, sandbox_server, snapshot(sandbox_server.base_url, b), b_contact)


# A tenant's first read also reads the users and pipelines that name its records (crm_mcp.names),
# alongside the tool's own request: fixed paths and query, whatever the tool was given.
NAMES_READS = (b"/crm/users?limit=200", b"/crm/pipelines?limit=200")


def sent_by(world: World, name: str, arguments: dict[str, Any]) -> tuple[Any, list[httpx2.Request]]:
    """Call a tool; return its result and the requests it made for it. A names read it made
    along the way is checked here (fixed path and query, the same tenant headers as the tool's
    own request) and left out."""
    before = len(world.transport.requests)
    result = world.session.call(name, arguments)
    assert not internal_details(text_of(result)), text_of(result)
    sent = world.transport.requests[before:]
    own = [r for r in sent if r.url.raw_path not in NAMES_READS]
    for request in sent:
        if request.url.raw_path in NAMES_READS:
            # only beside a request of the tool's own: a call refused before sending sends no names read
            assert request.method == "GET" and own, (request.url, name, arguments, text_of(result)[:200])
            names = {k.lower() for k in request.headers}
            assert names <= ALLOWED_HEADERS, names - ALLOWED_HEADERS
            for header in ("authorization", "x-apideck-consumer-id", "x-apideck-service-id"):
                assert request.headers.get_list(header) == own[0].headers.get_list(header), header
    return result, own


def check_headers(world: World, request: httpx2.Request, consumer: str, service: str | None = None) -> None:
    names = {k.lower() for k in request.headers}
    assert names <= ALLOWED_HEADERS, names - ALLOWED_HEADERS
    for key, value in request.headers.raw:
        assert b"\r" not in value and b"\n" not in value and b"\x00" not in value, (key, value)
    assert request.headers.get_list("x-apideck-consumer-id") == [consumer]
    assert request.headers.get_list("authorization") == ["Bearer test-secret-key"]
    assert request.headers.get_list("x-apideck-service-id") == ([service] if service else [])


def expected_path(op: Operation, params: dict[str, str]) -> bytes:
    path = op.path
    for name, value in params.items():
        path = path.replace("{" + name + "}", quote(value, safe=""))
    return path.encode("ascii")


def assert_b_unchanged(world: World) -> None:
    assert snapshot(world.sandbox.base_url, world.b) == world.b_snapshot
    for request in world.transport.requests:
        assert request.headers.get("x-apideck-consumer-id") != world.b


# contacts' tools in the inner loop, every resource's with the slow tests
@pytest.mark.parametrize("op", split_sweep(ID_TOOLS, fast=lambda op: op.resource == "contacts",
                                           ids=lambda op: op.tool_name))
def test_hostile_ids_stay_one_path_segment_or_nothing_is_sent(world: World, op: Operation) -> None:
    b_seen = world.sandbox.faults.count(consumer=world.b)
    for hostile in HOSTILE_IDS:
        arguments: dict[str, Any] = {"id": hostile}
        path_params = {"id": hostile}
        if "object_id" in op.path_params:
            arguments["object_id"] = path_params["object_id"] = CUSTOM_SCHEMA
        if op.action == "update":
            arguments.update(UPDATE_ARGS[op.resource])
        result, requests = sent_by(world, op.tool_name, arguments)
        assert result.is_error, f"{op.tool_name}(id={hostile!r}) reached a record: {text_of(result)}"
        if not requests:  # refused before sending: the error names the argument
            assert names_field(text_of(result), "id"), text_of(result)
            continue
        for request in requests:  # an update may read the record first: every request is checked
            assert request.url.raw_path == expected_path(op, {**path_params, "id": hostile}), (hostile, request.url)
            assert request.url.query == b"", request.url
            assert request.method in (op.method.upper(), "GET")
            check_headers(world, request, world.a)
        # and the sandbox read the id back as the same single segment: nothing found
        assert "HTTP 404" in text_of(result), text_of(result)
    assert world.sandbox.faults.count(consumer=world.b) == b_seen
    assert_serving(world.session)


def test_hostile_object_ids_stay_one_path_segment(world: World) -> None:
    for op in (o for o in OPERATIONS if "object_id" in o.path_params):
        for hostile in HOSTILE_IDS[:12]:
            arguments = {"object_id": hostile, **({"id": "cob_001"} if "id" in op.path_params else {})}
            result, requests = sent_by(world, op.tool_name, arguments)
            assert result.is_error
            for request in requests:
                assert request.url.raw_path.startswith(b"/crm/custom-objects/" + quote(hostile, safe="").encode())
                assert request.url.raw_path.count(b"/") == op.path.count("/")
                check_headers(world, request, world.a)


def _header_attacks(b: str) -> list[str]:
    return [
        f"{b}\r\nx-apideck-consumer-id: {b}", f"x\r\nx-apideck-consumer-id: {b}", f"\r\n{b}", f"{b}\n", f"{b}\r",
        f"{b}\x00", f"{b}\t", f" {b}", f"{b} ", f"{b}\u2028", f"{b}\x85", "x\r\nAuthorization: Bearer stolen",
        "x\r\n\r\nGET /crm/users HTTP/1.1", "é" + b, "x" * 5000,
    ]


@pytest.mark.parametrize("argument", ["consumer_id", "service_id"])
def test_header_injection_in_consumer_and_service_ids_sends_nothing(world: World, argument: str) -> None:
    calls = [
        ("list_contacts", {"limit": 1}),
        ("get_contact", {"id": world.b_contact}),
        ("update_contact", {"id": world.b_contact, "title": "pwned"}),
        ("delete_contact", {"id": world.b_contact}),
        ("create_note", {"title": "pwned", "content": "x"}),
    ]
    b_seen = world.sandbox.faults.count(consumer=world.b)
    for name, arguments in calls:
        for attack in _header_attacks(world.b):
            result, requests = sent_by(world, name, {**arguments, argument: attack})
            assert result.is_error, f"{name} with {argument}={attack!r} was sent: {text_of(result)}"
            assert requests == [], f"{name} with {argument}={attack!r} sent {requests}"
            assert names_field(text_of(result), argument), text_of(result)
    assert world.sandbox.faults.count(consumer=world.b) == b_seen
    assert_b_unchanged(world)


def test_a_plain_service_id_is_sent_as_exactly_one_header(world: World) -> None:
    result, requests = sent_by(world, "list_users", {"limit": 1, "service_id": "hubspot"})
    assert len(requests) == 1
    check_headers(world, requests[0], world.a, service="hubspot")
    assert not internal_details(text_of(result))


def test_hostile_query_values_cannot_add_or_change_parameters(world: World) -> None:
    injected = f"x&limit=200&cursor=abc&x-apideck-consumer-id={world.b}#frag"
    arguments = {
        "limit": 3,
        "filter": {"first_name": injected, "email": "a]=b[c"},
        "cursor": "../../users?y=1",
        "pass_through": {"k&evil=1": "v=w&z", "[n]": "\r\n"},
        "sort": {"by": "name", "direction": "asc"},
    }
    result, requests = sent_by(world, "list_contacts", arguments)
    assert len(requests) == 1, text_of(result)
    request = requests[0]
    assert request.url.raw_path.split(b"?")[0] == b"/crm/contacts"
    pairs = parse_qsl(request.url.query.decode("ascii"), keep_blank_values=True)
    assert sorted(pairs) == sorted([
        ("limit", "3"),
        ("cursor", "../../users?y=1"),
        ("pass_through[k&evil=1]", "v=w&z"),
        ("pass_through[[n]]", "\r\n"),
        ("filter[first_name]", injected),
        ("filter[email]", "a]=b[c"),
        ("sort[by]", "name"),
        ("sort[direction]", "asc"),
    ]), pairs
    check_headers(world, request, world.a)


def test_very_long_and_control_strings_in_bodies_stay_in_the_body(world: World) -> None:
    long_text = "ünïcode " * 25_000 + "\r\nx-apideck-consumer-id: " + world.b
    result, requests = sent_by(world, "create_note", {"title": "t\r\nHost: evil", "content": long_text})
    assert len(requests) == 1, text_of(result)
    request = requests[0]
    assert request.url.raw_path == b"/crm/notes" and request.method == "POST"
    check_headers(world, request, world.a)
    assert json.loads(request.content) == {"title": "t\r\nHost: evil", "content": long_text}
    assert not result.is_error, text_of(result)
    created = (result.structured_content or {}).get("id")
    assert created
    got, _ = sent_by(world, "get_note", {"id": created, "fields": ["*"]})
    assert not got.is_error and "Host: evil" in text_of(got)
    assert_b_unchanged(world)


def test_tenant_b_is_unchanged_after_everything(world: World) -> None:
    """Runs last in this module: nothing any test above sent touched tenant B."""
    assert_b_unchanged(world)
    assert world.transport.requests, "the recording transport saw nothing: the checks above were vacuous"
    assert_serving(world.session)


FUZZ = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow])
ANY_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40) | st.sampled_from(
    HOSTILE_IDS
)


def test_any_id_is_one_path_segment_or_refused(world: World) -> None:
    """Fuzzed: whatever the id, the request goes to /crm/contacts/<that id, percent-encoded whole>
    for tenant A, or nothing is sent and the error names `id`."""

    @FUZZ
    @given(ANY_TEXT)
    def check(value: str) -> None:
        result, requests = sent_by(world, "get_contact", {"id": value})
        if not requests:
            assert result.is_error and names_field(text_of(result), "id"), (value, text_of(result))
            return
        assert len(requests) == 1
        assert requests[0].url.raw_path == b"/crm/contacts/" + quote(value, safe="").encode("ascii"), value
        check_headers(world, requests[0], world.a)

    check()
    assert_b_unchanged(world)


def test_any_consumer_id_is_sent_verbatim_or_refused(world: World) -> None:
    """Fuzzed: a consumer_id override is sent as exactly that one header value, or nothing is sent;
    what is sent is printable ASCII without edge whitespace (the sandbox strips it: ' B' would be B)."""

    @FUZZ
    @given(ANY_TEXT | st.sampled_from(_header_attacks(world.b)))
    def check(value: str) -> None:
        result, requests = sent_by(world, "list_notes", {"limit": 1, "consumer_id": value})
        if not requests:
            assert result.is_error and names_field(text_of(result), "consumer_id"), (value, text_of(result))
            return
        assert value.isascii() and value.isprintable() and value == value.strip() and value, repr(value)
        assert value != world.b
        # the list, and the first time for this consumer the users that name the note's owner
        assert [r.url.path for r in requests] in (["/crm/notes"], ["/crm/notes", "/crm/users"])
        assert all(r.headers.get_list("x-apideck-consumer-id") == [value] for r in requests)

    check()
    assert_b_unchanged(world)
