"""The routing table (deploy/routing.json) against the routes each role really serves, and its use by Terraform."""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType

import pytest
from starlette.applications import Starlette

from tests.support.deploy import (
    ALL_ROLES,
    DEPLOY,
    SINGLE_ROLES,
    TERRAFORM,
    route_templates,
    sample_path,
    serves,
    tf_blocks,
    tf_resources,
)


def _routed(role_apps: dict[str, Starlette], table: object) -> list[tuple[str, str, str]]:
    """(role, template, sample) for every route of every role that the ALB routes by path (not per-node)."""
    per_node = set(table.per_node)  # type: ignore[attr-defined]
    return [
        (role, template, sample_path(template))
        for role in ALL_ROLES
        for template in route_templates(list(role_apps[role].routes))
        if template not in per_node
    ]


def test_every_route_of_every_role_is_sent_to_a_node_whose_role_serves_it(
    role_apps: dict[str, Starlette], routing_module: ModuleType
) -> None:
    table = routing_module.load()
    problems = []
    for role, template, sample in _routed(role_apps, table):
        rule = table.route(sample)
        if rule is None:
            problems.append(f"{role} serves {template}, but no rule matches it (the ALB answers 404): add a rule")
        elif not serves(role_apps[rule.role], sample):
            problems.append(
                f"{role} serves {template}, but rule {rule.pattern!r} sends it to {rule.role}, which doesn't"
            )
    assert not problems, "deploy/routing.json is out of date:\n" + "\n".join(problems)


def test_per_node_paths_are_served_by_every_role_and_routed_by_no_rule(
    role_apps: dict[str, Starlette], routing_module: ModuleType
) -> None:
    table = routing_module.load()
    for path in table.per_node:
        assert all(serves(role_apps[role], path) for role in ALL_ROLES), f"{path} must exist on every role"
        assert table.route(path) is None, f"{path} is per node (health checks, metrics) but a rule routes it"
    assert "/health/ready" in table.per_node and "/metrics" in table.per_node


def test_every_rule_sends_a_real_route_unless_it_waits_for_the_issue_that_adds_it(
    role_apps: dict[str, Starlette], routing_module: ModuleType
) -> None:
    """No dead rules (the original's pointed at prefixes nothing served); 'pending' must go once the routes exist."""
    table = routing_module.load()
    rules = [table.route(sample) for role, _, sample in _routed(role_apps, table) if role in SINGLE_ROLES]
    used = {rule.pattern for rule in rules if rule is not None}
    dead = [r.pattern for r in table.rules if r.pattern not in used and not r.pending]
    landed = [f"{r.pattern} ({r.pending})" for r in table.rules if r.pattern in used and r.pending]
    assert not dead, f"rules that match no route of their role (remove them or mark them pending): {dead}"
    assert not landed, f"these rules now route real paths; drop their 'pending' in deploy/routing.json: {landed}"


def test_the_routing_table_follows_alb_pattern_semantics(routing_module: ModuleType, tmp_path: Path) -> None:
    rule = routing_module.Rule
    assert rule("/api/v1/invoke*", "model").matches("/api/v1/invoke")
    assert rule("/api/v1/invoke*", "model").matches("/api/v1/invoke/stream")
    assert not rule("/api/v1/invoke*", "model").matches("/api/v1")
    assert rule("/mcp/*", "mcp").matches("/mcp/a/b") and not rule("/mcp/*", "mcp").matches("/mcp")
    assert rule("/v?/x", "model").matches("/v1/x") and not rule("/v?/x", "model").matches("/v12/x")
    assert not rule("/a.b", "mcp").matches("/aXb")  # '.' is literal, not a regex wildcard
    # Specific model prefixes win over the mcp catch-all for /api/v1 because they come first.
    table = routing_module.load()
    assert table.route("/api/v1/invoke").role == "model"
    assert table.route("/api/v1/users/me").role == "mcp"
    assert table.route("/metrics") is None
    bad = tmp_path / "bad.json"
    for rules in (
        '[{"pattern": "/x", "role": "db"}]',
        '[{"pattern": "/x y", "role": "mcp"}]',
        '[{"pattern": "/*/*/*/*/*/*", "role": "mcp"}]',
    ):
        bad.write_text('{"per_node": [], "rules": ' + rules + "}")
        with pytest.raises(ValueError):
            routing_module.load(bad)


def test_the_alb_listener_rules_are_built_from_the_routing_table_in_its_order() -> None:
    alb = TERRAFORM / "alb.tf"
    local_values = tf_blocks("locals", alb)
    assert 'file("${path.module}/../routing.json")' in local_values["routing"]
    assert "100 + index * 10" in local_values["route_rules"]
    rule = tf_resources("aws_lb_listener_rule", alb)["route"]
    assert rule["for_each"] == "${local.route_rules}"
    assert rule["priority"] == "${each.value.priority}"
    assert rule["condition"][0]["path_pattern"][0]["values"] == ["${each.key}"]
    assert rule["action"][0]["target_group_arn"] == "${aws_lb_target_group.role[each.value.role].arn}"
    assert rule["listener_arn"] == "${aws_lb_listener.https.arn}"
    # What Terraform computes from the table: unique, valid priorities, within the ALB's rule quota.
    count = len(re.findall(r'"pattern"', (DEPLOY / "routing.json").read_text()))
    priorities = [100 + i * 10 for i in range(count)]
    assert len(set(priorities)) == count and max(priorities) <= 50_000 and count <= 100


def test_the_https_listener_routes_nothing_by_default_and_http_only_redirects() -> None:
    listeners = tf_resources("aws_lb_listener", TERRAFORM / "alb.tf")
    default = listeners["https"]["default_action"][0]
    assert default["type"] == "fixed-response" and default["fixed_response"][0]["status_code"] == "404"
    assert listeners["https"]["protocol"] == "HTTPS" and "TLS13" in listeners["https"]["ssl_policy"]
    assert listeners["https"]["certificate_arn"] == "${var.certificate_arn}"
    redirect = listeners["http"]["default_action"][0]
    assert redirect["type"] == "redirect" and redirect["redirect"][0]["protocol"] == "HTTPS"
