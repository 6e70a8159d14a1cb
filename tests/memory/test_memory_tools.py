"""The memory tools over real MCP: dedup, search across all of a user's memories, filters, expiry, sessions."""

from __future__ import annotations

import uuid

import pytest

from tests.support.mcp_servers import sql
from tests.support.memory import MemoryKeys, ToolFailed, call, read

pytestmark = pytest.mark.anyio


async def test_a_restated_fact_is_reinforced_and_a_changed_one_updated_never_copied(
    node: str, mkeys: MemoryKeys, db_url: str
) -> None:
    first = await call(node, mkeys.alice, "store_factual_memory", {"dialog_content": "My favourite colour is blue."})
    again = await call(node, mkeys.alice, "store_factual_memory", {"dialog_content": "my favourite colour is Blue"})
    changed = await call(
        node,
        mkeys.alice,
        "store_factual_memory",
        {"dialog_content": "My favourite colour is green", "importance_score": 0.9},
    )
    assert [r["action"] for r in (first["stored"][0], again["stored"][0], changed["stored"][0])] == [
        "created",
        "reinforced",
        "updated",
    ]
    assert first["stored"][0]["id"] == again["stored"][0]["id"] == changed["stored"][0]["id"]
    rows = sql(
        db_url,
        "SELECT object_value, importance_score, access_count FROM factual_memories"
        " WHERE user_id = 'mem-alice' AND predicate = 'favourite_colour'",
    )
    assert len(rows) == 1 and rows[0]["object_value"] == "green" and rows[0]["importance_score"] == pytest.approx(0.9)
    by_subject = await call(node, mkeys.alice, "search_facts_by_subject", {"subject": "user"})
    assert [f["object_value"] for f in by_subject["facts"] if f["predicate"] == "favourite_colour"] == ["green"]


async def test_search_finds_an_old_memory_behind_hundreds_of_newer_ones(
    node: str, mkeys: MemoryKeys, db_url: str
) -> None:
    await call(node, mkeys.alice, "store_factual_memory", {"dialog_content": "Remember that my sister's name is Lena."})
    filler = await call(node, mkeys.alice, "store_episodic_memory", {"dialog_content": "I repaired the bicycle chain."})
    # 300 newer memories (same vector as the filler, other text): the original ranked only "the first 100" rows.
    sql(
        db_url,
        "INSERT INTO episodic_memories (user_id, content, episode_title, embedding, embedding_model, created_at)"
        " SELECT user_id, content || ' #' || g, episode_title, embedding, embedding_model, now() + g * interval '1 s'"
        " FROM episodic_memories, generate_series(1, 300) g WHERE id = %s",
        (filler["id"],),
    )
    found = await call(node, mkeys.alice, "search_memories", {"query": "what's my sister's name?", "top_k": 3})
    assert found["results"][0]["object_value"] == "Lena"
    assert found["results"][0]["memory_type"] == "factual"


async def test_filters_by_type_subject_category_and_time_narrow_the_search(node: str, mkeys: MemoryKeys) -> None:
    await call(
        node,
        mkeys.alice,
        "store_semantic_memory",
        {
            "dialog_content": "Photosynthesis is the process plants use to turn light into sugar.",
            "concept_category": "biology",
        },
    )
    await call(
        node,
        mkeys.alice,
        "store_procedural_memory",
        {"dialog_content": "How to water plants: first check the soil, then pour slowly, finally drain the tray"},
    )
    query = {"query": "plants and light"}
    everything = await call(node, mkeys.alice, "search_memories", {**query, "top_k": 50})
    assert {"semantic", "procedural"} <= {r["memory_type"] for r in everything["results"]}
    only_proc = await call(node, mkeys.alice, "search_memories", {**query, "memory_types": ["procedural"]})
    assert {r["memory_type"] for r in only_proc["results"]} == {"procedural"}
    assert only_proc["results"][0]["steps"] == ["check the soil", "pour slowly", "drain the tray"]
    biology = await call(node, mkeys.alice, "search_memories", {**query, "category": "Biology"})
    assert [r["concept_name"] for r in biology["results"]] == ["Photosynthesis"]
    future = await call(node, mkeys.alice, "search_memories", {**query, "since": "2999-01-01T00:00:00Z"})
    assert future["results"] == []
    concepts = await call(node, mkeys.alice, "search_concepts_by_category", {"category": "biology"})
    assert [c["concept_name"] for c in concepts["concepts"]] == ["Photosynthesis"]
    personal = await call(node, mkeys.alice, "search_facts_by_type", {"fact_type": "personal_info"})
    assert personal["count"] >= 1 and all(f["fact_type"] == "personal_info" for f in personal["facts"])


