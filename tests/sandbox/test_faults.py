"""Fault injection: status faults, slow answers, dropped connections, and the request log."""

from __future__ import annotations

import time

import httpx2
import pytest

from crm_mcp.sandbox.faults import FaultPlan
from crm_mcp.sandbox.server import SandboxServer


@pytest.fixture
def faults(sandbox_server: SandboxServer) -> FaultPlan:
    return sandbox_server.faults


def test_rate_limit_with_retry_after(sandbox_client: httpx2.Client, faults: FaultPlan) -> None:
    faults.rate_limit(times=2, retry_after=3)
    for _ in range(2):
        response = sandbox_client.get("/crm/contacts")
        assert response.status_code == 429 and response.headers["retry-after"] == "3"
        assert response.json()["status_code"] == 429 and response.json()["error"] == "Too Many Requests"
    assert sandbox_client.get("/crm/contacts").status_code == 200


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors(sandbox_client: httpx2.Client, faults: FaultPlan, status: int) -> None:
    faults.fail(status, methods={"POST"}, path="/crm/notes")
    assert sandbox_client.get("/crm/notes").status_code == 200  # not a POST
    assert sandbox_client.post("/crm/companies", json={"name": "x"}).status_code == 201  # another path
    response = sandbox_client.post("/crm/notes", json={"title": "failed"})
    assert response.status_code == status
    assert response.json()["type_name"] == "UnexpectedError" and str(status) in response.json()["message"]
    notes = sandbox_client.get("/crm/notes", params={"limit": 200}).json()["data"]
    assert "failed" not in [n.get("title") for n in notes]  # a failed request is not applied
    assert sandbox_client.post("/crm/notes", json={"title": "ok"}).status_code == 201


@pytest.mark.slow  # waits out real timeouts: run with the timing-bound tests
def test_slow(sandbox_client: httpx2.Client, faults: FaultPlan) -> None:
    faults.slow(0.3, methods={"PATCH"})
    started = time.perf_counter()
    response = sandbox_client.patch("/crm/notes/not_001", json={"title": "slowly"})
    assert response.status_code == 200 and time.perf_counter() - started >= 0.3
    assert sandbox_client.get("/crm/notes/not_001").json()["data"]["title"] == "slowly"
    started = time.perf_counter()
    sandbox_client.get("/crm/notes/not_001")
    assert time.perf_counter() - started < 0.3


@pytest.mark.slow  # waits out real deadlines: run alone, with the timing-bound tests
def test_slow_answer_to_a_client_that_gave_up(sandbox_client: httpx2.Client, faults: FaultPlan) -> None:
    faults.slow(1.0, methods={"POST"})
    with pytest.raises(httpx2.ReadTimeout):
        sandbox_client.post("/crm/notes", json={"title": "abandoned"}, timeout=0.2)
    time.sleep(1.2)
    titles = [n.get("title") for n in sandbox_client.get("/crm/notes", params={"limit": 200}).json()["data"]]
    assert "abandoned" not in titles  # the client left before the sandbox answered: nothing applied


# A dropped connection reaches the client as a close without an answer, or, when the kernel
# resets it because the request's bytes were still unread (a busy machine), as a reset.
DROPPED = (httpx2.RemoteProtocolError, httpx2.ReadError)


@pytest.mark.parametrize("after_apply", [False, True])
def test_dropped_connection(sandbox_client: httpx2.Client, faults: FaultPlan, after_apply: bool) -> None:
    faults.drop(after_apply=after_apply, methods={"POST"})
    with pytest.raises(DROPPED):
        sandbox_client.post("/crm/contacts", json={"name": "Dropped", "emails": [{"email": "drop@x.example"}]})
    found = sandbox_client.get("/crm/contacts", params={"filter[email]": "drop@x.example"}).json()["data"]
    assert len(found) == (1 if after_apply else 0)
    assert sandbox_client.get("/crm/contacts", params={"limit": 1}).status_code == 200  # the server is fine


def test_dropped_read(sandbox_client: httpx2.Client, faults: FaultPlan) -> None:
    faults.drop(times=2)
    for _ in range(2):
        with pytest.raises(DROPPED):
            sandbox_client.get("/crm/users")
    assert sandbox_client.get("/crm/users").status_code == 200


def test_random_fraction_is_seeded(sandbox_client: httpx2.Client, faults: FaultPlan) -> None:
    def run() -> list[int]:
        faults.clear()
        faults.fail(503, times=None, probability=0.3, seed=42, methods={"GET"}, path="/crm/users*")
        return [sandbox_client.get("/crm/users", params={"limit": 1}).status_code for _ in range(40)]

    first, second = run(), run()
    assert first == second
    assert 4 <= first.count(503) <= 20 and set(first) == {200, 503}
    assert sandbox_client.get("/crm/notes").status_code == 200  # other paths are untouched
    with pytest.raises(ValueError, match="needs a probability"):
        faults.fail(500, times=None)


def test_request_log(sandbox_client: httpx2.Client, faults: FaultPlan, sandbox_headers: dict[str, str]) -> None:
    consumer = sandbox_headers["x-apideck-consumer-id"]
    sandbox_client.get("/crm/leads", params={"filter[name]": "Tom", "limit": 2})
    sandbox_client.post("/crm/leads", json={"name": "Logged"})
    sandbox_client.get("/crm/leads/lea_001", headers={"x-apideck-consumer-id": consumer + "-b"})
    assert faults.count(consumer=consumer) == 2
    assert faults.count(method="GET", path="/crm/leads*", consumer=consumer) == 1
    assert faults.count(method="post", consumer=consumer) == 1
    mine = [r for r in faults.requests if r.consumer == consumer]
    assert (mine[0].method, mine[0].path, mine[0].query) == ("GET", "/crm/leads", "filter%5Bname%5D=Tom&limit=2")


def test_faults_are_first_come_and_cleared(sandbox_client: httpx2.Client, faults: FaultPlan) -> None:
    first = faults.fail(500)
    faults.fail(502)
    assert [sandbox_client.get("/crm/users").status_code for _ in range(3)] == [500, 502, 200]
    assert first.fired == 1 and first.exhausted
    faults.fail(503, times=5)
    faults.clear()
    assert sandbox_client.get("/crm/users").status_code == 200


def test_nothing_in_a_request_switches_a_fault_on(sandbox_client: httpx2.Client, faults: FaultPlan) -> None:
    response = sandbox_client.get(
        "/crm/users", headers={"x-sandbox-fault": "503", "x-fault": "drop"}, params={"pass_through[fault]": "500"}
    )
    assert response.status_code == 200
    assert FaultPlan().requests == []
