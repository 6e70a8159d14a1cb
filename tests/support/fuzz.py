"""Run schemathesis's own command-line runner against a served /openapi.json (its pytest plugin breaks on pytest 9)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path


def run_schemathesis(
    base_url: str, key: str, workdir: Path, *, paths: str, config: str, max_examples: int, time_budget: int
) -> tuple[int, str]:
    """Fuzz the operations whose path matches `paths`; return (operations tested, report). Asserts exit 0."""
    config_file = workdir / "schemathesis.toml"
    config_file.write_text(config)
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "--config-file", str(config_file), "--no-color", "run", f"{base_url}/openapi.json",
        "--include-path-regex", paths,
        "--checks", "not_a_server_error",
        "--phases", "examples,coverage,fuzzing",
        "--max-examples", str(max_examples),
        "--max-time", str(time_budget),
        # One worker: CPython 3.11's ast.parse is not thread-safe, and hypothesis calls it while
        # describing filters, so parallel workers occasionally die with a SystemError.
        "--workers", "1",
        "--seed", "20261127",
        "--request-timeout", "10",
        "--generation-database", "none",
        "--header", f"Authorization: Bearer {key}",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=time_budget + 60, cwd=workdir)
    # The summary and failure sections are at the end; schemathesis filters the key out of them.
    report = result.stdout[-8000:] + result.stderr[-2000:]
    assert result.returncode == 0, report
    tested = re.search(r"Tested: (\d+)", result.stdout)
    return (int(tested.group(1)) if tested else 0), report
