"""SQL for the files table. Every statement that touches a user's file names the owner in its WHERE clause."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from isa.core.db import DictConnection, fetch_all, fetch_one

_COLUMNS = (
    "id, user_id, storage_key, storage_version, filename, content_type, size_bytes, sha256, status, "
    "upload_method, status_reason, created_at, updated_at"
)


@dataclass(frozen=True)
class FileRow:
    id: str
    user_id: str
    storage_key: str
    storage_version: str | None
    filename: str
    content_type: str
    size_bytes: int
    sha256: str | None
    status: str
    upload_method: str
    status_reason: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Usage:
    files: int
    bytes: int


def _row(row: dict[str, Any]) -> FileRow:
    return FileRow(**{**row, "id": str(row["id"]), "size_bytes": int(row["size_bytes"])})


async def _one(conn: DictConnection, sql: str, params: tuple[Any, ...]) -> FileRow | None:
    row = await fetch_one(conn, sql, params)
    return _row(row) if row else None


async def user_exists(conn: DictConnection, user_id: str) -> bool:
    cur = await conn.execute("SELECT 1 FROM users WHERE user_id = %s", (user_id,))
    return await cur.fetchone() is not None


async def lock_user_usage(conn: DictConnection, user_id: str) -> Usage:
    """Serialise quota decisions for one user (until the transaction ends) and return what they use now."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('isa.files:' || %s, 0))", (user_id,))
    row = await fetch_one(
        conn,
        "SELECT count(*) AS files, coalesce(sum(size_bytes), 0) AS bytes FROM files "
        "WHERE user_id = %s AND status IN ('pending', 'ready')",
        (user_id,),
    )
    assert row is not None
    return Usage(int(row["files"]), int(row["bytes"]))


async def insert_pending(
    conn: DictConnection,
    user_id: str,
    storage_key: str,
    filename: str,
    content_type: str,
    reserved_bytes: int,
    upload_method: str,
) -> FileRow:
    row = await _one(
        conn,
        "INSERT INTO files (user_id, storage_key, filename, content_type, size_bytes, upload_method) "
        f"VALUES (%s, %s, %s, %s, %s, %s) RETURNING {_COLUMNS}",
        (user_id, storage_key, filename, content_type, reserved_bytes, upload_method),
    )
    assert row is not None
    return row


async def mark_ready(
    conn: DictConnection, user_id: str, file_id: str, size: int, sha256: str, version: str | None
) -> FileRow | None:
    """pending -> ready; None when the row is gone, someone else's, or no longer pending (swept)."""
    return await _one(
        conn,
        "UPDATE files SET status = 'ready', size_bytes = %s, sha256 = %s, storage_version = %s, status_reason = NULL "
        f"WHERE id = %s AND user_id = %s AND status = 'pending' RETURNING {_COLUMNS}",
        (size, sha256, version, file_id, user_id),
    )


async def mark_deleted(conn: DictConnection, user_id: str, file_id: str, reason: str) -> FileRow | None:
    """Soft-delete a pending or ready file of this owner; returns the row as it was deleted."""
    return await _one(
        conn,
        "UPDATE files SET status = 'deleted', deleted_at = now(), status_reason = %s "
        f"WHERE id = %s AND user_id = %s AND status <> 'deleted' RETURNING {_COLUMNS}",
        (reason, file_id, user_id),
    )


async def get(conn: DictConnection, user_id: str, file_id: str) -> FileRow | None:
    return await _one(
        conn,
        f"SELECT {_COLUMNS} FROM files WHERE id = %s AND user_id = %s AND status <> 'deleted'",
        (file_id, user_id),
    )


async def get_by_key(conn: DictConnection, user_id: str, storage_key: str) -> FileRow | None:
    return await _one(
        conn,
        f"SELECT {_COLUMNS} FROM files WHERE storage_key = %s AND user_id = %s AND status <> 'deleted'",
        (storage_key, user_id),
    )


async def list_files(
    conn: DictConnection, user_id: str, status: str | None, limit: int, offset: int
) -> tuple[list[FileRow], int]:
    statuses = [status] if status else ["pending", "ready"]
    rows = await fetch_all(
        conn,
        f"SELECT {_COLUMNS}, count(*) OVER () AS total FROM files "
        "WHERE user_id = %s AND status = ANY(%s) ORDER BY created_at DESC, id LIMIT %s OFFSET %s",
        (user_id, statuses, limit, offset),
    )
    total = int(rows[0]["total"]) if rows else 0
    return [_row({k: v for k, v in r.items() if k != "total"}) for r in rows], total


async def expire_pending(
    conn: DictConnection, older_than_minutes: float, limit: int, stream_minutes: float | None = None
) -> list[FileRow]:
    """pending rows older than the cut-off (`stream_minutes` for streamed uploads) -> deleted ('expired');
    safe to run on several nodes at once."""
    stream = older_than_minutes if stream_minutes is None else stream_minutes
    cur = await conn.execute(
        "UPDATE files SET status = 'deleted', deleted_at = now(), status_reason = 'expired' WHERE id IN ("
        "  SELECT id FROM files WHERE status = 'pending' AND created_at < now() - make_interval(secs =>"
        "  CASE WHEN upload_method = 'stream' THEN %s ELSE %s END)"
        "  ORDER BY created_at LIMIT %s FOR UPDATE SKIP LOCKED"
        f") RETURNING {_COLUMNS}",
        (stream * 60, older_than_minutes * 60, limit),
    )
    return [_row(r) for r in await cur.fetchall()]


async def live_keys(conn: DictConnection, keys: list[str]) -> set[str]:
    """Which of these storage keys belong to a pending or ready row."""
    cur = await conn.execute(
        "SELECT storage_key FROM files WHERE storage_key = ANY(%s) AND status <> 'deleted'", (keys,)
    )
    return {r["storage_key"] for r in await cur.fetchall()}
