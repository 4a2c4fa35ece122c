"""httpx2 clients for the tests. They only speak plain HTTP on loopback, so they share one TLS context
(`crm_mcp.client.tls_context`): httpx2's default builds a new one per client, loading the CA bundle
(~20 ms), which the fast run paid 169 times (4 of its 37 seconds of test time)."""

from __future__ import annotations

from typing import Any

import httpx2

from crm_mcp.client import tls_context


def sync_client(**kwargs: Any) -> httpx2.Client:
    return httpx2.Client(verify=tls_context(), **kwargs)


def async_client(**kwargs: Any) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(verify=tls_context(), **kwargs)


def get(url: str, **kwargs: Any) -> httpx2.Response:
    return httpx2.get(url, verify=tls_context(), **kwargs)


def post(url: str, **kwargs: Any) -> httpx2.Response:
    return httpx2.post(url, verify=tls_context(), **kwargs)
