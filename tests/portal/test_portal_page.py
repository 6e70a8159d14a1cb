"""The portal in a real headless Chromium (Debian's), one browser for the module, driving isa's public routes.

Screenshots of every section at desktop and phone width land in <basetemp>/portal-screens (or
$ISA_ARTIFACTS_DIR/portal-screens when set), kept as test artefacts.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from isa.core.settings import Settings
from tests.catalog.test_federation_live import live_upstream
from tests.support.auth import create_key
from tests.support.browser import CHROMIUM, chromium

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
USER_SECTIONS = ("overview", "keys", "catalog", "playground", "approvals", "activity", "connect")
ADMIN_SECTIONS = ("users", "servers", "metrics", "audit", "config")

pytestmark = pytest.mark.skipif(not shutil.which(CHROMIUM), reason="Debian chromium is not installed")


@pytest.fixture(scope="module")
def screens(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = os.environ.get("ISA_ARTIFACTS_DIR")
    path = (Path(root) if root else tmp_path_factory.getbasetemp()) / "portal-screens"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium(20_000) as browser:
        yield browser


def _key(db_url: str, settings: Settings, user_id: str, scope: str) -> str:
    """An operator-made key; in a worker thread, since Playwright's sync API runs a loop in this one."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(create_key, db_url, settings, user_id, scope).result()


