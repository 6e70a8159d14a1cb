"""The files HTTP API on both backends: upload, list, info, download by redirect, delete, presigned upload."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Any

import httpx
import psycopg
from starlette.testclient import TestClient

from isa.core.settings import Settings
from isa.files.service import FilesService
from tests.support.auth import create_key
from tests.support.files import PDF, bearer, files_client, png, s3_client

FILES = "/api/v1/users/{user}/files"


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def fetch(client: TestClient, url: str) -> httpx.Response:
    """Follow a download link: the app's own local link in-process, an S3 link over real HTTP."""
    if url.startswith("/"):
        return client.get(url, follow_redirects=False)
    return httpx.get(url, timeout=10)


def upload(client: TestClient, user: str, key: str, name: str, data: bytes, ctype: str) -> httpx.Response:
    return client.post(FILES.format(user=user), files={"file": (name, data, ctype)}, headers=bearer(key))


def test_upload_list_info_download_delete_round_trip(client: TestClient, settings: Settings, db_url: str) -> None:
    rt = unique("rt")
    key = create_key(db_url, settings, rt, "write")
    data = png(5000)
    created = upload(client, rt, key, "holiday photo.png", data, "image/png")
    assert created.status_code == 201, created.text
    file = created.json()["data"]
    assert file["status"] == "ready" and file["size_bytes"] == 5000 and file["content_type"] == "image/png"
    assert file["sha256"] == hashlib.sha256(data).hexdigest() and file["filename"] == "holiday photo.png"
    assert file["file_path"].startswith(f"users/{rt}/files/") and file["file_path"].endswith(".png")

    listing = client.get(FILES.format(user=rt), headers=bearer(key)).json()
    assert [f["file_id"] for f in listing["data"]] == [file["file_id"]] and listing["total"] == 1
    info = client.get(f"{FILES.format(user=rt)}/{file['file_id']}", headers=bearer(key))
    assert info.json()["data"]["file_path"] == file["file_path"]

    redirect = client.get(file["download_url"], headers=bearer(key), follow_redirects=False)
    assert redirect.status_code == 302 and redirect.headers["x-content-type-options"] == "nosniff"
    assert redirect.headers["cache-control"] == "no-store"
    got = fetch(client, redirect.headers["location"])
    assert got.status_code == 200 and got.content == data
    assert (
        got.headers["content-disposition"].startswith("attachment;") and "holiday" in got.headers["content-disposition"]
    )
    assert got.headers["content-type"] == "image/png"

    gone = client.delete(f"{FILES.format(user=rt)}/{file['file_id']}", headers=bearer(key))
    assert gone.status_code == 200 and gone.json()["data"]["deleted"] is True
    assert client.get(file["download_url"], headers=bearer(key)).status_code == 404
    assert client.get(FILES.format(user=rt), headers=bearer(key)).json()["data"] == []
    service: FilesService = client.app.state.isa.get("files", FilesService)  # type: ignore[attr-defined]
    assert client.portal is not None
    assert client.portal.call(service.storage.head, file["file_path"]) is None  # the object is gone too


def test_the_original_query_string_routes_still_work(client: TestClient, settings: Settings, db_url: str) -> None:
    compat = unique("compat")
    key = create_key(db_url, settings, compat, "write")
    path = client.post(
        FILES.format(user=compat) + "/upload", files={"file": ("a.pdf", PDF, "application/pdf")}, headers=bearer(key)
    ).json()["data"]["file_path"]
    base = FILES.format(user=compat)
    assert (
        client.get(f"{base}/info", params={"file_path": path}, headers=bearer(key)).json()["data"]["file_path"] == path
    )
    redirect = client.get(f"{base}/download", params={"file_path": path}, headers=bearer(key), follow_redirects=False)
    assert redirect.status_code == 302 and fetch(client, redirect.headers["location"]).content == PDF
    assert client.delete(base, params={"file_path": path}, headers=bearer(key)).status_code == 200
    assert client.get(f"{base}/info", params={"file_path": path}, headers=bearer(key)).status_code == 404


def test_a_presigned_upload_is_pending_until_completed_then_ready(
    client: TestClient, settings: Settings, db_url: str
) -> None:
    direct = unique("direct")
    key = create_key(db_url, settings, direct, "write")
    data = png(20_000)
    asked = client.post(
        FILES.format(user=direct) + "/presign-upload",
        json={"filename": "big.png", "content_type": "image/png", "size_bytes": len(data)},
        headers=bearer(key),
    )
    assert asked.status_code == 201, asked.text
    body = asked.json()["data"]
    assert body["file"]["status"] == "pending" and body["max_bytes"] == len(data)
    form = body["upload"]
    if form["method"] == "POST":
        sent = httpx.post(form["url"], data=form["fields"], files={"file": ("big.png", data, "image/png")}, timeout=10)
    else:
        sent = client.put(form["url"], content=data, headers=form["headers"])
    assert sent.status_code in (200, 204), sent.text
    done = client.post(body["complete_url"], headers=bearer(key))
    assert done.status_code == 200, done.text
    assert (
        done.json()["data"]["status"] == "ready" and done.json()["data"]["sha256"] == hashlib.sha256(data).hexdigest()
    )
    again = client.post(body["complete_url"], headers=bearer(key))  # idempotent
    assert again.status_code == 200 and again.json()["data"]["file_id"] == body["file"]["file_id"]
    redirect = client.get(body["file"]["download_url"], headers=bearer(key), follow_redirects=False)
    assert fetch(client, redirect.headers["location"]).content == data


