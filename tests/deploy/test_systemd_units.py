"""deploy/systemd: the units verify with systemd itself and carry the settings the deployment relies on."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.deploy import SYSTEMD, parse_unit

UNITS = ("isa@mcp.service", "isa@model.service", "isa@agent.service", "isa-migrate.service", "isa-worker.service")
SYSTEM_UNITS = next((p for p in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system")) if p.is_dir()), None)

# Every long-running isa unit and the migration run: an unprivileged user that can write only its own directories.
HARDENING = {
    "User": "isa",
    "Group": "isa",
    "NoNewPrivileges": "yes",
    "CapabilityBoundingSet": "",
    "AmbientCapabilities": "",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectControlGroups": "yes",
    "RestrictSUIDSGID": "yes",
    "LockPersonality": "yes",
    "SystemCallArchitectures": "native",
    "ReadWritePaths": "/var/lib/isa",
    "UMask": "0077",
}


def _service(name: str) -> dict[str, list[str]]:
    return parse_unit(SYSTEMD / name)["Service"]


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None or SYSTEM_UNITS is None, reason="systemd (Debian package) not installed"
)
def test_systemd_analyze_verifies_every_unit_without_a_warning(tmp_path: Path) -> None:
    """Verify in a throwaway root: the units installed where bootstrap puts them, stub executables at their paths."""
    assert SYSTEM_UNITS is not None
    shutil.copytree(SYSTEM_UNITS, tmp_path / "usr/lib/systemd/system", symlinks=True)
    shutil.copytree(SYSTEMD, tmp_path / "etc/systemd/system")
    for binary in ("opt/isa/venv/bin/python", "opt/isa/venv/bin/isa"):
        path = tmp_path / binary
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("#!/bin/sh\n")
        path.chmod(0o755)
    result = subprocess.run(
        ["systemd-analyze", "verify", f"--root={tmp_path}", *UNITS], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", f"systemd-analyze warned:\n{result.stderr}"


def test_the_template_unit_runs_isa_serve_as_its_instance_role() -> None:
    service = _service("isa@.service")
    assert service["Environment"] == ["ISA_ROLE=%i"]
    assert service["ExecStart"] == ["/opt/isa/venv/bin/isa serve"]
    assert service["Type"] == ["exec"] and service["Restart"] == ["on-failure"]
    assert parse_unit(SYSTEMD / "isa@.service")["Install"]["WantedBy"] == ["multi-user.target"]


def test_every_unit_reads_the_common_and_role_env_files_then_its_secrets_fetched_at_start() -> None:
    expected = {
        "isa@.service": ("%i", "/run/isa/%i/secrets.env"),
        "isa-migrate.service": ("mcp", "/run/isa/migrate/secrets.env"),
        "isa-worker.service": ("mcp", "/run/isa/worker/secrets.env"),
    }
    for name, (role, secrets) in expected.items():
        service = _service(name)
        assert service["EnvironmentFile"] == ["/etc/isa/common.env", f"/etc/isa/{role}.env", secrets], name
        assert service["ExecStartPre"] == [
            f"/opt/isa/venv/bin/python /opt/isa/bin/isa_secrets_env.py --role {role} --out {secrets}"
        ], name
        # The secrets file lives in the unit's runtime directory: private, and gone when the unit stops.
        runtime = secrets.removeprefix("/run/").rsplit("/", 1)[0]
        assert service["RuntimeDirectory"] == [runtime] and service["RuntimeDirectoryMode"] == ["0700"], name


def test_every_unit_is_hardened_and_runs_as_the_dedicated_user() -> None:
    for name in ("isa@.service", "isa-migrate.service", "isa-worker.service"):
        service = _service(name)
        for key, value in HARDENING.items():
            assert service.get(key) == [value], f"{name}: {key}={service.get(key)}, want {value}"
        assert "AF_PACKET" not in service["RestrictAddressFamilies"][0]
        assert service["SystemCallFilter"] == ["@system-service"]


def test_migrations_run_once_before_the_mcp_node_and_the_worker_and_a_failure_stops_them() -> None:
    migrate = _service("isa-migrate.service")
    assert migrate["Type"] == ["oneshot"] and migrate["ExecStart"] == ["/opt/isa/venv/bin/isa migrate"]
    assert "RemainAfterExit" not in migrate  # so every start of isa@mcp runs it again (a no-op when up to date)
    assert "isa@mcp.service" in parse_unit(SYSTEMD / "isa-migrate.service")["Unit"]["Before"][0]
    dropin = parse_unit(SYSTEMD / "isa@mcp.service.d" / "10-mcp.conf")["Unit"]
    assert dropin["Requires"] == ["isa-migrate.service"] and dropin["After"] == ["isa-migrate.service"]
    worker = parse_unit(SYSTEMD / "isa-worker.service")
    assert worker["Service"]["ExecStart"] == ["/opt/isa/venv/bin/isa worker"]
    assert "isa-migrate.service" in worker["Unit"]["Requires"] and "isa-migrate.service" in worker["Unit"]["After"]


def test_only_the_browser_running_units_relax_namespaces_and_writable_executable_memory() -> None:
    dropin = parse_unit(SYSTEMD / "isa@mcp.service.d" / "10-mcp.conf")["Service"]
    assert dropin["RestrictNamespaces"] == ["user pid net"] and dropin["MemoryDenyWriteExecute"] == ["no"]
    for name in ("isa@.service", "isa-migrate.service"):
        assert _service(name)["RestrictNamespaces"] == ["yes"]
        assert _service(name)["MemoryDenyWriteExecute"] == ["yes"]
