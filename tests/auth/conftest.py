"""Fixtures of the OAuth tests: the real authorization server, and our MCP server trusting it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from oauth_support import mcp_server
from oidc_support import AuthorizationServer, missing_reason, require_oidc


@pytest.fixture(scope="session")
def authorization_server() -> Iterator[AuthorizationServer]:
    reason = missing_reason()
    if reason is not None:
        if require_oidc():
            pytest.fail(f"CRM_MCP_REQUIRE_OIDC=1 but {reason}")
        pytest.skip(reason)
    server = AuthorizationServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def mcp_url(sandbox_server: Any, authorization_server: AuthorizationServer) -> Iterator[str]:
    with mcp_server(sandbox_server, authorization_server.issuer) as url:
        yield url
