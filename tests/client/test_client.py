"""The Apideck client: request building, headers, decoding, retries, cancellation (crm_mcp.client)."""

from __future__ import annotations

import json
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import httpx2
import pytest
from hypothesis import given
from hypothesis import strategies as st
from net_support import free_port

from crm_mcp import __version__
from crm_mcp import errors as E
from crm_mcp.client import MAX_JSON_DEPTH, ApideckClient, ApiResponse, Credentials, RetryPolicy
from crm_mcp.operations import operation
from crm_mcp.querystring import encode_query

KEY = "sk_test_CANARY_5e6f7a8b9c"
APP = "app_CANARY_1a2b3c"
CONSUMER = "consumer-1"

LIST_CONTACTS = operation("list_contacts")
GET_CONTACT = operation("get_contact")
CREATE_CONTACT = operation("create_contact")
UPDATE_CONTACT = operation("update_contact")
DELETE_CONTACT = operation("delete_contact")


class FakeTime:
    """An injectable clock and sleep: sleeping advances the clock and records the delay."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


Handler = Callable[[httpx2.Request], Any]


class Upstream:
    """A MockTransport that answers from a script and records every request it saw."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.requests: list[httpx2.Request] = []

    async def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if callable(answer):
            answer = answer(request)
            if hasattr(answer, "__await__"):
                answer = await answer
        if isinstance(answer, Exception):
            raise answer
        return answer

    @property
    def count(self) -> int:
        return len(self.requests)


def ok(data: Any = None, status: int = 200, **headers: str) -> httpx2.Response:
    body = {"status_code": status, "status": "OK", "service": "sandbox", "resource": "contacts", "data": data}
    return httpx2.Response(status, json=body, headers={"x-apideck-request-id": "req-ok", **headers})


def fail(status: int, type_name: str | None = None, message: str = "failed", **headers: str) -> httpx2.Response:
    body = {"status_code": status, "error": "err", "type_name": type_name, "message": message}
    return httpx2.Response(status, json=body, headers=headers)


def make_client(upstream: Upstream, *, fake: FakeTime | None = None, **policy: Any) -> ApideckClient:
    fake = fake or FakeTime()
    retry = RetryPolicy(random=policy.pop("random", lambda: 0.5), sleep=fake.sleep, clock=fake.clock, **policy)
    return ApideckClient(KEY, APP, CONSUMER, retry=retry, transport=httpx2.MockTransport(upstream))


def target(request: httpx2.Request) -> str:
    return request.url.raw_path.decode("ascii")


# ---------------------------------------------------------------------------------- request line


class TestQueryEncoding:
    def test_deep_object(self) -> None:
        query = {
            "filter": {"email": "a@b", "company_id": None},
            "sort": {"by": "name", "direction": "asc"},
            "pass_through": {"search": "x"},
            "limit": 50,
            "fields": "id,name",
            "cursor": "abc/def==",
            "raw": False,
        }
        assert encode_query(query) == (
            "filter[email]=a%40b&sort[by]=name&sort[direction]=asc&pass_through[search]=x"
            "&limit=50&fields=id,name&cursor=abc%2Fdef%3D%3D&raw=false"
        )

    def test_values_cannot_inject_parameters(self) -> None:
        query = {"filter": {"name": "x&limit=1#frag"}, "pass_through": {"a]&b[": "v=w"}}
        assert encode_query(query) == "filter[name]=x%26limit%3D1%23frag&pass_through[a%5D%26b%5B]=v%3Dw"

    def test_none_booleans_numbers_lists(self) -> None:
        assert encode_query({"raw": True, "limit": None, "filter": {}}) == "raw=true"
        assert encode_query({"filter": {"win_probability": 50.0, "monetary_amount": 1.5}}) == (
            "filter[win_probability]=50&filter[monetary_amount]=1.5"
        )
        assert encode_query({"fields": ["id", "name", None]}) == "fields=id,name"

    def test_pydantic_models_are_accepted(self) -> None:
        from crm_mcp.operations import model

        sort = model("ContactsSort").model_validate({"by": "name", "direction": "desc"})
        assert encode_query({"sort": sort}) == "sort[by]=name&sort[direction]=desc"

    @given(st.dictionaries(st.text(min_size=1, max_size=10), st.text(max_size=20), max_size=5))
    def test_property_each_filter_is_one_parameter(self, flt: dict[str, str]) -> None:
        from urllib.parse import unquote

        encoded = encode_query({"filter": flt})
        pairs = [p for p in encoded.split("&") if p]
        assert len(pairs) == len(flt)
        decoded = {}
        for pair in pairs:
            key, _, value = pair.partition("=")
            assert key.startswith("filter[") and key.endswith("]")
            decoded[unquote(key[len("filter[") : -1])] = unquote(value)
        assert decoded == flt


@pytest.mark.anyio
async def test_list_request_line_and_headers() -> None:
    up = Upstream(ok([]))
    async with make_client(up) as client:
        res = await client.call(
            LIST_CONTACTS,
            query={"filter": {"email": "a@b"}, "sort": {"by": "name", "direction": "asc"}, "limit": 50},
        )
    assert res.status == 200 and res.body["data"] == [] and res.request_id == "req-ok" and res.attempts == 1
    (req,) = up.requests
    assert req.method == "GET"
    assert str(req.url) == (
        "https://unify.apideck.com/crm/contacts?filter[email]=a%40b&sort[by]=name&sort[direction]=asc&limit=50"
    )
    assert req.headers["authorization"] == f"Bearer {KEY}"
    assert req.headers["x-apideck-app-id"] == APP
    assert req.headers["x-apideck-consumer-id"] == CONSUMER
    assert "x-apideck-service-id" not in req.headers
    assert req.headers["content-type"] == "application/json"
    assert req.headers["accept"] == "application/json"
    assert req.headers["user-agent"] == f"crm-mcp/{__version__}"
    assert req.content == b""


