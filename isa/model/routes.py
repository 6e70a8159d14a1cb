"""OpenAI-compatible HTTP routes, the model list and usage analytics."""

from __future__ import annotations

import base64
import struct
import time
from contextlib import aclosing
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, Field, ValidationError
from starlette.background import BackgroundTask
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from isa.auth import require_principal
from isa.auth.principal import Principal
from isa.core.errors import ApiError, request_id_of
from isa.core.http import invalid, json_response, query_params, requires, route_table
from isa.model.direct import DirectStream
from isa.model.schemas import ChatRequest, EmbeddingRequest, ImageRequest
from isa.model.service import ModelService, relay_direct, stream_chunks
from isa.model.streaming import EventStream, relay, sse

M = TypeVar("M", bound=BaseModel)


def service_of(request: Request) -> ModelService:
    service: ModelService = request.app.state.isa.get("model", ModelService)
    if not service.started:
        raise ApiError(503, "starting", "the model gateway is still starting")
    return service


async def parse(request: Request, model: type[M]) -> M:
    # pydantic parses the JSON itself here (faster than json.loads + validate on the gateway's hot path).
    try:
        return model.model_validate_json(await request.body())
    except ValidationError as exc:
        raise invalid(exc) from None


R = TypeVar("R", ChatRequest, EmbeddingRequest, ImageRequest)


async def admit(request: Request, principal: Principal, model: type[R], kind: str) -> tuple[ModelService, R, str]:
    """The gateway's prologue after the caller's scope (checked by `requires`, 401/403): the body (422), its model
    group, credits (402)."""
    service = service_of(request)
    body = await parse(request, model)
    group = service.resolve(body.model, kind)
    await service.check_credits(principal)
    return service, body, group


def deployment_headers(group: str, deployment_id: str) -> dict[str, str]:
    return {"x-isa-deployment": deployment_id, "x-isa-model-group": group}


@requires(require_principal, "write")
async def chat_completions(request: Request, principal: Principal) -> Response:
    """OpenAI chat completions: streaming or not, tools, JSON mode, vision content parts."""
    service, body, group = await admit(request, principal, ChatRequest, "chat")
    payload = body.provider_payload()
    started = time.perf_counter()
    rid = request_id_of(request)
    endpoint = "/v1/chat/completions"
    if not body.stream:
        served, _ = await service.chat(group, payload)
        usage = service.chat_usage(principal, rid, endpoint, group, served, started)
        served.body["model"] = body.model
        return JSONResponse(
            served.body,
            headers=deployment_headers(group, served.deployment.id),
            background=BackgroundTask(service.record, usage, served.deployment),
        )
    stream, names = await service.open_stream(group, payload)
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    usage_of = service.stream_usage(principal, rid, endpoint, group, stream, payload["messages"], started)

    async def frames() -> Any:
        result: dict[str, Any] = {}
        if isinstance(stream, DirectStream):  # relayed as bytes, parsed only where usage or renaming needs it
            raw = relay_direct(
                service, stream, names, usage_of, include_usage=include_usage, model=body.model, result=result
            )
            async with aclosing(raw):
                async for out in raw:
                    yield out
        else:
            chunks = stream_chunks(service, stream, names, usage_of, include_usage=include_usage, result=result)
            async for out in relay(chunks, lambda chunk: [sse({**chunk, "model": body.model})]):
                yield out
        error = result.get("error")
        if error is not None:
            yield sse({"error": {"code": error.code, "message": error.message, "type": error.code, "request_id": rid}})
            return
        yield sse("[DONE]")

    return EventStream(frames(), headers=deployment_headers(group, stream.deployment.id))


def _encode(vector: list[float], encoding: str) -> Any:
    if encoding == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    return vector