def test_an_upload_over_the_size_limit_is_413_and_leaves_nothing(
    settings: Settings, db_url: str, backend: dict[str, Any]
) -> None:
    big = unique("big")
    key = create_key(db_url, settings, big, "write")
    with files_client(settings, db_url, backend, {"max_upload_bytes": 100_000}) as client:
        response = upload(client, big, key, "big.png", png(100_001), "image/png")
        assert response.status_code == 413 and response.json()["error"]["code"] == "file_too_large"
        assert upload(client, big, key, "ok.png", png(100_000), "image/png").status_code == 201
        declared = client.post(
            FILES.format(user=big) + "/presign-upload",
            json={"filename": "x.png", "content_type": "image/png", "size_bytes": 100_001},
            headers=bearer(key),
        )
        assert declared.status_code == 413
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT status, status_reason FROM files WHERE user_id = %s ORDER BY created_at", (big,)
        ).fetchall()
    assert rows == [("deleted", "rejected"), ("ready", None)]
    prefix = f"users/{big}/"
    if backend["backend"] == "s3":
        s3 = s3_client(backend["endpoint_url"])
        assert len(s3.list_objects_v2(Bucket=backend["bucket"], Prefix=prefix).get("Contents", [])) == 1
    else:
        assert len([p for p in Path(backend["local_dir"], "objects", prefix).rglob("*") if p.is_file()]) == 1


def test_scopes_and_bad_input_get_4xx_never_500(client: TestClient, settings: Settings, db_url: str) -> None:
    reader_id, writer_id = unique("reader"), unique("writer")
    reader = create_key(db_url, settings, reader_id, "read")
    base = FILES.format(user=reader_id)
    assert upload(client, reader_id, reader, "a.png", png(), "image/png").status_code == 403
    assert client.get(base, headers=bearer(reader)).status_code == 200
    assert client.get(base).status_code == 401
    writer = create_key(db_url, settings, writer_id, "write")
    wbase = FILES.format(user=writer_id)
    checks = [
        client.post(wbase, content=b"{}", headers={**bearer(writer), "content-type": "application/json"}),
        client.post(wbase, files={"other": ("a.png", png(), "image/png")}, headers=bearer(writer)),
        upload(client, writer_id, writer, "empty.png", b"", "image/png"),
        client.post(wbase + "/presign-upload", json={"content_type": "image/png"}, headers=bearer(writer)),
        client.post(wbase + "/presign-upload", content=b"{nope", headers=bearer(writer)),
        client.post(
            wbase + "/presign-upload",
            json={"content_type": "text/html", "size_bytes": 10, "filename": "x.html"},
            headers=bearer(writer),
        ),
        client.get(wbase, params={"limit": "0"}, headers=bearer(writer)),
        client.get(wbase, params={"status": "deleted"}, headers=bearer(writer)),
        client.get(f"{wbase}/info", params={"file_path": "users/x\x00"}, headers=bearer(writer)),
        client.get(f"{wbase}/00000000-0000-0000-0000-000000000000", headers=bearer(writer)),
        client.get(f"{wbase}/not-a-uuid", headers=bearer(writer)),
    ]
    # A NUL in a query string is an input error where the query is parsed (issue 16, F3): 422, not a 404 lookup.
    assert [r.status_code for r in checks] == [415, 422, 422, 422, 422, 415, 422, 422, 422, 404, 404]
    assert all("error" in r.json() for r in checks)
    assert "user_id" not in str(checks[3].json()["error"].get("details", ""))  # no input echo needed


def test_an_admin_may_act_on_another_users_files_and_nobody_on_a_missing_user(
    client: TestClient, settings: Settings, db_url: str
) -> None:
    owner, admin = unique("owned"), unique("admin")
    owner_key = create_key(db_url, settings, owner, "write")
    admin_key = create_key(db_url, settings, admin, "admin")
    created = upload(client, owner, admin_key, "for-you.pdf", PDF, "application/pdf")
    assert created.status_code == 201 and created.json()["data"]["user_id"] == owner
    listed = client.get(FILES.format(user=owner), headers=bearer(owner_key)).json()["data"]
    assert [f["file_id"] for f in listed] == [created.json()["data"]["file_id"]]
    assert client.get(FILES.format(user=owner), headers=bearer(admin_key)).status_code == 200
    assert upload(client, unique("nobody"), admin_key, "x.pdf", PDF, "application/pdf").status_code == 404
    assert client.get(FILES.format(user=admin), headers=bearer(owner_key)).status_code == 404


def test_the_raised_body_limit_covers_the_files_routes_only(
    client: TestClient, settings: Settings, db_url: str
) -> None:
    user = unique("limits")
    key = create_key(db_url, settings, user, "write")
    big = png(3 * 1024 * 1024)  # over the 1 MiB default body limit, under the files limit
    assert upload(client, user, key, "big.png", big, "image/png").status_code == 201
    elsewhere = client.post(
        "/api/v1/users/ensure",
        content=b"x" * (2 * 1024 * 1024),
        headers={**bearer(key), "content-type": "application/json"},
    )
    assert elsewhere.status_code == 413
    presign = client.post(
        FILES.format(user=user) + "/presign-upload",
        content=b" " * (100 * 1024),
        headers={**bearer(key), "content-type": "application/json"},
    )
    assert presign.status_code == 413  # the JSON route under the files prefix keeps its own small cap
