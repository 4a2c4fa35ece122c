"""Checking sandbox responses against the contract with openapi-core.

`check_response(response)` validates one httpx2 response (status, headers, body) against what
the contract declares for its operation and status code (openapi-core's `validate_response`,
through a small adapter for its Request/Response protocols). `validating_hook` does it for
every response of a client. Requests outside the contract (unknown paths or methods) have
nothing to be checked against and are skipped.
"""

from __future__ import annotations

from functools import cache
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
    try:
        APICallPathFinder(openapi().spec).find(request.method.lower(), SERVER + request.url.path)
    except (PathNotFound, OperationNotFound):
        return False
    return True


def check_response(response: httpx2.Response) -> None:
    """Raise (openapi-core's validation error) if `response` breaks the contract."""
    if not in_contract(response.request):
        return
    response.read()
    openapi().validate_response(OpenAPIRequest(response.request), OpenAPIResponse(response))


def validating_hook(response: httpx2.Response) -> None:
    check_response(response)


def checked(response: httpx2.Response) -> Any:
    """`response`'s JSON body, after checking the response against the contract."""
    check_response(response)
    return response.json()
