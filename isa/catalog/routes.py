"""HTTP for discovery and the catalog (mcp role). Every route needs a principal; errors are 4xx with a code."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from isa.auth import require_principal
from isa.auth.principal import Principal
from isa.catalog.federation import Federation, parse_header
from isa.catalog.federation_oauth import callback_url
from isa.catalog.federation_oauth_routes import ROUTES as OAUTH_ROUTES
from isa.catalog.importer import parse_import
from isa.catalog.models import SearchFilters
from isa.catalog.schemas import (
    DISCOVER_RANKED_CHARS,
    AddServerBody,
    CredentialBody,
    DiscoverBody,
    SearchBody,
    SecuritySearchBody,
    VirtualServerBody,
)
from isa.catalog.service import CatalogService
from isa.catalog.virtual import VirtualServers
from isa.core.errors import ApiError
from isa.core.http import json_body, json_response, load_json, requires

M = TypeVar("M", bound=BaseModel)
# Said when nothing passed: every result is either above the relevance floor and usable by the caller, or absent.
NOTHING_RELEVANT = "nothing you may use is relevant enough to this request (see docs/discovery.md, relevance floor)"


def _service(request: Request) -> CatalogService:
    return request.app.state.isa.get("catalog", CatalogService)  # type: ignore[no-any-return]


def _federation(request: Request) -> Federation:
    return request.app.state.isa.get("catalog.federation", Federation)  # type: ignore[no-any-return]


def _virtual(request: Request) -> VirtualServers:
    return request.app.state.isa.get("catalog.virtual", VirtualServers)  # type: ignore[no-any-return]


async def _json(request: Request) -> Any:
    return load_json(await request.body())


def _limit(request: Request, default: int = 1000) -> int:
    raw = request.query_params.get("limit", str(default))
    if not raw.isdigit() or not 1 <= int(raw) <= 10_000:
        raise ApiError(422, "invalid_request", "limit must be an integer between 1 and 10000")
    return int(raw)


@requires(require_principal, "read")
async def discover(request: Request, principal: Principal) -> JSONResponse:
    body = await json_body(request, DiscoverBody)
    head = body.request[:DISCOVER_RANKED_CHARS]
    found = await _service(request).discover(head, body.max_results.model_dump(), principal, body.min_similarity)
    out: dict[str, Any] = {"capabilities": found}
    if not any(found.values()):
        out["message"] = NOTHING_RELEVANT
    if len(body.request) > DISCOVER_RANKED_CHARS:
        # Said in the response, so a caller knows the tail (a pasted document, say) did not steer the ranking.
        out["request_truncated"] = {"request_chars": len(body.request), "ranked_chars": DISCOVER_RANKED_CHARS}
    return JSONResponse(out)


@requires(require_principal, "read")
async def search(request: Request, principal: Principal) -> JSONResponse:
    body = await json_body(request, SearchBody)
    f = body.filters
    filters = SearchFilters(
        types=tuple(f.types),
        categories=tuple(f.categories),
        servers=tuple(f.servers),
        security_levels=tuple(f.security_levels),
        min_score=f.min_score,
        min_similarity=f.min_similarity,
        max_results=body.max_results,
        mode=body.mode,
    )
    results = await _service(request).search(body.query, filters, principal)
    out: dict[str, Any] = {
        "query": body.query,
        "filters": f.model_dump(),
        "mode": body.mode,
        "results": results,
        "result_count": len(results),
        "max_results": body.max_results,
    }
    if not results:
        out["message"] = NOTHING_RELEVANT
    return JSONResponse(out)


@requires(require_principal, "read")
async def capabilities(request: Request, principal: Principal) -> JSONResponse:
    return JSONResponse({"capabilities": await _service(request).capabilities(_limit(request), principal)})


@requires(require_principal, "read")
async def stats(request: Request, _principal: Principal) -> JSONResponse:
    return JSONResponse(await _service(request).stats())


@requires(require_principal, "read")
async def security_levels(request: Request, principal: Principal) -> JSONResponse:
    return JSONResponse(await _service(request).security_levels(_limit(request), principal))


@requires(require_principal, "read")
async def security_search(request: Request, _principal: Principal) -> JSONResponse:
    body = await json_body(request, SecuritySearchBody)
    level = "LOW" if body.security_level == "DEFAULT" else body.security_level
    tools = await _service(request).tools_at_level(level, body.max_results)
    return JSONResponse({"security_level": level, "tools": tools, "count": len(tools)})


@requires(require_principal, "read")
async def list_servers(request: Request, _principal: Principal) -> JSONResponse:
    return json_response({"servers": await _federation(request).list_servers()})


@requires(require_principal, "admin")
async def add_server(request: Request, principal: Principal) -> JSONResponse:
    body = await json_body(request, AddServerBody)
    if body.auth == "oauth":  # isa registers as the server's client; the admin opens the URL returned
        if body.headers or body.user_header:
            raise ApiError(422, "invalid_request", "with auth 'oauth' isa holds the credentials: no headers")
        redirect = callback_url(request.app.state.isa.settings, _service(request).settings, str(request.base_url))
        federation = _federation(request)
        added = await federation.add_oauth(body.name, body.url, body.per_user, redirect, principal.user_id)
        return JSONResponse({"added": added}, status_code=201)
    headers = dict(parse_header(f"{k}: {v}") for k, v in body.headers.items())
    added = await _federation(request).add(body.name, body.url, headers, body.user_header)
    return JSONResponse({"added": added}, status_code=201)


@requires(require_principal, "admin")
async def sync_server(request: Request, _principal: Principal) -> JSONResponse:
    return JSONResponse({"synced": await _federation(request).sync(request.path_params["name"])})


@requires(require_principal, "read")
async def credential(request: Request, principal: Principal) -> JSONResponse:
    """A user's own credential for a server that acts as them: stored (PUT), revoked (DELETE), checked (GET)."""
    federation, server = _federation(request), request.path_params["name"]
    if request.method == "PUT":
        body = await json_body(request, CredentialBody)
        await federation.store_credential(server, principal.user_id, body.credential)
    elif request.method == "DELETE":
        await federation.revoke_credential(server, principal.user_id)
    return json_response(await federation.credential_status(server, principal.user_id))