@pytest.mark.anyio
async def test_service_consumer_and_per_request_credentials() -> None:
    up = Upstream(ok([]))
    client = ApideckClient(KEY, APP, CONSUMER, service_id="hubspot", transport=httpx2.MockTransport(up))
    async with client:
        await client.call(LIST_CONTACTS)
        await client.call(LIST_CONTACTS, consumer_id="other", service_id="salesforce")
        tenant = Credentials(api_key="tenant-key", app_id="tenant-app", consumer_id="tenant-consumer")
        await client.call(LIST_CONTACTS, credentials=tenant)
    first, second, third = up.requests
    assert first.headers["x-apideck-service-id"] == "hubspot"
    assert second.headers["x-apideck-consumer-id"] == "other"
    assert second.headers["x-apideck-service-id"] == "salesforce"
    assert third.headers["authorization"] == "Bearer tenant-key"
    assert third.headers["x-apideck-app-id"] == "tenant-app"
    assert third.headers["x-apideck-consumer-id"] == "tenant-consumer"
    assert "x-apideck-service-id" not in third.headers  # a tenant's call never borrows the server's service


@pytest.mark.anyio
async def test_create_sends_json_body() -> None:
    up = Upstream(ok({"id": "c1"}, status=201))
    async with make_client(up) as client:
        res = await client.call(CREATE_CONTACT, body={"first_name": "Ada", "emails": [{"email": "ada@x.io"}]})
    assert res.status == 201 and res.body["data"] == {"id": "c1"}
    (req,) = up.requests
    assert req.method == "POST" and target(req) == "/crm/contacts"
    assert json.loads(req.content) == {"first_name": "Ada", "emails": [{"email": "ada@x.io"}]}


@pytest.mark.anyio
async def test_base_url_with_path_prefix() -> None:
    up = Upstream(ok({}))
    client = ApideckClient(KEY, APP, CONSUMER, base_url="http://127.0.0.1:9/api/", transport=httpx2.MockTransport(up))
    async with client:
        await client.call(GET_CONTACT, path_params={"id": "a/b"})
    assert str(up.requests[0].url) == "http://127.0.0.1:9/api/crm/contacts/a%2Fb"


@pytest.mark.parametrize(
    ("record_id", "expected"),
    [
        ("12345", "/crm/contacts/12345"),
        ("../users", "/crm/contacts/..%2Fusers"),
        ("a/b", "/crm/contacts/a%2Fb"),
        ("%2e%2e", "/crm/contacts/%252e%252e"),
        ("%2E%2E%2Fusers", "/crm/contacts/%252E%252E%252Fusers"),
        ("a?b#c", "/crm/contacts/a%3Fb%23c"),
        ("x y;z", "/crm/contacts/x%20y%3Bz"),
        ("...", "/crm/contacts/..."),
        ("é", "/crm/contacts/%C3%A9"),
    ],
)
@pytest.mark.anyio
async def test_hostile_ids_stay_one_segment(record_id: str, expected: str) -> None:
    up = Upstream(ok({}))
    async with make_client(up) as client:
        await client.call(GET_CONTACT, path_params={"id": record_id})
    (req,) = up.requests
    assert target(req) == expected
    assert req.url.host == "unify.apideck.com"


@pytest.mark.parametrize("record_id", ["", "   ", ".", "..", "a\r\nb", "a\nb", "a\x00b", "\x7f", "a\tb", "x" * 5000])
@pytest.mark.anyio
async def test_unsafe_ids_are_refused_before_sending(record_id: str) -> None:
    up = Upstream(ok({}))
    async with make_client(up) as client:
        with pytest.raises(E.InvalidArgumentError) as info:
            await client.call(GET_CONTACT, path_params={"id": record_id})
    assert up.count == 0
    assert info.value.argument == "id"
    assert "Nothing was sent" in info.value.agent_message()


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"consumer_id": "c1\r\nX-Evil: 1"}, "consumer_id"),
        ({"service_id": "hubspot\nX-Evil: 1"}, "service_id"),
        ({"credentials": Credentials("k\r\n", APP, CONSUMER)}, "api_key"),
        ({"credentials": Credentials(KEY, "a\x00pp", CONSUMER)}, "app_id"),
        ({"consumer_id": "caf\u00e9"}, "consumer_id"),
    ],
)
@pytest.mark.anyio
async def test_header_injection_is_refused(kwargs: dict[str, Any], argument: str) -> None:
    up = Upstream(ok({}))
    async with make_client(up) as client:
        with pytest.raises(E.InvalidArgumentError) as info:
            await client.call(LIST_CONTACTS, **kwargs)
    assert up.count == 0
    assert info.value.argument == argument
    assert KEY not in str(info.value)


@pytest.mark.anyio
async def test_argument_shape_errors() -> None:
    up = Upstream(ok({}))
    async with make_client(up) as client:
        with pytest.raises(E.InvalidArgumentError, match="not a query parameter"):
            await client.call(GET_CONTACT, path_params={"id": "1"}, query={"sort": {"by": "name"}})
        with pytest.raises(E.InvalidArgumentError, match="takes no request body"):
            await client.call(GET_CONTACT, path_params={"id": "1"}, body={"a": 1})
        with pytest.raises(E.InvalidArgumentError, match="is required"):
            await client.call(GET_CONTACT)
        with pytest.raises(E.InvalidArgumentError, match="is not a parameter"):
            await client.call(GET_CONTACT, path_params={"id": "1", "other": "2"})
    assert up.count == 0


@pytest.mark.anyio
async def test_missing_credentials_are_a_configuration_error() -> None:
    up = Upstream(ok({}))
    client = ApideckClient("", APP, None, transport=httpx2.MockTransport(up))
    async with client:
        with pytest.raises(E.ConfigurationError) as info:
            await client.call(LIST_CONTACTS)
    assert "APIDECK_API_KEY" in str(info.value) and "APIDECK_CONSUMER_ID" in str(info.value)
    assert up.count == 0


