"""Sessions and their messages at the user level: create, list, get with messages, append, update, delete."""

from __future__ import annotations

from collections.abc import Callable

from starlette.testclient import TestClient

from tests.support.users import sql

Maker = Callable[..., tuple[str, dict[str, str]]]
SESSIONS = "/api/v1/users/me/sessions"


def test_a_session_keeps_its_messages_in_order_with_counters(client: TestClient, signed_up: Maker) -> None:
    _, headers = signed_up()
    created = client.post(SESSIONS, json={"title": "Trip plan", "metadata": {"source": "web"}}, headers=headers)
    assert created.status_code == 201, created.text
    session = created.json()["data"]
    assert session["status"] == "active" and session["message_count"] == 0
    url = f"{SESSIONS}/{session['session_id']}"
    for role, content, tokens in (("user", "hi", 3), ("assistant", "hello!", 5)):
        added = client.post(
            f"{url}/messages",
            json={"role": role, "content": content, "tokens_used": tokens, "cost_usd": 0.001},
            headers=headers,
        )
        assert added.status_code == 201, added.text
    got = client.get(url, headers=headers).json()["data"]
    assert [m["content"] for m in got["messages"]] == ["hi", "hello!"]
    assert got["message_count"] == 2 and got["total_tokens"] == 8 and got["total_cost"] == 0.002
    page = client.get(f"{url}/messages?limit=1&offset=1", headers=headers).json()["data"]
    assert [m["role"] for m in page["messages"]] == ["assistant"]


def test_a_repeated_message_with_the_same_key_is_stored_once(client: TestClient, signed_up: Maker) -> None:
    _, headers = signed_up()
    sid = client.post(SESSIONS, json={}, headers=headers).json()["data"]["session_id"]
    body = {"role": "user", "content": "once", "idempotency_key": "m-1"}
    first = client.post(f"{SESSIONS}/{sid}/messages", json=body, headers=headers).json()["data"]
    second = client.post(f"{SESSIONS}/{sid}/messages", json=body, headers=headers).json()["data"]
    assert first["id"] == second["id"]
    assert client.get(f"{SESSIONS}/{sid}", headers=headers).json()["data"]["message_count"] == 1


def test_a_tool_message_must_name_its_call(client: TestClient, signed_up: Maker) -> None:
    _, headers = signed_up()
    sid = client.post(SESSIONS, json={}, headers=headers).json()["data"]["session_id"]
    refused = client.post(f"{SESSIONS}/{sid}/messages", json={"role": "tool", "content": "42"}, headers=headers)
    assert refused.status_code == 422
    ok = client.post(
        f"{SESSIONS}/{sid}/messages", json={"role": "tool", "content": "42", "tool_call_id": "call_1"}, headers=headers
    )
    assert ok.status_code == 201


def test_listing_sessions_can_show_only_active_ones(client: TestClient, signed_up: Maker) -> None:
    _, headers = signed_up()
    ids = [client.post(SESSIONS, json={"title": t}, headers=headers).json()["data"]["session_id"] for t in "abc"]
    ended = client.put(f"{SESSIONS}/{ids[0]}", json={"status": "ended", "title": "done"}, headers=headers)
    assert ended.status_code == 200 and ended.json()["data"]["is_active"] is False
    every = client.get(SESSIONS, headers=headers).json()["data"]["sessions"]
    active = client.get(f"{SESSIONS}?active_only=true", headers=headers).json()["data"]["sessions"]
    assert {s["session_id"] for s in every} == set(ids)
    assert {s["session_id"] for s in active} == set(ids[1:])


def test_deleting_a_session_deletes_its_messages(client: TestClient, signed_up: Maker, db_url: str) -> None:
    _, headers = signed_up()
    sid = client.post(SESSIONS, json={}, headers=headers).json()["data"]["session_id"]
    client.post(f"{SESSIONS}/{sid}/messages", json={"role": "user", "content": "bye"}, headers=headers)
    deleted = client.delete(f"{SESSIONS}/{sid}", headers=headers)
    assert deleted.status_code == 200 and deleted.json()["data"] == {"deleted": True, "id": sid}
    assert client.get(f"{SESSIONS}/{sid}", headers=headers).status_code == 404
    assert client.delete(f"{SESSIONS}/{sid}", headers=headers).status_code == 404
    assert sql(db_url, "SELECT count(*) FROM session_messages WHERE session_id = %s", sid) == [(0,)]


def test_a_session_id_that_is_not_a_uuid_is_404(client: TestClient, signed_up: Maker) -> None:
    _, headers = signed_up()
    for bad in ("123", "..%2F..%2Fetc", "00000000-0000-0000-0000-000000000000"):
        assert client.get(f"{SESSIONS}/{bad}", headers=headers).status_code == 404
