"""Web crawl, search and screenshots: plain HTTP through the guard first, the pooled browser when a page needs it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page as BrowserPage

from isa.auth.principal import Principal
from isa.core.egress import EgressBlocked, EgressFailed, EgressPolicy, GuardedClient, Resolver, system_resolver
from isa.core.logging import get_logger
from isa.web.analysis import AnalysisUnavailable, ModelAnalyst
from isa.web.browser import BrowserBusy, BrowserPool
from isa.web.extract import Page, extract
from isa.web.proxy import BLOCKED_HEADER
from isa.web.search import BraveSearch, SearchError, SearchProvider
from isa.web.settings import WebSettings

log = get_logger(__name__)
TEXT_TYPES = ("text/plain", "application/json", "text/markdown", "text/csv", "application/xml", "text/xml")
# A static page with this little prose but scripts is probably rendered client-side.
JS_TEXT_THRESHOLD = 200
T = TypeVar("T")


class WebError(Exception):
    """A failure meant for the caller; `code` is stable (blocked, fetch_failed, busy, not_configured...)."""

    def __init__(self, code: str, message: str) -> None:
        # Callers show "{code}: {message}"; the egress guard's own messages already start with "blocked: ".
        message = message.removeprefix(f"{code}: ")
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Rendered:
    url: str
    html: str


class WebService:
    def __init__(
        self, settings: WebSettings, *, analyst: ModelAnalyst | None = None, resolver: Resolver = system_resolver
    ) -> None:
        self.settings = settings
        self.analyst = analyst
        self.policy = EgressPolicy(settings.allow_hosts, settings.allow_cidrs, resolver)
        self.client = GuardedClient(
            self.policy, settings.max_redirects, settings.max_bytes, settings.fetch_timeout_seconds
        )
        self.pool = BrowserPool(settings, self.policy)
        self.search_provider: SearchProvider | None = (
            BraveSearch(settings.brave_api_key, settings.brave_api_base, settings.search_timeout_seconds)
            if settings.brave_api_key
            else None
        )

    async def close(self) -> None:
        await self.pool.close()

    async def search(self, query: str, count: int) -> dict[str, Any]:
        if self.search_provider is None:
            raise WebError("not_configured", "web search is not configured (set web.brave_api_key)")
        try:
            results = await self.search_provider.search(query, min(max(count, 1), 20))
        except SearchError as exc:
            raise WebError("search_failed", str(exc)) from None
        return {"query": query, "provider": self.search_provider.name, "total": len(results), "results": results}

    async def crawl(
        self, user_id: str, url: str, analysis_request: str = "", principal: Principal | None = None
    ) -> dict[str, Any]:
        """One URL, or a JSON list of URLs to compare; Markdown out, and an answer from the model node if asked."""
        urls = _url_list(url)
        if len(urls) > self.settings.max_urls_per_crawl:
            raise WebError("invalid_request", f"at most {self.settings.max_urls_per_crawl} URLs per crawl")
        pages = await asyncio.gather(*(self._crawl_one(user_id, u) for u in urls), return_exceptions=True)
        for result in pages:
            if isinstance(result, BaseException) and not isinstance(result, WebError):
                raise result
        if len(urls) == 1:
            if isinstance(pages[0], BaseException):
                raise pages[0]
            out: dict[str, Any] = dict(pages[0])
        else:
            out = _compare(urls, pages)
        if analysis_request:
            out["analysis"] = None
            texts = [(p["final_url"], p["markdown"]) for p in pages if isinstance(p, dict)]
            if self.analyst is None or principal is None:
                out["analysis_note"] = (
                    "answering analysis_request needs the model node (services.model_url, or role all, and "
                    "auth.token_secret); "
                    "the extracted content is returned for you to analyse"
                )
            else:
                try:
                    out["analysis"] = await self.analyst.analyse(principal, analysis_request, texts)
                except AnalysisUnavailable as exc:
                    out["analysis_note"] = f"{exc}; the extracted content is returned for you to analyse"
        return out

    async def _crawl_one(self, user_id: str, url: str) -> dict[str, Any]:
        try:
            fetched = await self.client.fetch(url)  # vets and pins every hop
        except EgressBlocked as exc:
            raise WebError("blocked", str(exc)) from None
        except EgressFailed as exc:
            raise WebError("fetch_failed", str(exc)) from None
        kind = fetched.headers.get("content-type", "").split(";")[0].strip().lower()
        text = fetched.content.decode(_charset(fetched.headers.get("content-type", "")), errors="replace")
        rendered = False
        if kind in ("text/html", "application/xhtml+xml", ""):
            page = extract(text, fetched.url)
            if len(page.text) < JS_TEXT_THRESHOLD and page.scripts:
                page = extract((await self.render(user_id, fetched.url)).html, fetched.url)
                rendered = True
            markdown = page.markdown(fetched.url, self.settings.max_markdown_chars)
        elif kind.startswith("text/") or kind in TEXT_TYPES:
            page = Page(title=fetched.url, text=text)
            markdown = text[: self.settings.max_markdown_chars]
        else:
            raise WebError("unsupported_content", f"the page is {kind}, not text or HTML")
        return {
            "url": url,
            "final_url": fetched.url,
            "status": fetched.status,
            "title": page.title,
            "rendered": rendered,
            "markdown": markdown,
            "links": page.links[:50],
            "tables": len(page.tables),
        }

    async def render(self, user_id: str, url: str) -> Rendered:
        """The page's HTML after its scripts ran, from a pooled browser context."""

        async def run(page: BrowserPage) -> Rendered:
            return Rendered(page.url, await page.content())

        return await self.browse(user_id, url, run)

    async def screenshot(self, user_id: str, url: str) -> tuple[str, bytes]:
        async def run(page: BrowserPage) -> tuple[str, bytes]:
            return page.url, await page.screenshot(type="png", timeout=self.settings.page_timeout_seconds * 1000)

        return await self.browse(user_id, url, run)

    async def browse(
        self, user_id: str, url: str, action: Callable[[BrowserPage], Awaitable[T]], budget: float | None = None
    ) -> T:
        """Open `url` in a pooled context and run `action` on the page, all within `budget` (the page budget)."""
        try:
            await self.policy.vet(url)  # before the browser sees it: scheme, literals, names, DNS
        except EgressBlocked as exc:
            raise WebError("blocked", str(exc)) from None
        load = self.settings.page_timeout_seconds
        budget = budget or load
        try:
            async with self.pool.context(user_id) as ctx:
                crashed = False

                def on_crash(_: object) -> None:
                    nonlocal crashed
                    crashed = True

                try:
                    async with asyncio.timeout(budget):
                        page = await ctx.new_page()
                        page.on("crash", on_crash)
                        response = await page.goto(url, wait_until="load", timeout=min(load, budget) * 1000)
                        if response is not None and BLOCKED_HEADER.decode().lower() in response.headers:
                            raise WebError("blocked", "blocked: the page or a redirect hop is not a public address")
                        self.policy.check_static(page.url)  # the final URL, after in-browser redirects
                        return await action(page)
                except TimeoutError:
                    what = "the page did not load" if budget == load else "the browser run did not finish"
                    raise WebError("timeout", f"{what} within {budget:g} s") from None
                except EgressBlocked as exc:
                    raise WebError("blocked", str(exc)) from None
                except PlaywrightError as exc:
                    message = str(exc).split("\n", 1)[0]
                    if "ERR_TUNNEL_CONNECTION_FAILED" in message or "ERR_BLOCKED_BY_CLIENT" in message:
                        raise WebError("blocked", "blocked: the page or a redirect hop is not allowed") from None
                    # A renderer dying mid-navigation surfaces as "page crashed" or as an aborted, detached frame.
                    if crashed or "crash" in message.lower() or "frame was detached" in message:
                        raise WebError("crashed", "the page crashed the browser's renderer") from None
                    if "Timeout" in message:
                        raise WebError("timeout", f"the page did not load within {min(load, budget):g} s") from None
                    raise WebError("browser_failed", f"the browser could not load the page: {message[:200]}") from None
        except BrowserBusy as exc:
            raise WebError("busy", str(exc)) from None


