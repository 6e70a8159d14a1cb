"""S3 through boto3 (credentials from the standard chain, so an EC2 instance role works); calls run in threads."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, Literal

import anyio
import anyio.to_thread

from isa.core.logging import get_logger
from isa.core.storage.base import (
    CHUNK,
    Link,
    ObjectExists,
    ObjectInfo,
    PresignedUpload,
    Storage,
    StorageError,
    StorageSettings,
    StoredObject,
    T,
    _Sha256Counter,
    validate_key,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = get_logger(__name__)


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

    async def _download_link(self, link: Link, disposition: str, content_type: str, version_id: str | None) -> str:
        params: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": link.key,
            "ResponseContentDisposition": disposition,
            "ResponseContentType": content_type,
        }
        if version_id:
            params["VersionId"] = version_id  # serve exactly the bytes that were checked
        return await self._call(
            self.client.generate_presigned_url, ClientMethod="get_object", Params=params, ExpiresIn=link.seconds
        )

    async def _upload_link(
        self, link: Link, content_type: str, max_bytes: int, method: Literal["POST", "PUT"]
    ) -> PresignedUpload:
        key, seconds, expires_at = link.key, link.seconds, link.expires_at
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
