"""S3Storage against moto's S3 server on loopback: real HTTP, real SigV4 presigned URLs fetched with httpx."""

from __future__ import annotations

import calendar
import hashlib
import os
import time
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from isa.core.storage import (
    ObjectExists,
    ObjectTooLarge,
    S3Storage,
    StorageError,
    StorageSettings,
    policy_of,
)
from tests.support.files import png, s3_client, s3_storage_settings

pytestmark = pytest.mark.anyio
MiB = 1024 * 1024


def storage_for(endpoint: str, bucket: str, **extra: object) -> S3Storage:
    return S3Storage(StorageSettings.model_validate(s3_storage_settings(endpoint, bucket, **extra)))


async def stream(data: bytes, chunk: int = 64 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), chunk):
        yield data[start : start + chunk]


async def test_a_streamed_put_is_stored_encrypted_and_reads_back_identical(moto_endpoint: str, bucket: str) -> None:
    storage = storage_for(moto_endpoint, bucket)
    data = png(300_000)
    stored = await storage.put_stream("users/a/files/x.png", stream(data), content_type="image/png", max_bytes=MiB)
    assert stored.size == len(data) and stored.sha256 == hashlib.sha256(data).hexdigest()
    assert stored.version_id  # the bucket is versioned, like deploy's
    head = s3_client(moto_endpoint).head_object(Bucket=bucket, Key="users/a/files/x.png")
    assert head["ServerSideEncryption"] == "AES256" and head["ContentType"] == "image/png"
    info = await storage.head("users/a/files/x.png")
    assert info is not None and info.size == len(data) and info.version_id == stored.version_id
    assert b"".join([c async for c in storage.read("users/a/files/x.png")]) == data


async def test_a_stream_bigger_than_a_part_goes_up_in_parts_without_changing_a_byte(
    moto_endpoint: str, bucket: str
) -> None:
    storage = storage_for(moto_endpoint, bucket, part_size_bytes=5 * MiB)
    data = os.urandom(11 * MiB + 123)
    stored = await storage.put_stream(
        "users/a/files/big.bin", stream(data), content_type="image/png", max_bytes=20 * MiB
    )
    assert stored.size == len(data)
    body = s3_client(moto_endpoint).get_object(Bucket=bucket, Key="users/a/files/big.bin")
    assert body["ServerSideEncryption"] == "AES256" and body["Body"].read() == data


async def test_a_stream_over_the_cap_stores_nothing_and_leaves_no_multipart_upload(
    moto_endpoint: str, bucket: str
) -> None:
    storage = storage_for(moto_endpoint, bucket, part_size_bytes=5 * MiB)
    with pytest.raises(ObjectTooLarge):
        await storage.put_stream(
            "users/a/files/o.bin", stream(os.urandom(7 * MiB)), content_type="x/y", max_bytes=6 * MiB
        )
    s3 = s3_client(moto_endpoint)
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")


async def test_a_put_never_overwrites_an_existing_key(moto_endpoint: str, bucket: str) -> None:
    storage = storage_for(moto_endpoint, bucket)
    await storage.put_stream("users/a/files/k.png", stream(b"first"), content_type="image/png", max_bytes=100)
    with pytest.raises(ObjectExists):
        await storage.put_stream("users/a/files/k.png", stream(b"second"), content_type="image/png", max_bytes=100)
    assert s3_client(moto_endpoint).get_object(Bucket=bucket, Key="users/a/files/k.png")["Body"].read() == b"first"


async def test_a_download_link_serves_an_attachment_and_its_lifetime_is_capped(moto_endpoint: str, bucket: str) -> None:
    storage = storage_for(moto_endpoint, bucket, presign_max_expires_seconds=600)
    await storage.put_stream("users/a/files/r.txt", stream(b"hello"), content_type="text/plain", max_bytes=100)
    url = await storage.presign_download(
        "users/a/files/r.txt", filename='ré"port.txt', content_type="text/plain; charset=utf-8", expires_in=86_400
    )
    assert parse_qs(urlparse(url).query)["X-Amz-Expires"] == ["600"]
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200 and response.content == b"hello"
    disposition = response.headers["content-disposition"]
    assert disposition.startswith("attachment;") and "filename*=UTF-8''r%C3%A9%22port.txt" in disposition
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    default = await storage.presign_download("users/a/files/r.txt", filename="r.txt", content_type="text/plain")
    assert parse_qs(urlparse(default).query)["X-Amz-Expires"] == ["600"]  # default 3600, capped