@pytest.mark.parametrize("url", ["ftp://x", "not a url", "https://u:p@host", "https://host/?q=1", "https://"])
def test_bad_base_url(url: str) -> None:
    with pytest.raises(E.ConfigurationError):
        ApideckClient(KEY, APP, CONSUMER, base_url=url)


def test_reprs_hide_credentials() -> None:
    client = ApideckClient(KEY, APP, CONSUMER)
    assert KEY not in repr(client) and APP not in repr(client)
    assert KEY not in repr(Credentials(KEY, APP, CONSUMER)) and APP not in repr(Credentials(KEY, APP, CONSUMER))


# ------------------------------------------------------------------------------------- decoding


@pytest.mark.anyio
async def test_tolerant_decoding() -> None:
    extra = httpx2.Response(200, json={"data": {"id": "1", "new_field": {"x": 1}}, "unexpected": True})
    up = Upstream(extra, httpx2.Response(204), httpx2.Response(200, content=b""))
    async with make_client(up) as client:
        res = await client.call(GET_CONTACT, path_params={"id": "1"})
        assert res.body["unexpected"] is True and res.body["data"]["new_field"] == {"x": 1}
        assert (await client.call(DELETE_CONTACT, path_params={"id": "1"})).body == {}
        assert (await client.call(GET_CONTACT, path_params={"id": "1"})).body == {}


@pytest.mark.anyio
async def test_non_json_success_is_a_clear_error() -> None:
    html = httpx2.Response(200, content=b"<html>login page</html>", headers={"content-type": "text/html"})
    up = Upstream(html)
    async with make_client(up) as client:
        with pytest.raises(E.InvalidResponseError) as info:
            await client.call(GET_CONTACT, path_params={"id": "1"})
    msg = info.value.agent_message()
    assert "text/html" in msg and "not JSON" in msg and "APIDECK_BASE_URL" in msg


@pytest.mark.anyio
async def test_non_object_json_success_is_a_clear_error() -> None:
    up = Upstream(httpx2.Response(200, json=[1, 2]))
    async with make_client(up) as client:
        with pytest.raises(E.InvalidResponseError, match="list, not an object"):
            await client.call(GET_CONTACT, path_params={"id": "1"})


@pytest.mark.anyio
async def test_oversized_answer_is_refused() -> None:
    up = Upstream(httpx2.Response(200, content=b"{" + b" " * 2000 + b"}"))
    client = ApideckClient(KEY, APP, CONSUMER, transport=httpx2.MockTransport(up), max_response_bytes=1000)
    async with client:
        with pytest.raises(E.ResponseTooLargeError, match="more than 1,000 bytes"):
            await client.call(GET_CONTACT, path_params={"id": "1"})


@pytest.mark.anyio
async def test_404_names_resource_and_id() -> None:
    up = Upstream(fail(404, "EntityNotFoundError", "Unknown contact", **{"x-apideck-request-id": "r404"}))
    async with make_client(up) as client:
        with pytest.raises(E.NotFoundError) as info:
            await client.call(GET_CONTACT, path_params={"id": "nope-1"})
    msg = info.value.agent_message()
    assert "No contact with id `nope-1`" in msg and "list_contacts" in msg and "r404" in msg
    assert up.count == 1


@pytest.mark.anyio
async def test_unsupported_filter_names_the_filters_sent() -> None:
    up = Upstream(fail(400, "UnsupportedFiltersError", "Unsupported filter: email"))
    async with make_client(up) as client:
        with pytest.raises(E.UnsupportedFiltersError) as info:
            await client.call(LIST_CONTACTS, query={"filter": {"email": "a@b", "name": None}}, service_id="pipedrive")
    msg = info.value.agent_message()
    assert "filter[email]" in msg and "filter[name]" not in msg and "pipedrive" in msg
    assert up.count == 1


@pytest.mark.anyio
async def test_upstream_echo_of_the_key_is_redacted() -> None:
    echo = {
        "status_code": 401,
        "type_name": "UnauthorizedError",
        "message": f"Invalid Authorization: Bearer {KEY}",
        "detail": {"headers": {"authorization": f"Bearer {KEY}", "x-apideck-app-id": APP}, "note": f"{KEY}/{APP}"},
    }
    up = Upstream(httpx2.Response(401, json=echo))
    async with make_client(up) as client:
        with pytest.raises(E.AuthenticationError) as info:
            await client.call(LIST_CONTACTS)
    everything = info.value.agent_message() + json.dumps(info.value.to_dict()) + repr(info.value.args)
    assert KEY not in everything and APP not in everything
    assert "APIDECK_API_KEY" in everything


@pytest.mark.anyio
async def test_tenant_key_is_redacted_too() -> None:
    tenant = Credentials("tenant_CANARY_key_123", "tenant_CANARY_app", "c")
    up = Upstream(fail(500, None, "crash dump: key=tenant_CANARY_key_123 app tenant_CANARY_app"))
    async with make_client(up, max_attempts=1) as client:
        with pytest.raises(E.UpstreamError) as info:
            await client.call(LIST_CONTACTS, credentials=tenant)
    assert "tenant_CANARY" not in str(info.value)


# -------------------------------------------------------------------------------------- retries


@pytest.mark.anyio
async def test_get_retries_with_jittered_backoff_then_succeeds() -> None:
    fake = FakeTime()
    up = Upstream(fail(503), fail(502), httpx2.ReadTimeout("slow"), ok([]))
    async with make_client(up, fake=fake, base_delay=1.0, max_delay=10.0, random=lambda: 0.5) as client:
        res = await client.call(LIST_CONTACTS)
    assert res.attempts == 4 and up.count == 4
    assert fake.sleeps == [0.5, 1.0, 2.0]  # random() * base * 2**(n-1)


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
@pytest.mark.anyio
async def test_each_retryable_status_is_retried_for_reads(status: int) -> None:
    up = Upstream(fail(status), ok([]))
    async with make_client(up) as client:
        res = await client.call(LIST_CONTACTS)
    assert res.attempts == 2


