"""GET /files/{id}/content: a file's bytes from this origin (what the chat page shows images from), owner-checked."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import psycopg
from starlette.testclient import TestClient

from isa.core.settings import Settings
from tests.support.auth import create_key
from tests.support.files import PDF, bearer, png

FILES = "/api/v1/users/{user}/files"


def user(db_url: str, settings: Settings, name: str) -> tuple[str, str]:
    who = f"{name}-{uuid.uuid4().hex[:8]}"
    return who, create_key(db_url, settings, who, "write")


def upload(client: TestClient, who: str, key: str, name: str, data: bytes, ctype: str) -> dict[str, Any]:
    created = client.post(FILES.format(user=who), files={"file": (name, data, ctype)}, headers=bearer(key))
    assert created.status_code == 201, created.text
    data_out: dict[str, Any] = created.json()["data"]
    return data_out


def content(client: TestClient, key: str, file_id: str, owner: str = "me") -> httpx.Response:
    return client.get(f"{FILES.format(user=owner)}/{file_id}/content", headers=bearer(key))


def test_the_owner_gets_an_image_inline_from_this_origin_unsniffed_and_uncached(
    client: TestClient, settings: Settings, db_url: str
) -> None:
    who, key = user(db_url, settings, "img")
    data = png(70_000)  # more than one storage chunk
    file = upload(client, who, key, "chart é.png", data, "image/png")
    got = content(client, key, file["file_id"])
    assert got.status_code == 200 and got.content == data
    assert got.headers["content-type"] == "image/png"
    assert got.headers["content-length"] == str(len(data))
    assert got.headers["content-disposition"].startswith("inline;")
    assert "filename*=UTF-8''chart%20%C3%A9.png" in got.headers["content-disposition"]
    assert got.headers["x-content-type-options"] == "nosniff"
    assert got.headers["cache-control"] == "private, no-store"
    assert got.headers["content-security-policy"] == "default-src 'none'; sandbox"
    by_name = content(client, key, file["file_id"], owner=who)  # the path may name the owner instead of `me`
    assert by_name.status_code == 200 and by_name.content == data


def test_another_users_file_is_not_found_and_leaks_nothing(client: TestClient, settings: Settings, db_url: str) -> None:
    owner, owner_key = user(db_url, settings, "owner")
    _, other_key = user(db_url, settings, "other")
    file = upload(client, owner, owner_key, "private.png", png(3000), "image/png")
    for path_owner in ("me", owner):
        got = content(client, other_key, file["file_id"], owner=path_owner)
        assert got.status_code == 404, got.text
        assert got.json()["error"]["code"] == "not_found" and "private" not in got.text
    assert content(client, other_key, str(uuid.uuid4())).status_code == 404
    assert content(client, owner_key, file["file_id"]).status_code == 200


def test_documents_and_text_are_attachments_never_inline(client: TestClient, settings: Settings, db_url: str) -> None:
    who, key = user(db_url, settings, "docs")
    pdf = upload(client, who, key, "report.pdf", PDF, "application/pdf")
    got = content(client, key, pdf["file_id"])
    assert got.status_code == 200 and got.content == PDF
    assert got.headers["content-type"] == "application/pdf"
    assert got.headers["content-disposition"].startswith("attachment;")
    text = upload(client, who, key, "notes.txt", b"plain words\n", "text/plain")
    got = content(client, key, text["file_id"])
    assert got.headers["content-type"] == "text/plain; charset=utf-8"
    assert got.headers["content-disposition"].startswith("attachment;")
    assert got.headers["x-content-type-options"] == "nosniff"


def test_svg_is_refused_on_upload_and_a_row_recorded_as_svg_is_never_served_inline(
    client: TestClient, settings: Settings, db_url: str
) -> None:
    who, key = user(db_url, settings, "svg")
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    refused = client.post(FILES.format(user=who), files={"file": ("x.svg", svg, "image/svg+xml")}, headers=bearer(key))
    assert refused.status_code == 415
    # A row that says SVG anyway (imported from elsewhere, or a future allowed type) still downloads, never renders.
    file = upload(client, who, key, "drawing.png", png(2000), "image/png")
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("UPDATE files SET content_type = 'image/svg+xml' WHERE id = %s::uuid", (file["file_id"],))
    got = content(client, key, file["file_id"])
    assert got.status_code == 200 and got.headers["content-type"] == "image/svg+xml"
    assert got.headers["content-disposition"].startswith("attachment;")
    assert got.headers["content-security-policy"] == "default-src 'none'; sandbox"


def test_a_pending_upload_has_no_content_yet(client: TestClient, settings: Settings, db_url: str) -> None:
    who, key = user(db_url, settings, "pending")
    started = client.post(
        FILES.format(user=who) + "/presign-upload",
        json={"filename": "later.png", "content_type": "image/png", "size_bytes": 100},
        headers=bearer(key),
    )
    assert started.status_code == 201, started.text
    got = content(client, key, started.json()["data"]["file"]["file_id"])
    assert got.status_code == 409 and got.json()["error"]["code"] == "file_not_ready"


def test_reading_needs_a_credential(client: TestClient, settings: Settings, db_url: str) -> None:
    who, key = user(db_url, settings, "anon")
    file = upload(client, who, key, "a.png", png(2000), "image/png")
    assert client.get(f"{FILES.format(user=who)}/{file['file_id']}/content").status_code == 401
