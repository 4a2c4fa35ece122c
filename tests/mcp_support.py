"""Helpers for the MCP server tests: settings for the test sandbox, a transport that checks every
request the server's API client sends against the contract, and example arguments per tool."""

from __future__ import annotations

import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx2
import uvicorn
from sandbox.contract import OpenAPIRequest, in_contract, openapi

from crm_mcp.client import tls_context
from crm_mcp.config import Settings
from crm_mcp.sandbox.server import SandboxServer

CUSTOM_SCHEMA = "cos_projects"


def sandbox_settings(sandbox: SandboxServer, consumer: str | None = None) -> Settings:
    return Settings(
        api_key="test-secret-key",
        app_id="test-app",
        consumer_id=consumer or f"mcp-{uuid.uuid4().hex[:12]}",
        base_url=sandbox.base_url,
    )


class ContractCheckingTransport(httpx2.AsyncBaseTransport):
    """Sends over real HTTP, after validating each request against the contract (openapi-core).

    A request that breaks the contract is recorded in `violations` (and still sent, so that the
    test sees what the API would answer)."""

    def __init__(self) -> None:
        self.inner = httpx2.AsyncHTTPTransport(verify=tls_context())
        self.requests: list[httpx2.Request] = []
        self.violations: list[str] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        await request.aread()
        self.requests.append(request)
        if not in_contract(request):
            self.violations.append(f"{request.method} {request.url.path}: not an operation of the contract")
        else:
            try:
                openapi().validate_request(OpenAPIRequest(request))
            except Exception as exc:  # openapi-core raises a family of validation errors
                detail = "; ".join(str(e) for e in getattr(exc, "__cause__", None).schema_errors) if getattr(
                    getattr(exc, "__cause__", None), "schema_errors", None
                ) else str(exc)
                self.violations.append(f"{request.method} {request.url}: {detail}")
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def text_of(result: Any) -> str:
    return "\n".join(getattr(c, "text", "") for c in result.content)


# Valid arguments for one call of each tool, on the seed data (ids from crm_mcp/sandbox/seed.py).
SEED_IDS = {
    "companies": "com_001",
    "contacts": "con_0001",
    "opportunities": "opp_001",
    "leads": "lea_001",
    "pipelines": "pip_1",
    "notes": "not_001",
    "users": "usr_01",
    "activities": "act_0001",
    "custom_object_schemas": CUSTOM_SCHEMA,
    "custom_objects": "cob_001",
}

CREATE_ARGS: dict[str, dict[str, Any]] = {
    "companies": {"name": "Globex Test Co", "industry": "Manufacturing",
                  "emails": [{"email": "info@globex.example", "type": "work"}]},
    "contacts": {"first_name": "Ada", "last_name": "Lovelace", "company_id": "com_001",
                 "emails": [{"email": "ada@acme.example", "type": "work"}],
                 "phone_numbers": [{"number": "+1 415 555 0199", "type": "mobile"}]},
    "opportunities": {"title": "Acme — pilot", "company_id": "com_001", "monetary_amount": 12000.0,
                      "currency": "USD", "pipeline_id": "pip_1"},
    "leads": {"name": "Grace Hopper", "company_name": "Navy Labs", "first_name": "Grace", "last_name": "Hopper"},
    "pipelines": {"name": "Partners", "stages": [{"name": "Intro", "value": "INTRO", "win_probability": 10}]},
    "notes": {"title": "Call recap", "content": "Discussed renewal.", "company_id": "com_001"},
    "users": {"first_name": "Test", "last_name": "Rep", "emails": [{"email": "rep@crm.example", "type": "work"}]},
    "activities": {"type": "call", "title": "Intro call", "company_id": "com_001", "contact_id": "con_0001",
                   "duration_seconds": 600},
    "custom_object_schemas": {"name": "Asset", "fields": [{"id": "serial", "name": "serial", "type": "string"}]},
    "custom_objects": {"object_id": CUSTOM_SCHEMA, "name": "New project",
                       "fields": [{"name": "company_id", "value": "com_001"}, {"name": "status", "value": "planned"}]},
}

UPDATE_ARGS: dict[str, dict[str, Any]] = {
    "companies": {"industry": "Aerospace"},
    "contacts": {"title": "COO"},
    "opportunities": {"pipeline_stage_id": "stg_nb_negotiation"},
    "leads": {"status": "qualified"},
    "pipelines": {"display_order": 3},
    "notes": {"content": "Updated content."},
    "users": {"title": "Senior Rep"},
    "activities": {"done": True},
    "custom_object_schemas": {"description": "Projects we run"},
    "custom_objects": {"name": "Renamed project"},
}


async def assert_serves_the_release(client: Any, version: str) -> None:
    """A packaged server (bundle, container) answers as this release: its name and version, the 56
    tools, and a real read of the sandbox's users."""
    server_info = client.server_info
    tools = (await client.list_tools()).tools
    result = await client.call_tool("list_users", {"limit": 2})
    assert server_info is not None and (server_info.name, server_info.version) == ("crm-mcp", version)
    assert len(tools) == 56  # 50 operations + 3 workflow tools + 3 journal tools
    text = "\n".join(getattr(block, "text", "") for block in result.content)
    assert not result.is_error, text
    assert len(set(re.findall(r"usr_\w+", text))) == 2, text


def id_args(resource: str, record_id: str | None = None) -> dict[str, Any]:
    args: dict[str, Any] = {"id": record_id or SEED_IDS[resource]}
    if resource == "custom_objects":
        args["object_id"] = CUSTOM_SCHEMA
    return args


def valid_arguments(tool: str, resource: str, action: str) -> dict[str, Any]:
    if action == "list":
        return {"object_id": CUSTOM_SCHEMA, "limit": 5} if resource == "custom_objects" else {"limit": 5}
    if action in ("get", "delete"):
        return id_args(resource)
    if action == "create":
        return dict(CREATE_ARGS[resource])
    return {**id_args(resource), **UPDATE_ARGS[resource]}


@contextmanager
def serve_in_thread(app: Any, **options: Any) -> Iterator[int]:
    """Run an ASGI app under uvicorn on 127.0.0.1 (a free port) in a thread; yields the port.
    `options`: more uvicorn settings (e.g. `crm_mcp.http_limits.uvicorn_options(settings)`)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", **options))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.started, "uvicorn did not start"
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
