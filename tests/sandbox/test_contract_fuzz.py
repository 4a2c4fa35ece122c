"""Property-based contract test: requests generated from the contract's schemas (schemathesis,
offline, from the vendored spec) for all 50 operations, valid and invalid, sent over HTTP to the
running sandbox. No answer may be a 5xx, and every answer must validate against the contract.

Path ids are drawn partly from the seed so that gets, updates and deletes also hit real records.
The auth headers are fixed (auth errors have their own tests); everything else is generated.
Set CRM_SANDBOX_FUZZ=<examples> for a deeper, randomised run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import http_clients
import httpx2
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from crm_mcp.operations import operation_by_id, spec_path
from crm_mcp.sandbox.seed import build_seed
from crm_mcp.sandbox.server import SandboxServer

from .contract import check_response

pytestmark = pytest.mark.slow

# CRM_SANDBOX_FUZZ=200 runs a deeper, randomised search (200 valid and 100 invalid examples each)
DEEP = int(os.environ.get("CRM_SANDBOX_FUZZ", "0"))
EXAMPLES = {GenerationMode.POSITIVE: DEEP or 12, GenerationMode.NEGATIVE: DEEP // 2 or 6}
HEADERS = {"Authorization": "Bearer fuzz", "x-apideck-app-id": "fuzz-app", "x-apideck-consumer-id": "fuzz"}

SCHEMA = schemathesis.openapi.from_path(str(spec_path()))
API_OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]  # type: ignore[union-attr]
SEED = build_seed()
KNOWN_IDS = {name: [r["id"] for r in records[:3]] for name, records in SEED.items()}


def test_all_operations_are_fuzzed() -> None:
    assert len(API_OPERATIONS) == 50


@pytest.fixture(scope="module")
def fuzz_client(sandbox_server: SandboxServer) -> Iterator[httpx2.Client]:
    sandbox_server.faults.clear()
    with http_clients.sync_client(base_url=sandbox_server.base_url, timeout=10) as client:
        yield client


def send(client: httpx2.Client, case: Any) -> httpx2.Response:
    kwargs = case.as_transport_kwargs(base_url=str(client.base_url).rstrip("/"))
    headers = {k: v for k, v in kwargs["headers"].items() if k.lower().startswith("content-type")}
    request: dict[str, Any] = {"params": kwargs.get("params") or None, "headers": {**headers, **HEADERS}}
    if "json" in kwargs:
        request["json"] = kwargs["json"]
    elif kwargs.get("data") is not None:
        request["content"] = kwargs["data"]
    return client.request(kwargs["method"], kwargs["url"], **request)


@pytest.mark.parametrize("mode", list(EXAMPLES), ids=lambda mode: mode.value)
@pytest.mark.parametrize("api_operation", API_OPERATIONS, ids=lambda op: op.definition.raw["operationId"])
def test_contract(fuzz_client: httpx2.Client, api_operation: Any, mode: GenerationMode) -> None:
    op = operation_by_id(api_operation.definition.raw["operationId"])

    @settings(
        max_examples=EXAMPLES[mode],
        deadline=None,
        derandomize=not DEEP,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=api_operation.as_strategy(generation_mode=mode), data=st.data())
    def check(case: Any, data: st.DataObject) -> None:
        path = case.path_parameters or {}
        if "object_id" in path:
            path["object_id"] = data.draw(st.sampled_from(["cos_projects", path["object_id"]]))
        if "id" in path:
            path["id"] = data.draw(st.sampled_from([*KNOWN_IDS.get(op.resource, []), path["id"]]))
        response = send(fuzz_client, case)
        assert response.status_code < 500, response.text
        check_response(response)

    try:
        check()
    except Unsatisfiable:
        pytest.skip(f"schemathesis cannot make {mode.value} data for {op.tool_name}")
