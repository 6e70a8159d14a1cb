"""The agent's sessions API: create, page and search, history, rename, delete, export; owner only."""

from __future__ import annotations

import csv
import io

import httpx

from isa.core.settings import Settings
from tests.support.agent import FAKE_MODEL, chat, new_user
from tests.support.fake_openai import FakeOpenAI, Reply


def _http(node: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=node, headers={"Authorization": f"Bearer {key}"}, timeout=15)


def test_sessions_can_be_created_paged_searched_renamed_exported_and_deleted(
    node: str, fake: FakeOpenAI, all_settings: Settings, db_url: str
) -> None:
    _, key = new_user(db_url, all_settings)
    fake.script(FAKE_MODEL, Reply(text="=SUM(A1) is a formula"))
    talked = chat(node, key, {"message": "tell me about penguins"})
    with _http(node, key) as http:
        for i in range(3):
            assert http.post("/api/sessions", json={"title": f"empty {i}"}).status_code == 201
        legacy = http.post("/api/sessions", params={"title": "from query", "metadata": '{"source": "old"}'})
        assert legacy.status_code == 201 and legacy.json()["metadata"] == {"source": "old"}

        page = http.get("/api/sessions", params={"limit": 2}).json()
        assert len(page["sessions"]) == 2
        assert page["pagination"] == {"total": 5, "page": 1, "per_page": 2, "has_more": True}
        found = http.get("/api/sessions", params={"search": "penguin"}).json()
        assert [s["session_id"] for s in found["sessions"]] == [talked.session_id]

        full = http.get(f"/api/sessions/{talked.session_id}").json()
        assert [m["role"] for m in full["messages"]] == ["user", "assistant"]
        renamed = http.put(f"/api/sessions/{talked.session_id}", json={"title": "Penguins", "tags": ["birds"]}).json()
        assert renamed["title"] == "Penguins" and renamed["tags"] == ["birds"]

        as_json = http.get(f"/api/sessions/{talked.session_id}/export", params={"format": "json"})
        assert as_json.json()["session"]["title"] == "Penguins" and len(as_json.json()["messages"]) == 2
        as_csv = http.get(f"/api/sessions/{talked.session_id}/export", params={"format": "csv"})
        rows = list(csv.reader(io.StringIO(as_csv.text)))
        assert rows[0] == ["created_at", "role", "message_type", "status", "content"]
        assert rows[2][4] == "'=SUM(A1) is a formula"  # never a live spreadsheet formula
        as_txt = http.get(f"/api/sessions/{talked.session_id}/export", params={"format": "txt"})
        assert "user: tell me about penguins" in as_txt.text and as_txt.headers["content-type"].startswith("text/plain")
        assert "attachment" in as_txt.headers["content-disposition"]

        only_users = http.get(f"/api/sessions/{talked.session_id}/messages", params={"role": "user"}).json()
        assert [m["content"] for m in only_users["messages"]] == ["tell me about penguins"]
        assert http.delete(f"/api/sessions/{talked.session_id}").json() == {"deleted": True, "id": talked.session_id}
        assert http.get(f"/api/sessions/{talked.session_id}").status_code == 404
        assert http.get("/api/sessions", params={"format": "x", "limit": 500}).status_code == 422


def test_another_users_session_is_a_404_everywhere(
    node: str, fake: FakeOpenAI, all_settings: Settings, db_url: str
) -> None:
    _, alice = new_user(db_url, all_settings)
    _, bob = new_user(db_url, all_settings)
    fake.script(FAKE_MODEL, Reply(text="private"))
    session_id = chat(node, alice, {"message": "my secret plan"}).session_id
    with _http(node, bob) as http:
        for method, path in [
            ("GET", f"/api/sessions/{session_id}"),
            ("PUT", f"/api/sessions/{session_id}"),
            ("DELETE", f"/api/sessions/{session_id}"),
            ("GET", f"/api/sessions/{session_id}/messages"),
            ("GET", f"/api/sessions/{session_id}/export"),
        ]:
            response = http.request(method, path, json={"title": "mine now"} if method == "PUT" else None)
            assert response.status_code == 404, (method, path, response.text)
        assert http.get("/api/sessions", params={"search": "secret"}).json()["sessions"] == []
    assert chat(node, bob, {"message": "continue", "session_id": session_id}).status == 404
    assert chat(node, bob, {"session_id": session_id, "resume_value": "x"}, path="/api/chat/resume").status == 404
    with _http(node, alice) as http:
        assert http.get(f"/api/sessions/{session_id}").json()["title"] == "my secret plan"


