"""`isa serve --role mcp` as deployed: the SDK client works against it, and SIGTERM keeps the audit trail."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from isa.core.settings import Settings
from tests.support.auth import create_key
from tests.support.mcp_servers import mcp_client, sql
from tests.support.procs import isa_serve

pytestmark = pytest.mark.anyio


@pytest.fixture()
def key(settings: Settings, db_url: str) -> str:
    return create_key(db_url, settings, "last-caller", "write")


async def test_a_call_made_just_before_sigterm_is_still_in_the_audit_log(
    key: str, db_url: str, data_dir: Path, tmp_path: Path
) -> None:
    # A flush interval far longer than the test: the row can only get in through the shutdown drain.
    env = {"ISA_DATABASE__URL": db_url, "ISA_MCP__AUDIT_FLUSH_SECONDS": "60"}
    with isa_serve("mcp", data_dir, env=env, log_dir=tmp_path) as node:
        node.wait_ready()
        async with mcp_client(node.url, key) as client:
            result = await client.call_tool("format_json", {"content": '{"last": true}'})
        assert not result.is_error
        node.proc.send_signal(signal.SIGTERM)
        assert node.proc.wait(30) == 0
        assert "Traceback" not in node.log()
    rows = sql(db_url, "SELECT outcome FROM audit_log WHERE user_id = 'last-caller' AND tool_name = 'format_json'")
    assert [r["outcome"] for r in rows] == ["ok"]
