"""A5: user B can't read, search or delete user A's memories or knowledge through any memory tool or resource."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import anyio
import pytest
from mcp.shared.exceptions import MCPError

from isa.core.settings import Settings
from tests.support.mcp_servers import sql
from tests.support.memory import MemoryKeys, ToolFailed, call, read

pytestmark = pytest.mark.anyio
SECRET = "Remember that my bank PIN is 4711."


@pytest.fixture(scope="module")
def keys(settings: Settings, db_url: str) -> MemoryKeys:
    from tests.support.memory import mkeys

    return mkeys.__wrapped__(settings, db_url)  # type: ignore[attr-defined, no-any-return]


@pytest.fixture(scope="module")
def node(settings: Settings, db_url: str, keys: MemoryKeys) -> Iterator[str]:
    from tests.support.mcp_servers import serve_isa

    with serve_isa(settings, db_url) as url:
        yield url


@pytest.fixture(scope="module")
def alice_data(node: str, keys: MemoryKeys, db_url: str) -> dict[str, str]:
    """Alice's fact, concept, working memory, session and knowledge document."""

    async def main() -> dict[str, str]:
        fact = await call(node, keys.alice, "store_factual_memory", {"dialog_content": SECRET})
        await call(
            node,
            keys.alice,
            "store_semantic_memory",
            {"dialog_content": "Vault is a secret store.", "concept_category": "security"},
        )
        await call(node, keys.alice, "store_working_memory", {"dialog_content": "Transferring the PIN to the new card"})
        doc = await call(
            node, keys.alice, "add_document", {"document": "Alice's PIN 4711 opens the vault. " * 20, "chunk_size": 200}
        )
        return {"fact": fact["stored"][0]["id"], "doc_item": doc["ids"][0], "document_id": doc["document_id"]}

    data = anyio.run(main)
    session_id = str(uuid.uuid4())
    sql(db_url, "INSERT INTO sessions (id, user_id, title) VALUES (%s, 'mem-alice', 'private')", (session_id,))
    return {**data, "session": session_id}


async def test_a5_user_b_cannot_find_user_a_memories_by_search_or_listing(
    node: str, keys: MemoryKeys, alice_data: dict[str, str]
) -> None:
    found = await call(node, keys.bob, "search_memories", {"query": "bank PIN", "top_k": 100})
    assert found["results"] == []
    assert (await call(node, keys.bob, "search_facts_by_subject", {"subject": "user"}))["facts"] == []
    assert (await call(node, keys.bob, "search_facts_by_type", {"fact_type": "personal_info"}))["facts"] == []
    assert (await call(node, keys.bob, "search_concepts_by_category", {"category": "security"}))["concepts"] == []
    assert (await call(node, keys.bob, "get_active_working_memories"))["working_memories"] == []
    assert (await call(node, keys.bob, "get_memory_statistics"))["total_memories"] == 0
    # A user_id argument is not a way in: the owner is the token's user.
    spoofed = await call(node, keys.bob, "search_memories", {"query": "bank PIN", "user_id": "mem-alice"})
    assert spoofed["results"] == []
    mine = await call(node, keys.alice, "search_memories", {"query": "bank PIN"})
    assert mine["results"][0]["object_value"] == "4711"  # the data is there: the test above could fail


async def test_a5_user_b_cannot_read_or_write_user_a_sessions(
    node: str, keys: MemoryKeys, alice_data: dict[str, str], db_url: str
) -> None:
    session = alice_data["session"]
    with pytest.raises(ToolFailed, match="no session"):
        await call(node, keys.bob, "get_session_context", {"session_id": session})
    with pytest.raises(ToolFailed, match="no session"):
        await call(node, keys.bob, "store_session_message", {"session_id": session, "message_content": "injected"})
    assert sql(db_url, "SELECT count(*) AS n FROM session_messages WHERE session_id = %s", (session,))[0]["n"] == 0


async def test_a5_user_b_cannot_read_user_a_memories_through_resources(
    node: str, keys: MemoryKeys, alice_data: dict[str, str]
) -> None:
    for memory_type in ("factual", "semantic", "working"):
        assert await read(node, keys.bob, f"memory://type/{memory_type}") == []
    assert await read(node, keys.bob, "memory://search/PIN") == []
    assert await read(node, keys.bob, "memory://sessions/50") == []
    assert (await read(node, keys.bob, "memory://statistics/all"))["total_memories"] == 0
    with pytest.raises(MCPError, match="no session"):
        await read(node, keys.bob, f"memory://session/{alice_data['session']}")
    assert await read(node, keys.alice, "memory://sessions/50") != []


async def test_a5_user_b_cannot_search_read_or_delete_user_a_knowledge(
    node: str, keys: MemoryKeys, alice_data: dict[str, str], db_url: str
) -> None:
    for mode in ("hybrid", "dense", "lexical"):
        assert (await call(node, keys.bob, "search_knowledge", {"query": "PIN vault", "mode": mode}))["results"] == []
    assert (await call(node, keys.bob, "retrieve_context", {"query": "PIN vault"}))["sources"] == []
    answer = await call(node, keys.bob, "generate_rag_response", {"query": "What opens the vault?"})
    assert answer["citations"] == [] and "4711" not in answer["answer"]
    assert (await call(node, keys.bob, "list_user_knowledge"))["total"] == 0
    item = alice_data["doc_item"]
    missing = str(uuid.uuid4())
    for tool in ("get_knowledge_item", "delete_knowledge_item"):
        with pytest.raises(ToolFailed) as theirs:
            await call(node, keys.bob, tool, {"item_id": item})
        with pytest.raises(ToolFailed) as nobody:
            await call(node, keys.bob, tool, {"item_id": missing})
        # Same answer for "someone else's" and "doesn't exist": existence is not revealed.
        assert (
            str(theirs.value).replace(item, "X").split('"timestamp"')[0]
            == str(nobody.value).replace(missing, "X").split('"timestamp"')[0]
        )
    rows = sql(db_url, "SELECT count(*) AS n FROM user_knowledge WHERE document_id = %s", (alice_data["document_id"],))
    assert rows[0]["n"] > 0
    assert (await call(node, keys.alice, "search_knowledge", {"query": "PIN vault"}))["results"]


async def test_a5_a_read_only_key_cannot_store_memories_or_knowledge(node: str, keys: MemoryKeys) -> None:
    with pytest.raises(ToolFailed):
        await call(node, keys.reader, "store_factual_memory", {"dialog_content": "my name is Eve"})
    with pytest.raises(ToolFailed):
        await call(node, keys.reader, "store_knowledge", {"text": "nope"})
