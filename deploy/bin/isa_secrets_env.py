"""ExecStartPre helper: fetch <prefix>/common and <prefix>/<role> from Secrets Manager into a 0600 env file.

    /opt/isa/venv/bin/python /opt/isa/bin/isa_secrets_env.py --role mcp --out /run/isa/mcp/secrets.env

Runs as the unit's user with the instance role's credentials (boto3's default chain: IMDSv2 on EC2), with the
boto3 that ships in isa's own venv. Each secret is a JSON object of environment variables; the role's secret
overrides the common one. Values are never printed, only names and counts. Exit status 1 names what is missing,
so systemd does not start the node without its secrets.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Inside double quotes systemd's EnvironmentFile parser unescapes exactly these after a backslash.
_ESCAPE = re.compile(r'(["\\`$])')


class SecretsError(Exception):
    """A secret is missing, unreadable or not a JSON object of environment variables; the message names it."""


def env_line(key: str, value: str) -> str:
    """One KEY="value" line that systemd's EnvironmentFile= reads back as exactly `value`."""
    escaped = _ESCAPE.sub(r"\\\1", value)
    return f'{key}="{escaped}"\n'


def parse_secret(name: str, text: str) -> dict[str, str]:
    try:
        data: Any = json.loads(text)
    except ValueError:
        raise SecretsError(f"secret {name} is not JSON (expected an object of environment variables)") from None
    if not isinstance(data, dict):
        raise SecretsError(f"secret {name} is not a JSON object of environment variables")
    out: dict[str, str] = {}
    for key, value in data.items():
        if not _KEY.match(str(key)):
            raise SecretsError(f"secret {name}: {key!r} is not an environment variable name")
        if isinstance(value, bool | int | float):
            value = json.dumps(value)
        if not isinstance(value, str) or "\n" in value or "\x00" in value:
            raise SecretsError(f"secret {name}: the value of {key} must be a one-line string")
        out[str(key)] = value
    return out


def fetch(prefix: str, role: str) -> tuple[list[str], dict[str, str]]:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    client = boto3.client("secretsmanager")
    names = [f"{prefix}/common", f"{prefix}/{role}"]
    merged: dict[str, str] = {}
    for name in names:
        try:
            response = client.get_secret_value(SecretId=name)
        except ClientError as exc:
            raise SecretsError(f"cannot read secret {name}: {exc.response['Error'].get('Code', 'error')}") from None
        except BotoCoreError as exc:
            raise SecretsError(f"cannot reach Secrets Manager for {name}: {type(exc).__name__}") from None
        if "SecretString" not in response:
            raise SecretsError(f"secret {name} has no string value")
        merged.update(parse_secret(name, response["SecretString"]))
    return names, merged


def write_env_file(path: Path, values: dict[str, str]) -> None:
    """Write atomically with mode 0600 from the first byte (never world-readable, never half-written)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write("# Written at unit start from Secrets Manager by isa_secrets_env.py. Do not edit.\n")
            handle.writelines(env_line(key, value) for key, value in sorted(values.items()))
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--role", required=True, choices=["mcp", "model", "agent"])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--prefix", default=os.environ.get("ISA_SECRETS_PREFIX", "isa"))
    args = parser.parse_args(argv)
    try:
        names, values = fetch(args.prefix, args.role)
        write_env_file(args.out, values)
    except (SecretsError, OSError) as exc:
        print(f"isa_secrets_env: {exc}", file=sys.stderr)
        return 1
    print(f"isa_secrets_env: wrote {len(values)} variables from {', '.join(names)} to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