async def test_an_expired_working_memory_never_comes_back(node: str, mkeys: MemoryKeys, db_url: str) -> None:
    live = await call(node, mkeys.bob, "store_working_memory", {"dialog_content": "Drafting the quarterly tax report"})
    gone = await call(
        node,
        mkeys.bob,
        "store_working_memory",
        {"dialog_content": "Booking the dentist appointment", "ttl_seconds": 60},
    )
    sql(db_url, "UPDATE working_memories SET expires_at = now() - interval '1 s' WHERE id = %s", (gone["id"],))
    active = await call(node, mkeys.bob, "get_active_working_memories")
    assert [w["id"] for w in active["working_memories"]] == [live["id"]]
    found = await call(node, mkeys.bob, "search_memories", {"query": "dentist appointment", "top_k": 50})
    assert gone["id"] not in {r["id"] for r in found["results"]}
    stats = await call(node, mkeys.bob, "get_memory_statistics")
    assert stats["counts"]["working"] == 1
    assert (await read(node, mkeys.bob, "memory://statistics/working"))["count"] == 1


async def test_session_messages_are_stored_and_come_back_as_context(node: str, mkeys: MemoryKeys, db_url: str) -> None:
    session_id = str(uuid.uuid4())
    sql(db_url, "INSERT INTO sessions (id, user_id, title) VALUES (%s, 'mem-alice', 'planning')", (session_id,))
    for role, text in (("user", "Plan my trip to Rome"), ("assistant", "Sure, when do you leave?")):
        await call(
            node,
            mkeys.alice,
            "store_session_message",
            {"session_id": session_id, "message_content": text, "role": role},
        )
    context = await call(node, mkeys.alice, "get_session_context", {"session_id": session_id, "max_recent_messages": 5})
    assert [m["content"] for m in context["recent_messages"]] == ["Plan my trip to Rome", "Sure, when do you leave?"]
    assert context["session"]["message_count"] == 2
    via_resource = await read(node, mkeys.alice, f"memory://session/{session_id}")
    assert len(via_resource["recent_messages"]) == 2
    with pytest.raises(ToolFailed, match="no session"):
        await call(node, mkeys.alice, "get_session_context", {"session_id": str(uuid.uuid4())})


async def test_resources_list_the_callers_memories_by_type(node: str, mkeys: MemoryKeys) -> None:
    # Its own fact (restating one an earlier test stored only reinforces it), so the test stands alone.
    await call(node, mkeys.alice, "store_factual_memory", {"dialog_content": "Remember that my sister's name is Lena."})
    facts = await read(node, mkeys.alice, "memory://type/factual")
    assert "Lena" in {f["object_value"] for f in facts}
    hits = await read(node, mkeys.alice, "memory://search/sister")
    assert any(h.get("object_value") == "Lena" for h in hits)


async def test_facts_tied_to_a_session_need_the_callers_own_session_and_are_logged(
    node: str, mkeys: MemoryKeys, db_url: str
) -> None:
    theirs, mine = str(uuid.uuid4()), str(uuid.uuid4())
    sql(db_url, "INSERT INTO sessions (id, user_id, title) VALUES (%s, 'mem-bob', 'bob''s')", (theirs,))
    sql(db_url, "INSERT INTO sessions (id, user_id, title) VALUES (%s, 'mem-alice', 'mine')", (mine,))
    with pytest.raises(ToolFailed, match="no session"):
        await call(node, mkeys.alice, "store_factual_memory", {"dialog_content": "I like tea", "session_id": theirs})
    quiet = await call(
        node, mkeys.alice, "store_factual_memory", {"dialog_content": "how are you?", "keep_notes": False}
    )
    assert quiet["count"] == 0 and quiet["extraction"] == "rules"  # no model node here: the rules, by setting
    done = await call(node, mkeys.alice, "store_factual_memory", {"dialog_content": "I like tea", "session_id": mine})
    assert done["stored"][0]["object_value"] == "tea"
    logged = sql(
        db_url,
        "SELECT extraction_method, memories_created FROM memory_extraction_logs WHERE session_id = %s",
        (mine,),
    )
    assert logged == [{"extraction_method": "rules", "memories_created": 1}]
    assert sql(db_url, "SELECT count(*) AS n FROM memory_extraction_logs WHERE session_id = %s", (theirs,)) == [
        {"n": 0}
    ]
    stats = await call(node, mkeys.alice, "get_memory_statistics")
    assert stats["today"]["extractions"] >= 2 and stats["extraction"] == "rule-based"


async def test_two_facts_in_one_sentence_are_stored_as_two_facts(node: str, mkeys: MemoryKeys, db_url: str) -> None:
    """Issue 16: "I live in Lisbon and I work at Acme" was one fact lives_in = "Lisbon and I work at Acme Robotics"."""
    said = "I live in Lisbon and I work at Acme Robotics."
    stored = await call(node, mkeys.alice, "store_factual_memory", {"dialog_content": said})
    assert stored["count"] == 2
    rows = sql(
        db_url,
        "SELECT predicate, object_value FROM factual_memories WHERE user_id = %s AND predicate IN ('lives_in', "
        "'works_at') ORDER BY predicate",
        ("mem-alice",),
    )
    assert [(r["predicate"], r["object_value"]) for r in rows] == [
        ("lives_in", "Lisbon"),
        ("works_at", "Acme Robotics"),
    ]
