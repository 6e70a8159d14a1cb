"""LocalStorage on a temporary folder: atomic no-overwrite puts, byte caps, HMAC-signed expiring links."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qsl, urlparse

import pytest

from isa.core.storage import (
    InvalidLink,
    LocalStorage,
    ObjectExists,
    ObjectTooLarge,
    StorageError,
    StorageSettings,
    build_storage,
)

pytestmark = pytest.mark.anyio


async def stream(data: bytes, chunk: int = 1000) -> AsyncIterator[bytes]:
    for start in range(0, len(data), chunk):
        yield data[start : start + chunk]


def local(root: Path, **extra: object) -> LocalStorage:
    return LocalStorage(StorageSettings.model_validate({"backend": "local", **extra}), root)


def query_of(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlparse(url).query))


async def test_put_head_read_list_delete_round_trip(tmp_path: Path) -> None:
    storage = local(tmp_path)
    stored = await storage.put_stream(
        "users/a/files/x.txt", stream(b"hello" * 1000), content_type="text/plain", max_bytes=10**6
    )
    assert stored.size == 5000
    info = await storage.head("users/a/files/x.txt")
    assert info is not None and info.size == 5000 and info.content_type == "text/plain"
    assert b"".join([c async for c in storage.read("users/a/files/x.txt")]) == b"hello" * 1000
    await storage.put_stream("users/b/files/y.txt", stream(b"y"), content_type="text/plain", max_bytes=10)
    assert [o.key for o in await storage.list_objects("users/a/")] == ["users/a/files/x.txt"]
    assert [o.key for o in await storage.list_objects("users/")] == ["users/a/files/x.txt", "users/b/files/y.txt"]
    await storage.delete("users/a/files/x.txt")
    assert await storage.head("users/a/files/x.txt") is None
    assert not list((tmp_path / "tmp").iterdir())  # no temporary files left behind


async def test_an_existing_key_is_never_overwritten(tmp_path: Path) -> None:
    storage = local(tmp_path)
    await storage.put_stream("users/a/files/k.png", stream(b"first"), content_type="image/png", max_bytes=100)
    with pytest.raises(ObjectExists):
        await storage.put_stream("users/a/files/k.png", stream(b"second"), content_type="image/png", max_bytes=100)
    assert (tmp_path / "objects/users/a/files/k.png").read_bytes() == b"first"


async def test_a_stream_over_the_cap_leaves_no_object_and_no_temp_file(tmp_path: Path) -> None:
    storage = local(tmp_path)
    with pytest.raises(ObjectTooLarge):
        await storage.put_stream("users/a/files/big.bin", stream(b"x" * 5000), content_type="image/png", max_bytes=4999)
    assert await storage.head("users/a/files/big.bin") is None
    assert not list((tmp_path / "tmp").iterdir())


async def test_a_download_link_verifies_until_it_expires_and_not_after(tmp_path: Path) -> None:
    storage = local(tmp_path, presign_max_expires_seconds=120)
    await storage.put_stream("users/a/files/r.txt", stream(b"r"), content_type="text/plain", max_bytes=10)
    url = await storage.presign_download(
        "users/a/files/r.txt", filename="r.txt", content_type="text/plain", expires_in=10**6
    )
    assert url.startswith("/api/v1/storage/local/users/a/files/r.txt?")
    query = query_of(url)
    assert int(query["expires"]) <= time.time() + 120  # capped
    path, ctype, disposition = storage.check_download("users/a/files/r.txt", query)
    assert path.read_bytes() == b"r" and ctype == "text/plain" and disposition.startswith("attachment;")
    with pytest.raises(InvalidLink, match="expired"):
        storage.check_download("users/a/files/r.txt", query, now=time.time() + 121)


async def test_any_change_to_a_signed_link_breaks_it(tmp_path: Path) -> None:
    storage = local(tmp_path)
    url = await storage.presign_download("users/a/files/r.txt", filename="r.txt", content_type="text/plain")
    query = query_of(url)
    tampered = [
        ("users/b/files/r.txt", query),
        ("users/a/files/r.txt", {**query, "type": "text/html"}),
        ("users/a/files/r.txt", {**query, "disposition": "inline"}),
        ("users/a/files/r.txt", {**query, "expires": str(int(query["expires"]) + 3600)}),
        ("users/a/files/r.txt", {**query, "sig": "0" * 64}),
        ("users/a/files/r.txt", {k: v for k, v in query.items() if k != "sig"}),
    ]
    for key, q in tampered:
        with pytest.raises(InvalidLink):
            storage.check_download(key, q)
    upload = await storage.presign_upload("users/a/files/u.png", content_type="image/png", max_bytes=100)
    up = query_of(upload.url)
    assert storage.check_upload("users/a/files/u.png", up) == ("image/png", 100)
    for key, q in [("users/a/files/v.png", up), ("users/a/files/u.png", {**up, "max": "10000"})]:
        with pytest.raises(InvalidLink):
            storage.check_upload(key, q)
    with pytest.raises(InvalidLink):  # a download link is not an upload link
        storage.check_upload("users/a/files/r.txt", query)


async def test_links_survive_a_restart_and_another_folder_does_not_accept_them(tmp_path: Path) -> None:
    first = local(tmp_path / "a")
    url = await first.presign_download("users/a/files/r.txt", filename="r.txt", content_type="text/plain")
    local(tmp_path / "a").check_download("users/a/files/r.txt", query_of(url))  # same stored key
    with pytest.raises(InvalidLink):
        local(tmp_path / "b").check_download("users/a/files/r.txt", query_of(url))
    configured = local(tmp_path / "c", local_signing_key="k" * 32)
    url = await configured.presign_download("users/a/files/r.txt", filename="r.txt", content_type="text/plain")
    local(tmp_path / "d", local_signing_key="k" * 32).check_download("users/a/files/r.txt", query_of(url))
    assert (tmp_path / "a" / ".signing-key").stat().st_mode & 0o077 == 0


async def test_keys_that_could_escape_the_folder_are_refused(tmp_path: Path) -> None:
    storage = local(tmp_path / "store")
    (tmp_path / "secret").write_text("s")
    for key in ("../secret", "users/../../secret", "/etc/passwd", "users//x", "users/a/\x00", ".signing-key", ""):
        with pytest.raises(StorageError):
            await storage.put_stream(key, stream(b"x"), content_type="text/plain", max_bytes=10)
        with pytest.raises(StorageError):
            storage.path_for(key)


def test_the_embedded_default_is_a_folder_under_the_data_dir(tmp_path: Path) -> None:
    storage = build_storage(StorageSettings(), tmp_path)
    assert isinstance(storage, LocalStorage) and storage.root == (tmp_path / "files").resolve()