@requires(require_principal, "admin")
async def import_servers(request: Request, _principal: Principal) -> JSONResponse:
    specs = parse_import(await _json(request))
    return JSONResponse({"imported": await _service(request).import_servers(specs)}, status_code=201)


@requires(require_principal, "admin")
async def remove_server(request: Request, _principal: Principal) -> JSONResponse:
    removed = await _federation(request).remove(request.path_params["name"])
    return JSONResponse({"server": request.path_params["name"], "removed": removed})


@requires(require_principal, "read")
async def list_virtual(request: Request, _principal: Principal) -> JSONResponse:
    return json_response({"virtual_servers": await _virtual(request).list_all()})


@requires(require_principal, "read")
async def get_virtual(request: Request, _principal: Principal) -> JSONResponse:
    return json_response(await _virtual(request).describe(request.path_params["name"]))


@requires(require_principal, "admin")
async def create_virtual(request: Request, principal: Principal) -> JSONResponse:
    body = await json_body(request, VirtualServerBody)
    created = await _virtual(request).create(
        body.name, body.tools, body.prompts, body.resources, principal.user_id, body.description
    )
    return json_response(created, status_code=201)


@requires(require_principal, "admin")
async def remove_virtual(request: Request, _principal: Principal) -> JSONResponse:
    await _virtual(request).remove(request.path_params["name"])
    return JSONResponse({"removed": request.path_params["name"]})


ROUTES = [
    Route("/discover", discover, methods=["POST"]),
    Route("/search", search, methods=["POST"]),
    Route("/capabilities", capabilities, methods=["GET"]),
    Route("/stats", stats, methods=["GET"]),
    Route("/security/levels", security_levels, methods=["GET"]),
    Route("/security/search", security_search, methods=["POST"]),
    Route("/catalog/servers", list_servers, methods=["GET"]),
    Route("/catalog/import", import_servers, methods=["POST"]),
    Route("/catalog/servers", add_server, methods=["POST"]),
    Route("/catalog/servers/{name:str}", remove_server, methods=["DELETE"]),
    Route("/catalog/servers/{name:str}/sync", sync_server, methods=["POST"]),
    Route("/catalog/servers/{name:str}/credential", credential, methods=["GET", "PUT", "DELETE"]),
    *OAUTH_ROUTES,
    Route("/catalog/virtual", list_virtual, methods=["GET"]),
    Route("/catalog/virtual", create_virtual, methods=["POST"]),
    Route("/catalog/virtual/{name:str}", get_virtual, methods=["GET"]),
    Route("/catalog/virtual/{name:str}", remove_virtual, methods=["DELETE"]),
]
