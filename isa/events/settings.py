"""Settings of the event service ([default.events] in config/settings.toml)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, SecretStr


class EventsSettings(BaseModel):
    """Worker, agent hand-off and callback settings; every duration is in seconds."""

    # Run the worker inside the serving process. "auto": on in development and in role all (no second process
    # needed), off on the mcp role in production, where `isa worker` units run.
    inprocess_worker: bool | Literal["auto"] = "auto"
    poll_interval_seconds: float = Field(default=5.0, gt=0)
    lease_seconds: int = Field(default=120, gt=0)  # a crashed worker's task is taken over after this
    batch_size: int = Field(default=10, ge=1, le=500)
    max_attempts: int = Field(default=5, ge=1)  # of processing one event (agent call + callback)
    backoff_base_seconds: float = Field(default=10.0, gt=0)
    agent_url: str = ""  # base URL of the agent node; empty: events needing the agent wait (status pending)
    agent_timeout_seconds: float = Field(default=60.0, gt=0)
    fetch_timeout_seconds: float = Field(default=15.0, gt=0)
    fetch_max_bytes: int = Field(default=2 * 1024 * 1024, gt=0)
    callback_timeout_seconds: float = Field(default=10.0, gt=0)
    callback_secret: SecretStr = SecretStr("")  # HMAC key for X-Isa-Signature; empty: callbacks are not sent
    # Internal targets monitors and callbacks may reach anyway (space/comma separated); everything else must be public.
    egress_allow_cidrs: str = ""
    egress_allow_hosts: str = ""
    min_interval_seconds: int = Field(default=60, ge=1)
    max_batch_items: int = Field(default=100, ge=1, le=1000)
