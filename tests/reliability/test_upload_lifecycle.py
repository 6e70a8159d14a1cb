"""Quality checklist §B2 item 19, upload lifecycle: a presigned upload never made stays pending until the sweeper
expires it; an object with no row is reported and collected; a file turns ready only after a HEAD check."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from starlette.testclient import TestClient

from isa.files.service import FilesService
from tests.support.auth import create_key
from tests.support.files import (
    AWS_ENV,
    REGION,
    bearer,
    files_client,
    make_bucket,
    moto_endpoint,
    png,
    s3_client,
    s3_storage_settings,
)
from tests.support.procs import wait_for

__all__ = ["moto_endpoint"]


@pytest.fixture(scope="module")
def bucket(moto_endpoint: str) -> str:
    return make_bucket(moto_endpoint)


@pytest.fixture(scope="module")
def client(settings: Any, db_url: str, moto_endpoint: str, bucket: str) -> Iterator[TestClient]:
    with files_client(settings, db_url, s3_storage_settings(moto_endpoint, bucket)) as c:
        yield c


@pytest.fixture()
def owner(settings: Any, db_url: str) -> tuple[str, str]:
    user = f"life-{uuid.uuid4().hex[:8]}"
    return user, create_key(db_url, settings, user, "write")


def files_of(user: str) -> str:
    return f"/api/v1/users/{user}/files"


def row(db_url: str, file_id: str) -> tuple[str, str | None]:
    with psycopg.connect(db_url) as conn:
        found = conn.execute("SELECT status, status_reason FROM files WHERE id = %s", (file_id,)).fetchone()
    assert found is not None
    return found[0], found[1]


def age(db_url: str, file_id: str, minutes: int) -> None:
    """Make a row look `minutes` old (the clock is the database's, so move the row, not time)."""
    with psycopg.connect(db_url) as conn:
        conn.execute(
            "UPDATE files SET created_at = now() - make_interval(mins => %s) WHERE id = %s", (minutes, file_id)
        )


def presign(client: TestClient, user: str, key: str, size: int = 1000) -> Any:
    response = client.post(
        files_of(user) + "/presign-upload",
        json={"filename": "later.png", "content_type": "image/png", "size_bytes": size},
        headers=bearer(key),
    )
    assert response.status_code == 201, response.text
    return response.json()["data"]


def sweep(client: TestClient, **kwargs: Any) -> list[str]:
    service: FilesService = client.app.state.isa.get("files", FilesService)  # type: ignore[attr-defined]
    assert client.portal is not None
    return [r.id for r in client.portal.call(lambda: service.sweep_pending(**kwargs))]


def test_b2_19_a_presigned_upload_never_made_stays_pending_until_the_sweeper_expires_it(
    client: TestClient, owner: tuple[str, str], db_url: str
) -> None:
    user, key = owner
    abandoned = presign(client, user, key)["file"]
    fresh = presign(client, user, key)["file"]
    assert row(db_url, abandoned["file_id"]) == ("pending", None)
    assert abandoned["file_id"] not in sweep(client)  # younger than the TTL: left alone
    age(db_url, abandoned["file_id"], 61)
    assert abandoned["file_id"] in sweep(client)
    assert row(db_url, abandoned["file_id"]) == ("deleted", "expired")
    assert row(db_url, fresh["file_id"]) == ("pending", None)
    complete = client.post(f"{files_of(user)}/{abandoned['file_id']}/complete", headers=bearer(key))
    assert complete.status_code == 404
    listed = client.get(files_of(user), params={"status": "pending"}, headers=bearer(key)).json()["data"]
    assert [f["file_id"] for f in listed] == [fresh["file_id"]]


def test_b2_19_the_background_sweeper_expires_pending_rows_without_being_called(
    client: TestClient, settings: Any, db_url: str, owner: tuple[str, str], moto_endpoint: str, bucket: str
) -> None:
    user, key = owner
    cfg = {"pending_ttl_minutes": 0.001, "sweep_interval_seconds": 0.1}
    abandoned = presign(client, user, key)["file"]  # a node without the background sweep
    with files_client(settings, db_url, s3_storage_settings(moto_endpoint, bucket), cfg):
        wait_for(lambda: row(db_url, abandoned["file_id"])[0] == "deleted", timeout=15)
    assert row(db_url, abandoned["file_id"]) == ("deleted", "expired")


def test_b2_19_a_file_turns_ready_only_after_a_head_check_of_size_and_type(
    client: TestClient, owner: tuple[str, str], db_url: str
) -> None:
    user, key = owner
    asked = presign(client, user, key, size=2000)
    file_id, form = asked["file"]["file_id"], asked["upload"]
    early = client.post(asked["complete_url"], headers=bearer(key))
    assert early.status_code == 409 and row(db_url, file_id)[0] == "pending"  # nothing uploaded yet
    wrong_type = {**form["fields"], "Content-Type": "text/plain"}
    httpx.post(form["url"], data=wrong_type, files={"file": ("x.png", png(1500), "text/plain")}, timeout=10)
    assert client.post(asked["complete_url"], headers=bearer(key)).status_code == 415
    assert row(db_url, file_id)[0] == "pending"
    httpx.post(form["url"], data=form["fields"], files={"file": ("x.png", png(1500), "image/png")}, timeout=10)
    ready = client.post(asked["complete_url"], headers=bearer(key))
    assert ready.status_code == 200 and ready.json()["data"]["size_bytes"] == 1500
    assert row(db_url, file_id) == ("ready", None)


def test_b2_19_an_object_with_no_row_is_reported_then_collected(
    client: TestClient, owner: tuple[str, str], db_url: str, moto_endpoint: str, bucket: str
) -> None:
    user, key = owner
    kept = client.post(files_of(user), files={"file": ("k.png", png(), "image/png")}, headers=bearer(key))
    kept_key = kept.json()["data"]["file_path"]
    stray = f"users/{user}/files/2020/01/20200101_000000_deadbeef.png"
    s3_client(moto_endpoint).put_object(Bucket=bucket, Key=stray, Body=png(10), ServerSideEncryption="AES256")
    env = {
        **os.environ,
        **AWS_ENV,
        "ISA_DATABASE__URL": db_url,
        "ISA_STORAGE__BACKEND": "s3",
        "ISA_STORAGE__BUCKET": bucket,
        "ISA_STORAGE__ENDPOINT_URL": moto_endpoint,
        "ISA_STORAGE__REGION": REGION,
        "ISA_STORAGE__ADDRESSING_STYLE": "path",
    }

    def run(*extra: str) -> dict[str, Any]:
        cmd = [sys.executable, "-m", "isa", "files", "sweep", "--orphans", "--orphan-age", "0", "--json", *extra]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        result: dict[str, Any] = json.loads(done.stdout)
        return result

    service: FilesService = client.app.state.isa.get("files", FilesService)  # type: ignore[attr-defined]
    assert client.portal is not None
    reported = client.portal.call(lambda: service.collect_orphans(delete=False, min_age_minutes=0))
    assert stray in reported and kept_key not in reported
    assert s3_client(moto_endpoint).head_object(Bucket=bucket, Key=stray)  # reporting deletes nothing
    collected = run("--delete")
    assert stray in collected["orphans"] and collected["orphans_deleted"] is True
    remaining = {o["Key"] for o in s3_client(moto_endpoint).list_objects_v2(Bucket=bucket).get("Contents", [])}
    assert stray not in remaining and kept_key in remaining
