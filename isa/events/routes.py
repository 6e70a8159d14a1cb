"""HTTP routes: /api/v1/events (ingest, batch, query, recent) and the original's feedback contracts."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from isa.auth import require_principal
from isa.auth.principal import Principal
from isa.core.errors import ApiError
from isa.core.http import json_body, query_params, requires, route_table
from isa.events.schemas import BatchIn, EventIn, EventQuery, FeedbackIn, RecentQuery
from isa.events.service import EventService, event_out, receipt
from isa.events.worker import Worker

M = TypeVar("M", bound=BaseModel)
_NO_STORE = {"Cache-Control": "no-store"}


def _service(request: Request) -> EventService:
    service: EventService = request.app.state.isa.get("events", EventService)
    return service


def _key(request: Request, body_key: str | None) -> str | None:
    header = request.headers.get("idempotency-key")
    if header is not None and body_key is not None and header != body_key:
        raise ApiError(422, "invalid_request", "Idempotency-Key header and body idempotency_key differ")
    if header is not None and not (0 < len(header) <= 255):
        raise ApiError(422, "invalid_request", "Idempotency-Key must be 1-255 characters")
    return header if header is not None else body_key


async def _ingest(service: EventService, user_id: str, item: EventIn, key: str | None) -> tuple[dict[str, Any], bool]:
    fingerprint = item.model_dump(mode="json", exclude={"idempotency_key"})
    return await service.ingest(
        user_id,
        event_type=item.event_type,
        data=item.data,
        key=key,
        fingerprint=fingerprint,
        priority=item.priority,
        task_id=str(item.task_id) if item.task_id else None,
        needs_agent=item.process,
    )


@requires(require_principal, "write")
async def create_event(request: Request, principal: Principal) -> Response:
    """POST /api/v1/events: store one event; a repeated Idempotency-Key replays the first response."""
    item = await json_body(request, EventIn)
    row, replayed = await _ingest(_service(request), principal.user_id, item, _key(request, item.idempotency_key))
    headers = {**_NO_STORE, "Idempotent-Replayed": "true" if replayed else "false"}
    return JSONResponse(receipt(row), status_code=201, headers=headers)


@requires(require_principal, "write")
async def create_batch(request: Request, principal: Principal) -> Response:
    """POST /api/v1/events/batch: per-item status; good items are stored even when others fail."""
    # Text Postgres can't store fails its own item (422 in `results`), not the batch; depth still bounds it whole.
    batch = await json_body(request, BatchIn, text=False)
    service = _service(request)
    if len(batch.events) > service.settings.max_batch_items:
        raise ApiError(422, "invalid_request", f"at most {service.settings.max_batch_items} events per batch")
    results: list[dict[str, Any]] = []
    for index, item in enumerate(batch.events):
        try:
            row, replayed = await _ingest(service, principal.user_id, item, item.idempotency_key)
            results.append({"index": index, "status": 200 if replayed else 201, "replayed": replayed, **receipt(row)})
        except ApiError as exc:
            results.append({"index": index, "status": exc.status, "error": {"code": exc.code, "message": exc.message}})
    ok = sum(1 for r in results if r["status"] < 300)
    return JSONResponse({"results": results, "succeeded": ok, "failed": len(results) - ok}, headers=_NO_STORE)


@requires(require_principal, "read")
async def list_events(request: Request, principal: Principal) -> Response:
    """GET /api/v1/events: the caller's events filtered by type, task and time range, newest first."""
    q = query_params(request, EventQuery)
    rows = await _service(request).list_events(
        principal.user_id,
        event_type=q.event_type,
        task_id=str(q.task_id) if q.task_id else None,
        since=q.since,
        until=q.until,
        limit=q.limit,
        offset=q.offset,
    )
    body = {"events": [event_out(r) for r in rows], "limit": q.limit, "offset": q.offset}
    return JSONResponse(body, headers=_NO_STORE)


@requires(require_principal, "read")
async def recent_events(request: Request, principal: Principal) -> Response:
    """GET /api/v1/events/recent (and the original's /events/recent): the caller's latest events."""
    q = query_params(request, RecentQuery)
    rows = await _service(request).list_events(
        principal.user_id, event_type=None, task_id=None, since=None, until=None, limit=q.limit, offset=0
    )
    return JSONResponse({"events": [event_out(r) for r in rows], "count": len(rows)}, headers=_NO_STORE)


@requires(require_principal, "read")
async def get_event(request: Request, principal: Principal) -> Response:
    event_id = str(request.path_params["event_id"])
    return JSONResponse(event_out(await _service(request).get_event(principal.user_id, event_id)), headers=_NO_STORE)


@requires(require_principal, "write")
async def background_feedback(request: Request, principal: Principal) -> Response:
    """POST /process_background_feedback and /event_callback: store the event and hand it to the agent now."""
    body = await json_body(request, FeedbackIn)
    service = _service(request)
    data = {k: v for k, v in body.data.items() if k != "user_id"}
    key = _key(request, body.idempotency_key)
    fingerprint = {"event_type": body.event_type, "task_id": str(body.task_id) if body.task_id else None, "data": data}
    row, replayed = await service.ingest(
        principal.user_id,
        event_type=body.event_type,
        data=data,
        key=key,
        fingerprint=fingerprint,
        source="background_feedback",
        priority=body.priority,
        task_id=str(body.task_id) if body.task_id else None,
        needs_agent=True,
    )
    if not replayed:
        worker: Worker = request.app.state.isa.get("events.worker", Worker)
        row = await worker.process_claimed_by_id(str(row["id"])) or row
    elif row["status"] == "processing":
        raise ApiError(409, "idempotency_key_in_use", "this event is being processed")
    status = {"processed": "processed", "failed": "failed"}.get(row["status"], "queued")
    out = {
        "status": status,
        "event_id": str(row["id"]),
        "processing_result": row["processing_result"],
        "agent_response": row["agent_response"],
    }
    return JSONResponse(out, status_code=200, headers=_NO_STORE)


ROUTES = route_table(
    "",
    {
        "POST /api/v1/events": create_event,
        "GET /api/v1/events": list_events,
        "POST /api/v1/events/batch": create_batch,
        "GET /api/v1/events/recent": recent_events,
        "GET /events/recent": recent_events,
        "GET /api/v1/events/{event_id:uuid}": get_event,
        "POST /process_background_feedback": background_feedback,
        "POST /event_callback": background_feedback,
    },
)