@pytest.mark.parametrize("status", [400, 401, 402, 403, 404, 409, 422, 501])
@pytest.mark.anyio
async def test_definite_errors_are_not_retried(status: int) -> None:
    up = Upstream(fail(status), ok([]))
    async with make_client(up) as client:
        with pytest.raises(E.CrmError) as info:
            await client.call(LIST_CONTACTS)
    assert up.count == 1 and info.value.status == status


@pytest.mark.anyio
async def test_connection_errors_are_retried_for_reads_then_give_up() -> None:
    fake = FakeTime()
    up = Upstream(httpx2.ConnectError("refused"))
    async with make_client(up, fake=fake, max_attempts=3) as client:
        with pytest.raises(E.NetworkError) as info:
            await client.call(LIST_CONTACTS)
    assert up.count == 3 and info.value.attempts == 3
    assert "Gave up after 3 attempts" in str(info.value) and "connection failed" in str(info.value)


@pytest.mark.anyio
async def test_retry_after_seconds_is_honoured() -> None:
    fake = FakeTime()
    up = Upstream(fail(429, "ConnectorRateLimitError", **{"retry-after": "7"}), ok([]))
    async with make_client(up, fake=fake) as client:
        res = await client.call(LIST_CONTACTS)
    assert fake.sleeps == [7.0] and res.attempts == 2


@pytest.mark.anyio
async def test_retry_after_http_date_is_honoured() -> None:
    from email.utils import formatdate

    fake = FakeTime()
    when = formatdate(time.time() + 20, usegmt=True)
    up = Upstream(fail(503, **{"retry-after": when}), ok([]))
    async with make_client(up, fake=fake) as client:
        await client.call(LIST_CONTACTS)
    assert len(fake.sleeps) == 1 and 18 <= fake.sleeps[0] <= 20


@pytest.mark.anyio
async def test_retry_after_from_429_body() -> None:
    fake = FakeTime()
    body = {"status_code": 429, "type_name": "ConnectorRateLimitError", "detail": {"error": {"retry_after": 3}}}
    up = Upstream(httpx2.Response(429, json=body), ok([]))
    async with make_client(up, fake=fake) as client:
        await client.call(LIST_CONTACTS)
    assert fake.sleeps == [3.0]


@pytest.mark.anyio
async def test_a_nan_retry_after_backs_off_instead_of_retrying_at_once() -> None:
    fake = FakeTime()
    up = Upstream(fail(429, **{"retry-after": "nan"}))
    async with make_client(up, fake=fake, random=lambda: 1.0) as client:
        with pytest.raises(E.RateLimitError) as info:
            await client.call(LIST_CONTACTS)
    assert up.count == 4 and fake.sleeps == [0.5, 1.0, 2.0]  # full backoff, not four immediate retries
    assert "Wait a little" in str(info.value)


@pytest.mark.anyio
async def test_retry_after_beyond_the_time_bound_stops_at_once() -> None:
    fake = FakeTime()
    up = Upstream(fail(429, **{"retry-after": "120"}), ok([]))
    async with make_client(up, fake=fake, total_timeout=60) as client:
        with pytest.raises(E.RateLimitError) as info:
            await client.call(LIST_CONTACTS)
    assert up.count == 1 and fake.sleeps == []
    msg = str(info.value)
    assert "Wait 120 seconds" in msg and "Stopped after 1 attempt" in msg and "asked to wait 120 s" in msg


@pytest.mark.anyio
async def test_total_time_bound() -> None:
    fake = FakeTime()
    up = Upstream(fail(500))
    policy = {"max_attempts": 100, "base_delay": 2.0, "max_delay": 4.0, "total_timeout": 10.0, "random": lambda: 1.0}
    async with make_client(up, fake=fake, **policy) as client:
        with pytest.raises(E.UpstreamError) as info:
            await client.call(LIST_CONTACTS)
    # waits 2 + 4 + 4 = 10 s; the next 4 s wait would pass the 10 s bound
    assert fake.sleeps == [2.0, 4.0, 4.0] and up.count == 4
    assert sum(fake.sleeps) <= 10.0
    msg = str(info.value)
    assert "Stopped after 4 attempts" in msg and "10 s retry time bound" in msg and "HTTP 500" in msg


@pytest.mark.anyio
async def test_time_spent_in_requests_counts_against_the_bound() -> None:
    fake = FakeTime()

    def slow_failure(request: httpx2.Request) -> httpx2.Response:
        fake.now += 12.0  # each attempt "takes" 12 s
        return fail(502)

    up = Upstream(slow_failure)
    async with make_client(up, fake=fake, max_attempts=10, total_timeout=20.0) as client:
        with pytest.raises(E.UpstreamError):
            await client.call(LIST_CONTACTS)
    assert up.count == 2  # 12 s + 0.25 s wait + 12 s: past the bound, no third attempt
    assert up.requests[1].extensions["timeout"]["read"] == pytest.approx(20.0 - 12.25)  # capped by what is left


@pytest.mark.anyio
async def test_per_attempt_timeout_is_capped_by_the_remaining_budget() -> None:
    fake = FakeTime()
    up = Upstream(ok([]))
    async with make_client(up, fake=fake, total_timeout=3.0) as client:
        await client.call(LIST_CONTACTS)
    timeouts = up.requests[0].extensions["timeout"]
    assert timeouts["read"] == 3.0 and timeouts["connect"] == 3.0


@given(
    rnd=st.floats(min_value=0.0, max_value=1.0),
    n=st.integers(min_value=1, max_value=30),
    base=st.floats(min_value=0.01, max_value=5.0),
    cap=st.floats(min_value=0.01, max_value=60.0),
)
def test_property_jitter_bounds(rnd: float, n: int, base: float, cap: float) -> None:
    policy = RetryPolicy(base_delay=base, max_delay=cap, random=lambda: rnd)
    delay = policy.backoff(n)
    assert 0.0 <= delay <= min(cap, base * 2 ** (n - 1)) + 1e-9


