"""`--confirm-destructive`: a delete asks the user (elicitation) through a real in-memory client
session, on both protocol revisions: 2025-11-25 (`mode="legacy"`, a server-to-client
`elicitation/create` request mid-call) and 2026-07-28 (the default in memory: an
`InputRequiredResult` the client answers by retrying the call). The record's fate is checked
through the sandbox's own HTTP API."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from typing import Any

import http_clients
import httpx2
import mcp_types as types
import pytest
from mcp.client import Client
from mcp.shared.exceptions import MCPError
from mcp_support import sandbox_settings, serve_in_thread, text_of

from crm_mcp.cli import build_parser
from crm_mcp.client import RetryPolicy
from crm_mcp.config import Settings
from crm_mcp.confirm import INPUT_KEY, REQUESTED_SCHEMA
from crm_mcp.operations import OPERATIONS
from crm_mcp.selection import Selection
from crm_mcp.server import build_server

pytestmark = pytest.mark.anyio

MODES = {"legacy": "2025-11-25", "auto": "2026-07-28"}



@pytest.fixture
def settings(sandbox_server: Any) -> Settings:
    return sandbox_settings(sandbox_server, consumer=f"confirm-{uuid.uuid4().hex[:12]}")  # a fresh seeded CRM


@pytest.fixture
def api(sandbox_server: Any, settings: Settings) -> Iterator[httpx2.Client]:
    """The sandbox's HTTP API as the same consumer the server acts for."""
    headers = {
        "Authorization": f"Bearer {settings.api_key}",
        "x-apideck-app-id": settings.app_id,
        "x-apideck-consumer-id": settings.consumer_id,
    }
    with http_clients.sync_client(base_url=sandbox_server.base_url, headers=headers) as client:
        yield client


class Asker:
    """An elicitation callback that answers as a user would, and records what it was asked."""

    def __init__(self, action: str = "accept", content: dict[str, Any] | None = None):
        self.action = action
        self.content = {"confirm": True} if content is None and action == "accept" else content
        self.asked: list[Any] = []

    async def __call__(self, _ctx: Any, params: Any) -> types.ElicitResult:
        self.asked.append(params)
        return types.ElicitResult(action=self.action, content=self.content)  # type: ignore[arg-type]


def _client(settings: Settings, mode: str, asker: Asker | None, **server_kw: Any) -> Client:
    server = build_server(settings, confirm_destructive=server_kw.pop("confirm_destructive", True), **server_kw)
    kw: dict[str, Any] = {"elicitation_callback": asker} if asker is not None else {}
    return Client(server, mode=mode, raise_exceptions=True, **kw)


@pytest.mark.parametrize("mode", list(MODES))
async def test_accept_deletes(settings: Settings, api: httpx2.Client, mode: str) -> None:
    asker = Asker("accept")
    assert api.get("/crm/contacts/con_0001").status_code == 200
    async with _client(settings, mode, asker) as client:
        assert client.protocol_version == MODES[mode]
        result = await client.call_tool("delete_contact", {"id": "con_0001"})
    assert not result.is_error, text_of(result)
    assert "Deleted contact con_0001" in text_of(result)
    [question] = asker.asked
    assert question.message.startswith("Delete contact con_0001 (Jane Doe)?")
    assert question.requested_schema == REQUESTED_SCHEMA  # one boolean, nothing secret
    assert list(question.requested_schema["properties"]) == ["confirm"]
    assert question.requested_schema["properties"]["confirm"]["type"] == "boolean"
    assert api.get("/crm/contacts/con_0001").status_code == 404


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize(
    ("action", "content", "word"),
    [("decline", None, "declined"), ("cancel", None, "cancelled"), ("accept", {"confirm": False}, "declined")],
)
async def test_decline_cancel_or_unchecked_leaves_the_record(
    settings: Settings, api: httpx2.Client, mode: str, action: str, content: Any, word: str
) -> None:
    asker = Asker(action, content)
    async with _client(settings, mode, asker) as client:
        result = await client.call_tool("delete_contact", {"id": "con_0001"})
    assert len(asker.asked) == 1
    assert result.is_error
    text = text_of(result)
    assert text.startswith(f"Not deleted: the user {word} deleting contact con_0001 (Jane Doe).")
    assert "unchanged" in text and "Do not retry" in text
    assert api.get("/crm/contacts/con_0001").status_code == 200


