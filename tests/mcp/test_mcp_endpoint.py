"""/mcp with the SDK's own client over real HTTP: handshake, listing, calls, envelope, auth, audit, credits."""

from __future__ import annotations

import json
from decimal import Decimal

import httpx
import pytest
from mcp.shared.exceptions import MCPError

from tests.mcp.conftest import Keys
from tests.mcp.sample_domain.tools import RUNS
from tests.support.mcp_servers import grant_credits, mcp_client, sql
from tests.support.procs import wait_for

pytestmark = pytest.mark.anyio


async def test_initialize_advertises_tools_with_list_changed_and_lists_schemas(mcp_url: str, keys: Keys) -> None:
    async with mcp_client(mcp_url, keys.alice) as client:
        assert client.server_info is not None and client.server_info.name == "isa"
        assert client.server_capabilities.tools is not None
        assert client.server_capabilities.tools.list_changed is True
        tools = {t.name: t for t in (await client.list_tools()).tools}
    assert {"get_current_time", "ask_human", "discover_tools", "call_tool", "priced_echo"} <= set(tools)
    time_tool = tools["get_current_time"]
    assert time_tool.input_schema["properties"]["timezone"]["default"] == "UTC"
    assert time_tool.output_schema is not None and "status" in time_tool.output_schema["required"]
    assert tools["delete_my_memories"].meta is not None
    assert tools["delete_my_memories"].meta["isa/requires_approval"] is True
    assert tools["delete_my_memories"].annotations is not None
    assert tools["delete_my_memories"].annotations.destructive_hint is True


async def test_admin_tools_are_listed_for_admins_only(mcp_url: str, keys: Keys) -> None:
    async with mcp_client(mcp_url, keys.alice) as client:
        names = {t.name for t in (await client.list_tools()).tools}
    async with mcp_client(mcp_url, keys.admin) as client:
        admin_names = {t.name for t in (await client.list_tools()).tools}
    assert not any(n.startswith("admin_") for n in names)
    assert {"admin_list_approvals", "admin_get_audit_log", "admin_get_metrics"} <= admin_names


async def test_a_call_returns_the_envelope_as_structured_content_and_as_text(mcp_url: str, keys: Keys) -> None:
    async with mcp_client(mcp_url, keys.alice) as client:
        result = await client.call_tool("get_current_time", {"timezone": "Asia/Tokyo"})
    assert not result.is_error
    body = result.structured_content
    assert body is not None
    assert body["status"] == "success" and body["action"] == "get_current_time"
    assert body["data"]["timezone"] == "Asia/Tokyo" and body["data"]["iso"].endswith("+09:00")
    assert "timestamp" in body and "billing" not in body
    assert json.loads(result.content[0].text) == body  # type: ignore[union-attr]


async def test_the_2026_protocol_without_sessions_works_too(mcp_url: str, keys: Keys) -> None:
    async with mcp_client(mcp_url, keys.alice, mode="auto") as client:
        assert client.protocol_version == "2026-07-28"
        result = await client.call_tool("format_json", {"content": '{"b":1,"a":[1,2]}', "sort_keys": True})
    assert result.structured_content is not None
    assert json.loads(result.structured_content["data"]["formatted"]) == {"a": [1, 2], "b": 1}


async def test_the_caller_comes_from_the_token_never_from_arguments(mcp_url: str, keys: Keys) -> None:
    async with mcp_client(mcp_url, keys.bob) as client:
        who = await client.call_tool("whoami", {"user_id": "alice"})
        asked = await client.call_tool("ask_human", {"question": "Proceed?", "user_id": "alice"})
    assert who.structured_content is not None and asked.structured_content is not None
    assert who.structured_content["data"]["user_id"] == "bob"
    assert asked.structured_content["status"] == "human_input_requested"
    assert asked.structured_content["data"]["user_id"] == "bob"
    assert asked.structured_content["data"]["question"] == "Proceed?"


async def test_tool_errors_are_error_results_with_a_code_and_crashes_do_not_leak(mcp_url: str, keys: Keys) -> None:
    async with mcp_client(mcp_url, keys.alice) as client:
        bad_json = await client.call_tool("format_json", {"content": "{nope"})
        bad_args = await client.call_tool("get_current_time", {"timezone": 42})
        unknown = await client.call_tool("no_such_tool", {})
    assert bad_json.is_error and bad_json.structured_content is not None
    assert bad_json.structured_content["data"]["code"] == "tool_error"
    assert "not valid JSON" in bad_json.structured_content["error"]
    assert bad_args.is_error and bad_args.structured_content is not None
    assert bad_args.structured_content["data"]["code"] == "invalid_arguments"
    assert unknown.is_error and unknown.structured_content is not None
    assert unknown.structured_content["data"]["code"] == "unknown_tool"


async def test_a_read_scope_key_cannot_call_a_write_tool(mcp_url: str, keys: Keys) -> None:
    async with mcp_client(mcp_url, keys.reader) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        result = await client.call_tool("delete_my_memories", {"memory_type": "all"})
    assert "delete_my_memories" not in names
    assert result.is_error and result.structured_content is not None
    assert result.structured_content["data"]["code"] == "insufficient_scope"


