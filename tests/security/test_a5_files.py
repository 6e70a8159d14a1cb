"""Quality checklist §A5 items 24, 25, 27 and 31-36 against the files API, on S3 (moto on loopback) and local.

Each attack has a control made honestly by the owner, so a test passes only because the attack was refused.
moto's S3 server does not enforce POST-policy conditions or signature expiry (real S3 does); for items 32-35 the
tests therefore check both the conditions we sign and that the app's own checks hold without S3's help.
"""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlparse

import anyio
import httpx
import psycopg
import pytest
from starlette.testclient import TestClient

from isa.core.storage import LocalStorage, Storage
from isa.files.service import FilesService
from tests.support.auth import create_key
from tests.support.files import (
    bearer,
    files_client,
    make_bucket,
    moto_endpoint,
    png,
    s3_client,
    s3_storage_settings,
)

__all__ = ["moto_endpoint"]
FILES = "/api/v1/users/{user}/files"


@pytest.fixture(scope="module")
def bucket(moto_endpoint: str) -> str:
    return make_bucket(moto_endpoint)


@pytest.fixture(scope="module")
def s3(settings: Any, db_url: str, moto_endpoint: str, bucket: str) -> Iterator[TestClient]:
    with files_client(
        settings, db_url, s3_storage_settings(moto_endpoint, bucket, presign_max_expires_seconds=900)
    ) as c:
        yield c


@pytest.fixture()
def users(settings: Any, db_url: str) -> dict[str, Any]:
    """Alice (the attacker) and Bob (the victim), fresh for each test, each with a write key."""
    a, b = f"alice-{uuid.uuid4().hex[:6]}", f"bob-{uuid.uuid4().hex[:6]}"
    return {
        "a": a,
        "b": b,
        "ka": create_key(db_url, settings, a, "write"),
        "kb": create_key(db_url, settings, b, "write"),
    }


def service_of(client: TestClient) -> FilesService:
    service: FilesService = client.app.state.isa.get("files", FilesService)  # type: ignore[attr-defined]
    return service


def upload(client: TestClient, user: str, key: str, name: str = "b.png", data: bytes | None = None) -> Any:
    data = png() if data is None else data
    response = client.post(FILES.format(user=user), files={"file": (name, data, "image/png")}, headers=bearer(key))
    assert response.status_code == 201, response.text
    return response.json()["data"]


def row_of(db_url: str, file_id: str) -> tuple[Any, ...]:
    with psycopg.connect(db_url) as conn:
        row = conn.execute("SELECT * FROM files WHERE id = %s", (file_id,)).fetchone()
    assert row is not None
    return tuple(row)


def status_of(db_url: str, file_id: str) -> str:
    with psycopg.connect(db_url) as conn:
        row = conn.execute("SELECT status FROM files WHERE id = %s", (file_id,)).fetchone()
    assert row is not None
    return str(row[0])


def conditions_of(fields: dict[str, str]) -> list[Any]:
    """The conditions of a signed S3 POST policy."""
    conditions: list[Any] = json.loads(base64.b64decode(fields["policy"]))["conditions"]
    return conditions


def presign(client: TestClient, user: str, key: str, **body: Any) -> Any:
    payload = {"filename": "x.png", "content_type": "image/png", "size_bytes": 1000, **body}
    response = client.post(FILES.format(user=user) + "/presign-upload", json=payload, headers=bearer(key))
    assert response.status_code == 201, response.text
    return response.json()["data"]


def test_a5_24_user_a_cannot_read_user_b_file_by_id(s3: TestClient, users: dict[str, Any]) -> None:
    bobs = upload(s3, users["b"], users["kb"])
    own, theirs = FILES.format(user=users["a"]), FILES.format(user=users["b"])
    assert s3.get(f"{theirs}/{bobs['file_id']}", headers=bearer(users["kb"])).status_code == 200  # control
    attempts = [
        s3.get(f"{theirs}/{bobs['file_id']}", headers=bearer(users["ka"])),
        s3.get(f"{own}/{bobs['file_id']}", headers=bearer(users["ka"])),  # B's id under A's own path
        s3.get(theirs, headers=bearer(users["ka"])),
        s3.get(f"{own}/info", params={"file_path": bobs["file_path"]}, headers=bearer(users["ka"])),
        s3.get(f"{theirs}/info", params={"file_path": bobs["file_path"]}, headers=bearer(users["ka"])),
    ]
    assert [r.status_code for r in attempts] == [404] * 5
    assert all(bobs["file_id"] not in r.text and users["b"] not in r.text for r in attempts)
    assert s3.get(own, headers=bearer(users["ka"])).json()["data"] == []