# --------------------------------------------------------------------------------------- writes


@pytest.mark.parametrize(
    "failure",
    [
        httpx2.ReadTimeout("timed out"),
        httpx2.ReadError("connection reset"),
        httpx2.RemoteProtocolError("Server disconnected without sending a response."),
        httpx2.WriteTimeout("write timed out"),
        fail(500),
        fail(502),
        fail(504),
        fail(503),  # without Retry-After
        fail(408),
    ],
)
@pytest.mark.anyio
async def test_create_is_never_retried_once_it_may_have_arrived(failure: Any) -> None:
    fake = FakeTime()
    up = Upstream(failure, ok({"id": "dup"}, status=201))
    async with make_client(up, fake=fake) as client:
        with pytest.raises(E.UncertainWriteError) as info:
            await client.call(
                CREATE_CONTACT, body={"first_name": "Ada", "last_name": "L", "emails": [{"email": "ada@x.io"}]}
            )
    assert up.count == 1 and fake.sleeps == []
    msg = info.value.agent_message()
    assert "may have been applied" in msg
    assert "Do not call `create_contact` again" in msg
    assert 'list_contacts filter {"email": "ada@x.io"}' in msg
    assert KEY not in msg


@pytest.mark.parametrize(
    "answer",
    [
        b"[" * 100_000,  # nested deeper than the JSON decoder goes
        json.dumps({"data": json.loads("[" * 100 + "]" * 100)}).encode(),  # deeper than MAX_JSON_DEPTH
        b'{"data": {"id": "con_9',  # truncated
        b"<html>Created</html>",  # not JSON
        b"[1, 2]",  # JSON, not an object
    ],
    ids=["too-deep-to-decode", "too-deep", "truncated", "html", "array"],
)
@pytest.mark.anyio
async def test_a_create_whose_answer_cannot_be_read_may_have_been_applied(answer: bytes) -> None:
    up = Upstream(httpx2.Response(201, content=answer))
    async with make_client(up) as client:
        with pytest.raises(E.UncertainWriteError) as info:
            await client.call(CREATE_CONTACT, body={"first_name": "Ada", "emails": [{"email": "ada@x.example"}]})
    assert up.count == 1 and info.value.attempts == 1
    text = str(info.value)
    assert "may have been applied" in text and "could not be read" in text and "retried" not in text
    assert 'list_contacts filter {"email": "ada@x.example"}' in text


@pytest.mark.anyio
async def test_uncertain_create_hint_without_identifying_fields_sorts_newest_first() -> None:
    up = Upstream(httpx2.ReadTimeout("timed out"))
    async with make_client(up) as client:
        with pytest.raises(E.UncertainWriteError) as info:
            await client.call(CREATE_CONTACT, body={"description": "no name"})
    assert '"by": "created_at", "direction": "desc"' in str(info.value)


@pytest.mark.parametrize(
    "first",
    [
        httpx2.ConnectError("refused"),
        httpx2.ConnectTimeout("connect timed out"),
        httpx2.PoolTimeout("pool"),
        fail(429),
        fail(503, **{"retry-after": "2"}),
    ],
)
@pytest.mark.anyio
async def test_create_is_retried_when_provably_not_processed(first: Any) -> None:
    up = Upstream(first, ok({"id": "c1"}, status=201))
    async with make_client(up) as client:
        res = await client.call(CREATE_CONTACT, body={"first_name": "Ada"})
    assert res.attempts == 2 and up.count == 2 and res.body["data"]["id"] == "c1"


@pytest.mark.anyio
async def test_create_after_a_safe_retry_then_timeout_is_uncertain() -> None:
    up = Upstream(fail(429), httpx2.ReadTimeout("timed out"))
    async with make_client(up) as client:
        with pytest.raises(E.UncertainWriteError) as info:
            await client.call(CREATE_CONTACT, body={"first_name": "Ada"})
    assert up.count == 2 and info.value.attempts == 2


@pytest.mark.anyio
async def test_create_definite_error_is_raised_as_is() -> None:
    up = Upstream(fail(422, "RequestValidationError", "first_name is required"))
    async with make_client(up) as client:
        with pytest.raises(E.RequestValidationError):
            await client.call(CREATE_CONTACT, body={})
    assert up.count == 1


@pytest.mark.anyio
async def test_create_rate_limited_until_the_end_is_a_rate_limit_error() -> None:
    up = Upstream(fail(429))
    async with make_client(up, max_attempts=2) as client:
        with pytest.raises(E.RateLimitError) as info:
            await client.call(CREATE_CONTACT, body={"first_name": "Ada"})
    assert not isinstance(info.value, E.UncertainWriteError)
    assert up.count == 2


@pytest.mark.parametrize("op", [UPDATE_CONTACT, DELETE_CONTACT])
@pytest.mark.anyio
async def test_patch_and_delete_are_retried(op: Any) -> None:
    up = Upstream(httpx2.ReadTimeout("slow"), fail(502), ok({"id": "1"}))
    async with make_client(up) as client:
        body = {"first_name": "B"} if op.method == "PATCH" else None
        res = await client.call(op, path_params={"id": "1"}, body=body)
    assert res.attempts == 3
    assert all(target(r) == "/crm/contacts/1" and r.method == op.method for r in up.requests)


@pytest.mark.anyio
async def test_delete_whose_first_attempt_got_lost_reports_probably_deleted() -> None:
    up = Upstream(httpx2.ReadTimeout("slow"), fail(404, "EntityNotFoundError"))
    async with make_client(up) as client:
        with pytest.raises(E.NotFoundError) as info:
            await client.call(DELETE_CONTACT, path_params={"id": "1"})
    assert "already deleted" in str(info.value) and "(after 2 attempts)" in str(info.value)


