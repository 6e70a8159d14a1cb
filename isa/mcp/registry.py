"""The capability registry: domains declare tools, prompts and resources in their `tools.py`; we find them.

A domain's `tools.py` creates `capabilities = Capabilities("isa.<domain>")` and decorates functions with
`@capabilities.tool(...)`, `@capabilities.prompt(...)` or `@capabilities.resource(uri, ...)`. The input schema
comes from the typed signature. Anything wrong with a declaration raises `RegistryError` at import, i.e. when
the node starts: the original lost 22 tools and 6 prompts silently because a wrapper or a name was wrong.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any, TypeVar

from mcp.server.mcpserver.prompts.base import Prompt as SdkPrompt
from mcp.server.mcpserver.tools import Tool as SdkTool
from mcp_types import ToolAnnotations

NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
SCOPES = ("read", "write", "admin")
F = TypeVar("F", bound=Callable[..., Any])


class RegistryError(Exception):
    """A broken capability declaration; the message names the domain, the function and the problem."""


class SecurityLevel(StrEnum):
    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"
    CRITICAL = "CRITICAL"

    @property
    def needs_approval(self) -> bool:
        return self in (SecurityLevel.HIGH, SecurityLevel.CRITICAL)


@dataclass(frozen=True)
class Declared:
    """What every capability declares (and the catalog indexes): name, text, category, keywords, its domain."""

    name: str
    description: str
    category: str
    keywords: tuple[str, ...]
    domain: str


@dataclass(frozen=True)
class ToolDecl(Declared):
    security: SecurityLevel
    cost_credits: Decimal
    rate_limit_per_minute: int | None  # None: the mcp.default_rate_limit_per_minute setting
    scope: str
    untrusted_output: bool
    sdk: SdkTool = field(repr=False)

    @property
    def input_schema(self) -> dict[str, Any]:
        return self.sdk.parameters


@dataclass(frozen=True)
class PromptDecl(Declared):
    sdk: SdkPrompt = field(repr=False)


@dataclass(frozen=True)
class ResourceDecl(Declared):
    uri: str
    mime_type: str
    fn: Callable[..., Any] = field(repr=False)

    @property
    def is_template(self) -> bool:
        return "{" in self.uri


def _description(domain: str, fn: Callable[..., Any], given: str | None) -> str:
    text = given if given is not None else inspect.getdoc(fn) or ""
    first = " ".join(text.strip().split("\n\n", 1)[0].split())
    if not first:
        raise RegistryError(f"{domain}: {fn.__qualname__} has no description (pass description= or a docstring)")
    return first


def _check_name(domain: str, fn: Callable[..., Any], name: str) -> str:
    if not NAME.fullmatch(name):
        raise RegistryError(
            f"{domain}: {fn.__qualname__} is named {name!r}; names are 1-64 characters of [A-Za-z0-9_.-]"
        )
    return name


def _check_signature(domain: str, fn: Callable[..., Any]) -> None:
    """Every parameter is a typed keyword-able argument: no *args/**kwargs, no missing annotations."""
    if not callable(fn) or inspect.isclass(fn):
        raise RegistryError(f"{domain}: {fn!r} is not a function")
    for param in inspect.signature(fn).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD, param.POSITIONAL_ONLY):
            raise RegistryError(f"{domain}: {fn.__qualname__} takes {param}; declare each argument by name")
        if param.annotation is param.empty:
            raise RegistryError(f"{domain}: {fn.__qualname__} argument {param.name!r} has no type annotation")


def _keywords(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(k.strip().lower() for k in values if k and k.strip()))


class Capabilities:
    """What one domain offers over MCP. Create one per domain in `<domain>/tools.py`, named `capabilities`."""

    def __init__(self, domain: str) -> None:
        self.domain = domain
        self.tools: list[ToolDecl] = []
        self.prompts: list[PromptDecl] = []
        self.resources: list[ResourceDecl] = []

    def tool(
        self,
        name: str | None = None,
        *,
        category: str,
        description: str | None = None,
        keywords: Iterable[str] = (),
        security: SecurityLevel | str = SecurityLevel.LOW,
        cost_credits: Decimal | int | str = 0,
        rate_limit_per_minute: int | None = None,
        scope: str = "read",
        untrusted_output: bool = False,
    ) -> Callable[[F], F]:
        """Declare a tool. The caller comes from `isa.mcp.context.current_call()`, never from an argument."""

        def decorate(fn: F) -> F:
            tool_name = _check_name(self.domain, fn, fn.__name__ if name is None else name)
            text = _description(self.domain, fn, description)
            _check_signature(self.domain, fn)
            if not category.strip():
                raise RegistryError(f"{self.domain}: tool {tool_name!r} needs a category")
            if scope not in SCOPES:
                raise RegistryError(f"{self.domain}: tool {tool_name!r} scope must be one of {SCOPES}")
            try:
                level = SecurityLevel(str(security).upper())
                cost = Decimal(str(cost_credits))
            except (ValueError, ArithmeticError):
                raise RegistryError(f"{self.domain}: tool {tool_name!r} has a bad security level or cost") from None
            if cost < 0 or (rate_limit_per_minute is not None and rate_limit_per_minute <= 0):
                raise RegistryError(f"{self.domain}: tool {tool_name!r} cost and rate limit must be positive")
            annotations = ToolAnnotations(
                title=tool_name.replace("_", " "),
                destructive_hint=level.needs_approval,
                open_world_hint=untrusted_output,
            )
            try:
                sdk = SdkTool.from_function(
                    fn, name=tool_name, description=text, structured_output=False, annotations=annotations
                )
                sdk.fn_metadata.arg_model.model_json_schema(by_alias=True)
            except Exception as exc:
                raise RegistryError(
                    f"{self.domain}: tool {tool_name!r} has a signature without a JSON schema: {exc}"
                ) from exc
            decl = ToolDecl(
                name=tool_name,
                description=text,
                category=category.strip(),
                keywords=_keywords(keywords),
                security=level,
                cost_credits=cost,
                rate_limit_per_minute=rate_limit_per_minute,
                scope=scope,
                untrusted_output=untrusted_output,
                domain=self.domain,
                sdk=sdk,
            )
            self.tools.append(decl)
            return fn

        return decorate

    def prompt(
        self, name: str | None = None, *, category: str, description: str | None = None, keywords: Iterable[str] = ()
    ) -> Callable[[F], F]:
        """Declare a prompt; its arguments are the function's typed parameters."""

        def decorate(fn: F) -> F:
            prompt_name = _check_name(self.domain, fn, fn.__name__ if name is None else name)
            text = _description(self.domain, fn, description)
            _check_signature(self.domain, fn)
            try:
                sdk = SdkPrompt.from_function(fn, name=prompt_name, description=text)
            except Exception as exc:
                raise RegistryError(f"{self.domain}: prompt {prompt_name!r} can't be registered: {exc}") from exc
            self.prompts.append(PromptDecl(prompt_name, text, category, _keywords(keywords), self.domain, sdk))
            return fn

        return decorate

    def resource(
        self,
        uri: str,
        *,
        name: str,
        category: str,
        description: str | None = None,
        keywords: Iterable[str] = (),
        mime_type: str = "application/json",
    ) -> Callable[[F], F]:
        """Declare a resource (a URI with `{param}` placeholders is a template)."""

        def decorate(fn: F) -> F:
            _check_name(self.domain, fn, name)
            text = _description(self.domain, fn, description)
            _check_signature(self.domain, fn)
            if "://" not in uri:
                raise RegistryError(f"{self.domain}: resource {name!r} needs a URI with a scheme, got {uri!r}")
            decl = ResourceDecl(
                name, text, category, _keywords(keywords), self.domain, uri=uri, mime_type=mime_type, fn=fn
            )
            self.resources.append(decl)
            return fn

        return decorate


@dataclass
class Registry:
    """Every capability of the process's domains, by name (tools, prompts) or URI (resources)."""

    tools: dict[str, ToolDecl] = field(default_factory=dict)
    prompts: dict[str, PromptDecl] = field(default_factory=dict)
    resources: dict[str, ResourceDecl] = field(default_factory=dict)

    def add(self, capabilities: Capabilities) -> None:
        for tool in capabilities.tools:
            if tool.name in self.tools:
                other = self.tools[tool.name].domain
                raise RegistryError(f"tool {tool.name!r} is declared twice ({other} and {tool.domain})")
            self.tools[tool.name] = tool
        for prompt in capabilities.prompts:
            if prompt.name in self.prompts:
                other = self.prompts[prompt.name].domain
                raise RegistryError(f"prompt {prompt.name!r} is declared twice ({other} and {prompt.domain})")
            self.prompts[prompt.name] = prompt
        for resource in capabilities.resources:
            if resource.uri in self.resources:
                other = self.resources[resource.uri].domain
                raise RegistryError(f"resource {resource.uri!r} is declared twice ({other} and {resource.domain})")
            self.resources[resource.uri] = resource

    @classmethod
    def discover(cls, domains: Iterable[str]) -> Registry:
        """Import `<domain>.tools` for each domain that has one and collect its `capabilities`."""
        registry = cls()
        for domain in dict.fromkeys(domains):
            module_name = f"{domain}.tools"
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as exc:
                if exc.name == module_name:
                    continue  # this domain offers nothing over MCP
                raise
            capabilities = getattr(module, "capabilities", None)
            if not isinstance(capabilities, Capabilities):
                raise RegistryError(f"{module_name} must define `capabilities = Capabilities({domain!r})`")
            registry.add(capabilities)
        return registry