@pytest.mark.parametrize("mode", list(MODES))
async def test_client_without_elicitation_is_refused(settings: Settings, api: httpx2.Client, mode: str) -> None:
    async with _client(settings, mode, None) as client:
        result = await client.call_tool("delete_contact", {"id": "con_0001"})
    assert result.is_error
    text = text_of(result)
    assert "Not deleted" in text and "does not support elicitation" in text and "--confirm-destructive" in text
    assert api.get("/crm/contacts/con_0001").status_code == 200


@pytest.mark.parametrize("mode", list(MODES))
async def test_without_the_flag_deletes_as_before(settings: Settings, api: httpx2.Client, mode: str) -> None:
    asker = Asker("decline")
    async with _client(settings, mode, asker, confirm_destructive=False) as client:
        result = await client.call_tool("delete_contact", {"id": "con_0001"})
    assert not result.is_error and asker.asked == []
    assert api.get("/crm/contacts/con_0001").status_code == 404


@pytest.mark.parametrize("mode", list(MODES))
async def test_other_records_are_named_and_other_tools_never_ask(
    settings: Settings, api: httpx2.Client, mode: str
) -> None:
    asker = Asker("accept")
    async with _client(settings, mode, asker) as client:
        assert not (await client.call_tool("get_contact", {"id": "con_0001"})).is_error
        assert not (await client.call_tool("update_contact", {"id": "con_0001", "title": "COO"})).is_error
        assert asker.asked == []
        result = await client.call_tool("delete_opportunity", {"id": "opp_001"})
    assert not result.is_error
    [question] = asker.asked
    assert question.message.startswith("Delete opportunity opp_001 (") and "Acme" in question.message
    assert api.get("/crm/opportunities/opp_001").status_code == 404


@pytest.mark.parametrize("mode", list(MODES))
async def test_invalid_arguments_are_not_asked(settings: Settings, mode: str) -> None:
    asker = Asker("accept")
    async with _client(settings, mode, asker) as client:
        invalid = await client.call_tool("delete_contact", {})
    assert asker.asked == []
    assert invalid.is_error and "Invalid arguments for delete_contact" in text_of(invalid)


@pytest.mark.parametrize("mode", list(MODES))
async def test_a_record_that_cannot_be_looked_up_is_still_asked(settings: Settings, mode: str) -> None:
    """Naming the record is only for the question: when the lookup gets a 404, the user is asked all
    the same (with the id alone), and the delete then says what the API says."""
    asker = Asker("decline")
    async with _client(settings, mode, asker) as client:
        declined = await client.call_tool("delete_contact", {"id": "con_9999"})
    [question] = asker.asked
    assert question.message == ("Delete contact con_9999? Undo re-creates it with a new id; "
                                "records linked to it are not relinked.")
    assert declined.is_error
    assert text_of(declined).startswith("Not deleted: the user declined deleting contact con_9999.")

    asker = Asker("accept")
    async with _client(settings, mode, asker) as client:
        accepted = await client.call_tool("delete_contact", {"id": "con_9999"})
    assert len(asker.asked) == 1 and accepted.is_error and "con_9999" in text_of(accepted)


@pytest.mark.parametrize("mode", list(MODES))
async def test_a_failed_lookup_never_deletes_without_asking(
    sandbox_server: Any, settings: Settings, api: httpx2.Client, mode: str
) -> None:
    """The lookup fails (404, or the API answers 500): a client that cannot ask gets the delete
    refused; nothing is deleted either way."""
    deletes = sandbox_server.faults.count(method="DELETE", path="/crm/contacts/*")
    async with _client(settings, mode, None, client_options={"retry": RetryPolicy.never()}) as client:
        missing = await client.call_tool("delete_contact", {"id": "con_9999"})
        sandbox_server.faults.fail(500, times=1, methods={"GET"}, path="/crm/contacts/con_0001")
        try:
            failed = await client.call_tool("delete_contact", {"id": "con_0001"})
        finally:
            sandbox_server.faults.clear()
    for result, record in ((missing, "con_9999"), (failed, "con_0001")):
        assert result.is_error and text_of(result).startswith("Not deleted:"), text_of(result)
        assert "does not support elicitation" in text_of(result) and record in text_of(result)
    assert sandbox_server.faults.count(method="DELETE", path="/crm/contacts/*") == deletes
    assert api.get("/crm/contacts/con_0001").status_code == 200


