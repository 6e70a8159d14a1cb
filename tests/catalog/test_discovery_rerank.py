"""The optional LLM step of discovery: the model node reorders /discover's tool candidates, as the caller.

The mcp node's `services.model_url` points at the scripted OpenAI-wire fake, so the request isa.llm.client
sends (with a short isa token minted for the caller) is answered by the script.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator

import httpx
import jwt
import pytest

from isa.app import create_app
from isa.core.settings import ServicesSettings, Settings
from tests.support.auth import create_key
from tests.support.fake_openai import FakeOpenAI, Reply
from tests.support.mcp_servers import serve_asgi
from tests.support.procs import wait_for

MODEL = "discovery-rerank-model"
SECRET = "discovery-rerank-test-secret-0123456789abcdef"
QUERY = "remember a fact about me for later"
CANDIDATES = 8


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(scope="module")
def node(settings: Settings, db_url: str, fake: FakeOpenAI) -> Iterator[tuple[str, str]]:
    raw = copy.deepcopy(settings.raw)
    raw.setdefault("auth", {})["token_secret"] = SECRET
    raw["catalog"] = {**raw.get("catalog", {}), "rerank": True, "rerank_model": MODEL, "rerank_candidates": CANDIDATES}
    on = settings.model_copy(update={"raw": raw, "services": ServicesSettings(model_url=fake.url)})
    key = create_key(db_url, settings, "discovery-rerank-user", "read")
    with serve_asgi(create_app(on, "mcp", database_url=db_url)) as url:
        # The node syncs its own tools into the catalog in the background after start-up.
        wait_for(lambda: _catalog_size(url, key) >= 20, timeout=60)
        yield url, key


def _catalog_size(url: str, key: str) -> int:
    response = httpx.get(url + "/capabilities", headers={"X-API-Key": key}, timeout=30)
    return int(response.json()["capabilities"]["tools"]["count"]) if response.status_code == 200 else 0


def _tools(url: str, key: str, limit: int) -> list[str]:
    # No relevance floor here: these tests are about the rerank step and need all of its candidates.
    body = {"request": QUERY, "max_results": {"tools": limit, "prompts": 0, "resources": 0}, "min_similarity": 0}
    response = httpx.post(url + "/discover", json=body, headers={"X-API-Key": key}, timeout=30)
    assert response.status_code == 200, response.text
    return [t["name"] for t in response.json()["capabilities"]["tools"]]


def test_the_models_order_decides_and_can_promote_a_candidate_past_the_limit(
    node: tuple[str, str], fake: FakeOpenAI
) -> None:
    url, key = node
    fake.script(MODEL, Reply.error(500))
    hybrid = _tools(url, key, CANDIDATES)  # a failing model leaves the hybrid order: all candidates, as ranked
    assert len(hybrid) == CANDIDATES

    fake.script(MODEL, Reply(text=json.dumps({"ranking": [8, 2, 5]})))
    top3 = _tools(url, key, 3)
    assert top3 == [hybrid[7], hybrid[1], hybrid[4]]

    request = fake.requests_for(MODEL)[-1]
    prompt = request.body["messages"][-1]["content"]
    assert QUERY in prompt
    assert re.findall(r"^\[(\d+)\] ([^:]+):", prompt, re.M) == [(str(i), n) for i, n in enumerate(hybrid, 1)]
    assert request.body["temperature"] == 0 and 40 <= request.body["max_tokens"] <= 120  # a ranking of 8, no essay
    # The model node is called as the caller with a minted isa token, never with the caller's API key.
    token = request.headers["authorization"].removeprefix("Bearer ")
    assert key not in request.headers.values()
    assert jwt.decode(token, SECRET, algorithms=["HS256"], options={"verify_aud": False})["sub"] == (
        "discovery-rerank-user"
    )


def test_an_answer_that_is_not_a_ranking_keeps_the_hybrid_order(node: tuple[str, str], fake: FakeOpenAI) -> None:
    url, key = node
    fake.script(MODEL, Reply.error(500))
    hybrid = _tools(url, key, 4)
    calls = fake.count(MODEL)
    fake.script(MODEL, Reply(text="The second tool looks best to me."))
    assert _tools(url, key, 4) == hybrid
    assert fake.count(MODEL) == calls + 1
