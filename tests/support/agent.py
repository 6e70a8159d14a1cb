"""Helpers for agent tests: settings, a synced catalog, users with credits, and an SSE chat client."""

from __future__ import annotations

import copy
import json
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import anyio
import httpx

from isa.catalog.service import CatalogService
from isa.catalog.settings import CatalogSettings
from isa.core.db import Database
from isa.core.embeddings import LocalMiniLM
from isa.core.settings import Settings
from isa.mcp.discovery import catalog_items
from isa.mcp.registry import Registry
from isa.roles import domains_for
from isa.users import credits as ledger
from tests.support.auth import create_key
from tests.support.fake_openai import FakeOpenAI, model_section

AGENT_TOKEN_SECRET = "agent-test-token-secret-" + uuid.uuid4().hex
SAMPLE_DOMAIN = "tests.agent.sample_domain"
FAKE_MODEL = "gpt-4o-mini"  # what the "default" alias reaches on the fake provider (group "main")


def agent_settings(settings: Settings, fake: FakeOpenAI, **agent: Any) -> Settings:
    """Role-all settings whose model deployments live on `fake`, with isa tokens on and quick agent bounds."""
    raw = copy.deepcopy(settings.raw)
    raw["model"] = model_section(fake, fallbacks={}, num_retries=0)
    raw.setdefault("auth", {})["token_secret"] = AGENT_TOKEN_SECRET
    # Role all now reaches the model for memory extraction too; these tests count model calls and credits per
    # turn, so the agent's after-turn memory uses the rules (tests/llm covers extraction through the model).
    raw["memory"] = {**raw.get("memory", {}), "extraction": "rules"}
    raw["agent"] = {
        **raw.get("agent", {}),
        "heartbeat_seconds": 0.3,
        "tool_timeout_seconds": 3.0,
        "model_idle_timeout_seconds": 4.0,
        "time_budget_seconds": 30.0,
        "max_iterations": 6,
        "core_tools": "create_execution_plan ask_human request_authorization",
        "chat_rate_limit_per_minute": 0,
        **agent,
    }
    return settings.model_copy(update={"raw": raw})


def sync_catalog(db_url: str, settings: Settings, extra: tuple[str, ...] = (SAMPLE_DOMAIN,)) -> None:
    """Put the tools of role all (plus test domains) into the discovery catalog, as the mcp node does."""

    async def main() -> None:
        db = Database(db_url, settings)
        await db.open()
        try:
            registry = Registry.discover((*domains_for("all"), *extra))
            cfg = settings.section("catalog", CatalogSettings)
            service = CatalogService(db, LocalMiniLM(precision=cfg.encoder), cfg)
            await service.sync_own(catalog_items(registry))
        finally:
            await db.close()

    anyio.run(main)


def new_user(db_url: str, settings: Settings, credits: int = 100, scope: str = "write") -> tuple[str, str]:
    """(user_id, API key) of a fresh user holding `credits`."""
    user_id = f"agent-{uuid.uuid4().hex[:10]}"
    key = create_key(db_url, settings, user_id, scope)

    async def grant() -> None:
        db = Database(db_url, settings)
        await db.open()
        try:
            async with db.transaction() as conn:
                await ledger.credit(conn, user_id, Decimal(credits), kind="grant", description="test grant")
        finally:
            await db.close()

    if credits:
        anyio.run(grant)
    return user_id, key


@dataclass
class ChatResult:
    status: int
    events: list[dict[str, Any]] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    body: Any = None

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == kind]

    @property
    def types(self) -> list[str]:
        return [e["type"] for e in self.events]

    @property
    def text(self) -> str:
        return "".join(
            e["content"]["custom_llm_chunk"]
            for e in self.of("custom_stream")
            if isinstance(e["content"], dict) and "custom_llm_chunk" in e["content"]
        )

    @property
    def done(self) -> bool:
        return bool(self.lines) and self.lines[-1] == "data: [DONE]"

    @property
    def session_id(self) -> str:
        return str(self.events[0]["session_id"])

    @property
    def interrupt(self) -> dict[str, Any] | None:
        for event in self.of("graph_update"):
            if "__interrupt__" in event["content"]:
                return dict(event["content"]["__interrupt__"][0]["value"])
        return None

    @property
    def error_code(self) -> str | None:
        errors = self.of("error")
        return str(errors[0]["code"]) if errors else None


def chat(base_url: str, key: str, body: dict[str, Any], path: str = "/api/chat", timeout: float = 60) -> ChatResult:
    """POST a chat request and read the whole SSE stream (data lines and comment lines)."""
    headers = {"Authorization": f"Bearer {key}"}
    with (
        httpx.Client(base_url=base_url, timeout=timeout) as http,
        http.stream("POST", path, json=body, headers=headers) as response,
    ):
        if response.status_code != 200:
            response.read()
            return ChatResult(response.status_code, body=response.json())
        result = ChatResult(200)
        for line in response.iter_lines():
            if not line:
                continue
            result.lines.append(line)
            if line.startswith("data: ") and line != "data: [DONE]":
                result.events.append(json.loads(line[6:]))
        return result


def resume(base_url: str, key: str, session_id: str, value: Any) -> ChatResult:
    return chat(base_url, key, {"session_id": session_id, "resume_value": value}, path="/api/chat/resume")
