"""Workers in-process with a controllable clock: agent hand-off (once, retried with backoff), monitors, callbacks."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from isa.app import create_app
from isa.auth.settings import auth_settings
from isa.core.db import Database
from isa.core.errors import ApiError
from isa.core.settings import Settings
from isa.events.service import EventService
from isa.events.settings import EventsSettings
from isa.events.worker import SIGNATURE_HEADER, Worker
from tests.events.conftest import Keys
from tests.support.events import CALLBACK_SECRET, FakeAgent, Page, events_settings
from tests.support.mcp_servers import serve_asgi, sql
from tests.support.procs import wait_for

pytestmark = pytest.mark.anyio


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Rig:
    worker: Worker
    events: EventService
    clock: Clock


@pytest.fixture()
async def rig(settings: Settings, db_url: str, keys: Keys, agent: FakeAgent) -> AsyncIterator[Rig]:
    full = events_settings(settings, agent_url=agent.url, backoff_base_seconds=10, max_attempts=3)
    config = full.section("events", EventsSettings)
    db = Database(db_url, full)
    await db.open()
    clock = Clock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    try:
        yield Rig(Worker(db, config, auth_settings(full), clock, "test-worker"), EventService(db, config, clock), clock)
    finally:
        await db.close()


async def test_an_event_for_the_agent_is_sent_once_as_its_owner_and_the_answer_is_stored(
    rig: Rig, agent: FakeAgent
) -> None:
    row, _ = await rig.events.ingest(
        "alice", event_type="reminder", data={"what": "call Bob"}, key="p-1", fingerprint={"x": 1}, needs_agent=True
    )
    assert await rig.worker.process_pending_events() == 1
    assert await rig.worker.process_pending_events() == 0  # nothing left: never processed twice
    assert len(agent.calls) == 1
    call = agent.calls[0]
    assert call["user_id"] == "alice" and "call Bob" in call["message"]
    assert call["idempotency_key"] == f"event:{row['id']}"  # the agent replays, never reruns, a redelivery
    stored = await rig.events.get_event("alice", str(row["id"]))
    assert stored["status"] == "processed" and stored["agent_response"].startswith("noted:")
    assert stored["attempts"] == 1


async def test_a_failing_agent_is_retried_with_backoff_and_then_given_up(rig: Rig, agent: FakeAgent) -> None:
    agent.fail_next = 1
    row, _ = await rig.events.ingest(
        "alice", event_type="flaky", data={}, key="p-2", fingerprint={"x": 2}, needs_agent=True
    )
    assert await rig.worker.process_pending_events() == 0
    failed = await rig.events.get_event("alice", str(row["id"]))
    assert failed["status"] == "pending" and "HTTPStatusError" in failed["last_error"]
    rig.clock.advance(9)  # backoff is 10 s after the first attempt
    assert await rig.worker.process_pending_events() == 0 and len(agent.calls) == 1
    rig.clock.advance(2)
    assert await rig.worker.process_pending_events() == 1
    assert (await rig.events.get_event("alice", str(row["id"])))["status"] == "processed"

    agent.fail_next = 10
    doomed, _ = await rig.events.ingest(
        "alice", event_type="doomed", data={}, key="p-3", fingerprint={"x": 3}, needs_agent=True
    )
    for _ in range(3):
        await rig.worker.process_pending_events()
        rig.clock.advance(100)
    final = await rig.events.get_event("alice", str(doomed["id"]))
    assert final["status"] == "failed" and final["attempts"] == 3


async def test_a_web_monitor_sees_a_page_change_and_the_agent_hears_of_it_once(
    rig: Rig, agent: FakeAgent, page: Page, db_url: str
) -> None:
    page.body = "<h1>Prices</h1><p>Widget costs 10 EUR</p>"
    config = {"urls": [page.url], "keywords": ["sale"], "check_interval_minutes": 5}
    task = await rig.events.create_task(
        "alice", task_type="web_monitor", name="w", description=None, config=config, callback_url=None
    )
    assert await rig.worker.run_due_tasks() == 1  # baseline
    rig.clock.advance(300)
    page.body = "<h1>Prices</h1><p>Widget costs 12 EUR</p>"  # changed, but no keyword: nothing to tell
    assert await rig.worker.run_due_tasks() == 1
    rig.clock.advance(300)
    page.body = "<h1>Prices</h1><p>Big SALE: widget 5 EUR</p>"
    assert await rig.worker.run_due_tasks() == 1
    rig.clock.advance(60)
    assert await rig.worker.run_due_tasks() == 0  # not due again yet
    await rig.worker.process_pending_events()
    await rig.worker.process_pending_events()
    events = await rig.events.list_events(
        "alice", event_type=None, task_id=str(task["id"]), since=None, until=None, limit=10, offset=0
    )
    assert [(e["event_type"], e["status"]) for e in events] == [("web_content_change", "processed")]
    assert events[0]["event_data"]["keywords_found"] == ["sale"]
    assert len(agent.calls) == 1 and "SALE" in agent.calls[0]["message"]
    row = sql(db_url, "SELECT run_count, last_error, next_check FROM user_tasks WHERE id = %s", (task["id"],))[0]
    assert row["run_count"] == 3 and row["last_error"] is None
    assert row["next_check"] == datetime(2026, 3, 2, 9, 15, tzinfo=UTC)


async def test_a_task_that_fails_shows_its_last_error_and_still_has_a_next_run(rig: Rig, page: Page) -> None:
    page.body = "<p>no numbers here</p>"
    task = await rig.events.create_task(
        "alice",
        task_type="threshold_watch",
        name=None,
        description=None,
        config={"url": page.url, "below": 3},
        callback_url=None,
    )
    assert await rig.worker.run_due_tasks() == 1
    listed = {str(t["id"]): t for t in await rig.events.list_tasks("alice")}[str(task["id"])]
    assert "no number" in listed["last_error"] and listed["consecutive_failures"] == 1
    assert listed["last_check"] == rig.clock.now and listed["next_check"] == rig.clock.now + timedelta(minutes=15)


async def test_a_tasks_callback_is_signed_so_the_receiver_can_verify_it(rig: Rig, agent: FakeAgent) -> None:
    received: list[tuple[bytes, str]] = []

    async def hook(request: Request) -> Response:
        received.append((await request.body(), request.headers[SIGNATURE_HEADER]))
        return JSONResponse({"ok": True})

    with serve_asgi(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) as url:
        task = await rig.events.create_task(
            "alice",
            task_type="schedule",
            name="standup",
            description=None,
            config={"schedule_type": "interval", "interval_minutes": 60, "message": "stand up"},
            callback_url=url + "/hook",
        )
        await rig.worker.run_due_tasks()
        assert await rig.worker.process_pending_events() == 1
    body, signature = received[0]
    stamp, mac = (part.split("=", 1)[1] for part in signature.split(","))
    expected = hmac.new(CALLBACK_SECRET.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(mac, expected)
    payload: dict[str, Any] = json.loads(body)
    assert payload["task_id"] == str(task["id"]) and payload["data"] == {"message": "stand up"}
    assert payload["agent_response"].startswith("noted:")


def test_the_in_process_worker_runs_due_tasks_while_the_node_serves(
    settings: Settings, db_url: str, keys: Keys, agent: FakeAgent
) -> None:
    full = events_settings(settings, agent_url=agent.url, inprocess_worker=True, poll_interval_seconds=0.05)
    with TestClient(create_app(full, "mcp", database_url=db_url)) as client:
        made = client.app.state.isa.get("events", EventService)  # type: ignore[attr-defined]
        assert made.settings.inprocess_worker
        sql(
            db_url,
            "INSERT INTO user_tasks (user_id, task_type, config, next_check) "
            "VALUES ('bob', 'schedule', '{\"message\": \"inproc\"}', now() - interval '1 minute')",
        )
        rows = wait_for(
            lambda: sql(
                db_url,
                "SELECT status FROM events WHERE user_id = 'bob' AND event_data->>'message' = 'inproc' "
                "AND status = 'processed'",
            ),
            timeout=30,
        )
    assert len(rows) == 1 and any("inproc" in c["message"] for c in agent.calls)


async def test_a_monitor_aimed_at_the_cloud_metadata_address_is_blocked_by_the_ssrf_guard(
    rig: Rig, db_url: str
) -> None:
    metadata = "http://169.254.169.254/latest/meta-data/"
    with pytest.raises(ApiError) as refused:  # refused when the task is made (issue 16, I4)...
        await rig.events.create_task(
            "alice",
            task_type="web_monitor",
            name=None,
            description=None,
            config={"urls": [metadata]},
            callback_url=None,
        )
    assert refused.value.code == "url_blocked"
    task = await rig.events.create_task(
        "alice",
        task_type="web_monitor",
        name=None,
        description=None,
        config={"urls": ["https://example.com/"]},
        callback_url=None,
    )
    # ...and by each run, for a task stored before that check (or a name that resolves inside later).
    sql(db_url, "UPDATE user_tasks SET config = %s::jsonb WHERE id = %s", (f'{{"urls": ["{metadata}"]}}', task["id"]))
    assert await rig.worker.run_due_tasks() == 1
    listed = {str(t["id"]): t for t in await rig.events.list_tasks("alice")}[str(task["id"])]
    assert listed["last_error"].startswith("EgressBlocked") and listed["state"] == {}


async def test_a_run_redone_after_a_crash_between_its_event_and_its_bookkeeping_adds_no_second_event(
    rig: Rig, db_url: str
) -> None:
    task = await rig.events.create_task(
        "bob",
        task_type="schedule",
        name=None,
        description=None,
        config={"schedule_type": "interval", "interval_minutes": 60, "message": "redo"},
        callback_url=None,
    )
    assert await rig.worker.run_due_tasks() == 1
    # The worker "died" after writing the event but before advancing the task: the task is due at the same time again.
    sql(db_url, "UPDATE user_tasks SET next_check = %s, run_count = 0 WHERE id = %s", (rig.clock.now, task["id"]))
    assert await rig.worker.run_due_tasks() == 1
    events = sql(db_url, "SELECT id FROM events WHERE task_id = %s", (task["id"],))
    assert len(events) == 1


async def test_a_news_digest_reports_only_headlines_it_has_not_reported_before(rig: Rig, page: Page) -> None:
    page.body = "<title>Daily</title><h2>Rates cut</h2><h3>Rain tomorrow</h3>"
    task = await rig.events.create_task(
        "bob",
        task_type="news_digest",
        name=None,
        description=None,
        config={"urls": [page.url], "interval_minutes": 60},
        callback_url=None,
    )
    await rig.worker.run_due_tasks()
    rig.clock.advance(3600)
    await rig.worker.run_due_tasks()  # same page: nothing new
    rig.clock.advance(3600)
    page.body = "<title>Daily</title><h2>Rates cut</h2><h2>Bridge reopens</h2>"
    await rig.worker.run_due_tasks()
    events = await rig.events.list_events(
        "bob", event_type="daily_news_digest", task_id=str(task["id"]), since=None, until=None, limit=10, offset=0
    )
    titles = [[h["title"] for h in e["event_data"]["headlines"]] for e in events]
    assert titles == [["Bridge reopens"], ["Daily", "Rates cut", "Rain tomorrow"]]
