"""Checking sandbox responses against the contract with openapi-core.

`check_response(response)` validates one httpx2 response (status, headers, body) against what
the contract declares for its operation and status code (openapi-core's `validate_response`,
through a small adapter for its Request/Response protocols). `validating_hook` does it for
every response of a client. Requests outside the contract (unknown paths or methods) have
nothing to be checked against and are skipped.

The contract declares no response headers, so whether a response is valid depends only on its
method, path, status, content type and body; tests fetch the same seed pages again and again
(every consumer has the same records), so a response identical to one already found valid is
not validated again (jsonschema over a page of records is most of the sandbox tests' time).
"""

from __future__ import annotations

from functools import cache, lru_cache
from typing import Any
from urllib.parse import parse_qsl

import httpx2
from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_core.templating.paths.exceptions import OperationNotFound, PathNotFound
from openapi_core.templating.paths.finders import APICallPathFinder
from werkzeug.datastructures import Headers, ImmutableMultiDict

from crm_mcp.operations import spec_path

SERVER = "https://unify.apideck.com"  # the contract's server; sandbox paths are matched below it


@cache
def openapi() -> OpenAPI:
    return OpenAPI.from_file_path(str(spec_path()))


class OpenAPIRequest:
    """openapi-core's Request protocol over an httpx2 request."""

    def __init__(self, request: httpx2.Request) -> None:
        query = request.url.query
        text = query.decode() if isinstance(query, bytes) else str(query)
        self.host_url = SERVER
        self.path = request.url.path
        self.method = request.method.lower()
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(parse_qsl(text, keep_blank_values=True)),
            header=Headers(dict(request.headers)),
            cookie=ImmutableMultiDict(),
        )
        self.body: bytes | None = request.content or None
        self.content_type = request.headers.get("content-type", "application/json")


class OpenAPIResponse:
    """openapi-core's Response protocol over an httpx2 response."""

    def __init__(self, response: httpx2.Response) -> None:
        self.status_code = response.status_code
        self.headers = Headers(dict(response.headers))
        self.content_type = response.headers.get("content-type", "")
        self.data: bytes | None = response.content


def in_contract(request: httpx2.Request) -> bool:
    return _in_contract(request.method.lower(), request.url.path)


@lru_cache(maxsize=4096)  # tests send the same paths again and again: the path finder is slow
def _in_contract(method: str, path: str) -> bool:
    try:
        APICallPathFinder(openapi().spec).find(method, SERVER + path)
    except (PathNotFound, OperationNotFound):
        return False
    return True


@cache
def _declares_response_headers() -> bool:
    """Whether any response (or anything else) in the contract declares headers."""

    def declares(node: Any) -> bool:
        if isinstance(node, dict):
            return bool(node.get("headers")) or any(declares(v) for v in node.values())
        return isinstance(node, list) and any(declares(v) for v in node)

    with openapi().spec.open() as contents:
        return declares(contents.get("paths")) or declares(contents.get("components", {}).get("responses"))


_VALID: set[tuple[str, str, int, str, bytes]] = set()  # responses found valid (see the module's docstring)


def check_response(response: httpx2.Response) -> None:
    """Raise (openapi-core's validation error) if `response` breaks the contract."""
    if not in_contract(response.request):
        return
    response.read()
    key = (
        response.request.method,
        response.request.url.path,
        response.status_code,
        response.headers.get("content-type", ""),
        response.content,
    )
    if key in _VALID and not _declares_response_headers():
        return
    openapi().validate_response(OpenAPIRequest(response.request), OpenAPIResponse(response))
    _VALID.add(key)


def validating_hook(response: httpx2.Response) -> None:
    check_response(response)


def checked(response: httpx2.Response) -> Any:
    """`response`'s JSON body, after checking the response against the contract."""
    check_response(response)
    return response.json()
