"""The local storage backend's signed links: GET downloads, PUT uploads. The signature is the authorisation."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from isa.core.errors import ApiError
from isa.core.openapi import ATTRIBUTE, Operation
from isa.core.storage import InvalidLink, LocalStorage, ObjectExists, ObjectTooLarge, StorageError
from isa.files.content import normalize_type

PREFIX = "/api/v1/storage/local/"


def _storage(request: Request) -> LocalStorage:
    storage: LocalStorage = request.app.state.isa.get("storage", LocalStorage)
    return storage


def _denied(exc: StorageError) -> ApiError:
    # Like S3: a bad or expired signature is 403 AccessDenied, whatever the key.
    return ApiError(403, "access_denied", "link is invalid or expired" if isinstance(exc, InvalidLink) else "denied")


async def local_download(request: Request) -> Response:
    storage = _storage(request)
    key = str(request.path_params["key"])
    try:
        path, content_type, disposition = storage.check_download(key, dict(request.query_params))
    except StorageError as exc:
        raise _denied(exc) from None
    if not path.is_file():
        raise ApiError(404, "not_found", "no such object")
    headers = {
        "Content-Disposition": disposition,
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "private, no-store",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Referrer-Policy": "no-referrer",
    }
    return FileResponse(path, media_type=content_type, headers=headers)


async def local_upload(request: Request) -> Response:
    storage = _storage(request)
    key = str(request.path_params["key"])
    try:
        content_type, limit = storage.check_upload(key, dict(request.query_params))
    except StorageError as exc:
        raise _denied(exc) from None
    if normalize_type(request.headers.get("content-type")) != content_type:
        raise ApiError(403, "access_denied", "Content-Type differs from the one the link was signed for")
    try:
        await storage.put_stream(key, request.stream(), content_type=content_type, max_bytes=limit)
    except ObjectTooLarge:
        raise ApiError(413, "payload_too_large", f"this link accepts at most {limit} bytes") from None
    except ObjectExists:
        raise ApiError(412, "precondition_failed", "an object already exists at this key") from None
    return Response(status_code=200)


_KEY = {"key": {"type": "string"}}
# No bearer token: the HMAC signature in the query string is the authorisation, as with S3 presigned URLs.
setattr(
    local_download,
    ATTRIBUTE,
    Operation(
        "Download through a signed local link",
        tags=("files",),
        scope=None,
        errors=(403, 404),
        envelope=False,
        path_params=_KEY,
    ),
)
setattr(
    local_upload,
    ATTRIBUTE,
    Operation(
        "Upload through a signed local link",
        tags=("files",),
        scope=None,
        errors=(403, 412, 413),
        envelope=False,
        path_params=_KEY,
    ),
)

ROUTES = [
    Route(PREFIX + "{key:path}", local_download, methods=["GET"]),
    Route(PREFIX + "{key:path}", local_upload, methods=["PUT"]),
]
