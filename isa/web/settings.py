"""The `web` settings section: allow list, limits, browser pool, the search provider and automation bounds."""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict, Field, model_validator

# The conventional name, read when web.brave_api_key (ISA_WEB__BRAVE_API_KEY) is not set.
BRAVE_KEY_ENV = "BRAVE_API_KEY"


class WebSettings(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    # Internal hosts opened on purpose: "host", "host:port", "IP", "IP:port", "[v6]:port"; and networks.
    allow_hosts: list[str] = Field(default_factory=list)
    allow_cidrs: list[str] = Field(default_factory=list)
    max_redirects: int = Field(5, ge=0, le=20)
    max_bytes: int = Field(5_000_000, ge=1024)
    fetch_timeout_seconds: float = Field(20.0, gt=0)
    max_urls_per_crawl: int = Field(5, ge=1, le=20)
    max_markdown_chars: int = Field(40_000, ge=1000)
    # Browser: one process, at most `max_contexts` isolated contexts, at most `per_user_contexts` per user.
    chromium_path: str = "/usr/bin/chromium"
    max_contexts: int = Field(4, ge=1, le=64)
    per_user_contexts: int = Field(2, ge=1, le=16)
    queue_timeout_seconds: float = Field(30.0, ge=0)
    page_timeout_seconds: float = Field(30.0, gt=0)
    # analysis_request: answered by this model (group) on the model node at services.model_url.
    analysis_model: str = "default"
    analysis_timeout_seconds: float = Field(120.0, gt=0)
    # Search: Brave's API (ISA_WEB__BRAVE_API_KEY, else BRAVE_API_KEY); no key → web_search says it is not configured.
    brave_api_key: str = ""
    brave_api_base: str = "https://api.search.brave.com"
    search_timeout_seconds: float = Field(10.0, gt=0)
    # web_automation: the model (group) that plans the steps, and the bounds of one run.
    automation_model: str = "default"
    automation_max_steps: int = Field(15, ge=1, le=100)
    automation_deadline_seconds: float = Field(180.0, gt=0)
    automation_action_timeout_seconds: float = Field(10.0, gt=0)
    automation_max_wait_ms: int = Field(5000, ge=0, le=60_000)
    automation_step_thumbnails: int = Field(10, ge=0, le=100)

    @model_validator(mode="after")
    def _conventional_brave_key(self) -> WebSettings:
        if not self.brave_api_key and os.environ.get(BRAVE_KEY_ENV):
            object.__setattr__(self, "brave_api_key", os.environ[BRAVE_KEY_ENV])
        return self
