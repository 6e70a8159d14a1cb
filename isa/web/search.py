"""Web search providers behind one interface; Brave Search's API is the first."""

from __future__ import annotations

from typing import Any, Protocol

import httpx


class SearchError(Exception):
    """The provider is missing, refused the request or answered with something unusable."""


class SearchProvider(Protocol):
    name: str

    async def search(self, query: str, count: int) -> list[dict[str, str]]: ...


class BraveSearch:
    """GET {base}/res/v1/web/search with the X-Subscription-Token header; results from `web.results`."""

    name = "brave"

    def __init__(self, api_key: str, api_base: str, timeout: float) -> None:
        self.api_key = api_key
        self.api_base = api_base.rstrip("/")
        self.timeout = timeout

    async def search(self, query: str, count: int) -> list[dict[str, str]]:
        headers = {"Accept": "application/json", "X-Subscription-Token": self.api_key}
        params: dict[str, Any] = {"q": query, "count": count}
        try:
            async with httpx.AsyncClient(timeout=self.timeout, trust_env=False) as client:
                response = await client.get(f"{self.api_base}/res/v1/web/search", params=params, headers=headers)
        except httpx.HTTPError as exc:
            raise SearchError(f"the search provider is unreachable ({type(exc).__name__})") from None
        if response.status_code in (401, 403):
            raise SearchError("the search provider refused the configured API key")
        if response.status_code == 429:
            raise SearchError("the search provider's rate limit was hit; try again later")
        if response.status_code != 200:
            raise SearchError(f"the search provider answered HTTP {response.status_code}")
        try:
            results = response.json().get("web", {}).get("results", [])
        except ValueError:
            raise SearchError("the search provider's answer is not JSON") from None
        return [
            {"title": str(r.get("title", "")), "url": str(r.get("url", "")), "snippet": str(r.get("description", ""))}
            for r in results[:count]
            if isinstance(r, dict) and r.get("url")
        ]
