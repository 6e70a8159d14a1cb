"""HTTP of upstream OAuth grants (docs/federation.md): start one, see it, revoke it, and the callback that ends one.

A user starts their own grant on a per-user server; an admin starts the server's own (`?grant=server`). The callback
is opened by the user's browser, which carries no isa credential: the `state` (hashed, single use, 10 minutes) binds
it to whoever started it; when the request does carry a credential, it must be that same caller's.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from isa.auth import require_principal
from isa.auth.principal import Principal
from isa.catalog.federation import Federation
from isa.catalog.federation_oauth import CALLBACK_PATH
from isa.core.errors import ApiError
from isa.core.http import json_response, requires


def _federation(request: Request) -> Federation:
    return request.app.state.isa.get("catalog.federation", Federation)  # type: ignore[no-any-return]


async def _whose(request: Request, principal: Principal) -> str | None:
    """The grant this request is about: the caller's own on a per-user server, else the server's (admin only)."""
    federation, server = _federation(request), request.path_params["name"]
    reg = await federation.oauth.registered(server)
    if reg.per_user and request.query_params.get("grant") != "server":
        return principal.user_id
    principal.require("admin")
    return None


@requires(require_principal, "read")
async def start(request: Request, principal: Principal) -> JSONResponse:
    """An authorization URL for the caller to open in a browser (once, within 10 minutes)."""
    user_id = await _whose(request, principal)
    oauth, server = _federation(request).oauth, request.path_params["name"]
    return JSONResponse(await oauth.start(server, principal.user_id, for_user=user_id is not None), status_code=201)


@requires(require_principal, "read")
async def grant(request: Request, principal: Principal) -> JSONResponse:
    """GET: whether isa holds the grant (never the token); DELETE: revoke it (here and, when offered, upstream)."""
    user_id = await _whose(request, principal)
    oauth, server = _federation(request).oauth, request.path_params["name"]
    if request.method == "DELETE":
        await oauth.revoke(server, user_id)
    return json_response(await oauth.status(server, user_id))


async def callback(request: Request) -> JSONResponse:
    query = request.query_params
    state = query.get("state")
    if not state:
        raise ApiError(400, "invalid_oauth_state", "the callback carries no state")
    caller = (await require_principal(request, "read")).user_id if "authorization" in request.headers else None
    done = await _federation(request).oauth_callback(
        state, query.get("code"), query.get("iss"), query.get("error"), caller
    )
    return json_response(done, headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})


ROUTES = [
    Route("/catalog/servers/{name:str}/oauth/start", start, methods=["POST"]),
    Route("/catalog/servers/{name:str}/oauth", grant, methods=["GET", "DELETE"]),
    Route(CALLBACK_PATH, callback, methods=["GET"]),
]
