"""Fixtures for MCP tests: users with API keys, and an mcp node (with the sample test domain) on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from isa.core.settings import Settings
from tests.support.auth import create_key
from tests.support.mcp_servers import SAMPLE_DOMAIN, serve_isa, with_domains


@dataclass(frozen=True)
class Keys:
    alice: str
    alice_second: str  # another key of the same user (a human's, not the agent's)
    bob: str
    reader: str  # read scope only
    admin: str


@pytest.fixture(scope="module")
def keys(settings: Settings, db_url: str) -> Keys:
    return Keys(
        alice=create_key(db_url, settings, "alice", "write"),
        alice_second=create_key(db_url, settings, "alice", "write"),
        bob=create_key(db_url, settings, "bob", "write"),
        reader=create_key(db_url, settings, "reader", "read"),
        admin=create_key(db_url, settings, "root", "admin"),
    )


@pytest.fixture(scope="module")
def mcp_url(settings: Settings, db_url: str, keys: Keys) -> Iterator[str]:
    """A stateful mcp node serving the sample domain too; yields its base URL."""
    with with_domains(SAMPLE_DOMAIN), serve_isa(settings, db_url) as url:
        yield url
