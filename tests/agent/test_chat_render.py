"""The chat page renders answers the way people read them, in a real headless Chromium against role all.

Markdown (tables, code, lists) rendered and sanitised, tool cards with results and images, approvals in the card,
stop and retry, clear errors, screenshots at phone and desktop width, and an axe-core check. One browser per module.
"""

from __future__ import annotations

import base64
import re
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from isa.core.settings import Settings
from tests.agent.sample_domain.tools import TEST_PNG
from tests.support.agent import FAKE_MODEL, new_user, sync_catalog
from tests.support.browser import CHROMIUM, artifacts_dir, chromium
from tests.support.fake_openai import FakeOpenAI, Reply, call
from tests.support.procs import wait_for

pytestmark = pytest.mark.skipif(not shutil.which(CHROMIUM), reason="Debian chromium is not installed")

MARKDOWN = """## Results

Here is **bold** text and `inline code`.

| city | high |
|------|------|
| Paris | 21 |
| Oslo | 12 |

- first item
- second item

```python
def greet(name):
    return "hello " + name
```
"""

HOSTILE = """**Careful** answer.

<img src="x" onerror="window.__pwned = 'img'">
<a href="javascript:window.__pwned='link'">click me</a>

[also click](javascript:window.__pwned='md') and [a safe link](https://example.org/docs) and
<a href=" JaVaScRiPt:window.__pwned='spaced'">spaced</a>

<script>window.__pwned = 'script'</script>

<div onclick="window.__pwned='div'" style="color:red">styled</div>

<iframe src="javascript:window.__pwned='frame'"></iframe>
"""


@pytest.fixture(scope="module", autouse=True)
def sample_tools_in_catalog(node: str, all_settings: Settings, db_url: str) -> None:
    """The catalog holds the test domain's tools: an earlier module's node without that domain may have synced
    them away (before the browser starts: this runs its own event loop)."""
    sync_catalog(db_url, all_settings)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium(30_000) as browser:
        yield browser


@pytest.fixture()
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.csp_errors = []  # type: ignore[attr-defined]
    page.on("console", lambda m: page.csp_errors.append(m.text) if "Content Security Policy" in m.text else None)
    try:
        yield page
    finally:
        context.close()


