"""Wire models of the agent's HTTP API."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from isa.users.schemas import JsonObject, Key, Name


class _Body(BaseModel):
    # The original frontend sends fields we don't use (user_id, modes); they are ignored, never trusted.
    model_config = ConfigDict(extra="ignore", frozen=True)


class ChatBody(_Body):
    message: Annotated[str, Field(min_length=1, max_length=100_000)]
    session_id: Annotated[str, Field(max_length=100)] | None = None
    prompt_name: Annotated[str, Field(max_length=200)] | None = None
    prompt_args: dict[str, str] = Field(default_factory=dict, max_length=50)
    # A retry with the same key after a failure runs again; after a success it replays the stored answer.
    idempotency_key: Key | None = None


class ResumeBody(_Body):
    session_id: Annotated[str, Field(max_length=100)]
    resume_value: Any = None


class EventCallbackBody(_Body):
    event_type: Annotated[str, Field(min_length=1, max_length=200)] = "background_event"
    task_id: Annotated[str, Field(max_length=200)] | None = None
    session_id: Annotated[str, Field(max_length=100)] | None = None
    message: Annotated[str, Field(max_length=20_000)] | None = None
    data: JsonObject = Field(default_factory=dict)
    idempotency_key: Key | None = None


class SessionCreateBody(_Body):
    title: Name | None = None
    metadata: JsonObject = Field(default_factory=dict)


class SessionUpdateBody(_Body):
    title: Name | None = None
    tags: list[Annotated[str, Field(max_length=50)]] | None = Field(default=None, max_length=20)
    metadata: JsonObject | None = None
    status: Literal["active", "ended", "archived"] | None = None


class SessionContextBody(_Body):
    """PUT /api/sessions/{id}/context: the whole context object (replaces the stored one)."""

    context: JsonObject


class SessionListQuery(_Body):
    limit: int = Field(default=20, ge=1, le=100)
    offset: int = Field(default=0, ge=0, le=1_000_000)
    search: Annotated[str, Field(max_length=200)] | None = None
    status: Literal["active", "ended", "expired", "archived"] | None = None


class SessionSearchQuery(_Body):
    """The original's GET /api/sessions/search (its `user_id` is ignored: the caller is the principal)."""

    query: Annotated[str, Field(min_length=1, max_length=200)]
    limit: int = Field(default=20, ge=1, le=100)
    offset: int = Field(default=0, ge=0, le=1_000_000)


class ActiveSessionsQuery(_Body):
    limit: int = Field(default=20, ge=1, le=100)
    offset: int = Field(default=0, ge=0, le=1_000_000)


class MessagesQuery(_Body):
    limit: int = Field(default=100, ge=1, le=1000)
    offset: int = Field(default=0, ge=0, le=1_000_000)
    role: Literal["user", "assistant", "system", "tool"] | None = None


class ExportQuery(_Body):
    format: Literal["json", "csv", "txt"] = "json"
