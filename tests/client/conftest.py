"""Fixtures of the API client's tests."""

from __future__ import annotations

import pytest


@pytest.fixture(params=["httpx2", "aiohttp"])
def pool(request: pytest.FixtureRequest) -> str:
    """The upstream connection pool, both kinds: httpx2's (stdio serving) and aiohttp's (HTTP
    serving, `crm_mcp.upstream_transport`) must keep the same deadlines, limits and error kinds."""
    return str(request.param)
