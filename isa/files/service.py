"""Per-user files: stream uploads through type checks into storage, presigned uploads checked on completion,
downloads by presigned link, quota, and the sweepers that keep rows and objects in step."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import anyio

from isa.core.db import Database, DictConnection
from isa.core.errors import ApiError
from isa.core.logging import get_logger
from isa.core.storage import ObjectTooLarge, PresignedUpload, Storage, StorageError
from isa.files import store
from isa.files.content import (
    EXTENSIONS,
    SNIFF_BYTES,
    TEXT_TYPES,
    TextCheck,
    classify,
    display_name,
    normalize_type,
    object_key,
    rejected,
    served_type,
)
from isa.files.multipart import FilePart
from isa.files.schemas import PresignUploadIn
from isa.files.settings import FilesSettings
from isa.files.store import FileRow

log = get_logger(__name__)


def not_found() -> ApiError:
    return ApiError(404, "not_found", "no such file")


def storage_failed(exc: BaseException) -> ApiError:
    log.warning("storage_error", error=type(exc).__name__)
    return ApiError(502, "storage_unavailable", "file storage is not reachable; try again")


async def read_head(chunks: AsyncIterator[bytes], size: int) -> tuple[bytes, bool]:
    """Up to `size` leading bytes (more if a chunk overshoots) and whether the stream ended."""
    head = bytearray()
    while len(head) < size:
        try:
            head += await anext(chunks)
        except StopAsyncIteration:
            return bytes(head), True
    return bytes(head), False


async def _close(chunks: AsyncIterator[bytes]) -> None:
    """Release a storage read early (an S3 body holds a connection until closed)."""
    close = getattr(chunks, "aclose", None)
    if close is not None:
        await close()


@dataclass(frozen=True)
class Presigned:
    row: FileRow
    upload: PresignedUpload
    max_bytes: int


class FilesService:
    def __init__(self, db: Database, storage: Storage, settings: FilesSettings) -> None:
        self.db = db
        self.storage = storage
        self.settings = settings

    async def _reserve(
        self, owner: str, key: str, filename: str, ctype: str, wanted: int | None, method: str
    ) -> tuple[FileRow, int]:
        """Insert the pending row under the owner's quota lock; returns it and the byte cap for its upload."""
        cfg = self.settings
        async with self.db.transaction() as conn:
            if not await store.user_exists(conn, owner):
                raise not_found()
            usage = await store.lock_user_usage(conn, owner)
            remaining = cfg.quota_bytes - usage.bytes
            if (
                usage.files >= cfg.quota_files
                or remaining <= 0
                or (method == "presigned" and (wanted or 0) > remaining)
            ):
                raise ApiError(
                    403,
                    "quota_exceeded",
                    f"this would exceed your storage quota ({cfg.quota_files} files, {cfg.quota_bytes} bytes)",
                    details={"used_files": usage.files, "used_bytes": usage.bytes},
                )
            cap = min(cfg.max_upload_bytes, remaining)
            reserved = min(cap, wanted) if wanted else cap
            row = await store.insert_pending(conn, owner, key, filename, ctype, reserved, method)
        return row, cap

    async def _discard(self, owner: str, file_id: str, reason: str) -> None:
        """Give up on an upload before any object exists: the row leaves the quota (even if the client left)."""
        with anyio.CancelScope(shield=True):
            async with self.db.transaction() as conn:
                await store.mark_deleted(conn, owner, file_id, reason)

    async def _delete_object(self, key: str) -> None:
        try:
            await self.storage.delete(key)
        except (StorageError, OSError) as exc:  # the orphan sweep removes what this misses
            log.warning("object_delete_failed", error=type(exc).__name__)

    async def upload(self, owner: str, part: FilePart, content_length: int | None) -> FileRow:
        """Stream one multipart file part into storage; the row turns ready only after every byte passed."""
        head, eof = await read_head(part.chunks, SNIFF_BYTES)
        if not head:
            raise ApiError(422, "empty_file", "the file is empty")
        filename = display_name(part.filename)
        ctype = classify(head, eof, part.content_type, filename, self.settings.allowed_types)
        key = object_key(owner, ctype)
        row, cap = await self._reserve(owner, key, filename, ctype, content_length, "stream")
        text = TextCheck() if ctype in TEXT_TYPES else None

        async def body() -> AsyncIterator[bytes]:
            if text:
                text.feed(head, final=eof)
            yield head
            async for chunk in part.chunks:
                if text:
                    text.feed(chunk)
                yield chunk
            if text:
                text.feed(b"", final=True)

        try:
            stored = await self.storage.put_stream(key, body(), content_type=ctype, max_bytes=cap)
        except BaseException as exc:
            await self._discard(owner, row.id, "rejected" if isinstance(exc, ApiError | ObjectTooLarge) else "failed")
            log.info("file_upload_rejected", file_id=row.id, reason=type(exc).__name__)
            if isinstance(exc, ObjectTooLarge):
                raise self._too_large(cap) from None
            if isinstance(exc, StorageError | OSError):
                raise storage_failed(exc) from None
            raise
        async with self.db.transaction() as conn:
            ready = await store.mark_ready(conn, owner, row.id, stored.size, stored.sha256, stored.version_id)
        if ready is None:  # swept while it streamed
            await self._delete_object(key)
            raise ApiError(409, "upload_expired", "the upload took too long and was expired; start again")
        log.info("file_uploaded", file_id=ready.id, size=ready.size_bytes, content_type=ctype)
        return ready

    def _too_large(self, cap: int) -> ApiError:
        if cap < self.settings.max_upload_bytes:
            return ApiError(403, "quota_exceeded", "this file does not fit in your remaining storage quota")
        return ApiError(413, "file_too_large", f"files may be at most {self.settings.max_upload_bytes} bytes")

    async def presign_upload(self, owner: str, req: PresignUploadIn) -> Presigned:
        """A pending row plus a direct-to-storage upload link bound to its key, type and size."""
        ctype = normalize_type(req.content_type)
        if ctype not in self.settings.allowed_types or ctype not in EXTENSIONS:
            raise rejected(f"{ctype or 'this type'} files are not accepted here")
        if req.size_bytes > self.settings.max_upload_bytes:
            raise ApiError(413, "file_too_large", f"files may be at most {self.settings.max_upload_bytes} bytes")
        key = object_key(owner, ctype)
        row, _ = await self._reserve(owner, key, display_name(req.filename), ctype, req.size_bytes, "presigned")
        try:
            upload = await self.storage.presign_upload(
                key, content_type=ctype, max_bytes=req.size_bytes, expires_in=req.expires_in
            )
        except BaseException as exc:
            await self._discard(owner, row.id, "failed")
            if isinstance(exc, StorageError | OSError):
                raise storage_failed(exc) from exc
            raise
        log.info("file_upload_presigned", file_id=row.id, size=req.size_bytes, content_type=ctype)
        return Presigned(row, upload, req.size_bytes)

    async def complete(self, owner: str, file_id: str) -> FileRow:
        """Check what arrived for a presigned upload (size, type, magic bytes, checksum), then pending -> ready."""
        row = await self.get(owner, file_id)
        if row.status == "ready":
            return row
        try:
            info = await self.storage.head(row.storage_key)
        except (StorageError, OSError) as exc:
            raise storage_failed(exc) from exc
        if info is None:
            raise ApiError(409, "upload_not_found", "nothing has been uploaded for this file yet")
        try:
            if info.size > row.size_bytes or info.size > self.settings.max_upload_bytes:
                raise ApiError(413, "file_too_large", f"the upload is larger than the {row.size_bytes} bytes announced")
            if normalize_type(info.content_type) != row.content_type:
                raise rejected(f"the upload was stored as {normalize_type(info.content_type)}, not {row.content_type}")
            size, sha256 = await self._verify(row, info.version_id)
        except ApiError as exc:
            if exc.status in (413, 415):
                # The bytes go; the row stays pending (a retry may upload again until the sweeper expires it).
                await self._delete_object(row.storage_key)
                log.info("file_upload_rejected", file_id=row.id, reason=exc.code)
            raise
        async with self.db.transaction() as conn:
            ready = await store.mark_ready(conn, owner, row.id, size, sha256, info.version_id)
        if ready is None:
            return await self.get(owner, file_id)  # a concurrent complete won, or it was swept (404)
        log.info("file_uploaded", file_id=ready.id, size=size, content_type=ready.content_type)
        return ready

    async def _verify(self, row: FileRow, version_id: str | None) -> tuple[int, str]:
        """Read the stored object once: magic bytes, text rules, real size and SHA-256."""
        digest = hashlib.sha256()
        size = 0
        head = bytearray()
        text: TextCheck | None = None
        try:
            async for chunk in self.storage.read(row.storage_key, version_id):
                size += len(chunk)
                if size > row.size_bytes:
                    raise ApiError(413, "file_too_large", "the upload is larger than announced")
                digest.update(chunk)
                if text is not None:
                    text.feed(chunk)
                elif len(head) < SNIFF_BYTES:
                    head += chunk
                    if len(head) >= SNIFF_BYTES:
                        text = self._check_head(bytes(head), False, row)
        except (StorageError, OSError) as exc:
            raise storage_failed(exc) from exc
        if len(head) < SNIFF_BYTES:
            self._check_head(bytes(head), True, row)
        elif text is not None:
            text.feed(b"", final=True)
        return size, digest.hexdigest()

    def _check_head(self, head: bytes, eof: bool, row: FileRow) -> TextCheck | None:
        if classify(head, eof, row.content_type, row.filename, self.settings.allowed_types) != row.content_type:
            raise rejected("the content does not match the declared type")
        if row.content_type not in TEXT_TYPES:
            return None
        check = TextCheck()
        check.feed(head, final=eof)
        return check

    async def get(self, owner: str, file_id: str) -> FileRow:
        return await self._found(store.get, owner, file_id)

    async def get_by_key(self, owner: str, key: str) -> FileRow:
        return await self._found(store.get_by_key, owner, key)

    async def _found(
        self, lookup: Callable[[DictConnection, str, str], Awaitable[FileRow | None]], owner: str, ref: str
    ) -> FileRow:
        """The owner's file that `lookup` finds by `ref` (an id or a storage key); 404 when there is none."""
        async with self.db.connection() as conn:
            row = await lookup(conn, owner, ref)
        if row is None:
            raise not_found()
        return row

    async def list_files(self, owner: str, status: str | None, limit: int, offset: int) -> tuple[list[FileRow], int]:
        async with self.db.connection() as conn:
            return await store.list_files(conn, owner, status, min(limit, self.settings.list_max), offset)

    async def download_url(self, row: FileRow, expires_in: int | None) -> str:
        """A presigned link for a file the caller owns (the row came from an owner-filtered query)."""
        if row.status != "ready":
            raise ApiError(409, "file_not_ready", "this file's upload has not been completed")
        try:
            return await self.storage.presign_download(
                row.storage_key,
                filename=row.filename,
                content_type=served_type(row.content_type),
                expires_in=expires_in,
                version_id=row.storage_version,
            )
        except (StorageError, OSError) as exc:
            raise storage_failed(exc) from exc

    async def open_content(self, row: FileRow) -> AsyncIterator[bytes]:
        """The bytes of a file the caller owns (the row came from an owner-filtered query). The first chunk is read
        before the response starts, so an unreachable store is a clean 502 rather than a cut stream."""
        if row.status != "ready":
            raise ApiError(409, "file_not_ready", "this file's upload has not been completed")
        chunks = self.storage.read(row.storage_key, row.storage_version)
        try:
            first = await anext(chunks, b"")
        except (StorageError, OSError) as exc:
            await _close(chunks)
            raise storage_failed(exc) from exc

        async def body() -> AsyncIterator[bytes]:
            try:
                if first:
                    yield first
                async for chunk in chunks:
                    yield chunk
            finally:
                await _close(chunks)

        return body()

    async def delete(self, owner: str, file_id: str) -> FileRow:
        async with self.db.transaction() as conn:
            row = await store.mark_deleted(conn, owner, file_id, "user")
        if row is None:
            raise not_found()
        await self._delete_object(row.storage_key)
        log.info("file_deleted", file_id=row.id)
        return row

    async def sweep_pending(self, older_than_minutes: float | None = None, limit: int = 500) -> list[FileRow]:
        """Expire pending rows older than the TTL (uploads never made or never completed) and drop their bytes."""
        if older_than_minutes is None:
            minutes, stream = self.settings.pending_ttl_minutes, self.settings.stream_pending_ttl_minutes
        else:
            minutes = stream = older_than_minutes
        async with self.db.transaction() as conn:
            rows = await store.expire_pending(conn, minutes, limit, stream)
        for row in rows:
            await self._delete_object(row.storage_key)
        if rows:
            log.info("pending_files_expired", count=len(rows))
        return rows

    async def sweep_temporary(self, older_than_minutes: float | None = None) -> int:
        """Drop partial uploads a killed process left in the storage's temporary area."""
        minutes = self.settings.tmp_max_age_minutes if older_than_minutes is None else older_than_minutes
        removed = await self.storage.sweep_temporary(minutes * 60)
        if removed:
            log.info("temporary_uploads_removed", count=removed)
        return removed

    async def collect_orphans(
        self, *, delete: bool, min_age_minutes: float | None = None, limit: int = 10_000
    ) -> list[str]:
        """Objects under users/ with no pending or ready row (older than a grace period); deleted if asked."""
        minutes = self.settings.orphan_min_age_minutes if min_age_minutes is None else min_age_minutes
        cutoff = datetime.now(UTC) - timedelta(minutes=minutes)
        objects = await self.storage.list_objects("users/", limit=limit)
        # Only users/{user}/files/...: other domains keep their own objects under users/{user}/ (analytics/).
        keys = [
            o.key
            for o in objects
            if o.key.split("/")[2:3] == ["files"] and (o.last_modified is None or o.last_modified <= cutoff)
        ]
        orphans: list[str] = []
        async with self.db.connection() as conn:
            for start in range(0, len(keys), 1000):
                batch = keys[start : start + 1000]
                live = await store.live_keys(conn, batch)
                orphans += [k for k in batch if k not in live]
        if delete:
            for key in orphans:
                await self._delete_object(key)
        if orphans:
            log.info("orphan_objects", count=len(orphans), deleted=delete)
        return orphans