async def test_every_call_is_audited_with_secrets_masked(mcp_url: str, keys: Keys, db_url: str) -> None:
    secret_text = "use Bearer abcdefghijklmnop and password=hunter2"
    async with mcp_client(mcp_url, keys.alice) as client:
        await client.call_tool("ask_human", {"question": secret_text, "context": "audit-me"})
        await client.call_tool("no_such_tool_audited", {"api_key": "sk-live-123"})
    query = (
        "SELECT * FROM audit_log WHERE user_id = 'alice' AND tool_name IN ('ask_human', 'no_such_tool_audited') "
        "ORDER BY created_at"
    )
    # Rows are written by the audit writer a moment after the call (batched).
    rows = wait_for(
        lambda: (r := sql(db_url, query)) and any(x["tool_name"] == "no_such_tool_audited" for x in r) and r
    )
    asked = next(r for r in rows if r["tool_name"] == "ask_human" and r["arguments"].get("context") == "audit-me")
    assert asked["outcome"] == "ok" and asked["principal_via"] == "api_key" and asked["key_id"] is not None
    assert asked["duration_ms"] > 0 and asked["session_id"] and asked["request_id"]
    stored = json.dumps(asked["arguments"])
    assert "abcdefghijklmnop" not in stored and "hunter2" not in stored
    unknown = next(r for r in rows if r["tool_name"] == "no_such_tool_audited")
    assert unknown["outcome"] == "unknown_tool" and unknown["arguments"]["api_key"] == "***"


async def test_a_priced_tool_charges_credits_and_says_so_in_the_envelope(mcp_url: str, keys: Keys, db_url: str) -> None:
    grant_credits(db_url, "bob", "5")
    before = sql(db_url, "SELECT credits_remaining FROM users WHERE user_id = 'bob'")[0]["credits_remaining"]
    async with mcp_client(mcp_url, keys.bob) as client:
        paid = await client.call_tool("priced_echo", {"text": "hi"})
        crashed = await client.call_tool("failing_tool", {"message": "secret-detail"})
    assert paid.structured_content is not None
    billing = paid.structured_content["billing"]
    assert billing["credits_charged"] == "2" and Decimal(billing["credits_remaining"]) == before - 2
    assert crashed.is_error and crashed.structured_content is not None
    assert crashed.structured_content["data"]["code"] == "tool_crashed"
    assert "secret-detail" not in json.dumps(crashed.structured_content)
    after = sql(db_url, "SELECT credits_remaining FROM users WHERE user_id = 'bob'")[0]["credits_remaining"]
    assert after == before - 2  # the crashed call's credit came back
    refunds = sql(
        db_url, "SELECT * FROM user_credit_transactions WHERE user_id = 'bob' AND transaction_type = 'refund'"
    )
    assert len(refunds) == 1 and refunds[0]["credits_amount"] == 1


async def test_a_caller_without_credits_gets_an_insufficient_credits_error_and_nothing_runs(
    mcp_url: str, keys: Keys
) -> None:
    runs = RUNS.get("priced_echo", 0)
    async with mcp_client(mcp_url, keys.reader) as client:
        result = await client.call_tool("priced_echo", {"text": "free?"})
    assert result.is_error and result.structured_content is not None
    assert result.structured_content["data"]["code"] == "insufficient_credits"
    assert result.structured_content["data"]["needed"] == "2"
    assert RUNS.get("priced_echo", 0) == runs


async def test_untrusted_tool_output_is_tagged(mcp_url: str, keys: Keys) -> None:
    async with mcp_client(mcp_url, keys.alice) as client:
        result = await client.call_tool("fetch_untrusted", {"url": "https://example.test"})
    assert result.structured_content is not None and result.structured_content["untrusted"] is True
    assert result.meta is not None and result.meta["isa/untrusted"] is True


async def test_admin_routes_and_tools_show_audit_and_metrics_to_admins_only(mcp_url: str, keys: Keys) -> None:
    async with mcp_client(mcp_url, keys.admin) as client:
        metrics = await client.call_tool("admin_get_metrics", {"hours": 1})
        audit = await client.call_tool("admin_get_audit_log", {"limit": 5})
    assert metrics.structured_content is not None and metrics.structured_content["data"]["total_calls"] > 0
    assert audit.structured_content is not None and len(audit.structured_content["data"]) == 5
    with httpx.Client(base_url=mcp_url, timeout=10) as http:
        as_admin = http.get("/api/v1/admin/mcp/metrics", headers={"Authorization": f"Bearer {keys.admin}"})
        as_user = http.get("/api/v1/admin/mcp/audit", headers={"Authorization": f"Bearer {keys.alice}"})
    assert as_admin.status_code == 200 and as_admin.json()["by_outcome"]["ok"] > 0
    assert as_user.status_code == 403 and as_user.json()["error"]["code"] == "insufficient_scope"
    async with mcp_client(mcp_url, keys.alice) as client:
        denied = await client.call_tool("admin_get_audit_log", {})
    assert denied.is_error


async def test_prompts_and_resources_declared_in_the_registry_are_served(mcp_url: str, keys: Keys) -> None:
    async with mcp_client(mcp_url, keys.alice) as client:
        prompts = {p.name for p in (await client.list_prompts()).prompts}
        prompt = await client.get_prompt("tool_failure_triage_prompt", {"tool_name": "x", "error": "rate_limited"})
        levels = await client.read_resource("isa://security/levels")
        decl = await client.read_resource("isa://tools/priced_echo")
        with pytest.raises(MCPError):
            await client.read_resource("isa://tools/nope")
    assert {"authorization_review_prompt", "tool_failure_triage_prompt"} <= prompts
    assert "rate_limited" in prompt.messages[0].content.text  # type: ignore[union-attr]
    assert json.loads(levels.contents[0].text)["HIGH"]["needs_approval"] is True  # type: ignore[union-attr]
    assert json.loads(decl.contents[0].text)["cost_credits"] == "2"  # type: ignore[union-attr]
