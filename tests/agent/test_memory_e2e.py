"""Memory through the agent, end to end: three `isa serve` processes (mcp, model, agent) and the scripted fake provider.

The mcp node extracts memories through the model node (extraction model "fast" -> fake "gpt-4o"), so one
deployment covers LLM extraction, storage, recall in a later session, and per-user isolation of what is recalled.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from isa.agent.memory import McpMemory
from isa.agent.settings import AgentMemorySettings, AgentSettings
from isa.agent.upstream import Upstreams
from isa.auth.settings import auth_settings
from isa.core.settings import Settings
from tests.support.agent import AGENT_TOKEN_SECRET, FAKE_MODEL, chat, new_user
from tests.support.fake_openai import FAKE_KEY_ENV, FakeOpenAI, Recorded, Reply, model_section
from tests.support.mcp_servers import settings_with
from tests.support.procs import IsaProcess, free_port, isa_serve
from tests.support.users import sql

EXTRACTOR = "gpt-4o"  # the fake model behind the "fast" alias, used by the mcp node for extraction
LENA_FACT = {
    "facts": [
        {
            "subject": "user",
            "predicate": "sister_name",
            "object": "Lena",
            "fact_type": "relationship",
            "statement": "The user's sister is named Lena.",
        }
    ]
}


@pytest.fixture(scope="module")
def deployment(fake_llm: FakeOpenAI, db_url: str, data_dir: Path) -> Iterator[IsaProcess]:
    os.environ[FAKE_KEY_ENV] = "sk-fake-provider-key"
    common = {
        "ISA_DATABASE__URL": db_url,
        "ISA_DATABASE__AUTO_MIGRATE": "false",
        "ISA_AUTH__TOKEN_SECRET": AGENT_TOKEN_SECRET,
        "ISA_AGENT": "@json " + json.dumps({"chat_rate_limit_per_minute": 0, "core_tools": "ask_human"}),
    }
    model_port, mcp_port = free_port(), free_port()
    model_env = {**common, "ISA_MODEL": "@json " + json.dumps(model_section(fake_llm, fallbacks={}, num_retries=0))}
    mcp_env = {
        **common,
        "ISA_SERVICES__MODEL_URL": f"http://127.0.0.1:{model_port}",
        "ISA_MEMORY__EXTRACTION": "llm",
        "ISA_MEMORY__EXTRACTION_MODEL": "fast",
    }
    agent_env = {
        **common,
        "ISA_SERVICES__MODEL_URL": f"http://127.0.0.1:{model_port}",
        "ISA_SERVICES__MCP_URL": f"http://127.0.0.1:{mcp_port}",
    }
    # All three start at once; each is waited for (the agent is ready once the model node answers).
    with (
        isa_serve("model", data_dir, port=model_port, env=model_env) as model,
        isa_serve("mcp", data_dir, port=mcp_port, env=mcp_env) as mcp,
        isa_serve("agent", data_dir, env=agent_env) as agent,
    ):
        for proc in (model, mcp, agent):
            proc.wait_ready(120)
        yield agent


def _text_in(request: Recorded) -> str:
    """Everything the provider was shown in one chat request (all message contents)."""
    return "\n".join(str(m.get("content") or "") for m in request.body.get("messages", []))


def _ask(agent: IsaProcess, fake: FakeOpenAI, key: str, message: str, answer: str) -> tuple[Any, Recorded]:
    """One chat turn in a new session; the result and the agent's (first) request to the provider."""
    before = fake.count(FAKE_MODEL)
    fake.script(FAKE_MODEL, Reply(text=answer))
    result = chat(agent.url, key, {"message": message})
    assert result.error_code is None and result.done, result.events
    return result, fake.requests_for(FAKE_MODEL)[before]


def test_a_fact_told_in_one_session_is_recalled_in_a_new_session_for_that_user_only(
    deployment: IsaProcess, fake: FakeOpenAI, all_settings: Settings, db_url: str
) -> None:
    alice, alice_key = new_user(db_url, all_settings)
    _, bob_key = new_user(db_url, all_settings)
    fake.script(EXTRACTOR, Reply(text=json.dumps(LENA_FACT)))

    told, first_input = _ask(deployment, fake, alice_key, "remember that my sister's name is Lena", "Noted.")
    assert "[remembered" not in _text_in(first_input)  # nothing known yet
    assert told.of("memory_update")[0]["content"] == {"memories_stored": 1, "status": "stored"}
    # The mcp node extracted through the model node, with the dialog fenced as untrusted data.
    (extraction,) = fake.requests_for(EXTRACTOR)
    assert "<dialog>\nremember that my sister's name is Lena\n</dialog>" in _text_in(extraction)
    assert extraction.body["response_format"] == {"type": "json_object"}
    logged = sql(db_url, "SELECT extraction_method, memories_created, session_id::text FROM memory_extraction_logs"
                 " WHERE user_id = %s", alice)  # fmt: skip
    assert logged == [("llm", 1, told.session_id)]

    fake.script(EXTRACTOR, Reply(text='{"facts": []}'), Reply(text='{"facts": []}'))
    asked, second_input = _ask(deployment, fake, alice_key, "what's my sister's name?", "Your sister's name is Lena.")
    assert asked.session_id != told.session_id and asked.text == "Your sister's name is Lena."
    recalled = [
        m["content"] for m in second_input.body["messages"] if m["role"] == "system" and "[remembered" in m["content"]
    ]
    assert len(recalled) == 1 and "Lena" in recalled[0] and "sister name" in recalled[0]
    # A question states no fact: nothing new is stored.
    assert asked.of("memory_update")[0]["content"] == {"memories_stored": 0, "status": "nothing_new"}
    assert sql(db_url, "SELECT count(*) FROM factual_memories WHERE user_id = %s", alice) == [(1,)]

    _, bob_input = _ask(deployment, fake, bob_key, "what's my sister's name?", "I don't know.")
    assert "Lena" not in _text_in(bob_input) and "[remembered" not in _text_in(bob_input)


def test_memory_that_cannot_be_reached_never_fails_the_turn(settings: Settings) -> None:
    """recall gives nothing and store reports failure when the mcp node is down (the engine then goes on)."""
    dead = settings_with(settings, auth={"token_secret": AGENT_TOKEN_SECRET})
    services = dead.services.model_copy(update={"mcp_url": f"http://127.0.0.1:{free_port()}"})
    dead = dead.model_copy(update={"services": services})
    agent = AgentSettings(connect_timeout_seconds=1.0)
    upstreams = Upstreams(dead, agent, auth_settings(dead), "agent")
    memory = McpMemory(upstreams, AgentMemorySettings(memory_timeout_seconds=2.0))

    async def main() -> tuple[list[str], Any]:
        return await memory.recall("u-1", "what's my sister's name?"), await memory.store("u-1", "s", "hi", "hello")

    recalled, update = anyio.run(main)
    assert recalled == [] and update.event() == {"memories_stored": 0, "status": "failed"}
