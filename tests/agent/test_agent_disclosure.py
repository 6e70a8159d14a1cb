"""The agent against an MCP node that lists only its meta-tools to a fresh session (mcp.disclosure = "meta"):
it selects its core tools (progressive disclosure), so the model is still offered them and can call them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from isa.agent.settings import AgentSettings
from isa.app import create_app
from isa.core.settings import Settings
from tests.support.agent import FAKE_MODEL, chat, new_user
from tests.support.fake_openai import FakeOpenAI, Reply
from tests.support.mcp_servers import serve_asgi, settings_with


@pytest.fixture(scope="module")
def meta_node(all_settings: Settings, db_url: str) -> Iterator[str]:
    settings = settings_with(all_settings, mcp={"disclosure": "meta", "default_tools": []})
    with serve_asgi(create_app(settings, "all", database_url=db_url)) as url:
        yield url


def test_a_turn_on_a_meta_only_node_still_offers_the_core_tools(
    meta_node: str, fake: FakeOpenAI, all_settings: Settings, db_url: str
) -> None:
    _, key = new_user(db_url, all_settings)
    fake.script(FAKE_MODEL, Reply(text="Could you say that again?"))
    result = chat(meta_node, key, {"message": "qwzx plimf vorbtang"})
    assert result.status == 200 and result.done
    offered = {t["function"]["name"]: t["function"] for t in fake.requests_for(FAKE_MODEL)[0].body.get("tools", [])}
    assert sorted(offered) == sorted(all_settings.section("agent", AgentSettings).core_tools)
    assert offered["create_execution_plan"]["parameters"]["properties"]  # the full schema, not a stub