def test_every_delete_tool_and_only_those_needs_the_delete_scope() -> None:
    from crm_mcp.tools import registry

    deleting = {t.name for t in registry() if t.scope == "crm:delete"}
    assert deleting == {op.tool_name for op in OPERATIONS if op.action == "delete"}
    assert len(deleting) == 10


@pytest.mark.parametrize("mode", list(MODES))
async def test_read_only_server_refuses_without_asking(settings: Settings, api: httpx2.Client, mode: str) -> None:
    asker = Asker("accept")
    async with _client(settings, mode, asker, selection=Selection(read_only=True)) as client:
        result = await client.call_tool("delete_contact", {"id": "con_0001"})
    assert result.is_error and asker.asked == []
    assert api.get("/crm/contacts/con_0001").status_code == 200


async def test_legacy_elicitation_failure_does_not_delete(settings: Settings, api: httpx2.Client) -> None:
    async def broken(_ctx: Any, _params: Any) -> types.ErrorData:
        return types.ErrorData(code=types.INTERNAL_ERROR, message="dialog crashed")

    server = build_server(settings, confirm_destructive=True)
    async with Client(server, mode="legacy", elicitation_callback=broken) as client:  # type: ignore[arg-type]
        result = await client.call_tool("delete_contact", {"id": "con_0001"})
    assert result.is_error and "asking the user for confirmation failed" in text_of(result)
    assert api.get("/crm/contacts/con_0001").status_code == 200


async def test_modern_rounds_are_bound_to_the_question(settings: Settings, api: httpx2.Client) -> None:
    """2026-07-28 by hand: the first round asks and deletes nothing; an answer counts only with the
    sealed request_state minted for this very delete."""
    accept = types.ElicitResult(action="accept", content={"confirm": True})
    async with _client(settings, "auto", Asker("accept")) as client:
        session = client.session
        first = await session.call_tool("delete_contact", {"id": "con_0001"}, allow_input_required=True)
        assert isinstance(first, types.InputRequiredResult)
        request = (first.input_requests or {})[INPUT_KEY]
        assert isinstance(request, types.ElicitRequest)
        assert request.params.message.startswith("Delete contact con_0001 (Jane Doe)?")
        assert first.request_state and "con_0001" not in first.request_state  # sealed, not readable
        assert api.get("/crm/contacts/con_0001").status_code == 200

        # An answer without the state it belongs to is not a confirmation: asked again.
        again = await session.call_tool(
            "delete_contact", {"id": "con_0001"}, input_responses={INPUT_KEY: accept}, allow_input_required=True
        )
        assert isinstance(again, types.InputRequiredResult)
        # A forged state, or this state replayed for another record, is refused by the boundary.
        with pytest.raises(MCPError, match="requestState"):
            await session.call_tool(
                "delete_contact", {"id": "con_0001"}, input_responses={INPUT_KEY: accept},
                request_state="v1.forged", allow_input_required=True,
            )
        with pytest.raises(MCPError, match="requestState"):
            await session.call_tool(
                "delete_contact", {"id": "con_0002"}, input_responses={INPUT_KEY: accept},
                request_state=first.request_state, allow_input_required=True,
            )
        assert api.get("/crm/contacts/con_0001").status_code == 200
        assert api.get("/crm/contacts/con_0002").status_code == 200

        done = await session.call_tool(
            "delete_contact", {"id": "con_0001"}, input_responses={INPUT_KEY: accept},
            request_state=first.request_state, allow_input_required=True,
        )
        assert isinstance(done, types.CallToolResult) and not done.is_error
    assert api.get("/crm/contacts/con_0001").status_code == 404
    assert api.get("/crm/contacts/con_0002").status_code == 200