# ---------------------------------------------------------------------------------- cancellation


@pytest.mark.slow  # waits out real timeouts: run with the timing-bound tests
@pytest.mark.anyio
async def test_cancellation_stops_a_slow_request_promptly() -> None:
    state = {"started": False, "cancelled": False}

    async def hang(request: httpx2.Request) -> httpx2.Response:
        state["started"] = True
        try:
            await anyio.sleep(30)
        except anyio.get_cancelled_exc_class():
            state["cancelled"] = True
            raise
        return ok([])

    up = Upstream(hang)
    client = ApideckClient(KEY, APP, CONSUMER, transport=httpx2.MockTransport(up))
    async with client:
        t0 = time.perf_counter()
        with anyio.move_on_after(0.2) as scope:
            await client.call(LIST_CONTACTS)
        elapsed = time.perf_counter() - t0
    assert scope.cancelled_caught and state["started"] and state["cancelled"]
    assert elapsed < 2.0


@pytest.mark.slow  # waits out real timeouts: run with the timing-bound tests
@pytest.mark.anyio
async def test_cancellation_interrupts_the_backoff_wait() -> None:
    up = Upstream(fail(429, **{"retry-after": "30"}))
    client = ApideckClient(KEY, APP, CONSUMER, transport=httpx2.MockTransport(up))  # real anyio.sleep
    async with client:
        t0 = time.perf_counter()
        with anyio.move_on_after(0.2) as scope:
            await client.call(LIST_CONTACTS)
    assert scope.cancelled_caught and time.perf_counter() - t0 < 2.0 and up.count == 1


# ----------------------------------------------------------------------------------- pagination


@pytest.mark.anyio
async def test_pages_follow_the_next_cursor() -> None:
    def page(request: httpx2.Request) -> httpx2.Response:
        cursor = request.url.params.get("cursor")
        nxt = {None: "c2", "c2": "c3", "c3": None}[cursor]
        return httpx2.Response(200, json={"data": [cursor], "meta": {"cursors": {"next": nxt}}})

    up = Upstream(page)
    async with make_client(up) as client:
        pages = [p async for p in client.pages(LIST_CONTACTS, query={"limit": 2})]
        assert [p.body["data"] for p in pages] == [[None], ["c2"], ["c3"]]
        capped = [p async for p in client.pages(LIST_CONTACTS, max_pages=2)]
        assert len(capped) == 2
    assert "limit=2" in str(up.requests[1].url) and "cursor=c2" in str(up.requests[1].url)


# ----------------------------------------------------------------------------------- real sockets


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A TCP server that reads requests and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    port = server.getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()


@pytest.mark.slow  # waits out real timeouts: run with the timing-bound tests
@pytest.mark.anyio
async def test_real_connection_refused_is_retried_for_a_create(pool: str) -> None:
    fake = FakeTime()
    retry = RetryPolicy(max_attempts=3, sleep=fake.sleep, clock=fake.clock, random=lambda: 0.0)
    client = ApideckClient(KEY, APP, CONSUMER, base_url=f"http://127.0.0.1:{free_port()}", retry=retry, pool=pool)
    async with client:
        with pytest.raises(E.NetworkError) as info:
            await client.call(CREATE_CONTACT, body={"first_name": "Ada"})
    assert not isinstance(info.value, E.UncertainWriteError)
    assert info.value.attempts == 3


@pytest.mark.slow  # waits out real timeouts: run with the timing-bound tests
@pytest.mark.anyio
async def test_real_read_timeout_on_a_create_is_uncertain(silent_server: str, pool: str) -> None:
    client = ApideckClient(KEY, APP, CONSUMER, base_url=silent_server, read_timeout=0.3, pool=pool)
    async with client:
        t0 = time.perf_counter()
        with pytest.raises(E.UncertainWriteError) as info:
            await client.call(CREATE_CONTACT, body={"first_name": "Ada"})
    assert info.value.attempts == 1 and time.perf_counter() - t0 < 3


@pytest.mark.slow  # waits out real timeouts: run with the timing-bound tests
@pytest.mark.anyio
async def test_real_slow_read_is_cancelled_promptly(silent_server: str, pool: str) -> None:
    client = ApideckClient(KEY, APP, CONSUMER, base_url=silent_server, pool=pool)
    async with client:
        t0 = time.perf_counter()
        with anyio.move_on_after(0.3):
            await client.call(LIST_CONTACTS)
    assert time.perf_counter() - t0 < 2.0


def test_api_response_keeps_no_upstream_headers() -> None:
    """Header values are the upstream's text: only the (redacted) request id is kept."""
    res = ApiResponse(status=200, body={}, request_id=None, elapsed_ms=1.0, attempts=1)
    assert not hasattr(res, "headers")


# ------------------------------------------------------------------------------ against the sandbox

SANDBOX_KEY = "sandbox_CANARY_key_42"


@pytest.fixture
def sandbox() -> Iterator[Any]:
    server_module = pytest.importorskip("crm_mcp.sandbox.server")
    with server_module.SandboxServer(db=":memory:", api_key=SANDBOX_KEY) as server:
        yield server


def sandbox_client(sandbox: Any, fake: FakeTime | None = None, **kwargs: Any) -> ApideckClient:
    fake = fake or FakeTime()
    retry = RetryPolicy(sleep=fake.sleep, clock=fake.clock, random=lambda: 0.5)
    return ApideckClient(SANDBOX_KEY, "app-1", "consumer-a", base_url=sandbox.base_url, retry=retry, **kwargs)


