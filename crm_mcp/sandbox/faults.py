"""Fault injection for tests, and a log of every request the sandbox saw.

A `FaultPlan` belongs to one app (`app.state.faults`, `SandboxServer.faults`). Only the code
holding it can switch faults on; nothing in a request can. Each fault matches requests by
method and path (an `fnmatch` pattern such as `/crm/contacts*`) and fires for the next `times`
matching requests, or with a `probability` drawn from its own seeded RNG::

    plan = server.faults
    plan.rate_limit(times=2, retry_after=1)           # 429 + Retry-After, twice
    plan.fail(503, methods={"GET"}, path="/crm/contacts")
    plan.slow(0.5)                                    # sleep, then answer normally
    plan.drop()                                       # close the connection, nothing written
    plan.drop(after_apply=True, methods={"POST"})     # commit the write, then drop
    plan.fail(500, times=None, probability=0.2, seed=7)
    plan.count(method="POST", path="/crm/contacts")  # requests seen
    plan.clear()                                      # no more faults (the log stays)

A dropped connection sends the response status line and headers, then closes the connection
without the body, so the client sees a protocol error and cannot tell whether the write landed.
A slow answer whose client disconnects while the sandbox sleeps is never applied.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict, Unpack

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from crm_mcp.sandbox.errors import RATE_LIMIT, SERVER_ERROR, error_body

__all__ = ["DroppedConnection", "Fault", "FaultMiddleware", "FaultPlan", "SeenRequest", "quiet_dropped_connections"]

FaultKind = Literal["status", "slow", "drop_before", "drop_after"]


class When(TypedDict, total=False):
    """Which requests a fault fires on, and how often (the keyword arguments of every `FaultPlan`
    method that switches a fault on)."""

    times: int | None  # the next `times` matching requests (default 1); None: no limit, needs a probability
    probability: float | None  # fire with this probability, drawn from the fault's own RNG
    seed: int  # that RNG's seed (default 0)
    methods: Collection[str] | None  # e.g. {"GET"}; None: any method
    path: str | None  # an fnmatch pattern such as "/crm/contacts*"; None: any path


class DroppedConnection(Exception):
    """Raised after the response headers went out, so the server closes the connection."""


@dataclass(frozen=True, slots=True)
class SeenRequest:
    method: str
    path: str
    query: str
    consumer: str | None
    at: float
    traceparent: str | None = None  # the W3C trace context the request came with (telemetry tests)


@dataclass(eq=False)
class Fault:
    kind: FaultKind
    status: int = 503
    retry_after: float | None = None
    delay: float = 0.0
    times: int | None = 1  # None: no limit
    probability: float | None = None
    seed: int = 0
    methods: frozenset[str] | None = None
    path: str | None = None
    fired: int = 0
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.fired >= self.times

    def matches(self, method: str, path: str) -> bool:
        if self.methods is not None and method not in self.methods:
            return False
        return self.path is None or fnmatch.fnmatchcase(path, self.path)

    def roll(self) -> bool:
        return self.probability is None or self._rng.random() < self.probability


class FaultPlan:
    """The faults to inject (in the order added; the first that fires wins) and the request log."""

    def __init__(self, *, log_size: int = 100_000) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._seen: deque[SeenRequest] = deque(maxlen=log_size)  # the most recent requests

    # ------------------------------------------------------------------ switching faults on

    def _add(self, kind: FaultKind, when: When, **extra: Any) -> Fault:
        times = when.get("times", 1)
        probability = when.get("probability")
        if times is None and probability is None:
            raise ValueError("a fault with times=None needs a probability, or it would never stop")
        methods = when.get("methods")
        fault = Fault(
            kind,
            times=times,
            probability=probability,
            seed=when.get("seed", 0),
            methods=frozenset(m.upper() for m in methods) if methods is not None else None,
            path=when.get("path"),
            **extra,
        )
        with self._lock:
            self._faults.append(fault)
        return fault

    def fail(self, status: int = 503, *, retry_after: float | None = None, **when: Unpack[When]) -> Fault:
        """Answer `status` (e.g. 500, 502, 503) with the contract's error body, without applying."""
        return self._add("status", when, status=status, retry_after=retry_after)

    def rate_limit(self, *, retry_after: float = 1, **when: Unpack[When]) -> Fault:
        """Answer 429 with a `Retry-After` header, without applying."""
        return self.fail(429, retry_after=retry_after, **when)

    def slow(self, delay: float, **when: Unpack[When]) -> Fault:
        """Sleep `delay` seconds, then answer normally."""
        return self._add("slow", when, delay=delay)

    def drop(self, *, after_apply: bool = False, **when: Unpack[When]) -> Fault:
        """Close the connection mid-response: before applying the request (nothing written) or,
        with `after_apply`, after the request was applied and committed."""
        return self._add("drop_after" if after_apply else "drop_before", when)

    def clear(self) -> None:
        """Switch every fault off (the request log stays)."""
        with self._lock:
            self._faults.clear()

    # ------------------------------------------------------------------ the request log

    @property
    def requests(self) -> list[SeenRequest]:
        with self._lock:
            return list(self._seen)

    def count(self, *, method: str | None = None, path: str | None = None, consumer: str | None = None) -> int:
        """How many requests matched (`path` is an fnmatch pattern)."""
        return sum(
            1
            for seen in self.requests
            if (method is None or seen.method == method.upper())
            and (path is None or fnmatch.fnmatchcase(seen.path, path))
            and (consumer is None or seen.consumer == consumer)
        )

    # ------------------------------------------------------------------ used by the middleware

    def observe(
        self, method: str, path: str, query: str, consumer: str | None, traceparent: str | None = None
    ) -> Fault | None:
        """Log a request and pick the fault to inject into it, if any."""
        with self._lock:
            self._seen.append(SeenRequest(method, path, query, consumer, time.time(), traceparent))
            for fault in self._faults:
                if not fault.exhausted and fault.matches(method, path) and fault.roll():
                    fault.fired += 1
                    return fault
        return None


