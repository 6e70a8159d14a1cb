"""HTTP routes of per-user files under /api/v1/users/{user_id}/files (the original's contract, owner-checked)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse

from isa.auth import require_principal
from isa.auth.principal import Principal
from isa.core.errors import ApiError
from isa.core.http import api, parse_json, query_params, route_table
from isa.core.openapi import ATTRIBUTE, Operation
from isa.core.storage import attachment_disposition
from isa.files.content import INLINE_TYPES, served_type
from isa.files.multipart import MultipartFileReader
from isa.files.schemas import (
    Deleted,
    DownloadByPathQuery,
    DownloadQuery,
    FileList,
    FileOut,
    ListQuery,
    PathQuery,
    PresignUploadIn,
    PresignUploadOut,
    UploadForm,
)
from isa.files.service import FilesService, not_found
from isa.files.store import FileRow

M = TypeVar("M", bound=BaseModel)

BASE = "/api/v1/users/{user_id}/files"
_JSON_LIMIT = 64 * 1024
_NO_STORE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


def _service(request: Request) -> FilesService:
    service: FilesService = request.app.state.isa.get("files", FilesService)
    return service


def _owner(request: Request, principal: Principal) -> str:
    """Whose files: the caller's own (`me` names them, as on every other user route), or (admin scope only)
    the user named in the path. Others -> 404. The endpoint's `requires` checked the caller's scope first."""
    wanted = str(request.path_params["user_id"])
    if wanted == "me":
        return principal.user_id
    if (wanted != principal.user_id and not principal.is_admin) or not _storable(wanted):
        raise not_found()
    return wanted


def _storable(text: str) -> bool:
    """Text Postgres can take as a key (no NUL) and of a sane length; anything else can't name a row."""
    return 0 < len(text) <= 1024 and "\x00" not in text


def _ok(data: Any, status: int = 200, **extra: Any) -> JSONResponse:
    """The user service's envelope: {"success": true, "data": ..., "timestamp": ...}."""
    body = {"success": True, "data": data, **extra, "timestamp": datetime.now(UTC).isoformat()}
    return JSONResponse(body, status_code=status, headers=_NO_STORE)


def _out(request: Request, row: FileRow) -> dict[str, Any]:
    path = f"/api/v1/users/{request.path_params['user_id']}/files/{row.id}/download"
    return FileOut.of(row, path).model_dump(mode="json")


async def _json_body(request: Request, model: type[M]) -> M:
    """Parse a small JSON body with its own cap (the files prefix allows large bodies for uploads)."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > _JSON_LIMIT:
            raise ApiError(413, "payload_too_large", f"request body is larger than {_JSON_LIMIT} bytes")
    return parse_json(bytes(body), model, empty_ok=True)


def _operation(summary: str, scope: str, **details: Any) -> Operation:
    """What /openapi.json says about a files endpoint (with `api`, the scope it says is the scope it checks)."""
    return Operation(summary, tags=("files",), scope=scope, **details)


def _describe(endpoint: Any, summary: str, scope: str, **details: Any) -> None:
    """Describe an endpoint that checks nothing itself: it hands the request to a described one."""
    setattr(endpoint, ATTRIBUTE, _operation(summary, scope, **details))


_FILE_ID = {"file_id": {"type": "string", "format": "uuid"}}
_UPLOAD_ERRORS = (400, 404, 409, 413, 415, 422, 502)
# Both download routes answer with a redirect to a presigned link, not with the envelope.
_REDIRECT: dict[str, Any] = {"status": 302, "errors": (404, 409, 502), "envelope": False}


@api(
    _operation(
        "Upload one file (multipart field `file`)", "write", response=FileOut, status=201, errors=_UPLOAD_ERRORS
    ),
    require_principal,
)
async def upload(request: Request, principal: Principal) -> Response:
    """Upload one file (multipart field `file`), streamed and type-checked; 201 with its metadata."""
    owner = _owner(request, principal)
    reader = MultipartFileReader(request.stream(), request.headers.get("content-type", ""))
    part = await reader.open_file()
    declared = request.headers.get("content-length", "")
    row = await _service(request).upload(owner, part, int(declared) if declared.isdigit() else None)
    await reader.drain()
    return _ok(_out(request, row), 201)


@api(
    _operation(
        "Start a direct-to-storage upload",
        "write",
        body=PresignUploadIn,
        response=PresignUploadOut,
        status=201,
        errors=(404, 413, 415, 502),
    ),
    require_principal,
)
async def presign_upload(request: Request, principal: Principal) -> Response:
    """Start a direct-to-storage upload: a pending file and a link bound to its key, type and size."""
    owner = _owner(request, principal)
    req = await _json_body(request, PresignUploadIn)
    presigned = await _service(request).presign_upload(owner, req)
    url = presigned.upload.url
    if url.startswith("/"):  # the local backend's links are served by this app
        url = str(request.base_url).rstrip("/") + url
    out = PresignUploadOut(
        file=FileOut.of(presigned.row, _out(request, presigned.row)["download_url"]),
        upload=UploadForm(
            method=presigned.upload.method, url=url, fields=presigned.upload.fields, headers=presigned.upload.headers
        ),
        expires_at=presigned.upload.expires_at,
        max_bytes=presigned.max_bytes,
        complete_url=f"/api/v1/users/{request.path_params['user_id']}/files/{presigned.row.id}/complete",
    )
    return _ok(out.model_dump(mode="json"), 201)


@api(
    _operation(
        "Check a presigned upload and mark it ready",
        "write",
        response=FileOut,
        errors=(404, 409, 413, 415, 502),
        path_params=_FILE_ID,
    ),
    require_principal,
)
async def complete(request: Request, principal: Principal) -> Response:
    """Check a presigned upload (size, type, magic bytes) and mark the file ready."""
    owner = _owner(request, principal)
    row = await _service(request).complete(owner, str(request.path_params["file_id"]))
    return _ok(_out(request, row))


@api(_operation("List files", "read", query=ListQuery, response=FileList, errors=(404,)), require_principal)
async def list_files(request: Request, principal: Principal) -> Response:
    """The caller's files, newest first."""
    owner = _owner(request, principal)
    q = query_params(request, ListQuery)
    rows, total = await _service(request).list_files(owner, q.status, q.limit, q.offset)
    return _ok([_out(request, r) for r in rows], total=total, limit=q.limit, offset=q.offset)


