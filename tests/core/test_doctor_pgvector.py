"""`isa doctor` records the pgvector version (retrieval needs >= 0.8) and explains an older embedded data folder."""

from __future__ import annotations

from pathlib import Path

from isa.core.doctor import run_doctor
from isa.core.pgvector import has_iterative_scan
from isa.core.settings import DatabaseSettings, Settings


def _doctor(settings: Settings) -> tuple[int, str]:
    lines: list[str] = []
    code = run_doctor(settings, lines.append)
    return code, "\n".join(lines)


def test_doctor_reports_the_servers_pgvector_version_and_that_it_scans_iteratively(
    settings: Settings, db_url: str
) -> None:
    _, text = _doctor(settings.model_copy(update={"database": DatabaseSettings(url=db_url)}))
    line = next(x for x in text.splitlines() if "pgvector" in x)
    assert "[ok  ]" in line and "version 0.8." in line and "iterative HNSW scans" in line


def test_versions_before_0_8_cannot_scan_a_filtered_index_iteratively() -> None:
    assert [has_iterative_scan(v) for v in ("0.6.2", "0.7.4", "0.8.0", "0.8.2", "1.0", None)] == [
        False,
        False,
        True,
        True,
        True,
        False,
    ]


def test_doctor_explains_an_embedded_postgres_16_folder_with_the_fix(settings: Settings, tmp_path: Path) -> None:
    (tmp_path / "pg").mkdir()
    (tmp_path / "pg" / "PG_VERSION").write_text("16\n")
    embedded = settings.model_copy(update={"data_dir": tmp_path, "database": DatabaseSettings(url="")})
    code, text = _doctor(embedded)
    line = next(x for x in text.splitlines() if "database" in x)
    assert code == 1 and "[FAIL]" in line and "PostgreSQL 16" in line and f"mv {tmp_path / 'pg'}" in line
