"""The routing table (deploy/routing.json): ALB path-pattern semantics, and the nginx rehearsal config rendered from it.

Standard library only, so an operator can run it anywhere:

    python deploy/routing.py nginx --listen 8080 --run-dir /tmp/isa-lb \\
        --node mcp=127.0.0.1:8081 --node model=127.0.0.1:8082 --node agent=127.0.0.1:8080 > isa.conf
    nginx -p /tmp/isa-lb -c "$PWD/isa.conf" -e /tmp/isa-lb/error.log

The same table feeds Terraform (deploy/terraform/alb.tf), so the rehearsal routes exactly like the ALB.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

DEPLOY_DIR = Path(__file__).resolve().parent
TABLE_PATH = DEPLOY_DIR / "routing.json"
NGINX_TEMPLATE = DEPLOY_DIR / "nginx" / "isa.conf.template"
ROLES = ("mcp", "model", "agent")
# What the ALB accepts in a path pattern, minus the characters nginx would need quoted.
_PATTERN_CHARS = re.compile(r"^/[A-Za-z0-9_.\-/*?]*$")
_ALB_MAX_PATTERN = 128
_ALB_MAX_WILDCARDS = 5


@dataclass(frozen=True)
class Rule:
    pattern: str
    role: str
    pending: str = ""

    @property
    def regex(self) -> str:
        return glob_regex(self.pattern)

    def matches(self, path: str) -> bool:
        return re.fullmatch(self.regex[1:-1], path) is not None


@dataclass(frozen=True)
class RoutingTable:
    per_node: tuple[str, ...]
    rules: tuple[Rule, ...]

    def route(self, path: str) -> Rule | None:
        """The rule the ALB (and the rehearsal nginx) applies to `path`: the first that matches, like priorities."""
        return next((rule for rule in self.rules if rule.matches(path)), None)


def glob_regex(pattern: str) -> str:
    """An ALB path pattern as an anchored regex: '*' is any run of characters (slashes too), '?' exactly one."""
    out = ["^"]
    for char in pattern:
        out.append(".*" if char == "*" else "." if char == "?" else re.escape(char))
    out.append("$")
    return "".join(out)


def load(path: Path = TABLE_PATH) -> RoutingTable:
    """Read and validate the table; a pattern the ALB would refuse fails here, not at `terraform apply`."""
    raw = json.loads(path.read_text())
    rules = []
    seen: set[str] = set()
    for item in raw["rules"]:
        rule = Rule(pattern=item["pattern"], role=item["role"], pending=item.get("pending", ""))
        if rule.role not in ROLES:
            raise ValueError(f"rule {rule.pattern!r}: role must be one of {ROLES}, not {rule.role!r}")
        if not _PATTERN_CHARS.match(rule.pattern) or len(rule.pattern) > _ALB_MAX_PATTERN:
            raise ValueError(f"rule {rule.pattern!r}: not a path pattern this table supports")
        if sum(rule.pattern.count(c) for c in "*?") > _ALB_MAX_WILDCARDS:
            raise ValueError(f"rule {rule.pattern!r}: the ALB allows at most {_ALB_MAX_WILDCARDS} wildcards")
        if rule.pattern in seen:
            raise ValueError(f"rule {rule.pattern!r} appears twice")
        seen.add(rule.pattern)
        rules.append(rule)
    return RoutingTable(per_node=tuple(raw["per_node"]), rules=tuple(rules))


def _upstream_block(role: str, servers: list[str]) -> str:
    # max_fails/fail_timeout: a node that refused a connection (it stopped after its drain) is skipped for a while.
    # nginx ignores both when a group has one server, which then is never marked down.
    lines = [f"    upstream isa_{role} {{"]
    lines += [f"        server {server} max_fails=1 fail_timeout=10s;" for server in servers]
    lines += ["        keepalive 16;", "    }"]
    return "\n".join(lines)


def render_nginx(
    table: RoutingTable,
    nodes: dict[str, list[str]],
    *,
    listen: str,
    run_dir: Path,
    idle_timeout: int,
    template: Path = NGINX_TEMPLATE,
) -> str:
    """The rehearsal config: one upstream per role, the table's rules as ordered regex locations, a 404 default."""
    missing = sorted({rule.role for rule in table.rules} - set(nodes))
    if missing:
        raise ValueError(f"no servers given for role(s) {', '.join(missing)}")
    upstreams = "\n".join(_upstream_block(role, servers) for role, servers in sorted(nodes.items()))
    # The ALB health-checks every target directly; the rehearsal reaches each role's per-node paths here.
    node_locations = "\n".join(
        f"        location ^~ /_node/{role}/ {{ proxy_pass http://isa_{role}/; }}" for role in sorted(nodes)
    )
    # Regex locations are tried in the order they appear and the first match wins: the ALB's priority order.
    rule_locations = "\n".join(
        f"        location ~ {rule.regex} {{ proxy_pass http://isa_{rule.role}; }}  # {rule.pattern}"
        for rule in table.rules
    )
    values = {
        "user": "user root;" if os.geteuid() == 0 else "",
        "run_dir": str(run_dir),
        "listen": listen,
        "idle_timeout": str(idle_timeout),
        "upstreams": upstreams,
        "node_locations": node_locations,
        "rule_locations": rule_locations,
    }
    text = template.read_text()
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    if "{{" in text:
        raise ValueError(f"unfilled placeholder in {template}: {text[text.index('{{') :][:40]!r}")
    return text


def _parse_nodes(items: list[str]) -> dict[str, list[str]]:
    nodes: dict[str, list[str]] = {}
    for item in items:
        role, _, address = item.partition("=")
        nodes.setdefault(role, []).append(address)
    return nodes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    nginx = sub.add_parser("nginx", help="print the nginx rehearsal config")
    nginx.add_argument("--listen", required=True, help="port or address:port (loopback is assumed for a bare port)")
    nginx.add_argument("--run-dir", required=True, type=Path, help="pid, logs and temp files go here")
    nginx.add_argument("--node", action="append", default=[], help="ROLE=HOST:PORT, once per instance")
    nginx.add_argument("--idle-timeout", type=int, default=60, help="the ALB idle_timeout to mirror (seconds)")
    sub.add_parser("show", help="print the rules in priority order")
    args = parser.parse_args(argv)
    table = load()
    if args.command == "show":
        for number, rule in enumerate(table.rules, start=1):
            print(f"{number:>3}  {rule.pattern:<44} -> {rule.role:<6} {rule.pending}")
        return 0
    listen = args.listen if ":" in args.listen else f"127.0.0.1:{args.listen}"
    text = render_nginx(
        table,
        _parse_nodes(args.node),
        listen=listen,
        run_dir=args.run_dir.resolve(),
        idle_timeout=args.idle_timeout,
    )
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
