"""A2 / A5.37 through the event service: a task's `callback_url` is a user-chosen URL the worker POSTs to.

The worker runs in-process with a fixed clock and the real SSRF guard (`isa.core.egress` via `guarded_post`);
only name resolution is a stub, so `evil.test` can point at loopback. The allow list opens exactly one
loopback port (the control receiver); a `Listener` on another loopback port must see zero connections.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import isa.events.egress as events_egress
from isa.auth.settings import auth_settings
from isa.core.db import Database
from isa.core.egress import EgressPolicy
from isa.core.errors import ApiError
from isa.core.settings import Settings
from isa.events.service import EventService
from isa.events.settings import EventsSettings
from isa.events.worker import SIGNATURE_HEADER, Worker
from tests.support.auth import create_key
from tests.support.events import CALLBACK_SECRET, FakeAgent, events_settings, fake_agent
from tests.support.mcp_servers import serve_asgi
from tests.support.web_pages import Listener, stub_resolver

pytestmark = pytest.mark.anyio

USER = "cb-alice"
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def clock() -> datetime:
    """A fixed "now": every task created here is due at once."""
    return NOW


RESOLVER_TABLE = {"evil.test": [["127.0.0.1"]]}


@dataclass
class Receiver:
    """The allow-listed callback target: records each POST's body and signature header."""

    url: str
    port: int
    received: list[tuple[bytes, str]]


@dataclass
class Rig:
    worker: Worker
    events: EventService


@pytest.fixture(scope="module")
def user(settings: Settings, db_url: str) -> str:
    create_key(db_url, settings, USER, "write")
    return USER


@pytest.fixture()
def agent() -> Iterator[FakeAgent]:
    with fake_agent() as fake:
        yield fake


@pytest.fixture()
def listener() -> Iterator[Listener]:
    target = Listener()
    try:
        yield target
    finally:
        target.close()


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    received: list[tuple[bytes, str]] = []

    async def hook(request: Request) -> Response:
        received.append((await request.body(), request.headers.get(SIGNATURE_HEADER, "")))
        return JSONResponse({"ok": True})

    with serve_asgi(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) as url:
        yield Receiver(url + "/hook", int(url.rsplit(":", 1)[1]), received)


@pytest.fixture()
async def rig(
    settings: Settings,
    db_url: str,
    user: str,
    agent: FakeAgent,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Rig]:
    # Only the receiver's host:port is opened; the default test allow list (all of 127.0.0.0/8) is dropped.
    full = events_settings(
        settings,
        agent_url=agent.url,
        egress_allow_cidrs="",
        egress_allow_hosts=f"127.0.0.1:{receiver.port}",
    )
    config = full.section("events", EventsSettings)
    monkeypatch.setattr(
        events_egress, "EgressPolicy", functools.partial(EgressPolicy, resolver=stub_resolver(RESOLVER_TABLE))
    )
    db = Database(db_url, full)
    await db.open()
    try:
        yield Rig(Worker(db, config, auth_settings(full), clock, "cb-worker"), EventService(db, config, clock))
    finally:
        await db.close()


async def _fire(rig: Rig, callback_url: str) -> dict[str, Any]:
    """A scheduled task with `callback_url` runs once; its event goes to the agent, then the callback; the event."""
    task = await rig.events.create_task(
        USER,
        task_type="schedule",
        name="ping",
        description=None,
        config={"schedule_type": "interval", "interval_minutes": 60, "message": "ping"},
        callback_url=callback_url,
    )
    assert await rig.worker.run_due_tasks() == 1
    await rig.worker.process_pending_events()
    events = await rig.events.list_events(
        USER, event_type=None, task_id=str(task["id"]), since=None, until=None, limit=10, offset=0
    )
    assert len(events) == 1
    return events[0]


def _hostile(port: int) -> list[str]:
    return [
        f"http://127.0.0.1:{port}/hook",  # loopback, but not the allow-listed port
        f"http://[::ffff:127.0.0.1]:{port}/",  # IPv4-mapped IPv6 loopback
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata
        f"http://2130706433:{port}/",  # 127.0.0.1 as one decimal number
        f"http://evil.test:{port}/",  # a public-looking name that resolves to 127.0.0.1
    ]


@pytest.mark.parametrize("form", range(5), ids=["loopback", "v4-mapped-v6", "metadata", "decimal", "dns-to-loopback"])
async def test_a_callback_to_an_internal_address_is_blocked_and_the_target_sees_no_connection(
    rig: Rig, agent: FakeAgent, listener: Listener, receiver: Receiver, form: int
) -> None:
    url = _hostile(listener.port)[form]
    if form < 4:
        # A literal internal address is refused when the task is created (issue 16, I4); nothing runs, nothing connects.
        with pytest.raises(ApiError) as refused:
            await _fire(rig, url)
        assert (refused.value.status, refused.value.code) == (422, "url_blocked"), url
        assert listener.connections == 0 and agent.calls == [] and receiver.received == []
        return
    # A name is only resolved when the callback is sent: refused there, after the agent answered.
    event = await _fire(rig, url)
    assert listener.connections == 0, url
    assert len(agent.calls) == 1  # the event did reach the agent; only the callback was refused
    # A refusal is permanent: the answer is kept and the event is not retried (no second agent call).
    assert event["status"] == "processed", (url, event)
    assert event["processing_result"]["callback_status"].startswith("blocked:"), (url, event["processing_result"])
    assert event["agent_response"], event
    assert await rig.worker.process_pending_events() == 0 and len(agent.calls) == 1
    assert receiver.received == []


async def test_an_allow_listed_callback_receiver_still_gets_the_signed_callback(
    rig: Rig, agent: FakeAgent, listener: Listener, receiver: Receiver
) -> None:
    event = await _fire(rig, receiver.url)
    assert event["status"] == "processed" and event["last_error"] is None
    assert event["processing_result"]["callback_status"] == 200
    assert len(receiver.received) == 1
    body, signature = receiver.received[0]
    stamp, mac = (part.split("=", 1)[1] for part in signature.split(","))
    expected = hmac.new(CALLBACK_SECRET.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(mac, expected)
    assert json.loads(body)["event_id"] == str(event["id"])
    assert listener.connections == 0
