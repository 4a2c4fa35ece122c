"""Authentication headers, the service id, and a sandbox with a fixed API key."""

from __future__ import annotations

from collections.abc import Iterator

import http_clients
import httpx2
import pytest

from crm_mcp.sandbox.server import SandboxServer

from .contract import checked


@pytest.mark.parametrize(
    ("header", "value", "message"),
    [
        ("Authorization", None, "Missing header: Authorization"),
        ("Authorization", "", "Missing header: Authorization"),
        ("Authorization", "Basic abc", "Authorization must be 'Bearer <api key>'"),
        ("Authorization", "Bearer", "Authorization must be 'Bearer <api key>'"),
        ("x-apideck-app-id", None, "Missing header: x-apideck-app-id"),
        ("x-apideck-consumer-id", None, "Missing header: x-apideck-consumer-id"),
        ("x-apideck-consumer-id", "", "Missing header: x-apideck-consumer-id"),
    ],
)
@pytest.mark.parametrize(
    ("method", "url"), [("GET", "/crm/contacts"), ("POST", "/crm/notes"), ("DELETE", "/crm/users/usr_01")]
)
def test_missing_or_bad_auth_headers_are_401(
    sandbox_server: SandboxServer,
    sandbox_headers: dict[str, str],
    header: str,
    value: str | None,
    message: str,
    method: str,
    url: str,
) -> None:
    headers = {k: v for k, v in sandbox_headers.items() if k != header}
    if value is not None:
        headers[header] = value
    with http_clients.sync_client(base_url=sandbox_server.base_url) as client:
        response = client.request(method, url, headers=headers, json={"title": "x"} if method == "POST" else None)
    body = checked(response)
    assert response.status_code == 401
    assert body["status_code"] == 401 and body["error"] == "Unauthorized"
    assert body["type_name"] == "UnauthorizedError"
    assert message in body["message"] and body["detail"]
    # nothing was written or deleted
    with http_clients.sync_client(base_url=sandbox_server.base_url, headers=sandbox_headers) as client:
        assert client.get("/crm/users/usr_01").status_code == 200


def test_service_id_header_is_echoed(sandbox_client: httpx2.Client) -> None:
    assert sandbox_client.get("/crm/users").json()["service"] == "sandbox"
    response = sandbox_client.get("/crm/users", headers={"x-apideck-service-id": "salesforce"})
    assert response.json()["service"] == "salesforce"
    error = sandbox_client.get("/crm/users/nobody", headers={"x-apideck-service-id": "salesforce"})
    assert error.status_code == 404


@pytest.fixture(scope="module")
def keyed_sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(db=":memory:", api_key="the-only-key", seed=False) as server:
        yield server


def test_a_fixed_api_key(keyed_sandbox: SandboxServer) -> None:
    headers = {"x-apideck-app-id": "a", "x-apideck-consumer-id": "c"}
    with http_clients.sync_client(base_url=keyed_sandbox.base_url, headers=headers) as client:
        wrong = client.get("/crm/contacts", headers={"Authorization": "Bearer some-other-key"})
        assert checked(wrong)["message"] == "Invalid API key in the Authorization header"
        assert wrong.status_code == 401
        right = client.get("/crm/contacts", headers={"Authorization": "Bearer the-only-key"})
        assert right.status_code == 200
        assert checked(right)["data"] == []  # seed=False: consumers start empty
