"""The original model service's unified endpoint: POST /api/v1/invoke and GET /api/v1/models.

Envelope `{success, result, error, metadata}`; streaming frames `{"token"}`, `{"metadata"}`,
`{"done": true}` (or a final `{"error"}`). Failures keep their HTTP status (never 200 with an
error inside); the envelope's `error` is then the usual `{code, message, request_id}` object.
"""

from __future__ import annotations

import base64
import json
import math
import time
from typing import Any

from pydantic import ValidationError
from starlette.background import BackgroundTask
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from isa.auth import require_principal
from isa.auth.principal import Principal
from isa.core.errors import ApiError, request_id_of
from isa.core.http import invalid, load_json, requires
from isa.model import store
from isa.model.routes import service_of
from isa.model.schemas import InvokeRequest
from isa.model.service import ModelService, stream_chunks
from isa.model.settings import Deployment
from isa.model.streaming import EventStream, relay, sse

ENDPOINT = "/api/v1/invoke"
_DEFAULT_ALIAS = {"text": "default", "vision": "vision", "embedding": "embed", "image": "image", "audio": "transcribe"}
_MODES = {"text": "chat", "vision": "chat", "embedding": "embedding", "image": "image", "audio": "transcription"}
# Parameters the original client sent at the top level in remote mode (and lost); accepted here.
_TOP_LEVEL_PARAMS = ("temperature", "max_tokens", "top_p", "response_format", "size", "n", "dimensions")
_TEXT_PROMPTS = {
    "translate": "Translate the user's text into {target_language}. Reply with the translation only.",
    "summarize": "Summarize the user's text concisely.",
    "analyze": "Analyze the user's text and report the key points.",
    "extract": "Extract the key facts from the user's text as a JSON object.",
    "classify": "Classify the user's text{labels}. Reply with the label only.",
}
_TEXT_TASKS = {"chat", "generate", "complete", *_TEXT_PROMPTS}
_VISION_PROMPTS = {
    "analyze": "Analyze this image.",
    "describe": "Describe this image.",
    "extract": "Extract all text visible in this image.",
    "detect": "List the user-interface elements in this image with their approximate positions.",
    "classify": "Classify this image. Reply with the label only.",
    "compare": "Compare these images.",
}
_TASKS = {
    "text": _TEXT_TASKS,
    "vision": set(_VISION_PROMPTS),
    "embedding": {"embed", "embed_batch", "similarity"},
    "image": {"generate"},
    "audio": {"transcribe", "stt"},
}
_CHAT_PARAMS = ("temperature", "max_tokens", "top_p", "response_format", "stop", "seed")


def _failure(request: Request, error: ApiError) -> JSONResponse:
    body: dict[str, Any] = {
        "success": False,
        "result": None,
        "error": {"code": error.code, "message": error.message, "request_id": request_id_of(request)},
        "metadata": {},
    }
    if error.details is not None:
        body["error"]["details"] = error.details
    return JSONResponse(body, status_code=error.status, headers=error.headers)


async def _read(request: Request) -> tuple[InvokeRequest, tuple[str, bytes] | None]:
    """The request from JSON, or from multipart with a `file` (audio, images)."""
    upload: tuple[str, bytes] | None = None
    if request.headers.get("content-type", "").startswith("multipart/"):
        async with request.form(max_files=1, max_fields=16) as form:
            data: dict[str, Any] = {k: v for k, v in form.items() if isinstance(v, str)}
            file = form.get("file")
            if isinstance(file, UploadFile):
                upload = (file.filename or "upload", await file.read())
        for key in ("parameters", "tools"):
            if isinstance(data.get(key), str):
                try:
                    data[key] = json.loads(data[key])
                except ValueError:
                    raise ApiError(422, "invalid_request", f"{key} must be JSON") from None
        if "stream" in data:
            data["stream"] = str(data["stream"]).lower() in ("1", "true", "yes")
    else:
        data = load_json(await request.body() or b"{}")  # 422 when not JSON, nested too deep, or NUL text
        if not isinstance(data, dict):
            raise ApiError(422, "invalid_request", "the body must be a JSON object")
    params = dict(data.get("parameters") or {})
    for key in _TOP_LEVEL_PARAMS:
        if key in data and key not in params:
            params[key] = data[key]
    data["parameters"] = params
    try:
        return InvokeRequest.model_validate(data), upload
    except ValidationError as exc:
        raise invalid(exc) from None


def _group(service: ModelService, req: InvokeRequest) -> str:
    mode = _MODES[req.service_type]
    if req.model:
        return service.resolve(req.model, mode)
    if req.provider:
        for name, deployments in service.gateway.groups.items():
            if deployments[0].mode == mode and any(d.provider == req.provider for d in deployments):
                return name
        raise ApiError(404, "model_not_found", f"no {req.service_type} model of provider {req.provider!r}")
    return service.resolve(_DEFAULT_ALIAS[req.service_type], mode)


