"""The chat page on a node with no reachable chat model: it says so at sign-in, with the fix, and sends nothing."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from isa.app import create_app
from isa.core.settings import Settings
from tests.support.agent import AGENT_TOKEN_SECRET, new_user
from tests.support.browser import CHROMIUM, chromium
from tests.support.mcp_servers import serve_asgi, settings_with

pytestmark = pytest.mark.skipif(not shutil.which(CHROMIUM), reason="Debian chromium is not installed")


@pytest.fixture(scope="module")
def modelless(settings: Settings, db_url: str) -> Iterator[str]:
    """Role all with only the built-in cloud deployments (no key set) and no local server: no chat model."""
    bare = settings_with(
        settings, model={"local_url": "", "local_probe": False}, auth={"token_secret": AGENT_TOKEN_SECRET}
    )
    with serve_asgi(create_app(bare, "all", database_url=db_url)) as url:
        yield url


def test_with_no_chat_model_the_page_says_so_with_the_fix_instead_of_failing_each_message(
    modelless: str, settings: Settings, db_url: str
) -> None:
    from playwright.sync_api import expect

    _, key = new_user(db_url, settings)
    with chromium() as browser:
        page = browser.new_page()
        page.goto(modelless + "/")
        page.get_by_label("API key or access token").fill(key)
        page.get_by_role("button", name="Sign in").click()
        warning = page.locator("#model-warning")
        expect(warning).to_be_visible()
        expect(warning).to_contain_text("ISA_MODEL__LOCAL_URL=http://HOST:PORT/v1")
        expect(warning).to_contain_text("ollama")
        expect(page.get_by_role("button", name="Send")).to_be_disabled()
