"""Wire models of sessions and their messages."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field, model_validator

from isa.users.wire import JsonObject, Key, Name, Paging, Query, Request, Tokens, Usd, clean_text

# --- sessions ----------------------------------------------------------------------------------

SessionStatus = Literal["active", "ended", "expired", "archived"]


class SessionCreate(Request):
    title: Name | None = None
    metadata: JsonObject = Field(default_factory=dict)


class SessionUpdate(Request):
    title: Name | None = None
    status: SessionStatus | None = None
    metadata: JsonObject | None = None
    session_summary: Annotated[str, Field(max_length=20_000), AfterValidator(clean_text)] | None = None


class SessionQuery(Paging):
    active_only: bool = False


class MessageCreate(Request):
    role: Literal["user", "assistant", "system", "tool"]
    content: Annotated[str, Field(max_length=200_000), AfterValidator(clean_text)] = ""
    message_type: Literal["chat", "tool_call", "tool_result", "system", "summary", "event"] = "chat"
    status: Literal["complete", "incomplete", "error"] = "complete"
    tool_calls: list[JsonObject] | None = Field(default=None, max_length=100)
    tool_call_id: Annotated[str, Field(max_length=200), AfterValidator(clean_text)] | None = None
    metadata: JsonObject = Field(default_factory=dict)
    tokens_used: Tokens = 0
    cost_usd: Usd = Decimal(0)
    idempotency_key: Key | None = None

    @model_validator(mode="after")
    def _tool_messages_name_their_call(self) -> MessageCreate:
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a tool message needs tool_call_id")
        return self


class MessageQuery(Query):
    limit: int = Field(default=100, ge=1, le=1000)
    offset: int = Field(default=0, ge=0, le=1_000_000)


class Message(BaseModel):
    id: str
    session_id: str
    role: str
    message_type: str
    content: str
    status: str
    tool_calls: list[dict[str, Any]] | None
    tool_call_id: str | None
    metadata: dict[str, Any]
    tokens_used: int
    cost_usd: float
    created_at: datetime


class Session(BaseModel):
    session_id: str
    user_id: str
    title: str | None
    status: str
    is_active: bool
    message_count: int
    total_tokens: int
    total_cost: float
    metadata: dict[str, Any]
    session_summary: str | None
    last_activity_at: datetime
    created_at: datetime


class SessionWithMessages(Session):
    messages: list[Message]


class SessionPage(BaseModel):
    sessions: list[Session]
    limit: int
    offset: int


class MessagePage(BaseModel):
    messages: list[Message]
    limit: int
    offset: int


class Deleted(BaseModel):
    # Another domain has a model of this name, so /openapi.json qualifies it by module: keep the name it had
    # before users was split into sub-packages (a client generated from the document keeps its type names).
    __module__ = "isa.users.schemas"

    deleted: bool
    id: str
