"""Uploads stream: a 40 MiB file passes through parser, type checks and storage without being held in memory."""

from __future__ import annotations

import subprocess
import sys
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from isa.core.db import Database
from isa.core.settings import Settings
from isa.core.storage import LocalStorage, S3Storage, Storage, StorageSettings
from isa.files.multipart import MultipartFileReader
from isa.files.service import FilesService
from isa.files.settings import FilesSettings
from tests.support.auth import create_key
from tests.support.files import AWS_ENV, PNG, make_bucket, s3_storage_settings
from tests.support.procs import free_port, port_open, wait_for

MiB = 1024 * 1024
SIZE = 40 * MiB
BOUNDARY = "isaStreamBoundary"
BLOCK = bytes(range(256)) * 256  # 64 KiB of filler without markup


async def multipart_body() -> AsyncIterator[bytes]:
    """A multipart body generated on the fly: the whole file never exists in this process either."""
    yield (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()
    yield PNG
    sent = len(PNG)
    while sent < SIZE:
        piece = BLOCK[: SIZE - sent]
        sent += len(piece)
        yield piece
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


@pytest.fixture(scope="module")
def streaming_user(settings: Settings, db_url: str) -> str:
    create_key(db_url, settings, "stream-user", "write")
    return "stream-user"


@pytest.fixture(scope="module")
def moto_process() -> Iterator[str]:
    """moto in its own process, so this process's memory counts only our side of the upload."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: port_open(port), timeout=30)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


async def peak_of_upload(storage: Storage, settings: Settings, db_url: str, user: str) -> tuple[int, int]:
    db = Database(db_url, settings)
    await db.open()
    try:
        service = FilesService(db, storage, FilesSettings(max_upload_bytes=64 * MiB, quota_bytes=10**12))
        tracemalloc.start()
        try:
            reader = MultipartFileReader(multipart_body(), f"multipart/form-data; boundary={BOUNDARY}")
            row = await service.upload(user, await reader.open_file(), None)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        return row.size_bytes, peak
    finally:
        await db.close()


@pytest.mark.anyio
async def test_a_40_mib_upload_to_the_local_backend_peaks_under_4_mib(
    settings: Settings, db_url: str, streaming_user: str, tmp_path: Path
) -> None:
    storage = LocalStorage(StorageSettings(), tmp_path)
    size, peak = await peak_of_upload(storage, settings, db_url, streaming_user)
    assert size == SIZE
    assert peak < 4 * MiB, f"peak {peak / MiB:.1f} MiB"


@pytest.mark.anyio
async def test_a_40_mib_upload_to_s3_peaks_near_a_few_parts_not_the_file(
    settings: Settings, db_url: str, streaming_user: str, moto_process: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    bucket = make_bucket(moto_process)
    storage = S3Storage(
        StorageSettings.model_validate(s3_storage_settings(moto_process, bucket, part_size_bytes=5 * MiB))
    )
    size, peak = await peak_of_upload(storage, settings, db_url, streaming_user)
    assert size == SIZE
    assert peak < 20 * MiB, f"peak {peak / MiB:.1f} MiB"