def user_key(db_url: str, settings: Settings, credits: int = 100) -> str:
    """A fresh user's key, made on another thread: the module's Playwright runs its own event loop on this one."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(new_user, db_url, settings, credits).result()[1]


def sign_in(page: Any, node: str, key: str) -> None:
    from playwright.sync_api import expect

    page.goto(node + "/")
    page.get_by_label("API key or access token").fill(key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#who-name")).to_contain_text("Signed in as")


def send(page: Any, text: str) -> None:
    page.get_by_label("Message").fill(text)
    page.keyboard.press("Enter")


def finished_turns(page: Any, n: int) -> None:
    from playwright.sync_api import expect

    expect(page.locator("#messages")).to_have_attribute("data-done", str(n))


def test_an_answer_in_markdown_renders_as_table_code_and_list_with_no_csp_error(
    node: str, fake: FakeOpenAI, all_settings: Settings, db_url: str, page: Any
) -> None:
    from playwright.sync_api import expect

    key = user_key(db_url, all_settings)
    fake.script(FAKE_MODEL, Reply(text=MARKDOWN, chunks=8))
    sign_in(page, node, key)
    send(page, "compare the cities")
    finished_turns(page, 1)
    answer = page.locator("#messages .assistant").last
    expect(answer.locator("h2")).to_have_text("Results")
    expect(answer.locator("table td").first).to_have_text("Paris")
    expect(answer.locator("strong")).to_have_text("bold")
    expect(answer.locator("ul li")).to_have_count(2)
    expect(answer.locator("pre code.hljs")).to_contain_text("def greet(name):")
    expect(answer.get_by_role("button", name="Copy code")).to_be_visible()
    expect(answer.get_by_role("button", name="Copy answer")).to_be_visible()
    assert "**" not in answer.inner_text()
    assert not page.csp_errors, page.csp_errors


def test_hostile_html_in_an_answer_is_neutralised_and_no_script_from_it_runs(
    node: str, fake: FakeOpenAI, all_settings: Settings, db_url: str, page: Any
) -> None:
    from playwright.sync_api import expect

    key = user_key(db_url, all_settings)
    fake.script(FAKE_MODEL, Reply(text=HOSTILE, chunks=6))
    sign_in(page, node, key)
    send(page, "say something risky")
    finished_turns(page, 1)
    answer = page.locator("#messages .assistant").last
    expect(answer.locator("strong")).to_have_text("Careful")
    handlers = page.evaluate(
        """() => [...document.querySelectorAll('#messages *')].flatMap((e) => [...e.attributes]
             .filter((a) => a.name.startsWith('on') || a.name === 'style').map((a) => a.name))"""
    )
    assert handlers == []
    assert page.locator("#messages script, #messages iframe, img[onerror]").count() == 0
    assert page.locator('a[href^="javascript:"]').count() == 0
    safe = answer.get_by_role("link", name="a safe link")
    expect(safe).to_have_attribute("rel", "noopener noreferrer")
    expect(safe).to_have_attribute("target", "_blank")
    assert page.evaluate("() => window.__pwned") is None


def test_a_tool_card_shows_its_arguments_state_duration_result_and_image(
    node: str, fake: FakeOpenAI, all_settings: Settings, db_url: str, page: Any
) -> None:
    from playwright.sync_api import expect

    key = user_key(db_url, all_settings)
    fake.script(
        FAKE_MODEL,
        Reply(text="Drawing it.", tool_calls=[call("draw_test_picture", {"subject": "a red square"})]),
        Reply(text="Here is **your picture**."),
    )
    sign_in(page, node, key)
    send(page, "draw me a test picture of a red square")
    finished_turns(page, 1)
    card = page.locator("#messages .card.tool[data-tool='draw_test_picture']")
    expect(card).to_have_attribute("data-state", "finished")
    expect(card.locator(".tool-state")).to_have_text("Finished")
    expect(card.locator(".tool-time")).to_have_text(re.compile(r"^\d+(\.\d)? m?s$"))
    expect(card.locator("details.args pre")).to_contain_text('"subject": "a red square"')
    result = card.locator("details.result")
    expect(result.locator("pre")).to_be_hidden()  # collapsed until asked
    result.locator("summary").click()
    expect(result.locator("pre")).to_contain_text('"status": "success"')
    image = card.locator(".images img")
    expect(image).to_be_visible()
    assert page.evaluate("(img) => img.naturalWidth", image.element_handle()) == 8
    card.get_by_role("button", name="Enlarge").click()
    viewer = page.locator("#viewer")
    expect(viewer).to_be_visible()
    assert str(viewer.locator("a").get_attribute("href")).startswith("data:image/png;base64,")
    viewer.get_by_role("button", name="Close").click()
    expect(page.locator("#messages .assistant strong")).to_have_text("your picture")


def test_a_chart_saved_as_a_file_shows_inline_and_a_reopened_conversation_keeps_its_card_and_attachment(
    node: str, fake: FakeOpenAI, all_settings: Settings, db_url: str, page: Any
) -> None:
    from playwright.sync_api import expect

    key = user_key(db_url, all_settings)
    fake.script(
        FAKE_MODEL,
        Reply(text="Charting it.", tool_calls=[call("chart_test_picture", {"title": "sales by month"})]),
        Reply(text="Here is **your chart**."),
    )
    sign_in(page, node, key)
    photo = {"name": "photo.png", "mimeType": "image/png", "buffer": base64.b64decode(TEST_PNG)}
    page.locator("#file").set_input_files(files=[photo])
    expect(page.locator("#attached")).to_contain_text("photo.png")
    send(page, "make a test chart of sales by month")
    finished_turns(page, 1)

    def shows_the_chart(card: Any) -> None:
        image = card.locator(".images button[data-file-id] img")
        expect(image).to_be_visible()  # fetched with the key from the files content route, shown as blob:
        assert str(image.get_attribute("src")).startswith("blob:")
        assert page.evaluate("(img) => img.naturalWidth", image.element_handle()) == 8

    card = page.locator("#messages .card.tool[data-tool='chart_test_picture']")
    expect(card).to_have_attribute("data-state", "finished")
    shows_the_chart(card)
    expect(card.locator(".images img")).to_have_count(1)
    assert not page.csp_errors, page.csp_errors

    page.get_by_role("button", name="New chat").click()
    expect(page.locator("#messages .card")).to_have_count(0)
    page.locator("#sessions li.session button.open").first.click()
    card = page.locator("#messages .card.tool[data-tool='chart_test_picture']")
    expect(card).to_have_attribute("data-state", "finished")
    expect(card.locator(".tool-time")).to_have_text(re.compile(r"^\d+(\.\d)? m?s$"))
    result = card.locator("details.result")
    result.locator("summary").click()
    expect(result.locator("pre")).to_contain_text('"file_id"')
    shows_the_chart(card)
    attachment = page.locator("#messages .user").first.locator(".images img")
    expect(attachment).to_be_visible()  # the small attached image is previewed again
    assert str(attachment.get_attribute("src")).startswith("blob:")
    expect(page.locator("#messages .assistant strong")).to_have_text("your chart")
    assert not page.csp_errors, page.csp_errors


def test_an_approval_is_decided_in_the_tool_card_and_the_run_continues(
    node: str, fake: FakeOpenAI, all_settings: Settings, db_url: str, page: Any
) -> None:
    from playwright.sync_api import expect

    key = user_key(db_url, all_settings)
    fake.script(
        FAKE_MODEL,
        Reply(text="Sure, deleting them now.", tool_calls=[call("delete_my_memories", {"memory_type": "working"})]),
        Reply(text="Done: your working memories are deleted.", chunks=5),
    )
    sign_in(page, node, key)
    send(page, "please delete my working memories")
    card = page.locator("#messages .card.tool[data-tool='delete_my_memories']")
    expect(card).to_have_attribute("data-state", "waiting")
    approve = card.get_by_role("button", name="Approve")
    expect(approve).to_be_focused()
    expect(card.locator("details.args pre")).to_contain_text('"memory_type": "working"')
    approve.click()
    expect(card.locator(".decided")).to_have_text("Approved")
    expect(card).to_have_attribute("data-state", "finished")
    expect(page.locator("#messages .assistant").last).to_contain_text("Done: your working memories are deleted.")


def test_stop_ends_a_running_answer_and_retry_sends_the_message_again(
    node: str, fake: FakeOpenAI, all_settings: Settings, db_url: str, page: Any
) -> None:
    from playwright.sync_api import expect

    key = user_key(db_url, all_settings)
    fake.script(
        FAKE_MODEL,
        Reply(text="word " * 60, chunks=60, chunk_delay=0.25),
        Reply(text="The second try answers **at once**."),
    )
    sign_in(page, node, key)
    send(page, "tell me a long story")
    expect(page.locator("#messages .assistant")).to_contain_text("word")
    page.get_by_role("button", name="Stop").click()
    expect(page.locator("#messages .stopped")).to_contain_text("Stopped")
    wait_for(lambda: fake.client_disconnects >= 1, timeout=15)  # the run was cancelled up to the provider
    expect(page.get_by_role("button", name="Stop")).to_be_hidden()
    assert "word " * 60 not in page.locator("#messages").inner_text()
    page.get_by_role("button", name="Retry").click()
    expect(page.locator("#messages .assistant strong")).to_have_text("at once")
    expect(page.locator("#messages .user")).to_have_count(2)


def test_a_failing_model_and_an_empty_balance_each_show_a_clear_message(
    node: str, fake: FakeOpenAI, all_settings: Settings, db_url: str, page: Any
) -> None:
    from playwright.sync_api import expect

    key = user_key(db_url, all_settings)
    fake.script(FAKE_MODEL, Reply.error(503, times=3, message="overloaded"))
    sign_in(page, node, key)
    send(page, "hello there")
    alert = page.locator("#messages .error[role='alert']")
    expect(alert).to_contain_text("The chat model is unavailable right now")
    expect(page.get_by_label("Message")).to_be_enabled()

    broke = user_key(db_url, all_settings, credits=0)
    page.get_by_role("button", name="Sign out").click()
    sign_in(page, node, broke)
    send(page, "hello again")
    expect(page.locator("#messages .error[role='alert']").last).to_contain_text("You have run out of credits")


def test_the_page_reads_at_phone_and_desktop_width_and_axe_finds_no_serious_violation(
    node: str, fake: FakeOpenAI, all_settings: Settings, db_url: str, page: Any
) -> None:
    from axe_playwright_python.sync_playwright import Axe
    from playwright.sync_api import expect

    key = user_key(db_url, all_settings)
    long_title = "What the weather in Paris and Oslo will be like over the whole long weekend"
    fake.script(
        FAKE_MODEL,
        Reply(text="Checking.", tool_calls=[call("weather_forecast", {"city": "Paris"})]),
        Reply(text=MARKDOWN),
    )
    sign_in(page, node, key)
    send(page, long_title)
    finished_turns(page, 1)
    session = page.locator("#sessions li.session").first
    expect(session).to_be_visible()
    page.get_by_label("Search conversations").fill("weather")
    expect(page.locator("#sessions li.session")).to_have_count(1)
    page.get_by_label("Search conversations").fill("no such conversation at all")
    expect(page.locator("#sessions li.empty")).to_have_text("No conversation matches.")
    page.get_by_label("Search conversations").fill("")
    actions = page.locator("#sessions .more").first
    actions.click()
    expect(page.locator("#sessions .menu").first.get_by_role("button", name="Rename")).to_be_focused()
    page.keyboard.press("Escape")
    expect(actions).to_be_focused()
    expect(page.locator("#credits")).to_contain_text("Credits left:")
    page.screenshot(path=str(artifacts_dir() / "chat-render-desktop.png"), full_page=True)

    results = Axe().run(page)
    serious = [v["id"] for v in results.response["violations"] if v["impact"] in ("serious", "critical")]
    assert serious == [], results.generate_report()

    page.set_viewport_size({"width": 390, "height": 844})
    expect(page.locator("#sidebar")).to_be_hidden()
    page.get_by_role("button", name="Conversations").click()
    expect(page.locator("#sidebar")).to_be_visible()
    page.screenshot(path=str(artifacts_dir() / "chat-render-phone.png"), full_page=True)
    results = Axe().run(page)
    serious = [v["id"] for v in results.response["violations"] if v["impact"] in ("serious", "critical")]
    assert serious == [], results.generate_report()
    assert (artifacts_dir() / "chat-render-phone.png").stat().st_size > 1000
