"""POST /api/v1/memories/search: the search_memories tool's service over HTTP, owned by the principal."""

from __future__ import annotations

import httpx
import pytest

from tests.support.memory import MemoryKeys, call

pytestmark = pytest.mark.anyio


def _search(node: str, key: str | None, body: object) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(node + "/api/v1/memories/search", json=body, headers=headers, timeout=30)


async def test_the_route_finds_the_callers_memories_and_never_another_users(node: str, mkeys: MemoryKeys) -> None:
    await call(node, mkeys.alice, "store_factual_memory", {"dialog_content": "My dog's name is Biscuit."})
    mine = _search(node, mkeys.alice, {"query": "what is my dog called", "top_k": 3})
    assert mine.status_code == 200, mine.text
    assert any("Biscuit" in str(hit) for hit in mine.json()["results"])
    # The same words from another user find none of alice's rows; a user_id in the body is refused, not obeyed.
    theirs = _search(node, mkeys.bob, {"query": "what is my dog called", "top_k": 3})
    assert theirs.status_code == 200 and not any("Biscuit" in str(hit) for hit in theirs.json()["results"])
    spoofed = _search(node, mkeys.bob, {"query": "dog", "user_id": "alice"})
    assert spoofed.status_code == 422 and spoofed.json()["error"]["code"] == "invalid_request"


async def test_the_route_needs_a_principal_and_a_valid_body(node: str, mkeys: MemoryKeys) -> None:
    assert _search(node, None, {"query": "dog"}).status_code == 401
    for body in ({"query": ""}, {"query": "dog", "top_k": 0}, {"query": "dog", "memory_types": ["dreams"]}):
        response = _search(node, mkeys.alice, body)
        assert response.status_code == 422 and response.json()["error"]["code"] == "invalid_request", body
