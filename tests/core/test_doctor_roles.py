"""`isa doctor` per role: the token secret, the chat model it will use (or the fix), the worker, and the provider
variables by the names the code reads."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from isa.core.doctor import run_doctor
from isa.core.settings import DatabaseSettings, Settings
from isa.web.settings import WebSettings
from tests.support.fake_openai import FakeOpenAI
from tests.support.mcp_servers import settings_with

KEYS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "REPLICATE_API_KEY", "BRAVE_API_KEY")


@pytest.fixture(scope="module")
def local_model() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(models=["fake", "fake-embed"]) as fake:
        yield fake


@pytest.fixture(autouse=True)
def no_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in KEYS:
        monkeypatch.delenv(name, raising=False)


def doctor(settings: Settings, db_url: str, role: str, env: str = "test", **sections: Any) -> tuple[int, str]:
    variant = settings_with(settings, **sections) if sections else settings
    variant = variant.model_copy(update={"role": role, "env": env, "database": DatabaseSettings(url=db_url)})
    lines: list[str] = []
    code = run_doctor(variant, lines.append)
    return code, "\n".join(lines)


def line(report: str, name: str) -> str:
    return next(row for row in report.splitlines() if f"] {name}" in row)


def test_role_all_in_development_names_the_generated_secret_and_the_local_chat_model(
    settings: Settings, db_url: str, local_model: FakeOpenAI, tmp_path: Path
) -> None:
    variant = settings.model_copy(update={"data_dir": tmp_path})
    code, report = doctor(variant, db_url, "all", "development", model={"local_url": local_model.base_url})
    assert code == 0 and report.endswith("this node can run")
    assert "[ok  ] token secret" in report and str(tmp_path / "auth" / "token_secret") in line(report, "token secret")
    assert "'default' -> fake (local server" in line(report, "chat model")
    assert "1 chat, 1 embedding" in line(report, "local model server")
    assert "in-process" in line(report, "background worker")


def test_with_no_model_anywhere_the_doctor_says_chat_will_not_answer_and_gives_the_fix(
    settings: Settings, db_url: str
) -> None:
    code, report = doctor(settings, db_url, "all", auth={"token_secret": "d" * 40}, model={"local_probe": False})
    assert code == 0 and "chat will not answer until this is fixed: chat model" in report
    assert "none reachable" in line(report, "chat model") and "ISA_MODEL__LOCAL_URL=" in line(report, "chat model")


def test_a_cloud_key_is_the_chat_model_and_is_reported_by_the_variable_the_code_reads(
    settings: Settings, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-doctor-test-not-used")
    code, report = doctor(settings, db_url, "model")
    assert code == 0 and "token secret" not in report  # the model node only verifies tokens
    assert "'default' -> gpt-4.1-mini (openai)" in line(report, "chat model")
    assert "[ok  ] provider OPENAI_API_KEY" in report
    assert "[warn] provider REPLICATE_API_KEY" in report and "REPLICATE_API_TOKEN" not in report


def test_the_agent_role_in_production_without_a_secret_cannot_run(settings: Settings, db_url: str) -> None:
    code, report = doctor(settings, db_url, "agent", "production")
    assert code == 1 and "[FAIL] token secret" in report and "cannot run: token secret" in report
    assert "ISA_AUTH__TOKEN_SECRET=" in line(report, "token secret")


def test_the_mcp_role_in_production_expects_isa_worker_and_reads_the_conventional_brave_key(
    settings: Settings, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BRAVE_API_KEY", "brave-doctor-test")
    code, report = doctor(settings, db_url, "mcp", "production", auth={"token_secret": "p" * 40})
    assert code == 0
    assert "external: run `isa worker`" in line(report, "background worker")
    assert "[ok  ] web search (Brave)" in report and "BRAVE_API_KEY" in line(report, "web search")
    assert WebSettings().brave_api_key == "brave-doctor-test"  # and web_search really uses it
