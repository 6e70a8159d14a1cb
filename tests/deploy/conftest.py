"""Fixtures for the deploy checks: each role's real app (built, never started) and the routing table."""

from __future__ import annotations

from types import ModuleType

import pytest
from starlette.applications import Starlette

from isa.app import create_app
from isa.core.settings import ServicesSettings, Settings
from tests.support.deploy import ALL_ROLES, routing

# Building an app opens no connection; only its lifespan would.
UNUSED_DATABASE = "postgresql://unused@127.0.0.1:9/unused"


@pytest.fixture(scope="module")
def role_apps(settings: Settings) -> dict[str, Starlette]:
    """The app each role serves, as `isa serve` builds it (never started, so no database is needed)."""
    node_settings = settings.model_copy(
        update={
            "services": ServicesSettings(
                model_url="http://model.isa.internal:8082",
                mcp_url="http://mcp.isa.internal:8081",
                agent_url="http://agent.isa.internal:8080",
            )
        }
    )
    return {role: create_app(node_settings, role, database_url=UNUSED_DATABASE) for role in ALL_ROLES}


@pytest.fixture(scope="session")
def routing_module() -> ModuleType:
    return routing()
