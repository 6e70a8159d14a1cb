"""Fixtures of the files tests: moto's S3 server on loopback (session), a fresh versioned bucket per test, and a
files app per module on each storage backend (`client`, run once on local disk and once on S3)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from isa.core.settings import Settings
from tests.support.files import files_client, make_bucket, moto_endpoint, s3_storage_settings

__all__ = ["moto_endpoint"]


@pytest.fixture()
def bucket(moto_endpoint: str) -> str:
    return make_bucket(moto_endpoint)


@pytest.fixture(scope="module", params=["local", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if request.param == "local":
        return {"backend": "local", "local_dir": str(tmp_path_factory.mktemp("files"))}
    endpoint = request.getfixturevalue("moto_endpoint")
    return s3_storage_settings(endpoint, make_bucket(endpoint))


@pytest.fixture(scope="module")
def client(settings: Settings, db_url: str, backend: dict[str, Any]) -> Iterator[TestClient]:
    with files_client(settings, db_url, backend) as c:
        yield c