def _user(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _h(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


class Portal:
    """One browser tab on /portal, failing the test on any CSP violation in the console."""

    def __init__(self, browser: Any, node: str, viewport: dict[str, int] = DESKTOP) -> None:
        self.page = browser.new_page(viewport=viewport)
        self.csp: list[str] = []
        self.page.on("console", lambda m: self.csp.append(m.text) if "Content Security Policy" in m.text else None)
        self.page.goto(node + "/portal")

    def sign_in(self, key: str) -> None:
        from playwright.sync_api import expect

        expect(self.page.locator("#app")).to_be_hidden()
        self.page.get_by_label("API key or access token").fill(key)
        self.page.get_by_role("button", name="Sign in", exact=True).click()
        expect(self.page.locator("#who-name")).to_contain_text("Signed in as")
        expect(self.page.locator("#signin")).to_be_hidden()

    def open(self, section: str) -> None:
        self.page.locator(f'#nav button[data-section="{section}"]').click()

    def sign_out(self) -> None:
        self.page.get_by_role("button", name="Sign out").click()

    def close(self) -> None:
        assert not self.csp, self.csp
        self.page.close()


def test_the_portal_answers_200_with_a_strict_csp_and_serves_only_its_own_files(node: str) -> None:
    page = httpx.get(node + "/portal")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert "<script>" not in page.text and 'src="/portal/static/portal.js"' in page.text
    assert httpx.get(node + "/portal/static/portal.js").status_code == 200
    assert httpx.get(node + "/portal/static/..%2Fpage.py").status_code == 404
    assert httpx.get(node + "/api/v1/admin/config").status_code == 401


def test_a_user_sees_usage_makes_and_revokes_a_key_calls_a_tool_and_decides_an_approval(
    node: str, browser: Any, settings: Settings, db_url: str, screens: Path
) -> None:
    from playwright.sync_api import expect

    user = _user("portal-user")
    key = _key(db_url, settings, user, "write")
    second = _key(db_url, settings, user, "write")  # approves what the first key asked for
    with httpx.Client(base_url=node, headers=_h(key), timeout=30) as http:
        for model in ("gpt-4o-mini", "gpt-4o-mini", "claude-haiku"):
            row = {"event_type": "llm", "model_name": model, "tokens_used": 5}
            made = http.post("/api/v1/users/me/usage", json=row)
            assert made.status_code in (200, 201), made.text
        assert http.get("/api/v1/admin/users").status_code == 403
        assert http.get("/api/v1/admin/mcp/audit").status_code == 403
        assert http.get("/api/v1/admin/config").status_code == 403

    portal = Portal(browser, node)
    page = portal.page
    portal.sign_in(key)
    expect(page.locator("#requests")).to_have_text("3")
    bars = page.locator("#chart-model rect.bar")
    expect(bars).to_have_count(2)
    assert {bars.nth(i).get_attribute("data-key"): bars.nth(i).get_attribute("data-value") for i in range(2)} == {
        "gpt-4o-mini": "2",
        "claude-haiku": "1",
    }
    expect(page.locator("#chart-day rect.bar")).to_have_count(1)
    # Stripe is not configured on this node: the plans route says so and no "Buy" button is offered.
    expect(page.locator("#payments-off")).to_be_visible()
    expect(page.locator("#plans button")).to_have_count(0)
    for name in ADMIN_SECTIONS:
        expect(page.locator(f'#nav button[data-section="{name}"]')).to_be_hidden()

    # A key made in the page works, and once revoked in the page it gets 401.
    portal.open("keys")
    page.get_by_label("Key name").fill("ci-runner")
    page.get_by_role("button", name="Create key").click()
    secret = page.locator("#new-key-value")
    expect(secret).to_contain_text("isa_")
    new_key = secret.inner_text().strip()
    assert httpx.get(node + "/api/v1/users/me", headers=_h(new_key)).status_code == 200
    page.once("dialog", lambda d: d.accept())
    page.get_by_role("button", name="Revoke key ci-runner").click()
    expect(page.locator("#keys")).to_contain_text("revoked")
    assert httpx.get(node + "/api/v1/users/me", headers=_h(new_key)).status_code == 401

    # The playground builds a form from the tool's schema and calls it over MCP.
    portal.open("playground")
    page.get_by_label("Tool name").fill("weather_forecast")
    page.get_by_role("button", name="Load form").click()
    page.get_by_label("City (required)").fill("Lisbon")
    page.get_by_role("button", name="Call tool").click()
    expect(page.locator("#call-result")).to_contain_text('"forecast": "sunny"')
    expect(page.locator("#call-result")).to_contain_text("Lisbon")

    # A HIGH tool asks for approval inline; the key that asked can't grant it, another key of the user can.
    page.get_by_label("Tool name").fill("delete_my_memories")
    page.get_by_role("button", name="Load form").click()
    expect(page.locator("#tool-info")).to_contain_text("delete_my_memories (HIGH)")
    page.get_by_label("Memory Type (required)").select_option("working")
    page.get_by_role("button", name="Call tool").click()
    expect(page.locator("#call-approval")).to_be_visible()
    page.get_by_role("button", name="Approve", exact=True).click()
    expect(page.locator("#status")).to_contain_text("can't grant it")
    portal.sign_out()
    portal.sign_in(second)
    portal.open("approvals")
    page.get_by_role("button", name="Approve delete_my_memories").click()
    expect(page.locator("#status")).to_contain_text("approved")
    expect(page.locator("#approvals")).to_contain_text("Nothing waits for you.")
    with httpx.Client(base_url=node, headers=_h(key), timeout=30) as http:
        decided = http.get("/api/v1/authorizations", params={"status": "approved"}).json()["authorizations"]
    assert [a["tool_name"] for a in decided] == ["delete_my_memories"]

    for name in USER_SECTIONS:
        portal.open(name)
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(screens / f"user-{name}-desktop.png"), full_page=True)
    portal.close()


def test_an_admin_sees_credits_catalog_and_keys_recharges_a_user_and_every_section_fits_a_phone(
    node: str, browser: Any, settings: Settings, db_url: str, screens: Path
) -> None:
    from playwright.sync_api import expect

    admin = _user("portal-admin")
    admin_key = _key(db_url, settings, admin, "admin")
    target = _user("portal-target")
    _key(db_url, settings, target, "read")
    with httpx.Client(base_url=node, headers=_h(admin_key), timeout=30) as http:
        assert http.post(f"/api/v1/admin/users/{admin}/credits/recharge", json={"amount": 42}).status_code == 200

    for viewport, label in ((DESKTOP, "desktop"), (PHONE, "phone")):
        portal = Portal(browser, node, viewport)
        page = portal.page
        portal.sign_in(admin_key)
        if label == "desktop":
            # The check of the issue: credits, the catalog with discover_tools, the caller's keys.
            expect(page.locator("#credits")).to_have_text("42")
            portal.open("catalog")
            expect(page.locator("#list-tools")).to_contain_text("discover_tools")
            portal.open("keys")
            expect(page.locator("#keys tbody tr")).to_have_count(1)
            expect(page.locator("#keys")).to_contain_text("live (this session)")

            portal.open("users")
            page.get_by_label("User to recharge").fill(target)
            page.get_by_label("Credits to add").fill("25")
            page.get_by_role("button", name="Recharge").click()
            expect(page.locator("#status")).to_contain_text(f"Recharged {target} with 25 credits")
            expect(page.locator("#users")).to_contain_text(target)
            with httpx.Client(base_url=node, headers=_h(admin_key), timeout=30) as http:
                balance = http.get(f"/api/v1/admin/users/{target}").json()["data"]["credits"]
            assert balance >= 25
            # A live MCP server added from the page: listed with its health, synced again on demand, removed.
            with live_upstream("echoes") as upstream:
                portal.open("servers")
                page.get_by_label("Server name").fill("echoes")
                page.get_by_label("MCP URL").fill(upstream.url)
                page.get_by_role("button", name="Add server").click()
                expect(page.locator("#status")).to_contain_text("Added echoes: 3 tools, 1 prompts, 1 resources")
                row = page.locator("#servers tbody tr", has_text="echoes")
                expect(row.locator("td").nth(2)).to_have_text("ok")  # health
                expect(row.locator("td").nth(3)).not_to_be_empty()  # last sync
                page.get_by_role("button", name="Sync server echoes").click()
                expect(page.locator("#status")).to_contain_text("Synced echoes: 3 tools")
                page.screenshot(path=str(screens / "servers-live-desktop.png"), full_page=True)
                page.once("dialog", lambda d: d.accept())
                page.get_by_role("button", name="Remove server echoes").click()
                expect(page.locator("#status")).to_contain_text("Removed echoes.")
                expect(page.locator("#servers")).not_to_contain_text("echoes")
            with httpx.Client(base_url=node, headers=_h(admin_key), timeout=30) as http:
                listed = http.get("/catalog/servers").json()["servers"]
            assert "echoes" not in {s["name"] for s in listed}
            assert next(s for s in listed if s["name"] == "isa")["source"] == "isa"
            portal.open("config")
            expect(page.locator("#config")).to_contain_text('"database"')
            assert (
                "postgresql://" not in page.locator("#config").inner_text()
                or "***" in page.locator("#config").inner_text()
            )
        for name in (*USER_SECTIONS, *ADMIN_SECTIONS):
            portal.open(name)
            expect(page.locator(f"#sec-{name}")).to_be_visible()
            page.wait_for_load_state("networkidle")
            page.screenshot(path=str(screens / f"{name}-{label}.png"), full_page=True)
        if label == "phone":
            # Nothing wider than the screen: the layout reflows instead of scrolling sideways.
            assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"] + 1
        portal.close()
    assert len(list(screens.glob("*-phone.png"))) == len(USER_SECTIONS) + len(ADMIN_SECTIONS)


def test_signing_in_through_the_oauth_server_keeps_a_token_not_the_key_and_signing_out_ends_it(
    node: str, browser: Any, settings: Settings, db_url: str
) -> None:
    from playwright.sync_api import expect

    user = _user("portal-oauth")
    key = _key(db_url, settings, user, "write")
    portal = Portal(browser, node)
    page = portal.page
    page.get_by_role("button", name="Sign in with isa (OAuth)").click()
    # isa's consent page (registration and PKCE S256 were done by the portal's script).
    page.get_by_label("Sign in with your isa API key").fill(key)
    page.get_by_role("button", name="Allow").click()
    expect(page.locator("#who-name")).to_have_text(f"Signed in as {user}")
    assert "code=" not in page.url and page.url.endswith("/portal/")
    token = page.evaluate("sessionStorage.getItem('isa.portal.key')")
    assert token and token != key and token.count(".") == 2  # an access token (JWT), never the API key
    assert key not in page.evaluate("JSON.stringify(sessionStorage)")
    assert httpx.get(node + "/api/v1/users/me", headers=_h(token)).json()["data"]["user_id"] == user

    # The token works on /mcp too (its resource): the playground calls a tool with it.
    portal.open("playground")
    page.get_by_label("Tool name").fill("weather_forecast")
    page.get_by_role("button", name="Load form").click()
    page.get_by_label("City (required)").fill("Porto")
    page.get_by_role("button", name="Call tool").click()
    expect(page.locator("#call-result")).to_contain_text("Porto")

    portal.sign_out()
    expect(page.locator("#signin")).to_be_visible()
    assert httpx.get(node + "/api/v1/users/me", headers=_h(token)).status_code == 401
    portal.close()
