"""The model role's OpenAPI description (/v1/openapi.json) and a self-contained /docs page.

The mcp role serves the user service's /openapi.json, so in role "all" the two can't share that
path: the model gateway's document lives at /v1/openapi.json, shown by /docs (and /v1/docs).
"""

from __future__ import annotations

import html
from functools import lru_cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

import isa
from isa.model.schemas import ChatRequest, EmbeddingRequest, ImageRequest, InvokeRequest

_REF = "#/components/schemas/{model}"
_ERRORS = {
    "401": "Missing or invalid credentials",
    "402": "Credits exhausted (checked before the provider is called)",
    "403": "Missing scope",
    "404": "Unknown model or alias",
    "422": "Invalid request",
    "429": "Rate limited (this gateway or the provider)",
    "502": "Provider failed after retries and fallbacks",
    "503": "Model unavailable (no credentials, or every deployment cooling down)",
    "504": "Provider timed out",
}
_DEPLOYMENT_HEADER = {
    "x-isa-deployment": {"description": "The deployment that served the call", "schema": {"type": "string"}}
}


def _op(summary: str, body: type[BaseModel] | None, refs: dict[Any, Any], *, scope: str, stream: bool = False,
        multipart: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    ok: dict[str, Any] = {"description": "OK", "headers": _DEPLOYMENT_HEADER, "content": {"application/json": {}}}
    if stream:
        ok["content"]["text/event-stream"] = {"description": "data: frames when stream is true"}
    spec: dict[str, Any] = {
        "summary": summary,
        "description": f"Needs the `{scope}` scope.",
        "security": [{"bearerAuth": []}, {"apiKey": []}],
        "responses": {"200": ok, **{code: {"$ref": f"#/components/responses/E{code}"} for code in _ERRORS}},
    }
    if body is not None:
        spec["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": refs[(body, "validation")]}},
        }
    if multipart is not None:
        spec["requestBody"] = {"required": True, "content": {"multipart/form-data": {"schema": multipart}}}
    return spec


@lru_cache(maxsize=1)
def document() -> dict[str, Any]:
    models = [(m, "validation") for m in (ChatRequest, EmbeddingRequest, ImageRequest, InvokeRequest)]
    refs, defs = models_json_schema(models, ref_template=_REF)  # type: ignore[arg-type]
    audio_form = {
        "type": "object",
        "required": ["file"],
        "properties": {
            "file": {"type": "string", "format": "binary"},
            "model": {"type": "string", "default": "whisper-1"},
            "language": {"type": "string"},
            "prompt": {"type": "string"},
            "response_format": {"type": "string", "enum": ["json", "text"]},
        },
    }
    get = {"summary": "", "security": [{"bearerAuth": []}, {"apiKey": []}], "responses": {"200": {"description": "OK"}}}
    chat = "OpenAI chat completions (SSE when stream)"
    embed = "OpenAI embeddings; the alias `embed` is the local MiniLM by default"
    invoke = "The original unified endpoint: {success, result, error, metadata}; frames token, metadata, done"
    usage = "Usage totals and breakdown (?days, group_by, all_users and user_id for admins)"
    paths = {
        "/v1/chat/completions": {"post": _op(chat, ChatRequest, refs, scope="write", stream=True)},
        "/v1/embeddings": {"post": _op(embed, EmbeddingRequest, refs, scope="write")},
        "/v1/images/generations": {"post": _op("OpenAI image generation", ImageRequest, refs, scope="write")},
        "/v1/audio/transcriptions": {
            "post": _op("OpenAI audio transcription", None, refs, scope="write", multipart=audio_form)
        },
        "/v1/models": {"get": {**get, "summary": "Servable model groups and aliases (OpenAI list)"}},
        "/api/v1/invoke": {"post": _op(invoke, InvokeRequest, refs, scope="write", stream=True)},
        "/api/v1/models": {"get": {**get, "summary": "The original model list (?service_type=)"}},
        "/api/v1/analytics/usage": {"get": {**get, "summary": usage}},
        "/api/v1/analytics/models": {"get": {**get, "summary": "Daily per-model statistics (admin)"}},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "isa model gateway", "version": isa.__version__},
        "paths": paths,
        "components": {
            "schemas": defs.get("$defs", {}),
            "responses": {f"E{code}": {"description": text} for code, text in _ERRORS.items()},
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
    }


async def openapi_json(request: Request) -> Response:
    """The model gateway's OpenAPI document."""
    return JSONResponse(document())


async def docs(request: Request) -> Response:
    """A readable list of the gateway's operations, with no third-party scripts."""
    rows = []
    for path, methods in document()["paths"].items():
        for method, spec in methods.items():
            scope = spec.get("description", "")
            rows.append(
                f"<tr><td><code>{method.upper()}</code></td><td><code>{html.escape(path)}</code></td>"
                f"<td>{html.escape(spec['summary'])}</td><td>{html.escape(scope)}</td></tr>"
            )
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>isa model gateway</title>"
        "<style>body{font-family:sans-serif;margin:2em}td{padding:4px 12px;border-bottom:1px solid #ddd}</style>"
        "</head><body><h1>isa model gateway</h1>"
        "<p>OpenAPI document: <a href='/v1/openapi.json'>/v1/openapi.json</a>. "
        "Authenticate with <code>Authorization: Bearer &lt;API key&gt;</code>.</p>"
        f"<table>{''.join(rows)}</table></body></html>"
    )
    return HTMLResponse(page)
