"""Helpers for tests/deploy: the routing table, a role's real routes, parsed Terraform and systemd units, templates."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from starlette.applications import Starlette
from starlette.routing import BaseRoute, Match, Mount

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
TERRAFORM = DEPLOY / "terraform"
SYSTEMD = DEPLOY / "systemd"
SINGLE_ROLES = ("mcp", "model", "agent")
ALL_ROLES = (*SINGLE_ROLES, "all")
CHECKOV_VERSION = "3.3.30"
# checkov pins boto3/botocore far below ours, so it gets a venv of its own (created on first use, kept after).
CHECKOV_VENV = ROOT / ".venv-tools" / "checkov"


@cache
def routing() -> ModuleType:
    """deploy/routing.py, loaded by path (deploy/ is not a package)."""
    spec = importlib.util.spec_from_file_location("isa_deploy_routing", DEPLOY / "routing.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def load_script(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- a role's real routes -------------------------------------------------------------------------------------

_PARAM = re.compile(r"{([A-Za-z_][A-Za-z0-9_]*)(?::([a-z]+))?}")
_SAMPLES = {"str": "sample", "int": "1", "float": "1.5", "uuid": "00000000-0000-4000-8000-000000000000"}


def sample_path(template: str) -> str:
    """A concrete path a template matches: {id} -> sample, {n:int} -> 1, {rest:path} -> sample/deeper."""
    return _PARAM.sub(
        lambda m: "sample/deeper" if m.group(2) == "path" else _SAMPLES.get(m.group(2) or "str", "x"), template
    )


def route_templates(routes: list[BaseRoute], prefix: str = "") -> Iterator[str]:
    """Every path template an app serves, through mounts; an opaque mounted app counts as everything under it."""
    for route in routes:
        if isinstance(route, Mount):
            inner = list(route.routes or [])
            if inner:
                yield from route_templates(inner, prefix + route.path)
            else:
                yield prefix + route.path + "/{rest:path}"
        elif hasattr(route, "path"):
            yield prefix + str(route.path)


def serves(app: Starlette, path: str) -> bool:
    """Whether the app has a route for `path` (any method), by Starlette's own matching."""
    for kind in ("http", "websocket"):
        scope = {"type": kind, "path": path, "root_path": "", "method": "GET", "headers": [], "query_string": b""}
        if any(route.matches(scope)[0] != Match.NONE for route in app.routes):
            return True
    return False


def serves_get(app: Starlette, path: str) -> bool:
    scope = {"type": "http", "path": path, "root_path": "", "method": "GET", "headers": [], "query_string": b""}
    return any(route.matches(scope)[0] == Match.FULL for route in app.routes)


def serves_method(app: Starlette, method: str, path: str) -> bool:
    scope = {"type": "http", "path": path, "root_path": "", "method": method, "headers": [], "query_string": b""}
    return any(route.matches(scope)[0] == Match.FULL for route in app.routes)


# --- Terraform (python-hcl2 keeps quotes and bookkeeping keys; strip them) ------------------------------------


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items() if k not in ("__is_block__", "__comments__")}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def tf_files() -> list[Path]:
    return sorted(TERRAFORM.rglob("*.tf"))


@cache
def _parsed(path: Path) -> dict[str, Any]:
    import hcl2

    with path.open() as handle:
        return dict(_clean(hcl2.load(handle)))


def tf_parse(path: Path) -> dict[str, Any]:
    return _parsed(path)


def tf_blocks(kind: str, path: Path | None = None) -> dict[str, dict[str, Any]]:
    """variable/output/locals/module blocks by name, across the root module (or one file)."""
    out: dict[str, dict[str, Any]] = {}
    for file in [path] if path else sorted(TERRAFORM.glob("*.tf")):
        for block in tf_parse(file).get(kind, []):
            out.update(block)
    return out


def tf_resources(rtype: str, path: Path | None = None) -> dict[str, dict[str, Any]]:
    """Resources of one type by name, across the root module and its local modules."""
    out: dict[str, dict[str, Any]] = {}
    for file in [path] if path else tf_files():
        for block in tf_parse(file).get("resource", []):
            for name, body in block.get(rtype, {}).items():
                in_module = path is None and file.parent != TERRAFORM
                out[f"{file.parent.name}/{name}" if in_module else name] = body
    return out


