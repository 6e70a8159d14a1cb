"""Time from `isa serve` to a 200 on /health/ready, cold (empty ISA_DATA_DIR) vs warm, per role; and SIGTERM to exit.

.venv/bin/python tests/bench/bench_startup.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import httpx

from tests.support.procs import free_port, wait_for

ISA = [sys.executable, "-m", "isa"]


def ready_time(data_dir: str, role: str) -> tuple[float, float, int]:
    port = free_port()
    started = time.monotonic()
    proc = subprocess.Popen(
        [*ISA, "serve", "--role", role, "--port", str(port)],
        env={**os.environ, "ISA_DATA_DIR": data_dir, "ISA_ENV": "test"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for(lambda: httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=1).status_code == 200, 120)
    ready = time.monotonic() - started
    stopping = time.monotonic()
    proc.terminate()
    code = proc.wait(60)
    return ready, time.monotonic() - stopping, code


def main() -> None:
    data_dir = tempfile.mkdtemp(prefix="isa-bench-startup-")
    try:
        runs = [
            ("cold: empty data dir (initdb + all migrations)", "all"),
            ("warm: role all", "all"),
            ("warm: role model (imports litellm)", "model"),
            ("warm: role mcp", "mcp"),
        ]
        for label, role in runs:
            ready, stop, code = ready_time(data_dir, role)
            print(f"{label:<48} ready {ready:5.2f} s   SIGTERM->exit {stop:4.2f} s (exit code {code})")
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
