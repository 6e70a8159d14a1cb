"""Fixtures for the model gateway: a fake OpenAI-wire provider on loopback and gateway apps pointed at it."""

from __future__ import annotations

import copy
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import anyio
import psycopg
import pytest
import uvicorn
from starlette.testclient import TestClient

from isa.app import create_app
from isa.core.db import Database
from isa.core.settings import Settings
from isa.model.service import ModelService
from isa.users import credits as ledger
from tests.support.auth import create_key
from tests.support.fake_openai import FAKE_KEY_ENV, FakeOpenAI, model_section
from tests.support.procs import free_port, wait_for

Headers = dict[str, str]


def pytest_configure(config: pytest.Config) -> None:
    # litellm's own pydantic usage warns on first use; it says nothing about the gateway.
    config.addinivalue_line("filterwarnings", "ignore:Item '.*' on TypedDict class:UserWarning")
    config.addinivalue_line("filterwarnings", "ignore:Accessing the 'model_:DeprecationWarning")


@pytest.fixture(scope="session")
def fake_provider() -> Iterator[FakeOpenAI]:
    os.environ[FAKE_KEY_ENV] = "sk-fake-provider-key"
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture()
def fake(fake_provider: FakeOpenAI) -> FakeOpenAI:
    """The shared fake provider, with no scripts and no recorded requests."""
    fake_provider.reset()
    return fake_provider


def with_model(settings: Settings, fake: FakeOpenAI, **overrides: Any) -> Settings:
    raw = copy.deepcopy(settings.raw)
    raw["model"] = model_section(fake, **overrides)
    return settings.model_copy(update={"raw": raw})


@pytest.fixture(scope="module")
def model_settings(settings: Settings, fake_provider: FakeOpenAI) -> Settings:
    return with_model(settings, fake_provider)


@pytest.fixture(scope="module")
def gateway(model_settings: Settings, db_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(model_settings, "model", database_url=db_url)) as client:
        yield client


def grant(db_url: str, settings: Settings, user_id: str, credits: Decimal) -> None:
    async def main() -> None:
        db = Database(db_url, settings)
        await db.open()
        try:
            async with db.transaction() as conn:
                await ledger.credit(conn, user_id, credits, kind="grant", description="test grant")
        finally:
            await db.close()

    anyio.run(main)


@pytest.fixture(scope="module")
def new_user(db_url: str, settings: Settings) -> Callable[..., tuple[str, Headers]]:
    """A fresh user with `credits` and an API key of `scope`: (user_id, auth headers)."""

    def make(credits: Decimal | int = 100, scope: str = "write") -> tuple[str, Headers]:
        user_id = f"model-{uuid.uuid4().hex[:10]}"
        key = create_key(db_url, settings, user_id, scope)
        if credits:
            grant(db_url, settings, user_id, Decimal(credits))
        return user_id, {"Authorization": f"Bearer {key}"}

    return make


def settle(client: TestClient) -> None:
    """Wait until the gateway's usage writer has written every call queued so far (rows land after the answer)."""
    service = client.app.state.isa.get("model", ModelService)  # type: ignore[attr-defined]
    wait_for(lambda: service.usage_writer.idle, timeout=15)


def sql(db_url: str, query: str, *args: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(db_url) as conn:
        return conn.execute(query, args).fetchall()


class LiveGateway:
    """The gateway app under a real uvicorn in a thread (for disconnects and real streaming)."""

    def __init__(self, settings: Settings, db_url: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            create_app(settings, "model", database_url=db_url),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            access_log=False,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="gateway", daemon=True)

    def __enter__(self) -> LiveGateway:
        import httpx

        self.thread.start()
        wait_for(lambda: httpx.get(self.url + "/health/ready", timeout=2).status_code == 200, timeout=60)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)
