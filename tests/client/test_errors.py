"""Error decoding, agent messages and redaction (crm_mcp.errors)."""

from __future__ import annotations

import datetime as dt
import json
import string
from email.utils import format_datetime
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from crm_mcp import errors as E
from crm_mcp.error_decoding import decode_error, parse_retry_after
from crm_mcp.errors import CallContext, summarize_detail
from crm_mcp.redaction import REDACTED, redact, redact_obj

CANARY_KEY = "sk_live_CANARY_7f3a9c2e1b"
CANARY_APP = "app_CANARY_0d9e8f7a"
SECRETS = (CANARY_KEY, CANARY_APP)

GET_CONTACT = CallContext(
    tool_name="get_contact",
    method="GET",
    resource="contacts",
    singular="contact",
    record_id="12345",
    list_tool="list_contacts",
)
LIST_CONTACTS = CallContext(
    tool_name="list_contacts",
    method="GET",
    resource="contacts",
    singular="contact",
    list_tool="list_contacts",
    filters=("email", "name"),
    sort_by="email",
    cursor_sent=True,
    service_id="hubspot",
)


def body(status: int, type_name: str | None, message: str = "msg", detail: Any = None, **extra: Any) -> bytes:
    out: dict[str, Any] = {"status_code": status, "error": "Error", "message": message}
    if type_name:
        out["type_name"] = type_name
    if detail is not None:
        out["detail"] = detail
    out.update(extra)
    return json.dumps(out).encode()


def assert_clean(text: str) -> None:
    assert CANARY_KEY not in text
    assert CANARY_KEY.lower() not in text.lower()
    assert CANARY_APP not in text


# ------------------------------------------------------------------------------------- redaction


class TestRedact:
    def test_known_secret_in_every_form(self) -> None:
        text = (
            f"key {CANARY_KEY} upper {CANARY_KEY.upper()} url {CANARY_KEY.replace('_', '%5F')} "
            f"json {json.dumps(CANARY_KEY)} app {CANARY_APP}"
        )
        out = redact(text, SECRETS)
        assert_clean(out)
        assert CANARY_KEY.upper() not in out
        assert REDACTED in out

    def test_url_encoded_form(self) -> None:
        key = "abc/def+ghi=="
        out = redact("sent ?k=abc%2Fdef%2Bghi%3D%3D", [key])
        assert "abc%2Fdef" not in out

    def test_unknown_bearer_and_header_echoes(self) -> None:
        text = 'Authorization: Bearer tok_someoneelse_123456 and {"x-apideck-app-id": "otherapp999"} api_key=zzz999'
        out = redact(text, ())
        assert "tok_someoneelse_123456" not in out
        assert "otherapp999" not in out
        assert "zzz999" not in out
        assert "Authorization" in out  # the name stays, the value goes

    def test_plain_text_is_left_alone(self) -> None:
        text = "Token refresh failed for contact 123: email is required"
        assert redact(text, SECRETS) == text

    def test_short_or_empty_secrets_do_not_destroy_text(self) -> None:
        assert redact("a normal message", ["", None, "a"]) == "a normal message"

    def test_redact_obj_walks_keys_values_and_sensitive_keys(self) -> None:
        value = {
            "headers": {"Authorization": "raw-value-without-bearer", "x": [CANARY_KEY, {"k": f"pre{CANARY_APP}post"}]},
            CANARY_KEY: 1,
            "password": "hunter2",
        }
        out = redact_obj(value, SECRETS)
        dumped = json.dumps(out)
        assert_clean(dumped)
        assert "raw-value-without-bearer" not in dumped
        assert "hunter2" not in dumped

    @given(
        secret=st.text(alphabet=string.ascii_letters + string.digits + "_-", min_size=8, max_size=40),
        before=st.text(max_size=40),
        after=st.text(max_size=40),
    )
    def test_property_secret_never_survives(self, secret: str, before: str, after: str) -> None:
        assume(secret.lower() not in REDACTED.lower())  # a "secret" spelled like the marker itself
        out = redact(before + secret + after, [secret])
        assert secret.lower() not in out.lower()


# ---------------------------------------------------------------------------------------- decoding