@pytest.mark.anyio
async def test_sandbox_list_with_filter_sort_limit(sandbox: Any) -> None:
    async with sandbox_client(sandbox) as client:
        page = await client.call(
            LIST_CONTACTS, query={"sort": {"by": "name", "direction": "asc"}, "limit": 3, "fields": "id,name,emails"}
        )
        assert page.status == 200 and page.attempts == 1
        names = [c["name"] for c in page.body["data"]]
        assert len(names) == 3 and names == sorted(names)
        assert page.body["meta"]["cursors"]["next"]
        assert sandbox.faults.requests[-1].query == "sort[by]=name&sort[direction]=asc&limit=3&fields=id,name,emails"

        email = page.body["data"][1]["emails"][0]["email"]
        found = await client.call(LIST_CONTACTS, query={"filter": {"email": email}})
        assert [c["name"] for c in found.body["data"]] == [names[1]]
        assert sandbox.faults.requests[-1].query == "filter[email]=" + email.replace("@", "%40")


@pytest.mark.anyio
async def test_sandbox_create_then_get(sandbox: Any) -> None:
    async with sandbox_client(sandbox) as client:
        created = await client.call(
            CREATE_CONTACT, body={"first_name": "Ada", "last_name": "Lovelace", "emails": [{"email": "ada@x.example"}]}
        )
        assert created.status == 201
        new_id = created.body["data"]["id"]
        got = await client.call(GET_CONTACT, path_params={"id": new_id})
        assert got.body["data"]["first_name"] == "Ada" and got.body["data"]["id"] == new_id


@pytest.mark.anyio
async def test_sandbox_404_and_hostile_id(sandbox: Any) -> None:
    async with sandbox_client(sandbox) as client:
        for hostile in ("does-not-exist", "../users", "..%2Fusers", "a/b"):
            with pytest.raises(E.NotFoundError) as info:
                await client.call(GET_CONTACT, path_params={"id": hostile})
            assert f"No contact with id `{hostile}`" in str(info.value)
    assert sandbox.faults.count(path="/crm/users*") == 0
    assert sandbox.faults.count(method="GET", path="/crm/contacts/*") == 4


@pytest.mark.anyio
async def test_sandbox_429_then_success(sandbox: Any) -> None:
    fake = FakeTime()
    sandbox.faults.rate_limit(times=1, retry_after=2)
    async with sandbox_client(sandbox, fake) as client:
        page = await client.call(LIST_CONTACTS, query={"limit": 1})
    assert page.status == 200 and page.attempts == 2
    assert fake.sleeps == [2.0]
    assert sandbox.faults.count(method="GET", path="/crm/contacts") == 2


@pytest.mark.anyio
async def test_sandbox_5xx_and_dropped_reads_are_retried(sandbox: Any) -> None:
    sandbox.faults.fail(503, times=1)
    sandbox.faults.fail(502, times=1)
    sandbox.faults.drop(times=1)
    async with sandbox_client(sandbox) as client:
        page = await client.call(LIST_CONTACTS, query={"limit": 1})
    assert page.attempts == 4


@pytest.mark.anyio
async def test_sandbox_create_rate_limited_is_retried_once_and_not_duplicated(sandbox: Any) -> None:
    sandbox.faults.rate_limit(times=1, retry_after=1, methods={"POST"})
    async with sandbox_client(sandbox) as client:
        created = await client.call(
            CREATE_CONTACT, body={"first_name": "Once", "emails": [{"email": "once@x.example"}]}
        )
        assert created.attempts == 2
        found = await client.call(LIST_CONTACTS, query={"filter": {"email": "once@x.example"}})
    assert len(found.body["data"]) == 1


@pytest.mark.parametrize("after_apply", [True, False])
@pytest.mark.anyio
async def test_sandbox_dropped_create_is_uncertain_and_the_hint_finds_the_truth(sandbox: Any, after_apply: bool):
    sandbox.faults.drop(after_apply=after_apply, methods={"POST"})
    body = {"first_name": "Grace", "last_name": "Hopper", "emails": [{"email": "grace@x.example"}]}
    async with sandbox_client(sandbox) as client:
        with pytest.raises(E.UncertainWriteError) as info:
            await client.call(CREATE_CONTACT, body=body)
        assert 'list_contacts filter {"email": "grace@x.example"}' in str(info.value)
        assert sandbox.faults.count(method="POST") == 1  # never retried
        found = await client.call(LIST_CONTACTS, query={"filter": {"email": "grace@x.example"}})
    assert len(found.body["data"]) == (1 if after_apply else 0)


@pytest.mark.slow  # waits out real timeouts: run with the timing-bound tests
@pytest.mark.anyio
async def test_sandbox_slow_read_times_out_and_is_retried(sandbox: Any) -> None:
    async with sandbox_client(sandbox) as warm:  # seed the consumer first: seeding is not the slow part
        await warm.call(LIST_CONTACTS, query={"limit": 1})
    sandbox.faults.slow(3.0, times=1)
    async with sandbox_client(sandbox, read_timeout=0.3) as client:
        t0 = time.perf_counter()
        page = await client.call(LIST_CONTACTS, query={"limit": 1})
    assert page.attempts == 2 and time.perf_counter() - t0 < 2.5


@pytest.mark.slow  # waits out real timeouts: run with the timing-bound tests
@pytest.mark.anyio
async def test_sandbox_cancellation_stops_a_slow_request(sandbox: Any) -> None:
    sandbox.faults.slow(5.0, times=1)
    async with sandbox_client(sandbox) as client:
        t0 = time.perf_counter()
        with anyio.move_on_after(0.3) as scope:
            await client.call(LIST_CONTACTS)
        assert scope.cancelled_caught and time.perf_counter() - t0 < 2.0
        # the pool is still usable afterwards
        assert (await client.call(LIST_CONTACTS, query={"limit": 1})).status == 200


