"""The graph's MCP capabilities: the original's 4 graph tools plus delete, and the symbolic:// resources.

Every tool acts for the caller of the verified token (`current_call().principal`); there is no user argument.
"""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any

from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from isa.files.service import FilesService
from isa.graph.extract import system_prompt
from isa.graph.schemas import ExtractionOut, ProcessOptions, QueryOptions
from isa.graph.service import GraphError, GraphService
from isa.guardrails.service import GuardrailService
from isa.mcp.context import current_call
from isa.mcp.registry import Capabilities, SecurityLevel
from isa.mcp.resources import resource_reader

capabilities = Capabilities("isa.graph")
Question = Annotated[str, Field(min_length=1, max_length=2000)]


def _service() -> GraphService:
    return current_call().service("graph", GraphService)


def _resource_id(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise ToolError(f"no knowledge graph {value}") from None


@capabilities.tool(
    category="graph",
    scope="write",
    security=SecurityLevel.MEDIUM,
    rate_limit_per_minute=30,  # each call is up to graph.max_chunks model calls billed to the caller
    keywords=["graph", "knowledge graph", "entities", "relations", "pdf", "document", "extract", "graphrag"],
)
async def process_pdf_to_knowledge_graph(
    pdf_path: Annotated[str, Field(min_length=1, max_length=200, description="id of one of your files")],
    source_metadata: dict[str, Any] | None = None,
    options: ProcessOptions | None = None,
) -> dict[str, Any]:
    """Build your knowledge graph from one of your files (pdf, txt, md, html): entities, relations, attributes.

    pdf_path is the id of a file in your storage. The model extracts the facts of each passage; duplicates are
    merged by name and embedding similarity; every fact keeps the passage it came from.
    """
    call = current_call()
    try:
        files = call.service("files", FilesService)
    except LookupError:
        raise ToolError("file storage is not available on this node") from None
    try:
        return await _service().process_file(
            call.principal, files, pdf_path, source_metadata or {}, options or ProcessOptions()
        )
    except GraphError as exc:
        raise ToolError(str(exc)) from None


@capabilities.tool(category="graph", keywords=["graph", "query", "question", "graphrag", "entities", "citations"])
async def query_knowledge_graph(
    query: Question, resource_id: str | None = None, options: QueryOptions | None = None
) -> dict[str, Any]:
    """Answer a question from your knowledge graph with citations to the source passages (GraphRAG).

    Links the question to your entities, expands k hops, and answers through the model; without a model the
    subgraph is returned. resource_id limits the query to one processed document.
    """
    doc = _resource_id(resource_id) if resource_id else None
    try:
        return await _service().query(current_call().principal, query, doc, options or QueryOptions())
    except GraphError as exc:
        raise ToolError(str(exc)) from None


@capabilities.tool(category="graph", keywords=["graph", "list", "knowledge graphs", "documents"])
async def get_user_knowledge_graphs() -> dict[str, Any]:
    """Your knowledge graphs (one per processed document) with entity, relation and attribute counts."""
    return await _service().list_graphs(current_call().principal.user_id)


@capabilities.tool(category="graph", keywords=["graph", "status", "analytics", "health"])
async def get_graph_analytics_status() -> dict[str, Any]:
    """What the graph service can do on this node and the size of your graph."""
    return await _service().status(current_call().principal.user_id)


@capabilities.tool(
    category="graph", scope="write", security=SecurityLevel.MEDIUM, keywords=["graph", "delete", "remove"]
)
async def delete_knowledge_graph(resource_id: str) -> dict[str, Any]:
    """Delete one of your knowledge graphs: its passages and facts, and entities no other document mentions."""
    try:
        return await _service().delete(current_call().principal.user_id, _resource_id(resource_id))
    except GraphError as exc:
        raise ToolError(str(exc)) from None


# ---- symbolic:// : views of the caller's own graph and of the rules in force (no user in the URI).


def _dump(value: Any) -> str:
    return json.dumps(value, default=str)


@capabilities.resource(
    "symbolic://entities/catalog", name="symbolic_entities_catalog", category="graph", keywords=["entities", "types"]
)
async def entities_catalog() -> str:
    """Your graph's entity types with counts and their most connected entities."""
    user_id, state = resource_reader()
    return _dump(await state.get("graph", GraphService).catalog(user_id))


@capabilities.resource(
    "symbolic://relationships/mapping",
    name="symbolic_relationships_mapping",
    category="graph",
    keywords=["relations", "mapping"],
)
async def relationships_mapping() -> str:
    """Your graph's relation types by (source type, target type), with counts."""
    user_id, state = resource_reader()
    return _dump(await state.get("graph", GraphService).mapping(user_id))


@capabilities.resource(
    "symbolic://rules/business", name="symbolic_rules_business", category="graph", keywords=["rules", "policy"]
)
async def rules_business() -> str:
    """The rules in force for your graph: how duplicates merge, what a query walks, and the guardrail policies."""
    user_id, state = resource_reader()
    s = state.get("graph", GraphService).settings
    rules: dict[str, Any] = {
        "duplicates": {
            "same_entity_when": "same casefolded name and type, or name embedding cosine >= merge_similarity "
            "within the same type",
            "merge_similarity": s.merge_similarity,
        },
        "grounding": "an entity is kept only when every word of its name occurs in its source passage; relations "
        "and attributes only between kept entities",
        "query": {"hops": s.hops, "max_nodes": s.max_nodes, "link_min_similarity": s.link_min_similarity},
        "limits": {"max_chunks": s.max_chunks, "chunk_size": s.chunk_size},
    }
    try:
        rules["guardrails"] = state.get("guardrails", GuardrailService).policies_for(user_id)
    except LookupError:  # the guardrails domain is not served on this node
        rules["guardrails"] = None
    return _dump(rules)


@capabilities.resource(
    "symbolic://rules/validation", name="symbolic_rules_validation", category="graph", keywords=["validation", "schema"]
)
async def rules_validation() -> str:
    """How the model's extraction answers are validated: the JSON schema every answer must satisfy."""
    resource_reader()
    return _dump(
        {
            "schema": ExtractionOut.model_json_schema(),
            "extra_keys": "refused",
            "invalid_answer": "the passage is skipped and reported in errors; when no passage gives a valid answer "
            "nothing is stored",
            "prompt": system_prompt(),
        }
    )


@capabilities.resource(
    "symbolic://reasoning/context", name="symbolic_reasoning_context", category="graph", keywords=["context", "graph"]
)
async def reasoning_context() -> str:
    """What an agent should know before reasoning over your graph: its documents, size, types and relations."""
    user_id, state = resource_reader()
    service = state.get("graph", GraphService)
    graphs = await service.list_graphs(user_id)
    catalog = await service.catalog(user_id)
    mapping = await service.mapping(user_id)
    return _dump(
        {
            "documents": [
                {k: g[k] for k in ("resource_id", "source_name", "status", "entities", "relations")}
                for g in graphs["graphs"][:20]
            ],
            "totals": graphs["totals"],
            "entity_types": [{"type": t["entity_type"], "count": t["count"]} for t in catalog["types"]],
            "relation_types": mapping["relationships"][:50],
            "how_to_query": "query_knowledge_graph(query, resource_id?, options={hops, max_nodes, top_k, answer})",
        }
    )