def tf_default(variable: str) -> Any:
    return tf_blocks("variable")[variable]["default"]


# --- Terraform templatefile() ----------------------------------------------------------------------------------

_INTERP = re.compile(r"(?<!\$)\$\{([^}]*)\}")


def template_names(text: str) -> set[str]:
    return {m.group(1).strip() for m in _INTERP.finditer(text)}


def render_template(path: Path, values: dict[str, object]) -> str:
    """Terraform's templatefile() for plain ${name} references; anything else (or a missing name) fails."""
    text = path.read_text()
    if "%{" in text:
        raise ValueError(f"{path}: template directives are not supported here")

    def fill(match: re.Match[str]) -> str:
        name = match.group(1).strip()
        if name not in values:
            raise KeyError(f"{path.name}: no value for ${{{name}}}")
        return str(values[name])

    return _INTERP.sub(fill, text).replace("$${", "${")


def templatefile_args(expression: str, template: str) -> set[str]:
    """The argument names a templatefile(".../<template>", { a = ..., b = ... }) call in HCL passes (top level)."""
    start = expression.index(template)
    brace = expression.index("{", start)
    depth, names, i = 0, set(), brace
    while i < len(expression):
        char = expression[i]
        if char in "{([":
            depth += 1
        elif char in "})]":
            depth -= 1
            if depth == 0:
                break
        elif depth == 1:
            m = re.match(r"([A-Za-z_][A-Za-z0-9_]*)\s*=(?!=)", expression[i:])
            if m and not re.match(r"[A-Za-z0-9_.]", expression[i - 1]):
                names.add(m.group(1))
                i += len(m.group(0))
                continue
        elif char == '"':
            end = i + 1
            while expression[end] != '"':
                end += 2 if expression[end] == "\\" else 1
            i = end
        i += 1
    return names


# --- systemd units ---------------------------------------------------------------------------------------------


def parse_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """[Section] -> key -> every value assigned (systemd keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"{path}: setting outside a section: {line}"
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def seconds(value: str) -> float:
    """A systemd time span ("60", "90s", "15min", "1min 30s") in seconds."""
    units = {"": 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "ms": 0.001}
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", value):
        total += float(number) * units[unit]
    return total


# --- tools -----------------------------------------------------------------------------------------------------


def checkov_binary() -> Path:
    """checkov from its own venv under .venv-tools/ (created here on a fresh machine), or from PATH."""
    own = CHECKOV_VENV / "bin" / "checkov"
    if own.exists():
        return own
    if found := shutil.which("checkov"):
        return Path(found)
    subprocess.run([sys.executable, "-m", "venv", str(CHECKOV_VENV)], check=True, timeout=120)
    subprocess.run(
        [str(CHECKOV_VENV / "bin" / "pip"), "install", "--quiet", f"checkov=={CHECKOV_VERSION}"],
        check=True,
        timeout=900,
    )
    return own


# --- a node's rendered files (what bootstrap.sh writes under /etc/isa) -----------------------------------------

SAMPLE_PUBLIC_HOSTNAME = "isa.example.test"


def template_values(role: str) -> dict[str, object]:
    """The values Terraform passes to the templates in compute.tf, with sample names and this repo's defaults."""
    values: dict[str, object] = {
        "role": role,
        "name": "isa",
        "region": "eu-west-1",
        "isa_version": "0.1.0",
        "releases_bucket": "isa-releases-sample",
        "files_bucket": "isa-files-sample",
        "log_group": "/isa/app",
        "public_hostname": SAMPLE_PUBLIC_HOSTNAME,
        "internal_zone": "isa.internal",
        "drain_seconds": tf_default("drain_seconds"),
        "mcp_stateless": str(tf_default("nodes")["mcp"]["count"] > 1).lower(),
    }
    values["common_env"] = render_template(DEPLOY / "env" / "common.env", values)
    values["role_env"] = render_template(DEPLOY / "env" / "role.env", values)
    values["node_settings"] = render_template(DEPLOY / "env" / "settings.toml", values)
    return values


def env_file_values(text: str) -> dict[str, str]:
    """KEY=value lines of a plain env file (no quoting is used in deploy/env)."""
    out = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out
