"""deploy/systemd: the units verify with systemd itself and carry the settings the deployment relies on."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.deploy import SYSTEMD, parse_unit, tf_default

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


# --- Resource limits (gap 10; docs/deploy.md "Resource limits") ------------------------------------------------

# Memory of the instance types deploy/terraform's `nodes` default uses; a new type must be added here.
INSTANCE_MIB = {"t3.small": 2048, "t3.medium": 4096}
# What the OS, sshd/SSM and the CloudWatch agent keep on every node, outside isa's units.
OS_RESERVE_MIB = 384
_SIZE = {"": 1 / 1048576, "K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}


def _mib(value: str) -> float:
    """A systemd size ("512M", "1G", bytes) in MiB; "infinity" or a percentage is not a bound and fails here."""
    match = re.fullmatch(r"(\d+)([KMGT]?)", value.strip(), re.I)
    assert match is not None, f"not an absolute size: {value!r}"
    return int(match.group(1)) * _SIZE[match.group(2).upper()]


def _effective(name: str) -> dict[str, list[str]]:
    """A unit's [Service] as systemd merges it: for isa@<role>, the template, then its drop-ins overriding."""
    if not name.startswith("isa@"):
        return _service(name)
    merged = dict(_service("isa@.service"))
    for dropin in sorted((SYSTEMD / f"{name}.d").glob("*.conf")):
        merged.update(parse_unit(dropin).get("Service", {}))
    return merged


def _one(service: dict[str, list[str]], key: str, name: str) -> str:
    values = service.get(key, [])
    assert len(values) == 1 and values[0], f"{name}: {key} must be set once, got {values}"
    return values[0]


def test_every_unit_bounds_its_memory_tasks_and_open_files() -> None:
    for name in UNITS:
        service = _effective(name)
        high, hard = _mib(_one(service, "MemoryHigh", name)), _mib(_one(service, "MemoryMax", name))
        # Throttling and reclaim at MemoryHigh come before the OOM kill at MemoryMax, with room in between.
        assert 0 < high <= hard * 0.8, f"{name}: MemoryHigh={high} MiB, MemoryMax={hard} MiB"
        tasks = _one(service, "TasksMax", name)
        assert tasks.isdigit() and 64 <= int(tasks) <= 4096, f"{name}: TasksMax={tasks}"
        nofile = _one(service, "LimitNOFILE", name)
        assert nofile.isdigit() and 1024 <= int(nofile) <= 65536, f"{name}: LimitNOFILE={nofile}"


def test_the_units_of_each_node_fit_its_instance_memory_with_room_for_the_os() -> None:
    nodes = tf_default("nodes")
    # The mcp node runs its node, the worker and, during an upgrade, the migration beside them.
    on_node = {
        "mcp": ("isa@mcp.service", "isa-worker.service", "isa-migrate.service"),
        "model": ("isa@model.service",),
        "agent": ("isa@agent.service",),
    }
    for role, units in on_node.items():
        instance = nodes[role]["instance_type"]
        assert instance in INSTANCE_MIB, f"{role}: add {instance}'s memory to INSTANCE_MIB and re-check the units"
        total = sum(_mib(_one(_effective(unit), "MemoryMax", unit)) for unit in units)
        assert total <= INSTANCE_MIB[instance] - OS_RESERVE_MIB, f"{role} on {instance}: units may take {total} MiB"


def test_the_browser_running_units_get_more_room_and_survive_a_renderer_being_oom_killed() -> None:
    mcp, worker, plain = _effective("isa@mcp.service"), _effective("isa-worker.service"), _service("isa@.service")
    assert _mib(_one(mcp, "MemoryMax", "mcp")) > _mib(_one(plain, "MemoryMax", "template"))
    assert int(_one(mcp, "TasksMax", "mcp")) > int(_one(plain, "TasksMax", "template"))  # Chromium's threads
    # A renderer killed by the OOM killer fails one page; systemd's default (stop) would take the node down.
    assert mcp["OOMPolicy"] == ["continue"] and worker["OOMPolicy"] == ["continue"]
    # A single-process node has nothing to continue with: the default stops it and Restart= brings it back.
    assert "OOMPolicy" not in plain and "OOMPolicy" not in _service("isa-migrate.service")
