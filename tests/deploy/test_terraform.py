"""deploy/terraform: parses, passes checkov with reasoned suppressions only, and says what the layout requires."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.deploy import (
    DEPLOY,
    TERRAFORM,
    checkov_binary,
    tf_blocks,
    tf_default,
    tf_files,
    tf_parse,
    tf_resources,
)

# checkov must not phone home (guideline download): the test machine and CI have no such network.
_CHECKOV_ENV = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_NO_OUTPUT_COLOR": "1"}


def _start_checkov(directory: Path) -> subprocess.Popen[str]:
    command = [str(checkov_binary()), "-d", str(directory), "--framework", "terraform", "--skip-download", "-o", "json"]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_CHECKOV_ENV)


def _report(proc: subprocess.Popen[str]) -> dict[str, Any]:
    stdout, stderr = proc.communicate(timeout=300)
    assert stdout.strip(), f"checkov printed nothing: {stderr[-2000:]}"
    report = json.loads(stdout)
    return dict(report[0] if isinstance(report, list) else report)


@pytest.fixture(scope="module")
def checkov_reports(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], dict[str, Any], set[str]]:
    """checkov on deploy/terraform, and (at the same time) on a copy with every suppression comment removed."""
    copy = tmp_path_factory.mktemp("checkov") / "terraform"
    shutil.copytree(TERRAFORM, copy, ignore=shutil.ignore_patterns(".terraform"))
    suppressed: set[str] = set()
    for path in copy.rglob("*.tf"):
        text = path.read_text()
        suppressed |= set(re.findall(r"#checkov:skip=([A-Z0-9_]+):", text))
        path.write_text(re.sub(r"^\s*#checkov:skip=.*\n", "", text, flags=re.M))
    as_committed, stripped = _start_checkov(TERRAFORM), _start_checkov(copy)
    return _report(as_committed), _report(stripped), suppressed


def test_every_terraform_file_parses_as_hcl2() -> None:
    files = tf_files()
    assert len(files) >= 10
    for path in files:
        assert tf_parse(path), f"{path} parsed to nothing"


def test_checkov_finds_no_failed_check_and_every_suppression_carries_a_reason(
    checkov_reports: tuple[dict[str, Any], dict[str, Any], set[str]],
) -> None:
    report = checkov_reports[0]
    summary = report["summary"]
    failed = [f"{c['check_id']} {c['resource']} ({c['file_path']})" for c in report["results"].get("failed_checks", [])]
    assert summary["failed"] == 0 and not failed, "\n".join(failed)
    assert summary["parsing_errors"] == 0 and summary["passed"] > 150
    for check in report["results"].get("skipped_checks", []):
        reason = (check.get("check_result") or {}).get("suppress_comment", "")
        assert len(reason) >= 30, f"{check['check_id']} on {check['resource']} is suppressed without a real reason"


def test_every_checkov_suppression_is_still_needed(
    checkov_reports: tuple[dict[str, Any], dict[str, Any], set[str]],
) -> None:
    """Without its skip comments, each suppressed check must fail; otherwise the suppression is stale."""
    _, stripped, suppressed = checkov_reports
    failing = {c["check_id"] for c in stripped["results"].get("failed_checks", [])}
    assert suppressed, "expected some reasoned suppressions"
    assert suppressed <= failing, f"suppressions that no longer suppress anything: {sorted(suppressed - failing)}"


def test_no_security_group_lets_the_internet_reach_ssh_or_a_role_port() -> None:
    ingress = tf_resources("aws_vpc_security_group_ingress_rule")
    assert not tf_resources("aws_security_group_rule"), "use the per-rule resources (one place to check)"
    for name, rule in ingress.items():
        ports = range(int(rule["from_port"]), int(rule["to_port"]) + 1)
        assert 22 not in ports, f"{name} opens SSH"
        if rule.get("cidr_ipv4") == "0.0.0.0/0" or "cidr_ipv6" in rule:
            assert rule["security_group_id"] == "${aws_security_group.alb.id}" and set(ports) <= {80, 443}, name
        if set(ports) & {8080, 8081, 8082}:
            assert rule.get("referenced_security_group_id") in (
                "${aws_security_group.alb.id}",
                "${aws_security_group.node.id}",
            ), f"{name}: role ports only from the ALB and the other nodes"
    for group in tf_resources("aws_security_group").values():
        assert "ingress" not in group and "egress" not in group, "inline rules would bypass the checks above"
    instance = tf_resources("aws_instance")["node"]
    assert "key_name" not in instance and "associate_public_ip_address" not in instance
    assert "${aws_subnet.private[" in instance["subnet_id"]


def test_every_instance_requires_imdsv2_tokens_with_a_response_hop_limit_of_one() -> None:
    # Hop limit 1: a container or forwarded hop on the node cannot reach the metadata token endpoint (A2.4).
    machines = {**tf_resources("aws_instance"), **tf_resources("aws_launch_template")}
    assert machines, "no aws_instance or aws_launch_template found under deploy/terraform"
    for name, body in machines.items():
        options = body.get("metadata_options", [{}])[0]
        assert options.get("http_tokens") == "required", name
        assert options.get("http_put_response_hop_limit") == 1, name


def test_target_groups_health_check_ready_with_a_timeout_below_the_interval() -> None:
    group = tf_resources("aws_lb_target_group")["role"]
    check = group["health_check"][0]
    assert check["path"] == "/health/ready" and check["matcher"] == "200"
    timing = tf_default("health_check")
    assert timing["timeout"] < timing["interval"]
    assert check["interval"] == "${var.health_check.interval}" and check["timeout"] == "${var.health_check.timeout}"
    assert tf_resources("aws_lb")["main"]["idle_timeout"] == "${var.alb_idle_timeout}"
    assert tf_default("alb_idle_timeout") == 60


def test_the_files_bucket_is_private_versioned_encrypted_logged_and_expires_old_versions() -> None:
    module = TERRAFORM / "modules" / "private_bucket" / "main.tf"
    block = tf_resources("aws_s3_bucket_public_access_block", module)["this"]
    assert all(
        block[k] is True
        for k in ("block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets")
    )
    assert (
        tf_resources("aws_s3_bucket_versioning", module)["this"]["versioning_configuration"][0]["status"] == "Enabled"
    )
    sse = tf_resources("aws_s3_bucket_server_side_encryption_configuration", module)["this"]
    assert sse["rule"][0]["apply_server_side_encryption_by_default"][0]["sse_algorithm"] in ("AES256", "aws:kms")
    assert tf_resources("aws_s3_bucket_logging", module)["this"]["target_bucket"] == "${var.log_bucket}"
    lifecycle = tf_resources("aws_s3_bucket_lifecycle_configuration", module)["this"]["rule"][0]
    assert lifecycle["status"] == "Enabled" and "noncurrent_version_expiration" in lifecycle
    files = tf_blocks("module")["files_bucket"]
    assert files["source"] == "./modules/private_bucket" and files["log_bucket"] == "${aws_s3_bucket.logs.id}"


def test_only_the_mcp_role_may_touch_user_files_and_only_under_users() -> None:
    text = (TERRAFORM / "compute.tf").read_text()
    policy = tf_blocks("data")["aws_iam_policy_document"]["node"]
    statements = {s["sid"]: s for s in policy.get("statement", [])}
    dynamic = {s["content"][0]["sid"]: s for d in policy["dynamic"] for s in [d["statement"]]}
    assert dynamic["UserFiles"]["for_each"] == '${each.key == "mcp" ? [1] : []}'
    assert dynamic["UserFiles"]["content"][0]["resources"] == ["${module.files_bucket.arn}/users/*"]
    assert "s3:GetObjectVersion" in dynamic["UserFiles"]["content"][0]["actions"]
    listing = dynamic["ListUserFiles"]["content"][0]
    assert listing["actions"] == ["s3:ListBucket"] and listing["condition"][0]["values"] == ["users/*"]
    assert statements["ReadOwnSecrets"]["resources"] == [
        '${aws_secretsmanager_secret.node["common"].arn}',
        "${aws_secretsmanager_secret.node[each.key].arn}",
    ]
    for statement in statements.values():
        assert not any(a.endswith("*") and a.count(":") == 1 and a.split(":")[1] == "*" for a in statement["actions"])
        if statement["resources"] == ["*"]:
            assert statement["actions"] == ["cloudwatch:PutMetricData"] and statement["condition"]
    assert "AmazonSSMManagedInstanceCore" in text


def test_alarms_cover_cpu_memory_unhealthy_targets_and_error_rates_at_the_seed_thresholds() -> None:
    alarms = tf_resources("aws_cloudwatch_metric_alarm")
    assert alarms["cpu"]["metric_name"] == "CPUUtilization" and alarms["cpu"]["threshold"] == 80
    assert alarms["memory"]["metric_name"] == "mem_used_percent" and alarms["memory"]["threshold"] == 85
    assert alarms["memory"]["namespace"] == "CWAgent"
    assert alarms["unhealthy"]["metric_name"] == "UnHealthyHostCount"
    assert alarms["http_5xx_rate"]["threshold"] == 5 and alarms["s3_error_rate"]["threshold"] == 1
    assert all(a["alarm_actions"] == ["${aws_sns_topic.alarms.arn}"] for a in alarms.values())
    outputs = tf_blocks("output")
    assert {"alb_dns_name", "files_bucket", "instance_ids"} <= set(outputs)


def test_instance_sizes_and_names_are_variables_with_the_seed_defaults() -> None:
    nodes = tf_default("nodes")
    assert {role: nodes[role]["instance_type"] for role in nodes} == {
        "mcp": "t3.medium",
        "model": "t3.small",
        "agent": "t3.small",
    }
    variables = tf_blocks("variable")
    assert {"region", "name", "certificate_arn", "public_hostname", "alb_idle_timeout"} <= set(variables)
    assert "default" not in variables["certificate_arn"]  # account-specific: you pass it


def test_nothing_account_specific_or_secret_is_committed_under_deploy() -> None:
    allowed_numbers = {"136693071363"}  # Debian's public AMI owner account
    for path in DEPLOY.rglob("*"):
        if not path.is_file() or ".terraform" in path.parts or path.suffix == ".pyc":
            continue
        text = path.read_text()
        example = path.name.endswith(".example")
        for number in re.findall(r"(?<![\d.])\d{12}(?![\d.])", text):
            assert number in allowed_numbers or (example and len(set(number)) == 1), f"{path}: account id {number}"
        assert not re.search(r"AKIA[0-9A-Z]{16}|BEGIN [A-Z ]*PRIVATE KEY|sk-[A-Za-z0-9]{20,}", text), path
        assert not re.search(r"(?i)(password|secret|api_key)\s*=\s*\"[^\"$]{6,}\"", text), path


@pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform binary not installed")
def test_terraform_files_are_formatted() -> None:
    result = subprocess.run(
        ["terraform", "fmt", "-check", "-recursive", "-diff", str(TERRAFORM)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout[-3000:]
