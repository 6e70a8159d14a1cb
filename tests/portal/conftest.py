"""A role-all node (the portal, the user service, MCP and the catalog in one process) for the portal's tests."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from isa.app import create_app
from isa.core.settings import Settings
from tests.support.agent import SAMPLE_DOMAIN, sync_catalog
from tests.support.mcp_servers import serve_asgi, with_domains
from tests.support.oauth import oauth_settings
from tests.support.procs import wait_for


@pytest.fixture(scope="module")
def node(settings: Settings, db_url: str) -> Iterator[str]:
    """Serving on loopback, ready (the catalog's first sync done) before a test opens the page; this node is its
    own OAuth authorization server (isa tokens on), so the portal can sign in through it."""
    sync_catalog(db_url, settings)
    with with_domains(SAMPLE_DOMAIN, role="all"):
        app = create_app(oauth_settings(settings), "all", database_url=db_url)
    with serve_asgi(app) as url:
        wait_for(lambda: httpx.get(url + "/health/ready", timeout=5).status_code == 200, timeout=120)
        yield url
