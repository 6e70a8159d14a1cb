"""Knowledge (RAG) tools over real MCP: chunking, hybrid search, context, extractive answers, list/get/delete."""

from __future__ import annotations

import itertools

import anyio
import pytest

from isa.knowledge.documents import html_text
from isa.knowledge.service import chunk_text, reciprocal_rank_fusion
from tests.knowledge.pdfs import upload
from tests.support.mcp_servers import sql
from tests.support.memory import MemoryKeys, ToolFailed, call

pytestmark = pytest.mark.anyio

GUIDE = (
    "The Zephyr 300 coffee machine needs descaling every 40 brews. Use the blue cartridge for descaling. "
    "The water tank holds 1.8 litres and must be rinsed weekly. "
    "To reset the machine, hold the power button for ten seconds until the light blinks twice. "
    "The warranty covers the pump for three years but not the glass carafe. "
    "Customer support answers calls on weekdays between 9 and 17 o'clock. "
) * 2


def test_chunks_overlap_and_cover_the_whole_text() -> None:
    text = " ".join(f"word{i}" for i in range(400))
    chunks = chunk_text(text, 200, 50)
    assert len(chunks) > 1 and all(len(c) <= 200 for c in chunks)
    for a, b in itertools.pairwise(chunks):
        assert a.split()[-1] in b.split()  # consecutive chunks share words
    words = {w for c in chunks for w in c.split()}
    assert words == set(text.split())


def test_reciprocal_rank_fusion_rewards_rows_both_arms_rank_high() -> None:
    rows = [
        {"id": "a", "dense": 0.9, "lex": 0.0},  # dense 1st, no lexical match
        {"id": "b", "dense": 0.8, "lex": 0.5},  # dense 2nd, lexical 1st
        {"id": "c", "dense": 0.1, "lex": 0.4},  # dense 3rd, lexical 2nd
    ]
    fused = reciprocal_rank_fusion(rows, k=1.0)
    assert [r["id"] for r in fused] == ["b", "c", "a"]  # 1/3+1/2, 1/4+1/3, 1/2
    assert fused[0]["score"] == pytest.approx(1 / 3 + 1 / 2)


@pytest.fixture(scope="module")
def document(node: str, mkeys: MemoryKeys) -> dict[str, object]:
    out: dict[str, object] = anyio.run(
        call,
        node,
        mkeys.alice,
        "add_document",
        {"document": GUIDE, "chunk_size": 200, "overlap": 40, "source_name": "zephyr.txt"},
    )
    assert int(out["chunks"]) >= 4  # type: ignore[call-overload]
    return out


async def test_search_finds_the_chunk_that_answers_and_all_modes_work(
    node: str, mkeys: MemoryKeys, document: dict[str, object]
) -> None:
    for mode in ("hybrid", "dense", "lexical"):
        found = await call(
            node, mkeys.alice, "search_knowledge", {"query": "how do I reset the machine", "mode": mode, "top_k": 3}
        )
        assert found["results"], mode
        assert "To reset the machine" in found["results"][0]["content"], mode
        assert found["results"][0]["document_id"] == document["document_id"]


async def test_rag_answer_cites_the_chunk_it_quotes(node: str, mkeys: MemoryKeys, document: dict[str, object]) -> None:
    out = await call(
        node, mkeys.alice, "generate_rag_response", {"query": "How often does the machine need descaling?"}
    )
    assert out["method"] == "extractive" and "40 brews" in out["answer"]
    cited = {c["n"]: c for c in out["citations"]}
    assert "[1]" in out["answer"] or "[2]" in out["answer"]
    assert all(c["document_id"] == document["document_id"] for c in cited.values())
    context = await call(node, mkeys.alice, "retrieve_context", {"query": "warranty pump", "top_k": 2})
    assert context["context"].startswith("[1] ") and "warranty" in context["context"]


async def test_store_list_get_and_delete_items(
    node: str, mkeys: MemoryKeys, db_url: str, document: dict[str, object]
) -> None:
    stored = await call(
        node,
        mkeys.alice,
        "store_knowledge",
        {"text": "The office wifi password rotates monthly.", "metadata": {"tag": "it"}},
    )
    again = await call(node, mkeys.alice, "store_knowledge", {"text": "The office wifi password rotates monthly."})
    assert stored["action"] == "created" and again == {"id": stored["id"], "action": "exists"}
    item = await call(node, mkeys.alice, "get_knowledge_item", {"item_id": stored["id"]})
    assert item["metadata"] == {"tag": "it"}
    listed = await call(node, mkeys.alice, "list_user_knowledge", {"limit": 200})
    assert listed["total"] == document["chunks"] + 1  # type: ignore[operator]
    status = await call(node, mkeys.alice, "get_rag_service_status")
    assert status["documents"] == 1 and status["items"] == listed["total"]
    first_chunk = document["ids"][0]  # type: ignore[index]
    deleted = await call(node, mkeys.alice, "delete_knowledge_item", {"item_id": first_chunk})
    assert deleted["deleted"] == document["chunks"]
    left = sql(db_url, "SELECT count(*) AS n FROM user_knowledge WHERE user_id = 'mem-alice'")
    assert left[0]["n"] == 1
    with pytest.raises(ToolFailed, match="no knowledge item"):
        await call(node, mkeys.alice, "get_knowledge_item", {"item_id": first_chunk})
    with pytest.raises(ToolFailed, match="no knowledge item"):
        await call(node, mkeys.alice, "get_knowledge_item", {"item_id": "not-a-uuid"})


async def test_a_document_can_come_from_a_markdown_file_in_the_users_storage(node: str, mkeys: MemoryKeys) -> None:
    page = b"# Boat\n\nThe sailboat *Nimbus* is moored at pier 7.\n"
    file_id = upload(node, "mem-alice", mkeys.alice, "boat.md", page, "text/plain")
    out = await call(node, mkeys.alice, "add_document", {"file_id": file_id})
    assert out["source_document"] == "boat.md" and out["chunks"] == 1
    found = await call(node, mkeys.alice, "search_knowledge", {"query": "where is the sailboat moored", "top_k": 1})
    assert "pier 7" in found["results"][0]["content"]
    assert found["results"][0]["document_id"] == out["document_id"]
    with pytest.raises(ToolFailed, match="no file"):  # someone else's file is just "no file"
        await call(node, mkeys.bob, "add_document", {"file_id": file_id})
    with pytest.raises(ToolFailed, match="either document"):
        await call(node, mkeys.alice, "add_document", {})


def test_html_text_drops_tags_scripts_and_styles() -> None:
    markup = "<html><style>p{}</style><script>x()</script><h1>Boat</h1><p>At pier&nbsp;7.</p></html>"
    assert " ".join(html_text(markup).split()) == "Boat At pier 7."
