"""/openapi.json describes the files routes; schemathesis fuzzes them on a real `isa serve --role mcp`: no 500s."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from isa.core.settings import Settings
from tests.support.auth import create_key
from tests.support.files import png
from tests.support.fuzz import run_schemathesis
from tests.support.procs import IsaProcess, isa_serve

FILE_ROUTES = r"^/api/v1/(users/\{user_id\}/files|storage/local/)"
TIME_BUDGET = 15


@pytest.fixture(scope="module")
def target(
    settings: Settings, db_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[IsaProcess, str, str, list[str]]]:
    """A node on the local backend, a write key, and two ready files of that user (one for DELETE)."""
    user = f"fuzz-{uuid.uuid4().hex[:6]}"
    key = create_key(db_url, settings, user, "write")
    root = tmp_path_factory.mktemp("fuzz-files")
    env = {
        "ISA_DATABASE__URL": db_url,
        "ISA_AUTH__RATE_LIMIT__PRINCIPAL_LIMIT": "0",
        "ISA_STORAGE__LOCAL_DIR": str(root / "store"),
        "ISA_FILES__SWEEP_INTERVAL_SECONDS": "0",
    }
    with isa_serve("mcp", root, env=env, log_dir=root) as node:
        node.wait_ready()
        ids = []
        for name in ("keep.png", "delete.png"):
            made = httpx.post(
                f"{node.url}/api/v1/users/{user}/files",
                files={"file": (name, png(), "image/png")},
                headers={"Authorization": f"Bearer {key}"},
                timeout=30,
            )
            assert made.status_code == 201, made.text
            ids.append(made.json()["data"]["file_id"])
        yield node, key, user, ids


def test_openapi_describes_every_files_route(target: tuple[IsaProcess, str, str, list[str]]) -> None:
    node = target[0]
    paths = node.get("/openapi.json").json()["paths"]
    base = "/api/v1/users/{user_id}/files"
    expected = {
        base: {"post", "get", "delete"},
        base + "/upload": {"post"},
        base + "/presign-upload": {"post"},
        base + "/info": {"get"},
        base + "/download": {"get"},
        base + "/{file_id}": {"get", "delete"},
        base + "/{file_id}/download": {"get"},
        base + "/{file_id}/content": {"get"},
        base + "/{file_id}/complete": {"post"},
        "/api/v1/storage/local/{key}": {"get", "put"},
    }
    for path, methods in expected.items():
        assert methods <= paths[path].keys(), path
    presign = paths[base + "/presign-upload"]["post"]
    assert presign["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/PresignUploadIn"
    }
    assert {"201", "401", "403", "413", "415", "422"} <= presign["responses"].keys()
    assert paths["/api/v1/storage/local/{key}"]["get"]["security"] == []


def test_schemathesis_finds_no_500_on_the_files_routes(
    target: tuple[IsaProcess, str, str, list[str]], tmp_path: Path
) -> None:
    node, key, user, (keep, delete) = target
    tested, report = run_schemathesis(
        node.url,
        key,
        tmp_path,
        paths=FILE_ROUTES,
        config=(
            f'[parameters]\n"path.user_id" = "{user}"\n"path.file_id" = "{keep}"\n\n'
            f'[[operations]]\ninclude-method = "DELETE"\nparameters = {{ "path.file_id" = "{delete}" }}\n'
        ),
        max_examples=10,
        time_budget=TIME_BUDGET,
    )
    assert tested >= 13, report
    assert "internal_error" not in node.log(), node.log()