CASES = [
    # status, type_name, detail, class, words that must be in the agent message
    (400, "RequestValidationError", {"missing": [{"first_name": "required"}]}, E.RequestValidationError,
     ["first_name: required", "Fix"]),
    (422, "InvalidStateError", "Unprocessable request, please verify", E.RequestValidationError,
     ["HTTP 422", "Unprocessable request"]),
    (400, "UnsupportedFiltersError", "filter[email] is not supported", E.UnsupportedFiltersError,
     ["hubspot", "filter[email]", "filter[name]", "without the unsupported filter"]),
    (400, "UnsupportedSortFieldError", None, E.UnsupportedSortFieldError, ["sorting by `email`", "without `sort`"]),
    (400, "InvalidCursorError", None, E.InvalidCursorError, ["cursor", "list_contacts", "without `cursor`"]),
    (400, "PaginationNotSupportedError", None, E.PaginationNotSupportedError, ["without `limit` and `cursor`"]),
    (401, "UnauthorizedError", "Missing authentication", E.AuthenticationError,
     ["APIDECK_API_KEY", "APIDECK_APP_ID", "APIDECK_CONSUMER_ID", "retrying will not help"]),
    (403, None, None, E.PermissionDeniedError, ["HTTP 403", "do not repeat"]),
    (402, "RequestLimitError", "You have reached your limit of 2000", E.PlanLimitError,
     ["limit of 2000", "upgraded"]),
    (404, "EntityNotFoundError", None, E.NotFoundError, ["Not found", "list_contacts"]),
    (409, None, None, E.ConflictError, ["HTTP 409", "up-to-date"]),
    (429, "ConnectorRateLimitError", {"context": "hubspot", "error": {"retry_after": 12}}, E.ConnectorRateLimitError,
     ["hubspot", "Wait 12 seconds"]),
    (429, None, None, E.RateLimitError, ["HTTP 429", "Wait"]),
    (400, "ConnectorExecutionError", None, E.ConnectorExecutionError,
     ["hubspot", "VALIDATION_ERROR", "archived", "do not repeat it unchanged"]),
    (502, "ConnectorExecutionError", None, E.ConnectorExecutionError, ["hubspot", "HTTP 502", "try again later"]),
    (401, "ConnectorCredentialsError", None, E.ConnectorCredentialsError, ["hubspot", "Vault", "(re)authorize"]),
    (400, "ConnectionNotFoundError", None, E.ConnectionSetupError, ["service id", "hubspot"]),
    (400, "ConnectorDisabledError", None, E.ConnectorDisabledError, ["disabled", "hubspot"]),
    (501, "MappingError", None, E.ConnectorUnsupportedError, ["does not support", "Do not retry"]),
    (501, None, None, E.ConnectorUnsupportedError, ["does not support"]),
    (500, None, None, E.UpstreamError, ["HTTP 500", "Try again later"]),
    (503, None, None, E.UpstreamError, ["HTTP 503"]),
    (418, None, None, E.CrmError, ["HTTP 418"]),
]  # fmt: skip


@pytest.mark.parametrize(("status", "type_name", "detail", "cls", "words"), CASES)
def test_decoding_and_agent_message(status: int, type_name: str | None, detail: Any, cls: type, words: list[str]):
    downstream = (
        [{"message": "Account code '100' has been archived", "detail": "must be valid", "code": "VALIDATION_ERROR"}]
        if type_name == "ConnectorExecutionError"
        else None
    )
    extra = {"downstream_errors": downstream} if downstream else {}
    raw = body(status, type_name, "upstream says no", detail, **extra)
    err = decode_error(status, raw, {"x-apideck-request-id": "req-1"}, context=LIST_CONTACTS, secrets=SECRETS)
    assert type(err) is cls
    assert err.status == status
    assert err.type_name == type_name
    assert err.request_id == "req-1"
    message = err.agent_message()
    for word in words:
        assert word in message, (word, message)
    assert "req-1" in message
    assert str(err) == message
    assert len(message) < 900


@pytest.mark.parametrize(("status", "type_name", "detail", "cls", "words"), CASES)
def test_canary_key_echoed_by_upstream_is_redacted(status: int, type_name: str | None, detail: Any, cls, words):
    echo = f"Invalid header Authorization: Bearer {CANARY_KEY} for app {CANARY_APP}"
    raw = body(
        status,
        type_name,
        echo,
        {"debug": {"request": {"headers": {"authorization": f"Bearer {CANARY_KEY}"}}}, "msg": echo},
        downstream_errors=[{"message": echo, "detail": CANARY_KEY, "code": "X"}],
        service=f"svc-{CANARY_APP}",
    )
    err = decode_error(status, raw, {"retry-after": "3"}, context=LIST_CONTACTS, secrets=SECRETS)
    assert_clean(err.agent_message())
    assert_clean(json.dumps(err.to_dict()))
    assert_clean(str(err.args))
    assert_clean(repr(err.detail))
    assert_clean(err.message)


