"""The chat page in a real headless Chromium: sign in, stream an answer, see a tool call, approve, finish."""

from __future__ import annotations

import shutil

import pytest

from isa.core.settings import Settings
from tests.support.agent import FAKE_MODEL, new_user
from tests.support.browser import CHROMIUM, artifacts_dir, chromium
from tests.support.fake_openai import FakeOpenAI, Reply, call

pytestmark = pytest.mark.skipif(not shutil.which(CHROMIUM), reason="Debian chromium is not installed")


def test_a_user_signs_in_streams_an_answer_sees_the_tool_call_and_approves_it(
    node: str, fake: FakeOpenAI, all_settings: Settings, db_url: str
) -> None:
    from playwright.sync_api import expect

    _, key = new_user(db_url, all_settings)
    fake.script(
        FAKE_MODEL,
        Reply(text="Sure, deleting them now.", tool_calls=[call("delete_my_memories", {"memory_type": "working"})]),
        Reply(text="Done: your working memories are deleted.", chunks=5),
    )
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 420, "height": 800})  # a narrow screen
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        failed: list[str] = []
        page.on("response", lambda r: failed.append(r.url) if r.status >= 400 and "favicon" not in r.url else None)
        page.goto(node + "/")
        page.get_by_label("API key or access token").fill(key)
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator("#who-name")).to_contain_text("Signed in as")

        page.get_by_label("Message").fill("please delete my working memories")
        page.keyboard.press("Enter")
        log = page.locator("#messages")
        expect(log).to_contain_text("Sure, deleting them now.")
        card = log.locator(".card.tool[data-tool='delete_my_memories']")
        expect(card).to_be_visible()
        approve = card.get_by_role("button", name="Approve")
        expect(approve).to_be_visible()
        page.screenshot(path=str(artifacts_dir() / "chat-page-approval.png"), full_page=True)
        approve.click()
        expect(log).to_contain_text("Done: your working memories are deleted.")
        expect(card.get_by_role("button", name="Approve")).to_have_count(0)
        expect(page.locator("#sessions li.session")).to_have_count(1)
        page.screenshot(path=str(artifacts_dir() / "chat-page.png"), full_page=True)
        assert not [e for e in errors if "Content Security Policy" in e] and not failed, (errors, failed)
    assert (artifacts_dir() / "chat-page.png").stat().st_size > 1000
