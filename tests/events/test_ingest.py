"""Idempotent event ingestion over HTTP: replay, conflicting payload, in-flight key, crash between commit and reply."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from starlette.testclient import TestClient

from isa.app import create_app
from isa.core.settings import Settings
from isa.events.service import EventService
from tests.events.conftest import Keys
from tests.support.events import events_settings
from tests.support.mcp_servers import sql


@pytest.fixture(scope="module")
def client(settings: Settings, db_url: str) -> Iterator[TestClient]:
    # Server exceptions become 500 answers, as a client would see them (the crash test relies on it).
    app = create_app(events_settings(settings), "mcp", database_url=db_url)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def auth(key: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", **extra}


def rows_with_key(db_url: str, user: str, key: str) -> list[dict[str, Any]]:
    return sql(db_url, "SELECT * FROM events WHERE user_id = %s AND idempotency_key = %s", (user, key))


def test_the_same_key_and_payload_twice_stores_one_row_and_answers_the_same(
    client: TestClient, keys: Keys, db_url: str
) -> None:
    body = {"event_type": "order.paid", "data": {"order": 7, "amount": "9.90"}}
    first = client.post("/api/v1/events", json=body, headers=auth(keys.alice, **{"Idempotency-Key": "k-same"}))
    second = client.post("/api/v1/events", json=body, headers=auth(keys.alice, **{"Idempotency-Key": "k-same"}))
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert first.headers["idempotent-replayed"] == "false" and second.headers["idempotent-replayed"] == "true"
    assert len(rows_with_key(db_url, "alice", "k-same")) == 1


def test_the_key_may_come_in_the_body_instead_of_the_header(client: TestClient, keys: Keys, db_url: str) -> None:
    body = {"event_type": "ping", "data": {"n": 1}, "idempotency_key": "k-body"}
    first = client.post("/api/v1/events", json=body, headers=auth(keys.alice))
    second = client.post("/api/v1/events", json=body, headers=auth(keys.alice))
    assert first.json()["event_id"] == second.json()["event_id"]
    assert len(rows_with_key(db_url, "alice", "k-body")) == 1


def test_the_same_key_with_a_different_payload_is_rejected_with_422(
    client: TestClient, keys: Keys, db_url: str
) -> None:
    headers = auth(keys.alice, **{"Idempotency-Key": "k-diff"})
    assert client.post("/api/v1/events", json={"event_type": "a", "data": {"x": 1}}, headers=headers).status_code == 201
    again = client.post("/api/v1/events", json={"event_type": "a", "data": {"x": 2}}, headers=headers)
    assert again.status_code == 422
    assert again.json()["error"]["code"] == "idempotency_key_reused"
    assert [r["event_data"] for r in rows_with_key(db_url, "alice", "k-diff")] == [{"x": 1}]


def test_a_key_whose_request_is_still_in_flight_gets_409(client: TestClient, keys: Keys, db_url: str) -> None:
    headers = auth(keys.alice, **{"Idempotency-Key": "k-flight"})
    # Another request holding the key: the same transaction-scoped lock ingestion takes while it inserts.
    with psycopg.connect(db_url) as conn, conn.transaction():
        conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('isa.events:' || %s || ':' || %s, 0))", ("alice", "k-flight")
        )
        busy = client.post("/api/v1/events", json={"event_type": "a"}, headers=headers)
    assert busy.status_code == 409
    assert busy.json()["error"]["code"] == "idempotency_key_in_use"
    done = client.post("/api/v1/events", json={"event_type": "a"}, headers=headers)
    assert done.status_code == 201
    assert len(rows_with_key(db_url, "alice", "k-flight")) == 1


def test_a_retry_after_the_server_crashed_between_commit_and_response_gets_the_first_answer(
    client: TestClient, db_url: str, keys: Keys
) -> None:
    service = client.app.state.isa.get("events", EventService)  # type: ignore[attr-defined]

    def crash(row: dict[str, Any]) -> None:
        raise RuntimeError("process died after COMMIT")

    body = {"event_type": "invoice.sent", "data": {"invoice": "A-1"}}
    service.after_commit = crash
    try:
        lost = client.post("/api/v1/events", json=body, headers=auth(keys.alice, **{"Idempotency-Key": "k-crash"}))
    finally:
        service.after_commit = None
    assert lost.status_code == 500
    retry = client.post("/api/v1/events", json=body, headers=auth(keys.alice, **{"Idempotency-Key": "k-crash"}))
    stored = rows_with_key(db_url, "alice", "k-crash")
    assert retry.status_code == 201 and retry.headers["idempotent-replayed"] == "true"
    assert len(stored) == 1 and retry.json()["event_id"] == str(stored[0]["id"])


def test_keys_are_per_user_and_another_users_event_is_not_found(client: TestClient, keys: Keys) -> None:
    body = {"event_type": "shared.key"}
    a = client.post("/api/v1/events", json=body, headers=auth(keys.alice, **{"Idempotency-Key": "k-user"})).json()
    b = client.post("/api/v1/events", json=body, headers=auth(keys.bob, **{"Idempotency-Key": "k-user"})).json()
    assert a["event_id"] != b["event_id"]
    assert client.get(f"/api/v1/events/{a['event_id']}", headers=auth(keys.bob)).status_code == 404
    assert client.get(f"/api/v1/events/{a['event_id']}", headers=auth(keys.alice)).status_code == 200
    listed = client.get("/api/v1/events?event_type=shared.key", headers=auth(keys.bob)).json()["events"]
    assert [e["event_id"] for e in listed] == [b["event_id"]]


def test_a_batch_reports_each_item_and_a_retry_adds_no_duplicates(client: TestClient, keys: Keys, db_url: str) -> None:
    items: list[dict[str, Any]] = [
        {"event_type": "reading", "data": {"i": i}, "idempotency_key": f"batch-{i}"} for i in range(100)
    ]
    items[50]["task_id"] = "00000000-0000-0000-0000-000000000000"  # no such task of alice's: this item fails
    first = client.post("/api/v1/events/batch", json={"events": items}, headers=auth(keys.alice))
    assert first.status_code == 200
    body = first.json()
    assert (body["succeeded"], body["failed"]) == (99, 1)
    assert body["results"][50]["status"] == 404 and body["results"][50]["error"]["code"] == "not_found"
    retry = client.post("/api/v1/events/batch", json={"events": items}, headers=auth(keys.alice)).json()
    assert {r["status"] for i, r in enumerate(retry["results"]) if i != 50} == {200}
    assert [r["event_id"] for r in retry["results"] if "event_id" in r] == [
        r["event_id"] for r in body["results"] if "event_id" in r
    ]
    count = sql(db_url, "SELECT count(*) AS n FROM events WHERE user_id = 'alice' AND event_type = 'reading'")
    assert count[0]["n"] == 99


def test_a_malformed_batch_is_rejected_whole(client: TestClient, keys: Keys, db_url: str) -> None:
    items = [{"event_type": "ok"}, {"event_type": ""}]
    response = client.post("/api/v1/events/batch", json={"events": items}, headers=auth(keys.alice))
    assert response.status_code == 422 and response.json()["error"]["code"] == "invalid_request"
    assert sql(db_url, "SELECT count(*) AS n FROM events WHERE event_type = 'ok'")[0]["n"] == 0


def test_events_are_queried_by_type_and_time_range_with_paging(client: TestClient, keys: Keys) -> None:
    for i in range(5):
        client.post("/api/v1/events", json={"event_type": "page.view", "data": {"i": i}}, headers=auth(keys.alice))
    page1 = client.get("/api/v1/events?event_type=page.view&limit=2", headers=auth(keys.alice)).json()["events"]
    page2 = client.get("/api/v1/events?event_type=page.view&limit=2&offset=2", headers=auth(keys.alice)).json()
    assert [e["data"]["i"] for e in page1] == [4, 3] and [e["data"]["i"] for e in page2["events"]] == [2, 1]
    until = page1[1]["created_at"]
    older = client.get("/api/v1/events", params={"event_type": "page.view", "until": until}, headers=auth(keys.alice))
    assert [e["data"]["i"] for e in older.json()["events"]] == [2, 1, 0]
    recent = client.get("/api/v1/events/recent?limit=3", headers=auth(keys.alice)).json()
    assert recent["count"] == 3 and recent["events"][0]["data"] == {"i": 4}
    assert client.get("/api/v1/events/recent", headers=auth(keys.bob)).json()["events"][0]["event_type"] != "page.view"


def test_text_postgres_cannot_store_or_a_body_that_is_not_utf8_is_a_422_and_a_batch_item_fails_alone(
    client: TestClient, keys: Keys, db_url: str
) -> None:
    headers = auth(keys.bob, **{"Content-Type": "application/json"})
    nul = client.post("/api/v1/events", content=b'{"event_type": "nul", "data": {"a": "x\\u0000"}}', headers=headers)
    binary = client.post("/api/v1/events", content=b"\xff\xfe{", headers=headers)
    feedback = client.post(
        "/process_background_feedback", content=b'{"event_type": "nul", "data": {"\\u0000": 1}}', headers=headers
    )
    batch = client.post(
        "/api/v1/events/batch",
        content=b'{"events": [{"event_type": "nul", "data": {"a": "\\u0000"}}, {"event_type": "nul", "data": {}}]}',
        headers=headers,
    )
    for response in (nul, binary, feedback):
        assert response.status_code == 422 and response.json()["error"]["code"] == "invalid_request", response.text
    assert [r["status"] for r in batch.json()["results"]] == [422, 201]
    assert len(sql(db_url, "SELECT id FROM events WHERE user_id = 'bob' AND event_type = 'nul'")) == 1
