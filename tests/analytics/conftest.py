"""Fixtures of the analytics tests: an mcp node whose model node is the scripted fake provider, keys per user."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from isa.app import create_app
from isa.core.settings import ServicesSettings, Settings
from tests.support.auth import create_key
from tests.support.fake_openai import FakeOpenAI
from tests.support.mcp_servers import serve_asgi

MODEL = "analytics-sql-model"


@dataclass(frozen=True)
class Keys:
    alice: str
    bob: str


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(scope="module")
def keys(settings: Settings, db_url: str) -> Keys:
    return Keys(alice=create_key(db_url, settings, "ana-alice", "write"), bob=create_key(db_url, settings, "ana-bob"))


@pytest.fixture(scope="module")
def node(settings: Settings, db_url: str, fake: FakeOpenAI, keys: Keys) -> Iterator[str]:
    """An mcp node (which serves isa.analytics) whose services.model_url is the fake provider."""
    raw = copy.deepcopy(settings.raw)
    raw.setdefault("auth", {})["token_secret"] = "analytics-test-secret-0123456789abcdef0123"
    raw["analytics"] = {**raw.get("analytics", {}), "sql_model": MODEL, "query_timeout_seconds": 3.0, "max_rows": 50}
    on = settings.model_copy(update={"raw": raw, "services": ServicesSettings(model_url=fake.url)})
    with serve_asgi(create_app(on, "mcp", database_url=db_url)) as url:
        yield url
