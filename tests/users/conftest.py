"""Fixtures for the user service: an mcp-role app on a fresh database, a fake Stripe, and users with keys."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
from starlette.testclient import TestClient

from isa.app import create_app
from isa.core.settings import Settings
from tests.support.auth import create_key
from tests.support.fake_stripe import FakeStripe, RunningFake
from tests.support.users import with_billing

Headers = dict[str, str]


@pytest.fixture(scope="module")
def fake_stripe() -> Iterator[FakeStripe]:
    with RunningFake(FakeStripe()) as fake:
        yield fake


@pytest.fixture(scope="module")
def app_settings(settings: Settings, fake_stripe: FakeStripe) -> Settings:
    return with_billing(
        settings,
        api_base=fake_stripe.api_base,
        secret_key=fake_stripe.secret_key,
        webhook_secret=fake_stripe.webhook_secret,
    )


@pytest.fixture(scope="module")
def client(app_settings: Settings, db_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(app_settings, "mcp", database_url=db_url)) as c:
        yield c


@pytest.fixture(scope="module")
def new_user(settings: Settings, db_url: str) -> Callable[..., tuple[str, Headers]]:
    """Make a user with an API key of `scope`; returns (user_id, headers)."""

    def make(scope: str = "write", prefix: str = "user") -> tuple[str, Headers]:
        user_id = f"{prefix}-{uuid.uuid4().hex[:8]}"
        return user_id, {"X-API-Key": create_key(db_url, settings, user_id, scope)}

    return make


@pytest.fixture(scope="module")
def signed_up(client: TestClient, new_user: Callable[..., tuple[str, Headers]]) -> Callable[..., tuple[str, Headers]]:
    """A user who has called POST /users/ensure (so holds the free plan's credits)."""

    def make(scope: str = "write", prefix: str = "user") -> tuple[str, Headers]:
        user_id, headers = new_user(scope, prefix)
        response = client.post("/api/v1/users/ensure", json={}, headers=headers)
        assert response.status_code == 200, response.text
        return user_id, headers

    return make
