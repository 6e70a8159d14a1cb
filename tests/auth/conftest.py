"""Fixtures for identity tests: an Auth0-style JWKS server on loopback and an app accepting every issuer."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from isa.core.settings import Settings
from tests.support.jwt_keys import JwksServer, SigningKey, app_with_whoami, jwt_settings


@pytest.fixture(scope="session")
def signing_key() -> SigningKey:
    return SigningKey.generate("tenant-key-1")


@pytest.fixture(scope="module")
def jwks(signing_key: SigningKey) -> Iterator[JwksServer]:
    with JwksServer([signing_key]) as server:
        yield server


@pytest.fixture(scope="module")
def client(settings: Settings, db_url: str, jwks: JwksServer) -> Iterator[TestClient]:
    """All issuers accepted, no principal cache (so a disabled user is refused on the next request)."""
    with TestClient(app_with_whoami(jwt_settings(settings, jwks.url), db_url)) as c:
        yield c
