"""Start `isa` processes on loopback and wait for conditions with a bound (never a bare sleep)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import httpx

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(condition: Callable[[], T | None], timeout: float = 30.0, interval: float = 0.05) -> T:
    """Poll `condition` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except Exception as exc:  # the thing we wait for may not exist yet
            last_error = exc
        time.sleep(interval)
    raise TimeoutError(f"condition not met within {timeout}s (last error: {last_error!r})")


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class IsaProcess:
    def __init__(self, proc: subprocess.Popen[str], port: int, log_path: Path) -> None:
        self.proc = proc
        self.port = port
        self.log_path = log_path
        self.url = f"http://127.0.0.1:{port}"

    def get(self, path: str, **kwargs: object) -> httpx.Response:
        return httpx.get(self.url + path, timeout=10, **kwargs)  # type: ignore[arg-type]

    def wait_ready(self, timeout: float = 60) -> None:
        last: list[str] = []

        def ready() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"isa exited with {self.proc.returncode}: {self.log()}")
            response = self.get("/health/ready")
            last[:] = [f"{response.status_code} {response.text[:300]}"]
            return response.status_code == 200

        try:
            wait_for(ready, timeout)
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}; {self.url} last answered {last}; log: {self.log()[-1500:]}") from None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        return self.proc.wait(timeout)


@contextmanager
def isa_serve(
    role: str,
    data_dir: Path,
    *,
    port: int | None = None,
    env: dict[str, str] | None = None,
    log_dir: Path | None = None,
    cwd: str | None = None,
) -> Iterator[IsaProcess]:
    """`isa serve --role ROLE` on loopback; `cwd`: start it there (`python -m isa` imports the isa found there first,
    e.g. another source tree being compared)."""
    port = port or free_port()
    log_path = (log_dir or data_dir) / f"isa-{role}-{port}.log"
    full_env = {**os.environ, "ISA_DATA_DIR": str(data_dir), "ISA_ENV": "test", **(env or {})}
    with log_path.open("w") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "isa", "serve", "--role", role, "--port", str(port)],
            env=full_env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=cwd,
        )
        handle = IsaProcess(proc, port, log_path)
        try:
            yield handle
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
