"""deploy/bin/isa_secrets_env.py against a real Secrets Manager API (moto's server on loopback)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from tests.support.deploy import DEPLOY, load_script
from tests.support.procs import free_port

HELPER = DEPLOY / "bin" / "isa_secrets_env.py"
REGION = "eu-west-1"


@pytest.fixture(scope="module")
def secrets_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def _aws_env(endpoint: str) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def _put(endpoint: str, name: str, value: str) -> None:
    client = boto3.client(
        "secretsmanager",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    client.create_secret(Name=name, SecretString=value)


def _run(endpoint: str, prefix: str, role: str, out: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")} | _aws_env(endpoint)
    return subprocess.run(
        [sys.executable, str(HELPER), "--role", role, "--out", str(out), "--prefix", prefix],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _systemd_env_file(text: str) -> dict[str, str]:
    """How systemd's EnvironmentFile= reads KEY="value" lines (env-file.c: inside double quotes a backslash
    escapes exactly " \\ ` $)."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, raw = line.partition("=")
        assert raw[0] == raw[-1] == '"', line
        value, i, body = [], 0, raw[1:-1]
        while i < len(body):
            if body[i] == "\\" and i + 1 < len(body) and body[i + 1] in '"\\`$':
                value.append(body[i + 1])
                i += 2
            else:
                value.append(body[i])
                i += 1
        out[key] = "".join(value)
    return out


def test_the_role_secret_overrides_the_common_one_in_a_0600_env_file(secrets_endpoint: str, tmp_path: Path) -> None:
    tricky = 'postgresql://isa:p"a$s`w\\d@db.example.test:5432/isa'
    _put(secrets_endpoint, "t1/common", json.dumps({"ISA_DATABASE__URL": tricky, "SHARED": "common", "N": 3}))
    _put(secrets_endpoint, "t1/model", json.dumps({"OPENAI_API_KEY": "sk-test-value", "SHARED": "role"}))
    out = tmp_path / "secrets.env"
    result = _run(secrets_endpoint, "t1", "model", out)
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    values = _systemd_env_file(out.read_text())
    assert values == {"ISA_DATABASE__URL": tricky, "SHARED": "role", "N": "3", "OPENAI_API_KEY": "sk-test-value"}
    assert "sk-test-value" not in result.stdout + result.stderr and 'p"a$s' not in result.stdout + result.stderr
    assert "t1/common" in result.stdout and "t1/model" in result.stdout


def test_a_missing_secret_fails_the_start_and_names_it_without_writing_a_file(
    secrets_endpoint: str, tmp_path: Path
) -> None:
    _put(secrets_endpoint, "t2/common", json.dumps({"A": "1"}))
    out = tmp_path / "secrets.env"
    result = _run(secrets_endpoint, "t2", "agent", out)
    assert result.returncode == 1
    assert "t2/agent" in result.stderr and "ResourceNotFoundException" in result.stderr
    assert not out.exists() and not list(tmp_path.iterdir())


def test_a_secret_that_is_not_an_object_of_one_line_variables_is_refused(secrets_endpoint: str, tmp_path: Path) -> None:
    for number, value in enumerate(['["a"]', "not json", '{"bad-name": "x"}', '{"PEM": "line1\\nline2"}']):
        prefix = f"t3-{number}"
        _put(secrets_endpoint, f"{prefix}/common", value)
        _put(secrets_endpoint, f"{prefix}/mcp", "{}")
        result = _run(secrets_endpoint, prefix, "mcp", tmp_path / "secrets.env")
        assert result.returncode == 1 and f"{prefix}/common" in result.stderr, value
        assert "line1" not in result.stderr
    assert not (tmp_path / "secrets.env").exists()


def test_the_env_file_is_replaced_atomically_and_never_readable_by_others(tmp_path: Path) -> None:
    helper = load_script(HELPER, "isa_secrets_env")
    out = tmp_path / "secrets.env"
    out.write_text("OLD=1\n")
    out.chmod(0o644)
    old_umask = os.umask(0)  # even a permissive umask must not widen the mode
    try:
        helper.write_env_file(out, {"NEW": "2"})
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert _systemd_env_file(out.read_text()) == {"NEW": "2"}
    assert [p.name for p in tmp_path.iterdir()] == ["secrets.env"]
