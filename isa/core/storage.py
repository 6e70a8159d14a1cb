"""Object storage behind one interface: S3 (boto3, instance-role friendly) or a local folder with signed links.

Both backends stream uploads with a byte cap, never overwrite an existing key, and mint download links whose
lifetime can never exceed the configured cap. boto3 is synchronous, so every call runs in a worker thread.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from urllib.parse import quote, urlencode

import anyio
import anyio.to_thread
from pydantic import BaseModel, ConfigDict

from isa.core.logging import get_logger

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = get_logger(__name__)
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

    @abstractmethod
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

    @abstractmethod
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

    @abstractmethod
    async def list_objects(self, prefix: str, *, limit: int = 1000) -> list[ObjectInfo]:
        """Objects whose key starts with `prefix`, at most `limit`."""


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


class S3Storage(Storage):
    """An S3 bucket. Credentials come from boto3's standard chain (env, profile, EC2 instance role)."""

    backend = "s3"

    def __init__(self, settings: StorageSettings, client: S3Client | None = None) -> None:
        super().__init__(settings)
        if not settings.bucket:
            raise StorageError("storage.bucket is required when storage.backend = 's3'")
        self.bucket = settings.bucket
        self.client = client or self._client(settings)

    @staticmethod
    def _client(settings: StorageSettings) -> S3Client:
        import boto3
        from botocore.config import Config

        config = Config(
            signature_version="s3v4",
            s3={"addressing_style": settings.addressing_style},
            connect_timeout=settings.connect_timeout_seconds,
            read_timeout=settings.read_timeout_seconds,
            # The only retry layer for storage calls; explicit, not the SDK's legacy default.
            retries={"mode": "standard", "total_max_attempts": settings.max_attempts},
        )
        return boto3.session.Session().client(
            "s3",
            region_name=settings.region or None,
            endpoint_url=settings.endpoint_url or None,
            config=config,
        )

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run one blocking boto3 call in a worker thread; its errors become StorageError (code kept)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return await anyio.to_thread.run_sync(lambda: fn(*args, **kwargs))
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            raise StorageError(f"S3 {exc.operation_name} failed: {code}", code) from None
        except BotoCoreError as exc:
            raise StorageError(f"S3 call failed: {type(exc).__name__}", type(exc).__name__) from None

    async def put_stream(
        self, key: str, chunks: AsyncIterable[bytes], *, content_type: str, max_bytes: int
    ) -> StoredObject:
        validate_key(key)
        counter = _Sha256Counter(max_bytes)
        part_size = max(self.settings.part_size_bytes, 5 * 1024 * 1024)
        buffer = bytearray()
        upload_id: str | None = None
        parts: list[dict[str, Any]] = []
        common: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        try:
            async for chunk in chunks:
                counter.add(chunk)
                buffer += chunk
                if len(buffer) >= part_size:
                    if upload_id is None:
                        created = await self._call(
                            self.client.create_multipart_upload,
                            **common,
                            ContentType=content_type,
                            ServerSideEncryption="AES256",
                        )
                        upload_id = created["UploadId"]
                    parts.append(await self._upload_part(common, upload_id, len(parts) + 1, bytes(buffer)))
                    buffer.clear()
            if upload_id is None:
                result: Any = await self._call(
                    self.client.put_object,
                    **common,
                    Body=bytes(buffer),
                    ContentType=content_type,
                    ServerSideEncryption="AES256",
                    IfNoneMatch="*",
                )
            else:
                if buffer:
                    parts.append(await self._upload_part(common, upload_id, len(parts) + 1, bytes(buffer)))
                result = await self._call(
                    self.client.complete_multipart_upload,
                    **common,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},
                    IfNoneMatch="*",
                )
                upload_id = None
        except BaseException as exc:
            if upload_id is not None:
                with anyio.CancelScope(shield=True):
                    await self._abort(common, upload_id)
            if isinstance(exc, StorageError) and exc.code in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise ObjectExists(key, exc.code) from None
            raise
        return StoredObject(key, counter.size, counter.hash.hexdigest(), content_type, result.get("VersionId"))

    async def _upload_part(self, common: dict[str, Any], upload_id: str, number: int, body: bytes) -> dict[str, Any]:
        part = await self._call(self.client.upload_part, **common, UploadId=upload_id, PartNumber=number, Body=body)
        return {"ETag": part["ETag"], "PartNumber": number}

    async def _abort(self, common: dict[str, Any], upload_id: str) -> None:
        try:
            await self._call(self.client.abort_multipart_upload, **common, UploadId=upload_id)
        except StorageError as exc:  # a lifecycle rule cleans up what this misses
            log.warning("multipart_abort_failed", error=type(exc).__name__)

    async def head(self, key: str) -> ObjectInfo | None:
        validate_key(key)
        try:
            h = await self._call(self.client.head_object, Bucket=self.bucket, Key=key)
        except StorageError as exc:
            if exc.code in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return ObjectInfo(
            key,
            int(h["ContentLength"]),
            h.get("ContentType", "application/octet-stream"),
            h.get("ETag", "").strip('"'),
            h.get("VersionId"),
            h.get("LastModified"),
        )

    async def read(self, key: str, version_id: str | None = None) -> AsyncIterator[bytes]:
        validate_key(key)
        extra = {"VersionId": version_id} if version_id else {}
        response = await self._call(self.client.get_object, Bucket=self.bucket, Key=key, **extra)
        body = response["Body"]
        try:
            while chunk := await self._call(body.read, CHUNK):
                yield chunk
        finally:
            body.close()

    async def delete(self, key: str) -> None:
        validate_key(key)
        if self.settings.purge_versions_on_delete:
            try:
                await self._purge_versions(key)
                return
            except StorageError as exc:
                if exc.code != "AccessDenied":
                    raise
                # Without s3:ListBucketVersions / s3:DeleteObjectVersion, a delete marker still hides the object.
                log.warning("purge_versions_denied", hint="grant s3:ListBucketVersions and s3:DeleteObjectVersion")
        # On a versioned bucket this adds a delete marker; the lifecycle rule expires the old version later.
        await self._call(self.client.delete_object, Bucket=self.bucket, Key=key)

    async def _purge_versions(self, key: str) -> None:
        listed = await self._call(self.client.list_object_versions, Bucket=self.bucket, Prefix=key)
        for version in [*listed.get("Versions", []), *listed.get("DeleteMarkers", [])]:
            if version.get("Key") == key:
                await self._call(self.client.delete_object, Bucket=self.bucket, Key=key, VersionId=version["VersionId"])

    async def presign_download(
        self,
        key: str,
        *,
        filename: str,
        content_type: str,
        expires_in: int | None = None,
        version_id: str | None = None,
    ) -> str:
        validate_key(key)
        params: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": key,
            "ResponseContentDisposition": attachment_disposition(filename),
            "ResponseContentType": content_type,
        }
        if version_id:
            params["VersionId"] = version_id  # serve exactly the bytes that were checked
        seconds = self.expires(expires_in)
        return await self._call(
            self.client.generate_presigned_url, ClientMethod="get_object", Params=params, ExpiresIn=seconds
        )

    async def presign_upload(
        self,
        key: str,
        *,
        content_type: str,
        max_bytes: int,
        expires_in: int | None = None,
        method: Literal["POST", "PUT"] = "POST",
    ) -> PresignedUpload:
        validate_key(key)
        seconds = self.expires(expires_in, self.settings.upload_expires_seconds)
        expires_at = datetime.fromtimestamp(int(time.time()) + seconds, UTC)
        if method == "PUT":
            # A PUT can't bound the size; If-None-Match makes a second use of the link fail with 412.
            headers = {"Content-Type": content_type, "x-amz-server-side-encryption": "AES256", "If-None-Match": "*"}
            params = {
                "Bucket": self.bucket,
                "Key": key,
                "ContentType": content_type,
                "ServerSideEncryption": "AES256",
                "IfNoneMatch": "*",
            }
            url = await self._call(
                self.client.generate_presigned_url, ClientMethod="put_object", Params=params, ExpiresIn=seconds
            )
            return PresignedUpload("PUT", url, expires_at, headers=headers)
        fields = {"Content-Type": content_type, "x-amz-server-side-encryption": "AES256"}
        conditions: list[Any] = [
            {"Content-Type": content_type},
            {"x-amz-server-side-encryption": "AES256"},
            ["content-length-range", 1, max_bytes],
        ]
        # boto3 adds the exact {"bucket"} and {"key"} conditions itself.
        post = await self._call(
            self.client.generate_presigned_post,
            Bucket=self.bucket,
            Key=key,
            Fields=fields,
            Conditions=conditions,
            ExpiresIn=seconds,
        )
        return PresignedUpload("POST", post["url"], expires_at, fields=dict(post["fields"]))

    async def list_objects(self, prefix: str, *, limit: int = 1000) -> list[ObjectInfo]:
        out: list[ObjectInfo] = []
        token: str | None = None
        while len(out) < limit:
            extra = {"ContinuationToken": token} if token else {}
            page = await self._call(
                self.client.list_objects_v2,
                Bucket=self.bucket,
                Prefix=prefix,
                MaxKeys=min(1000, limit - len(out)),
                **extra,
            )
            for obj in page.get("Contents", []):
                out.append(
                    ObjectInfo(
                        obj["Key"], int(obj["Size"]), "", obj.get("ETag", "").strip('"'), None, obj["LastModified"]
                    )
                )
            token = page.get("NextContinuationToken")
            if not token:
                break
        return out