def test_not_found_names_resource_and_id() -> None:
    err = decode_error(404, body(404, "EntityNotFoundError", "Unknown Contact"), {}, context=GET_CONTACT)
    assert isinstance(err, E.NotFoundError)
    msg = err.agent_message()
    assert "No contact with id `12345` exists" in msg
    assert "get_contact" in msg and "list_contacts" in msg


def test_not_found_after_uncertain_delete_says_probably_deleted() -> None:
    ctx = CallContext(
        tool_name="delete_contact", method="DELETE", singular="contact", record_id="9", after_uncertain_attempt=True
    )
    msg = decode_error(404, b"", {}, context=ctx).agent_message()
    assert "already deleted" in msg


def test_unauthorized_never_echoes_credentials_even_from_message() -> None:
    raw = body(401, "UnauthorizedError", f"Bad key {CANARY_KEY}", f"app {CANARY_APP} / key {CANARY_KEY}")
    err = decode_error(401, raw, {}, context=GET_CONTACT, secrets=SECRETS)
    assert isinstance(err, E.AuthenticationError)
    assert_clean(err.agent_message())
    assert "APIDECK_API_KEY" in err.agent_message()


def test_403_with_unauthorized_type_is_permission_denied() -> None:
    assert type(decode_error(403, body(403, "UnauthorizedError"), {})) is E.PermissionDeniedError


def test_connector_service_from_body_wins() -> None:
    raw = body(400, "ConnectorExecutionError", "boom", service="salesforce")
    err = decode_error(400, raw, {}, context=LIST_CONTACTS)
    assert err.service == "salesforce"
    assert "salesforce" in err.agent_message()


def test_non_json_error_body() -> None:
    raw = b"<html><body>502 Bad Gateway</body></html>"
    err = decode_error(502, raw, {"content-type": "text/html"}, context=GET_CONTACT)
    assert isinstance(err, E.UpstreamError)
    msg = err.agent_message()
    assert "not JSON" in msg and "text/html" in msg and "Bad Gateway" in msg


def test_empty_and_non_object_bodies() -> None:
    assert isinstance(decode_error(404, b"", {}), E.NotFoundError)
    assert "Not Found" in decode_error(404, b"", {}).message
    err = decode_error(400, b'["a", "b"]', {})
    assert isinstance(err, E.RequestValidationError)


def test_detail_summary() -> None:
    assert summarize_detail({"missing": [{"foobar": "required"}]}) == "missing.foobar: required"
    assert summarize_detail("Missing property foobar") == "Missing property foobar"
    many = {f"f{i}": "bad" for i in range(20)}
    assert summarize_detail(many).endswith("…")
    assert summarize_detail(None) == ""


# ------------------------------------------------------------------------------------- retry-after

NOW = dt.datetime(2025, 1, 1, 12, 0, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("headers", "body_", "expected"),
    [
        ({"retry-after": "7"}, None, 7.0),
        ({"retry-after": "1.5"}, None, 1.5),
        ({"retry-after": format_datetime(NOW + dt.timedelta(seconds=30), usegmt=True)}, None, 30.0),
        ({"retry-after": format_datetime(NOW - dt.timedelta(seconds=30), usegmt=True)}, None, 0.0),
        ({"retry-after": "garbage"}, None, None),
        ({"ratelimit-reset": "9"}, None, 9.0),
        ({"x-ratelimit-reset": str(int(NOW.timestamp()) + 20)}, None, 20.0),
        ({}, {"detail": {"context": "x", "error": {"retry_after": 12}}}, 12.0),
        ({}, {"detail": {"error": {"Retry-After": "4"}}}, 4.0),
        ({}, {"detail": {"debug": {"cooldown_remaining_ms": 2500}}}, 2.5),
        ({}, {"detail": {"debug": {"retry_after_ms": NOW.timestamp() * 1000 + 5000}}}, 5.0),
        ({}, {"detail": "no hint"}, None),
        ({"retry-after": "3"}, {"detail": {"retry_after": 99}}, 3.0),  # the header wins
    ],
)
def test_parse_retry_after(headers: dict[str, str], body_: Any, expected: float | None) -> None:
    got = parse_retry_after(headers, body_, now=NOW)
    assert got == pytest.approx(expected) if expected is not None else got is None


