"""Guardrail policies ([default.guardrails] in config/settings.toml): per deployment, optionally per user."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from isa.guardrails.detect import FINDING_TYPES, NATIONAL_ID_PATTERNS, FindingType

Action = Literal["flag", "redact", "block"]

MEDICAL_TERMS = (
    "diagnosis", "diagnosed", "prescription", "HIV", "AIDS", "cancer", "chemotherapy", "diabetes", "insulin",
    "depression", "anxiety disorder", "bipolar", "schizophrenia", "epilepsy", "hepatitis", "tuberculosis",
    "pregnancy", "pregnant", "miscarriage", "abortion", "dementia", "Alzheimer's", "asthma", "HbA1c",
    "antidepressant", "methadone", "opioid", "psychiatric", "blood pressure", "cholesterol", "STD",
)  # fmt: skip


class Policy(BaseModel):
    description: str = ""
    types: list[FindingType] = Field(min_length=1)
    action: Action = "flag"  # flag: report; redact: replace in screened text; block: refuse the text
    min_confidence: float | None = Field(None, ge=0, le=1)


def _default_policies() -> dict[str, Policy]:
    return {
        "pii": Policy(
            description="Personal data: e-mail, phone, payment cards, IBAN, national identifiers",
            types=["email", "phone", "credit_card", "iban", "national_id"],
            action="redact",
        ),
        "secrets": Policy(description="API keys, tokens, private keys, passwords", types=["secret"], action="redact"),
        "medical": Policy(description="Health information (term list)", types=["medical"], action="flag"),
    }


class GuardrailSettings(BaseModel):
    phone_region: str = Field("US", min_length=2, max_length=2)  # region for numbers written without +<country>
    min_confidence: float = Field(0.5, ge=0, le=1)
    national_ids: list[str] = ["us.ssn", "es.dni", "it.codicefiscale", "in_.aadhaar", "fr.nir", "ca.sin"]
    medical_terms: list[str] = list(MEDICAL_TERMS)
    policies: dict[str, Policy] = Field(default_factory=_default_policies)
    default_policies: list[str] = ["pii", "secrets"]  # what check_guardrails applies when none are named
    user_policies: dict[str, list[str]] = {}  # user_id -> the policies applied to that user instead of the default
    max_chars: int = Field(1_000_000, ge=1000)  # longest text one check accepts
    # Screen untrusted tool output (imported servers, web pages) with the caller's policies before the agent's
    # model sees it: redact per policy, fence instruction-like text as data, withhold on a `block` finding.
    screen_untrusted: bool = False
    sample: str = (
        "Contact Jane Doe at jane.doe@example.org or +1 650-253-0000. Card 4111 1111 1111 1111, "
        "IBAN DE89 3704 0044 0532 0130 00. Diagnosed with diabetes in 2019. key=AKIAIOSFODNN7EXAMPLE"
    )

    @field_validator("national_ids")
    @classmethod
    def _known_ids(cls, value: list[str]) -> list[str]:
        unknown = [v for v in value if v not in NATIONAL_ID_PATTERNS]
        if unknown:
            raise ValueError(f"unknown national ids {unknown}; known: {sorted(NATIONAL_ID_PATTERNS)}")
        return value

    @model_validator(mode="after")
    def _named_policies_exist(self) -> GuardrailSettings:
        named = set(self.default_policies) | {p for ps in self.user_policies.values() for p in ps}
        missing = sorted(named - set(self.policies))
        if missing:
            raise ValueError(f"guardrails: unknown policies {missing}; defined: {sorted(self.policies)}")
        return self


__all__ = ["FINDING_TYPES", "Action", "GuardrailSettings", "Policy"]
