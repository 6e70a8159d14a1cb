"""A5.43: the per-user chat budget. Over it, `/api/chat` answers 429 before any provider call (no spend).

An agent-role node with `chat_rate_limit_per_minute: 2`, its model node being the scripted fake provider and its
MCP node a real mcp-role app, all on loopback.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest

from isa.app import create_app
from isa.core.settings import ServicesSettings, Settings
from tests.support.agent import agent_settings, chat, new_user
from tests.support.fake_openai import FAKE_KEY_ENV, FakeOpenAI
from tests.support.mcp_servers import serve_asgi

LIMIT = 2


def _post(base_url: str, path: str, key: str, message: str) -> httpx.Response:
    return httpx.post(
        base_url + path, json={"message": message}, headers={"Authorization": f"Bearer {key}"}, timeout=30
    )


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    os.environ[FAKE_KEY_ENV] = "sk-fake"
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(scope="module")
def agent_url(settings: Settings, db_url: str, fake: FakeOpenAI) -> Iterator[str]:
    base = agent_settings(settings, fake, chat_rate_limit_per_minute=LIMIT)
    with serve_asgi(create_app(base, "mcp", database_url=db_url)) as mcp_url:
        services = ServicesSettings(model_url=fake.url, mcp_url=mcp_url)
        agent = create_app(base.model_copy(update={"services": services}), "agent", database_url=db_url)
        with serve_asgi(agent) as url:
            yield url


def test_a5_43_the_third_chat_in_a_minute_is_429_with_retry_after_and_never_reaches_the_provider(
    agent_url: str, fake: FakeOpenAI, settings: Settings, db_url: str
) -> None:
    fake.reset()
    _, alice = new_user(db_url, settings)
    _, bob = new_user(db_url, settings)

    for n in range(LIMIT):
        allowed = chat(agent_url, alice, {"message": f"hello {n}"})
        assert allowed.status == 200 and allowed.done and allowed.error_code is None, allowed.body
    spent = fake.count()
    assert spent >= LIMIT  # the allowed chats did call the provider, so a blocked one would show up here

    blocked = _post(agent_url, "/api/chat", alice, "one too many")
    assert blocked.status_code == 429, blocked.text
    assert blocked.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(blocked.headers["retry-after"]) <= 60
    assert "text/event-stream" not in blocked.headers.get("content-type", "")  # refused before a stream opened
    # The non-streaming entry point draws on the same budget.
    again = _post(agent_url, "/api/chat/message", alice, "still too many")
    assert again.status_code == 429 and again.json()["error"]["code"] == "rate_limited"
    assert "retry-after" in again.headers
    assert fake.count() == spent  # no provider request for either: no spend
    assert not any("too many" in str(r.body) for r in fake.requests)

    # Another user in the same minute has a budget of their own.
    other = chat(agent_url, bob, {"message": "hello from bob"})
    assert other.status == 200 and other.done and other.error_code is None, other.body
    assert fake.count() > spent
