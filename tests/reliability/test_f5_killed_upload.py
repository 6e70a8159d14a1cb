"""Review finding F5: kill -9 during a streamed upload (local backend) left the partial file in files/tmp/ for good
and the pending row holding its reserved quota for 60 minutes. A real `isa serve --role mcp` is killed mid-stream;
when it comes back, its start-up sweep removes the partial file and expires the dead streamed upload's row."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

from isa.core.settings import Settings
from tests.support.auth import create_key
from tests.support.files import png
from tests.support.mcp_servers import sql
from tests.support.procs import isa_serve, wait_for

BOUNDARY = "f5-boundary"


def _start_upload(port: int, key: str, user: str, declared: int, sent: bytes) -> socket.socket:
    """Open a multipart upload that declares `declared` file bytes and sends only `sent` (then stalls)."""
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()
    request = (
        f"POST /api/v1/users/{user}/files HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {key}\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        f"Content-Length: {len(head) + declared + len(tail)}\r\n\r\n"
    ).encode()
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(request + head + sent)
    return sock


def _partials(tmp_dir: Path) -> list[Path]:
    return [p for p in tmp_dir.iterdir() if p.is_file() and p.stat().st_size > 0] if tmp_dir.exists() else []


def test_f5_a_kill_9_mid_upload_leaves_nothing_once_the_node_is_back(
    settings: Settings, db_url: str, tmp_path: Path
) -> None:
    user = "f5-uploader"
    key = create_key(db_url, settings, user, "write")
    env = {"ISA_DATABASE__URL": db_url, "ISA_STORAGE__BACKEND": "local"}
    tmp_dir = tmp_path / "files" / "tmp"
    pending = "SELECT id, status, status_reason FROM files WHERE user_id = %s"

    with isa_serve("mcp", tmp_path, env=env, log_dir=tmp_path) as node:
        node.wait_ready()
        sock = _start_upload(node.port, key, user, 5_000_000, png(1_000_000))
        try:
            partial = wait_for(lambda: _partials(tmp_dir), timeout=30)
            rows = wait_for(lambda: sql(db_url, pending, (user,)), timeout=30)
            node.proc.kill()  # kill -9 while the bytes stream
            node.proc.wait(10)
        finally:
            sock.close()
    assert [p.exists() for p in partial] == [True] and rows[0]["status"] == "pending"

    # Time passes for the dead upload (the clock that matters is the file's mtime and the database's now()).
    old = time.time() - 11 * 60
    for path in partial:
        os.utime(path, (old, old))
    sql(db_url, "UPDATE files SET created_at = now() - interval '16 minutes' WHERE user_id = %s", (user,))

    # Back up with the default settings: the sweep's first round runs at start-up, not 5 minutes later.
    with isa_serve("mcp", tmp_path, env=env, log_dir=tmp_path) as node:
        node.wait_ready()
        wait_for(lambda: not any(p.exists() for p in partial), timeout=30)
        expired = wait_for(lambda: [r for r in sql(db_url, pending, (user,)) if r["status"] == "deleted"], timeout=30)
        assert expired[0]["status_reason"] == "expired"
        listed = node.get(f"/api/v1/users/{user}/files", headers={"Authorization": f"Bearer {key}"})
        assert listed.status_code == 200 and listed.json()["data"] == []
        node.stop()
