"""Where ingested data comes from: one of the caller's files (through the files service) or an http(s) URL
(through the egress guard). Never a server path: anything else is refused before any I/O."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import anyio

from isa.core.egress import EgressBlocked, EgressFailed, EgressPolicy, GuardedClient
from isa.core.errors import ApiError
from isa.core.storage import StorageError
from isa.files.service import FilesService

SOURCE_TYPES = ("csv", "tsv", "json", "jsonl", "parquet", "excel")
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_BY_SUFFIX = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".xlsx": "excel",
}
_BY_TYPE = {
    "text/csv": "csv",
    "text/tab-separated-values": "tsv",
    "application/json": "json",
    "application/x-ndjson": "jsonl",
    "application/jsonl": "jsonl",
    "application/vnd.apache.parquet": "parquet",
    XLSX: "excel",
}


@dataclass(frozen=True)
class Source:
    kind: str  # "file" or "url"
    ref: str  # the file id or the URL
    name: str  # a file name to derive the table name from
    source_type: str
    path: Path  # the local copy (in the caller's temporary directory)


def invalid_source(message: str) -> ApiError:
    return ApiError(422, "invalid_source", message)


def is_url(text: str) -> bool:
    return urlsplit(text.strip()).scheme.lower() in ("http", "https")


def detect_type(given: str | None, name: str, content_type: str, head: bytes) -> str:
    """The declared source type when given, else from the bytes, the file name, then the content type."""
    if given:
        kind = given.strip().lower()
        kind = {"xlsx": "excel", "ndjson": "jsonl", "json_lines": "jsonl"}.get(kind, kind)
        if kind not in SOURCE_TYPES:
            raise invalid_source(f"source_type must be one of {', '.join(SOURCE_TYPES)}")
        return kind
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(b"PK\x03\x04"):
        return "excel"
    by_name = _BY_SUFFIX.get(PurePosixPath(name.lower()).suffix)
    if by_name:
        return by_name
    ctype = content_type.split(";", 1)[0].strip().lower()
    if ctype in _BY_TYPE:
        return _BY_TYPE[ctype]
    return "jsonl" if head.lstrip()[:1] == b"{" else "csv"  # DuckDB's CSV sniffer finds the delimiter


async def from_file(
    files: FilesService, owner: str, file_id: str, source_type: str | None, target: Path, max_bytes: int
) -> Source:
    """Copy the caller's ready file to `target`; another user's file is 'not found' like a missing one."""
    try:
        file_uuid = str(uuid.UUID(file_id))
    except ValueError:
        raise invalid_source(
            "source_path must be the id of one of your files (upload it through the files API) or an http(s) URL;"
            " server paths are not accepted"
        ) from None
    try:
        row = await files.get(owner, file_uuid)
    except ApiError:
        raise ApiError(404, "source_not_found", f"no file {file_id} among your files") from None
    if row.status != "ready":
        raise ApiError(409, "file_not_ready", f"file {file_id} has not finished uploading")
    if row.size_bytes > max_bytes:
        raise ApiError(413, "source_too_large", f"the file is larger than {max_bytes} bytes")
    size = 0
    head = b""
    try:
        async with await anyio.open_file(target, "wb") as out:
            async for chunk in files.storage.read(row.storage_key, row.storage_version):
                size += len(chunk)
                if size > max_bytes:
                    raise ApiError(413, "source_too_large", f"the file is larger than {max_bytes} bytes")
                if len(head) < 16:
                    head += chunk[:16]
                await out.write(chunk)
    except (StorageError, OSError):
        raise ApiError(502, "storage_unavailable", "file storage is not reachable; try again") from None
    kind = detect_type(source_type, row.filename, row.content_type, head)
    return Source("file", file_uuid, row.filename, kind, target)


async def from_url(
    url: str, policy: EgressPolicy, source_type: str | None, target: Path, max_bytes: int, fetch_timeout: float
) -> Source:
    """GET the URL through the egress guard (public addresses only, pinned, redirects re-vetted, bounded)."""
    client = GuardedClient(policy, max_bytes=max_bytes, timeout=fetch_timeout, user_agent="isa-analytics/1.0")
    try:
        fetched = await client.fetch(url)
    except EgressBlocked as exc:
        raise ApiError(403, "url_blocked", str(exc)) from None
    except EgressFailed as exc:
        raise ApiError(502, "url_fetch_failed", str(exc)) from None
    if not 200 <= fetched.status < 300:
        raise ApiError(502, "url_fetch_failed", f"the URL answered HTTP {fetched.status}")
    if not fetched.content:
        raise ApiError(422, "empty_source", "the URL returned no data")
    await anyio.Path(target).write_bytes(fetched.content)
    name = PurePosixPath(urlsplit(fetched.url).path).name or "data"
    ctype = next((v for k, v in fetched.headers.items() if k.lower() == "content-type"), "")
    kind = detect_type(source_type, name, ctype, fetched.content[:16])
    return Source("url", url, name, kind, target)
