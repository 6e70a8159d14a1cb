"""HTTP for discovery and the catalog (mcp role). Every route needs a principal; errors are 4xx with a code."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from isa.auth import require_principal
from isa.catalog.importer import parse_import
from isa.catalog.models import SearchFilters
from isa.catalog.schemas import DISCOVER_RANKED_CHARS, DiscoverBody, SearchBody, SecuritySearchBody
from isa.catalog.service import CatalogService
from isa.core.errors import ApiError
from isa.core.http import json_body, load_json

M = TypeVar("M", bound=BaseModel)
# Said when nothing passed: every result is either above the relevance floor and usable by the caller, or absent.
NOTHING_RELEVANT = "nothing you may use is relevant enough to this request (see docs/discovery.md, relevance floor)"


def _service(request: Request) -> CatalogService:
    return request.app.state.isa.get("catalog", CatalogService)  # type: ignore[no-any-return]


async def _json(request: Request) -> Any:
    return load_json(await request.body())


def _limit(request: Request, default: int = 1000) -> int:
    raw = request.query_params.get("limit", str(default))
    if not raw.isdigit() or not 1 <= int(raw) <= 10_000:
        raise ApiError(422, "invalid_request", "limit must be an integer between 1 and 10000")
    return int(raw)


async def discover(request: Request) -> JSONResponse:
    principal = await require_principal(request, "read")
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


async def search(request: Request) -> JSONResponse:
    principal = await require_principal(request, "read")
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


async def capabilities(request: Request) -> JSONResponse:
    principal = await require_principal(request, "read")
    return JSONResponse({"capabilities": await _service(request).capabilities(_limit(request), principal)})


async def stats(request: Request) -> JSONResponse:
    await require_principal(request, "read")
    return JSONResponse(await _service(request).stats())


async def security_levels(request: Request) -> JSONResponse:
    principal = await require_principal(request, "read")
    return JSONResponse(await _service(request).security_levels(_limit(request), principal))


async def security_search(request: Request) -> JSONResponse:
    await require_principal(request, "read")
    body = await json_body(request, SecuritySearchBody)
    level = "LOW" if body.security_level == "DEFAULT" else body.security_level
    tools = await _service(request).tools_at_level(level, body.max_results)
    return JSONResponse({"security_level": level, "tools": tools, "count": len(tools)})


async def list_servers(request: Request) -> JSONResponse:
    await require_principal(request, "read")
    return JSONResponse({"servers": await _service(request).list_servers()})


async def import_servers(request: Request) -> JSONResponse:
    await require_principal(request, "admin")
    specs = parse_import(await _json(request))
    return JSONResponse({"imported": await _service(request).import_servers(specs)}, status_code=201)


async def remove_server(request: Request) -> JSONResponse:
    await require_principal(request, "admin")
    removed = await _service(request).remove_server(request.path_params["name"])
    return JSONResponse({"server": request.path_params["name"], "removed": removed})


ROUTES = [
    Route("/discover", discover, methods=["POST"]),
    Route("/search", search, methods=["POST"]),
    Route("/capabilities", capabilities, methods=["GET"]),
    Route("/stats", stats, methods=["GET"]),
    Route("/security/levels", security_levels, methods=["GET"]),
    Route("/security/search", security_search, methods=["POST"]),
    Route("/catalog/servers", list_servers, methods=["GET"]),
    Route("/catalog/import", import_servers, methods=["POST"]),
    Route("/catalog/servers/{name:str}", remove_server, methods=["DELETE"]),
]
