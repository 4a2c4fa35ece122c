"""Compressed answers, against a real upstream on loopback through both pools: the client asks for
gzip and deflate, decodes them itself (`crm_mcp.upstream.Inflate`), counts its byte budget in
decoded bytes (a small compressed body cannot inflate past it), and says so when a body is not
what its encoding claims. Also the proxy the environment names for the stdio pool."""

from __future__ import annotations

import gzip
import json
import zlib
from typing import Any

import pytest
from security_support import UpstreamHandler, loopback_upstream

from crm_mcp import errors as E
from crm_mcp.client import ApideckClient
from crm_mcp.operations import operation
from crm_mcp.upstream import ACCEPT_ENCODING, Inflate, env_proxy

pytestmark = pytest.mark.anyio

LIST_CONTACTS = operation("list_contacts")
KEY, APP, CONSUMER = "sk_encoding_key_0123456789", "app-encoding", "consumer-encoding"
PAGE = {"status_code": 200, "data": [{"id": f"con_{i}", "name": f"Person {i}"} for i in range(50)],
        "meta": {"cursors": {"next": None}}}


def _raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


ENCODINGS = {
    "gzip": gzip.compress,
    "deflate": zlib.compress,  # zlib-wrapped, as the RFC says
    "raw-deflate": _raw_deflate,  # what some servers send as "deflate"
}


def _answering(encoding: str, body: bytes, seen: list[str], status: int = 200) -> Any:
    def answer(handler: UpstreamHandler) -> None:
        seen.append(handler.headers.get("accept-encoding", ""))
        name = "deflate" if encoding == "raw-deflate" else encoding
        handler.reply(status, body, {"content-encoding": name})

    return answer


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
async def test_a_compressed_page_is_decoded(encoding: str, pool: str) -> None:
    seen: list[str] = []
    packed = ENCODINGS[encoding](json.dumps(PAGE).encode())
    with loopback_upstream(_answering(encoding, packed, seen)) as server:
        base_url = f"http://127.0.0.1:{server.server_port}"
        async with ApideckClient(KEY, APP, CONSUMER, base_url=base_url, pool=pool) as client:
            page = await client.call(LIST_CONTACTS)
    assert page.body == PAGE
    assert seen == [ACCEPT_ENCODING] == ["gzip, deflate"]


async def test_a_small_body_cannot_inflate_past_the_byte_budget(pool: str) -> None:
    """8 MB of zeros gzip to ~8 KB: reading stops at the budget, counted in decoded bytes."""
    bomb = gzip.compress(b"0" * (8 * 1024 * 1024))
    assert len(bomb) < 20_000
    with loopback_upstream(_answering("gzip", bomb, [])) as server:
        base_url = f"http://127.0.0.1:{server.server_port}"
        async with ApideckClient(KEY, APP, CONSUMER, base_url=base_url, pool=pool,
                                 max_response_bytes=1024 * 1024) as client:
            with pytest.raises(E.ResponseTooLargeError) as info:
                await client.call(LIST_CONTACTS)
    assert "more than 1,048,576 bytes" in str(info.value)


@pytest.mark.parametrize(("encoding", "body"), [("gzip", b"not gzip at all"), ("br", b"\x0b\x02\x80{}\x03")])
async def test_a_body_that_is_not_what_its_encoding_says_is_an_invalid_answer(
    encoding: str, body: bytes, pool: str
) -> None:
    with loopback_upstream(_answering(encoding, body, [])) as server:
        base_url = f"http://127.0.0.1:{server.server_port}"
        async with ApideckClient(KEY, APP, CONSUMER, base_url=base_url, pool=pool) as client:
            with pytest.raises(E.InvalidResponseError) as info:
                await client.call(LIST_CONTACTS)
    assert info.value.status == 200 and "could not be decoded" in str(info.value)
    if encoding == "br":
        assert "'br', which was not asked for" in str(info.value)


async def test_an_error_answer_with_a_garbled_body_still_reports_its_status(pool: str) -> None:
    with loopback_upstream(_answering("gzip", b"garbled", [], status=404)) as server:
        base_url = f"http://127.0.0.1:{server.server_port}"
        async with ApideckClient(KEY, APP, CONSUMER, base_url=base_url, pool=pool) as client:
            with pytest.raises(E.CrmError) as info:
                await client.call(operation("get_contact"), path_params={"id": "con_1"})
    assert info.value.status == 404


def test_inflate_stops_within_the_room_it_is_given() -> None:
    data = b"a" * 100_000
    inflate = Inflate("gzip")
    assert inflate.feed(gzip.compress(data), 99_999) is None
    inflate = Inflate("gzip")
    assert inflate.feed(gzip.compress(data), 100_000) == data
    assert Inflate(None).feed(b"abc", 3) == Inflate("identity").feed(b"abc", 3) == b"abc"
    assert Inflate(None).feed(b"abcd", 3) is None


def test_the_stdio_pool_takes_the_proxy_the_environment_names(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY",
                 "NO_PROXY", "REQUEST_METHOD"):
        monkeypatch.delenv(name, raising=False)
    assert env_proxy("https://unify.apideck.com") is None
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    assert env_proxy("https://unify.apideck.com") == "http://proxy.internal:3128"
    assert env_proxy("http://127.0.0.1:4010") is None  # no HTTP_PROXY
    monkeypatch.setenv("ALL_PROXY", "http://all.internal:3128")
    assert env_proxy("http://127.0.0.1:4010") == "http://all.internal:3128"
    monkeypatch.setenv("NO_PROXY", "apideck.com,127.0.0.1")
    assert env_proxy("https://unify.apideck.com") is None
    assert env_proxy("http://127.0.0.1:4010") is None