def test_a5_25_user_a_cannot_get_a_presigned_download_of_b_file_and_no_url_is_minted(
    s3: TestClient, users: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    bobs = upload(s3, users["b"], users["kb"])
    storage: Storage = service_of(s3).storage
    minted: list[str] = []
    original = storage.presign_download

    async def counting(key: str, **kwargs: Any) -> str:
        minted.append(key)
        return await original(key, **kwargs)

    monkeypatch.setattr(storage, "presign_download", counting)
    own, theirs = FILES.format(user=users["a"]), FILES.format(user=users["b"])
    attempts = [
        s3.get(f"{theirs}/{bobs['file_id']}/download", headers=bearer(users["ka"]), follow_redirects=False),
        s3.get(f"{own}/{bobs['file_id']}/download", headers=bearer(users["ka"]), follow_redirects=False),
        s3.get(
            f"{own}/download",
            params={"file_path": bobs["file_path"]},
            headers=bearer(users["ka"]),
            follow_redirects=False,
        ),
    ]
    assert [r.status_code for r in attempts] == [404, 404, 404]
    assert all("location" not in r.headers and "X-Amz" not in r.text for r in attempts)
    assert minted == []
    control = s3.get(f"{theirs}/{bobs['file_id']}/download", headers=bearer(users["kb"]), follow_redirects=False)
    assert control.status_code == 302 and minted == [bobs["file_path"]]


def test_a5_27_user_a_cannot_delete_or_complete_user_b_file_and_the_row_is_unchanged(
    s3: TestClient, users: dict[str, Any], db_url: str, moto_endpoint: str, bucket: str
) -> None:
    bobs = upload(s3, users["b"], users["kb"])
    pending = presign(s3, users["b"], users["kb"])["file"]
    before = {f["file_id"]: row_of(db_url, f["file_id"]) for f in (bobs, pending)}
    own, theirs = FILES.format(user=users["a"]), FILES.format(user=users["b"])
    attempts = [
        s3.delete(f"{theirs}/{bobs['file_id']}", headers=bearer(users["ka"])),
        s3.delete(f"{own}/{bobs['file_id']}", headers=bearer(users["ka"])),
        s3.delete(theirs, params={"file_path": bobs["file_path"]}, headers=bearer(users["ka"])),
        s3.delete(own, params={"file_path": bobs["file_path"]}, headers=bearer(users["ka"])),
        s3.post(f"{theirs}/{pending['file_id']}/complete", headers=bearer(users["ka"])),
        s3.post(f"{own}/{pending['file_id']}/complete", headers=bearer(users["ka"])),
        s3.post(theirs, files={"file": ("x.png", png(), "image/png")}, headers=bearer(users["ka"])),
        s3.post(
            f"{theirs}/presign-upload", json={"content_type": "image/png", "size_bytes": 9}, headers=bearer(users["ka"])
        ),
    ]
    assert [r.status_code for r in attempts] == [404] * 8
    assert {fid: row_of(db_url, fid) for fid in before} == before
    assert s3_client(moto_endpoint).head_object(Bucket=bucket, Key=bobs["file_path"])["ContentLength"] == len(png())
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM files WHERE user_id = %s", (users["b"],)).fetchone() == (2,)
    assert s3.delete(f"{theirs}/{bobs['file_id']}", headers=bearer(users["kb"])).status_code == 200  # control


HOSTILE_NAMES = [
    "../../etc/passwd",
    "a/../../b",
    "x%00.png",
    "x\x00.png",
    ".htaccess",
    "n" * 10_000 + ".png",
    "invoice\u202egnp.exe",
    '"; filename=evil.html\r\nX-Injected: 1',
]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_a5_31_hostile_filenames_never_reach_the_storage_key(s3: TestClient, users: dict[str, Any], name: str) -> None:
    file = upload(s3, users["a"], users["ka"], name=name)
    seg = re.escape(users["a"])
    assert re.fullmatch(rf"users/{seg}/files/\d{{4}}/\d{{2}}/\d{{8}}_\d{{6}}_[0-9a-f]{{8}}\.png", file["file_path"])
    stored = file["filename"]
    assert len(stored) <= 255 and "/" not in stored and "\x00" not in stored and "\u202e" not in stored
    assert not stored.startswith(".") and "\r" not in stored and "\n" not in stored
    if "\x00" in name:  # JSON text with a NUL is refused where the body is parsed (issue 16, F3)
        body = {"filename": name, "content_type": "image/png", "size_bytes": 1000}
        refused = s3.post(FILES.format(user=users["a"]) + "/presign-upload", json=body, headers=bearer(users["ka"]))
        assert (refused.status_code, refused.json()["error"]["code"]) == (422, "invalid_request")
    else:
        presigned = presign(s3, users["a"], users["ka"], filename=name)["file"]["file_path"]
        assert re.fullmatch(rf"users/{seg}/files/\d{{4}}/\d{{2}}/\d{{8}}_\d{{6}}_[0-9a-f]{{8}}\.png", presigned)
    redirect = s3.get(file["download_url"], headers=bearer(users["ka"]), follow_redirects=False)
    got = httpx.get(redirect.headers["location"], timeout=10)
    disposition = got.headers["content-disposition"]
    assert disposition.startswith("attachment;") and "\r" not in disposition and "\n" not in disposition
    assert disposition.count('"') == 2 and "X-Injected" not in got.headers


UNICODE_NAMES = ["résumé €.png", "請求書 2024年.png"]


def _rfc6266_names(disposition: str) -> tuple[str, str]:
    """The ASCII `filename` fallback and the decoded `filename*` of an attachment header (RFC 6266 / 5987)."""
    match = re.fullmatch(r"attachment; filename=\"([^\"]*)\"; filename\*=UTF-8''([A-Za-z0-9%._~-]+)", disposition)
    assert match, disposition
    fallback, encoded = match.groups()
    assert fallback.isascii() and fallback.isprintable() and fallback.strip("_. ")
    return fallback, unquote(encoded, errors="strict")


def test_a3_6_a_non_ascii_filename_downloads_with_an_ascii_fallback_and_the_exact_utf8_name(
    s3: TestClient, users: dict[str, Any], settings: Any, db_url: str, tmp_path: Path
) -> None:
    with files_client(settings, db_url, {"backend": "local", "local_dir": str(tmp_path)}) as local:
        for name in UNICODE_NAMES:
            on_s3 = upload(s3, users["a"], users["ka"], name=name)
            assert on_s3["filename"] == name  # nothing here needs cleaning, so the user's name is kept as is
            redirect = s3.get(on_s3["download_url"], headers=bearer(users["ka"]), follow_redirects=False)
            from_s3 = httpx.get(redirect.headers["location"], timeout=10)
            assert from_s3.status_code == 200
            fallback, exact = _rfc6266_names(from_s3.headers["content-disposition"])
            assert exact == name and fallback.endswith(".png")
            on_disk = upload(local, users["a"], users["ka"], name=name)
            served = local.get(on_disk["download_url"], headers=bearer(users["ka"]))
            assert served.status_code == 200
            assert _rfc6266_names(served.headers["content-disposition"]) == (fallback, name)


def test_a5_32_body_larger_than_the_content_length_range_is_refused_and_the_row_stays_pending(
    s3: TestClient, users: dict[str, Any], db_url: str, moto_endpoint: str, bucket: str
) -> None:
    asked = presign(s3, users["a"], users["ka"], size_bytes=1000)
    form = asked["upload"]
    assert ["content-length-range", 1, 1000] in conditions_of(form["fields"])  # what S3 enforces on its side
    sent = httpx.post(form["url"], data=form["fields"], files={"file": ("x.png", png(5000), "image/png")}, timeout=10)
    assert sent.status_code == 204  # moto stores it anyway; real S3 answers 400 EntityTooLarge
    done = s3.post(asked["complete_url"], headers=bearer(users["ka"]))
    assert done.status_code == 413
    assert status_of(db_url, asked["file"]["file_id"]) == "pending"
    listed = s3_client(moto_endpoint).list_objects_v2(Bucket=bucket, Prefix=asked["file"]["file_path"])
    assert listed.get("Contents", []) == []  # the oversized bytes were removed
    assert s3.get(asked["file"]["download_url"], headers=bearer(users["ka"])).status_code == 409


def test_a5_33_declared_png_with_html_content_is_rejected_and_downloads_are_attachments_with_nosniff(
    s3: TestClient, users: dict[str, Any], db_url: str, settings: Any, tmp_path: Path
) -> None:
    base = FILES.format(user=users["a"])
    for body in (b"<html><script>alert(1)</script></html>", png(200) + b"<script>alert(1)</script>"):
        refused = s3.post(base, files={"file": ("x.png", body, "image/png")}, headers=bearer(users["ka"]))
        assert refused.status_code == 415, refused.text
    asked = presign(s3, users["a"], users["ka"])
    assert {"Content-Type": "image/png"} in conditions_of(asked["upload"]["fields"])  # eq $Content-Type
    html = b"<html><script>alert(document.cookie)</script></html>"
    httpx.post(
        asked["upload"]["url"], data=asked["upload"]["fields"], files={"file": ("x.png", html, "image/png")}, timeout=10
    )
    assert s3.post(asked["complete_url"], headers=bearer(users["ka"])).status_code == 415
    assert status_of(db_url, asked["file"]["file_id"]) == "pending"
    good = upload(s3, users["a"], users["ka"])
    redirect = s3.get(good["download_url"], headers=bearer(users["ka"]), follow_redirects=False)
    assert redirect.headers["x-content-type-options"] == "nosniff"
    s3_answer = httpx.get(redirect.headers["location"], timeout=10)
    assert s3_answer.headers["content-disposition"].startswith("attachment;")
    assert s3_answer.headers["content-type"] == "image/png"
    with files_client(settings, db_url, {"backend": "local", "local_dir": str(tmp_path)}) as local:
        file = upload(local, users["a"], users["ka"])
        served = local.get(file["download_url"], headers=bearer(users["ka"]))  # follows to the local link
        assert served.status_code == 200 and served.headers["x-content-type-options"] == "nosniff"
        assert served.headers["content-disposition"].startswith("attachment;")


def test_a5_34_expired_link_is_refused_and_requested_expiry_is_capped(
    s3: TestClient, users: dict[str, Any], settings: Any, db_url: str, tmp_path: Path
) -> None:
    file = upload(s3, users["a"], users["ka"])
    asked = s3.get(
        file["download_url"], params={"expires_in": 604_800}, headers=bearer(users["ka"]), follow_redirects=False
    )
    assert parse_qs(urlparse(asked.headers["location"]).query)["X-Amz-Expires"] == ["900"]  # the configured cap
    default = s3.get(file["download_url"], headers=bearer(users["ka"]), follow_redirects=False)
    assert parse_qs(urlparse(default.headers["location"]).query)["X-Amz-Expires"] == ["900"]
    with files_client(settings, db_url, {"backend": "local", "local_dir": str(tmp_path)}) as local:
        file = upload(local, users["a"], users["ka"])
        link = local.get(file["download_url"], headers=bearer(users["ka"]), follow_redirects=False).headers["location"]
        assert local.get(link).status_code == 200  # control
        storage: LocalStorage = local.app.state.isa.get("storage", LocalStorage)  # type: ignore[attr-defined]
        query = dict(parse_qs(urlparse(link).query, keep_blank_values=True))
        flat = {k: v[0] for k, v in query.items()}
        past = str(int(time.time()) - 1)
        key = urlparse(link).path.removeprefix("/api/v1/storage/local/")
        expired = {**flat, "expires": past, "sig": storage.sign("GET", key, past, flat["type"], flat["disposition"])}
        refused = local.get(urlparse(link).path + "?" + urlencode(expired))
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "access_denied"


def test_a5_35_upload_links_cannot_write_another_key_or_overwrite(
    s3: TestClient, users: dict[str, Any], db_url: str, settings: Any, moto_endpoint: str, bucket: str, tmp_path: Path
) -> None:
    smuggled = s3.post(
        FILES.format(user=users["a"]) + "/presign-upload",
        json={"content_type": "image/png", "size_bytes": 10, "key": f"users/{users['b']}/files/x.png"},
        headers=bearer(users["ka"]),
    )
    assert smuggled.status_code == 422  # the client never picks a key
    asked = presign(s3, users["a"], users["ka"])
    assert {"key": asked["file"]["file_path"]} in conditions_of(asked["upload"]["fields"])  # exact key
    original = png(900)
    httpx.post(
        asked["upload"]["url"],
        data=asked["upload"]["fields"],
        files={"file": ("x.png", original, "image/png")},
        timeout=10,
    )
    assert s3.post(asked["complete_url"], headers=bearer(users["ka"])).status_code == 200
    # Reusing the still-valid POST form overwrites the key on S3, but downloads serve the checked version only.
    httpx.post(
        asked["upload"]["url"],
        data=asked["upload"]["fields"],
        files={"file": ("x.png", png(950), "image/png")},
        timeout=10,
    )
    redirect = s3.get(asked["file"]["download_url"], headers=bearer(users["ka"]), follow_redirects=False)
    assert httpx.get(redirect.headers["location"], timeout=10).content == original
    # Streamed puts are conditional: an existing key answers 412 and nothing changes.
    storage: Storage = service_of(s3).storage
    head = s3_client(moto_endpoint).head_object(Bucket=bucket, Key=asked["file"]["file_path"])
    link = anyio.run(
        lambda: storage.presign_upload(asked["file"]["file_path"], content_type="image/png", max_bytes=10, method="PUT")
    )
    assert httpx.put(link.url, content=b"<html>", headers=link.headers, timeout=10).status_code == 412
    assert s3_client(moto_endpoint).head_object(Bucket=bucket, Key=asked["file"]["file_path"])["ETag"] == head["ETag"]
    with files_client(settings, db_url, {"backend": "local", "local_dir": str(tmp_path)}) as local:
        direct = presign(local, users["a"], users["ka"])
        url = direct["upload"]["url"]
        assert local.put(url, content=png(1000), headers=direct["upload"]["headers"]).status_code == 200
        assert local.put(url, content=png(999), headers=direct["upload"]["headers"]).status_code == 412
        other = url.replace(users["a"], users["b"], 1)
        assert local.put(other, content=png(10), headers=direct["upload"]["headers"]).status_code == 403
        retyped = local.put(url, content=b"<html>", headers={"Content-Type": "text/html"})
        assert retyped.status_code == 403


def test_a5_36_upload_past_the_quota_is_refused_with_a_4xx(
    settings: Any, db_url: str, users: dict[str, Any], moto_endpoint: str, bucket: str
) -> None:
    storage = s3_storage_settings(moto_endpoint, bucket)
    with files_client(settings, db_url, storage, {"quota_bytes": 10_000, "quota_files": 3}) as client:
        upload(client, users["a"], users["ka"], data=png(6000))
        over = client.post(
            FILES.format(user=users["a"]),
            files={"file": ("y.png", png(6000), "image/png")},
            headers=bearer(users["ka"]),
        )
        assert over.status_code == 403 and over.json()["error"]["code"] == "quota_exceeded"
        too_big = client.post(
            FILES.format(user=users["a"]) + "/presign-upload",
            json={"content_type": "image/png", "size_bytes": 5000},
            headers=bearer(users["ka"]),
        )
        assert too_big.status_code == 403
        upload(client, users["a"], users["ka"], data=png(1000))
        upload(client, users["a"], users["ka"], data=png(1000))
        count = client.post(
            FILES.format(user=users["a"]), files={"file": ("z.png", png(100), "image/png")}, headers=bearer(users["ka"])
        )
        assert count.status_code == 403  # file-count quota
        assert upload(client, users["b"], users["kb"], data=png(6000))["status"] == "ready"  # B is unaffected
    with psycopg.connect(db_url) as conn:
        used = conn.execute(
            "SELECT sum(size_bytes) FROM files WHERE user_id = %s AND status = 'ready'", (users["a"],)
        ).fetchone()
    assert used == (8000,)