def _tool(spec: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI tool from an OpenAI or LangChain-style spec ({name, description, parameters|args_schema})."""
    if "function" in spec:
        return spec
    params = spec.get("parameters") or spec.get("args_schema") or {"type": "object", "properties": {}}
    return {
        "type": "function",
        "function": {"name": spec.get("name", ""), "description": spec.get("description", ""), "parameters": params},
    }


def _text_messages(req: InvokeRequest) -> list[dict[str, Any]]:
    data = req.input_data
    if isinstance(data, dict) and isinstance(data.get("messages"), list):
        messages = list(data["messages"])
    elif isinstance(data, list) and all(isinstance(m, dict) and "role" in m for m in data):
        messages = list(data)
    elif isinstance(data, str) and data:
        messages = [{"role": "user", "content": data}]
    else:
        raise ApiError(422, "invalid_request", "input_data must be text or a list of chat messages")
    template = _TEXT_PROMPTS.get(req.task)
    if template:
        labels = req.parameters.get("labels")
        system = template.format(
            target_language=req.parameters.get("target_language", "English"),
            labels=f" as one of: {', '.join(map(str, labels))}" if isinstance(labels, list) else "",
        )
        messages.insert(0, {"role": "system", "content": system})
    return messages


def _vision_messages(req: InvokeRequest, upload: tuple[str, bytes] | None) -> list[dict[str, Any]]:
    data = req.input_data
    images: list[str] = []
    prompt = req.parameters.get("prompt") or _VISION_PROMPTS.get(req.task, "Describe this image.")
    if isinstance(data, dict):
        images = [str(i) for i in data.get("images", [])] or ([str(data["image"])] if data.get("image") else [])
        prompt = str(data.get("prompt") or prompt)
    elif isinstance(data, str) and data:
        images = [data]
    elif isinstance(data, list):
        images = [str(i) for i in data]
    if upload is not None:
        images.append("data:image/png;base64," + base64.b64encode(upload[1]).decode())
    if not images:
        raise ApiError(422, "invalid_request", "vision needs an image URL, a data URL or an uploaded file")
    parts: list[dict[str, Any]] = [{"type": "text", "text": str(prompt)}]
    parts += [{"type": "image_url", "image_url": {"url": url}} for url in images]
    return [{"role": "user", "content": parts}]


def _metadata(req: InvokeRequest, group: str, d: Deployment, usage: store.Usage, started: float) -> dict[str, Any]:
    return {
        "model_used": d.provider_model,
        "model_group": group,
        "deployment": d.id,
        "provider": d.provider,
        "task": req.task,
        "service_type": req.service_type,
        "processing_time": round(time.perf_counter() - started, 4),
        "billing": {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens,
            "cost_usd": float(usage.cost_usd),
            "credits": float(usage.credits_due),
            "calculation_method": usage.calculation_method,
        },
    }


async def invoke(request: Request) -> Response:
    """The original unified inference endpoint (text, vision, embedding, image, audio)."""
    try:
        return await _invoke(request)
    except ApiError as error:
        return _failure(request, error)


@requires(require_principal, "write")  # inside invoke's try: a refusal keeps the original's failure shape
async def _invoke(request: Request, principal: Principal) -> Response:
    service = service_of(request)
    req, upload = await _read(request)
    if req.task not in _TASKS[req.service_type]:
        supported = ", ".join(sorted(_TASKS[req.service_type]))
        raise ApiError(400, "unsupported_task", f"{req.service_type} supports the tasks {supported}")
    group = _group(service, req)
    await service.check_credits(principal)
    started = time.perf_counter()
    if req.service_type in ("text", "vision"):
        return await _chat(request, service, principal, req, upload, group, started)
    rid = request_id_of(request)
    result: Any
    if req.service_type == "embedding":
        texts = _embedding_texts(req)
        dimensions = req.parameters.get("dimensions")
        vectors, deployment, _, usage = await service.metered_embed(
            principal, rid, ENDPOINT, group, texts, dimensions, started
        )
        if req.task == "similarity":
            a, b = vectors[0], vectors[1]
            dot = sum(x * y for x, y in zip(a, b, strict=True))
            result = {"similarity": dot / ((math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))) or 1)}
        else:
            result = vectors[0] if req.task == "embed" and isinstance(req.input_data, str) else vectors
    elif req.service_type == "image":
        if not isinstance(req.input_data, str) or not req.input_data:
            raise ApiError(422, "invalid_request", "image generation needs a text prompt as input_data")
        params = {k: req.parameters[k] for k in ("size", "n", "quality", "response_format") if k in req.parameters}
        served = await service.guarded(group, service.gateway.image(group, req.input_data, **params))
        deployment, images = served.deployment, served.body.get("data") or []
        usage = service.usage(
            principal,
            rid,
            ENDPOINT,
            "image",
            group,
            deployment,
            cost_usd=served.cost_usd or 0.0,
            flat_credits=service.settings.credits_per_image * len(images),
            started=started,
        )
        result = {"images": images, "urls": [i["url"] for i in images if i.get("url")]}
    else:
        if upload is None:
            raise ApiError(422, "invalid_request", "transcription needs the audio as a multipart 'file'")
        options = {k: req.parameters[k] for k in ("language", "prompt") if k in req.parameters}
        served = await service.guarded(group, service.gateway.transcribe(group, upload, **options))
        deployment = served.deployment
        usage = service.usage(
            principal,
            rid,
            ENDPOINT,
            "transcription",
            group,
            deployment,
            cost_usd=served.cost_usd or 0.0,
            flat_credits=service.settings.credits_per_transcription,
            started=started,
        )
        result = {"text": served.body.get("text", "")}
    body = {
        "success": True,
        "result": result,
        "error": None,
        "metadata": _metadata(req, group, deployment, usage, started),
    }
    return JSONResponse(
        body,
        headers={"x-isa-deployment": deployment.id, "x-isa-model-group": group},
        background=BackgroundTask(service.record, usage, deployment),
    )


def _embedding_texts(req: InvokeRequest) -> list[str]:
    data = req.input_data
    if req.task == "similarity":
        pair = [data.get("text1"), data.get("text2")] if isinstance(data, dict) else data
        if not isinstance(pair, list) or len(pair) != 2 or not all(isinstance(t, str) and t for t in pair):
            raise ApiError(422, "invalid_request", "similarity needs input_data {text1, text2} or two texts")
        return [str(t) for t in pair]
    texts = [data] if isinstance(data, str) else data
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise ApiError(422, "invalid_request", "input_data must be a text or a list of texts")
    return texts


async def _chat(
    request: Request,
    service: ModelService,
    principal: Principal,
    req: InvokeRequest,
    upload: tuple[str, bytes] | None,
    group: str,
    started: float,
) -> Response:
    messages = _text_messages(req) if req.service_type == "text" else _vision_messages(req, upload)
    payload: dict[str, Any] = {"messages": messages}
    payload.update({k: req.parameters[k] for k in _CHAT_PARAMS if k in req.parameters})
    if req.tools:
        payload["tools"] = [_tool(t) for t in req.tools]
    rid = request_id_of(request)
    stream = req.stream if req.stream is not None else (req.service_type == "text" and req.task == "chat")
    if stream and not req.tools:
        return await _chat_stream(service, principal, req, group, payload, rid, started)
    served, _ = await service.chat(group, payload)
    usage = service.chat_usage(principal, rid, ENDPOINT, group, served, started)
    message = (served.body.get("choices") or [{}])[0].get("message") or {}
    result: Any = message.get("content") or ""
    if message.get("tool_calls"):
        result = {"content": message.get("content"), "tool_calls": message["tool_calls"]}
    body = {
        "success": True,
        "result": result,
        "error": None,
        "metadata": _metadata(req, group, served.deployment, usage, started),
    }
    return JSONResponse(
        body,
        headers={"x-isa-deployment": served.deployment.id, "x-isa-model-group": group},
        background=BackgroundTask(service.record, usage, served.deployment),
    )


def _token_frames(chunk: dict[str, Any]) -> list[bytes]:
    deltas = ((choice.get("delta") or {}).get("content") for choice in chunk.get("choices", ()))
    return [sse({"token": token}) for token in deltas if token]


async def _chat_stream(
    service: ModelService,
    principal: Principal,
    req: InvokeRequest,
    group: str,
    payload: dict[str, Any],
    rid: str,
    started: float,
) -> Response:
    stream, names = await service.open_stream(group, payload)
    usage_of = service.stream_usage(principal, rid, ENDPOINT, group, stream, payload["messages"], started)

    async def frames() -> Any:
        result: dict[str, Any] = {}
        chunks = stream_chunks(service, stream, names, usage_of, include_usage=False, result=result)
        async for out in relay(chunks, _token_frames):
            yield out
        error = result.get("error")
        if error is not None:
            yield sse({"error": {"code": error.code, "message": error.message, "request_id": rid}})
            return
        yield sse({"metadata": _metadata(req, group, stream.deployment, result["usage"], started)})
        yield sse({"done": True})

    return EventStream(frames(), headers={"x-isa-deployment": stream.deployment.id, "x-isa-model-group": group})


@requires(require_principal, "read")
async def models(request: Request, _principal: Principal) -> Response:
    """The original model list: {success, models: [{model_id, service_type, provider, ...}], total_count}."""
    service = service_of(request)
    wanted = request.query_params.get("service_type")
    by_mode = {"chat": "text", "embedding": "embedding", "image": "image", "transcription": "audio"}
    out = []
    for m in service.catalog():
        service_type = by_mode[m["mode"]]
        if wanted and wanted != service_type and not (wanted == "vision" and service_type == "text"):
            continue
        out.append(
            {
                "model_id": m["id"],
                "service_type": service_type,
                "provider": m["providers"][0] if m["providers"] else None,
                "providers": m["providers"],
                "alias_of": m.get("alias_of"),
            }
        )
    return JSONResponse({"success": True, "models": out, "total_count": len(out)})


def routes() -> list[Route]:
    return [
        Route("/api/v1/invoke", invoke, methods=["POST"]),
        Route("/api/v1/models", models, methods=["GET"]),
    ]
