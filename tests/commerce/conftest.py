"""A fake Shopify store on loopback and an mcp node selling from it, shared by the commerce suite.

One database and one node for the whole package: the node's first start embeds every tool into the discovery
catalog, which is the slow part; the modules use different users so their histories don't meet.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from isa.app import create_app
from isa.core.settings import Settings
from tests.conftest import create_database, db_url_for, drop_database
from tests.support.auth import create_key
from tests.support.fake_shopify import SHOP, FakeShopify
from tests.support.mcp_servers import serve_asgi, settings_with


@dataclass(frozen=True)
class Store:
    fake: FakeShopify
    url: str


@dataclass(frozen=True)
class Keys:
    alice: str
    alice_human: str  # alice's own key, for approving what her agent asked
    bob: str
    carol: str
    dave: str
    erin: str


@pytest.fixture(scope="package")
def db_url(pg_admin_url: str, template_db: str) -> Iterator[str]:
    name = create_database(pg_admin_url, template_db)
    yield db_url_for(pg_admin_url, name)
    drop_database(pg_admin_url, name)


@pytest.fixture(scope="package")
def shop() -> Iterator[Store]:
    fake = FakeShopify()
    with serve_asgi(fake.app()) as url:
        try:
            yield Store(fake, url)
        finally:
            fake.release()


def shop_settings(settings: Settings, shop: Store, **overrides: Any) -> Settings:
    shopify = {
        "store_domain": SHOP,
        "storefront_token": shop.fake.token,
        "webhook_secret": shop.fake.webhook_secret,
        "api_base": shop.url,
        "max_retry_wait_seconds": 1.0,
        **overrides,
    }
    return settings_with(settings, commerce={"shopify": shopify})


@pytest.fixture(scope="package")
def keys(settings: Settings, db_url: str) -> Keys:
    return Keys(
        alice=create_key(db_url, settings, "alice", "write"),
        alice_human=create_key(db_url, settings, "alice", "write"),
        bob=create_key(db_url, settings, "bob", "write"),
        carol=create_key(db_url, settings, "carol", "write"),
        dave=create_key(db_url, settings, "dave", "write"),
        erin=create_key(db_url, settings, "erin", "write"),
    )


@pytest.fixture(scope="package")
def node(settings: Settings, db_url: str, shop: Store, keys: Keys) -> Iterator[str]:
    """An mcp node selling from the fake store; yields its base URL."""
    app = create_app(shop_settings(settings, shop), "mcp", database_url=db_url)
    with serve_asgi(app) as url:
        yield url