def test_cli_flag_on_both_positions() -> None:
    parser = build_parser()
    assert parser.parse_args(["--confirm-destructive"]).confirm_destructive is True
    assert parser.parse_args(["--confirm-destructive", "serve"]).confirm_destructive is True
    assert parser.parse_args(["serve", "--confirm-destructive"]).confirm_destructive is True
    assert parser.parse_args(["serve"]).confirm_destructive is False
    assert parser.parse_args([]).confirm_destructive is False


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("action", ["accept", "decline"])
async def test_delete_through_the_discovery_call_tool_asks_once(
    settings: Settings, api: httpx2.Client, mode: str, action: str
) -> None:
    if "tool_mode" not in Selection.__dataclass_fields__:
        pytest.skip("no discover tool mode in this tree")
    asker = Asker(action)
    selection = Selection(tool_mode="discover")  # type: ignore[call-arg,unused-ignore]
    async with _client(settings, mode, asker, selection=selection) as client:
        assert "call_tool" in {t.name for t in (await client.list_tools()).tools}
        result = await client.call_tool("call_tool", {"name": "delete_contact", "arguments": {"id": "con_0001"}})
    [question] = asker.asked  # asked once, not again when call_tool dispatches the delete
    assert question.message.startswith("Delete contact con_0001 (Jane Doe)?")
    if action == "accept":
        assert not result.is_error, text_of(result)
        assert api.get("/crm/contacts/con_0001").status_code == 404
    else:
        assert result.is_error and "Not deleted" in text_of(result)
        assert api.get("/crm/contacts/con_0001").status_code == 200


@pytest.mark.parametrize("mode", list(MODES))
async def test_over_streamable_http(
    sandbox_server: Any, settings: Settings, api: httpx2.Client, mode: str
) -> None:
    """The HTTP transport is stateless: on 2026-07-28 the question rides the InputRequiredResult and
    the delete goes through; a 2025-11-25 client cannot be sent a request mid-call there, so the
    delete is refused, never done silently."""
    from crm_mcp.http import build_http_app

    server = build_server(settings, confirm_destructive=True)
    app = build_http_app(server, settings, host="127.0.0.1", port=0, token=None)
    with serve_in_thread(app) as port:
        asker = Asker("accept")
        url = f"http://127.0.0.1:{port}/mcp"
        async with Client(url, mode=mode, elicitation_callback=asker) as client:  # type: ignore[arg-type]
            result = await client.call_tool("delete_contact", {"id": "con_0001"})
    if mode == "auto":
        assert not result.is_error and len(asker.asked) == 1
        assert api.get("/crm/contacts/con_0001").status_code == 404
    else:
        assert result.is_error and "Not deleted" in text_of(result) and asker.asked == []
        assert "cannot carry the confirmation request" in text_of(result) and "2026-07-28" in text_of(result)
        assert api.get("/crm/contacts/con_0001").status_code == 200


async def test_replicas_sharing_a_key_accept_each_others_state(settings: Settings, api: httpx2.Client) -> None:
    """Behind a load balancer the retry may reach another replica: with CRM_MCP_REQUEST_STATE_KEY
    it can unseal the state; without it (a per-process key) it refuses it, and deletes nothing."""
    accept = types.ElicitResult(action="accept", content={"confirm": True})
    args = {"id": "con_0001"}

    async def first_round() -> types.InputRequiredResult:
        async with _client(shared, "auto", Asker()) as one:
            first = await one.session.call_tool("delete_contact", args, allow_input_required=True)
        assert isinstance(first, types.InputRequiredResult)
        return first

    shared = settings
    first = await first_round()  # a per-process key: another server cannot read it
    async with _client(settings, "auto", Asker()) as other:
        with pytest.raises(MCPError, match="requestState"):
            await other.session.call_tool("delete_contact", args, input_responses={INPUT_KEY: accept},
                                          request_state=first.request_state, allow_input_required=True)
    assert api.get("/crm/contacts/con_0001").status_code == 200

    shared = dataclasses.replace(settings, request_state_key="k" * 40)  # CRM_MCP_REQUEST_STATE_KEY
    first = await first_round()
    async with _client(shared, "auto", Asker()) as other:
        done = await other.session.call_tool("delete_contact", args, input_responses={INPUT_KEY: accept},
                                             request_state=first.request_state, allow_input_required=True)
    assert isinstance(done, types.CallToolResult) and not done.is_error
    assert api.get("/crm/contacts/con_0001").status_code == 404
