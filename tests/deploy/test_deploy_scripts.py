"""The user data, the env templates and the release scripts: rendered as Terraform renders them, then checked."""

from __future__ import annotations

import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.support.deploy import (
    DEPLOY,
    ROOT,
    SINGLE_ROLES,
    SYSTEMD,
    TERRAFORM,
    render_template,
    template_names,
    template_values,
    templatefile_args,
    tf_resources,
)

SCRIPTS = [DEPLOY / "bootstrap.sh", DEPLOY / "bin" / "isa-release", DEPLOY / "bin" / "build-release"]
EC2_USER_DATA_LIMIT = 16 * 1024


def _user_data_expression() -> str:
    return str(tf_resources("aws_instance", TERRAFORM / "compute.tf")["node"]["user_data"])


def test_terraform_passes_each_template_exactly_the_values_it_uses() -> None:
    expression = _user_data_expression()
    for template in ("bootstrap.sh", "env/common.env", "env/role.env", "env/settings.toml"):
        passed = templatefile_args(expression, f"../{template}")
        used = template_names((DEPLOY / template).read_text())
        assert used == passed, f"{template}: uses {sorted(used)}, compute.tf passes {sorted(passed)}"


def test_user_data_renders_for_every_role_within_the_ec2_limit_as_valid_bash_without_secrets(tmp_path: Path) -> None:
    for role in SINGLE_ROLES:
        text = render_template(DEPLOY / "bootstrap.sh", template_values(role))
        assert len(text.encode()) < EC2_USER_DATA_LIMIT, f"{role}: user data is {len(text)} bytes"
        assert re.findall(r"\$\{[^}]*\}", text) == ["${aws:InstanceId}"]  # the CloudWatch agent's own placeholder
        script = tmp_path / f"user-data-{role}.sh"
        script.write_text(text)
        result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stderr
        if shutil.which("shellcheck"):
            check = subprocess.run(
                ["shellcheck", "-S", "warning", str(script)], capture_output=True, text=True, timeout=60
            )
            assert check.returncode == 0, check.stdout
        assert f"ROLE='{role}'" in text and "isa-release install" in text
        # Secrets are fetched by the units at start; none may travel in user data (readable from the instance).
        assert not re.search(r"(?i)(DATABASE__URL|API_KEY|TOKEN_SECRET|WEBHOOK_SECRET|PASSWORD)\s*=", text)


def test_chromium_is_installed_on_the_mcp_node_only() -> None:
    text = (DEPLOY / "bootstrap.sh").read_text()
    block = re.search(r'if \[ "\$ROLE" = mcp \]; then\n(.*?)\nfi', text, re.S)
    installs = [line for line in text.splitlines() if "apt-get install" in line and "chromium" in line]
    assert block and len(installs) == 1 and installs[0] in block.group(1)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_shell_scripts_parse_and_pass_shellcheck_where_installed(script: Path) -> None:
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True, timeout=30).returncode == 0
    if shutil.which("shellcheck") and script.name != "bootstrap.sh":  # the template is checked after rendering
        result = subprocess.run(
            ["shellcheck", "-S", "warning", str(script)], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stdout


def test_the_release_bundle_holds_everything_bootstrap_and_isa_release_install(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(DEPLOY / "bin" / "build-release"), "--bundle-only", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    bundles = list(tmp_path.glob("isa-deploy-*.tar.gz"))
    assert len(bundles) == 1
    with tarfile.open(bundles[0]) as tar:
        names = {name.removeprefix("./") for name in tar.getnames()}
        assert all(member.uid == 0 and member.gid == 0 for member in tar.getmembers())
    units = {p.relative_to(DEPLOY).as_posix() for p in SYSTEMD.rglob("*") if p.is_file()}
    needed = units | {"bin/isa_secrets_env.py", "bin/isa-release", "routing.json", "docs/deploy.md"}
    assert needed <= names, f"missing from the bundle: {sorted(needed - names)}"
    release = (DEPLOY / "bin" / "isa-release").read_text()
    # isa-release installs from these bundle paths; the units' ExecStartPre runs the helper where it lands.
    assert '"$dir"/deploy/systemd/*.service' in release and '"$dir/deploy/bin/isa_secrets_env.py"' in release
    assert "$ISA_HOME/bin/" in release
    assert "/opt/isa/bin/isa_secrets_env.py" in (SYSTEMD / "isa@.service").read_text()
