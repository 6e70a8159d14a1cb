"""Wire models: the import file, /discover and /search bodies."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from isa.catalog.models import ITEM_TYPES, SECURITY_LEVELS, ItemType


def _not_blank(value: str, info: ValidationInfo) -> str:
    if not value.strip():
        raise ValueError(f"{info.field_name} must not be blank")
    return value


NonBlank = Annotated[str, AfterValidator(_not_blank)]  # whitespace alone is refused, naming the field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ImportedTool(BaseModel):
    """One entry of a server's `tools/list` result; unknown MCP fields (title, annotations, _meta) are kept."""

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)

    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=20_000)
    input_schema: dict[str, Any] = Field(default_factory=lambda: {"type": "object"}, alias="inputSchema")
    category: str = Field(default="", max_length=200)
    keywords: list[str] = Field(default_factory=list, max_length=50)
    security_level: Literal["LOW", "MEDIUM", "HIGH", "CRITICAL"] = Field(default="LOW", alias="securityLevel")
    # Queries this tool is known to answer; their nearest neighbours vote for it in ranking.
    examples: list[str] = Field(default_factory=list, max_length=10_000)

    @field_validator("examples")
    @classmethod
    def _short_examples(cls, value: list[str]) -> list[str]:
        cleaned = [v.strip() for v in value if v.strip()]
        if any(len(v) > 4_000 for v in cleaned):
            raise ValueError("an example query is longer than 4000 characters")
        return cleaned

    @field_validator("input_schema")
    @classmethod
    def _object_schema(cls, value: dict[str, Any]) -> dict[str, Any]:
        if value.get("type", "object") != "object":
            raise ValueError("inputSchema must describe an object")
        return value


class ImportedServerSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=20_000)
    url: str | None = Field(default=None, max_length=2_000, pattern=r"^https?://")
    category: str = Field(default="", max_length=200)
    tools: list[ImportedTool] = Field(default_factory=list, max_length=5_000)

    @field_validator("name")
    @classmethod
    def _not_ours(cls, value: str) -> str:
        if value.strip().lower() == "isa":
            raise ValueError("'isa' is this server's own name")
        if not value.strip():
            raise ValueError("name must not be blank")
        return value.strip()


class VirtualServerBody(_Strict):
    """POST /catalog/virtual: a named endpoint /mcp/v/{name} exposing these catalog items (replaces one of that name).
    Tools and prompts by the name they are called here, resources by URI."""

    name: str = Field(min_length=1, max_length=63, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    description: str = Field(default="", max_length=2000)
    tools: list[str] = Field(default_factory=list, max_length=5000)
    prompts: list[str] = Field(default_factory=list, max_length=5000)
    resources: list[str] = Field(default_factory=list, max_length=5000)


class AddServerBody(_Strict):
    """POST /catalog/servers: a live MCP server by URL; `headers` are its own credentials (sealed at rest)."""

    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    url: str = Field(max_length=2_000, pattern=r"^https?://")
    headers: dict[str, str] = Field(default_factory=dict, max_length=50)
    # For a server that acts as the user: 'Authorization: Bearer {credential}' (each user stores their own).
    user_header: str | None = Field(default=None, max_length=500)
    # "oauth": isa becomes the server's OAuth client (docs/federation.md); `per_user`: each user authorizes their own.
    auth: Literal["oauth"] | None = None
    per_user: bool = False

    @field_validator("name")
    @classmethod
    def _not_ours(cls, value: str) -> str:
        if value.lower() == "isa":
            raise ValueError("'isa' is this server's own name")
        return value


class CredentialBody(_Strict):
    credential: str = Field(min_length=1, max_length=10_000)


class MaxResults(_Strict):
    tools: int = Field(default=5, ge=0, le=50)
    prompts: int = Field(default=3, ge=0, le=50)
    resources: int = Field(default=3, ge=0, le=50)


# An agent's turn may paste a document after the request; discovery ranks the head of it rather than refusing it.
DISCOVER_RANKED_CHARS = 4_000
DISCOVER_MAX_CHARS = 100_000


class DiscoverBody(_Strict):
    request: NonBlank = Field(min_length=1, max_length=DISCOVER_MAX_CHARS)
    max_results: MaxResults = Field(default_factory=MaxResults)
    # The relevance floor for this request (absent: the configured one; 0: none). docs/discovery.md.
    min_similarity: float | None = Field(default=None, ge=0, le=1)


class SecuritySearchBody(_Strict):
    """The original's POST /security/search; DEFAULT is the level a tool gets when it declares none (LOW)."""

    security_level: Literal["LOW", "MEDIUM", "HIGH", "CRITICAL", "DEFAULT"]
    max_results: int = Field(default=20, ge=1, le=1000)


class SearchFiltersBody(_Strict):
    types: list[ItemType] = Field(default_factory=lambda: list(ITEM_TYPES), min_length=1)
    categories: list[str] = Field(default_factory=list, max_length=50)
    servers: list[str] = Field(default_factory=list, max_length=50)
    security_levels: list[Literal["LOW", "MEDIUM", "HIGH", "CRITICAL"]] = Field(default_factory=list)
    # None: no score filter (z-score fusion gives below-average candidates negative scores).
    min_score: float | None = Field(default=None, ge=-100.0, le=100.0)
    min_similarity: float | None = Field(default=None, ge=0, le=1)


class SearchBody(_Strict):
    query: NonBlank = Field(min_length=1, max_length=4_000)
    filters: SearchFiltersBody = Field(default_factory=SearchFiltersBody)
    max_results: int = Field(default=10, ge=1, le=100)
    mode: Literal["hybrid", "lexical", "dense"] = "hybrid"


__all__ = [
    "SECURITY_LEVELS",
    "AddServerBody",
    "CredentialBody",
    "DiscoverBody",
    "ImportedServerSpec",
    "ImportedTool",
    "MaxResults",
    "SearchBody",
    "SearchFiltersBody",
]