@pytest.mark.parametrize(
    ("headers", "body_", "expected"),
    [
        ({"retry-after": "99999999"}, None, 3600.0),  # told as an hour at most
        ({"retry-after": "nan"}, None, None),  # no number: no hint (backoff), not "wait 0 s"
        ({"retry-after": "inf"}, None, None),
        ({"retry-after": "-inf"}, None, None),
        ({"retry-after": "-5"}, None, 0.0),
        ({"retry-after": "Fri, 31 Dec 9999 23:59:59 GMT"}, None, 3600.0),
        ({"ratelimit-reset": "1e300"}, None, 3600.0),
        ({}, {"detail": {"retry_after": "NaN"}}, None),
        ({}, {"detail": {"retry_after_ms": 1e20}}, 3600.0),
    ],
)
def test_retry_after_is_bounded_and_sane(headers: dict[str, str], body_: Any, expected: float | None) -> None:
    got = parse_retry_after(headers, body_, now=NOW)
    assert got == pytest.approx(expected) if expected is not None else got is None


def test_an_absurd_retry_after_is_not_passed_on_to_the_agent() -> None:
    err = decode_error(429, body(429, None), {"retry-after": "99999999"})
    assert err.retry_after == 3600 and "Wait 3600 seconds" in err.agent_message()
    assert "99999999" not in err.agent_message()


def test_429_carries_retry_after_into_message() -> None:
    err = decode_error(429, body(429, None), {"retry-after": "42"})
    assert isinstance(err, E.RateLimitError)
    assert err.retry_after == 42
    assert "Wait 42 seconds" in err.agent_message()


def test_503_with_retry_after_says_not_processed() -> None:
    err = decode_error(503, b"", {"retry-after": "5"}, context=GET_CONTACT)
    assert err.retry_after == 5
    assert "not processed" in err.agent_message()


# ------------------------------------------------------------------------------------ local errors


def test_uncertain_write_message() -> None:
    ctx = CallContext(
        tool_name="create_contact",
        method="POST",
        singular="contact",
        list_tool="list_contacts",
        check_hint='with list_contacts filter {"email": "a@b.co"}',
    )
    msg = E.UncertainWriteError("the answer timed out", context=ctx).agent_message()
    assert "may have been applied" in msg
    assert "Do not call `create_contact` again" in msg
    assert 'list_contacts filter {"email": "a@b.co"}' in msg
    assert "duplicate" in msg


def test_invalid_argument_message() -> None:
    err = E.InvalidArgumentError("id", "'..' is not a valid id", context=GET_CONTACT)
    assert "Invalid argument `id`" in err.agent_message()
    assert "Nothing was sent" in err.agent_message()


def test_network_and_timeout_messages() -> None:
    ctx = CallContext(tool_name="list_users", base_url="https://unify.apideck.com")
    net = E.NetworkError("connection failed: refused", context=ctx)
    assert "Could not reach" in net.agent_message() and "unify.apideck.com" in net.agent_message()
    tmo = E.RequestTimeoutError("the answer timed out", context=ctx)
    assert isinstance(tmo, E.NetworkError)
    assert "did not answer" in tmo.agent_message()


def test_gave_up_is_appended() -> None:
    err = decode_error(500, b"", {}, context=GET_CONTACT)
    err.gave_up = "Gave up after 4 attempts in 3.2 s."
    assert err.agent_message().endswith("Gave up after 4 attempts in 3.2 s.")


def test_to_dict_is_json_ready() -> None:
    err = decode_error(429, body(429, "ConnectorRateLimitError"), {"retry-after": "2", "request-id": "r9"})
    data = err.to_dict()
    json.dumps(data)
    assert data["kind"] == "connector_rate_limited"
    assert data["retry_after"] == 2
    assert data["request_id"] == "r9"


def test_one_advice_table_covers_every_kind() -> None:
    """Each error class names a distinct kind; the advice for a kind lives in `ADVICE`, not in the class."""
    classes = [getattr(E, name) for name in E.__all__ if isinstance(getattr(E, name), type)]
    errors = [c for c in classes if issubclass(c, E.CrmError)]
    kinds = [c.kind for c in errors]
    assert len(kinds) == len(set(kinds))
    generic = {"error", "connector_error"}  # the base classes: "`tool` failed (HTTP n T: message)."
    assert set(E.ADVICE) == set(kinds) - generic
    assert all("advice" not in vars(c) for c in errors if c is not E.CrmError)
    err = E.ConnectorError("boom", status=418, type_name="Teapot", context=CallContext(tool_name="get_lead"))
    assert err.agent_message() == "`get_lead` failed (HTTP 418 Teapot: boom)."
