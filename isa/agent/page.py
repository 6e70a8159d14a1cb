"""The chat page: three static files from the package, served with a strict Content-Security-Policy."""

from __future__ import annotations

from functools import cache
from importlib import resources

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from isa.agent.settings import AgentSettings

_FILES = {
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}


@cache
def _read(name: str) -> bytes:
    return (resources.files("isa.agent") / "static" / name).read_bytes()


def csp(settings: AgentSettings) -> str:
    """Scripts and styles only from this origin (no inline code); fetches to this origin and the mcp node."""
    connect = "'self'" + (f" {settings.public_mcp_url.rstrip('/')}" if settings.public_mcp_url else "")
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"connect-src {connect}; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    )


def _headers(settings: AgentSettings) -> dict[str, str]:
    return {
        "Content-Security-Policy": csp(settings),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
        "Cache-Control": "no-cache",
    }


def routes(settings: AgentSettings) -> list[Route]:
    headers = _headers(settings)

    async def index(request: Request) -> Response:
        return Response(_read("index.html"), media_type="text/html; charset=utf-8", headers=headers)

    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in _FILES:
            return Response("not found", status_code=404, media_type="text/plain")
        return Response(_read(name), media_type=_FILES[name], headers=headers)

    return [
        Route("/", index, methods=["GET"]),
        Route("/api/chat/static/{name}", asset, methods=["GET"]),
    ]
