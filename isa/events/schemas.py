"""Wire models of the event service."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

Key = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[\x21-\x7e]+$")]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EventIn(_Body):
    event_type: Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")]
    data: dict[str, Any] = Field(default_factory=dict)
    task_id: UUID | None = None
    priority: int = Field(default=5, ge=1, le=10)
    process: bool = False  # hand the event to the caller's agent
    idempotency_key: Key | None = None


class BatchIn(_Body):
    events: list[EventIn] = Field(min_length=1)


class FeedbackIn(BaseModel):
    """The original's /process_background_feedback body; data.user_id is ignored (the caller is the owner)."""

    model_config = ConfigDict(extra="ignore")
    event_type: Annotated[str, Field(min_length=1, max_length=100)]
    task_id: UUID | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    priority: int = Field(default=5, ge=1, le=10)
    idempotency_key: Key | None = None


class EventQuery(_Body):
    event_type: str | None = Field(default=None, max_length=100)
    task_id: UUID | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = Field(default=50, ge=1, le=500)
    offset: int = Field(default=0, ge=0, le=1_000_000)


class RecentQuery(_Body):
    limit: int = Field(default=10, ge=1, le=100)


TaskType = Literal["web_monitor", "schedule", "news_digest", "threshold_watch"]
TaskStatus = Literal["active", "paused", "completed", "failed", "cancelled"]


class TaskIn(_Body):
    """POST /api/v1/tasks; the service checks the config per task type, as for the create_background_task tool."""

    task_type: TaskType
    config: dict[str, Any] = Field(default_factory=dict)
    name: Annotated[str, Field(max_length=200)] | None = None
    description: Annotated[str, Field(max_length=2000)] | None = None
    callback_url: Annotated[str, Field(max_length=2000)] | None = None


class TaskQuery(_Body):
    status: TaskStatus | None = None
    task_type: TaskType | None = None
    limit: int = Field(default=50, ge=1, le=100)
    offset: int = Field(default=0, ge=0, le=1_000_000)
