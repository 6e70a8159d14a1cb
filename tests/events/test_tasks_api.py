"""REST routes of background tasks (/api/v1/tasks) on a real mcp node on loopback, sharing the MCP tools' service."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from isa.app import create_app
from isa.auth.settings import auth_settings
from isa.core.db import Database
from isa.core.settings import Settings
from isa.events.settings import EventsSettings
from isa.events.worker import Worker
from tests.events.conftest import Keys
from tests.support.auth import create_key
from tests.support.events import events_settings
from tests.support.mcp_servers import mcp_client, serve_asgi, sql

DAILY = {"schedule_type": "daily", "time": "09:00", "timezone": "Europe/Berlin", "message": "standup"}
CLOSED = "http://127.0.0.1:1/page"  # loopback, nothing listens: a monitor run fails fast without leaving the machine


@pytest.fixture(scope="module")
def full(settings: Settings) -> Settings:
    return events_settings(settings)


@pytest.fixture(scope="module")
def url(full: Settings, db_url: str, keys: Keys) -> Iterator[str]:
    with serve_asgi(create_app(full, "mcp", database_url=db_url)) as base:
        yield base


def client(url: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30)


def make(http: httpx.Client, **body: Any) -> dict[str, Any]:
    response = http.post("/api/v1/tasks", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def test_a_created_task_shows_its_schedule_and_is_listed_and_readable_by_its_owner(url: str, keys: Keys) -> None:
    with client(url, keys.alice) as http:
        made = make(http, task_type="schedule", config=DAILY, name="standup", description="every morning")
        one = http.get(f"/api/v1/tasks/{made['task_id']}")
        listed = http.get("/api/v1/tasks")
    assert made["status"] == "active" and made["name"] == "standup" and made["interval_seconds"] is None
    assert made["last_run"] is None and made["last_error"] is None and made["run_count"] == 0
    next_run = datetime.fromisoformat(made["next_run"])  # 09:00 in Berlin is 07:00 or 08:00 UTC
    assert next_run.utcoffset() == timedelta(0) and next_run.hour in (7, 8) and next_run.minute == 0
    assert one.status_code == 200 and one.json() == made
    assert one.headers["cache-control"] == "no-store"
    assert made["task_id"] in [t["task_id"] for t in listed.json()["tasks"]]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"task_type": "crystal_ball", "config": {}}, "task_type"),  # not one of the four types (schema)
        ({"task_type": "web_monitor", "config": {}}, "config.urls"),  # the service's per-type check
        ({"task_type": "web_monitor", "config": {"urls": ["file:///etc/passwd"]}}, "http(s)"),
        ({"task_type": "threshold_watch", "config": {"url": CLOSED}}, "above or config.below"),
        ({"task_type": "schedule", "config": {"interval_minutes": 0.5}}, "at least 60 seconds"),
        ({"task_type": "schedule", "config": {"schedule_type": "daily", "time": "25:99"}}, "HH:MM"),
        ({"task_type": "schedule", "config": {**DAILY, "timezone": "Mars/Olympus"}}, "time zone"),
        ({"task_type": "schedule", "config": DAILY, "callback_url": "ftp://x"}, "callback_url"),
        ({"task_type": "schedule", "config": DAILY, "name": "n" * 201}, "body"),
        ({"task_type": "schedule", "config": DAILY, "status": "active"}, "body"),  # unknown fields are refused
    ],
)
def test_a_bad_task_is_refused_with_422_invalid_request_and_nothing_is_stored(
    url: str, settings: Settings, db_url: str, body: dict[str, Any], fragment: str
) -> None:
    user = f"bad-{uuid.uuid4().hex[:8]}"
    with client(url, create_key(db_url, settings, user)) as http:
        response = http.post("/api/v1/tasks", json=body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_request" and fragment in error["message"] + str(error.get("details"))
    assert sql(db_url, "SELECT id FROM user_tasks WHERE user_id = %s", (user,)) == []


def test_a_body_that_is_not_json_or_a_bad_query_is_a_422_too(url: str, keys: Keys) -> None:
    with client(url, keys.alice) as http:
        not_json = http.post("/api/v1/tasks", content=b"{nope", headers={"Content-Type": "application/json"})
        bad_limit = http.get("/api/v1/tasks", params={"limit": 0})
        bad_status = http.get("/api/v1/tasks", params={"status": "sleeping"})
        unknown_filter = http.get("/api/v1/tasks", params={"user_id": "bob"})
    for response in (not_json, bad_limit, bad_status, unknown_filter):
        assert response.status_code == 422 and response.json()["error"]["code"] == "invalid_request"


def test_tasks_are_paged_newest_first_and_filtered_by_status_and_type(
    url: str, settings: Settings, db_url: str
) -> None:
    with client(url, create_key(db_url, settings, "pager")) as http:
        ids = [make(http, task_type="schedule", config=DAILY, name=f"t{i}")["task_id"] for i in range(3)]
        monitor = make(http, task_type="web_monitor", config={"urls": [CLOSED], "check_interval_minutes": 60})
        assert http.post(f"/api/v1/tasks/{ids[0]}/pause").status_code == 200
        first = http.get("/api/v1/tasks", params={"limit": 2}).json()
        rest = http.get("/api/v1/tasks", params={"limit": 2, "offset": 2}).json()
        paused = http.get("/api/v1/tasks", params={"status": "paused"}).json()
        monitors = http.get("/api/v1/tasks", params={"task_type": "web_monitor"}).json()
    assert [t["task_id"] for t in first["tasks"]] == [monitor["task_id"], ids[2]] and first["has_more"] is True
    assert [t["task_id"] for t in rest["tasks"]] == [ids[1], ids[0]] and rest["has_more"] is False
    assert (first["count"], rest["count"], rest["offset"]) == (2, 2, 2)
    assert [t["task_id"] for t in paused["tasks"]] == [ids[0]] and paused["tasks"][0]["next_run"] is None
    assert [t["task_id"] for t in monitors["tasks"]] == [monitor["task_id"]]


def test_pause_resume_and_delete_change_the_task_and_a_deleted_task_is_gone(url: str, keys: Keys, db_url: str) -> None:
    with client(url, keys.alice) as http:
        made = make(http, task_type="schedule", config=DAILY)
        path = f"/api/v1/tasks/{made['task_id']}"
        paused = http.post(path + "/pause")
        run_paused = http.post(path + "/run")
        resumed = http.post(path + "/resume")
        deleted = http.delete(path)
        after = http.get(path)
        again = http.delete(path)
    assert paused.status_code == 200 and paused.json()["status"] == "paused" and paused.json()["next_run"] is None
    assert run_paused.status_code == 409 and run_paused.json()["error"]["code"] == "task_not_active"
    assert resumed.status_code == 200 and resumed.json()["status"] == "active" and resumed.json()["next_run"]
    assert deleted.status_code == 204 and deleted.content == b""
    assert after.status_code == 404 and after.json()["error"]["code"] == "not_found"
    assert again.status_code == 404
    assert sql(db_url, "SELECT id FROM user_tasks WHERE id = %s", (made["task_id"],)) == []


def test_run_now_makes_the_task_due_but_not_while_it_runs_nor_sooner_than_the_minimum_interval(
    url: str, keys: Keys, db_url: str
) -> None:
    with client(url, keys.alice) as http:
        made = make(http, task_type="schedule", config=DAILY)
        path = f"/api/v1/tasks/{made['task_id']}"
        ran = http.post(path + "/run")
        tid = (made["task_id"],)
        sql(db_url, "UPDATE user_tasks SET last_check = now() - interval '10 seconds' WHERE id = %s", tid)
        too_soon = http.post(path + "/run")
        sql(
            db_url,
            "UPDATE user_tasks SET last_check = now() - interval '2 minutes', lease_owner = 'w', "
            "lease_expires_at = now() + interval '1 minute' WHERE id = %s",
            tid,
        )
        running = http.post(path + "/run")
        sql(db_url, "UPDATE user_tasks SET lease_owner = NULL, lease_expires_at = NULL WHERE id = %s", tid)
        later = http.post(path + "/run")
    assert ran.status_code == 202
    assert datetime.fromisoformat(ran.json()["next_run"]) < datetime.fromisoformat(made["next_run"])
    assert too_soon.status_code == 429 and too_soon.json()["error"]["code"] == "run_too_soon"
    assert 45 <= int(too_soon.headers["retry-after"]) <= 51  # 60 s minimum minus the 10 s since the last run
    assert running.status_code == 409 and running.json()["error"]["code"] == "task_running"
    assert later.status_code == 202


@pytest.mark.anyio
async def test_a_run_now_is_picked_up_by_the_worker_and_the_task_shows_last_run_next_run_and_last_error(
    url: str, full: Settings, db_url: str, keys: Keys
) -> None:
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {keys.bob}"}) as http:
        made = (await http.post("/api/v1/tasks", json={"task_type": "schedule", "config": DAILY})).json()
        monitor = (
            await http.post(
                "/api/v1/tasks",
                json={"task_type": "web_monitor", "config": {"urls": [CLOSED], "check_interval_minutes": 45}},
            )
        ).json()
        assert (await http.post(f"/api/v1/tasks/{made['task_id']}/run")).status_code == 202
        db = Database(db_url, full)
        await db.open()
        try:
            worker = Worker(db, full.section("events", EventsSettings), auth_settings(full), worker_id="api-test")
            assert await worker.run_due_tasks() >= 2  # the run-now schedule and the new monitor (due at once)
        finally:
            await db.close()
        ran = (await http.get(f"/api/v1/tasks/{made['task_id']}")).json()
        failed = (await http.get(f"/api/v1/tasks/{monitor['task_id']}")).json()
    events = sql(db_url, "SELECT event_type, event_data FROM events WHERE task_id = %s", (made["task_id"],))
    assert events == [{"event_type": "scheduled_trigger", "event_data": {"message": "standup"}}]
    assert ran["run_count"] == 1 and ran["last_run"] and ran["last_error"] is None
    assert ran["next_run"] == made["next_run"]  # back on its daily time after the extra run
    assert failed["run_count"] == 1 and failed["consecutive_failures"] == 1 and failed["last_error"]
    last = datetime.fromisoformat(failed["last_run"])
    assert datetime.fromisoformat(failed["next_run"]) == last + timedelta(minutes=45)


def test_tasks_made_over_rest_and_over_mcp_are_the_same_tasks(url: str, keys: Keys) -> None:
    import anyio

    with client(url, keys.alice) as http:
        made = make(http, task_type="schedule", config={"interval_minutes": 120, "message": "rest"})

    async def over_mcp() -> tuple[dict[str, Any], dict[str, Any]]:
        async with mcp_client(url, keys.alice) as alice:
            listed = await alice.call_tool("list_background_tasks", {})
            paused = await alice.call_tool("control_background_task", {"task_id": made["task_id"], "action": "pause"})
        assert listed.structured_content is not None and paused.structured_content is not None
        return listed.structured_content["data"], paused.structured_content["data"]

    listed, paused = anyio.run(over_mcp)
    assert made["task_id"] in [t["task_id"] for t in listed["tasks"]]
    assert paused["task"]["status"] == "paused"
    with client(url, keys.alice) as http:
        assert http.get(f"/api/v1/tasks/{made['task_id']}").json()["status"] == "paused"


def test_a_read_only_key_lists_tasks_but_cannot_create_or_change_them(
    url: str, settings: Settings, db_url: str
) -> None:
    with client(url, create_key(db_url, settings, "reader", "read")) as http:
        assert http.get("/api/v1/tasks").status_code == 200
        created = http.post("/api/v1/tasks", json={"task_type": "schedule", "config": DAILY})
        paused = http.post(f"/api/v1/tasks/{uuid.uuid4()}/pause")
    assert created.status_code == 403 and paused.status_code == 403
    assert httpx.get(url + "/api/v1/tasks", timeout=10).status_code == 401


def test_the_task_routes_are_described_in_openapi(url: str) -> None:
    paths = httpx.get(url + "/openapi.json", timeout=30).json()["paths"]
    assert set(paths["/api/v1/tasks"]) == {"get", "post"}
    assert set(paths["/api/v1/tasks/{task_id}"]) == {"get", "delete"}
    run = paths["/api/v1/tasks/{task_id}/run"]["post"]
    assert {"202", "404", "409", "429"} <= set(run["responses"]) and run["security"]
    create = paths["/api/v1/tasks"]["post"]
    assert "201" in create["responses"] and "requestBody" in create


def test_an_idempotency_key_makes_a_retried_create_return_the_first_task_even_when_sent_at_once(
    url: str, keys: Keys, db_url: str
) -> None:
    key = "retry-" + uuid.uuid4().hex
    body = {"task_type": "schedule", "config": DAILY, "name": "once only"}
    headers = {"Authorization": f"Bearer {keys.alice}", "Idempotency-Key": key}

    def post(_: int) -> httpx.Response:
        return httpx.post(url + "/api/v1/tasks", json=body, headers=headers, timeout=30)

    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(post, range(8)))
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["task_id"] for r in responses}) == 1
    assert sum(r.headers.get("idempotent-replayed") == "true" for r in responses) == 7
    stored = sql(db_url, "SELECT count(*) FROM user_tasks WHERE idempotency_key = %s", (key,))
    assert stored == [{"count": 1}]

    changed = httpx.post(url + "/api/v1/tasks", json={**body, "name": "other"}, headers=headers, timeout=30)
    assert changed.status_code == 422 and changed.json()["error"]["code"] == "idempotency_key_reused"
    # The same key is the other user's own: it makes their own task.
    bob = httpx.post(url + "/api/v1/tasks", json=body, headers={**headers, "Authorization": f"Bearer {keys.bob}"})
    assert bob.status_code == 201 and bob.headers["idempotent-replayed"] == "false"
    assert bob.json()["task_id"] != responses[0].json()["task_id"]
    assert sql(db_url, "SELECT count(*) FROM user_tasks WHERE idempotency_key = %s", (key,)) == [{"count": 2}]

    too_long = httpx.post(url + "/api/v1/tasks", json=body, headers={**headers, "Idempotency-Key": "k" * 256})
    assert too_long.status_code == 422 and too_long.json()["error"]["code"] == "invalid_request"
