"""Fixtures for the agent: a fake OpenAI-wire provider, and a role-all node (agent, mcp, model in one process)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from isa.app import create_app
from isa.core.settings import Settings
from tests.conftest import create_database, db_url_for, drop_database
from tests.support.agent import SAMPLE_DOMAIN, agent_settings, sync_catalog
from tests.support.fake_openai import FAKE_KEY_ENV, FakeOpenAI
from tests.support.mcp_servers import serve_asgi, with_domains


@pytest.fixture(scope="session")
def fake_llm() -> Iterator[FakeOpenAI]:
    os.environ[FAKE_KEY_ENV] = "sk-fake-provider-key"
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture()
def fake(fake_llm: FakeOpenAI) -> FakeOpenAI:
    """The fake provider with no scripts and no recorded requests."""
    fake_llm.reset()
    return fake_llm


@pytest.fixture(scope="session")
def db_url(pg_admin_url: str, template_db: str) -> Iterator[str]:
    """One database for the whole agent suite (the node below serves every module of it)."""
    name = create_database(pg_admin_url, template_db)
    yield db_url_for(pg_admin_url, name)
    drop_database(pg_admin_url, name)


@pytest.fixture(scope="session")
def all_settings(settings: Settings, fake_llm: FakeOpenAI) -> Settings:
    return agent_settings(settings, fake_llm)


@pytest.fixture(scope="session")
def node(all_settings: Settings, db_url: str) -> Iterator[str]:
    """One process serving every role (the agent reaches the model and MCP apps in-process)."""
    sync_catalog(db_url, all_settings)
    with with_domains(SAMPLE_DOMAIN, role="all"):
        app = create_app(all_settings, "all", database_url=db_url)
    with serve_asgi(app) as url:
        yield url
