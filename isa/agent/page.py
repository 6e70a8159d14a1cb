"""The chat page: static files from the package (no build step), served with a strict Content-Security-Policy."""

from __future__ import annotations

from functools import cache
from importlib import resources

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from isa.agent.settings import AgentSettings

_JS, _CSS = "text/javascript; charset=utf-8", "text/css; charset=utf-8"
_FILES = {
    "app.js": _JS,
    "app.css": _CSS,
    "render.js": _JS,
    # Vendored libraries (versions and origin in static/vendor/README.md): Markdown, sanitiser, highlighter.
    "vendor/marked.umd.js": _JS,
    "vendor/purify.min.js": _JS,
    "vendor/highlight.min.js": _JS,
    "vendor/highlight-github.min.css": _CSS,
}


@cache
def _read(name: str) -> bytes:
    return (resources.files("isa.agent").joinpath("static", *name.split("/"))).read_bytes()


def csp(settings: AgentSettings) -> str:
    """Scripts and styles only from this origin (no inline code); fetches to this origin and the mcp node.
    Images: this origin, data: (a tool's image content) and blob: (files fetched with the user's token)."""
    connect = "'self'" + (f" {settings.public_mcp_url.rstrip('/')}" if settings.public_mcp_url else "")
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
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
        Route("/api/chat/static/{name:path}", asset, methods=["GET"]),
    ]
