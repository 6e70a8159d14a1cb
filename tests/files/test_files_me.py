"""Issue 16: `GET /api/v1/users/me/files` answered 404 although every other user route answers under `me`.
`me` is the caller, from the verified key; it never reaches another user's files."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from isa.core.settings import Settings
from tests.support.auth import create_key
from tests.support.files import bearer, files_client, png

ME = "/api/v1/users/me/files"


@pytest.fixture(scope="module")
def client(settings: Settings, db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    folder: Path = tmp_path_factory.mktemp("files-me")
    with files_client(settings, db_url, {"backend": "local", "local_dir": str(folder)}) as c:
        yield c


def test_get_users_me_files_answers_200_with_the_callers_own_files_only(
    client: TestClient, settings: Settings, db_url: str
) -> None:
    alice, bob = f"me-alice-{uuid.uuid4().hex[:6]}", f"me-bob-{uuid.uuid4().hex[:6]}"
    alice_key, bob_key = create_key(db_url, settings, alice, "write"), create_key(db_url, settings, bob, "write")
    assert client.get(ME, headers=bearer(alice_key)).json()["data"] == []
    mine = client.post(ME, files={"file": ("a.png", png(3000), "image/png")}, headers=bearer(alice_key))
    assert mine.status_code == 201, mine.text
    client.post(
        f"/api/v1/users/{bob}/files", files={"file": ("b.png", png(3000), "image/png")}, headers=bearer(bob_key)
    )

    listed = client.get(ME, headers=bearer(alice_key))
    assert listed.status_code == 200
    assert [(f["user_id"], f["filename"]) for f in listed.json()["data"]] == [(alice, "a.png")]
    file = listed.json()["data"][0]
    assert client.get(f"{ME}/{file['file_id']}", headers=bearer(alice_key)).status_code == 200
    assert client.get(f"{ME}/{file['file_id']}", headers=bearer(bob_key)).status_code == 404  # bob's `me` is bob
    assert [f["user_id"] for f in client.get(ME, headers=bearer(bob_key)).json()["data"]] == [bob]
    assert client.get(ME).status_code == 401
