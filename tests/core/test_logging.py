"""Logs: one structured record per event, no secrets (checklist A5 items 47 and 48)."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys

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


# isa's own lines are written straight to the stream when isa's handler is the only one (as in `isa serve`), and
# go through the standard library's record otherwise (pytest adds its handlers to every test, hence a process of
# its own here). The script logs the same lines both ways: before and after another handler joins the root logger.
_BOTH_WAYS = """
import logging, sys
from isa.core.logging import configure_logging, get_logger

configure_logging(sys.argv[1], sys.argv[2])
log = get_logger("isa.test")

def lines():
    log.info(
        "outbound",
        url="https://b.s3.amazonaws.com/k?X-Amz-Signature=abcdef0123&X-Amz-Expires=3600",
        header="Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJl",
        note="postgresql://u:hunter2@db/x and isa_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdefg",
        authorization="Bearer plain-token",
        nested={"password": "pw123", "n": [1, None, "token=abc123secret"]},
        forged='alice\\r\\n{"event": "admin_login"}',
    )
    log.warning("slow_query", ms=12.5, rows=3)
    log.debug("debug_line")
    get_logger("httpx").info("httpx_info")  # the HTTP clients' loggers are held at WARNING

lines()
kept = []

class Keep(logging.Handler):
    def emit(self, record):
        kept.append(record.levelno)

logging.getLogger().addHandler(Keep())
lines()
print(kept)
"""


@pytest.mark.parametrize("fmt", ["json", "console"])
@pytest.mark.parametrize("level", ["INFO", "WARNING"])
def test_a5_48_lines_written_directly_are_the_standard_librarys_lines_redacted_and_filtered_alike(
    fmt: str, level: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _BOTH_WAYS, fmt, level], capture_output=True, text=True, timeout=120, check=True
    )
    lines = re.sub(r"\d{4}-\d\d-\d\dT[\d:.]+Z", "<time>", done.stderr).splitlines()
    shown = ["outbound", "slow_query"] if level == "INFO" else ["slow_query"]
    assert len(lines) == 2 * len(shown), done.stderr
    direct, through_records = lines[: len(shown)], lines[len(shown) :]
    assert direct == through_records
    assert [next(name for name in shown if name in line) for line in direct] == shown
    for secret in (
        "abcdef0123",
        "eyJzdWIiOiJhIn0",
        "hunter2",
        "isa_AbCdEfGhIjKlMnOp",
        "plain-token",
        "pw123",
        "abc123",
    ):
        assert secret not in done.stderr
    assert ("X-Amz-Expires=3600" in done.stderr) is (level == "INFO")  # what isn't secret stays readable
    assert json.loads(done.stdout) == ([logging.INFO, logging.WARNING] if level == "INFO" else [logging.WARNING])
    if fmt == "json":
        records = [json.loads(line) for line in direct]
        assert records[-1] == {
            "ms": 12.5,
            "rows": 3,
            "event": "slow_query",
            "level": "warning",
            "logger": "isa.test",
            "timestamp": "<time>",
        }