async def _wait(delay: float, receive: Receive) -> Receive | None:
    """Sleep `delay` seconds while buffering the request body; None if the client disconnects."""
    buffered: list[Message] = []
    with anyio.move_on_after(delay):
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            buffered.append(message)

    async def replay() -> Message:
        return buffered.pop(0) if buffered else await receive()

    return replay


def _json_response(status: int, body: bytes, extra: list[tuple[bytes, bytes]]) -> list[Message]:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *extra]
    return [
        {"type": "http.response.start", "status": status, "headers": headers},
        {"type": "http.response.body", "body": body},
    ]


class FaultMiddleware:
    """ASGI middleware that logs every HTTP request and injects the plan's faults."""

    def __init__(self, app: ASGIApp, plan: FaultPlan) -> None:
        self.app = app
        self.plan = plan

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        consumer = headers.get(b"x-apideck-consumer-id")
        fault = self.plan.observe(
            scope["method"],
            scope["path"],
            (scope.get("query_string") or b"").decode("latin-1"),
            consumer.decode("latin-1") if consumer is not None else None,
            headers[b"traceparent"].decode("latin-1") if b"traceparent" in headers else None,
        )
        if fault is None:
            await self.app(scope, receive, send)
        elif fault.kind == "slow":
            replay = await _wait(fault.delay, receive)
            if replay is not None:  # else the client gave up waiting: nobody to answer
                await self.app(scope, replay, send)
        elif fault.kind == "status":
            await self._status(fault, send)
        elif fault.kind == "drop_before":
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1024")]})
            raise DroppedConnection("sandbox fault: connection dropped before the request was applied")
        else:
            messages: list[Message] = []

            async def capture(message: Message) -> None:
                messages.append(message)

            await self.app(scope, receive, capture)
            await send(messages[0])
            raise DroppedConnection("sandbox fault: connection dropped after the request was applied")

    @staticmethod
    async def _status(fault: Fault, send: Send) -> None:
        status = fault.status
        type_name = RATE_LIMIT if status == 429 else SERVER_ERROR
        message = "Too many requests (sandbox fault)" if status == 429 else f"Sandbox fault: simulated {status}"
        body = json.dumps(error_body(status, type_name, message)).encode()
        extra = []
        if fault.retry_after is not None:
            retry = fault.retry_after
            extra.append((b"retry-after", (str(int(retry)) if retry == int(retry) else str(retry)).encode()))
        for message_ in _json_response(status, body, extra):
            await send(message_)


class _DropFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, DroppedConnection)


_DROP_FILTER = _DropFilter()


def quiet_dropped_connections() -> None:
    """Keep uvicorn from logging a traceback for every injected dropped connection."""
    logger = logging.getLogger("uvicorn.error")
    if _DROP_FILTER not in logger.filters:
        logger.addFilter(_DROP_FILTER)
