"""A local stand-in for Brave Search's web search API (GET /res/v1/web/search, X-Subscription-Token)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

KEY = "brave-test-key"


@dataclass
class FakeBrave:
    requests: list[dict[str, Any]] = field(default_factory=list)

    def app(self) -> Starlette:
        async def search(request: Request) -> JSONResponse:
            self.requests.append({"params": dict(request.query_params), "headers": dict(request.headers)})
            if request.headers.get("x-subscription-token") != KEY:
                return JSONResponse({"type": "ErrorResponse", "error": {"code": "SUBSCRIPTION_TOKEN_INVALID"}}, 401)
            query = request.query_params.get("q", "")
            count = int(request.query_params.get("count", "20"))
            results = [
                {
                    "type": "search_result",
                    "title": f"Result {i} for {query}",
                    "url": f"https://example.org/{i}",
                    "description": f"About <strong>{query}</strong>, number {i}.",
                    "language": "en",
                }
                for i in range(1, 31)
            ][:count]
            return JSONResponse(
                {"type": "search", "query": {"original": query}, "web": {"type": "search", "results": results}}
            )

        return Starlette(routes=[Route("/res/v1/web/search", search)])
