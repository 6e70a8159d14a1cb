"""The caller of a request: one Principal, resolved from a verified token or API key, never from input."""

from __future__ import annotations

from dataclasses import dataclass

from isa.core.errors import ApiError

SCOPES = ("read", "write", "admin")
# A broader scope includes the narrower ones.
_IMPLIED = {"admin": {"admin", "write", "read"}, "write": {"write", "read"}, "read": {"read"}}


def expand_scopes(scopes: set[str] | frozenset[str] | list[str]) -> frozenset[str]:
    out: set[str] = set()
    for scope in scopes:
        out |= _IMPLIED.get(scope, set())
    return frozenset(out)


def minimal_scopes(scopes: set[str] | frozenset[str]) -> list[str]:
    """The fewest scope names that imply all of `scopes` (e.g. {read, write} -> [write])."""
    return sorted(s for s in scopes if not any(s in _IMPLIED[o] for o in scopes if o != s and o in _IMPLIED))


@dataclass(frozen=True)
class Principal:
    user_id: str
    scopes: frozenset[str]
    via: str  # "api_key" | "isa" | "oauth" | "auth0" | "supabase"
    key_id: str | None = None
    # An OAuth access token's RFC 8707 resource: /mcp refuses a token issued for another resource.
    resource: str | None = None

    @property
    def is_admin(self) -> bool:
        return "admin" in self.scopes

    def require(self, scope: str) -> None:
        """403 unless this principal holds `scope`."""
        if scope not in self.scopes:
            raise ApiError(
                403,
                "insufficient_scope",
                f"this action needs the {scope!r} scope",
                headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{scope}"'},
            )