@pytest.mark.anyio
async def test_sandbox_contract_errors(sandbox: Any) -> None:
    async with sandbox_client(sandbox) as client:
        with pytest.raises(E.UnsupportedSortFieldError):
            await client.call(LIST_CONTACTS, query={"sort": {"by": "bogus"}})
        with pytest.raises(E.InvalidCursorError):
            await client.call(LIST_CONTACTS, query={"cursor": "garbage"})
    bad = ApideckClient("wrong-key", "app-1", "consumer-a", base_url=sandbox.base_url)
    async with bad:
        with pytest.raises(E.AuthenticationError) as info:
            await bad.call(LIST_CONTACTS)
    assert "wrong-key" not in str(info.value) and SANDBOX_KEY not in str(info.value)


@pytest.mark.anyio
async def test_sandbox_pages_cover_every_record_once(sandbox: Any) -> None:
    async with sandbox_client(sandbox) as client:
        ids: list[str] = []
        async for page in client.pages(LIST_CONTACTS, query={"limit": 50, "fields": "id"}):
            ids.extend(c["id"] for c in page.body["data"])
    assert ids and len(ids) == len(set(ids))
    assert len(ids) > 50


def test_an_http_api_loads_no_ca_bundle_and_its_context_trusts_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading the CA bundle costs the first call 20-40 ms: only an https API gets it. The context an
    http:// API gets instead verifies certificates and host names against no CA at all, so an
    https request through it could only fail."""
    from crm_mcp import client as client_module

    loaded: list[bool] = []
    real = client_module.tls_context
    monkeypatch.setattr(client_module, "tls_context", lambda: loaded.append(True) or real())
    ApideckClient(api_key=KEY, app_id=APP, consumer_id=CONSUMER, base_url="http://127.0.0.1:4010")
    assert loaded == []
    ApideckClient(api_key=KEY, app_id=APP, consumer_id=CONSUMER, base_url="https://unify.apideck.com")
    assert loaded == [True]
    trusts_nothing = client_module.no_tls_context()
    assert trusts_nothing.verify_mode == ssl.CERT_REQUIRED and trusts_nothing.check_hostname
    assert trusts_nothing.cert_store_stats()["x509_ca"] == 0


@pytest.mark.anyio
async def test_both_pools_read_the_same_sandbox_page(sandbox: Any) -> None:
    """httpx2's pool and aiohttp's send the same request and read the same answer."""
    query = {"sort": {"by": "name", "direction": "asc"}, "limit": 5, "fields": "id,name"}
    pages = []
    for pool in ("httpx2", "aiohttp"):
        async with sandbox_client(sandbox, pool=pool) as client:
            page = await client.call(LIST_CONTACTS, query=query)
        assert page.status == 200 and page.attempts == 1
        pages.append(page.body["data"])
    assert len(pages[0]) == 5 and pages[0] == pages[1]
    assert [c["name"] for c in pages[0]] == sorted(c["name"] for c in pages[0])


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH - 1, MAX_JSON_DEPTH, MAX_JSON_DEPTH + 1])
def test_the_depth_limit_counts_objects_and_arrays_alike(depth: int) -> None:
    """An answer nested exactly MAX_JSON_DEPTH levels below its top is read; one level more is not."""
    from crm_mcp.client import _nested_deeper

    value: Any = "leaf"
    for level in range(depth):
        value = {"k": value, "n": 1} if level % 2 else [value, 2, None]
    answer = {"data": value, "meta": {}}  # the top object adds a level above `value`
    assert _nested_deeper(answer, MAX_JSON_DEPTH) is (depth + 1 > MAX_JSON_DEPTH)


@pytest.mark.anyio
@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH - 1, MAX_JSON_DEPTH, MAX_JSON_DEPTH + 1])
async def test_the_depth_limit_holds_for_an_answer_read_whole(depth: int) -> None:
    """Through the client: the bracket count that lets a shallow answer skip the walk never lets a
    deep one through, brackets in strings included."""
    value: Any = "{[{[ not containers ]}]}"
    for level in range(depth):
        value = {"k": value} if level % 2 else [value]
    body = json.dumps({"data": value}).encode()

    def up(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=body, headers={"content-type": "application/json"})

    async with ApideckClient(KEY, APP, CONSUMER, transport=httpx2.MockTransport(up)) as client:
        if depth + 1 > MAX_JSON_DEPTH:
            with pytest.raises(E.InvalidResponseError, match="nested deeper than 64 levels"):
                await client.call(operation("list_contacts"))
        else:
            assert (await client.call(operation("list_contacts"))).body == {"data": value}


@pytest.mark.parametrize(
    ("raw", "read"),
    [
        (b'{"data": {"id": "1", "n": 12345678901234567890, "x": 0.1, "y": -0.0, "z": null}}',
         {"data": {"id": "1", "n": 12345678901234567890, "x": 0.1, "y": -0.0, "z": None}}),
        (b'{"a": 1, "a": 2}', {"a": 2}),  # the last of duplicate keys, as json.loads
        (b'{"x": NaN, "y": -Infinity}', None),  # json.loads' extension, kept
        (b'\xef\xbb\xbf{"data": {"id": "bom"}}', {"data": {"id": "bom"}}),  # the fast parser refuses these two;
        (b'{"data": {"note": "\\ud800"}}', {"data": {"note": "\ud800"}}),  # json.loads reads them, as before
        ('{"data": {"id": "utf16"}}'.encode("utf-16"), {"data": {"id": "utf16"}}),
    ],
)
def test_answers_decode_as_json_loads_decodes_them(raw: bytes, read: Any) -> None:
    from crm_mcp.client import decode_json

    decoded = decode_json(raw)
    expected = json.loads(raw)
    assert repr(decoded) == repr(expected)  # repr: NaN != NaN
    if read is not None:
        assert decoded == read


@pytest.mark.parametrize("raw", [b'{"x": 01}', b'{"x": 1,}', b'{"x": "\xff"}', b"<html>", b'{"x": "a\nb"}'])
def test_what_json_loads_refuses_is_refused(raw: bytes) -> None:
    from crm_mcp.client import decode_json

    with pytest.raises(ValueError):
        decode_json(raw)
