"""The knowledge graph over real MCP: extraction scripted on the fake OpenAI-wire provider (the mcp node's
`services.model_url` points at it, so isa.llm.client calls it as the user), stored in the migrated Postgres."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from isa.app import create_app
from isa.core.settings import ServicesSettings, Settings
from tests.knowledge.pdfs import make_pdf, upload
from tests.support.auth import create_key
from tests.support.fake_openai import FakeOpenAI, Reply
from tests.support.mcp_servers import mcp_client, serve_asgi, sql
from tests.support.memory import ToolFailed, call, read

pytestmark = pytest.mark.anyio

EXTRACT = "graph-extract-model"
ANSWER = "graph-answer-model"
HARBOUR = (
    "Oriel Vance keeps the Skerry Point Lighthouse. The lighthouse belongs to the Harbour Board, "
    "which meets in Port Ellis. Vance has kept the light since 1998."
)
MOORING = "The Harbour Board sets the mooring fees of Port Ellis. Oriel Vance sits on the Harbour Board."


def extraction(entities: list[tuple[str, str]], relations: list[tuple[str, str, str]] = (), **extra: Any) -> str:
    body: dict[str, Any] = {
        "entities": [{"name": n, "type": t, "description": f"{n} in the harbour text"} for n, t in entities],
        "relations": [{"source": s, "target": o, "type": r} for s, r, o in relations],
        "attributes": extra.pop("attributes", []),
        **extra,
    }
    return json.dumps(body)


HARBOUR_GRAPH = extraction(
    [("Oriel Vance", "person"), ("Skerry Point Lighthouse", "place"), ("Harbour Board", "organization"),
     ("Port Ellis", "place"), ("Atlantis", "place")],
    [("Oriel Vance", "keeps", "Skerry Point Lighthouse"), ("Skerry Point Lighthouse", "belongs_to", "Harbour Board"),
     ("Harbour Board", "meets_in", "Port Ellis"), ("Oriel Vance", "rules", "Atlantis")],
    attributes=[{"entity": "Oriel Vance", "key": "keeper since", "value": "1998"}],
)  # fmt: skip


@dataclass(frozen=True)
class Node:
    url: str
    alice: str
    bob: str


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(scope="module")
def node(settings: Settings, db_url: str, fake: FakeOpenAI) -> Iterator[Node]:
    raw = copy.deepcopy(settings.raw)
    raw.setdefault("auth", {})["token_secret"] = "graph-test-secret-0123456789abcdef0123456789"
    raw["graph"] = {**raw.get("graph", {}), "extraction_model": EXTRACT, "answer_model": ANSWER, "max_chunks": 3}
    on = settings.model_copy(update={"raw": raw, "services": ServicesSettings(model_url=fake.url)})
    alice = create_key(db_url, settings, "graph-alice", "write")
    bob = create_key(db_url, settings, "graph-bob", "write")
    with serve_asgi(create_app(on, "mcp", database_url=db_url)) as url:
        yield Node(url, alice, bob)


def count(db_url: str, table: str, user: str) -> int:
    return int(sql(db_url, f"SELECT count(*) AS n FROM {table} WHERE user_id = %s", (user,))[0]["n"])


async def build(node: Node, fake: FakeOpenAI, key: str, user: str, text: str, graph: str, name: str) -> dict[str, Any]:
    file_id = upload(node.url, user, key, name, make_pdf([text]), "application/pdf")
    fake.script(EXTRACT, Reply(text=graph))
    out: dict[str, Any] = await call(node.url, key, "process_pdf_to_knowledge_graph", {"pdf_path": file_id})
    return {**out, "file_id": file_id}


async def test_the_graph_tools_and_the_symbolic_and_guardrail_resources_are_listed(node: Node) -> None:
    async with mcp_client(node.url, node.alice) as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        uris = {str(r.uri) for r in (await client.list_resources()).resources}
        templates = {t.uri_template for t in (await client.list_resource_templates()).resource_templates}
    assert {
        "process_pdf_to_knowledge_graph", "query_knowledge_graph", "get_user_knowledge_graphs",
        "get_graph_analytics_status", "delete_knowledge_graph", "check_guardrails", "format_response",
    } <= tools  # fmt: skip
    listed = uris | templates
    assert {u for u in listed if u.startswith("symbolic://")} == {
        "symbolic://entities/catalog", "symbolic://relationships/mapping", "symbolic://rules/business",
        "symbolic://rules/validation", "symbolic://reasoning/context",
    }  # fmt: skip
    assert len({u for u in listed if u.startswith("guardrail://")}) == 4


async def test_a_pdf_becomes_a_graph_whose_answers_cite_the_source_passage(
    node: Node, fake: FakeOpenAI, db_url: str
) -> None:
    fake.reset()
    built = await build(node, fake, node.alice, "graph-alice", HARBOUR, HARBOUR_GRAPH, "harbour.pdf")
    # Atlantis is not in the text: dropped, and so is the relation that needs it.
    assert built["status"] == "complete" and built["entities_created"] == 4 and built["relations"] == 3
    assert built["attributes"] == 1 and built["facts_dropped"] == 2
    sent = fake.requests_for(EXTRACT)[-1]
    assert sent.body["response_format"] == {"type": "json_object"}
    assert "Oriel Vance keeps" in sent.body["messages"][-1]["content"]
    assert node.alice not in sent.headers["authorization"]  # a token minted for the user, never their key
    facts = sql(
        db_url,
        "SELECT s.name AS source, r.relation_type, t.name AS target, c.content FROM graph_relations r"
        " JOIN graph_entities s ON s.id = r.source_id JOIN graph_entities t ON t.id = r.target_id"
        " JOIN graph_chunks c ON c.id = r.chunk_id WHERE r.user_id = 'graph-alice' AND r.relation_type = 'keeps'",
    )
    assert facts[0]["source"] == "Oriel Vance" and "Skerry Point Lighthouse" in facts[0]["content"]

    graphs = await call(node.url, node.alice, "get_user_knowledge_graphs")
    mine = next(g for g in graphs["graphs"] if g["resource_id"] == built["resource_id"])
    assert mine["source_name"] == "harbour.pdf" and mine["relations"] == 3 and mine["entities"] == 4

    fake.script(ANSWER, Reply(text="Oriel Vance keeps the Skerry Point Lighthouse [1]."))
    out = await call(node.url, node.alice, "query_knowledge_graph", {"query": "Who keeps Skerry Point Lighthouse?"})
    assert out["method"] == "graphrag" and out["cited"] == [1]
    assert out["answer"].startswith("Oriel Vance keeps")
    assert out["citations"][0]["resource_id"] == built["resource_id"]
    assert "Oriel Vance keeps" in out["citations"][0]["excerpt"]
    names = {e["name"] for e in out["subgraph"]["entities"]}
    assert {"Oriel Vance", "Skerry Point Lighthouse", "Harbour Board"} <= names
    prompt = fake.requests_for(ANSWER)[-1].body["messages"][-1]["content"]
    assert "Oriel Vance -[keeps]-> Skerry Point Lighthouse [1]" in prompt and "[1] (harbour.pdf)" in prompt

    # Without an answer (asked for none, or the model failing) the subgraph is the answer.
    quiet = await call(
        node.url, node.alice, "query_knowledge_graph",
        {"query": "Who keeps Skerry Point Lighthouse?", "options": {"answer": False, "hops": 1}},
    )  # fmt: skip
    assert quiet["method"] == "subgraph" and quiet["answer"] is None
    assert any(r["relation_type"] == "keeps" for r in quiet["subgraph"]["relations"])
    fake.script(ANSWER, Reply.error(500))
    failed = await call(node.url, node.alice, "query_knowledge_graph", {"query": "Who keeps Skerry Point Lighthouse?"})
    assert failed["method"] == "subgraph" and "HTTP 500" in failed["note"]


async def test_a_second_document_merges_duplicates_by_name_and_embedding(
    node: Node, fake: FakeOpenAI, db_url: str
) -> None:
    fake.reset()
    before = count(db_url, "graph_entities", "graph-alice")
    graph = extraction(
        [("oriel vance", "Person"), ("The Harbour Board", "organization"), ("Port Ellis", "place")],
        [("The Harbour Board", "sets_fees_of", "Port Ellis"), ("oriel vance", "member_of", "The Harbour Board")],
    )
    built = await build(node, fake, node.alice, "graph-alice", MOORING, graph, "mooring.pdf")
    assert built["entities_created"] == 0 and built["entities_merged"] == 3 and built["relations"] == 2
    assert count(db_url, "graph_entities", "graph-alice") == before
    board = sql(db_url, "SELECT aliases FROM graph_entities WHERE user_id = 'graph-alice' AND name = 'Harbour Board'")
    assert board[0]["aliases"] == ["The Harbour Board"]

    # Two hops from Oriel Vance now reach Port Ellis through the board, across both documents.
    out = await call(
        node.url, node.alice, "query_knowledge_graph",
        {"query": "Oriel Vance", "options": {"answer": False, "hops": 2, "top_k": 1}},
    )  # fmt: skip
    depth = {e["name"]: e["depth"] for e in out["subgraph"]["entities"]}
    assert depth["Oriel Vance"] == 0 and depth["Harbour Board"] == 1 and depth["Port Ellis"] == 2

    # Limited to the second document, the lighthouse (only in the first) is out of reach.
    scoped = await call(
        node.url, node.alice, "query_knowledge_graph",
        {"query": "Oriel Vance", "resource_id": built["resource_id"], "options": {"answer": False, "top_k": 1}},
    )  # fmt: skip
    assert "Skerry Point Lighthouse" not in {e["name"] for e in scoped["subgraph"]["entities"]}
    elsewhere = await call(
        node.url, node.alice, "query_knowledge_graph",
        {"query": "Skerry Point Lighthouse", "resource_id": built["resource_id"], "options": {"answer": False}},
    )  # fmt: skip
    assert "Skerry Point Lighthouse" not in {s["name"] for s in elsewhere["seeds"]}  # not mentioned in that document

    await call(node.url, node.alice, "delete_knowledge_graph", {"resource_id": built["resource_id"]})
    assert count(db_url, "graph_relations", "graph-alice") == 3  # the first document's facts stay
    assert count(db_url, "graph_entities", "graph-alice") == before


async def test_two_users_graphs_are_kept_apart(node: Node, fake: FakeOpenAI, db_url: str) -> None:
    fake.reset()
    await build(node, fake, node.alice, "graph-alice", HARBOUR, HARBOUR_GRAPH, "alice.pdf")
    alice_graphs = await call(node.url, node.alice, "get_user_knowledge_graphs")
    alice_doc = alice_graphs["graphs"][0]
    # Bob's question names alice's entities: nothing of hers is linked, walked or cited.
    out = await call(node.url, node.bob, "query_knowledge_graph", {"query": "Who keeps Skerry Point Lighthouse?"})
    assert out["seeds"] == [] and out["subgraph"]["entities"] == [] and out["citations"] == []
    assert fake.count(ANSWER) == 0
    assert (await call(node.url, node.bob, "get_user_knowledge_graphs"))["graphs"] == []
    for tool, args in (
        ("delete_knowledge_graph", {"resource_id": alice_doc["resource_id"]}),
        ("query_knowledge_graph", {"query": "lighthouse", "resource_id": alice_doc["resource_id"]}),
        ("process_pdf_to_knowledge_graph", {"pdf_path": alice_doc["file_id"]}),
    ):
        with pytest.raises(ToolFailed, match=r"no knowledge graph|no file"):
            await call(node.url, node.bob, tool, args)
    assert count(db_url, "graph_documents", "graph-alice") == len(alice_graphs["graphs"])

    # Bob's own graph with the same names is his own rows; his catalog shows only his.
    built = await build(node, fake, node.bob, "graph-bob", HARBOUR, HARBOUR_GRAPH, "bob.pdf")
    assert built["entities_created"] == 4
    catalog = await read(node.url, node.bob, "symbolic://entities/catalog")
    assert catalog["totals"]["entities"] == 4 and catalog["totals"]["documents"] == 1
    mapping = await read(node.url, node.bob, "symbolic://relationships/mapping")
    assert {"relation_type": "keeps", "source_type": "person", "target_type": "place", "count": 1} in mapping[
        "relationships"
    ]


async def test_a_malformed_model_answer_is_refused_and_nothing_is_stored(
    node: Node, fake: FakeOpenAI, db_url: str
) -> None:
    fake.reset()
    before = {t: count(db_url, t, "graph-alice") for t in ("graph_documents", "graph_entities", "graph_chunks")}
    file_id = upload(node.url, "graph-alice", node.alice, "bad.txt", f"{HARBOUR} {MOORING}".encode(), "text/plain")
    for bad in (
        "Sure! Oriel Vance is a person.",  # not JSON
        json.dumps({"entities": [{"name": "Oriel Vance"}]}),  # no type
        extraction([("Oriel Vance", "person")], owner="me"),  # an extra key
    ):
        fake.script(EXTRACT, Reply(text=bad))
        with pytest.raises(ToolFailed, match="no usable extraction from the model: invalid extraction JSON"):
            await call(node.url, node.alice, "process_pdf_to_knowledge_graph", {"pdf_path": file_id})
    fake.script(EXTRACT, Reply.error(500))
    with pytest.raises(ToolFailed, match="model unavailable"):
        await call(node.url, node.alice, "process_pdf_to_knowledge_graph", {"pdf_path": file_id})
    assert {t: count(db_url, t, "graph-alice") for t in before} == before

    # Two passages, one answered badly: the good one is stored and the document says what failed.
    fake.script(EXTRACT, Reply(text=extraction([("Oriel Vance", "person")])), Reply(text="{not json"))
    out = await call(
        node.url, node.alice, "process_pdf_to_knowledge_graph",
        {"pdf_path": file_id, "options": {"chunk_size": 200, "max_chunks": 2}},
    )  # fmt: skip
    assert out["status"] == "partial" and out["chunks"] == 2 and out["chunks_failed"] == 1
    assert "invalid extraction JSON" in out["errors"][0]
    with pytest.raises(ToolFailed):
        await call(node.url, node.alice, "process_pdf_to_knowledge_graph", {"pdf_path": file_id, "options": {"x": 1}})


async def test_status_and_the_symbolic_rules_describe_what_is_in_force(node: Node) -> None:
    status = await call(node.url, node.alice, "get_graph_analytics_status")
    assert status["extraction"] == f"model node ({EXTRACT})" and status["engine"].startswith("postgres")
    rules = await read(node.url, node.alice, "symbolic://rules/business")
    assert rules["duplicates"]["merge_similarity"] == 0.9 and "pii" in rules["guardrails"]["policies"]
    validation = await read(node.url, node.alice, "symbolic://rules/validation")
    assert set(validation["schema"]["properties"]) == {"entities", "relations", "attributes"}
    context = await read(node.url, node.alice, "symbolic://reasoning/context")
    assert context["how_to_query"].startswith("query_knowledge_graph")


@pytest.fixture(scope="module")
def modelless(settings: Settings, db_url: str, node: Node) -> Iterator[str]:
    """A second mcp node on the same database without a model node (services.model_url unset)."""
    with serve_asgi(create_app(settings, "mcp", database_url=db_url)) as url:
        yield url


async def test_without_a_model_extraction_is_refused_and_queries_return_the_subgraph(
    node: Node, modelless: str, fake: FakeOpenAI
) -> None:
    fake.reset()
    built = await build(node, fake, node.alice, "graph-alice", HARBOUR, HARBOUR_GRAPH, "plain.pdf")
    with pytest.raises(ToolFailed, match="no model is configured"):
        await call(modelless, node.alice, "process_pdf_to_knowledge_graph", {"pdf_path": built["file_id"]})
    out = await call(modelless, node.alice, "query_knowledge_graph", {"query": "Who keeps Skerry Point Lighthouse?"})
    assert out["method"] == "subgraph" and out["answer"] is None and "no model" in out["note"]
    assert any(r["relation_type"] == "keeps" and r["cite"] for r in out["subgraph"]["relations"])
    assert out["citations"] and fake.count(ANSWER) == 0
    status = await call(modelless, node.alice, "get_graph_analytics_status")
    assert status["extraction"].startswith("unavailable")


async def test_a_caller_can_not_raise_the_deployments_passage_limit(node: Node, fake: FakeOpenAI) -> None:
    fake.reset()
    long_text = " ".join([HARBOUR, MOORING] * 4)
    file_id = upload(node.url, "graph-alice", node.alice, "long.txt", long_text.encode(), "text/plain")
    fake.script(EXTRACT, Reply(text='{"entities": []}', times=3))
    out = await call(
        node.url, node.alice, "process_pdf_to_knowledge_graph",
        {"pdf_path": file_id, "options": {"chunk_size": 200, "max_chunks": 1000}},
    )  # fmt: skip
    assert out["chunks"] == 3 and out["truncated"] is True and out["status"] == "complete"
    assert fake.count(EXTRACT) == 3
