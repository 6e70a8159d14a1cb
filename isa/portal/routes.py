"""HTTP: the portal page and its two static files; the effective configuration (secrets masked) for admins."""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from isa.auth import require_principal
from isa.auth.principal import Principal
from isa.core.errors import ApiError
from isa.core.http import jsonable, requires
from isa.core.settings import mask_secrets

_FILES = {
    "portal.js": "text/javascript; charset=utf-8",
    "portal.css": "text/css; charset=utf-8",
}
# Only this origin: scripts and styles from files (no inline code), fetches to our own routes, the chart is SVG
# built by the script. Stripe Checkout is a top-level navigation, which connect-src does not govern.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}


@cache
def _read(name: str) -> bytes:
    return (resources.files("isa.portal") / "static" / name).read_bytes()


async def page(request: Request) -> Response:
    return Response(_read("index.html"), media_type="text/html; charset=utf-8", headers=HEADERS)


async def asset(request: Request) -> Response:
    name = request.path_params["name"]
    if name not in _FILES:
        raise ApiError(404, "not_found", "no such portal file")
    return Response(_read(name), media_type=_FILES[name], headers=HEADERS)


@requires(require_principal, "admin")
async def effective_config(request: Request, _principal: Principal) -> JSONResponse:
    """GET /api/v1/admin/config: this node's effective settings, secrets masked (what `isa config show` prints)."""
    settings = request.app.state.isa.settings
    shown: dict[str, Any] = {"env": settings.env, "role": settings.role, "data_dir": str(settings.data_dir)}
    shown.update({k: v for k, v in settings.raw.items() if k not in shown and k != "load_dotenv"})
    return JSONResponse(jsonable({"config": mask_secrets(shown)}), headers={"Cache-Control": "no-store"})


ROUTES = [
    Route("/portal", page, methods=["GET"]),
    Route("/portal/", page, methods=["GET"]),
    Route("/portal/static/{name}", asset, methods=["GET"]),
    Route("/api/v1/admin/config", effective_config, methods=["GET"]),
]
