"""A5 items for the agent node: no token passthrough (12), an endless agent loop is stopped (46), and another
user's session is a 404. The agent role runs alone here, its upstreams on loopback: the model node is the fake
OpenAI-wire provider itself, the MCP node a real mcp-role app behind a recorder of request headers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import jwt
import pytest

from isa.app import create_app
from isa.core.settings import ServicesSettings, Settings
from tests.support.agent import AGENT_TOKEN_SECRET, agent_settings, chat, new_user
from tests.support.fake_openai import FAKE_KEY_ENV, FakeOpenAI, Reply, call
from tests.support.mcp_servers import serve_asgi

MODEL = "default"  # the agent asks for "default"; here the fake provider answers it directly


class HeaderRecorder:
    """ASGI wrapper: remembers the headers of every request, then passes it on untouched."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.seen: list[dict[str, str]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.seen.append({k.decode(): v.decode() for k, v in scope["headers"]} | {":path": scope["path"]})
        await self.app(scope, receive, send)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    os.environ[FAKE_KEY_ENV] = "sk-fake"
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(scope="module")
def nodes(settings: Settings, db_url: str, fake: FakeOpenAI) -> Iterator[tuple[str, HeaderRecorder]]:
    base = agent_settings(settings, fake, max_iterations=5)
    recorder = HeaderRecorder(create_app(base, "mcp", database_url=db_url))
    with serve_asgi(recorder) as mcp_url:
        services = ServicesSettings(model_url=fake.url, mcp_url=mcp_url)
        agent = create_app(base.model_copy(update={"services": services}), "agent", database_url=db_url)
        with serve_asgi(agent) as agent_url:
            yield agent_url, recorder


def _all_header_values(fake: FakeOpenAI, recorder: HeaderRecorder) -> list[str]:
    values = [v for r in fake.requests for v in r.headers.values()]
    return values + [v for headers in recorder.seen for v in headers.values()]


def test_a5_12_the_callers_bearer_never_reaches_the_model_or_mcp_node(
    nodes: tuple[str, HeaderRecorder], fake: FakeOpenAI, settings: Settings, db_url: str
) -> None:
    agent_url, recorder = nodes
    fake.reset()
    recorder.seen.clear()
    user, key = new_user(db_url, settings)
    fake.script(MODEL, Reply(tool_calls=[call("get_current_time", {"timezone": "UTC"})]), Reply(text="It is noon."))
    result = chat(agent_url, key, {"message": "what time is it?"})
    assert result.error_code is None and result.text == "It is noon."

    assert fake.count(MODEL) == 2 and any(h[":path"] == "/mcp" for h in recorder.seen)
    values = _all_header_values(fake, recorder)
    assert not any(key in v or key[:12] in v for v in values), "the caller's API key was forwarded upstream"
    # What they got instead: a short isa token for this user, without admin and without the key's id.
    bearers = {v.split(" ", 1)[1] for v in values if v.startswith("Bearer ")}
    assert bearers
    for token in bearers:
        claims = jwt.decode(token, AGENT_TOKEN_SECRET, algorithms=["HS256"], audience="isa", issuer="isa")
        assert claims["sub"] == user and "admin" not in claims["scope"].split() and "key_id" not in claims
        assert claims["exp"] - claims["iat"] <= 60 * 60


def test_a5_46_an_agent_loop_that_never_ends_stops_at_max_iterations_with_an_error_event(
    nodes: tuple[str, HeaderRecorder], fake: FakeOpenAI, settings: Settings, db_url: str
) -> None:
    agent_url, _ = nodes
    fake.reset()
    _, key = new_user(db_url, settings)
    fake.script(MODEL, Reply(tool_calls=[call("get_current_time", {})], times=100))
    result = chat(agent_url, key, {"message": "keep going forever"})
    assert result.done and result.error_code == "max_iterations"
    assert fake.count(MODEL) == 5


def test_a5_another_users_session_is_not_found_for_chat_resume_and_sessions(
    nodes: tuple[str, HeaderRecorder], fake: FakeOpenAI, settings: Settings, db_url: str
) -> None:
    import httpx

    agent_url, _ = nodes
    fake.reset()
    _, alice = new_user(db_url, settings)
    _, bob = new_user(db_url, settings)
    fake.script(MODEL, Reply(tool_calls=[call("ask_human", {"question": "PIN?"})]))
    session_id = chat(agent_url, alice, {"message": "private"}).session_id
    assert chat(agent_url, bob, {"message": "hi", "session_id": session_id}).status == 404
    assert (
        chat(agent_url, bob, {"session_id": session_id, "resume_value": "1234"}, path="/api/chat/resume").status == 404
    )
    got = httpx.get(f"{agent_url}/api/sessions/{session_id}", headers={"Authorization": f"Bearer {bob}"}, timeout=10)
    assert got.status_code == 404 and got.json()["error"]["code"] == "session_not_found"
