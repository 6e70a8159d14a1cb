"""A5 attacks on the MCP endpoint (items 1, 2, 9, 12, 13, 15-23, 43, 51), over real HTTP against a node on loopback."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from isa.app import create_app
from isa.core.settings import Settings
from isa.mcp.server import IsaMCPServer
from isa.mcp.transport import new_session_id
from tests.mcp.sample_domain.tools import RUNS
from tests.support.auth import create_key
from tests.support.mcp_servers import (
    INITIALIZE,
    SAMPLE_DOMAIN,
    FakeUpstream,
    fake_upstream,
    mcp_client,
    open_session,
    raw_headers,
    rpc,
    serve_asgi,
    serve_isa,
    settings_with,
    sql,
    sse_json,
    with_domains,
)
from tests.support.procs import wait_for

AUTH_SERVER = "https://auth.example.test"


UPSTREAM_CREDENTIAL = "Bearer the-upstream-servers-own-credential"


@dataclass(frozen=True)
class Node:
    url: str
    strict_url: str  # scope "write", /mcp answers only Host 127.0.0.1, 64 KiB body limit, 1 s key cache
    alice: str
    bob: str
    reader: str
    upstream: FakeUpstream  # imported as server "weather"


@pytest.fixture(scope="module")
def node(settings: Settings, db_url: str) -> Iterator[Node]:
    keys = {
        u: create_key(db_url, settings, u, "read" if u == "reader" else "write") for u in ("alice", "bob", "reader")
    }
    admin = create_key(db_url, settings, "root", "admin")
    # The strict node also remembers valid API keys for 1 s only (auth.principal_cache_seconds, item 13).
    strict = settings_with(
        settings, http={"allowed_hosts": ["127.0.0.1", "localhost"]}, auth={"principal_cache_seconds": 1}
    )
    upstream_headers = {"weather": {"Authorization": UPSTREAM_CREDENTIAL}}
    with (
        fake_upstream() as upstream,
        with_domains(SAMPLE_DOMAIN),
        serve_isa(settings, db_url, authorization_servers=[AUTH_SERVER], upstream_headers=upstream_headers) as url,
        serve_isa(strict, db_url, required_scope="write", allowed_hosts=["127.0.0.1"], max_body_bytes=65536) as s_url,
    ):
        weather = [
            {"name": "weather", "url": upstream.url, "tools": [{"name": "forecast", "description": "Forecast."}]}
        ]
        imported = httpx.post(url + "/catalog/import", json=weather, headers=raw_headers(admin), timeout=120)
        assert imported.status_code == 201, imported.text
        yield Node(url, s_url, keys["alice"], keys["bob"], keys["reader"], upstream)


def post(url: str, body: object, headers: dict[str, str], **kwargs: object) -> httpx.Response:
    return httpx.post(url + "/mcp", content=json.dumps(body), headers=headers, timeout=10, **kwargs)  # type: ignore[arg-type]


# --- Authentication ---------------------------------------------------------------------------------


def test_a5_01_no_authorization_header_gets_401_with_resource_metadata_that_resolves(node: Node) -> None:
    response = post(node.url, INITIALIZE, raw_headers(None))
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer ") and 'scope="read"' in challenge
    match = re.search(r'resource_metadata="([^"]+)"', challenge)
    assert match is not None
    assert match.group(1) == node.url + "/.well-known/oauth-protected-resource/mcp"
    metadata = httpx.get(match.group(1), timeout=10)
    assert metadata.status_code == 200
    body = metadata.json()
    assert body["resource"] == node.url + "/mcp"
    assert body["authorization_servers"] == [AUTH_SERVER]
    assert body["bearer_methods_supported"] == ["header"] and "read" in body["scopes_supported"]


def test_a5_01_an_unknown_token_gets_401_invalid_token(node: Node) -> None:
    response = post(node.url, INITIALIZE, raw_headers("isa_not-a-real-key"))
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert response.json()["error"]["code"] == "unauthorized"


def test_a5_02_a_token_in_the_query_string_is_ignored(node: Node) -> None:
    for param in ("access_token", "api_key", "token"):
        response = httpx.post(
            f"{node.url}/mcp?{param}={node.alice}", json=INITIALIZE, headers=raw_headers(None), timeout=10
        )
        assert response.status_code == 401, param


def test_a5_09_a_valid_token_without_the_required_scope_gets_403_insufficient_scope(node: Node) -> None:
    response = post(node.strict_url, INITIALIZE, raw_headers(node.reader))
    assert response.status_code == 403
    challenge = response.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge and 'scope="write"' in challenge
    assert "resource_metadata=" in challenge
    assert post(node.strict_url, INITIALIZE, raw_headers(node.alice)).status_code == 200


@pytest.mark.anyio
async def test_a5_12_the_callers_token_never_reaches_an_upstream_server(node: Node, db_url: str) -> None:
    query = (
        "SELECT qualified_name FROM mcp_unified_search_embeddings WHERE server = 'weather' AND item_name = 'forecast'"
    )
    name = wait_for(lambda: sql(db_url, query))[0]["qualified_name"]
    before = len(node.upstream.headers)
    async with mcp_client(node.url, node.alice) as client:
        result = await client.call_tool(name, {"city": "Oslo"})
    assert not result.is_error, result
    sent = node.upstream.headers[before:]
    assert sent and all(h.get("authorization") == UPSTREAM_CREDENTIAL for h in sent)
    assert not any(node.alice in value for h in sent for value in h.values())


def test_a5_13_a_revoked_api_key_stops_working_on_mcp_within_the_cache_bound(
    node: Node, settings: Settings, db_url: str
) -> None:
    key = create_key(db_url, settings, "revokee", "write")
    assert post(node.strict_url, INITIALIZE, raw_headers(key)).status_code == 200  # now cached on the node
    sql(db_url, "UPDATE api_keys SET revoked_at = now() WHERE user_id = 'revokee'")
    started = time.monotonic()
    wait_for(lambda: post(node.strict_url, INITIALIZE, raw_headers(key)).status_code == 401, timeout=10)
    assert time.monotonic() - started < 1 + 2  # the configured bound, plus polling slack


# --- Sessions -----------------------------------------------------------------------------------------


def test_a5_15_another_users_token_with_a_session_id_gets_404_never_the_data(node: Node) -> None:
    session = open_session(node.url, node.alice)
    call = rpc("tools/call", {"name": "whoami", "arguments": {}}, id_=7)
    as_bob = post(node.url, call, raw_headers(node.bob, session))
    assert as_bob.status_code == 404
    assert "alice" not in as_bob.text
    as_alice = post(node.url, call, raw_headers(node.alice, session))
    assert as_alice.status_code == 200
    assert sse_json(as_alice.text)[0]["result"]["structuredContent"]["data"]["user_id"] == "alice"


def _get_stream(url: str, key: str, session: str, last_event_id: str | None) -> tuple[int, str, str]:
    """GET /mcp on `session` as a (resuming) client does: status, content type, body (an SSE stream is not read)."""
    headers = {**raw_headers(key, session), "Accept": "text/event-stream"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    with httpx.stream("GET", url + "/mcp", headers=headers, timeout=10) as response:
        kind = response.headers.get("content-type", "")
        body = "" if kind.startswith("text/event-stream") else response.read().decode()
        return response.status_code, kind, body


def test_a5_16_another_user_cannot_resume_a_stream_with_last_event_id(node: Node) -> None:
    session = open_session(node.url, node.alice)
    bob_status, _, bob_body = _get_stream(node.url, node.bob, session, last_event_id="1")
    assert bob_status == 404
    # Indistinguishable from a session that does not exist: the id tells Bob nothing.
    unknown_status, _, unknown_body = _get_stream(node.url, node.bob, new_session_id(), last_event_id="1")
    assert (bob_status, bob_body) == (unknown_status, unknown_body)
    # Controls: the same GET reaches the session for its owner. isa configures no event store (resumption is
    # not offered), so Alice's Last-Event-ID request opens a fresh SSE stream instead of a replay; without the
    # header she gets the same. So Bob's 404 is the owner check, not a dead session.
    status, kind, _ = _get_stream(node.url, node.alice, session, last_event_id="1")
    assert (status, kind.split(";")[0]) == (200, "text/event-stream")
    status, kind, _ = _get_stream(node.url, node.alice, session, last_event_id=None)
    assert (status, kind.split(";")[0]) == (200, "text/event-stream")
    still = post(node.url, rpc("tools/list", {}, id_=5), raw_headers(node.alice, session))
    assert still.status_code == 200 and sse_json(still.text)[0]["result"]["tools"]


def test_a5_17_another_user_cannot_delete_a_session_and_it_survives(node: Node) -> None:
    session = open_session(node.url, node.alice)
    deleted = httpx.delete(node.url + "/mcp", headers=raw_headers(node.bob, session), timeout=10)
    assert deleted.status_code == 404
    still = post(node.url, rpc("tools/list", {}, id_=3), raw_headers(node.alice, session))
    assert still.status_code == 200 and sse_json(still.text)[0]["result"]["tools"]
    own = httpx.delete(node.url + "/mcp", headers=raw_headers(node.alice, session), timeout=10)
    assert own.status_code == 200
    assert post(node.url, rpc("tools/list", {}, id_=4), raw_headers(node.alice, session)).status_code == 404


def test_a5_18_a_guessed_or_unknown_session_id_gets_404(node: Node) -> None:
    for guess in (new_session_id(), "1", "00000000000000000000000000000000"):
        response = post(node.url, rpc("tools/list", {}, id_=2), raw_headers(node.alice, guess))
        assert response.status_code == 404, guess


def test_a5_18_a_session_idle_past_the_timeout_expires_to_404_while_a_fresh_one_works(
    settings: Settings, db_url: str
) -> None:
    key = create_key(db_url, settings, "idler", "write")
    app = create_app(settings_with(settings, mcp={"session_idle_timeout_seconds": 0.5}), "mcp", database_url=db_url)
    live = app.state.isa.get("mcp.server", IsaMCPServer).sessions
    with serve_asgi(app) as url:
        session = open_session(url, key)
        first = post(url, rpc("tools/list", {}, id_=1), raw_headers(key, session))
        assert first.status_code == 200 and sse_json(first.text)[0]["result"]["tools"]
        assert len(live) == 1
        # The SDK reaps the session on its own idle timer; wait (bounded) for the node to drop it, touching nothing.
        wait_for(lambda: len(live) == 0, timeout=10)
        expired = post(url, rpc("tools/list", {}, id_=2), raw_headers(key, session))
        assert expired.status_code == 404
        fresh = open_session(url, key)
        assert fresh != session
        again = post(url, rpc("tools/list", {}, id_=3), raw_headers(key, fresh))
        assert again.status_code == 200 and sse_json(again.text)[0]["result"]["tools"]


def test_a5_19_session_ids_are_unique_256_bit_values_from_the_os_csprng(node: Node) -> None:
    samples = [new_session_id() for _ in range(100_000)]
    assert len(set(samples)) == len(samples)
    assert all(re.fullmatch(r"[0-9a-f]{64}", s) for s in samples[:1000])
    live = {open_session(node.url, node.alice) for _ in range(3)}
    assert len(live) == 3 and all(re.fullmatch(r"[0-9a-f]{64}", s) for s in live)


# --- Transport ----------------------------------------------------------------------------------------


def test_a5_20_a_foreign_origin_gets_403_before_authentication(node: Node) -> None:
    for key in (node.alice, None):
        response = post(node.url, INITIALIZE, raw_headers(key, Origin="https://evil.example"))
        assert response.status_code == 403, key
        assert response.json()["error"]["code"] == "origin_not_allowed"
    local = post(node.url, INITIALIZE, raw_headers(node.alice, Origin=node.url))
    assert local.status_code == 200
    # The endpoint remembers Host/Origin pairs it allowed; the same Host with a foreign Origin is still refused.
    again = post(node.url, INITIALIZE, raw_headers(node.alice, Origin="https://evil.example"))
    assert again.status_code == 403 and again.json()["error"]["code"] == "origin_not_allowed"


def test_a5_21_a_host_outside_the_allow_list_is_rejected_and_a_valid_host_accepted(node: Node) -> None:
    port = node.strict_url.rsplit(":", 1)[1]
    evil = post(node.strict_url, INITIALIZE, raw_headers(node.alice, Host="evil.example"))
    assert evil.status_code == 421
    # localhost passes the node-wide list but not /mcp's own (mcp.allowed_hosts): the MCP transport refuses it.
    rebound = post(node.strict_url, INITIALIZE, raw_headers(node.alice, Host=f"localhost:{port}"))
    assert rebound.status_code == 421 and rebound.json()["error"]["code"] == "host_not_allowed"
    assert post(node.strict_url, INITIALIZE, raw_headers(node.alice, Host=f"127.0.0.1:{port}")).status_code == 200


def test_a5_22_a_non_json_content_type_gets_400_and_an_oversized_body_413(node: Node) -> None:
    headers = {**raw_headers(node.alice), "Content-Type": "text/plain"}
    assert post(node.url, INITIALIZE, headers).status_code == 400
    big = {**INITIALIZE, "params": {**INITIALIZE["params"], "pad": "x" * 100_000}}
    assert post(node.strict_url, big, raw_headers(node.alice)).status_code == 413
    chunks = (b"x" * 8192 for _ in range(16))  # streamed, no Content-Length
    streamed = httpx.post(node.strict_url + "/mcp", content=chunks, headers=raw_headers(node.alice), timeout=10)
    assert streamed.status_code == 413


def test_a5_23_a_json_rpc_batch_is_rejected(node: Node) -> None:
    session = open_session(node.url, node.alice)
    batch = [rpc("tools/list", {}, id_=1), rpc("tools/list", {}, id_=2)]
    response = post(node.url, batch, raw_headers(node.alice, session))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == -32600


# --- Resource use ---------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a5_43_a_burst_past_the_per_user_tool_limit_is_refused_with_retry_after(node: Node) -> None:
    async with mcp_client(node.url, node.alice) as alice:
        results = [await alice.call_tool("limited_echo", {"text": str(i)}) for i in range(4)]
    assert [r.is_error for r in results] == [False, False, False, True]
    refused = results[3].structured_content
    assert refused is not None and refused["data"]["code"] == "rate_limited"
    assert 1 <= refused["data"]["retry_after"] <= 60
    async with mcp_client(node.url, node.bob) as bob:
        other = await bob.call_tool("limited_echo", {"text": "bob is not affected"})
        other_tool = await bob.call_tool("get_current_time", {})
    assert not other.is_error and not other_tool.is_error


# --- Prompt injection ---------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a5_51_untrusted_output_is_tagged_and_the_destructive_call_it_asks_for_does_not_run(
    node: Node, db_url: str
) -> None:
    runs = RUNS.get("fetch_untrusted", 0)
    async with mcp_client(node.url, node.bob) as agent:
        page = await agent.call_tool("fetch_untrusted", {"url": "https://example.test/page"})
        assert page.structured_content is not None and page.structured_content["untrusted"] is True
        assert "Ignore previous instructions" in page.structured_content["data"]["text"]
        obeyed = await agent.call_tool("delete_my_memories", {"memory_type": "all"})
    assert RUNS.get("fetch_untrusted", 0) == runs + 1
    assert obeyed.structured_content is not None
    assert obeyed.structured_content["status"] == "authorization_requested"
    query = "SELECT outcome FROM audit_log WHERE user_id = 'bob' AND tool_name = 'delete_my_memories'"
    outcomes = wait_for(lambda: sql(db_url, query))
    assert [r["outcome"] for r in outcomes] == ["approval_required"]
