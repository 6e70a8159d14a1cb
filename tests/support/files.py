"""Files tests: moto's S3 server on loopback, buckets laid out like deploy's, apps with storage settings, samples."""

from __future__ import annotations

import io
import os
import uuid
import zipfile
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto.server import ThreadedMotoServer
from mypy_boto3_s3 import S3Client
from starlette.testclient import TestClient

from isa.app import create_app
from isa.core.settings import Settings

REGION = "us-east-1"
# Credentials for moto only, through the standard chain (environment), as an instance role would be.
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": REGION,
    # Never reach for the EC2 metadata service from a test.
    "AWS_EC2_METADATA_DISABLED": "true",
}

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
PDF = b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"


def png(size: int = 2048) -> bytes:
    """PNG magic followed by non-markup filler, `size` bytes in all."""
    body = PNG + bytes(range(256)) * (size // 256 + 1)
    return body[:size]


def office(kind: str = "word") -> bytes:
    """A minimal docx ("word") or xlsx ("xl") zip, as Office writes the first entries."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types/>')
        z.writestr("_rels/.rels", '<?xml version="1.0"?><Relationships/>')
        z.writestr(f"{kind}/document.xml" if kind == "word" else "xl/workbook.xml", "<doc/>")
    return buf.getvalue()


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """moto's S3 API server on 127.0.0.1 for the whole run: real HTTP, real SigV4 presigned URLs."""
    os.environ.update(AWS_ENV)
    # Port 0: the OS picks a free port at bind time, so no other process can take it between choice and bind
    # (a taken port would leave ThreadedMotoServer.start() waiting forever).
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def s3_client(endpoint: str) -> S3Client:
    config = Config(signature_version="s3v4", s3={"addressing_style": "path"})
    return boto3.client("s3", region_name=REGION, endpoint_url=endpoint, config=config)


def make_bucket(endpoint: str) -> str:
    """A bucket set up like deploy/'s: versioning on, public access blocked, AES256 by default."""
    name = f"isa-test-{uuid.uuid4().hex[:12]}"
    s3 = s3_client(endpoint)
    s3.create_bucket(Bucket=name)
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    s3.put_public_access_block(
        Bucket=name,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    s3.put_bucket_encryption(
        Bucket=name,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )
    return name


def s3_storage_settings(endpoint: str, bucket: str, **extra: Any) -> dict[str, Any]:
    return {
        "backend": "s3",
        "bucket": bucket,
        "endpoint_url": endpoint,
        "region": REGION,
        "addressing_style": "path",
        **extra,
    }


def with_sections(settings: Settings, **sections: dict[str, Any]) -> Settings:
    """A copy of `settings` with some keys of some sections replaced (as ISA_SECTION__KEY would)."""
    raw = dict(settings.raw)
    for name, values in sections.items():
        raw[name] = {**raw.get(name, {}), **values}
    return settings.model_copy(update={"raw": raw})


def files_client(
    settings: Settings, db_url: str, storage: dict[str, Any], files: dict[str, Any] | None = None
) -> TestClient:
    """An mcp-role app (which serves the files domain) with these storage/files settings."""
    configured = with_sections(settings, storage=storage, files={"sweep_interval_seconds": 0, **(files or {})})
    return TestClient(create_app(configured, "mcp", database_url=db_url))


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
