"""The browser pool: one Debian chromium, a bounded number of isolated contexts, a per-user cap, hard timeouts.

Every context is new per call (no cookies or storage shared between calls or users), blocks service workers and
downloads, aborts any request whose URL the guard refuses before it leaves the browser, and sends the rest through
the egress proxy, which pins the address. The context is closed when the call ends, fails or times out.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from playwright.async_api import Browser, BrowserContext, Playwright, Route, async_playwright

from isa.core.egress import EgressBlocked, EgressPolicy
from isa.core.logging import get_logger
from isa.web.proxy import EgressProxy, _refuse
from isa.web.settings import WebSettings

log = get_logger(__name__)
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
CLOSE_TIMEOUT = 10.0
# Chromium's own service endpoints, which it still calls despite the flags above (the component updater was seen
# at start-up): public, so the guard alone would let them out. No page needs them; accounts.google.com (also
# called once at start-up, without cookies in a fresh profile) stays reachable because users do visit it.
BROWSER_SERVICE_HOSTS = (
    "update.googleapis.com",
    "clients2.google.com",
    "safebrowsing.googleapis.com",
    "optimizationguide-pa.googleapis.com",
    "content-autofill.googleapis.com",
    "clientservices.googleapis.com",
    "redirector.gvt1.com",
)


class BrowserProxy(EgressProxy):
    """The egress proxy, also refusing chromium's own background service hosts."""

    background_blocked = 0

    async def _dial(
        self, host: str, port: int, writer: asyncio.StreamWriter
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        name = host.strip("[]").rstrip(".").lower()
        if any(name == h or name.endswith("." + h) for h in BROWSER_SERVICE_HOSTS):
            self.background_blocked += 1
            await _refuse(writer, b"403 Forbidden")
            return None
        return await super()._dial(host, port, writer)


class BrowserBusy(Exception):
    """No browser context became free in time (for this user or overall)."""


class BrowserPool:
    """Lazily launched; `async with pool.context(user_id) as ctx:` lends one isolated context."""

    def __init__(self, settings: WebSettings, policy: EgressPolicy) -> None:
        self.settings = settings
        self.policy = policy
        self.proxy = BrowserProxy(policy)
        self._slots = asyncio.Semaphore(settings.max_contexts)
        self._per_user: dict[str, int] = {}
        self._user_freed = asyncio.Condition()
        self._launch_lock = asyncio.Lock()
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None
        self.active = 0
        self.peak = 0
        self.opened = 0
        self.closed = 0
        self.launches = 0
        self.user_peak = 0

    async def _ensure_browser(self) -> Browser:
        async with self._launch_lock:
            if self._browser is not None and self._browser.is_connected():
                return self._browser
            if self.proxy.port == 0:
                await self.proxy.start()
            if self._playwright is None:
                self._playwright = await async_playwright().start()
            args = [*CHROMIUM_ARGS, f"--proxy-server={self.proxy.url}", "--proxy-bypass-list=<-loopback>"]
            self._browser = await self._playwright.chromium.launch(
                executable_path=self.settings.chromium_path, args=args, headless=True, timeout=30_000
            )
            self.launches += 1
            log.info("browser_launched", launches=self.launches)
            return self._browser

    async def _acquire_user(self, user_id: str) -> None:
        async with self._user_freed:
            try:
                await asyncio.wait_for(
                    self._user_freed.wait_for(lambda: self._per_user.get(user_id, 0) < self.settings.per_user_contexts),
                    self.settings.queue_timeout_seconds,
                )
            except TimeoutError:
                raise BrowserBusy("too many browser sessions of yours are running; try again shortly") from None
            self._per_user[user_id] = self._per_user.get(user_id, 0) + 1
            self.user_peak = max(self.user_peak, self._per_user[user_id])

    async def _release_user(self, user_id: str) -> None:
        async with self._user_freed:
            left = self._per_user.get(user_id, 1) - 1
            if left:
                self._per_user[user_id] = left
            else:
                self._per_user.pop(user_id, None)
            self._user_freed.notify_all()

    async def _guard_route(self, route: Route) -> None:
        try:
            self.policy.check_static(route.request.url)
        except EgressBlocked:
            await route.abort("blockedbyclient")
            return
        await route.continue_()

    @contextlib.asynccontextmanager
    async def context(self, user_id: str) -> AsyncIterator[BrowserContext]:
        """One fresh context for one call; always closed afterwards."""
        await self._acquire_user(user_id)
        try:
            try:
                await asyncio.wait_for(self._slots.acquire(), self.settings.queue_timeout_seconds)
            except TimeoutError:
                raise BrowserBusy("every browser context is busy; try again shortly") from None
            try:
                browser = await self._ensure_browser()
                ctx = await browser.new_context(
                    service_workers="block", accept_downloads=False, viewport={"width": 1280, "height": 800}
                )
                self.opened += 1
                self.active += 1
                self.peak = max(self.peak, self.active)
                try:
                    ctx.set_default_timeout(self.settings.page_timeout_seconds * 1000)
                    await ctx.route("**/*", self._guard_route)
                    yield ctx
                finally:
                    await self._close_context(ctx)
            finally:
                self._slots.release()
        finally:
            await self._release_user(user_id)

    async def _close_context(self, ctx: BrowserContext) -> None:
        """Close even when the caller was cancelled; a context that won't close costs the browser a restart."""
        self.active -= 1
        self.closed += 1
        task = asyncio.ensure_future(ctx.close())
        try:
            await asyncio.wait_for(asyncio.shield(task), CLOSE_TIMEOUT)
        except (TimeoutError, asyncio.CancelledError, Exception) as exc:
            log.warning("browser_context_close_failed", error=type(exc).__name__)
            await self._restart()
            if isinstance(exc, asyncio.CancelledError):
                raise

    async def _restart(self) -> None:
        browser, self._browser = self._browser, None
        if browser is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(browser.close(), CLOSE_TIMEOUT)

    async def close(self) -> None:
        await self._restart()
        if self._playwright is not None:
            with contextlib.suppress(Exception):
                await self._playwright.stop()
            self._playwright = None
        await self.proxy.close()

    def stats(self) -> dict[str, Any]:
        return {"active": self.active, "peak": self.peak, "opened": self.opened, "closed": self.closed}