async def test_a_post_upload_form_binds_key_type_size_encryption_and_expiry(moto_endpoint: str, bucket: str) -> None:
    storage = storage_for(moto_endpoint, bucket, upload_expires_seconds=900)
    key = "users/a/files/2026/01/20260101_000000_abcdef12.png"
    form = await storage.presign_upload(key, content_type="image/png", max_bytes=5000, expires_in=10**6)
    policy = policy_of(form)
    conditions = policy["conditions"]
    assert {"key": key} in conditions and {"bucket": bucket} in conditions
    assert {"Content-Type": "image/png"} in conditions and ["content-length-range", 1, 5000] in conditions
    assert {"x-amz-server-side-encryption": "AES256"} in conditions
    expires = calendar.timegm(time.strptime(policy["expiration"], "%Y-%m-%dT%H:%M:%SZ"))
    assert expires - time.time() <= 3600 + 5  # asked for days, got the cap
    data = png(1000)
    response = httpx.post(form.url, data=form.fields, files={"file": ("x.png", data, "image/png")}, timeout=10)
    assert response.status_code == 204
    assert (await storage.head(key)) is not None


async def test_a_put_upload_link_works_once_then_refuses_to_overwrite(moto_endpoint: str, bucket: str) -> None:
    storage = storage_for(moto_endpoint, bucket)
    key = "users/a/files/2026/01/20260101_000000_00000001.png"
    link = await storage.presign_upload(key, content_type="image/png", max_bytes=5000, method="PUT")
    assert link.headers["If-None-Match"] == "*"
    first = httpx.put(link.url, content=png(100), headers=link.headers, timeout=10)
    assert first.status_code == 200
    second = httpx.put(link.url, content=b"<html>replaced</html>", headers=link.headers, timeout=10)
    assert second.status_code == 412
    assert s3_client(moto_endpoint).get_object(Bucket=bucket, Key=key)["Body"].read() == png(100)


async def test_a_plain_delete_hides_the_object_and_keeps_it_restorable(moto_endpoint: str, bucket: str) -> None:
    storage = storage_for(moto_endpoint, bucket)
    stored = await storage.put_stream("users/a/files/r.png", stream(png(50)), content_type="image/png", max_bytes=100)
    await storage.delete("users/a/files/r.png")
    assert await storage.head("users/a/files/r.png") is None
    assert await storage.list_objects("users/a/") == []
    versions = s3_client(moto_endpoint).list_object_versions(Bucket=bucket, Prefix="users/a/files/r.png")
    assert [v["VersionId"] for v in versions["Versions"]] == [stored.version_id] and versions["DeleteMarkers"]


async def test_a_purging_delete_removes_every_version_and_list_sees_only_the_prefix(
    moto_endpoint: str, bucket: str
) -> None:
    storage = storage_for(moto_endpoint, bucket, purge_versions_on_delete=True)
    for key in ("users/a/files/1.png", "users/a/files/2.png", "users/b/files/1.png"):
        await storage.put_stream(key, stream(png(50)), content_type="image/png", max_bytes=100)
    assert [o.key for o in await storage.list_objects("users/a/")] == ["users/a/files/1.png", "users/a/files/2.png"]
    await storage.delete("users/a/files/1.png")
    await storage.delete("users/a/files/missing.png")  # deleting nothing is fine
    assert await storage.head("users/a/files/1.png") is None
    versions = s3_client(moto_endpoint).list_object_versions(Bucket=bucket, Prefix="users/a/files/1.png")
    assert not versions.get("Versions") and not versions.get("DeleteMarkers")
    assert [o.key for o in await storage.list_objects("users/")] == ["users/a/files/2.png", "users/b/files/1.png"]


async def test_keys_that_could_escape_a_prefix_are_refused_before_any_call(moto_endpoint: str, bucket: str) -> None:
    storage = storage_for(moto_endpoint, bucket)
    for key in ("../x", "users/../../etc/passwd", "users//x", "/abs", "users/a/\x00.png", "", "users/./x"):
        with pytest.raises(StorageError):
            await storage.head(key)


def test_the_s3_backend_needs_a_bucket_and_takes_no_keys_from_settings() -> None:
    with pytest.raises(StorageError, match="bucket"):
        S3Storage(StorageSettings(backend="s3"))
    assert not any("access" in name or "secret" in name for name in StorageSettings.model_fields)
