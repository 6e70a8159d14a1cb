"""Object storage: the interface, its errors and settings, shared by both backends."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict

T = TypeVar("T")

SIGV4_MAX_EXPIRES = 604_800  # SigV4 presigned URLs can't live longer than 7 days
_KEY = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*(/[A-Za-z0-9_-][A-Za-z0-9_.-]*)*$")
CHUNK = 64 * 1024


class StorageSettings(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    backend: Literal["local", "s3"] = "local"
    local_dir: str = ""
    local_signing_key: str = ""
    bucket: str = ""
    region: str = ""
    endpoint_url: str = ""
    addressing_style: Literal["auto", "path", "virtual"] = "auto"
    presign_expires_seconds: int = 3600
    presign_max_expires_seconds: int = 3600
    upload_expires_seconds: int = 900
    part_size_bytes: int = 8 * 1024 * 1024
    connect_timeout_seconds: float = 5
    read_timeout_seconds: float = 60
    max_attempts: int = 3
    purge_versions_on_delete: bool = False


class StorageError(Exception):
    """A storage operation failed; the message never carries credentials or signed URLs."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code


class ObjectTooLarge(StorageError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"object is larger than {limit} bytes")
        self.limit = limit


class ObjectExists(StorageError):
    """The key already holds an object; storage never overwrites."""


class InvalidLink(StorageError):
    """A local signed link is forged, altered or expired."""


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    sha256: str
    content_type: str
    version_id: str | None = None


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    content_type: str
    etag: str = ""
    version_id: str | None = None
    last_modified: datetime | None = None


@dataclass(frozen=True)
class PresignedUpload:
    method: Literal["POST", "PUT"]
    url: str
    expires_at: datetime
    fields: dict[str, str] = field(default_factory=dict)  # POST form fields, sent before the file
    headers: dict[str, str] = field(default_factory=dict)  # PUT headers the signature covers


@dataclass(frozen=True)
class Link:
    """A presigned link being made: its validated key and its lifetime (seconds, and the epoch second it ends)."""

    key: str
    seconds: int
    deadline: int

    @property
    def expires_at(self) -> datetime:
        return datetime.fromtimestamp(self.deadline, UTC)


def validate_key(key: str) -> str:
    """Keys are built by the app; anything else (.., empty segments, odd bytes) is a bug or an attack."""
    if len(key) > 1024 or not _KEY.match(key) or any(seg in (".", "..") for seg in key.split("/")):
        raise StorageError("invalid object key")
    return key


def attachment_disposition(filename: str) -> str:
    """RFC 6266 `attachment` with an ASCII fallback and the exact UTF-8 name in filename*."""
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\;%' else "_" for c in filename) or "download"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


class Storage(ABC):
    """The one interface domains use; pick an implementation with `build_storage`."""

    backend: str

    def __init__(self, settings: StorageSettings) -> None:
        self.settings = settings

    def expires(self, requested: int | None, default: int | None = None) -> int:
        """The lifetime a link gets: the request (or default), never above the cap, at least 1 s."""
        cap = min(self.settings.presign_max_expires_seconds, SIGV4_MAX_EXPIRES)
        wanted = requested if requested is not None else (default or self.settings.presign_expires_seconds)
        return max(1, min(wanted, cap))

    @abstractmethod
    async def put_stream(
        self, key: str, chunks: AsyncIterable[bytes], *, content_type: str, max_bytes: int
    ) -> StoredObject:
        """Store a stream under a new key; ObjectTooLarge past `max_bytes`, ObjectExists if the key is taken."""

    @abstractmethod
    async def head(self, key: str) -> ObjectInfo | None:
        """Size and type of the current object, or None."""

    @abstractmethod
    def read(self, key: str, version_id: str | None = None) -> AsyncIterator[bytes]:
        """The object's bytes in chunks."""

    @abstractmethod
    async def delete(self, key: str) -> None:
        """Remove the object (every version of it where the backend keeps versions); missing is fine."""

    async def presign_download(
        self,
        key: str,
        *,
        filename: str,
        content_type: str,
        expires_in: int | None = None,
        version_id: str | None = None,
    ) -> str:
        """A link that downloads the object as an attachment until it expires."""
        link = self._link(key, expires_in)
        return await self._download_link(link, attachment_disposition(filename), content_type, version_id)

    async def presign_upload(
        self,
        key: str,
        *,
        content_type: str,
        max_bytes: int,
        expires_in: int | None = None,
        method: Literal["POST", "PUT"] = "POST",
    ) -> PresignedUpload:
        """A one-key upload link bound to the content type and (POST) a content-length range."""
        link = self._link(key, expires_in, self.settings.upload_expires_seconds)
        return await self._upload_link(link, content_type, max_bytes, method)

    def _link(self, key: str, requested: int | None, default: int | None = None) -> Link:
        validate_key(key)
        seconds = self.expires(requested, default)
        return Link(key, seconds, int(time.time()) + seconds)

    @abstractmethod
    async def _download_link(self, link: Link, disposition: str, content_type: str, version_id: str | None) -> str:
        """The backend's signed GET for a validated key."""

    @abstractmethod
    async def _upload_link(
        self, link: Link, content_type: str, max_bytes: int, method: Literal["POST", "PUT"]
    ) -> PresignedUpload:
        """The backend's signed upload for a validated key."""

    @abstractmethod
    async def list_objects(self, prefix: str, *, limit: int = 1000) -> list[ObjectInfo]:
        """Objects whose key starts with `prefix`, at most `limit`."""

    async def sweep_temporary(self, older_than_seconds: float) -> int:
        """Remove partial uploads a killed process left behind (untouched this long); how many went."""
        return 0  # S3 keeps none: an unfinished PUT never becomes an object


class _Sha256Counter:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size = 0
        self.hash = hashlib.sha256()

    def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.limit:
            raise ObjectTooLarge(self.limit)
        self.hash.update(chunk)


# ---------------------------------------------------------------- S3


def policy_of(upload: PresignedUpload) -> dict[str, Any]:
    """The decoded POST policy of an S3 upload form (for inspection and tests)."""
    decoded: dict[str, Any] = json.loads(base64.b64decode(upload.fields["policy"]))
    return decoded
