"""End to end over real HTTP: an operator makes a key with the CLI; a real `isa serve --role mcp` on S3 (moto)
takes an upload, lists it, redirects a download to a presigned URL, deletes it, and the object is gone."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from botocore.exceptions import ClientError

from tests.support.files import AWS_ENV, REGION, png, s3_client
from tests.support.procs import isa_serve


def test_cli_key_upload_list_download_delete_and_the_object_is_gone(
    db_url: str, data_dir: Path, moto_endpoint: str, bucket: str, tmp_path: Path
) -> None:
    env = {
        **AWS_ENV,
        "ISA_DATABASE__URL": db_url,
        "ISA_STORAGE__BACKEND": "s3",
        "ISA_STORAGE__BUCKET": bucket,
        "ISA_STORAGE__ENDPOINT_URL": moto_endpoint,
        "ISA_STORAGE__REGION": REGION,
        "ISA_STORAGE__ADDRESSING_STYLE": "path",
        "ISA_FILES__SWEEP_INTERVAL_SECONDS": "0",
        "ISA_LOGGING__LEVEL": "INFO",
    }
    made = subprocess.run(
        [sys.executable, "-m", "isa", "keys", "create", "--user", "e2e-alice", "--scope", "write", "--json"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    auth = {"Authorization": f"Bearer {json.loads(made.stdout)['key']}"}
    data = png(300_000)

    with (
        isa_serve("mcp", data_dir, env=env, log_dir=tmp_path) as node,
        httpx.Client(base_url=node.url, timeout=30) as http,
    ):
        node.wait_ready()
        files = "/api/v1/users/e2e-alice/files"
        created = http.post(files, files={"file": ("scan.png", data, "image/png")}, headers=auth)
        assert created.status_code == 201, created.text
        file = created.json()["data"]
        key = file["file_path"]
        assert key.startswith("users/e2e-alice/files/") and key.endswith(".png")

        listed = http.get(files, headers=auth).json()["data"]
        assert [f["file_id"] for f in listed] == [file["file_id"]]

        head = s3_client(moto_endpoint).head_object(Bucket=bucket, Key=key)
        assert head["ServerSideEncryption"] == "AES256" and head["ContentLength"] == len(data)

        downloaded = http.get(file["download_url"], headers=auth, follow_redirects=True)
        assert downloaded.status_code == 200, downloaded.text
        assert downloaded.history[0].status_code == 302
        assert str(downloaded.url).startswith(moto_endpoint) and "X-Amz-Signature=" in str(downloaded.url)
        assert hashlib.sha256(downloaded.content).hexdigest() == file["sha256"] == hashlib.sha256(data).hexdigest()
        assert downloaded.headers["content-disposition"].startswith("attachment;")

        deleted = http.delete(f"{files}/{file['file_id']}", headers=auth)
        assert deleted.status_code == 200, deleted.text
        assert http.get(files, headers=auth).json()["data"] == []
        log = node.log()

    with pytest.raises(ClientError) as gone:
        s3_client(moto_endpoint).head_object(Bucket=bucket, Key=key)
    assert gone.value.response["Error"]["Code"] == "404"
    assert "file_uploaded" in log and "file_deleted" in log
    assert "X-Amz-Signature=" not in log and "X-Amz-Credential=" not in log  # presigned URLs never logged
