"""Fixtures for event-service tests: users with keys, a fake agent and a changeable page on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from isa.core.settings import Settings
from tests.support.auth import create_key
from tests.support.events import FakeAgent, Page, fake_agent, fake_page


@dataclass(frozen=True)
class Keys:
    alice: str
    bob: str


@pytest.fixture(scope="module")
def keys(settings: Settings, db_url: str) -> Keys:
    return Keys(alice=create_key(db_url, settings, "alice", "write"), bob=create_key(db_url, settings, "bob", "write"))


@pytest.fixture()
def agent() -> Iterator[FakeAgent]:
    with fake_agent() as fake:
        yield fake


@pytest.fixture()
def page() -> Iterator[Page]:
    with fake_page() as fake:
        yield fake
