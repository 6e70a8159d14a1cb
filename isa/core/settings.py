"""Settings: dynaconf reads the files and the environment, pydantic gives the rest of the code typed values.

Sources, lowest to highest precedence: the packaged `config/settings.toml`, the file named by
`ISA_SETTINGS_FILE` (e.g. /etc/isa/settings.toml), then environment variables `ISA_SECTION__KEY`.
`ISA_ENV` picks the environment section (development, test, production).
"""

from __future__ import annotations

import os
import re
from importlib import resources
from pathlib import Path
from typing import Any, Literal, TypeVar

import platformdirs
import pydantic
from dynaconf import Dynaconf, ValidationError, Validator
from pydantic import BaseModel, ConfigDict, Field

ROLE_NAMES = ("mcp", "model", "agent", "all")
Role = Literal["mcp", "model", "agent", "all"]
EnvName = Literal["development", "test", "production"]

_SECRET_KEY = re.compile(r"(secret|password|passwd|token|api_key|apikey|private|credential|key$)", re.I)
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://[^:/@\s]*:)(?P<pw>[^@\s]+)(?=@)", re.I)


class ConfigError(Exception):
    """A setting is missing or invalid; the message names it."""


class Section(BaseModel):
    """A settings section: frozen once read, and keys it does not know are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class ServerSettings(Section):
    host: str = "127.0.0.1"
    port: int = 0
    keep_alive_seconds: int = 75
    graceful_timeout_seconds: int = 20
    drain_seconds: float = 0
    max_body_bytes: int = 1_048_576


class DatabaseSettings(Section):
    url: str = ""
    migration_url: str = ""
    prepared_statements: bool = True
    pool_min: int = 1
    pool_max: int = 10
    connect_timeout_seconds: float = 5
    statement_timeout_ms: int = 30_000
    auto_migrate: bool = True


class MigrationSettings(Section):
    lock_timeout_ms: int = 4_000
    statement_timeout_ms: int = 600_000


class HttpSettings(Section):
    allowed_hosts: list[str] = Field(default_factory=lambda: ["127.0.0.1", "localhost"])
    cors_origins: list[str] = Field(default_factory=list)


class HealthSettings(Section):
    ready_timeout_seconds: float = 2.0


class LoggingSettings(Section):
    format: Literal["console", "json"] = "console"
    level: str = "INFO"


class ServicesSettings(Section):
    model_url: str = ""
    mcp_url: str = ""
    agent_url: str = ""


S = TypeVar("S", bound=BaseModel)


class Settings(Section):
    """The effective settings of one process."""

    env: EnvName = "development"
    role: Role = "all"
    data_dir: Path
    server: ServerSettings = ServerSettings()
    database: DatabaseSettings = DatabaseSettings()
    migrations: MigrationSettings = MigrationSettings()
    http: HttpSettings = HttpSettings()
    health: HealthSettings = HealthSettings()
    logging: LoggingSettings = LoggingSettings()
    services: ServicesSettings = ServicesSettings()
    # Every section as read, so a domain can parse its own section with `section()`.
    raw: dict[str, Any] = Field(default_factory=dict, repr=False)

    def section(self, name: str, model: type[S]) -> S:
        """Parse one settings section (e.g. "auth") into the domain's own model.

        The one place a bad section becomes a start-up error (`isa serve` exits 2): a ConfigError naming each
        bad key as NAME.KEY (the ISA_NAME__KEY spelling), without the input values (a mistyped secret must
        never end up in a log or on a terminal).
        """
        try:
            return model.model_validate(self.raw.get(name, {}))
        except pydantic.ValidationError as exc:
            raise ConfigError(section_problems(name, exc)) from None

    @property
    def embedded_database(self) -> bool:
        return not self.database.url


def section_problems(name: str, exc: pydantic.ValidationError) -> str:
    """`invalid <name> settings: NAME.KEY: why; …`, never echoing the values given."""
    problems = "; ".join(
        ".".join([*([name] if name else []), *(str(p) for p in e["loc"])]).upper() + f": {e['msg']}"
        for e in exc.errors(include_input=False, include_context=False, include_url=False)
    )
    return f"invalid {name or 'core'} settings: {problems}"


def _required(name: str, why: str) -> Validator:
    message = f"{{name}} is required {why}"
    return Validator(name, must_exist=True, ne="", messages={"must_exist_true": message, "operations": message})


def _validators(role: str, env_name: str) -> list[Validator]:
    """What each role needs before it may bind a port."""
    rules = []
    if env_name == "production":
        rules.append(_required("DATABASE.URL", "in production (no embedded database there)"))
        if role == "all":  # development generates one under data_dir (isa/auth/devsecret.py); production never
            rules.append(_required("AUTH.TOKEN_SECRET", "in production for role all (the agent acts for users)"))
    if role == "agent":
        names = ("SERVICES.MODEL_URL", "SERVICES.MCP_URL", "AUTH.TOKEN_SECRET")  # the agent acts for users upstream
        rules += [_required(name, "for role agent") for name in names]
    return rules


def packaged_settings_file() -> Path:
    return Path(str(resources.files("isa") / "config" / "settings.toml"))


def load_settings(role: str | None = None) -> Settings:
    """Read settings for `role` (default: ISA_ROLE, then the file) and validate what the role needs."""
    env_name = os.environ.get("ISA_ENV", "development")
    if env_name not in ("development", "test", "production"):
        raise ConfigError(f"ISA_ENV must be development, test or production (got {env_name!r})")
    files = [str(packaged_settings_file())]
    if extra := os.environ.get("ISA_SETTINGS_FILE"):
        files.append(extra)
    dyn = Dynaconf(
        envvar_prefix="ISA",
        settings_files=files,
        environments=True,
        env=env_name,
        env_switcher="ISA_ENV",
        merge_enabled=False,
        load_dotenv=False,
    )
    raw: dict[str, Any] = _lower_keys(dyn.as_dict())
    chosen = str(role or raw.get("role") or "all").lower()
    if chosen not in ROLE_NAMES:
        raise ConfigError(f"ROLE must be one of {', '.join(ROLE_NAMES)} (got {chosen!r})")
    dyn.validators.register(*_validators(chosen, env_name))
    try:
        dyn.validators.validate()
    except ValidationError as exc:
        raise ConfigError(str(exc)) from None
    data_dir = Path(raw.get("data_dir") or platformdirs.user_data_dir("isa")).expanduser()
    known = {k: raw[k] for k in Settings.model_fields if k in raw and k not in ("raw", "env", "role", "data_dir")}
    try:
        return Settings(env=env_name, role=chosen, data_dir=data_dir, raw=raw, **known)
    except pydantic.ValidationError as exc:
        raise ConfigError(section_problems("", exc)) from None


def _lower_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k).lower(): _lower_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_lower_keys(v) for v in value]
    return value


def mask_secrets(value: Any, key: str = "") -> Any:
    """Replace secret values (by key name, and passwords inside URLs) with '***'."""
    if isinstance(value, dict):
        return {k: mask_secrets(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_secrets(v, key) for v in value]
    if isinstance(value, str):
        if value and _SECRET_KEY.search(key):
            return "***"
        return _URL_PASSWORD.sub(r"\g<scheme>***", value)
    return value
