"""Wire models of the graph: what the model must answer when extracting, and the tools' options."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from isa.core.http import bounded

Name = Annotated[str, bounded(120)]
Kind = Annotated[str, bounded(40)]
Short = Annotated[str, bounded(60)]
Value = Annotated[str, bounded(300)]
Description = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class EntityOut(_Strict):
    name: Name
    type: Kind  # person, organization, place, product, concept, event, ...
    description: Description = ""


class RelationOut(_Strict):
    source: Name  # an entity name from `entities`
    target: Name
    type: Short  # snake_case verb phrase: works_at, located_in, part_of
    description: Description = ""


class AttributeOut(_Strict):
    entity: Name
    key: Short
    value: Value


class ExtractionOut(_Strict):
    """One chunk's graph, as the model must answer it (validated; anything else is refused)."""

    entities: list[EntityOut] = Field(max_length=60)
    relations: list[RelationOut] = Field(default_factory=list, max_length=120)
    attributes: list[AttributeOut] = Field(default_factory=list, max_length=120)


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProcessOptions(_Options):
    """`options` of process_pdf_to_knowledge_graph; unset fields take [default.graph]."""

    chunk_size: int | None = Field(None, ge=200, le=8000)
    max_chunks: int | None = Field(None, ge=1, le=1000)  # at most graph.max_chunks


class QueryOptions(_Options):
    """`options` of query_knowledge_graph; unset fields take [default.graph]."""

    hops: int | None = Field(None, ge=1, le=3)  # each hop multiplies the rows the walk reads (docs/graph.md)
    max_nodes: int | None = Field(None, ge=1, le=1000)
    top_k: int | None = Field(None, ge=1, le=50)  # entities linked to the question
    answer: bool = True  # False: return the subgraph without calling the model
