"""The sandbox's ASGI app: the contract's 50 operations, routed from the operation table.

Each request is authenticated (`Authorization: Bearer <key>`, `x-apideck-app-id`,
`x-apideck-consumer-id`; `x-apideck-service-id` optional), its query string and body (at most
`max_body_bytes`) are validated against the operation, the action runs against the consumer's
records in a worker thread, and the answer comes back in the contract's envelope (with `_raw`
when `raw=true`) or error shape.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from functools import cache, partial
from pathlib import Path
from typing import Any

from anyio import to_thread
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from crm_mcp.operations import OPERATIONS, Operation, model, resource
from crm_mcp.sandbox import actions
from crm_mcp.sandbox.errors import (
    BODY_TOO_LARGE,
    METHOD_NOT_ALLOWED,
    SERVER_ERROR,
    UNAUTHORIZED,
    UNKNOWN_ROUTE,
    ApiError,
    error_body,
    phrase,
)
from crm_mcp.sandbox.faults import FaultMiddleware, FaultPlan
from crm_mcp.sandbox.params import parse_params
from crm_mcp.sandbox.query import compile_filters, decode_cursor, parse_fields, parse_sort, select_fields
from crm_mcp.sandbox.store import DEFAULT_MAX_CONSUMERS, Store
from crm_mcp.sandbox.validation import validate_body

__all__ = ["create_app"]

log = logging.getLogger("crm_mcp.sandbox")

DEFAULT_SERVICE = "sandbox"
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
_OPERATION_NAMES = {"list": "all", "get": "one", "create": "add", "update": "update", "delete": "delete"}
_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


@dataclass(frozen=True, slots=True)
class Caller:
    consumer: str
    service: str


def _error(exc: ApiError) -> Response:
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)


def authenticate(request: Request, api_key: str | None) -> Caller:
    """The consumer and service of a request, or a 401 naming the missing header."""
    headers = request.headers
    auth = headers.get("authorization", "").strip()
    if not auth:
        message = "Missing header: Authorization (expected 'Bearer <api key>')"
        raise ApiError(401, UNAUTHORIZED, message, "Missing Header: Authorization")
    scheme, _, key = auth.partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        message = "Invalid header: Authorization must be 'Bearer <api key>'"
        raise ApiError(401, UNAUTHORIZED, message, "Invalid Header: Authorization")
    if api_key is not None and key != api_key:
        raise ApiError(401, UNAUTHORIZED, "Invalid API key in the Authorization header", "Invalid API key")
    for name in ("x-apideck-app-id", "x-apideck-consumer-id"):
        if not headers.get(name, "").strip():
            raise ApiError(401, UNAUTHORIZED, f"Missing header: {name}", f"Missing Header: {name}")
    service = headers.get("x-apideck-service-id", "").strip() or DEFAULT_SERVICE
    return Caller(headers["x-apideck-consumer-id"].strip(), service)


@cache
def always_selected(resource_name: str) -> tuple[str, ...]:
    """Fields a `fields` selection keeps: `id` and whatever the contract requires."""
    input_cls = model(resource(resource_name).input_model)
    return ("id", *(name for name, info in input_cls.model_fields.items() if info.is_required()))


def envelope(op: Operation, caller: Caller, status: int, data: Any, **extra: Any) -> dict[str, Any]:
    return {
        "status_code": status,
        "status": phrase(status),
        "service": caller.service,
        "resource": op.resource.replace("_", "-"),
        "operation": _OPERATION_NAMES[op.action],
        "data": data,
        **extra,
    }


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, or a 413 as soon as it is known to exceed `limit` bytes."""
    too_large = ApiError(
        413,
        BODY_TOO_LARGE,
        f"Request body too large: the sandbox accepts at most {limit} bytes",
        {"limit_bytes": limit},
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


class Sandbox:
    """Serves the operations of one path (one Starlette route per contract path)."""

    def __init__(self, store: Store, api_key: str | None, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        self.store = store
        self.api_key = api_key
        self.max_body_bytes = max_body_bytes

    async def dispatch(self, ops: dict[str, Operation], request: Request) -> Response:
        op = ops.get(request.method)
        if op is None:
            allowed = ", ".join(sorted(ops))
            message = f"{request.method} is not allowed on {request.url.path}; allowed: {allowed}"
            exc = ApiError(405, METHOD_NOT_ALLOWED, message, headers={"Allow": allowed})
            return _error(exc)
        try:
            return await self.handle(op, request)
        except ApiError as exc:
            return _error(exc)
        except Exception:
            log.exception("sandbox: unexpected error in %s %s", request.method, request.url.path)
            return JSONResponse(error_body(500, SERVER_ERROR, "Unexpected error in the sandbox"), status_code=500)

    async def handle(self, op: Operation, request: Request) -> Response:
        caller = authenticate(request, self.api_key)
        params = parse_params(op, request.query_params.multi_items())
        path = request.path_params
        object_id = path.get("object_id", "") if op.resource in actions.CHILDREN else ""
        scope = actions.Scope(caller.consumer, op.resource, object_id)
        store = self.store
        if not store.knows(caller.consumer):
            await self._run(store.ensure_consumer, caller.consumer)

        # raw=true: `_raw` carries what the sandbox's own storage answered (whole records, before
        # any `fields` selection), as Apideck passes on the downstream CRM's answer
        raw: dict[str, Any] = {}
        if op.action == "list":
            predicate = compile_filters(op, params.filter)
            sort = parse_sort(op, params.sort)
            cursor = decode_cursor(params.cursor, scope.name, sort) if params.cursor else None
            tree = parse_fields(op, params.fields, always_selected(op.resource))
            list_page = partial(actions.list_page, sort=sort, cursor=cursor, predicate=predicate, limit=params.limit)
            page = await self._run(list_page, store, scope)
            meta = {
                "items_on_page": len(page.records),
                "cursors": {"previous": page.previous, "current": params.cursor, "next": page.next},
            }
            links = {
                "previous": self._link(request, page.previous),
                "current": str(request.url),
                "next": self._link(request, page.next),
            }
            if params.raw:
                raw = {"_raw": {"records": page.records}}
            data = [select_fields(record, tree) for record in page.records] if tree else page.records
            return JSONResponse(envelope(op, caller, 200, data, meta=meta, links=links, **raw))
        if op.action == "get":
            compile_filters(op, params.filter)  # validated, but a get has nothing to filter
            tree = parse_fields(op, params.fields, always_selected(op.resource))
            record = await self._run(actions.get, store, scope, path["id"])
            if params.raw:
                raw = {"_raw": {"record": record}}
            data = select_fields(record, tree) if tree else record
            return JSONResponse(envelope(op, caller, 200, data, **raw))
        if op.action == "delete":
            await self._run(actions.delete, store, scope, path["id"])
            if params.raw:
                raw = {"_raw": {"deleted": {"id": path["id"]}}}
            return JSONResponse(envelope(op, caller, op.success_status, {"id": path["id"]}, **raw))
        body = validate_body(op, await read_body(request, self.max_body_bytes))
        if op.action == "create":
            record = await self._run(actions.create, store, scope, body)
            data = {"id": record["id"]} if op.record_model == "UnifiedId" else record
        else:
            record = await self._run(actions.update, store, scope, path["id"], body)
            data = {"id": path["id"]}
        if params.raw:
            raw = {"_raw": {"record": record}}
        return JSONResponse(envelope(op, caller, op.success_status, data, **raw), status_code=op.success_status)

    @staticmethod
    async def _run(fn: Any, *args: Any) -> Any:
        return await to_thread.run_sync(partial(fn, *args))

    @staticmethod
    def _link(request: Request, cursor: str | None) -> str | None:
        return str(request.url.include_query_params(cursor=cursor)) if cursor else None


async def _unknown_route(request: Request) -> Response:
    message = f"No such endpoint: {request.method} {request.url.path} (the sandbox serves the CRM API under /crm/)"
    return _error(ApiError(404, UNKNOWN_ROUTE, message))


class RequestIdMiddleware:
    """Gives every answer a `Request-Id` header, as Apideck does, so callers can log it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = f"req_{uuid.uuid4().hex[:16]}".encode()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (b"request-id", request_id)]}
            await send(message)

        await self.app(scope, receive, send_with_id)


def create_app(
    *,
    db: str | Path = ":memory:",
    api_key: str | None = None,
    seed: bool = True,
    faults: FaultPlan | None = None,
    store: Store | None = None,
    now: datetime | None = None,
    max_consumers: int | None = DEFAULT_MAX_CONSUMERS,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> Starlette:
    """The sandbox CRM as an ASGI app.

    db: SQLite file (created and seeded on demand) or ":memory:". api_key: when set, the only
    accepted bearer key (otherwise any non-empty key). seed: give each new consumer the demo
    CRM (False: start empty). now: the time the seed's dates are relative to (None: the clock
    when a consumer is seeded). max_consumers: how many consumers get a seeded copy (None: no
    limit). faults: the FaultPlan to obey (a new one by default). store: an already open Store
    (then `db`, `seed`, `now` and `max_consumers` are ignored). max_body_bytes: the largest
    request body accepted (a 413 beyond). The app exposes `app.state.store` and
    `app.state.faults`; close the store when done (`app.state.store.close()`).
    """
    if store is None:
        store = Store(db, seed=seed, now=now, max_consumers=max_consumers)
    plan = faults if faults is not None else FaultPlan()
    sandbox = Sandbox(store, api_key, max_body_bytes)
    by_path: dict[str, dict[str, Operation]] = defaultdict(dict)
    for op in OPERATIONS:
        by_path[op.path][op.method] = op
    routes = [Route(path, partial(sandbox.dispatch, ops), methods=_METHODS) for path, ops in by_path.items()]
    routes.append(Route("/{path:path}", _unknown_route, methods=_METHODS))
    app = Starlette(
        routes=routes, middleware=[Middleware(RequestIdMiddleware), Middleware(FaultMiddleware, plan=plan)]
    )
    app.router.redirect_slashes = False  # "/crm/contacts/" is an unknown endpoint, not a redirect
    app.state.store = store
    app.state.faults = plan
    app.state.sandbox = sandbox
    return app
