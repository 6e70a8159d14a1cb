"""Optional reranking of search_knowledge / retrieve_context by the model node, against the scripted fake provider.

The mcp node's `services.model_url` points at the fake OpenAI-wire provider itself (as in test_a5_agent), so the
request isa.llm.client sends — with a short isa token for the user — is answered by the script.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator

import pytest

from isa.app import create_app
from isa.core.settings import ServicesSettings, Settings
from tests.support.auth import create_key
from tests.support.fake_openai import FakeOpenAI, Reply
from tests.support.mcp_servers import serve_asgi
from tests.support.memory import call

pytestmark = pytest.mark.anyio

MODEL = "rerank-test-model"
FACTS = [
    "The red kettle in the studio boils water in ninety seconds.",
    "Boiling water for tea should rest a minute before pouring on green leaves.",
    "The studio's water filter cartridge is replaced every two months.",
    "Mount Elbrus is the highest peak in Europe.",
]
QUERY = "how fast does the kettle boil water"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(scope="module")
def rerank_node(settings: Settings, db_url: str, fake: FakeOpenAI) -> Iterator[tuple[str, str]]:
    raw = copy.deepcopy(settings.raw)
    raw.setdefault("auth", {})["token_secret"] = "knowledge-rerank-test-secret-0123456789abcdef"
    raw["knowledge"] = {**raw.get("knowledge", {}), "rerank": True, "rerank_model": MODEL}
    on = settings.model_copy(update={"raw": raw, "services": ServicesSettings(model_url=fake.url)})
    key = create_key(db_url, settings, "rerank-user", "write")
    with serve_asgi(create_app(on, "mcp", database_url=db_url)) as url:
        yield url, key


async def _hybrid_order(url: str, key: str, fake: FakeOpenAI) -> list[str]:
    """The hybrid order, seen through a failing model (which must leave it untouched)."""
    fake.script(MODEL, Reply.error(500))
    out = await call(url, key, "search_knowledge", {"query": QUERY, "top_k": 4})
    assert out["ranking"].startswith("hybrid (rerank failed: the model node answered HTTP 500")
    return [r["content"] for r in out["results"]]


async def test_results_follow_the_models_ranking_and_fall_back_to_hybrid_when_it_fails(
    rerank_node: tuple[str, str], fake: FakeOpenAI
) -> None:
    url, key = rerank_node
    for text in FACTS:
        await call(url, key, "store_knowledge", {"text": text})
    fake.reset()
    hybrid = await _hybrid_order(url, key, fake)
    assert sorted(hybrid) == sorted(FACTS)

    # The model puts hybrid's 3rd first, then 4th, 1st; the one it leaves out keeps its place after them.
    fake.script(MODEL, Reply(text=json.dumps({"ranking": [3, 4, 1]})))
    out = await call(url, key, "search_knowledge", {"query": QUERY, "top_k": 4})
    assert out["ranking"] == "reranked"
    assert [r["content"] for r in out["results"]] == [hybrid[2], hybrid[3], hybrid[0], hybrid[1]]
    assert [r["hybrid_rank"] for r in out["results"]] == [3, 4, 1, 2]
    sent = fake.requests_for(MODEL)[-1]
    prompt = sent.body["messages"][-1]["content"]
    assert QUERY in prompt and all(f"[{i}] {text}" in prompt for i, text in enumerate(hybrid, 1))
    assert key not in sent.headers.get("authorization", "")  # a token minted for the user, not their API key

    # retrieve_context numbers its context in the model's order too.
    fake.script(MODEL, Reply(text="```json\n[2, 1]\n```"))
    context = await call(url, key, "retrieve_context", {"query": QUERY, "top_k": 2})
    assert context["ranking"] == "reranked"
    assert context["context"].startswith(f"[1] {hybrid[1]}\n\n[2] {hybrid[0]}")

    # An answer that is not a ranking, and an unreachable answer, both leave the hybrid order.
    fake.script(MODEL, Reply(text="Passage 4 looks best to me."))
    out = await call(url, key, "search_knowledge", {"query": QUERY, "top_k": 4})
    assert out["ranking"].startswith("hybrid (rerank failed: the model did not answer with a JSON ranking")
    assert [r["content"] for r in out["results"]] == hybrid
    assert await _hybrid_order(url, key, fake) == hybrid

    # The diagnostic modes are never reranked.
    calls = fake.count(MODEL)
    out = await call(url, key, "search_knowledge", {"query": QUERY, "top_k": 4, "mode": "dense"})
    assert out["ranking"] == "dense" and fake.count(MODEL) == calls
    status = await call(url, key, "get_rag_service_status")
    assert status["reranking"] == f"model node ({MODEL})"