async def _row_for(request: Request, principal: Principal) -> tuple[str, FileRow]:
    """The addressed file of the owner: by id in the path, or by ?file_path= (the original's form)."""
    owner = _owner(request, principal)
    service = _service(request)
    if "file_id" in request.path_params:
        return owner, await service.get(owner, str(request.path_params["file_id"]))
    key = query_params(request, PathQuery).file_path
    if not _storable(key):
        raise not_found()
    return owner, await service.get_by_key(owner, key)


@api(
    _operation("One file's metadata", "read", response=FileOut, errors=(404,), path_params=_FILE_ID), require_principal
)
async def info(request: Request, principal: Principal) -> Response:
    """One file's metadata."""
    _, row = await _row_for(request, principal)
    return _ok(_out(request, row))


@api(
    _operation("Redirect (302) to a download link", "read", query=DownloadQuery, path_params=_FILE_ID, **_REDIRECT),
    require_principal,
)
async def download(request: Request, principal: Principal) -> Response:
    """302 to a short-lived download link (attachment, capped expiry)."""
    _, row = await _row_for(request, principal)
    url = await _service(request).download_url(row, query_params(request, DownloadQuery).expires_in)
    return RedirectResponse(url, status_code=302, headers=_NO_STORE)


@api(
    _operation(
        "The file's bytes from this origin (images inline, other types as attachment)",
        "read",
        errors=(404, 409, 502),
        envelope=False,
        path_params=_FILE_ID,
    ),
    require_principal,
)
async def content(request: Request, principal: Principal) -> Response:
    """The file's bytes from this origin (a strict-CSP page can show them): raster images inline, the rest as an
    attachment; never sniffed, never cached by shared caches, sandboxed if opened as a document."""
    _, row = await _row_for(request, principal)
    body = await _service(request).open_content(row)
    disposition = attachment_disposition(row.filename)
    if row.content_type in INLINE_TYPES:
        disposition = "inline" + disposition.removeprefix("attachment")
    headers = {
        **_NO_STORE,
        "Cache-Control": "private, no-store",
        "Content-Disposition": disposition,
        "Content-Length": str(row.size_bytes),
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Cross-Origin-Resource-Policy": "same-site",
    }
    return StreamingResponse(body, media_type=served_type(row.content_type), headers=headers)


@api(_operation("Delete a file", "write", response=Deleted, errors=(404,), path_params=_FILE_ID), require_principal)
async def delete(request: Request, principal: Principal) -> Response:
    """Delete a file: the row turns deleted and the object (every version) goes."""
    owner, row = await _row_for(request, principal)
    deleted = await _service(request).delete(owner, row.id)
    return _ok({"file_id": deleted.id, "deleted": True})


# The original's query-string forms get endpoints of their own, so metrics label each route by its template.
async def upload_legacy(request: Request) -> Response:
    """Upload a file (the original's /files/upload path)."""
    return await upload(request)


async def info_by_path(request: Request) -> Response:
    """A file's metadata by ?file_path= (the original's form)."""
    return await info(request)


async def download_by_path(request: Request) -> Response:
    """Redirect to a download link by ?file_path= (the original's form)."""
    return await download(request)


async def delete_by_path(request: Request) -> Response:
    """Delete a file by ?file_path= (the original's form)."""
    return await delete(request)


_describe(
    upload_legacy, "Upload one file (the original's path)", "write", response=FileOut, status=201, errors=_UPLOAD_ERRORS
)
_describe(info_by_path, "One file's metadata by storage key", "read", query=PathQuery, response=FileOut, errors=(404,))
_describe(
    download_by_path, "Redirect (302) to a download link by storage key", "read", query=DownloadByPathQuery, **_REDIRECT
)
_describe(delete_by_path, "Delete a file by storage key", "write", query=PathQuery, response=Deleted, errors=(404,))

ROUTES = route_table(
    BASE,
    {
        "POST": upload,
        "POST /upload": upload_legacy,
        "POST /presign-upload": presign_upload,
        "GET": list_files,
        "DELETE": delete_by_path,
        "GET /info": info_by_path,
        "GET /download": download_by_path,
        "GET /{file_id:uuid}": info,
        "DELETE /{file_id:uuid}": delete,
        "GET /{file_id:uuid}/download": download,
        "GET /{file_id:uuid}/content": content,
        "POST /{file_id:uuid}/complete": complete,
    },
)
