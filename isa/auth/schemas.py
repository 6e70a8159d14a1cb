"""Wire models of the token endpoints (OAuth 2.0 token-response field names)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from isa.auth.principal import SCOPES


def _scope_list(value: str | None) -> list[str]:
    names = (value or "").split()
    unknown = sorted(set(names) - set(SCOPES))
    if unknown:
        raise ValueError(f"unknown scope {unknown[0]!r}; use {', '.join(SCOPES)}")
    return names


class TokenRequest(BaseModel):
    """Exchange the API key in the Authorization header; optionally narrow the scopes (space-separated)."""

    model_config = ConfigDict(extra="forbid")
    scope: str | None = Field(default=None, max_length=100)

    @field_validator("scope")
    @classmethod
    def _known(cls, value: str | None) -> str | None:
        _scope_list(value)
        return value

    def scopes(self) -> list[str]:
        return _scope_list(self.scope)


class DevTokenRequest(TokenRequest):
    """Development only: an access token for any user, minted by an admin API key."""

    user_id: str = Field(min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$")
    scope: str | None = Field(default="write", max_length=100)
    minutes: int | None = Field(default=None, ge=1, le=24 * 60)


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "Bearer"  # noqa: S105 (the OAuth token type, not a secret)
    expires_in: int
    scope: str
