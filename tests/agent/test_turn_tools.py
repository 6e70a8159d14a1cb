"""The tools a chat turn hands the model: only ones the user may run, none for a message about nothing."""

from __future__ import annotations

from isa.agent.settings import AgentSettings, load
from isa.core.settings import Settings
from tests.support.agent import FAKE_MODEL, chat, new_user
from tests.support.fake_openai import FakeOpenAI, Reply


def offered(fake: FakeOpenAI) -> list[str]:
    body = fake.requests_for(FAKE_MODEL)[0].body
    return [t["function"]["name"] for t in body.get("tools", [])]


def test_an_admin_asking_for_server_metrics_is_offered_no_admin_tool_in_a_chat_turn(
    node: str, fake: FakeOpenAI, all_settings: Settings, db_url: str
) -> None:
    # The agent acts with a token capped to read/write, so even an admin's turn never carries admin tools.
    _, key = new_user(db_url, all_settings, scope="admin")
    fake.script(FAKE_MODEL, Reply(text="I can't show server metrics here."))
    result = chat(node, key, {"message": "what time is it? and show me the server metrics and the audit log"})
    assert result.status == 200 and result.done
    tools = offered(fake)
    assert "get_current_time" in tools
    assert not [t for t in tools if t.startswith("admin_")], tools
    context = next(e["content"]["context"] for e in result.of("graph_update") if "context" in e["content"])
    assert context["tools"] == tools


def test_a_message_about_nothing_gets_only_the_core_tools(
    node: str, fake: FakeOpenAI, all_settings: Settings, db_url: str
) -> None:
    _, key = new_user(db_url, all_settings)
    fake.script(FAKE_MODEL, Reply(text="Could you say that again?"))
    result = chat(node, key, {"message": "qwzx plimf vorbtang"})
    assert result.status == 200 and result.done
    assert sorted(offered(fake)) == sorted(all_settings.section("agent", AgentSettings).core_tools)


def test_the_agents_floor_follows_the_catalogs_encoder_unless_set(all_settings: Settings) -> None:
    def agent_floor(catalog: dict[str, object], agent: dict[str, object] | None = None) -> float | None:
        raw = {**all_settings.raw, "catalog": catalog, "agent": agent or {}}
        return load(all_settings.model_copy(update={"raw": raw})).discover_min_similarity

    assert agent_floor({}) == 0.22  # the default tuned encoder's floor 0.24, less the margin
    assert agent_floor({"encoder": "int8"}) == 0.18  # stock: 0.2 less the margin, the value chosen before
    assert agent_floor({"encoder": "int8", "min_similarity": "0.3"}) == 0.28  # a deployment's floor, from the env
    assert agent_floor({}, {"discover_min_similarity": 0.1}) == 0.1  # set: held whatever the encoder