def test_the_chat_page_is_served_with_a_strict_content_security_policy(node: str) -> None:
    page = httpx.get(node + "/", timeout=10)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy
    assert " on" not in page.text.lower().replace("\n", " ").split("<body", 1)[1].split(">", 1)[0]
    assert "onclick" not in page.text and "<script>" not in page.text
    script = httpx.get(node + "/api/chat/static/app.js", timeout=10)
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert httpx.get(node + "/api/chat/static/../settings.py", timeout=10).status_code == 404
    vendored = httpx.get(node + "/api/chat/static/vendor/purify.min.js", timeout=10)
    assert vendored.status_code == 200 and "javascript" in vendored.headers["content-type"]
    for outside in ("vendor/README.md", "vendor/LICENSE.marked", "vendor/%2e%2e/app.js", "vendor"):
        assert httpx.get(node + "/api/chat/static/" + outside, timeout=10).status_code == 404, outside


def test_the_originals_active_search_and_stats_routes_answer_for_the_callers_own_sessions(
    node: str, fake: FakeOpenAI, all_settings: Settings, db_url: str
) -> None:
    """Issue 16: /api/sessions/active, /search, /{id}/stats and /{id}/context were 404."""
    _, key = new_user(db_url, all_settings)
    _, other = new_user(db_url, all_settings)
    fake.script(FAKE_MODEL, Reply(text="Emperor penguins huddle."))
    talked = chat(node, key, {"message": "tell me about penguins"})
    with _http(node, key) as http:
        ended = http.post("/api/sessions", json={"title": "an old penguin chat"}).json()
        assert http.put(f"/api/sessions/{ended['session_id']}", json={"status": "ended"}).status_code == 200

        active = http.get("/api/sessions/active", params={"user_id": "someone-else"})
        assert active.status_code == 200
        assert [s["session_id"] for s in active.json()["sessions"]] == [talked.session_id]
        found = http.get("/api/sessions/search", params={"query": "penguin"}).json()
        assert {s["session_id"] for s in found["sessions"]} == {talked.session_id, ended["session_id"]}
        assert http.get("/api/sessions/search").status_code == 422  # query is required

        stats = http.get(f"/api/sessions/{talked.session_id}/stats")
        assert stats.status_code == 200
        assert stats.json()["message_count"] == 2 and stats.json()["session_id"] == talked.session_id
        assert stats.json()["total_tokens"] >= 0 and stats.json()["duration_seconds"] >= 0

        context = f"/api/sessions/{talked.session_id}/context"
        assert http.get(context).json() == {"session_id": talked.session_id, "context": {}}
        put = http.put(context, json={"context": {"topic": "penguins", "facts": ["they huddle"]}})
        assert put.status_code == 200 and put.json()["context"] == {"topic": "penguins", "facts": ["they huddle"]}
        assert http.get(context).json()["context"]["topic"] == "penguins"
        assert http.put(context, json={"context": "not an object"}).status_code == 422
        assert http.delete(context).json()["context"] == {}
        assert http.put(context, json={"context": {"topic": "seals"}}).status_code == 200
    with _http(node, other) as http:
        assert http.get(f"/api/sessions/{talked.session_id}/stats").status_code == 404
        assert http.get(f"/api/sessions/{talked.session_id}/context").status_code == 404
        assert http.put(f"/api/sessions/{talked.session_id}/context", json={"context": {}}).status_code == 404
        assert http.get("/api/sessions/active").json()["sessions"] == []
    with _http(node, key) as http:  # the other user's PUT changed nothing
        assert http.get(f"/api/sessions/{talked.session_id}/context").json()["context"] == {"topic": "seals"}
