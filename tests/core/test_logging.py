"""Logs: one structured record per event, no secrets (checklist A5 items 47 and 48)."""

from __future__ import annotations

import json
import logging

import pytest

from isa.core.logging import configure_logging, get_logger


@pytest.fixture()
def json_logs(capsys: pytest.CaptureFixture[str]) -> pytest.CaptureFixture[str]:
    configure_logging("json", "INFO")
    yield capsys
    configure_logging("console", "WARNING")


def test_a5_48_tokens_keys_signatures_and_passwords_never_reach_a_log_line(
    json_logs: pytest.CaptureFixture[str],
) -> None:
    log = get_logger("test")
    log.info(
        "outbound",
        url="https://bucket.s3.amazonaws.com/k?X-Amz-Credential=AKIAX&X-Amz-Signature=abcdef0123&X-Amz-Expires=3600",
        header="Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJl",
        note="key isa_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdefg and postgresql://u:hunter2@db/x password=pw123",
        authorization="Bearer plain-token",
    )
    logging.getLogger("uvicorn.error").warning("stdlib line with token=abc123secret")
    err = json_logs.readouterr().err
    for secret in (
        "abcdef0123",
        "AKIAX",
        "eyJzdWIiOiJhIn0",
        "isa_AbCdEfGhIjKlMnOp",
        "hunter2",
        "pw123",
        "plain-token",
        "abc123secret",
    ):
        assert secret not in err
    assert "X-Amz-Expires=3600" in err  # what isn't secret stays readable


def test_a5_47_crlf_and_fake_json_in_user_fields_stay_inside_one_record(json_logs: pytest.CaptureFixture[str]) -> None:
    forged = 'alice\r\n{"event": "admin_login", "level": "critical"}\x1b[31m'
    get_logger("test").info("login_failed", username=forged)
    lines = [line for line in json_logs.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["event"] == "login_failed" and record["username"] == forged