@requires(require_principal, "write")
async def embeddings(request: Request, principal: Principal) -> Response:
    """OpenAI embeddings; the `embed` alias is the local MiniLM unless a provider model is configured."""
    service = service_of(request)
    body = await parse(request, EmbeddingRequest)
    group = service.resolve(body.model, "embedding")
    texts = body.texts()
    # Bounded and paid for up front: refused before any vector is computed (never run first, charged short later).
    _, estimate = service.embedding_estimate(texts)
    await service.check_credits(principal, estimate)
    rid, started = request_id_of(request), time.perf_counter()
    vectors, deployment, tokens, usage = await service.metered_embed(
        principal, rid, "/v1/embeddings", group, texts, body.dimensions, started
    )
    data = [
        {"object": "embedding", "index": i, "embedding": _encode(v, body.encoding_format)}
        for i, v in enumerate(vectors)
    ]
    payload = {
        "object": "list",
        "data": data,
        "model": body.model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    return JSONResponse(
        payload,
        headers=deployment_headers(group, deployment.id),
        background=BackgroundTask(service.record, usage, deployment),
    )


@requires(require_principal, "write")
async def image_generations(request: Request, principal: Principal) -> Response:
    """OpenAI image generation (any image deployment, e.g. OpenAI or Replicate)."""
    service, body, group = await admit(request, principal, ImageRequest, "image")
    started = time.perf_counter()
    params = body.model_dump(exclude_none=True, exclude={"model", "prompt"})
    served = await service.guarded(group, service.gateway.image(group, body.prompt, **params))
    count = len(served.body.get("data") or ())
    usage = service.usage(
        principal,
        request_id_of(request),
        "/v1/images/generations",
        "image",
        group,
        served.deployment,
        cost_usd=served.cost_usd or 0.0,
        units=Decimal(count),
        flat_credits=service.settings.credits_per_image * count,
        started=started,
    )
    out = {"created": served.body.get("created", int(time.time())), "data": served.body.get("data", [])}
    return JSONResponse(
        out,
        headers=deployment_headers(group, served.deployment.id),
        background=BackgroundTask(service.record, usage, served.deployment),
    )


@requires(require_principal, "write")
async def audio_transcriptions(request: Request, principal: Principal) -> Response:
    """OpenAI audio transcription (multipart: file, model, language, prompt, response_format)."""
    service = service_of(request)
    async with request.form(max_files=1, max_fields=16) as form:
        upload = form.get("file")
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        if not isinstance(upload, UploadFile):
            raise ApiError(422, "invalid_request", "send the audio as a multipart field named 'file'")
        audio = await upload.read()
        filename = upload.filename or "audio"
    group = service.resolve(fields.get("model", "whisper-1"), "transcription")
    await service.check_credits(principal)
    started = time.perf_counter()
    params = {k: fields[k] for k in ("language", "prompt", "temperature") if k in fields}
    served = await service.guarded(group, service.gateway.transcribe(group, (filename, audio), **params))
    usage = service.usage(
        principal,
        request_id_of(request),
        "/v1/audio/transcriptions",
        "transcription",
        group,
        served.deployment,
        cost_usd=served.cost_usd or 0.0,
        units=Decimal(1),
        flat_credits=service.settings.credits_per_transcription,
        started=started,
    )
    headers = deployment_headers(group, served.deployment.id)
    task = BackgroundTask(service.record, usage, served.deployment)
    text = str(served.body.get("text", ""))
    if fields.get("response_format") == "text":
        return Response(text, media_type="text/plain", headers=headers, background=task)
    return JSONResponse({"text": text}, headers=headers, background=task)


@requires(require_principal, "read")
async def list_models(request: Request, _principal: Principal) -> Response:
    """OpenAI model list: every servable model group and alias."""
    service = service_of(request)
    data = [
        {"id": m["id"], "object": "model", "created": 0, "owned_by": ",".join(m["providers"])}
        for m in service.catalog()
    ]
    return JSONResponse({"object": "list", "data": data})


class UsageQuery(BaseModel):
    days: int = Field(default=30, ge=1, le=366)
    group_by: Literal["model", "provider", "day", "event_type", "user"] = "model"
    all_users: bool = False
    user_id: str | None = Field(default=None, max_length=255)


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    return {k: str(v) if isinstance(v, Decimal) else v for k, v in row.items()}


@requires(require_principal, "read")
async def usage_analytics(request: Request, principal: Principal) -> Response:
    """Gateway usage (requests, tokens, USD, credits) of the caller; admins may ask for anyone's."""
    query = query_params(request, UsageQuery)
    user_id: str | None = principal.user_id
    if query.all_users or query.group_by == "user":
        principal.require("admin")
        user_id = None if query.all_users else query.user_id
    elif query.user_id and query.user_id != principal.user_id:
        principal.require("admin")  # another user's usage is an admin's business only
        user_id = query.user_id
    since = datetime.now(UTC) - timedelta(days=query.days)
    totals, rows = await service_of(request).usage_summary(user_id, since, query.group_by)
    body = {
        "success": True,
        "data": {
            "since": since.isoformat(),
            "user_id": user_id,
            "group_by": query.group_by,
            "totals": _plain(totals),
            "breakdown": [_plain(r) for r in rows],
        },
    }
    return json_response(body)


@requires(require_principal, "admin")
async def model_analytics(request: Request, _principal: Principal) -> Response:
    """Daily per-model statistics for the whole platform (admin)."""
    days = request.query_params.get("days", "30")
    if not days.isdigit() or not 1 <= int(days) <= 366:
        raise ApiError(422, "invalid_request", "days must be between 1 and 366")
    since = datetime.now(UTC) - timedelta(days=int(days))
    rows = await service_of(request).model_statistics(since)
    return json_response({"success": True, "data": rows})


def routes() -> list[Route]:
    return route_table(
        "",
        {
            "POST /v1/chat/completions": chat_completions,
            "POST /v1/embeddings": embeddings,
            "POST /v1/images/generations": image_generations,
            "POST /v1/audio/transcriptions": audio_transcriptions,
            "GET /v1/models": list_models,
            "GET /api/v1/analytics/usage": usage_analytics,
            "GET /api/v1/analytics/models": model_analytics,
        },
    )