def _url_list(url: str) -> list[str]:
    text = url.strip()
    if text.startswith("["):
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            raise WebError("invalid_request", "url looks like a JSON list but is not valid JSON") from None
        if not isinstance(value, list) or not value or not all(isinstance(u, str) for u in value):
            raise WebError("invalid_request", "url must be one URL or a JSON list of URL strings")
        return list(dict.fromkeys(value))
    return [text]


def _charset(content_type: str) -> str:
    for part in content_type.split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key.lower() == "charset" and value:
            try:
                "".encode(value.strip('"'))
                return value.strip('"')
            except LookupError:
                break
    return "utf-8"


def _compare(urls: list[str], pages: list[Any]) -> dict[str, Any]:
    """Side by side: a summary table, then each page's Markdown (or its error)."""
    rows = ["| URL | title | words | links | tables |", "| --- | --- | --- | --- | --- |"]
    sections: list[str] = []
    results: list[dict[str, Any]] = []
    for url, page in zip(urls, pages, strict=True):
        if isinstance(page, WebError):
            rows.append(f"| {url} | error: {page.code} | | | |")
            sections.append(f"## {url}\n\nerror ({page.code}): {page.message}")
            results.append({"url": url, "error": {"code": page.code, "message": page.message}})
            continue
        words = len(page["markdown"].split())
        title = page["title"].replace("|", "\\|")
        rows.append(f"| {url} | {title} | {words} | {len(page['links'])} | {page['tables']} |")
        sections.append(page["markdown"])
        results.append(page)
    markdown = "# Comparison\n\n" + "\n".join(rows) + "\n\n" + "\n\n---\n\n".join(sections)
    return {"urls": urls, "markdown": markdown, "pages": results}
