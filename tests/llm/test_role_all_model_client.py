"""Role all with no services.model_url: every feature that needs a model reaches this process's own model app.

The model is a keyless local OpenAI-compatible server (the fake, named by model.local_url; no key variable is
set). Each test proves the feature's request reached the fake through the in-process model node, as the user.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import anyio
import httpx
import pytest

from isa.app import create_app
from isa.core.db import Database
from isa.core.settings import Settings
from isa.users import credits
from tests.support.auth import create_key
from tests.support.fake_openai import FakeOpenAI, Reply, call
from tests.support.mcp_servers import mcp_client, serve_asgi, settings_with, sql
from tests.support.memory import call as call_tool
from tests.support.procs import wait_for
from tests.support.web_pages import PageServer, page_server  # noqa: F401  (fixture)

SECRET = "role-all-token-secret-" + "x" * 32


@pytest.fixture(scope="module")
def local_model() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(models=["fake", "fake-embed"]) as fake:
        yield fake


@pytest.fixture()
def fake(local_model: FakeOpenAI) -> FakeOpenAI:
    local_model.reset()
    return local_model


@pytest.fixture(scope="module")
def pages() -> Iterator[PageServer]:
    from tests.support.procs import free_port
    from tests.support.web_pages import _pages

    port = free_port()
    hits: list[str] = []
    with serve_asgi(_pages(hits), port) as url:
        yield PageServer(url, port, hits)


@pytest.fixture(scope="module")
def node(settings: Settings, db_url: str, local_model: FakeOpenAI, pages: PageServer) -> Iterator[str]:
    all_settings = settings_with(
        settings,
        model={"local_url": local_model.base_url, "num_retries": 0, "request_timeout_seconds": 10},
        auth={"token_secret": SECRET},
        web={"allow_hosts": [f"127.0.0.1:{pages.port}"], "automation_deadline_seconds": 30},
        events={"poll_interval_seconds": 0.1, "egress_allow_cidrs": "127.0.0.0/8"},
        memory={"extraction": "auto", "agent_memory": False},
        agent={"chat_rate_limit_per_minute": 0, "heartbeat_seconds": 0.3},
    )
    assert not all_settings.services.model_url
    with serve_asgi(create_app(all_settings, "all", database_url=db_url)) as url:
        yield url


def new_user(db_url: str, settings: Settings) -> tuple[str, str]:
    """(user, key) of a fresh user with 100 credits (the operator's way: the service, not SQL)."""
    user = f"all-{uuid.uuid4().hex[:8]}"
    key = create_key(db_url, settings, user, "write")

    async def grant() -> None:
        db = Database(db_url, settings)
        await db.open()
        try:
            async with db.transaction() as conn:
                await credits.credit(conn, user, Decimal(100), kind="grant", description="test grant")
        finally:
            await db.close()

    anyio.run(grant)
    return user, key


async def a_new_user(db_url: str, settings: Settings) -> tuple[str, str]:
    return await anyio.to_thread.run_sync(new_user, db_url, settings)


async def a_key(db_url: str, settings: Settings, user: str) -> str:
    return await anyio.to_thread.run_sync(create_key, db_url, settings, user, "write")


def asked(fake: FakeOpenAI, text: str) -> bool:
    return any(text in str(r.body.get("messages")) for r in fake.requests_for("fake", "/v1/chat/completions"))


@pytest.mark.anyio
async def test_a_knowledge_answer_is_written_by_the_in_process_model(
    node: str, settings: Settings, db_url: str, fake: FakeOpenAI
) -> None:
    _, key = await a_new_user(db_url, settings)
    await call_tool(node, key, "store_knowledge", {"text": "The office cat is named Miso and sleeps all day."})
    fake.script("fake", Reply(text="The cat is Miso [1]."))
    answer = await call_tool(node, key, "generate_rag_response", {"query": "What is the office cat called?"})
    assert answer["method"] == "model" and answer["answer"] == "The cat is Miso [1]."
    assert answer["citations"][0]["n"] == 1 and asked(fake, "Miso")


@pytest.mark.anyio
async def test_memory_extraction_asks_the_in_process_model(
    node: str, settings: Settings, db_url: str, fake: FakeOpenAI
) -> None:
    user, key = await a_new_user(db_url, settings)
    await call_tool(node, key, "store_factual_memory", {"dialog_content": "My sister's name is Lena."})
    assert asked(fake, "Lena")
    # Billed to the user on the model node, like any call through it.
    rows = await anyio.to_thread.run_sync(
        lambda: wait_for(
            lambda: sql(db_url, "SELECT provider FROM user_usage_records WHERE user_id = %s", (user,)) or None
        )
    )
    assert {r["provider"] for r in rows} == {"local"}


@pytest.mark.anyio
async def test_crawl_analysis_asks_the_in_process_model(
    node: str, settings: Settings, db_url: str, fake: FakeOpenAI, pages: PageServer
) -> None:
    _, key = await a_new_user(db_url, settings)
    fake.script("fake", Reply(text="A welcome page."))
    result = await call_tool(node, key, "web_crawl", {"url": pages.url + "/", "analysis_request": "What is it?"})
    assert "A welcome page." in str(result) and asked(fake, "Welcome")


@pytest.mark.anyio
async def test_web_automation_plans_its_steps_on_the_in_process_model(
    node: str, settings: Settings, db_url: str, fake: FakeOpenAI, pages: PageServer
) -> None:
    user, agent_key = await a_new_user(db_url, settings)
    human_key = await a_key(db_url, settings, user)
    args = {"url": pages.url + "/", "task": "read the welcome"}
    async with mcp_client(node, agent_key) as client:
        first = await client.call_tool("web_automation", args)
        assert first.structured_content is not None
        assert first.structured_content["status"] == "authorization_requested"
        request_id = first.structured_content["data"]["id"]
        async with httpx.AsyncClient(base_url=node, timeout=10) as http:
            approved = await http.post(
                f"/api/v1/authorizations/{request_id}/approve", headers={"Authorization": f"Bearer {human_key}"}
            )
        assert approved.status_code == 200, approved.text
        fake.script("fake", Reply(tool_calls=[call("done", {"summary": "Read it."})]))
        result = await client.call_tool("web_automation", args)
    assert not result.is_error and result.structured_content is not None, result
    assert result.structured_content["data"]["outcome"] == "done"
    assert fake.count("fake", "/v1/chat/completions") == 1


def test_a_scheduled_task_fires_and_reaches_the_agent_with_no_worker_process(
    node: str, settings: Settings, db_url: str, fake: FakeOpenAI
) -> None:
    user, key = new_user(db_url, settings)
    body: dict[str, Any] = {
        "task_type": "schedule",
        "name": "stretch",
        "config": {"interval_minutes": 60, "message": "Time to stretch"},
    }
    made = httpx.post(node + "/api/v1/tasks", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=10)
    assert made.status_code == 201, made.text

    def processed() -> list[dict[str, Any]] | None:
        rows = sql(
            db_url,
            "SELECT status, agent_response FROM events WHERE user_id = %s AND event_type = 'scheduled_trigger'",
            (user,),
        )
        return rows if rows and rows[0]["status"] == "processed" else None

    rows = wait_for(processed, timeout=60)
    assert "Time to stretch" in str(rows[0]["agent_response"]) and asked(fake, "Time to stretch")