# ---------------------------------------------------------------- local folder


class LocalStorage(Storage):
    """A folder (the embedded default). Links are HMAC-signed and expiring, served by the files domain's routes."""

    backend = "local"

    def __init__(self, settings: StorageSettings, root: Path, url_prefix: str = "/api/v1/storage/local/") -> None:
        super().__init__(settings)
        self.root = root.resolve()
        self.url_prefix = url_prefix
        for sub in ("objects", "meta", "tmp"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self._key = settings.local_signing_key.encode() or self._stored_signing_key()

    def _stored_signing_key(self) -> bytes:
        """A random key kept next to the files, so links survive restarts without a configured secret."""
        path = self.root / ".signing-key"
        if not path.exists():
            tmp = self.root / "tmp" / uuid.uuid4().hex
            tmp.write_text(secrets.token_hex(32))
            tmp.chmod(0o600)
            try:
                os.link(tmp, path)  # atomic; another process may win, then we read its key
            except FileExistsError:
                pass
            finally:
                tmp.unlink()
        return path.read_text().strip().encode()

    def path_for(self, key: str) -> Path:
        return self.root / "objects" / validate_key(key)

    def _meta_path(self, key: str) -> Path:
        return self.root / "meta" / (validate_key(key) + ".json")

    def sign(self, *parts: str) -> str:
        return hmac.new(self._key, "\n".join(parts).encode(), hashlib.sha256).hexdigest()

    async def put_stream(
        self, key: str, chunks: AsyncIterable[bytes], *, content_type: str, max_bytes: int
    ) -> StoredObject:
        final = self.path_for(key)
        if final.exists():
            raise ObjectExists(key)
        counter = _Sha256Counter(max_bytes)
        tmp = self.root / "tmp" / uuid.uuid4().hex
        try:
            async with await anyio.open_file(tmp, "xb") as out:
                async for chunk in chunks:
                    counter.add(chunk)
                    await out.write(chunk)
            meta = {"content_type": content_type, "size": counter.size, "sha256": counter.hash.hexdigest()}
            await anyio.to_thread.run_sync(self._publish, key, tmp, final, meta)
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(lambda: tmp.unlink(missing_ok=True))
        return StoredObject(key, counter.size, counter.hash.hexdigest(), content_type)

    def _publish(self, key: str, tmp: Path, final: Path, meta: dict[str, Any]) -> None:
        final.parent.mkdir(parents=True, exist_ok=True)
        meta_path = self._meta_path(key)
        meta_path.parent.mkdir(parents=True, exist_ok=True)
        meta_path.write_text(json.dumps(meta))
        try:
            os.link(tmp, final)  # atomic and never replaces an existing object
        except FileExistsError:
            raise ObjectExists(key) from None

    async def head(self, key: str) -> ObjectInfo | None:
        path = self.path_for(key)

        def stat() -> ObjectInfo | None:
            try:
                st = path.stat()
            except FileNotFoundError:
                return None
            try:
                meta = json.loads(self._meta_path(key).read_text())
            except (OSError, ValueError):
                meta = {}
            modified = datetime.fromtimestamp(st.st_mtime, UTC)
            return ObjectInfo(key, st.st_size, meta.get("content_type", "application/octet-stream"), "", None, modified)

        return await anyio.to_thread.run_sync(stat)

    async def read(self, key: str, version_id: str | None = None) -> AsyncIterator[bytes]:
        async with await anyio.open_file(self.path_for(key), "rb") as f:
            while chunk := await f.read(CHUNK):
                yield chunk

    async def delete(self, key: str) -> None:
        def remove() -> None:
            self.path_for(key).unlink(missing_ok=True)
            self._meta_path(key).unlink(missing_ok=True)

        await anyio.to_thread.run_sync(remove)

    async def presign_download(
        self,
        key: str,
        *,
        filename: str,
        content_type: str,
        expires_in: int | None = None,
        version_id: str | None = None,
    ) -> str:
        validate_key(key)
        expires = str(int(time.time()) + self.expires(expires_in))
        disposition = attachment_disposition(filename)
        sig = self.sign("GET", key, expires, content_type, disposition)
        query = urlencode({"expires": expires, "type": content_type, "disposition": disposition, "sig": sig})
        return f"{self.url_prefix}{key}?{query}"

    def check_download(self, key: str, query: dict[str, str], now: float | None = None) -> tuple[Path, str, str]:
        """(path, content type, disposition) for a valid, unexpired GET link; InvalidLink otherwise."""
        expires, ctype, disposition = query.get("expires", ""), query.get("type", ""), query.get("disposition", "")
        self._check(query.get("sig", ""), expires, now, "GET", key, expires, ctype, disposition)
        return self.path_for(key), ctype, disposition

    async def presign_upload(
        self,
        key: str,
        *,
        content_type: str,
        max_bytes: int,
        expires_in: int | None = None,
        method: Literal["POST", "PUT"] = "POST",
    ) -> PresignedUpload:
        # One shape locally: a signed PUT bound to the key, type and size cap (enforced by check_upload).
        validate_key(key)
        seconds = self.expires(expires_in, self.settings.upload_expires_seconds)
        expires = str(int(time.time()) + seconds)
        sig = self.sign("PUT", key, expires, content_type, str(max_bytes))
        query = urlencode({"expires": expires, "type": content_type, "max": str(max_bytes), "sig": sig})
        expires_at = datetime.fromtimestamp(int(expires), UTC)
        return PresignedUpload(
            "PUT", f"{self.url_prefix}{key}?{query}", expires_at, headers={"Content-Type": content_type}
        )

    def check_upload(self, key: str, query: dict[str, str], now: float | None = None) -> tuple[str, int]:
        """(content type, max bytes) for a valid, unexpired PUT link; InvalidLink otherwise."""
        expires, ctype, limit = query.get("expires", ""), query.get("type", ""), query.get("max", "")
        self._check(query.get("sig", ""), expires, now, "PUT", key, expires, ctype, limit)
        return ctype, int(limit)

    def _check(self, sig: str, expires: str, now: float | None, *signed: str) -> None:
        validate_key(signed[1])
        if not hmac.compare_digest(sig.encode(), self.sign(*signed).encode()):
            raise InvalidLink("signature does not match")
        if not expires.isdigit() or int(expires) < (time.time() if now is None else now):
            raise InvalidLink("link expired")

    async def list_objects(self, prefix: str, *, limit: int = 1000) -> list[ObjectInfo]:
        base = self.root / "objects"
        # Walk only the folder the prefix names, not the whole tree.
        start = base / prefix.rsplit("/", 1)[0] if "/" in prefix else base

        def walk() -> list[ObjectInfo]:
            out: list[ObjectInfo] = []
            if ".." in prefix.split("/") or not start.is_dir():
                return out
            for path in sorted(start.rglob("*")):
                key = path.relative_to(base).as_posix()
                if path.is_file() and key.startswith(prefix):
                    st = path.stat()
                    out.append(ObjectInfo(key, st.st_size, "", "", None, datetime.fromtimestamp(st.st_mtime, UTC)))
                    if len(out) >= limit:
                        break
            return out

        return await anyio.to_thread.run_sync(walk)


def build_storage(settings: StorageSettings, data_dir: Path) -> Storage:
    """The configured backend."""
    if settings.backend == "s3":
        return S3Storage(settings)
    return LocalStorage(settings, Path(settings.local_dir) if settings.local_dir else data_dir / "files")


def policy_of(upload: PresignedUpload) -> dict[str, Any]:
    """The decoded POST policy of an S3 upload form (for inspection and tests)."""
    decoded: dict[str, Any] = json.loads(base64.b64decode(upload.fields["policy"]))
    return decoded
