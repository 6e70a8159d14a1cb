"""Human approval of HIGH/CRITICAL tools: persisted, decided by the owner over HTTP, used once, never automatic."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.mcp.conftest import Keys
from tests.mcp.sample_domain.tools import RUNS
from tests.support.mcp_servers import mcp_client, sql
from tests.support.procs import wait_for

pytestmark = pytest.mark.anyio


def _http(mcp_url: str, key: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    with httpx.Client(base_url=mcp_url, timeout=10) as http:
        return http.request(method, path, headers={"Authorization": f"Bearer {key}"}, **kwargs)


def _seed_working_memories(db_url: str, user_id: str, n: int) -> None:
    for i in range(n):
        sql(
            db_url,
            "INSERT INTO working_memories (user_id, content, context_type, expires_at) "
            "VALUES (%s, %s, 'task', now() + interval '1 hour')",
            (user_id, f"note {i}"),
        )


def _count(db_url: str, user_id: str) -> int:
    return int(sql(db_url, "SELECT count(*) AS n FROM working_memories WHERE user_id = %s", (user_id,))[0]["n"])


async def test_a_high_tool_runs_only_after_the_owner_approves_and_only_once(
    mcp_url: str, keys: Keys, db_url: str
) -> None:
    _seed_working_memories(db_url, "alice", 3)
    _seed_working_memories(db_url, "bob", 2)
    args = {"memory_type": "working"}
    async with mcp_client(mcp_url, keys.alice) as agent:
        first = await agent.call_tool("delete_my_memories", args)
        again = await agent.call_tool("delete_my_memories", args)
        assert first.structured_content is not None and again.structured_content is not None
        assert first.structured_content["status"] == "authorization_requested" and not first.is_error
        request_id = first.structured_content["data"]["id"]
        assert again.structured_content["data"]["id"] == request_id  # the same pending request, not a new one
        assert _count(db_url, "alice") == 3  # nothing ran

        pending = _http(mcp_url, keys.alice_second, "GET", "/api/v1/authorizations?status=pending").json()
        assert [a["id"] for a in pending["authorizations"]] == [request_id]
        approved = _http(mcp_url, keys.alice_second, "POST", f"/api/v1/authorizations/{request_id}/approve")
        assert approved.status_code == 200 and approved.json()["status"] == "approved"

        done = await agent.call_tool("delete_my_memories", args)
        assert done.structured_content is not None and done.structured_content["status"] == "success"
        assert done.structured_content["data"]["deleted"] == {"working_memories": 3}
        assert _count(db_url, "alice") == 0 and _count(db_url, "bob") == 2  # owner-scoped

        once_more = await agent.call_tool("delete_my_memories", args)
        assert once_more.structured_content is not None
        assert once_more.structured_content["status"] == "authorization_requested"
        assert once_more.structured_content["data"]["id"] != request_id
    used = sql(db_url, "SELECT status, used_at, decided_by FROM authorization_requests WHERE id = %s", (request_id,))
    assert used[0]["status"] == "used" and used[0]["used_at"] is not None and used[0]["decided_by"] == "alice"
    audit = wait_for(
        lambda: sql(db_url, "SELECT outcome FROM audit_log WHERE authorization_request_id = %s", (request_id,))
    )
    assert [r["outcome"] for r in audit] == ["ok"]


async def test_an_approval_is_bound_to_the_exact_arguments(mcp_url: str, keys: Keys) -> None:
    runs = RUNS.get("critical_echo", 0)
    async with mcp_client(mcp_url, keys.alice) as agent:
        asked = await agent.call_tool("critical_echo", {"text": "one"})
        assert asked.structured_content is not None
        request_id = asked.structured_content["data"]["id"]
        assert _http(mcp_url, keys.alice_second, "POST", f"/api/v1/authorizations/{request_id}/approve").is_success
        other = await agent.call_tool("critical_echo", {"text": "two"})
        assert other.structured_content is not None
        assert other.structured_content["status"] == "authorization_requested"
        assert RUNS.get("critical_echo", 0) == runs
        same = await agent.call_tool("critical_echo", {"text": "one"})
        assert same.structured_content is not None and same.structured_content["data"] == {"text": "one"}
    assert RUNS.get("critical_echo", 0) == runs + 1


async def test_a_denied_call_fails_and_does_not_run(mcp_url: str, keys: Keys) -> None:
    runs = RUNS.get("critical_echo", 0)
    async with mcp_client(mcp_url, keys.alice) as agent:
        asked = await agent.call_tool("critical_echo", {"text": "deny me"})
        assert asked.structured_content is not None
        request_id = asked.structured_content["data"]["id"]
        # A body that isn't JSON is refused like on every other route (core/http.py: 422, was 400 here).
        garbled = _http(mcp_url, keys.alice_second, "POST", f"/api/v1/authorizations/{request_id}/deny", content=b"{no")
        assert garbled.status_code == 422 and garbled.json()["error"]["code"] == "invalid_request"
        denied = _http(
            mcp_url, keys.alice_second, "POST", f"/api/v1/authorizations/{request_id}/deny", json={"note": "no"}
        )
        assert denied.json()["status"] == "denied" and denied.json()["decision_note"] == "no"
        after = await agent.call_tool("critical_echo", {"text": "deny me"})
    assert after.is_error and after.structured_content is not None
    assert after.structured_content["data"]["code"] == "authorization_denied"
    assert RUNS.get("critical_echo", 0) == runs
    twice = _http(mcp_url, keys.alice_second, "POST", f"/api/v1/authorizations/{request_id}/approve")
    assert twice.status_code == 409


async def test_nobody_else_can_decide_and_the_asking_key_cannot_approve_itself(mcp_url: str, keys: Keys) -> None:
    async with mcp_client(mcp_url, keys.alice) as agent:
        asked = await agent.call_tool("critical_echo", {"text": "mine"})
    assert asked.structured_content is not None
    request_id = asked.structured_content["data"]["id"]
    by_bob = _http(mcp_url, keys.bob, "POST", f"/api/v1/authorizations/{request_id}/approve")
    assert by_bob.status_code == 404  # another user's request does not exist for bob
    assert _http(mcp_url, keys.bob, "GET", f"/api/v1/authorizations/{request_id}").status_code == 404
    by_agent = _http(mcp_url, keys.alice, "POST", f"/api/v1/authorizations/{request_id}/approve")
    assert by_agent.status_code == 403 and by_agent.json()["error"]["code"] == "self_approval_forbidden"
    by_reader = _http(mcp_url, keys.reader, "POST", f"/api/v1/authorizations/{request_id}/approve")
    assert by_reader.status_code == 403
    assert (
        _http(mcp_url, keys.alice_second, "GET", f"/api/v1/authorizations/{request_id}").json()["status"] == "pending"
    )
    not_uuid = _http(mcp_url, keys.alice_second, "POST", "/api/v1/authorizations/not-a-uuid/approve")
    assert not_uuid.status_code == 404


async def test_request_authorization_creates_the_request_the_later_call_uses(mcp_url: str, keys: Keys) -> None:
    async with mcp_client(mcp_url, keys.bob) as agent:
        asked = await agent.call_tool(
            "request_authorization",
            {"tool_name": "critical_echo", "reason": "the user asked twice", "tool_args": {"text": "planned"}},
        )
        assert asked.structured_content is not None
        assert asked.structured_content["status"] == "authorization_requested"
        view = asked.structured_content["data"]
        assert view["reason"] == "the user asked twice" and view["security_level"] == "CRITICAL"
        status = await agent.call_tool("check_authorization", {"request_id": view["id"]})
        assert status.structured_content is not None and status.structured_content["data"]["status"] == "pending"
        bob_human = _http(mcp_url, keys.admin, "POST", f"/api/v1/authorizations/{view['id']}/approve")
        assert bob_human.status_code == 200  # an admin may decide for any user
        ran = await agent.call_tool("critical_echo", {"text": "planned"})
    assert ran.structured_content is not None and ran.structured_content["status"] == "success"


async def test_admins_see_every_pending_approval_and_users_only_their_own(mcp_url: str, keys: Keys) -> None:
    async with mcp_client(mcp_url, keys.bob) as agent:
        await agent.call_tool("critical_echo", {"text": "bob pending"})
    async with mcp_client(mcp_url, keys.admin) as admin:
        listed = await admin.call_tool("admin_list_approvals", {})
    assert listed.structured_content is not None
    owners = {a["user_id"] for a in listed.structured_content["data"]}
    assert "bob" in owners
    mine = _http(mcp_url, keys.alice_second, "GET", "/api/v1/authorizations").json()["authorizations"]
    assert mine and {a["user_id"] for a in mine} == {"alice"}
    assert _http(mcp_url, keys.alice_second, "GET", "/api/v1/authorizations?all=true").status_code == 403
    everyone = _http(mcp_url, keys.admin, "GET", "/api/v1/authorizations?all=true&status=pending").json()
    assert {"alice", "bob"} <= {a["user_id"] for a in everyone["authorizations"]}


async def test_an_expired_request_cannot_be_approved(mcp_url: str, keys: Keys, db_url: str) -> None:
    async with mcp_client(mcp_url, keys.alice) as agent:
        asked = await agent.call_tool("critical_echo", {"text": "too late"})
    assert asked.structured_content is not None
    request_id = asked.structured_content["data"]["id"]
    sql(
        db_url,
        "UPDATE authorization_requests SET expires_at = now() - interval '1 second' WHERE id = %s",
        (request_id,),
    )
    late = _http(mcp_url, keys.alice_second, "POST", f"/api/v1/authorizations/{request_id}/approve")
    assert late.status_code == 409 and "expired" in late.json()["error"]["message"]
